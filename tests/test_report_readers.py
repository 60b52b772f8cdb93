"""The report on PostgreSQL: two connections reading one snapshot (``figures._two_readers``).

Given an engine on PostgreSQL, the report works out the figures that need none of its
passes on a second connection at the same time. Both must read the same moment of the
database, or a case recorded mid-report could count in one figure and not another.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from complaints.db import make_engine, upgrade
from complaints.policies import load_compliant_policy
from complaints.reports import ReportOptions, build_report, parse_year
from complaints.reports.figures import _two_readers
from complaints.synthetic import load_synthetic_year
from tests.pg import create_database, postgres_url  # noqa: F401


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:  # noqa: F811
    """A new PostgreSQL database at head."""
    url = create_database(f"readers_{uuid.uuid4().hex[:8]}")
    upgrade(url)
    made = make_engine(url)
    yield made
    made.dispose()


def test_both_readers_see_the_database_as_the_first_began(engine: Engine) -> None:
    """A row committed after the first reader began is seen by neither reader."""
    with engine.begin() as db:
        db.execute(text("CREATE TABLE probe (n integer)"))
        db.execute(text("INSERT INTO probe VALUES (1)"))
    count = text("SELECT count(*) FROM probe")
    with _two_readers(engine) as (first, second):
        before = first.execute(count).scalar_one()
        with engine.begin() as db:  # another session records something meanwhile
            db.execute(text("INSERT INTO probe VALUES (2)"))
        # The second reader reads for the first time only now: without the imported
        # snapshot it would see the new row.
        seen = (first.execute(count).scalar_one(), second.execute(count).scalar_one())
    with engine.connect() as db:
        now = db.execute(count).scalar_one()
    assert (before, seen, now) == (1, (1, 1), 2)


def test_the_report_from_two_readers_is_the_report_from_one(engine: Engine) -> None:
    """Built from the engine (two readers) and from one connection, the report is the same."""
    policy = load_compliant_policy("connexus")
    period = parse_year("2025/26")
    load_synthetic_year(engine, policy, period, 400, seed=5,
                        as_of=period.end + dt.timedelta(days=90))
    options = ReportOptions(period, policy, as_of=period.end)
    both = build_report(engine, options, evidence=True)
    with engine.connect() as db:
        one = build_report(db, options, evidence=True)
    assert both.model_dump() == one.model_dump()
    assert both.actions.due_in_period > 0 and both.learning is not None
