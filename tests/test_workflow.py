"""ComplaintWorkflow on the real dev server, time skipped: the product as users meet it."""

from __future__ import annotations

import asyncio
import datetime as dt
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlmodel import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from models.actions import (
    Acknowledge,
    AcknowledgeEscalation,
    Action,
    Close,
    CompleteAction,
    Extend,
    PayRemedy,
    RequestEscalation,
    Withdraw,
)
from models.events import ActionResult
from models.messages import CaseView, DeadlineStatus
from models.tables import AuditRow, LetterRow, NotificationRow, OmbudsmanDetailsRow
from tests.cases import (
    DEFINITION,
    STAGE1_HANDLER,
    STAGE2_HANDLER,
    path_to,
    respond_to,
    without_money,
)
from tests.conftest import Stack, make_intake
from workflows.complaint import ComplaintState, london_date

S = ComplaintState


async def view(handle: WorkflowHandle[Any, Any]) -> CaseView:
    """The case as the query returns it."""
    return await handle.query("case_view", result_type=CaseView)


async def started(handle: WorkflowHandle[Any, Any]) -> CaseView:
    """Wait until the case has loaded its policy and planned its first deadline."""
    for _ in range(100):
        current = await view(handle)
        if current.deadlines:
            return current
        await asyncio.sleep(0.1)
    raise AssertionError("the case never started")


async def do(handle: WorkflowHandle[Any, Any], action: Action) -> CaseView:
    """Send a staff action as a validated update; the case as it is after it."""
    result = await handle.execute_update(action.trigger, action, result_type=ActionResult)
    assert result.state == (current := await view(handle)).state
    return current


async def now_of(stack: Stack, handle: WorkflowHandle[Any, Any]) -> dt.datetime:
    """The case's virtual time."""
    return await stack.env.get_current_time(handle)


async def advance_to(stack: Stack, handle: WorkflowHandle[Any, Any], when: dt.datetime) -> None:
    """Skip the case's clock forward to ``when``."""
    gap = when - await now_of(stack, handle)
    if gap > timedelta(0):
        assert await stack.env.fast_forward(handle, gap)


async def drive(handle: WorkflowHandle[Any, Any], state: ComplaintState) -> CaseView:
    """Take a started case to ``state`` with valid staff actions."""
    current = await view(handle)
    for build in path_to(state):
        action = build(current.case)
        if isinstance(action, RequestEscalation):
            action = action.model_copy(update={"requested_on": london_date(
                current.case.responses[-1].at)})
        current = await do(handle, action)
    assert current.state == state.value
    return current


def task_failures(history: Any) -> int:
    """How many workflow tasks failed in a history."""
    return sum(1 for e in history.events
               if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)


async def test_happy_path_through_both_stages(stack: Stack) -> None:
    """Acknowledge, extend, respond, escalate, review, respond, complete and close, with letters."""
    async with stack.worker():
        handle = await stack.lodge(make_intake())
        await started(handle)
        await drive(handle, S.STAGE1_EXTENDED)
        current = await do(handle, respond_to((await view(handle)).case, STAGE1_HANDLER))
        assert current.state == "stage1_responded"
        responded = london_date(current.case.responses[-1].at)
        await do(handle, RequestEscalation(by="staff-900", requested_on=responded))
        await do(handle, AcknowledgeEscalation(by=STAGE2_HANDLER, handler_id=STAGE2_HANDLER,
                                               definition=DEFINITION))
        current = await do(handle, respond_to((await view(handle)).case, STAGE2_HANDLER,
                                              action_id="A2"))
        assert current.state == "stage2_responded"
        for action_id in ("A1", "A2"):
            current = await do(handle, CompleteAction(by=STAGE2_HANDLER, action_id=action_id))
        for stage in (1, 2):  # each response promised £150 (remedy 2): paid before closing
            current = await do(handle, PayRemedy(by=STAGE2_HANDLER, stage=stage, remedy=2,
                                                 amount=Decimal("150.00"), paid_on=responded))
        current = await do(handle, Close(by=STAGE2_HANDLER))
        assert current.state == "closed"
        kinds = [r.kind.value for r in current.letters]
        assert kinds == ["stage1_acknowledgement", "extension", "stage1_response",
                         "stage2_acknowledgement", "final_response", "action_update",
                         "action_update"]
        statuses = {d.key: d.status for d in current.deadlines}
        assert statuses["stage1_acknowledgement#1"] is DeadlineStatus.MET
        assert statuses["stage1_response#1"] is DeadlineStatus.EXTENDED
        assert statuses["stage1_response#2"] is DeadlineStatus.MET
        assert statuses["stage2_response#1"] is DeadlineStatus.MET
        history = await handle.fetch_history()
        assert task_failures(history) == 0
    with stack.session() as session:
        rows = session.exec(select(LetterRow).where(
            LetterRow.reference == handle.id)).all()
        assert sorted(r.kind for r in rows) == sorted(kinds)
        final = next(r for r in rows if r.kind == "final_response")
        assert "Housing Ombudsman" in final.text and "0300 111 3000" in final.text
        audit = session.exec(select(AuditRow).where(AuditRow.reference == handle.id)).all()
        # Every entry is in the database; the case itself keeps only the most recent.
        assert sorted(a.seq for a in audit) == list(range(1, current.case.audit[-1].seq + 1))
    outbox = stack.settings.effective_outbox() / handle.id
    assert len(list(outbox.glob("*.txt"))) == len(kinds)
    assert len(list(outbox.glob("*.html"))) == len(kinds)


