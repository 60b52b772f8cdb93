"""Casework revision 2: late escalations, the different person, follow-through, corrections.

The lifecycle's guards are tested on the machine; what the case book plans (deadlines,
letters, notices) with a hand-moved clock. Cases that started before revision 2 keep the
old rules (``Limits(casework=1)``), which the replay tests hold to their histories.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from activities.casework import calendar_data
from complaints.policies import load_compliant_policy
from domain.casebook import CaseBook
from domain.deadlines import london_time
from domain.guards import Limits
from domain.lifecycle import ComplaintState
from domain.machine import ComplaintMachine
from models.actions import (
    Acknowledge,
    AcknowledgeEscalation,
    AmendIntake,
    Close,
    CompleteAction,
    ComplyOrder,
    Decline,
    DelayAction,
    Extend,
    OmbudsmanContact,
    OmbudsmanContactKind,
    OmbudsmanDetermination,
    OmbudsmanFinding,
    OmbudsmanOrderKind,
    OrderItem,
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
    Adjustment,
    Channel,
    Decision,
    ExclusionGround,
    Party,
    PartyRole,
    PointFinding,
    Remedy,
    RemedyKind,
)
from models.events import CaseContext
from models.letters import LetterKind
from models.messages import DeadlineKind, DeadlineStatus, NotificationKind
from tests.cases import (
    AT,
    DEFINITION,
    STAGE1_HANDLER,
    STAGE2_HANDLER,
    Clock,
    case_in,
    respond_to,
    valid_action,
)
from tests.conftest import make_intake

S = ComplaintState


def closed_after_stage1(casework: int = 2) -> ComplaintMachine:
    """A case closed after its stage 1 response, actions done and remedies paid."""
    return case_in(S.CLOSED, casework=casework)


# -- 1. late stage 2 requests (5.11, 6.10) ------------------------------------------------

def test_a_closed_case_takes_a_late_request() -> None:
    """A stage 2 request on a case closed after stage 1 is recorded and reopens it."""
    machine = closed_after_stage1()
    machine.apply(RequestEscalation(by="staff-900", requested_on=dt.date(2027, 2, 1)), AT)
    assert machine.state is S.STAGE2_REQUESTED and machine.case.closed_at is None


def test_cases_before_revision_2_keep_refusing_late_requests() -> None:
    """A case on the first rules still refuses a request once closed, saying why."""
    machine = closed_after_stage1(casework=1)
    reason = machine.refusal(RequestEscalation(by="staff-900", requested_on=dt.date(2027, 2, 1)))
    assert reason is not None and "closed" in reason


def test_the_window_ground_needs_a_late_request() -> None:
    """outside_escalation_window is refused unless the request came after the window."""
    machine = case_in(S.STAGE2_REQUESTED)
    refusal = RefuseEscalation(by="staff-900",
                               grounds=(ExclusionGround.OUTSIDE_ESCALATION_WINDOW,),
                               explanation="The request came after the window")
    reason = machine.refusal(refusal)
    assert reason is not None and "within the escalation window" in reason
    machine.case.escalation_late = True
    assert machine.refusal(refusal) is None


def test_an_order_to_escalate_works_on_an_answered_case() -> None:
    """The Ombudsman's order to escalate moves a stage-1-answered case to stage 2."""
    order = ReopenOnOrder(by="staff-900", order=OmbudsmanOrderKind.ESCALATE_TO_STAGE2,
                          details="Ombudsman instruction 2027/42")
    machine = case_in(S.STAGE1_RESPONDED)
    machine.apply(order, AT)
    assert machine.state is S.STAGE2_REQUESTED
    old = case_in(S.STAGE1_RESPONDED, casework=1)
    assert old.refusal(order) is not None
    unanswered = case_in(S.STAGE1_INVESTIGATING)
    assert unanswered.refusal(order) is not None


# -- 4. exclusions (2.1-2.5) --------------------------------------------------------------

