"""The report's tallies stay equal to a recount of the complaints and responses, on both databases.

The tallies (``models.tallies``) are kept by triggers created by migration 0019. Each test
writes rows the way any writer might (plain SQL inserts, updates and deletes of responses
and complaints, as the recording, the import and resync do through their own code), and
checks that the tallies hold exactly what a GROUP BY over the complaints, and over the
responses joined to their complaints, gives. The report reads the tallies, so the hand-worked report
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
from sqlalchemy import (
    Connection,
    Date,
    Engine,
    case,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    update,
)

from complaints.db import make_engine, upgrade
from complaints.policies import load_compliant_policy
from complaints.reports import ReportOptions, build_report, parse_year
from complaints.reports.queries import (
    COMPLAINTS,
    E2,
    MT,
    PT,
    REMEDIES,
    RESPONSES,
    TO,
    C,
    K,
    L,
    M,
    Q,
    R,
    T,
    X,
)
from models.tables import RemedyPaymentRow
from models.tallies import NO_DATE
from tests.pg import create_database, postgres_url  # noqa: F401

PAYMENTS = RemedyPaymentRow.__table__  # type: ignore[attr-defined]
P = PAYMENTS.c


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


Tallies = dict[str, dict[tuple[Any, ...], tuple[int, ...]]]


def recount(db: Connection) -> Tallies:
    """Every tally worked out afresh from the complaints and responses."""
    joined = (select().select_from(RESPONSES.join(COMPLAINTS, R.reference == C.reference))
              .where(C.state != "voided"))
    within_extension = (R.responded_on <= R.due_base) | (
        (R.extension_within_code == True) & (R.responded_on <= R.due_final))  # noqa: E712

    def grouped(query: Any, keys: tuple[Any, ...], counts: tuple[Any, ...]
                ) -> dict[tuple[Any, ...], tuple[int, ...]]:
        rows = db.execute(query.add_columns(*keys, *counts).group_by(*keys))
        return {tuple(row[:len(keys)]): tuple(int(n) for n in row[len(keys):])
                for row in rows}

    complaints = select().where(C.state != "voided")
    no_date = literal(NO_DATE, Date)
    late: dict[tuple[Any, ...], tuple[int, ...]] = {}
    for stage, acknowledged, due, handler in (
            (1, C.acknowledged_on, C.acknowledgement_due, C.stage1_handler),
            (2, C.stage2_acknowledged_on, C.stage2_acknowledgement_due, C.stage2_handler)):
        late |= grouped(complaints.where(acknowledged > due), (
            C.landlord, acknowledged, literal(stage), func.coalesce(handler, ""), C.category),
            (func.count(),))
    escalated = complaints.where(C.escalation_requested_on.is_not(None))
    return {
        "escalation": grouped(escalated, (
            C.landlord, C.escalation_requested_on, func.coalesce(C.tenure, ""), C.policy_name,
            func.coalesce(C.stage2_acknowledgement_due, no_date),
            func.coalesce(C.stage2_acknowledged_on, no_date),
            _case(C.stage2_acknowledged_on <= C.stage2_acknowledgement_due),
            _case(C.escalation_refused == True),  # noqa: E712
            _case(C.withdrawn_at.is_(None) & C.referred_to_ombudsman_at.is_(None))),
            (func.count(),)),
        "taken_on": grouped(complaints.where(C.taken_on_on.is_not(None)), (
            C.landlord, C.taken_on_on, func.coalesce(C.tenure, ""), C.policy_name),
            (func.count(),)),
        "remedy": _remedies_recounted(db), "payment": _payments_recounted(db),
        "late": late,
        "response": grouped(joined, (
            C.landlord, R.responded_on, R.stage, func.coalesce(C.tenure, ""), C.policy_name,
            R.working_days_taken), (
            func.count(), _flag(R.responded_on <= R.due_base), _flag(within_extension),
            _flag(R.within_code == True), _flag(R.extension_days > 0),  # noqa: E712
            _flag((R.extension_days > 0) & (R.responded_on <= R.due_final)),
            _flag(R.responded_on > R.due_final), _flag(R.decision == "upheld"),
            _flag(R.decision == "partly_upheld"), _flag(R.decision == "not_upheld"),
            _flag(C.escalation_requested_on.is_not(None)))),
        "missed": grouped(joined.where(~within_extension), (
            C.landlord, R.responded_on, R.stage, R.by, C.category), (func.count(),)),
        "complaint": grouped(complaints, (
            C.landlord, C.received_on, C.channel, C.category, func.coalesce(C.tenure, ""),
            C.policy_name), (
            func.count(), _flag((C.excluded == True) | C.taken_on_on.is_not(None)),  # noqa: E712
            _flag(C.withdrawn_at.is_not(None)), _flag(C.escalation_requested_on.is_not(None)),
            _flag(C.imported == True))),  # noqa: E712
        "acknowledgement": grouped(complaints, (
            C.landlord, C.received_on, func.coalesce(C.acknowledgement_due, no_date),
            func.coalesce(C.acknowledged_on, no_date),
            _case(C.acknowledged_on <= C.acknowledgement_due), _case(C.excluded == True),  # noqa: E712
            _case(C.declined_at.is_(None) & C.withdrawn_at.is_(None)
                  & C.referred_to_ombudsman_at.is_(None))), (func.count(),)),
    }


def _hour(instant: dt.datetime) -> dt.datetime:
    return instant.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def _remedies_recounted(db: Connection) -> dict[tuple[Any, ...], tuple[int, ...]]:
    """The remedy tally worked out in Python from the remedies of cases not voided."""
    counts: dict[tuple[Any, ...], list[int]] = {}
    for landlord, offered_at, kind, due_by, amount in db.execute(
            select(C.landlord, M.offered_at, M.kind, M.due_by, M.amount_pence)
            .select_from(REMEDIES.join(COMPLAINTS, M.reference == C.reference))
            .where(C.state != "voided")):
        entry = counts.setdefault((landlord, _hour(offered_at), kind, due_by or NO_DATE),
                                  [0, 0, 0])
        entry[0] += 1
        entry[1] += amount or 0
        entry[2] += due_by is None
    return {key: tuple(n) for key, n in counts.items()}


def _payments_recounted(db: Connection) -> dict[tuple[Any, ...], tuple[int, ...]]:
    """The payment tally worked out in Python: payments of financial remedies."""
    counts: dict[tuple[Any, ...], list[int]] = {}
    for landlord, offered_at, due_by, paid_on, amount in db.execute(
            select(C.landlord, M.offered_at, M.due_by, P.paid_on, P.amount_pence)
            .select_from(PAYMENTS.join(REMEDIES, (P.reference == M.reference)
                                       & (P.stage == M.stage) & (P.position == M.position))
                         .join(COMPLAINTS, M.reference == C.reference))
            .where(C.state != "voided", M.kind == "financial")):
        entry = counts.setdefault((landlord, _hour(offered_at), due_by or NO_DATE, paid_on),
                                  [0, 0, 0, 0])
        entry[0] += 1
        entry[1] += amount
        entry[2] += due_by is None
        entry[3] += due_by is not None and paid_on > due_by
    return {key: tuple(n) for key, n in counts.items()}


def _case(condition: Any) -> Any:
    return case((condition, 1), else_=0)


def tallied(db: Connection) -> Tallies:
    """Every tally as stored, leaving out rows that have come to count nothing."""
    tables = {"response": (T, 6), "missed": (X, 5), "complaint": (K, 6),
              "acknowledgement": (Q, 7), "late": (L, 5), "remedy": (MT, 4), "payment": (PT, 4),
              "escalation": (E2, 9), "taken_on": (TO, 4)}
    stored: Tallies = {}
    for name, (table, keys) in tables.items():
        rows = db.execute(select(*table))
        stored[name] = {tuple(row[:keys]): tuple(int(n) for n in row[keys:])
                        for row in rows if any(row[keys:])}
    return stored


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
           "acknowledged_on": None, "acknowledgement_due": None, "withdrawn_at": None,
           "declined_at": None, "referred_to_ombudsman_at": None, "taken_on_on": None,
           "stage2_acknowledged_on": None, "stage2_acknowledgement_due": None,
           "stage1_handler": None, "stage2_handler": None,
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
    late: dict[str, Any] = {"responded_on": dt.date(2025, 5, 20), "within_code": False,
                            "working_days_taken": 12}
    steps: list[Any] = [
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
    assert sum(v[0] for v in remaining["response"].values()) == 2
    assert remaining["missed"] == {}
    assert sum(v[0] for v in remaining["complaint"].values()) == 2


def test_each_step_of_a_random_run_of_writes_keeps_the_tallies_in_step(engine: Engine) -> None:
    """Three hundred random writes (seeded), checked against a recount every twenty."""
    rng = random.Random(12)
    days = [dt.date(2025, 4, 1) + dt.timedelta(days=n) for n in range(0, 60, 3)]
    refs = [f"R{n:03d}" for n in range(30)]
    with engine.begin() as db:
        db.execute(insert(COMPLAINTS), [
            complaint(r, tenure=rng.choice([None, "lcra", "lcho"]),
                      category=rng.choice(["repairs", "estates"])) for r in refs])
    stored: set[tuple[str, int]] = set()
    stamp = dt.datetime(2025, 6, 3, 10, tzinfo=dt.UTC)
    changes: dict[str, list[Any]] = {
        "state": ["stage1", "stage2", "voided", "closed"], "tenure": [None, "lcra", "lcho"],
        "category": ["repairs", "estates", "lettings"],
        "escalation_requested_on": [None, dt.date(2025, 6, 1), dt.date(2025, 7, 1)],
        "policy_name": ["connexus", "connexus-2026"], "landlord": ["Connexus", "Other"],
        "received_on": days, "channel": ["phone", "email"], "excluded": [True, False],
        "imported": [True, False], "taken_on_on": [None, dt.date(2025, 6, 9)],
        "acknowledgement_due": [None, *days], "acknowledged_on": [None, *days],
        "withdrawn_at": [None, stamp], "declined_at": [None, stamp],
        "referred_to_ombudsman_at": [None, stamp, stamp + dt.timedelta(days=1)],
        "stage2_acknowledgement_due": [None, *days], "stage2_acknowledged_on": [None, *days],
        "stage1_handler": [None, "h1", "h2"], "stage2_handler": [None, "h1", "h3"],
        "escalation_refused": [True, False]}
    for n in range(300):
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
            elif roll > 0.97:  # a complaint deleted with its responses, and lodged again
                db.execute(delete(COMPLAINTS).where(C.reference == ref))
                db.execute(insert(COMPLAINTS), [complaint(ref, received_on=rng.choice(days))])
                stored -= {(ref, 1), (ref, 2)}
            else:  # one column of the complaint at a time, as each moves the counts
                column, values = rng.choice(list(changes.items()))
                db.execute(update(COMPLAINTS).where(C.reference == ref)
                           .values({column: rng.choice(values)}))
        if n % 20 == 19:
            assert_in_step(engine)
    with engine.connect() as db:
        assert tallied(db)["response"], "the run left responses to count"


def remedy(reference: str, stage: int = 1, position: int = 1, **values: Any) -> dict[str, Any]:
    """A remedy row's values: a financial one, offered at 10:30 on 15 May 2025."""
    row = {"reference": reference, "stage": stage, "position": position,
           "kind": "financial", "description": "Compensation.", "amount_pence": 5000,
           "due_by": dt.date(2025, 6, 12), "decision": "upheld", "offered_by": "h1",
           "offered_at": dt.datetime(2025, 5, 15, 10, 30, tzinfo=dt.UTC)}
    return row | values


