"""The annual report for the web pages and the API, built and rendered as the CLI does."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import select

from models.tables import ComplaintRow

__all__ = ["annual_report_text", "report_body"]


def annual_report_text(context: Any, period: Any, fmt: str) -> str:
    """The annual report for ``period`` in ``fmt``, under the policy most cases follow."""
    from complaints.policies import load_policy
    from complaints.reports.figures import build_report
    from complaints.reports.queries import ReportOptions
    from complaints.reports.render import render

    with context.session() as session:
        name = session.exec(select(ComplaintRow.policy_name).group_by(
            ComplaintRow.policy_name).order_by(func.count().desc())).first()
    policy = load_policy(name or "code-2024")
    options = ReportOptions(period, policy, homes=policy.homes_owned or 0,
                            as_of=min(period.end, context.today()))
    return render(build_report(context.engine, options), fmt)


def report_body(html: str) -> str:
    """The report document's style and body, to show inside a page."""
    style = html[html.find("<style"):html.find("</style>") + 8] if "<style" in html else ""
    body = html[html.find("<body"):]
    return style + body[body.find(">") + 1:body.rfind("</body>")]
