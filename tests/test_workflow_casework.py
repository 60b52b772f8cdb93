"""Casework revision 2 through the real Complaint workflow on the dev server, time skipped."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from sqlmodel import col, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from domain.lifecycle import (
    CASEWORK_3_PATCH,
    CASEWORK_PATCH,
    REVISION_6_COVERS,
    REVISION_6_PATCH,
    REVISION_8_COVERS,
    REVISION_8_PATCH,
)
from models.actions import (
    Acknowledge,
    AcknowledgeEscalation,
    AmendIntake,
    DelayAction,
    Extend,
    OmbudsmanOrderKind,
    PayRemedy,
    Reassign,
    ReassignRole,
    RefuseEscalation,
    ReopenOnOrder,
    RequestEscalation,
    Respond,
    Void,
    VoidReason,
    Withdraw,
)
from models.case import (
    Channel,
    Decision,
    ExclusionGround,
    Party,
    PartyRole,
    PointFinding,
    Remedy,
    RemedyKind,
)
from models.messages import DeadlineKind, DeadlineStatus
from models.tables import LetterRow, NotificationRow, PartyRow
from tests.cases import DEFINITION, STAGE1_HANDLER, respond_to
from tests.conftest import Stack, make_intake
from tests.test_workflow import advance_to, do, drive, started, task_failures, view
from workflows.complaint import ComplaintState, london_date

S = ComplaintState


def patch_markers(history: Any) -> str:
    """Every marker recorded in a history, as text (patch markers name their patch id)."""
    return "\n".join(str(e.marker_recorded_event_attributes) for e in history.events
                     if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED)


def takes_patch(history: Any, patch: str) -> bool:
    """Whether a case runs under ``patch``: its own marker, or a revision's that covers it."""
    markers = patch_markers(history)
    return patch in markers or (REVISION_6_PATCH in markers and patch in REVISION_6_COVERS) \
        or (REVISION_8_PATCH in markers and patch in REVISION_8_COVERS)


def letter_kinds(stack: Stack, reference: str) -> list[str]:
    """The kinds of letter stored for a case, in order."""
    with stack.session() as session:
        rows = session.exec(select(LetterRow).where(LetterRow.reference == reference)
                            .order_by(col(LetterRow.created_at))).all()
    return [r.kind for r in rows]


async def answered_without_actions(handle: WorkflowHandle[Any, Any]) -> None:
    """Acknowledge and answer stage 1 with an apology only: the escalation window runs."""
    await do(handle, Acknowledge(by=STAGE1_HANDLER, handler_id=STAGE1_HANDLER,
                                 definition=DEFINITION))
    await do(handle, Respond(
        by=STAGE1_HANDLER, decision=Decision.UPHELD,
        findings=tuple(PointFinding(point=p, finding="So", reason="The log")
                       for p in DEFINITION.points),
        remedies=(Remedy(kind=RemedyKind.APOLOGY, description="We apologise"),)))


async def test_a_late_request_reopens_a_closed_case_and_can_be_refused(stack: Stack) -> None:
    """A late request is recorded and refused; the Ombudsman's order then overrides lateness."""
    async with stack.worker():
        handle = await stack.lodge(make_intake())
        await started(handle)
        await answered_without_actions(handle)
        window = next(d for d in (await view(handle)).deadlines
                      if d.kind is DeadlineKind.ESCALATION_WINDOW)
        await advance_to(stack, handle, window.ends_at + dt.timedelta(days=2))
        current = await view(handle)
        assert current.state == "closed"
        today = london_date(current.case.closed_at or window.ends_at) + dt.timedelta(days=1)
        current = await do(handle, RequestEscalation(by="staff-900", requested_on=today))
        assert current.state == "stage2_requested" and current.case.escalation_late
        current = await do(handle, RefuseEscalation(
            by="staff-900", grounds=(ExclusionGround.OUTSIDE_ESCALATION_WINDOW,),
            explanation="The request came two days after the window closed"))
        assert current.state == "closed"
        history = await handle.fetch_history()
        assert task_failures(history) == 0
        assert takes_patch(history, CASEWORK_PATCH)
        # The Ombudsman orders it escalated: the order overrides lateness (revision 3).
        current = await do(handle, ReopenOnOrder(
            by="mgr-7", order=OmbudsmanOrderKind.ESCALATE_TO_STAGE2,
            details="HOS 202612345: escalate within 5 working days"))
        assert current.state == "stage2_requested" and not current.case.escalation_late
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await do(handle, RefuseEscalation(
                by="staff-900", grounds=(ExclusionGround.OUTSIDE_ESCALATION_WINDOW,),
                explanation="Still late"))
        assert "ordered this complaint escalated" in str(refused.value.cause)
        current = await do(handle, AcknowledgeEscalation(by="rev-1", handler_id="rev-1",
                                                         definition=DEFINITION))
        assert current.state == "stage2_reviewing"
        history = await handle.fetch_history()
        assert task_failures(history) == 0
        assert takes_patch(history, CASEWORK_3_PATCH)
    assert "escalation_refusal" in letter_kinds(stack, handle.id)
    with stack.session() as session:
        kinds = session.exec(select(NotificationRow.kind).where(
            NotificationRow.reference == handle.id)).all()
    assert "late_escalation" in kinds