def test_a_ground_arising_after_acknowledgement_can_decline() -> None:
    """Legal proceedings begun during stage 1 decline it; the twelve-month ground cannot."""
    machine = case_in(S.STAGE1_INVESTIGATING)
    late_ground = Decline(by="staff-900", grounds=(ExclusionGround.LEGAL_PROCEEDINGS,),
                          explanation="A claim was filed at court last week")
    old_ground = Decline(by="staff-900", grounds=(ExclusionGround.OLDER_THAN_12_MONTHS,),
                         explanation="Too old", discretion_considered="Considered",
                         issue_occurred_on=dt.date(2024, 1, 1))
    assert "twelve-month" in (machine.refusal(old_ground) or "")
    assert case_in(S.STAGE1_INVESTIGATING, casework=1).refusal(late_ground) is not None
    machine.apply(late_ground, AT)
    assert machine.state is S.DECLINED


def test_the_twelve_month_ground_needs_the_dates() -> None:
    """Without an occurrence date it is refused; an awareness date within the window refuses it."""
    machine = case_in(S.RECEIVED)
    base = {"by": "staff-900", "grounds": (ExclusionGround.OLDER_THAN_12_MONTHS,),
            "explanation": "It happened long ago", "discretion_considered": "Considered"}
    assert "issue_occurred_on" in (machine.refusal(Decline(**base)) or "")
    aware = Decline(**base, issue_occurred_on=dt.date(2024, 1, 1),
                    aware_on=dt.date(2026, 10, 1))
    assert "became aware" in (machine.refusal(aware) or "")
    machine.apply(Decline(**base, issue_occurred_on=dt.date(2024, 1, 1)), AT)
    assert machine.case.issue_occurred_on == dt.date(2024, 1, 1)


# -- 5. the different person (6.13) -------------------------------------------------------

def test_whoever_answered_stage_1_cannot_take_stage_2() -> None:
    """The stage 1 responder, not the named handler, is still refused at stage 2."""
    machine = ComplaintMachine(case_in(S.RECEIVED).case, Limits(casework=2))
    machine.apply(Acknowledge(by="staff-500", handler_id=STAGE1_HANDLER,
                              definition=DEFINITION), AT)
    machine.apply(Extend(by="staff-600", working_days=3, reason="Survey"), AT)
    machine.apply(respond_to(machine.case, "staff-700"), AT)
    machine.apply(RequestEscalation(by="staff-900", requested_on=dt.date(2026, 12, 1)), AT)
    for person in ("staff-500", "staff-600", "staff-700"):
        ack = AcknowledgeEscalation(by=person, handler_id=person, definition=DEFINITION)
        assert "6.13" in (machine.refusal(ack) or ""), person
    first_rules = ComplaintMachine(machine.case.model_copy(deep=True), Limits(casework=1))
    assert first_rules.refusal(AcknowledgeEscalation(
        by="staff-700", handler_id="staff-700", definition=DEFINITION)) is None


def test_stage_2_cannot_be_reassigned_to_stage_1_people() -> None:
    """Reassigning stage 2 to the stage 1 handler is refused; to someone new it is done."""
    machine = case_in(S.STAGE2_REVIEWING)
    back = Reassign(by="staff-900", role=ReassignRole.HANDLER, to=STAGE1_HANDLER,
                    reason="Cover")
    assert "6.13" in (machine.refusal(back) or "")
    machine.apply(Reassign(by="staff-900", role=ReassignRole.HANDLER, to="staff-303",
                           reason="Cover"), AT)
    assert machine.case.stage2_handler == "staff-303"


def test_a_replaced_stage_1_handler_stays_a_stage_1_person() -> None:
    """After reassigning stage 1, the handler replaced still may not consider stage 2."""
    machine = case_in(S.STAGE1_INVESTIGATING)
    machine.apply(Reassign(by="staff-900", role=ReassignRole.HANDLER, to="staff-303",
                           reason="Leave"), AT)
    assert machine.case.stage1_handler == "staff-303"
    assert STAGE1_HANDLER in machine.case.stage1_people()


# -- 3, 6, 7. withdrawal, follow-through, void --------------------------------------------

def test_a_withdrawal_needs_the_reason_and_how_it_was_confirmed() -> None:
    """Revision 2 refuses a bare withdrawal and records the reason and channel."""
    machine = case_in(S.STAGE1_INVESTIGATING)
    assert "confirmed_via" in (machine.refusal(Withdraw(by="staff-900")) or "")
    machine.apply(Withdraw(by="staff-900", reason="Repair done", confirmed_via=Channel.EMAIL),
                  AT)
    assert machine.case.withdrawal is not None
    assert machine.case.withdrawal.confirmed_via == "email"