def test_each_step_of_a_random_run_of_remedy_writes_keeps_the_tallies_in_step(
        engine: Engine) -> None:
    """Remedies and payments written, changed and deleted at random (seeded) stay counted."""
    rng = random.Random(7)
    refs = [f"M{n:02d}" for n in range(12)]
    instants = [dt.datetime(2025, 3, 31, 22, 59, tzinfo=dt.UTC),
                dt.datetime(2025, 3, 31, 23, 0, tzinfo=dt.UTC),
                dt.datetime(2025, 5, 15, 10, 30, tzinfo=dt.UTC),
                dt.datetime(2025, 5, 15, 10, 59, 59, tzinfo=dt.UTC)]
    dates = [None, dt.date(2025, 6, 1), dt.date(2025, 6, 12)]
    with engine.begin() as db:
        db.execute(insert(COMPLAINTS), [complaint(r) for r in refs])
    remedies: set[tuple[str, int, int]] = set()
    remedy_changes: list[tuple[str, list[Any]]] = [
        ("due_by", dates), ("offered_at", instants), ("kind", ["financial", "action"]),
        ("amount_pence", [None, 100])]
    seq = 0
    for n in range(300):
        ref, stage, position = rng.choice(refs), rng.choice([1, 2]), rng.choice([1, 2])
        key = (ref, stage, position)
        where = (M.reference == ref, M.stage == stage, M.position == position)
        with engine.begin() as db:
            roll = rng.random()
            if key not in remedies and roll < 0.35:
                db.execute(insert(REMEDIES), [remedy(
                    ref, stage, position, kind=rng.choice(["financial", "apology"]),
                    amount_pence=rng.choice([None, 2500]), due_by=rng.choice(dates),
                    offered_at=rng.choice(instants))])
                remedies.add(key)
            elif roll < 0.6:  # a payment, whether or not the remedy is there
                seq += 1
                db.execute(insert(PAYMENTS), [{
                    "reference": ref, "seq": seq, "stage": stage, "position": position,
                    "paid_on": rng.choice(dates[1:]), "amount_pence": 2500}])
            elif key in remedies and roll < 0.75:
                column, values = rng.choice(remedy_changes)
                db.execute(update(REMEDIES).where(*where).values({column: rng.choice(values)}))
            elif key in remedies and roll < 0.82:
                db.execute(delete(REMEDIES).where(*where))
                remedies.discard(key)
            elif roll < 0.88:
                db.execute(update(PAYMENTS).where(P.reference == ref).values(
                    paid_on=rng.choice(dates[1:]), position=rng.choice([1, 2])))
            elif roll < 0.92:
                db.execute(delete(PAYMENTS).where(P.reference == ref, P.stage == stage))
            elif roll < 0.96:  # deleted (its remedies stay, no longer counted), lodged again
                db.execute(delete(COMPLAINTS).where(C.reference == ref))
                if rng.random() < 0.7:
                    db.execute(insert(COMPLAINTS), [complaint(ref)])
            else:
                db.execute(update(COMPLAINTS).where(C.reference == ref).values(
                    rng.choice([{"state": "voided"}, {"state": "closed"},
                                {"landlord": "Other"}, {"landlord": "Connexus"}])))
        if n % 20 == 19:
            assert_in_step(engine)
    with engine.connect() as db:
        stored = tallied(db)
    assert stored["remedy"] and stored["payment"], "the run left remedies and payments"


