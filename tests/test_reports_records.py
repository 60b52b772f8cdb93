"""What ``record_snapshot`` writes for the reports, and the 0003 migration's backfill."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from alembic import command
from sqlalchemy import text
from sqlmodel import Session, col, select
from structlog.testing import capture_logs

from activities.records import RecordActivities, policy_and_calendar
from complaints.db import alembic_config, make_engine, session_factory, upgrade
from complaints.policies import load_compliant_policy
from complaints.reports import Period, ReportOptions, build_report
from complaints.workdays import LONDON, end_of_day_utc
from models.actions import AcknowledgeEscalation, Action, RequestEscalation
from models.case import (
    CaseFile,
    Channel,
    ComplaintDefinition,
    Decision,
    DecisionRecord,
    ExclusionGround,
    ExtensionRecord,
    Party,
    PointFinding,
    ResponseRecord,
)
from models.events import ActionResult
from models.messages import (
    CaseSnapshot,
    CaseView,
    Deadline,
    DeadlineKind,
    DeadlineStatus,
    Intake,
    RecordIntakeInput,
)
from models.tables import ActionRow, ComplaintRow, ExtensionRow, RefusalRow, ResponseRow
from tests.cases import DEFINITION as FULL_DEFINITION
from tests.cases import STAGE1_HANDLER, STAGE2_HANDLER, path_to, respond_to
from tests.conftest import Stack, make_intake
from tests.pg import create_database, postgres_url  # noqa: F401
from workflows.complaint import ComplaintState, london_date

D = dt.date
REFERENCE = "CMP-2026-000777"
DEFINITION = ComplaintDefinition(summary="S", points=("P",), outcomes_sought=("O",))


def at(day: dt.date, hour: int = 11) -> dt.datetime:
    """``hour``:00 London time on ``day`` as an aware UTC instant."""
    return dt.datetime.combine(day, dt.time(hour), tzinfo=LONDON).astimezone(dt.UTC)


def deadline(key: str, kind: DeadlineKind, start: dt.date, due: dt.date,
             status: DeadlineStatus, met: dt.date | None = None) -> Deadline:
    """A deadline in the given state."""
    return Deadline(key=key, kind=kind, stage=1, label=key, provision="x", start=start,
                    due=due, ends_at=end_of_day_utc(due), escalate_at=end_of_day_utc(due),
                    status=status, met_at=at(met) if met else None)


def response(day: dt.date, stage: int = 1) -> ResponseRecord:
    """A not-upheld response issued on ``day``."""
    return ResponseRecord(stage=stage, decision=Decision.NOT_UPHELD,
                          findings=(PointFinding(point="P", finding="F", reason="R"),),
                          remedies=(), by="h-1", at=at(day))


def snap(case: CaseFile, deadlines: tuple[Deadline, ...], updated: dt.datetime,
         policy: str = "connexus") -> CaseSnapshot:
    """A snapshot of ``case``."""
    return CaseSnapshot(reference=REFERENCE, landlord="Connexus", policy_name=policy,
                        state=case.state, stage=case.stage, handler_id="h-1",
                        next_deadline=None, overdue=False, updated_at=updated, case=case,
                        deadlines=deadlines)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[Callable[[], Session]]:
    """A migrated SQLite database holding the intake of one complaint."""
    url = f"sqlite:///{(tmp_path / 'r.db').as_posix()}"
    upgrade(url)
    engine = make_engine(url)
    factory = session_factory(engine)
    RecordActivities(factory).record_intake(RecordIntakeInput(landlord="Connexus", intake=Intake(
        reference=REFERENCE, policy_name="connexus", channel=Channel.PHONE,
        received_on=D(2025, 12, 16), parties=(Party(name="R"),), description="C")))
    yield factory
    engine.dispose()


def _case(**changes: object) -> CaseFile:
    base: dict[str, object] = {
        "reference": REFERENCE, "policy_name": "connexus", "state": "stage1_responded",
        "received_on": D(2025, 12, 16), "stage1_handler": "h-1",
        "stage1_definition": DEFINITION}
    base.update(changes)
    return CaseFile.model_validate(base)


# Received Tue 16 Dec 2025: acknowledgement due 17,18,19,22,23 -> 23 Dec; acked Thu 18 Dec.
ACK = deadline("stage1_acknowledgement#1", DeadlineKind.STAGE1_ACKNOWLEDGEMENT,
               D(2025, 12, 16), D(2025, 12, 23), DeadlineStatus.MET, D(2025, 12, 18))


def test_response_without_deadlines_is_measured_from_the_policy(
        sessions: Callable[[], Session]) -> None:
    """No response deadline on record: 10 WD from the acknowledgement over Christmas."""
    # Acknowledged Thu 18 Dec 2025. 10 WD: 19,22,23,24, (25 Christmas, 26 Boxing Day),
    # 29,30,31, (1 Jan), 2,5,6 Jan -> Tue 6 Jan 2026. A 5 WD extension: 7,8,9,12,13 ->
    # 13 Jan. Answered 6 Jan: 10 WD taken.
    case = _case(responses=[response(D(2026, 1, 6))],
                 extensions=[ExtensionRecord(stage=1, working_days=5, reason="Survey",
                                             good_reason=None, by="h-1",
                                             at=at(D(2026, 1, 2)))])
    RecordActivities(sessions).record_snapshot(snap(case, (ACK,), at(D(2026, 1, 6), 17)))
    with sessions() as session:
        row = session.exec(select(ResponseRow)).one()
        complaint = session.get(ComplaintRow, REFERENCE)
    assert complaint is not None and complaint.acknowledged_on == D(2025, 12, 18)
    assert (row.clock_start, row.due_base, row.due_final, row.extension_days,
            row.working_days_taken, row.responded_on) == (
        D(2025, 12, 18), D(2026, 1, 6), D(2026, 1, 13), 5, 10, D(2026, 1, 6))


def test_an_extension_after_a_breach_keeps_the_first_due_date_as_base(
        sessions: Callable[[], Session]) -> None:
    """A breached deadline, then an extension: the chain's base is still the first one."""
    first = deadline("stage1_response#1", DeadlineKind.STAGE1_RESPONSE, D(2025, 12, 18),
                     D(2026, 1, 6), DeadlineStatus.BREACHED)
    second = deadline("stage1_response#2", DeadlineKind.STAGE1_RESPONSE, D(2026, 1, 6),
                      D(2026, 1, 13), DeadlineStatus.MET, D(2026, 1, 12))
    case = _case(responses=[response(D(2026, 1, 12))])
    RecordActivities(sessions).record_snapshot(snap(case, (ACK, first, second),
                                                    at(D(2026, 1, 12), 17)))
    with sessions() as session:
        row = session.exec(select(ResponseRow)).one()
    # 6 Jan to 13 Jan is 5 WD of extension; 18 Dec to 12 Jan is 10 + 4 (7,8,9,12) = 14 WD.
    assert (row.due_base, row.due_final, row.extension_days, row.working_days_taken) == (
        D(2026, 1, 6), D(2026, 1, 13), 5, 14)