def test_a_delay_must_move_the_date_later() -> None:
    """A revised date not after the current one is refused; a later one is recorded."""
    machine = case_in(S.STAGE1_RESPONDED)
    record = machine.case.open_actions()[0]
    same = DelayAction(by="s", action_id=record.action.action_id,
                       revised_due=record.due_by, reason="Parts late")
    assert "must be after" in (machine.refusal(same) or "")
    later = record.due_by + dt.timedelta(days=14)
    machine.apply(same.model_copy(update={"revised_due": later}), AT)
    assert machine.case.open_actions()[0].due_by == later


def test_financial_remedies_need_a_date_and_are_paid_once() -> None:
    """A financial remedy without due_by is refused; a payment is recorded once."""
    machine = case_in(S.STAGE1_INVESTIGATING)
    undated = Respond(by=STAGE1_HANDLER, decision=Decision.UPHELD,
                      findings=tuple(PointFinding(point=p, finding="So", reason="Log")
                                     for p in DEFINITION.points),
                      remedies=(Remedy(kind=RemedyKind.FINANCIAL, description="Compensation",
                                       amount=Decimal("50")),))
    assert "due_by" in (machine.refusal(undated) or "")
    machine = case_in(S.STAGE1_RESPONDED)
    pay = PayRemedy(by="s", stage=1, remedy=2, paid_on=AT.date(), amount=Decimal("150.00"))
    machine.apply(pay, AT)
    assert "already recorded as paid" in (machine.refusal(pay) or "")
    assert "apology" in (machine.refusal(pay.model_copy(update={"remedy": 1})) or "")


def test_a_duplicate_names_the_case_that_carries_on() -> None:
    """Voiding as a duplicate needs duplicate_of; the voided case is over."""
    machine = case_in(S.STAGE1_INVESTIGATING)
    bare = Void(by="s", reason=VoidReason.DUPLICATE, explanation="Twice")
    assert "duplicate_of" in (machine.refusal(bare) or "")
    machine.apply(bare.model_copy(update={"duplicate_of": "CMP-2026-000001"}), AT)
    assert machine.state is S.VOIDED and machine.case.voided is not None


@pytest.mark.parametrize("trigger", ["delay_action", "pay_remedy", "void", "reassign"])
def test_new_actions_are_refused_on_the_first_rules(trigger: str) -> None:
    """Cases that started before revision 2 refuse its actions, saying why."""
    machine = case_in(S.STAGE2_RESPONDED, casework=1)
    reason = machine.refusal(valid_action(trigger, case_in(S.STAGE2_RESPONDED)))
    assert reason is not None and "started before this action existed" in reason


# -- the case book: what revision 2 plans and sends ---------------------------------------


RECEIVED = dt.date(2026, 3, 2)


def book_at_stage1_response(clock: Clock) -> CaseBook:
    """A revision 2 case answered at stage 1 with one action and a dated payment."""
    policy = load_compliant_policy("code-2024")
    book = CaseBook(make_intake(RECEIVED, policy_name="code-2024"), None, clock, casework=2)
    book.opened(CaseContext(policy=policy, calendar=calendar_data(policy, 2025, 2032)))
    book.accept(Acknowledge(by=STAGE1_HANDLER, handler_id=STAGE1_HANDLER, definition=DEFINITION))
    clock.at += dt.timedelta(days=3)
    book.accept(respond_to(book.case, STAGE1_HANDLER))
    return book


def letters_of(book: CaseBook, since: int) -> list[LetterKind]:
    """The kinds of letter queued after event ``since``."""
    return [spec.kind for event in book.queue if event.seq > since for spec in event.letters]


def test_a_late_request_is_marked_and_the_manager_asked_to_decide() -> None:
    """A request after the window ended flags the case late and tells the manager (5.11)."""
    clock = Clock(london_time(RECEIVED, dt.time(10)))
    book = book_at_stage1_response(clock)
    window = next(d for d in book.deadlines if d.kind is DeadlineKind.ESCALATION_WINDOW)
    clock.at = window.ends_at + dt.timedelta(days=3)
    book.timers_due()
    assert window.status is DeadlineStatus.LAPSED
    book.accept(RequestEscalation(by="staff-900", requested_on=window.due + dt.timedelta(days=2)))
    assert book.case.escalation_late
    kinds = [n.kind for n in book.queue[-1].notifications]
    assert kinds == [NotificationKind.LATE_ESCALATION]