def test_the_migration_counts_the_rows_already_stored(tmp_path: Path) -> None:
    """Upgrading a database with complaints and responses from 0018 fills the tallies."""
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
        stored = tallied(db)
        assert stored == recount(db)
        triggers = set(db.execute(text("SELECT name FROM sqlite_master "
                                       "WHERE type = 'trigger'")).scalars())
    made.dispose()
    assert sum(v[0] for v in stored["response"].values()) == 2  # not the voided case's
    assert list(stored["missed"].values()) == [(1,)]
    assert sum(v[0] for v in stored["complaint"].values()) == 2
    assert triggers == TRIGGERS


#: The triggers migration 0019 creates: a later migration that rebuilds ``complaints`` or
#: ``responses`` on SQLite (which drops them) must create them again.
TRIGGERS = {"response_tally_insert", "response_tally_delete", "response_tally_update",
            "complaint_tally_insert", "complaint_tally_delete", "complaint_tally_update",
            "complaint_children_update", "complaint_children_delete", "remedy_tally_insert",
            "remedy_tally_delete", "remedy_tally_update", "payment_tally_insert",
            "payment_tally_delete", "payment_tally_update"}


def test_every_trigger_is_there_at_head(engine: Engine) -> None:
    """A database at head has every tally trigger, on both backends."""
    query = ("SELECT name FROM sqlite_master WHERE type = 'trigger'"
             if engine.dialect.name == "sqlite" else
             "SELECT DISTINCT trigger_name FROM information_schema.triggers")
    with engine.connect() as db:
        assert set(db.execute(text(query)).scalars()) == TRIGGERS


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