@pytest.mark.parametrize(("good_reason", "within"), [("Expert evidence needed", True),
                                                     (None, False)])
def test_an_extension_past_the_cap_is_within_the_code_only_with_good_reason(
        sessions: Callable[[], Session], good_reason: str | None, within: bool) -> None:
    """15 WD at stage 1 (cap 10) keeps within the Code only with a good reason (6.4)."""
    case = _case(responses=[response(D(2026, 1, 20))],
                 extensions=[ExtensionRecord(stage=1, working_days=15, reason="Complex",
                                             good_reason=good_reason, by="h-1",
                                             at=at(D(2026, 1, 2)))])
    RecordActivities(sessions).record_snapshot(snap(case, (ACK,), at(D(2026, 1, 20), 17)))
    with sessions() as session:
        row = session.exec(select(ResponseRow)).one()
    assert (row.extension_days, row.extension_within_code) == (15, within)


def test_snapshots_upsert_responses_and_keep_refusals(sessions: Callable[[], Session]) -> None:
    """A later snapshot updates rows in place; a refusal overturned by an order stays."""
    records = RecordActivities(sessions)
    refused = DecisionRecord(grounds=(ExclusionGround.PREVIOUSLY_CONSIDERED,),
                             explanation="Considered", by="h-1", at=at(D(2026, 2, 3)))
    first = _case(state="closed", responses=[response(D(2026, 1, 6))],
                  escalation_requested_on=D(2026, 2, 1), escalation_refused=refused)
    records.record_snapshot(snap(first, (ACK,), at(D(2026, 2, 3), 17)))
    records.record_snapshot(snap(first, (ACK,), at(D(2026, 2, 3), 17)))
    # The Ombudsman orders the escalation (5.11): the refusal is cleared on the case file.
    second = first.model_copy(update={"state": "stage2_requested", "escalation_refused": None,
                                      "referred_to_ombudsman_at": at(D(2026, 3, 1))})
    records.record_snapshot(snap(second, (ACK,), at(D(2026, 3, 2), 17)))
    with sessions() as session:
        responses = session.exec(select(ResponseRow)).all()
        refusals = session.exec(select(RefusalRow)).all()
        complaint = session.get(ComplaintRow, REFERENCE)
    assert len(responses) == 1
    assert [(r.kind, r.ground, r.decided_on) for r in refusals] == [
        ("escalation", "previously_considered", D(2026, 2, 3))]
    assert complaint is not None
    assert (complaint.escalation_refused, complaint.referred_to_ombudsman_at) == (
        False, at(D(2026, 3, 1)))


