"""The report's response tallies stay equal to a recount of the responses, on both databases.

The tallies (``models.tallies``) are kept by triggers created by migration 0019. Each test
writes rows the way any writer might (plain SQL inserts, updates and deletes of responses
and complaints, as the recording, the import and resync do through their own code), and
checks after each step that the tallies hold exactly what a GROUP BY over the responses
joined to their complaints gives. The report reads the tallies, so the hand-worked report
tests (``test_reports*.py``) check the figures through them as well.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, case, delete, func, insert, select, text, update

from complaints.db import make_engine, upgrade
from complaints.policies import load_compliant_policy
from complaints.reports import ReportOptions, build_report, parse_year
from complaints.reports.queries import COMPLAINTS, RESPONSES, C, R, T, X
from tests.pg import create_database, postgres_url  # noqa: F401

TALLY_COUNTS = ("responses", "within_base", "within_extension", "within_code", "extended",
                "extended_within_new_date", "late_final", "upheld", "partly_upheld",
                "not_upheld", "escalated")


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A new database at head on each backend."""
    if request.param == "postgresql":
        request.getfixturevalue("postgres_url")
        url = create_database(f"tally_{uuid.uuid4().hex[:8]}")
    else:
        url = f"sqlite:///{(tmp_path / 'tally.db').as_posix()}"
    upgrade(url)
    made = make_engine(url)
    yield made
    made.dispose()


def _flag(condition: Any) -> Any:
    return func.sum(case((condition, 1), else_=0))


def recount(db: Connection) -> tuple[dict[tuple[Any, ...], tuple[int, ...]],
                                      dict[tuple[Any, ...], int]]:
    """Both tallies worked out afresh from the responses and their complaints."""
    joined = (select().select_from(RESPONSES.join(COMPLAINTS, R.reference == C.reference))
              .where(C.state != "voided"))
    within_extension = (R.responded_on <= R.due_base) | (
        (R.extension_within_code == True) & (R.responded_on <= R.due_final))  # noqa: E712
    keys = (C.landlord, R.responded_on, R.stage, func.coalesce(C.tenure, ""), C.policy_name,
            R.working_days_taken)
    counts = (func.count(), _flag(R.responded_on <= R.due_base), _flag(within_extension),
              _flag(R.within_code == True), _flag(R.extension_days > 0),  # noqa: E712
              _flag((R.extension_days > 0) & (R.responded_on <= R.due_final)),
              _flag(R.responded_on > R.due_final), _flag(R.decision == "upheld"),
              _flag(R.decision == "partly_upheld"), _flag(R.decision == "not_upheld"),
              _flag(C.escalation_requested_on.is_not(None)))
    tally = {tuple(row[:6]): tuple(int(n) for n in row[6:])
             for row in db.execute(joined.add_columns(*keys, *counts).group_by(*keys))}
    missed_keys = (C.landlord, R.responded_on, R.stage, R.by, C.category)
    missed = {tuple(row[:5]): int(row[5])
              for row in db.execute(joined.add_columns(*missed_keys, func.count())
                                    .where(~within_extension).group_by(*missed_keys))}
    return tally, missed


def tallied(db: Connection) -> tuple[dict[tuple[Any, ...], tuple[int, ...]],
                                      dict[tuple[Any, ...], int]]:
    """Both tallies as stored, leaving out rows that have come to count nothing."""
    tally_keys = (T.landlord, T.responded_on, T.stage, T.tenure, T.policy_name, T.working_days)
    tally = {tuple(row[:6]): tuple(int(n) for n in row[6:])
             for row in db.execute(select(*tally_keys, *(T[c] for c in TALLY_COUNTS)))}
    missed = {tuple(row[:5]): int(row[5])
              for row in db.execute(select(X.landlord, X.responded_on, X.stage, X.by,
                                           X.category, X.missed))}
    return ({k: v for k, v in tally.items() if any(v)},
            {k: n for k, n in missed.items() if n})


def assert_in_step(engine: Engine) -> None:
    """The tallies equal the recount of the responses."""
    with engine.connect() as db:
        expected, got = recount(db), tallied(db)
    assert got == expected


