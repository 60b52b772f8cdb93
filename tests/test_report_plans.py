"""The report's lists on SQLite read through the indexes made for them (revision 0020).

SQLite's planner has no statistics of a column's values, so which index it reads through
depends on how a query is written (``queries.Likely``); a change of wording could send a
list back to sorting the whole year. PostgreSQL's planner chooses by its statistics, and
on a small test database rightly prefers to scan: its choices are measured by
``benchmarks/bench_reports.py`` on a large year instead.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event

from complaints.db import make_engine, upgrade
from complaints.policies import load_compliant_policy
from complaints.reports import ReportOptions, build_report, parse_year
from complaints.synthetic import load_synthetic_year


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Each statement of a report over a small synthetic year, with SQLite's plan for it."""
    path = tmp_path_factory.mktemp("plans") / "complaints.db"
    url = f"sqlite:///{path.as_posix()}"
    upgrade(url)
    engine: Engine = make_engine(url)
    policy = load_compliant_policy("connexus")
    period = parse_year("2025/26")
    load_synthetic_year(engine, policy, period, 600, seed=3,
                        as_of=period.end + dt.timedelta(days=90))
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    build_report(engine, ReportOptions(period, policy, as_of=period.end))
    engine.dispose()
    with sqlite3.connect(path) as db:
        yield {statement: "\n".join(str(row[-1]) for row in db.execute(
            "EXPLAIN QUERY PLAN " + statement, parameters)) for statement, parameters in statements}


def _plan(plans: dict[str, str], *fragments: str) -> str:
    found = [plan for statement, plan in plans.items() if all(f in statement for f in fragments)]
    assert len(found) == 1, (fragments, len(found))
    return found[0]


def test_unpaid_remedies_are_listed_in_the_order_of_their_date_promised(
        plans: dict[str, str]) -> None:
    """The unpaid remedies are read by the date promised, with no sort of the year's remedies."""
    plan = _plan(plans, "FROM remedies", "remedies.amount_pence", "LIMIT")
    assert "ix_remedies_financial_due" in plan and "TEMP B-TREE" not in plan, plan


def test_responses_offering_money_are_counted_in_index_order(plans: dict[str, str]) -> None:
    """The responses offering money are counted as the index gives them, with no sort."""
    plan = _plan(plans, "SELECT DISTINCT remedies.offered_at")
    assert "ix_remedies_financial_offered" in plan and "TEMP B-TREE" not in plan, plan


def test_overdue_actions_are_found_through_the_open_ones(plans: dict[str, str]) -> None:
    """The overdue actions are counted and listed through the index of completion dates."""
    for fragments in (("SELECT count(*)", "FROM actions", "completed_on IS NULL"),
                      ("SELECT actions.reference", "LIMIT")):
        plan = _plan(plans, *fragments)
        assert "ix_actions_completed_on_due_by" in plan, plan