def test_a_request_within_the_window_is_not_late() -> None:
    """A request made before the window's end is on time, whenever it is recorded."""
    clock = Clock(london_time(RECEIVED, dt.time(10)))
    book = book_at_stage1_response(clock)
    window = next(d for d in book.deadlines if d.kind is DeadlineKind.ESCALATION_WINDOW)
    book.accept(RequestEscalation(by="staff-900", requested_on=window.due))
    assert not book.case.escalation_late and not book.queue[-1].notifications


def test_a_delay_plans_the_revised_date_and_writes_to_the_resident() -> None:
    """The action's deadline moves to the revised date and an update letter is queued."""
    clock = Clock(london_time(RECEIVED, dt.time(10)))
    book = book_at_stage1_response(clock)
    record = book.case.open_actions()[0]
    revised = record.due_by + dt.timedelta(days=21)
    seq = book.events
    book.accept(DelayAction(by=STAGE1_HANDLER, action_id=record.action.action_id,
                            revised_due=revised, reason="Parts are late"))
    keyed = [d for d in book.deadlines if d.key.startswith(f"action:{record.action.action_id}")]
    assert [d.status for d in keyed] == [DeadlineStatus.EXTENDED, DeadlineStatus.PENDING]
    assert keyed[-1].due == revised
    assert letters_of(book, seq) == [LetterKind.ACTION_UPDATE]
    book.accept(CompleteAction(by=STAGE1_HANDLER, action_id=record.action.action_id))
    assert keyed[-1].status is DeadlineStatus.MET


def test_a_dated_payment_is_tracked_until_paid() -> None:
    """A financial remedy's date is a deadline, met when the payment is recorded."""
    clock = Clock(london_time(RECEIVED, dt.time(10)))
    book = book_at_stage1_response(clock)
    payment = next(d for d in book.deadlines if d.key == "remedy:1:2")
    assert payment.status is DeadlineStatus.PENDING
    book.accept(PayRemedy(by=STAGE1_HANDLER, stage=1, remedy=2, paid_on=london_time(
        RECEIVED, dt.time(10)).date() + dt.timedelta(days=3), amount=Decimal("150.00")))
    assert payment.status is DeadlineStatus.MET
    assert book.refusal(Close(by=STAGE1_HANDLER)) is not None  # an action is still open


def test_withdrawal_and_reassignment_write_but_voiding_does_not() -> None:
    """Withdrawal confirms in writing, a new handler is introduced, a void sends nothing."""
    clock = Clock(london_time(RECEIVED, dt.time(10)))
    policy = load_compliant_policy("code-2024")
    for action, expected in (
            (Withdraw(by="s", reason="Sorted", confirmed_via=Channel.PHONE),
             [LetterKind.WITHDRAWAL_CONFIRMATION]),
            (Reassign(by="s", role=ReassignRole.HANDLER, to="staff-303", reason="Leave"),
             [LetterKind.HANDLER_CHANGED]),
            (Reassign(by="s", role=ReassignRole.MANAGER, to="mgr-9", reason="Team"), []),
            (Void(by="s", reason=VoidReason.CREATED_IN_ERROR, explanation="A test entry"), [])):
        book = CaseBook(make_intake(RECEIVED, policy_name="code-2024"), None, clock, casework=2)
        book.opened(CaseContext(policy=policy, calendar=calendar_data(policy, 2025, 2032)))
        book.accept(Acknowledge(by=STAGE1_HANDLER, handler_id=STAGE1_HANDLER,
                                definition=DEFINITION))
        seq = book.events
        book.accept(action)
        assert letters_of(book, seq) == expected, action.trigger
        if isinstance(action, Void):
            assert book.next_pending() is None and book.finished() is False