def test_a_complaint_taken_on_after_a_decline_is_not_excluded(
        sessions: Callable[[], Session]) -> None:
    """Declined, then taken on by the Ombudsman's order and acknowledged: it counts (2.4)."""
    declined = DecisionRecord(grounds=(ExclusionGround.OLDER_THAN_12_MONTHS,),
                              explanation="Old", by="h-1", at=at(D(2025, 12, 17)))
    met_by_decline = deadline("stage1_acknowledgement#1",
                              DeadlineKind.STAGE1_ACKNOWLEDGEMENT, D(2025, 12, 16),
                              D(2025, 12, 23), DeadlineStatus.MET, D(2025, 12, 17))
    records = RecordActivities(sessions)
    before = _case(state="declined", stage1_handler=None, stage1_definition=None,
                   declined=declined)
    records.record_snapshot(snap(before, (met_by_decline,), at(D(2025, 12, 17), 17)))
    with sessions() as session:
        complaint = session.get(ComplaintRow, REFERENCE)
        assert complaint is not None
        excluded_then = (complaint.excluded, complaint.acknowledged_on)
    # Taken on 2 Feb 2026 (a Monday): acknowledgement due 3,4,5,6,9 -> 9 Feb, met 3 Feb.
    retaken = deadline("stage1_acknowledgement#2", DeadlineKind.STAGE1_ACKNOWLEDGEMENT,
                       D(2026, 2, 2), D(2026, 2, 9), DeadlineStatus.MET, D(2026, 2, 3))
    after = _case(state="stage1_investigating", declined=declined)
    records.record_snapshot(snap(after, (met_by_decline, retaken), at(D(2026, 2, 3), 17)))
    with sessions() as session:
        complaint = session.get(ComplaintRow, REFERENCE)
        refusals = session.exec(select(RefusalRow)).all()
    assert excluded_then == (True, None)
    assert complaint is not None
    assert (complaint.excluded, complaint.acknowledged_on, complaint.acknowledgement_due) == (
        False, D(2026, 2, 3), D(2026, 2, 9))
    assert [r.kind for r in refusals] == ["complaint"]