async def test_extension_records_ombudsman_details_and_puts_them_in_the_letter(
        stack: Stack) -> None:
    """Code 6.5: the extension letter carries the Ombudsman's details and they are recorded."""
    async with stack.worker():
        handle = await stack.lodge(make_intake())
        await started(handle)
        await drive(handle, S.STAGE1_INVESTIGATING)
        current = await do(handle, Extend(by=STAGE1_HANDLER, working_days=7,
                                          reason="A roofer must inspect"))
        letter = next(r for r in current.letters if r.kind.value == "extension")
        extended = [d for d in current.deadlines if d.kind.value == "stage1_response"]
        assert [d.status for d in extended] == [DeadlineStatus.EXTENDED, DeadlineStatus.PENDING]
    with stack.session() as session:
        given = session.exec(select(OmbudsmanDetailsRow).where(
            OmbudsmanDetailsRow.reference == handle.id)).all()
        assert len(given) == 1 and given[0].letter_id == letter.letter_id
        assert given[0].phone == "0300 111 3000"
        text = session.get(LetterRow, letter.letter_id).text  # type: ignore[union-attr]
    assert "0300 111 3000" in text and "A roofer must inspect" in text
    assert f"{extended[1].due:%-d %B %Y}" in text


@pytest.mark.parametrize(("state", "deadline", "days"), [
    (S.RECEIVED, "stage1_acknowledgement#1", 12),
    (S.STAGE1_INVESTIGATING, "stage1_response#1", 20),
    (S.STAGE2_REQUESTED, "stage2_acknowledgement#1", 12),
    (S.STAGE2_REVIEWING, "stage2_response#1", 35),
    (S.STAGE2_RESPONDED, "action:A2", 80),
])
async def test_deadline_breach_is_recorded_and_notified(
        stack: Stack, state: ComplaintState, deadline: str, days: int) -> None:
    """A deadline that passes is breached, the manager told, then the complaints lead."""
    async with stack.worker():
        handle = await stack.lodge(make_intake())
        await started(handle)
        await drive(handle, state)
        before = await view(handle)
        due = next(d for d in before.deadlines if d.key == deadline)
        assert due.status is DeadlineStatus.PENDING
        await advance_to(stack, handle, due.escalate_at + timedelta(minutes=1))
        after = await view(handle)
        breached = next(d for d in after.deadlines if d.key == deadline)
        assert breached.status is DeadlineStatus.BREACHED
        assert breached.breached_at is not None and breached.breached_at >= due.ends_at
        assert after.overdue is True
        assert after.state == state.value  # never silently moved on
    with stack.session() as session:
        sent = session.exec(select(NotificationRow).where(
            NotificationRow.reference == handle.id,
            NotificationRow.deadline_key == deadline)).all()
    kinds = sorted((n.kind, n.recipient_id) for n in sent)
    assert ("breach", "mgr-7") in kinds and ("breach_escalated", "lead-1") in kinds
    assert ("reminder", "mgr-7") in kinds


async def test_escalation_window_lapse_closes_the_case(stack: Stack) -> None:
    """With no request and no open actions, the escalation window's end closes the case."""
    async with stack.worker():
        handle = await stack.lodge(make_intake(policy_name="code-2024"))
        await started(handle)
        await drive(handle, S.STAGE1_INVESTIGATING)
        response = without_money(respond_to((await view(handle)).case, STAGE1_HANDLER))
        current = await do(handle, response)
        window = next(d for d in current.deadlines if d.kind.value == "escalation_window")
        assert window.due == london_date(current.case.responses[-1].at) + timedelta(
            days=(window.due - window.start).days)
        await advance_to(stack, handle, window.ends_at + timedelta(minutes=1))
        after = await view(handle)
        assert after.state == "closed"
        assert after.case.audit[-1].by == "system"
        lapsed = next(d for d in after.deadlines if d.key == window.key)
        assert lapsed.status is DeadlineStatus.LAPSED