def complaint(reference: str, **values: Any) -> dict[str, Any]:
    """A complaint row's values (fictional; only what the tallies read matters)."""
    row = {"reference": reference, "landlord": "Connexus", "policy_name": "connexus",
           "channel": "phone", "category": "repairs", "received_on": dt.date(2025, 5, 1),
           "description": "A leak.", "outcomes_sought": "", "state": "stage1", "stage": 1,
           "overdue": False, "excluded": False, "escalation_refused": False,
           "imported": False, "tenure": None, "escalation_requested_on": None,
           "created_at": dt.datetime(2025, 5, 1, tzinfo=dt.UTC),
           "updated_at": dt.datetime(2025, 5, 1, tzinfo=dt.UTC)}
    return row | values


def response(reference: str, stage: int = 1, seq: int = 1, **values: Any) -> dict[str, Any]:
    """A response row's values: issued on time unless ``values`` say otherwise."""
    day = values.pop("responded_on", dt.date(2025, 5, 15))
    row = {"reference": reference, "stage": stage, "seq": seq, "decision": "upheld",
           "responded_at": dt.datetime.combine(day, dt.time(11), dt.UTC),
           "responded_on": day, "by": "handler-1", "clock_start": dt.date(2025, 5, 2),
           "due_base": dt.date(2025, 5, 16), "due_final": dt.date(2025, 5, 16),
           "extension_days": 0, "extension_within_code": True, "working_days_taken": 9,
           "within_code": True}
    return row | values


def test_every_kind_of_write_keeps_the_tallies_in_step(engine: Engine) -> None:
    """Inserts, changes and deletes of responses and complaints each keep both tallies right."""
    late = {"responded_on": dt.date(2025, 5, 20), "within_code": False,
            "working_days_taken": 12}
    steps: list[tuple[str, Any]] = [
        ("complaints", [complaint("A"), complaint("B", tenure="lcra"),
                        complaint("C", tenure="lcho", category="estates")]),
        ("responses", [response("A"), response("B", **late), response("C", decision="not_upheld")]),
        ("responses", [response("A", stage=2, extension_days=5,
                                due_final=dt.date(2025, 5, 23), responded_on=dt.date(2025, 5, 22),
                                within_code=None)]),
        update(RESPONSES).where(R.reference == "B").values(responded_on=dt.date(2025, 5, 16),
                                                          within_code=True),
        update(RESPONSES).where(R.reference == "C").values(by="handler-2",
                                                          extension_within_code=False,
                                                          responded_on=dt.date(2025, 6, 1)),
        update(COMPLAINTS).where(C.reference == "A").values(tenure="lcho"),
        update(COMPLAINTS).where(C.reference == "A").values(
            escalation_requested_on=dt.date(2025, 6, 2)),
        update(COMPLAINTS).where(C.reference == "C").values(category="lettings"),
        update(COMPLAINTS).where(C.reference == "C").values(policy_name="connexus-2026"),
        update(COMPLAINTS).where(C.reference == "B").values(state="voided"),
        update(COMPLAINTS).where(C.reference == "A").values(state="stage2", overdue=True),
        update(COMPLAINTS).where(C.reference == "B").values(state="closed"),
        update(COMPLAINTS).where(C.reference == "C").values(landlord="Other Homes"),
        delete(RESPONSES).where(R.reference == "A", R.stage == 2),
        delete(COMPLAINTS).where(C.reference == "C"),
    ]
    with engine.begin() as db:
        for step in steps:
            if isinstance(step, tuple):
                db.execute(insert(COMPLAINTS if step[0] == "complaints" else RESPONSES), step[1])
            else:
                db.execute(step)
    assert_in_step(engine)
    with engine.connect() as db:
        remaining = tallied(db)
    # A and B are left, each with its stage 1 response; B's moved to the 16th, on time.
    assert sum(v[0] for v in remaining[0].values()) == 2
    assert remaining[1] == {}