def test_a_new_manager_receives_the_notices() -> None:
    """After the manager is reassigned, reminders and breaches go to the new one."""
    clock = Clock(london_time(RECEIVED, dt.time(10)))
    book = book_at_stage1_response(clock)
    book.accept(Reassign(by="s", role=ReassignRole.MANAGER, to="mgr-9", reason="Team"))
    assert book.notice(NotificationKind.REMINDER, "manager", None, "x").recipient_id == "mgr-9"
    assert book.notice(NotificationKind.REMINDER, "lead", None, "x").recipient_id == "lead-1"
    assert STAGE2_HANDLER not in book.case.stage1_people()


def test_a_deadline_over_a_closure_is_warned_about_and_not_moved() -> None:
    """A closure on 4-5 March moves no date; the manager is warned of both deadlines over it."""
    clock = Clock(london_time(RECEIVED, dt.time(10)))  # Monday 2 March 2026
    policy = load_compliant_policy("connexus").model_copy(
        update={"closure_days": (dt.date(2026, 3, 4), dt.date(2026, 3, 5))})
    context = CaseContext(policy=policy, calendar=calendar_data(policy, 2025, 2032))
    book = CaseBook(make_intake(RECEIVED), None, clock, casework=2)
    book.opened(context)
    dues = {d.kind: d.due for d in book.deadlines}
    # 5 and 3 working days from Mon 2 March, the closure counted as working: 9 and 5 March.
    assert dues[DeadlineKind.STAGE1_ACKNOWLEDGEMENT] == dt.date(2026, 3, 9)
    assert dues[DeadlineKind.EARLY_CONTACT] == dt.date(2026, 3, 5)
    warnings = [n for n in book.queue[-1].notifications
                if n.kind is NotificationKind.CLOSURE_WARNING]
    assert {n.deadline_key for n in warnings} == {d.key for d in book.deadlines}
    assert all("2026-03-04" in n.message for n in warnings)
    first_rules = CaseBook(make_intake(RECEIVED), None, clock, casework=1)
    first_rules.opened(context)
    assert not any(n.kind is NotificationKind.CLOSURE_WARNING
                   for n in first_rules.queue[-1].notifications)


# -- 2. the Ombudsman: contact while the process runs, determinations and orders -----------

def test_an_enquiry_leaves_the_clocks_running_and_an_instruction_is_tracked() -> None:
    """An enquiry changes nothing; an instruction's date is a deadline until complied with."""
    clock = Clock(london_time(RECEIVED, dt.time(10)))
    policy = load_compliant_policy("code-2024")
    book = CaseBook(make_intake(RECEIVED, policy_name="code-2024"), None, clock, casework=2)
    book.opened(CaseContext(policy=policy, calendar=calendar_data(policy, 2025, 2032)))
    book.accept(Acknowledge(by=STAGE1_HANDLER, handler_id=STAGE1_HANDLER, definition=DEFINITION))
    before = [(d.key, d.status) for d in book.deadlines]
    book.accept(OmbudsmanContact(by="mgr-7", kind=OmbudsmanContactKind.ENQUIRY,
                                 details="Dispute support asked for the response date"))
    assert book.case.state == "stage1_investigating"
    assert [(d.key, d.status) for d in book.deadlines] == before
    bare = OmbudsmanContact(by="mgr-7", kind=OmbudsmanContactKind.INSTRUCTION,
                            details="Issue the stage 1 response")
    assert "respond_by" in (book.refusal(bare) or "")
    book.accept(bare.model_copy(update={"respond_by": RECEIVED + dt.timedelta(days=10)}))
    order = next(d for d in book.deadlines if d.kind is DeadlineKind.OMBUDSMAN)
    assert order.due == RECEIVED + dt.timedelta(days=10) and order.status is DeadlineStatus.PENDING
    response = next(d for d in book.deadlines if d.kind is DeadlineKind.STAGE1_RESPONSE)
    assert response.status is DeadlineStatus.PENDING  # the landlord's own clock carries on
    book.accept(ComplyOrder(by="mgr-7", order_id="instruction-2", evidence="Response sent"))
    assert order.status is DeadlineStatus.MET and not book.case.open_orders()


