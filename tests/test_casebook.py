"""The case book decides without Temporal: given a clock, the same actions give the same case."""

from __future__ import annotations

import datetime as dt

from activities.casework import calendar_data
from complaints.policies import load_compliant_policy
from domain.casebook import CaseBook
from domain.deadlines import london_time
from models.actions import Acknowledge, Extend
from models.case import ComplaintDefinition
from models.events import CaseContext
from models.letters import LetterKind
from models.messages import DeadlineKind, DeadlineStatus, NotificationKind
from tests.cases import Clock
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