def test_an_unknown_policy_is_measured_with_the_codes_limits(
        sessions: Callable[[], Session]) -> None:
    """A policy that no longer loads falls back to code-2024, with a warning logged."""
    policy_and_calendar.cache_clear()
    # Acknowledged Fri 18 Dec 2026, when Connexus closes 29-31 Dec and code-2024 does not.
    ack = deadline("stage1_acknowledgement#1", DeadlineKind.STAGE1_ACKNOWLEDGEMENT,
                   D(2026, 12, 16), D(2026, 12, 23), DeadlineStatus.MET, D(2026, 12, 18))
    case = _case(policy_name="gone", responses=[response(D(2027, 1, 11))])
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        RecordActivities(sessions).record_snapshot(
            snap(case, (ack,), at(D(2027, 1, 11), 17), policy="gone"))
    with sessions() as session:
        row = session.exec(select(ResponseRow)).one()
    # code-2024: 10 WD from 18 Dec = 21,22,23,24,(25, 28 Boxing Day observed),29,30,31,
    # (1 Jan),4,5,6 -> 6 Jan 2027 (Connexus, closed 29-31 Dec, would give 11 Jan).
    assert row.due_base == D(2027, 1, 6)
    assert [e["policy"] for e in logs if e["event"] == "policy_unavailable_using_code"] == [
        "gone"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migration_0003_backfills_existing_rows(backend: str, tmp_path: Path,
                                                request: pytest.FixtureRequest) -> None:
    """Upgrading from 0002 numbers extensions per stage and dates completed actions."""
    if backend == "sqlite":
        url = f"sqlite:///{(tmp_path / 'm.db').as_posix()}"
    else:
        request.getfixturevalue("postgres_url")
        url = create_database(f"mig_{uuid.uuid4().hex[:8]}")
    command.upgrade(alembic_config(url), "0002")
    engine = make_engine(url)
    with engine.begin() as db:
        for seq, stage in ((1, 1), (2, 1), (3, 2)):
            db.execute(text(
                "INSERT INTO extensions (reference, extension_seq, stage, working_days, "
                "reason, granted_by, granted_at) VALUES (:r, :s, :st, 5, 'x', 'h', :at)"),
                {"r": REFERENCE, "s": seq, "st": stage, "at": at(D(2026, 6, 1))})
        # 23:30 UTC on 30 June is 00:30 on 1 July in London (summer time).
        db.execute(text(
            "INSERT INTO actions (reference, action_id, stage, description, due_by, "
            "completed_at) VALUES (:r, 'A1', 1, 'x', :due, :done), "
            "(:r, 'A2', 1, 'y', :due, NULL)"),
            {"r": REFERENCE, "due": D(2026, 6, 30),
             "done": dt.datetime(2026, 6, 30, 23, 30, tzinfo=dt.UTC)})
    upgrade(url)
    with Session(engine) as session:
        numbered = [(e.extension_seq, e.stage, e.stage_seq)
                    for e in session.exec(select(ExtensionRow).order_by(col(ExtensionRow.id)))]
        done = {a.action_id: a.completed_on for a in session.exec(select(ActionRow))}
    engine.dispose()
    assert numbered == [(1, 1, 1), (2, 1, 2), (3, 2, 1)]
    assert done == {"A1": D(2026, 7, 1), "A2": None}


async def test_a_real_workflow_writes_what_the_report_counts(stack: Stack) -> None:
    """Acknowledge, extend, respond, escalate, review, respond: the rows match the deadlines."""
    from temporalio.client import WorkflowHandle

    async def act(handle: WorkflowHandle[Any, Any], action: Action) -> CaseView:
        await handle.execute_update(action.trigger, action, result_type=ActionResult)
        return await handle.query("case_view", result_type=CaseView)

    async with stack.worker():
        handle = await stack.lodge(make_intake())
        for _ in range(100):
            current = await handle.query("case_view", result_type=CaseView)
            if current.deadlines:
                break
            await asyncio.sleep(0.1)
        for build in path_to(ComplaintState.STAGE1_EXTENDED):
            current = await act(handle, build(current.case))
        current = await act(handle, respond_to(current.case, STAGE1_HANDLER))
        responded = london_date(current.case.responses[-1].at)
        current = await act(handle, RequestEscalation(by="staff-900", requested_on=responded))
        current = await act(handle, AcknowledgeEscalation(
            by=STAGE2_HANDLER, handler_id=STAGE2_HANDLER, definition=FULL_DEFINITION))
        current = await act(handle, respond_to(current.case, STAGE2_HANDLER, action_id="A2"))
    chain = {d.key: d for d in current.deadlines}
    first, extended = chain["stage1_response#1"], chain["stage1_response#2"]
    stage2 = chain["stage2_response#1"]
    days = sum(e.working_days for e in current.case.extensions if e.stage == 1)
    with stack.session() as session:
        rows = {r.stage: r for r in session.exec(select(ResponseRow).where(
            ResponseRow.reference == handle.id))}
        complaint = session.get(ComplaintRow, handle.id)
    assert complaint is not None
    assert complaint.acknowledged_on == first.start  # the clock runs from the acknowledgement
    assert (complaint.stage1_handler, complaint.stage2_handler) == (STAGE1_HANDLER,
                                                                    STAGE2_HANDLER)
    assert complaint.escalation_requested_on == responded
    assert (rows[1].clock_start, rows[1].due_base, rows[1].due_final, rows[1].extension_days,
            rows[1].responded_on) == (first.start, first.due, extended.due, days, responded)
    assert (rows[2].clock_start, rows[2].due_base, rows[2].due_final) == (
        stage2.start, stage2.due, stage2.due)
    # Everything happened on the day the complaint was received: on time, 0 WD taken.
    assert (rows[1].working_days_taken, rows[2].working_days_taken) == (0, 0)
    today = rows[1].responded_on
    policy = load_compliant_policy("connexus")
    engine = make_engine(stack.settings.effective_database_url())
    report = build_report(engine, ReportOptions(Period(today, today), policy, as_of=today))
    engine.dispose()
    assert [(c.responses, c.within_base) for c in report.ch02] == [(1, 1), (1, 1)]
    assert [s.extended for s in report.stages] == [1, 0]