def test_orders_are_tracked_and_keep_the_case_open() -> None:
    """A determination's orders keep the case open until each is complied with."""
    machine = case_in(S.WITH_OMBUDSMAN)
    determination = OmbudsmanDetermination(
        by="mgr-7", finding=OmbudsmanFinding.MALADMINISTRATION, details="Delays in repairs",
        orders=(OrderItem(order_id="O1", description="Pay £200", due_by=dt.date(2027, 1, 10)),
                OrderItem(order_id="O1", description="Apologise", due_by=dt.date(2027, 1, 10))))
    assert "unique" in (machine.refusal(determination) or "")
    machine.apply(determination.model_copy(update={"orders": determination.orders[:1]}), AT)
    for record in list(machine.case.open_actions()):
        machine.apply(CompleteAction(by="s", action_id=record.action.action_id), AT)
    for stage, number in machine.case.unpaid_remedies():
        machine.apply(PayRemedy(by="s", stage=stage, remedy=number, paid_on=AT.date(),
                                amount=Decimal("150.00")), AT)
    assert "comply_order: O1" in (machine.refusal(Close(by="s")) or "")
    machine.apply(ComplyOrder(by="s", order_id="O1", evidence="Paid 5 January"), AT)
    machine.apply(Close(by="s"), AT)
    assert machine.state is S.CLOSED and machine.case.determinations == ["maladministration"]


# -- 7, 8. amending the intake: representatives and reasonable adjustments -----------------

def test_a_representative_needs_the_residents_authority() -> None:
    """Adding a representative without authority is refused; the resident must stay a party."""
    machine = case_in(S.STAGE1_INVESTIGATING)
    rep = Party(role=PartyRole.REPRESENTATIVE, name="Ann Bloggs")
    bare = AmendIntake(by="mgr-7", reason="Her sister acts", parties=(Party(name="Jo"), rep))
    assert "representative_authority" in (machine.refusal(bare) or "")
    assert "resident" in (machine.refusal(bare.model_copy(update={"parties": (rep,)})) or "")
    machine.apply(bare.model_copy(update={"representative_authority": "Signed form"}), AT)
    assert machine.case.amendments == 1 and machine.case.representative_authority_recorded


def test_adjustments_are_reviewed_on_their_date() -> None:
    """A review date is a deadline with a reminder; recording adjustments again meets it."""
    clock = Clock(london_time(RECEIVED, dt.time(10)))
    book = book_at_stage1_response(clock)
    review_on = RECEIVED + dt.timedelta(days=60)
    book.accept(AmendIntake(by="mgr-7", reason="Agreed large print",
                            adjustments=(Adjustment(description="Large print letters"),),
                            adjustments_review_on=review_on))
    review = next(d for d in book.deadlines if d.kind is DeadlineKind.REVIEW)
    assert review.due == review_on and review.status is DeadlineStatus.PENDING
    assert review.remind_at is not None and review.remind_at < review.ends_at
    book.accept(AmendIntake(by="mgr-7", reason="Reviewed with the resident",
                            adjustments=(Adjustment(description="Large print letters"),),
                            adjustments_review_on=review_on + dt.timedelta(days=90)))
    reviews = [d for d in book.deadlines if d.kind is DeadlineKind.REVIEW]
    assert [d.status for d in reviews] == [DeadlineStatus.MET, DeadlineStatus.PENDING]


def test_a_letter_accepted_while_one_is_being_recorded_takes_the_next_number() -> None:
    """Two action updates, the second accepted while the first is recorded: two letter ids."""
    clock = Clock(london_time(RECEIVED, dt.time(10)))
    numbers = {}
    for counted in (True, False):
        book = book_at_stage1_response(clock)
        book.count_in_flight = counted
        book.queue.clear()
        book.accept(DelayAction(by=STAGE1_HANDLER, action_id="A1",
                                revised_due=dt.date(2027, 3, 1), reason="Supplier delay"))
        book.in_flight = book.queue.pop(0)  # as the workflow does while recording it
        book.accept(CompleteAction(by=STAGE1_HANDLER, action_id="A1"))
        (first,) = book.in_flight.letters
        (second,) = book.queue[0].letters
        numbers[counted] = (first.seq, second.seq)
    assert numbers[True] == (1, 2)
    # Cases started before the fix keep numbering as they did (replay), the same id twice.
    assert numbers[False] == (1, 1)