def test_each_step_of_a_random_run_of_writes_keeps_the_tallies_in_step(engine: Engine) -> None:
    """Two hundred random writes (seeded), checked against a recount every twenty."""
    rng = random.Random(12)
    days = [dt.date(2025, 4, 1) + dt.timedelta(days=n) for n in range(0, 60, 3)]
    refs = [f"R{n:03d}" for n in range(30)]
    with engine.begin() as db:
        db.execute(insert(COMPLAINTS), [
            complaint(r, tenure=rng.choice([None, "lcra", "lcho"]),
                      category=rng.choice(["repairs", "estates"])) for r in refs])
    stored: set[tuple[str, int]] = set()
    changes: dict[str, list[Any]] = {
        "state": ["stage1", "stage2", "voided", "closed"], "tenure": [None, "lcra", "lcho"],
        "category": ["repairs", "estates", "lettings"],
        "escalation_requested_on": [None, dt.date(2025, 6, 1), dt.date(2025, 7, 1)],
        "policy_name": ["connexus", "connexus-2026"], "landlord": ["Connexus", "Other"]}
    for n in range(200):
        ref, stage = rng.choice(refs), rng.choice([1, 2])
        with engine.begin() as db:
            roll = rng.random()
            if (ref, stage) not in stored and roll < 0.5:
                day = rng.choice(days)
                db.execute(insert(RESPONSES), [response(
                    ref, stage, responded_on=day, due_base=rng.choice(days),
                    due_final=rng.choice(days), extension_days=rng.choice([0, 0, 5]),
                    extension_within_code=rng.random() < 0.8,
                    within_code=rng.choice([True, False, None]),
                    working_days_taken=rng.randint(0, 25),
                    decision=rng.choice(["upheld", "partly_upheld", "not_upheld"]),
                    by=rng.choice(["h1", "h2", "h3"]))])
                stored.add((ref, stage))
            elif (ref, stage) in stored and roll < 0.7:
                db.execute(update(RESPONSES).where(R.reference == ref, R.stage == stage)
                           .values(responded_on=rng.choice(days),
                                   within_code=rng.choice([True, False]),
                                   by=rng.choice(["h1", "h2"])))
            elif (ref, stage) in stored and roll < 0.8:
                db.execute(delete(RESPONSES).where(R.reference == ref, R.stage == stage))
                stored.discard((ref, stage))
            else:  # one column of the complaint at a time, as each moves the counts
                column, values = rng.choice(list(changes.items()))
                db.execute(update(COMPLAINTS).where(C.reference == ref)
                           .values({column: rng.choice(values)}))
        if n % 20 == 19:
            assert_in_step(engine)
    with engine.connect() as db:
        assert tallied(db)[0], "the run left responses to count"


def test_the_migration_counts_the_responses_already_stored(tmp_path: Path) -> None:
    """Upgrading a database with responses from 0018 fills the tallies from them."""
    url = f"sqlite:///{(tmp_path / 'old.db').as_posix()}"
    upgrade(url, "0018")
    made = make_engine(url)
    with made.begin() as db:
        db.execute(insert(COMPLAINTS), [complaint("A", tenure="lcra"), complaint("B"),
                                        complaint("V", state="voided")])
        db.execute(insert(RESPONSES), [response("A"), response("B", responded_on=dt.date(
            2025, 5, 30), within_code=False), response("V")])
    upgrade(url)
    with made.connect() as db:
        tally, missed = tallied(db)
        assert (tally, missed) == recount(db)
        triggers = db.execute(text("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' "
                                   "AND name LIKE 'response_tally%'")).scalar_one()
    made.dispose()
    assert sum(v[0] for v in tally.values()) == 2  # the voided case's response is not
    assert list(missed.values()) == [1]
    assert triggers == 5


def test_escalated_responses_count_only_escalations_by_the_as_of_date(engine: Engine) -> None:
    """A stage 1 response whose complaint escalated after the as-of date is resolved there."""
    with engine.begin() as db:
        db.execute(insert(COMPLAINTS), [complaint("A"), complaint(
            "B", escalation_requested_on=dt.date(2025, 9, 1))])
        db.execute(insert(RESPONSES), [response("A"), response("B")])
    policy, period = load_compliant_policy("connexus"), parse_year("2025/26")

    def escalated(as_of: dt.date) -> int:
        options = ReportOptions(period, policy, homes=1000, as_of=as_of)
        return build_report(engine, options).resolution.escalated_after_stage1

    assert (escalated(dt.date(2025, 8, 31)), escalated(dt.date(2025, 9, 1))) == (0, 1)