async def test_follow_through_delay_payment_and_reassignment(stack: Stack) -> None:
    """A delay and a new handler write to the resident; a payment meets its deadline."""
    async with stack.worker():
        handle = await stack.lodge(make_intake())
        await started(handle)
        await drive(handle, S.STAGE1_INVESTIGATING)
        await do(handle, Reassign(by="mgr-7", role=ReassignRole.HANDLER, to="staff-303",
                                  reason="The handler is on leave"))
        current = await do(handle, respond_to((await view(handle)).case, "staff-303"))
        record = current.case.open_actions()[0]
        current = await do(handle, DelayAction(
            by="staff-303", action_id=record.action.action_id,
            revised_due=record.due_by + dt.timedelta(days=14), reason="Parts are late"))
        assert current.case.open_actions()[0].due_by == record.due_by + dt.timedelta(days=14)
        current = await do(handle, PayRemedy(
            by="staff-303", stage=1, remedy=2, amount=Decimal("150.00"),
            paid_on=london_date(current.case.responses[-1].at)))
        statuses = {d.key: d.status for d in current.deadlines}
        assert statuses["remedy:1:2"] is DeadlineStatus.MET
        assert statuses[f"action:{record.action.action_id}"] is DeadlineStatus.EXTENDED
        assert task_failures(await handle.fetch_history()) == 0
    assert letter_kinds(stack, handle.id) == [
        "stage1_acknowledgement", "handler_changed", "stage1_response", "action_update"]


async def test_withdrawal_is_confirmed_and_a_void_sends_nothing(stack: Stack) -> None:
    """A withdrawal is confirmed in writing; a voided duplicate gets no letter, no clocks."""
    async with stack.worker():
        withdrawn = await stack.lodge(make_intake())
        duplicate = await stack.lodge(make_intake())
        await started(withdrawn)
        await started(duplicate)
        await drive(withdrawn, S.STAGE1_INVESTIGATING)
        current = await do(withdrawn, Withdraw(by="mgr-7", reason="The repair is done",
                                               confirmed_via=Channel.PHONE))
        assert current.state == "withdrawn"
        current = await do(duplicate, Void(by="mgr-7", reason=VoidReason.DUPLICATE,
                                           explanation="Lodged twice by phone",
                                           duplicate_of=withdrawn.id))
        assert current.state == "voided" and current.next_deadline is None
        assert all(d.status is not DeadlineStatus.PENDING for d in current.deadlines)
    assert letter_kinds(stack, withdrawn.id)[-1] == "withdrawal_confirmation"
    assert letter_kinds(stack, duplicate.id) == []


async def test_an_added_representative_receives_the_next_letter(stack: Stack) -> None:
    """After amending the intake, the parties are replaced and letters are addressed to both."""
    async with stack.worker():
        handle = await stack.lodge(make_intake())
        await started(handle)
        await drive(handle, S.STAGE1_INVESTIGATING)
        await do(handle, AmendIntake(
            by="mgr-7", reason="Her sister now acts for her",
            representative_authority="Signed authority form received 20 November",
            parties=(Party(name="Jo Bloggs", address=("2 Test Row", "Ludlow")),
                     Party(role=PartyRole.REPRESENTATIVE, name="Ann Bloggs",
                           address=("9 Other Road", "Ludlow")))))
        await do(handle, Extend(by=STAGE1_HANDLER, working_days=3, reason="A survey"))
        assert task_failures(await handle.fetch_history()) == 0
    with stack.session() as session:
        names = session.exec(select(PartyRow.name).where(PartyRow.reference == handle.id)
                             .order_by(col(PartyRow.position))).all()
        letter = session.exec(select(LetterRow).where(LetterRow.reference == handle.id,
                                                      LetterRow.kind == "extension")).one()
    assert list(names) == ["Jo Bloggs", "Ann Bloggs"]
    assert "Ann Bloggs" in letter.text and "9 Other Road" in letter.text


async def test_letters_name_staff_from_the_directory(stack: Stack) -> None:
    """The acknowledgement names the handler and a new handler's letter says how to reach them."""
    from complaints.directory import add_staff

    with stack.session() as session:
        add_staff(session, "h-1", display_name="Sam Patel", job_title="Complaints Officer",
                  team="Complaints", email="sam.patel@example.invalid", roles=("handler",))
        add_staff(session, "h-2", display_name="Ria Shah", job_title="Senior Officer",
                  team="Complaints", email="ria.shah@example.invalid", phone="01234 567890",
                  roles=("handler",))
    async with stack.worker():
        handle = await stack.lodge(make_intake())
        await started(handle)
        await do(handle, Acknowledge(by="h-1", handler_id="h-1", definition=DEFINITION))
        await do(handle, Reassign(by="mgr-7", role=ReassignRole.HANDLER, to="h-2",
                                  reason="Leave"))
    with stack.session() as session:
        letters = {r.kind: r.text for r in session.exec(
            select(LetterRow).where(LetterRow.reference == handle.id)).all()}
    assert "Sam Patel, Complaints Officer" in letters["stage1_acknowledgement"]
    assert "h-1" not in letters["stage1_acknowledgement"]
    assert "Ria Shah, Senior Officer" in letters["handler_changed"]
    assert "ria.shah@example.invalid, 01234 567890" in letters["handler_changed"]