def test_acknowledgements_are_counted_as_at_the_as_of_date(engine: Engine) -> None:
    """Acknowledged by the as-of date, within the limit, and overdue, move with that date."""
    with engine.begin() as db:
        db.execute(insert(COMPLAINTS), [
            complaint("A", acknowledgement_due=dt.date(2025, 5, 8),
                      acknowledged_on=dt.date(2025, 5, 7)),
            complaint("B", acknowledgement_due=dt.date(2025, 5, 8),
                      acknowledged_on=dt.date(2025, 5, 12)),
            complaint("C", acknowledgement_due=dt.date(2025, 5, 8)),
            complaint("D", acknowledgement_due=dt.date(2025, 5, 8),
                      withdrawn_at=dt.datetime(2025, 5, 2, tzinfo=dt.UTC))])
    policy, period = load_compliant_policy("connexus"), parse_year("2025/26")

    def stage1(as_of: dt.date) -> tuple[int, int, int]:
        options = ReportOptions(period, policy, homes=1000, as_of=as_of)
        ack = build_report(engine, options).acknowledgements[0]
        return ack.acknowledged, ack.within_limit, ack.unacknowledged_overdue

    # On the 9th: A on time, B and C overdue (D withdrawn); on the 12th B is late, C overdue.
    assert stage1(dt.date(2025, 5, 9)) == (1, 1, 2)
    assert stage1(dt.date(2025, 5, 12)) == (2, 1, 1)