async def test_open_actions_keep_the_case_open_past_the_window(stack: Stack) -> None:
    """An open action, then an unpaid remedy, keep the lapsed case open until both are done."""
    async with stack.worker():
        handle = await stack.lodge(make_intake(policy_name="code-2024"))
        await started(handle)
        current = await drive(handle, S.STAGE1_RESPONDED)
        window = next(d for d in current.deadlines if d.kind.value == "escalation_window")
        await advance_to(stack, handle, window.ends_at + timedelta(minutes=1))
        assert (await view(handle)).state == "stage1_responded"
        await do(handle, CompleteAction(by=STAGE1_HANDLER, action_id="A1"))
        assert (await view(handle)).state == "stage1_responded"  # £150 still to pay
        await do(handle, PayRemedy(by=STAGE1_HANDLER, stage=1, remedy=2,
                                   amount=Decimal("150.00"),
                                   paid_on=london_date(current.case.responses[-1].at)))
        for _ in range(50):
            if (await view(handle)).state == "closed":
                break
            await asyncio.sleep(0.1)
        assert (await view(handle)).state == "closed"


REFUSED: dict[ComplaintState, Action] = {
    S.RECEIVED: Close(by="x"),
    S.DECLINED: Extend(by="x", working_days=1, reason="r"),
    S.STAGE1_INVESTIGATING: Close(by="x"),
    S.STAGE1_EXTENDED: Extend(by="x", working_days=30, reason="r"),
    S.STAGE1_RESPONDED: Close(by="x"),
    S.STAGE2_REQUESTED: AcknowledgeEscalation(by="x", handler_id=STAGE1_HANDLER,
                                              definition=DEFINITION),
    S.STAGE2_REVIEWING: Acknowledge(by="x", handler_id="x", definition=DEFINITION),
    S.STAGE2_EXTENDED: Close(by="x"),
    S.STAGE2_RESPONDED: Withdraw(by="x"),
    S.WITH_OMBUDSMAN: Extend(by="x", working_days=1, reason="r"),
    S.CLOSED: Acknowledge(by="x", handler_id="x", definition=DEFINITION),
    S.WITHDRAWN: Close(by="x"),
    S.VOIDED: Acknowledge(by="x", handler_id="x", definition=DEFINITION),
}


@pytest.mark.parametrize("state", list(S), ids=[s.value for s in S])
async def test_refused_action_leaves_the_case_unchanged(stack: Stack,
                                                        state: ComplaintState) -> None:
    """In every state, a forbidden action is refused with a reason and nothing changes."""
    async with stack.worker():
        handle = await stack.lodge(make_intake())
        await started(handle)
        before = await drive(handle, state)
        length = (await handle.fetch_history()).events.__len__()
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await do(handle, REFUSED[state])
        message = str(refused.value.cause)
        assert "allowed now" in message or "Code" in message
        after = await view(handle)
        assert after.case.model_dump() == before.case.model_dump()
        history = await handle.fetch_history()
        # A validator's refusal writes nothing to history.
        assert not any(e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
                       for e in history.events[length:])
        assert task_failures(history) == 0


async def test_refused_and_malformed_signals_are_recorded_not_crashed(stack: Stack) -> None:
    """Signals that are malformed or not allowed go on the audit trail; no task fails."""
    async with stack.worker():
        handle = await stack.lodge(make_intake())
        await started(handle)
        await handle.signal("respond", {"by": "integration", "decision": "maybe"})
        await handle.signal("close", {"by": "integration"})
        await handle.signal("acknowledge", Acknowledge(
            by="integration", handler_id="h9", definition=DEFINITION).model_dump(mode="json"))
        for _ in range(50):
            current = await view(handle)
            if current.state == "stage1_investigating" and len(current.rejected) == 2:
                break
            await asyncio.sleep(0.1)
        assert current.state == "stage1_investigating"
        assert [r.action for r in current.rejected] == ["respond", "close"]
        assert current.rejected[0].detail.startswith("malformed: decision")
        assert "allowed now" in current.rejected[1].detail
        assert current.refused_total == 2
        assert task_failures(await handle.fetch_history()) == 0
        for _ in range(50):  # the audit trail reaches the database shortly after
            with stack.session() as session:
                rows = session.exec(select(AuditRow).where(
                    AuditRow.reference == handle.id)).all()
            refused = sum(int(r.detail.split()[0]) for r in rows
                          if r.action == "refused_signals")
            if refused == 2 and any(r.action == "acknowledge" for r in rows):
                break
            await asyncio.sleep(0.1)
    assert refused == 2
    assert [(r.action, r.accepted) for r in rows if r.action != "refused_signals"] == [
        ("acknowledge", True)]
    assert all(not r.accepted for r in rows if r.action == "refused_signals")


