"""The Ombudsman's annual submission as JSON and CSV, and built for the API.

Kept apart from :mod:`complaints.reports.submission` because the CSV reuses
:mod:`complaints.reports.render`'s formula-safe writer, and ``render`` imports the report
document, which summarises a submission: one module for both would be an import circle.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from complaints.reports.render import _SafeWriter
from complaints.reports.submission import Submission, build_submission

__all__ = ["SUBMISSION_FORMATS", "render_submission", "submission_csv", "submission_json",
           "submission_text"]

SUBMISSION_FORMATS = ("json", "csv")

#: The field that names an element of a list, in the order looked for.
_KEYS = ("provision", "stage", "tenure", "kind")


def submission_json(submission: Submission) -> str:
    """The submission as indented JSON (``Submission.model_validate_json`` reads it back)."""
    return submission.model_dump_json(indent=2) + "\n"


def _text(value: Any) -> str:
    """A JSON scalar as a CSV cell: null empty, booleans as JSON writes them."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _fields(prefix: str, value: Any) -> Iterator[tuple[str, str]]:
    """Flatten JSON data to (field, value): ``stages[1].received``, ``deadline.due``."""
    if isinstance(value, dict):
        for name, inner in value.items():
            yield from _fields(f"{prefix}.{name}" if prefix else str(name), inner)
    elif isinstance(value, list):
        for number, element in enumerate(value, 1):
            key = next((k for k in _KEYS if isinstance(element, dict) and k in element), None)
            if key is None:
                yield from _fields(f"{prefix}[{number}]", element)
                continue
            rest = {k: v for k, v in element.items() if k != key}
            yield from _fields(f"{prefix}[{element[key]}]", rest)
    else:
        yield prefix, _text(value)


def submission_csv(submission: Submission) -> str:
    """The submission as two-column CSV, ``field,value``, one row per field.

    Lists are keyed by what names their elements (``stages[2].within_timescales``,
    ``tenures[lcho].stages[1].received``, ``self_assessment[6.2].status``), other lists by
    position from 1. No cell can run as a formula in a spreadsheet (``render.csv_cell``).
    """
    buffer = io.StringIO()
    writer = _SafeWriter(buffer)
    writer.writerow(["field", "value"])
    writer.writerows([name, value] for name, value in
                     _fields("", submission.model_dump(mode="json")))
    return buffer.getvalue()


def render_submission(submission: Submission, fmt: str) -> str:
    """Render ``submission`` as ``json`` or ``csv``.

    Raises:
        ValueError: For another format.

    """
    if fmt == "json":
        return submission_json(submission)
    if fmt == "csv":
        return submission_csv(submission)
    raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(SUBMISSION_FORMATS)}")


def submission_text(context: Any, period: Any, fmt: str) -> str:
    """The submission for ``period`` in ``fmt``, for the API: built as the annual report is.

    The policy is the one most of the landlord's complaints were handled under (as for
    ``/reports/annual``); the homes are the policy's for the year (per tenure, else
    ``homes_owned``); figures as at the year's end, or today if sooner.

    Raises:
        SubmissionError: No homes figure is known for the year.

    """
    from sqlalchemy import func
    from sqlmodel import select

    from complaints.policies import load_policy
    from complaints.reports.figures import build_report
    from complaints.reports.queries import ReportOptions
    from models.tables import ComplaintRow

    with context.session() as session:
        name = session.exec(select(ComplaintRow.policy_name).group_by(
            ComplaintRow.policy_name).order_by(func.count().desc())).first()
    policy = load_policy(name or "code-2024")
    options = ReportOptions(period, policy, as_of=min(period.end, context.today()))
    report = build_report(context.engine, options, evidence=True)
    return render_submission(build_submission(report, policy), fmt)
