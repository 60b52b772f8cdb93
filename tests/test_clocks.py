"""Closing a stage stops that stage's clocks; a finished case shows no live deadline."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from domain.lifecycle import CLOCKS, ComplaintState
from models.actions import Acknowledge, Close, Withdraw
from models.case import Channel
from models.messages import DeadlineKind, DeadlineStatus
from models.tables import NotificationRow
from tests.cases import DEFINITION, STAGE1_HANDLER, respond_to, without_money
from tests.conftest import Stack, make_intake
from tests.test_workflow import advance_to, do, now_of, started, task_failures, view
from workflows.complaint import SA_NEXT_DEADLINE, SA_STATE

S = ComplaintState


def test_every_state_names_its_clocks() -> None:
    """The clock table covers every state, and an ended case runs no clock of the Code.

    What may still run after the Code's stages: promised actions (7.3), the Ombudsman's own
    orders and instructions, and (while the case is live or with the Ombudsman) the review
    of reasonable adjustments.
    """
    assert set(CLOCKS) == set(ComplaintState)
    after = {DeadlineKind.ACTION, DeadlineKind.OMBUDSMAN, DeadlineKind.REVIEW}
    for state in (S.CLOSED, S.DECLINED, S.WITHDRAWN, S.WITH_OMBUDSMAN, S.STAGE2_RESPONDED,
                  S.VOIDED):
        assert CLOCKS[state] <= after
    for state in (S.CLOSED, S.DECLINED, S.WITHDRAWN, S.VOIDED):
        assert DeadlineKind.REVIEW not in CLOCKS[state]
    assert CLOCKS[S.WITHDRAWN] == CLOCKS[S.VOIDED] == frozenset()


async def test_closing_after_stage1_response_stops_early_contact(stack: Stack) -> None:
    """Responding stops the early-contact clock; closing leaves nothing pending or breached."""
    async with stack.worker():
        handle = await stack.lodge(make_intake(policy_name="connexus"))
        await started(handle)
        await do(handle, Acknowledge(by=STAGE1_HANDLER, handler_id=STAGE1_HANDLER,
                                     definition=DEFINITION))
        acknowledged = await view(handle)
        early = next(d for d in acknowledged.deadlines if d.kind is DeadlineKind.EARLY_CONTACT)
        assert early.status is DeadlineStatus.PENDING  # still running at stage 1
        response = without_money(respond_to(acknowledged.case, STAGE1_HANDLER))
        responded = await do(handle, response)
        statuses = {d.kind: d.status for d in responded.deadlines}
        assert statuses[DeadlineKind.EARLY_CONTACT] is DeadlineStatus.CANCELLED
        closed = await do(handle, Close(by=STAGE1_HANDLER))
        assert not [d for d in closed.deadlines if d.status is DeadlineStatus.PENDING]
        assert closed.next_deadline is None
        # Well past every stage 1 date: nothing breaches on a stage the case has left.
        await advance_to(stack, handle, await now_of(stack, handle) + timedelta(days=40))
        later = await view(handle)
        description = await handle.describe()
        metadata = await handle.query("__temporal_workflow_metadata")
        history = await handle.fetch_history()
    assert later.state == "closed"
    assert not [d for d in later.deadlines if d.status is DeadlineStatus.BREACHED]
    assert later.overdue is False
    attributes = description.typed_search_attributes
    assert attributes.get(SA_STATE) == "closed"
    assert attributes.get(SA_NEXT_DEADLINE) is None
    assert "open for late Ombudsman actions until" in metadata.current_details
    assert "next deadline: none" in metadata.current_details
    with stack.session() as session:
        notices = session.exec(select(NotificationRow).where(
            NotificationRow.reference == handle.id)).all()
    assert [n.kind for n in notices if n.kind.startswith("breach")] == []
    assert task_failures(history) == 0


async def test_withdrawing_with_a_breach_stops_telling_the_lead(stack: Stack) -> None:
    """A breach on a withdrawn case is kept on record, but nobody is told of it later."""
    async with stack.worker():
        handle = await stack.lodge(make_intake(policy_name="code-2024"))
        current = await started(handle)
        ack = next(d for d in current.deadlines if d.kind is DeadlineKind.STAGE1_ACKNOWLEDGEMENT)
        await advance_to(stack, handle, ack.ends_at + timedelta(minutes=1))
        breached = await view(handle)
        assert breached.overdue is True
        withdrawn = await do(handle, Withdraw(by=STAGE1_HANDLER, reason="Sorted out",
                                              confirmed_via=Channel.PHONE))
        assert withdrawn.overdue is False
        await advance_to(stack, handle, ack.escalate_at + timedelta(days=3))
        later = await view(handle)
    kept = next(d for d in later.deadlines if d.key == ack.key)
    assert kept.status is DeadlineStatus.BREACHED and kept.lead_notified is False
    with stack.session() as session:
        kinds = [n.kind for n in session.exec(select(NotificationRow).where(
            NotificationRow.reference == handle.id)).all()]
    assert "breach" in kinds and "breach_escalated" not in kinds

