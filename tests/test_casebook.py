"""The case book decides without Temporal: given a clock, the same actions give the same case."""

from __future__ import annotations

import datetime as dt

from activities.casework import calendar_data
from complaints.policies import load_compliant_policy
from domain.casebook import CaseBook
from domain.deadlines import london_time
from models.actions import (
    Acknowledge,
    AcknowledgeEscalation,
    Extend,
    OmbudsmanOrderKind,
    RefuseEscalation,
    ReopenOnOrder,
    RequestEscalation,
)
from models.case import ComplaintDefinition, ExclusionGround
from models.events import CaseContext
from models.letters import LetterKind
from models.messages import DeadlineKind, DeadlineStatus, NotificationKind
from tests.cases import Clock, respond_to, without_money
from tests.conftest import make_intake

RECEIVED = dt.date(2026, 3, 2)  # a Monday
DEFINITION = ComplaintDefinition(summary="The roof leaks", points=("The roof leaks",),
                                 outcomes_sought=("Repair it",),
                                 responsible_for=("Roof repairs",))



def opened(clock: Clock) -> CaseBook:
    """A case under the Connexus policy, opened on the day it was received."""
    policy = load_compliant_policy("connexus")
    book = CaseBook(make_intake(RECEIVED), None, clock)
    book.opened(CaseContext(policy=policy, calendar=calendar_data(policy, 2025, 2032)))
    return book


def test_acknowledging_plans_the_response_and_queues_the_letter() -> None:
    """An acknowledgement meets its deadline, plans the stage 1 response and queues one letter."""
    clock = Clock(london_time(RECEIVED, dt.time(10)))
    book = opened(clock)
    clock.at += dt.timedelta(days=1)
    assert book.refusal(Acknowledge(by="h-1", handler_id="h-1", definition=DEFINITION)) is None
    number, seq = book.accept(Acknowledge(by="h-1", handler_id="h-1", definition=DEFINITION))
    ack = next(d for d in book.deadlines if d.kind is DeadlineKind.STAGE1_ACKNOWLEDGEMENT)
    response = next(d for d in book.deadlines if d.kind is DeadlineKind.STAGE1_RESPONSE)
    assert ack.status is DeadlineStatus.MET and ack.met_at == clock.at
    assert response.status is DeadlineStatus.PENDING and response.due > RECEIVED
    event = book.queue[-1]
    assert (event.seq, event.audit[-1].seq) == (number, seq)
    assert [spec.kind for spec in event.letters] == [LetterKind.STAGE1_ACKNOWLEDGEMENT]
    assert book.next_pending() == min(
        (d for d in book.deadlines if d.status is DeadlineStatus.PENDING),
        key=lambda d: d.ends_at)


def test_a_timer_marks_a_breach_only_once_its_moment_has_come() -> None:
    """The clock given decides: before the deadline nothing happens, after it a breach notice."""
    clock = Clock(london_time(RECEIVED, dt.time(10)))
    book = opened(clock)
    ack = next(d for d in book.deadlines if d.kind is DeadlineKind.STAGE1_ACKNOWLEDGEMENT)
    queued = len(book.queue)
    clock.at = ack.ends_at - dt.timedelta(minutes=1)
    book.timers_due()
    assert ack.status is not DeadlineStatus.BREACHED
    clock.at = ack.ends_at
    book.timers_due()
    assert ack.status is DeadlineStatus.BREACHED and book.overdue()
    notices = [n.kind for e in book.queue[queued:] for n in e.notifications]
    assert NotificationKind.BREACH in notices


def test_an_overdue_response_cannot_be_extended() -> None:
    """Extending after the response date passed is refused with the Code's provision (6.4)."""
    clock = Clock(london_time(RECEIVED, dt.time(10)))
    book = opened(clock)
    book.accept(Acknowledge(by="h-1", handler_id="h-1", definition=DEFINITION))
    response = next(d for d in book.deadlines if d.kind is DeadlineKind.STAGE1_RESPONSE)
    extend = Extend(by="h-1", working_days=5, reason="A roofer must inspect")
    assert book.refusal(extend) is None
    clock.at = response.ends_at
    reason = book.refusal(extend)
    assert reason is not None and "6.4" in reason


def refused_as_late(clock: Clock, casework: int) -> CaseBook:
    """A case closed when its window lapsed, asked for stage 2 late and refused as late."""
    policy = load_compliant_policy("code-2024")
    book = CaseBook(make_intake(RECEIVED, policy_name="code-2024"), None, clock,
                    casework=casework)
    book.opened(CaseContext(policy=policy, calendar=calendar_data(policy, 2025, 2032)))
    book.accept(Acknowledge(by="h-1", handler_id="h-1", definition=DEFINITION))
    clock.at += dt.timedelta(days=3)
    book.accept(without_money(respond_to(book.case, "h-1")))
    window = next(d for d in book.deadlines if d.kind is DeadlineKind.ESCALATION_WINDOW)
    clock.at = window.ends_at + dt.timedelta(days=2)
    book.timers_due()
    assert book.case.state == "closed"
    book.accept(RequestEscalation(by="staff-900",
                                  requested_on=window.due + dt.timedelta(days=2)))
    assert book.case.escalation_late
    book.accept(RefuseEscalation(by="mgr-7", grounds=(ExclusionGround.OUTSIDE_ESCALATION_WINDOW,),
                                 explanation="Asked after the window had closed"))
    clock.at += dt.timedelta(days=30)
    book.accept(ReopenOnOrder(by="mgr-7", order=OmbudsmanOrderKind.ESCALATE_TO_STAGE2,
                              details="HOS 202612345: escalate within 5 working days"))
    assert book.case.state == "stage2_requested"
    return book


LATE_AGAIN = RefuseEscalation(by="mgr-7", grounds=(ExclusionGround.OUTSIDE_ESCALATION_WINDOW,),
                              explanation="Still late")


def test_an_order_to_escalate_overrides_a_late_request() -> None:
    """Under revision 3 the order clears lateness: the window ground is refused, stage 2 runs."""
    clock = Clock(london_time(RECEIVED, dt.time(10)))
    book = refused_as_late(clock, casework=3)
    assert not book.case.escalation_late
    reason = book.refusal(LATE_AGAIN)
    assert reason is not None and "ordered this complaint escalated" in reason
    acknowledge = AcknowledgeEscalation(by="rev-1", handler_id="rev-1", definition=DEFINITION)
    assert book.refusal(acknowledge) is None
    book.accept(acknowledge)
    assert book.case.state == "stage2_reviewing"


def test_revision_2_cases_keep_their_late_flag_after_an_order() -> None:
    """A revision 2 case decides as it did when it started: still late, still refusable."""
    clock = Clock(london_time(RECEIVED, dt.time(10)))
    book = refused_as_late(clock, casework=2)
    assert book.case.escalation_late
    assert book.refusal(LATE_AGAIN) is None