async def test_lodging_twice_is_one_case(stack: Stack) -> None:
    """The same intake lodged twice (same reference) is the same running case."""
    intake = make_intake(channel_reference="call-778")
    async with stack.worker():
        first = await stack.lodge(intake)
        second = await stack.lodge(intake)
        assert first.result_run_id == second.result_run_id
        await started(first)


async def test_worker_restart_mid_case(stack: Stack) -> None:
    """A new worker picks a case up mid-way; letters are not sent twice."""
    intake = make_intake()
    async with stack.worker():
        handle = await stack.lodge(intake)
        await started(handle)
        await drive(handle, S.STAGE1_INVESTIGATING)
    # The first worker is gone; a fresh one (new activities, same database) takes over.
    from activities import build_activities

    stack.activities = build_activities(stack.settings)
    async with stack.worker():
        current = await do(handle, Extend(by=STAGE1_HANDLER, working_days=3, reason="Survey"))
        assert current.state == "stage1_extended"
        assert [r.kind.value for r in current.letters] == ["stage1_acknowledgement",
                                                           "extension"]
    with stack.session() as session:
        rows = session.exec(select(LetterRow).where(LetterRow.reference == handle.id)).all()
    assert sorted(r.kind for r in rows) == ["extension", "stage1_acknowledgement"]


@pytest.mark.parametrize(("ack_on", "expected_due", "ends_utc"), [
    # Christmas 2026 under Connexus: 25 Dec, 28 Dec (Boxing Day observed) and 1 Jan are
    # passed over; the closure on 29-31 Dec is not (it never lengthens a Code timescale):
    # 21, 22, 23, 24, 29, 30, 31 Dec, 4, 5, 6 Jan: due Wed 6 Jan.
    (dt.date(2026, 12, 18), dt.date(2027, 1, 6), "2027-01-06T23:59:59.999000+00:00"),
    # Easter 2027: Good Friday 26 Mar and Easter Monday 29 Mar; the clocks go forward on
    # 28 Mar, so the deadline ends at 22:59:59.999 UTC.
    (dt.date(2027, 3, 19), dt.date(2027, 4, 6), "2027-04-06T22:59:59.999000+00:00"),
])
async def test_deadlines_straddling_christmas_and_easter(
        stack: Stack, ack_on: dt.date, expected_due: dt.date, ends_utc: str) -> None:
    """Stage 1 response dates skip bank holidays, never closure days, and end at London midnight."""
    async with stack.worker():
        handle = await stack.lodge(make_intake())
        await started(handle)
        await advance_to(stack, handle, dt.datetime.combine(
            ack_on, dt.time(10), tzinfo=dt.UTC))
        current = await do(handle, Acknowledge(by=STAGE1_HANDLER, handler_id=STAGE1_HANDLER,
                                               definition=DEFINITION))
        response = next(d for d in current.deadlines if d.key == "stage1_response#1")
        assert response.start == ack_on
        assert response.due == expected_due
        assert response.ends_at.isoformat() == ends_utc


async def test_carried_state_resumes_after_continue_as_new(stack: Stack) -> None:
    """A run started from carried state (as continue-as-new does) picks up where it was."""
    from activities.casework import calendar_data
    from complaints.policies import load_compliant_policy
    from models.events import CaseContext, CaseInput, CaseState

    intake = make_intake()
    async with stack.worker():
        handle = await stack.lodge(intake)
        await started(handle)
        before = await drive(handle, S.STAGE1_EXTENDED)
        policy = load_compliant_policy(intake.policy_name)
        year = intake.received_on.year
        carried = CaseState(
            context=CaseContext(policy=policy, calendar=calendar_data(policy, year - 1,
                                                                      year + 6)),
            case=before.case.model_copy(update={"audit": []}), deadlines=before.deadlines,
            letters=before.letters, audit_seq=before.case.audit[-1].seq, events=100)
        from workflows.complaint import ComplaintWorkflow

        second = await stack.env.client.start_workflow(
            ComplaintWorkflow.run, CaseInput(intake=intake, carried=carried),
            id=f"{handle.id}-continued", task_queue=stack.task_queue)
        resumed = await view(second)
        assert resumed.state == "stage1_extended"
        assert [d.key for d in resumed.deadlines] == [d.key for d in before.deadlines]
        again = await do(second, Extend(by=STAGE1_HANDLER, working_days=2, reason="Parts"))
        # Letter numbering carries on: the second extension letter is number 2.
        assert [r.letter_id.rsplit(":", 1)[1] for r in again.letters
                if r.kind.value == "extension"] == ["1", "2"]
        assert again.case.extension_days(1) == 7
