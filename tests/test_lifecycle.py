"""The complaint state machine: every transition, every refusal, every Code guard."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import pytest

from domain.guards import Limits
from domain.lifecycle import TRIGGERS, ActionRefused, ComplaintState, mermaid_diagram
from domain.machine import ComplaintMachine
from models.actions import (
    AcknowledgeEscalation,
    AddIssue,
    Close,
    CompleteAction,
    Decline,
    Extend,
    OmbudsmanOrderKind,
    PayRemedy,
    RefuseEscalation,
    ReopenOnOrder,
    Respond,
)
from models.case import Decision, ExclusionGround, PointFinding
from tests.cases import (
    AT,
    DEFINITION,
    STAGE1_HANDLER,
    STAGE2_HANDLER,
    case_in,
    new_case,
    respond_to,
    valid_action,
)

S = ComplaintState
SAME = "same"
# Worked out by hand from the Code and the brief, not read from the transition table:
# state -> trigger -> destination (SAME for an internal transition) or "refused: <text>"
# when the state allows the trigger but the Code's guard refuses the example action.
EXPECTED: dict[ComplaintState, dict[str, str]] = {
    S.RECEIVED: {"acknowledge": S.STAGE1_INVESTIGATING, "decline": S.DECLINED,
                 "add_issue": SAME, "record_contact": SAME, "withdraw": S.WITHDRAWN,
                 "refer_ombudsman": S.WITH_OMBUDSMAN, "void": S.VOIDED, "reassign": SAME,
                 "assign": SAME},
    S.DECLINED: {"record_contact": SAME, "refer_ombudsman": S.WITH_OMBUDSMAN,
                 "reopen_on_order": S.RECEIVED},
    S.STAGE1_INVESTIGATING: {"extend": S.STAGE1_EXTENDED, "respond": S.STAGE1_RESPONDED,
                             "add_issue": SAME, "record_contact": SAME,
                             "withdraw": S.WITHDRAWN, "refer_ombudsman": S.WITH_OMBUDSMAN,
                             "decline": S.DECLINED, "void": S.VOIDED, "reassign": SAME},
    S.STAGE1_EXTENDED: {"extend": S.STAGE1_EXTENDED, "respond": S.STAGE1_RESPONDED,
                        "add_issue": SAME, "record_contact": SAME, "withdraw": S.WITHDRAWN,
                        "refer_ombudsman": S.WITH_OMBUDSMAN, "decline": S.DECLINED,
                        "void": S.VOIDED, "reassign": SAME},
    S.STAGE1_RESPONDED: {"request_escalation": S.STAGE2_REQUESTED, "add_issue": SAME,
                         "record_contact": SAME, "complete_action": SAME,
                         "withdraw": S.WITHDRAWN, "refer_ombudsman": S.WITH_OMBUDSMAN,
                         "close": "refused: 7.3", "reopen_on_order": S.STAGE2_REQUESTED,
                         "delay_action": SAME, "pay_remedy": SAME, "void": S.VOIDED,
                         "reassign": SAME},
    S.STAGE2_REQUESTED: {"refuse_escalation": S.CLOSED,
                         "acknowledge_escalation": S.STAGE2_REVIEWING, "add_issue": SAME,
                         "record_contact": SAME, "complete_action": SAME,
                         "withdraw": S.WITHDRAWN, "refer_ombudsman": S.WITH_OMBUDSMAN,
                         "delay_action": SAME, "pay_remedy": SAME, "void": S.VOIDED,
                         "reassign": SAME, "assign": SAME},
    S.STAGE2_REVIEWING: {"extend": S.STAGE2_EXTENDED, "respond": S.STAGE2_RESPONDED,
                         "add_issue": SAME, "record_contact": SAME, "complete_action": SAME,
                         "withdraw": S.WITHDRAWN, "refer_ombudsman": S.WITH_OMBUDSMAN,
                         "delay_action": SAME, "pay_remedy": SAME, "void": S.VOIDED,
                         "reassign": SAME},
    S.STAGE2_EXTENDED: {"extend": S.STAGE2_EXTENDED, "respond": S.STAGE2_RESPONDED,
                        "add_issue": SAME, "record_contact": SAME, "complete_action": SAME,
                        "withdraw": S.WITHDRAWN, "refer_ombudsman": S.WITH_OMBUDSMAN,
                        "delay_action": SAME, "pay_remedy": SAME, "void": S.VOIDED,
                        "reassign": SAME},
    S.STAGE2_RESPONDED: {"add_issue": SAME, "record_contact": SAME, "complete_action": SAME,
                         "refer_ombudsman": S.WITH_OMBUDSMAN, "close": "refused: 7.3",
                         "delay_action": SAME, "pay_remedy": SAME, "void": S.VOIDED,
                         "reassign": SAME},
    S.WITH_OMBUDSMAN: {"record_contact": SAME, "complete_action": SAME,
                       "reopen_on_order": "refused: already at stage 2",
                       "close": "refused: 7.3", "delay_action": SAME, "pay_remedy": SAME,
                       "reassign": SAME},
    S.CLOSED: {"record_contact": SAME, "complete_action": "refused: no open action",
               "refer_ombudsman": S.WITH_OMBUDSMAN, "reopen_on_order": S.STAGE2_REQUESTED,
               "request_escalation": S.STAGE2_REQUESTED,
               "delay_action": "refused: no open action",
               "pay_remedy": "refused: already recorded as paid"},
    S.WITHDRAWN: {"record_contact": SAME},
    S.VOIDED: {"record_contact": SAME},
}
#: The Ombudsman's contact, determinations and orders: wherever a case is live or answered.
_OMBUDSMAN = {"ombudsman_contact": SAME, "ombudsman_determination": SAME,
              "comply_order": "refused: no open Ombudsman order"}
_state: ComplaintState  # Both loops below reuse it over different subsets of the states.
for _state in (*(s for s in S if s not in (S.WITHDRAWN, S.VOIDED, S.WITH_OMBUDSMAN)),):
    EXPECTED[_state] |= _OMBUDSMAN
# Who the complaint is from and what they need can be corrected while it is live.
for _state in (*(s for s in S if s not in (S.WITHDRAWN, S.VOIDED, S.DECLINED, S.CLOSED)),):
    EXPECTED[_state] |= {"amend_intake": SAME}
# With the Ombudsman investigating, its enquiries are part of the investigation.
EXPECTED[S.WITH_OMBUDSMAN] |= {k: v for k, v in _OMBUDSMAN.items() if k != "ombudsman_contact"}
PAIRS = [(state, trigger) for state in S for trigger in TRIGGERS]


def test_expected_table_covers_every_state() -> None:
    """The hand-written expectations name every state of the machine."""
    assert set(EXPECTED) == set(S)


@pytest.mark.parametrize(("state", "trigger"), PAIRS, ids=[f"{s.value}-{t}" for s, t in PAIRS])
def test_every_trigger_in_every_state(state: ComplaintState, trigger: str) -> None:
    """Each (state, trigger) moves where the Code says, or is refused leaving the case as it was."""
    machine = case_in(state)
    action = valid_action(trigger, machine)
    before = machine.case.model_dump()
    expected = EXPECTED[state].get(trigger)
    if expected is None or expected.startswith("refused: "):
        reason = machine.refusal(action)
        assert reason is not None
        if expected is None:
            assert f"while the complaint is '{state.value}'" in reason
            assert "allowed now:" in reason
            for allowed in EXPECTED[state]:
                assert allowed in reason
        else:
            assert expected.removeprefix("refused: ") in reason
        with pytest.raises(ActionRefused):
            machine.apply(action, AT)
        assert machine.case.model_dump() == before
    else:
        event = machine.apply(action, AT)
        destination = state if expected == SAME else S(expected)
        assert machine.state is destination
        assert (event.from_state, event.to_state, event.action) == (
            state.value, destination.value, trigger)
        assert machine.case.audit[-1] == event


def test_allowed_lists_match_hand_table() -> None:
    """What the machine says is allowed in each state is exactly the hand-written list."""
    for state in S:
        assert set(case_in(state).allowed()) == set(EXPECTED[state]), state


def test_stage2_handler_must_differ_from_stage1() -> None:
    """Code 6.13: the stage 1 handler cannot acknowledge or answer stage 2."""
    machine = case_in(S.STAGE2_REQUESTED)
    same = AcknowledgeEscalation(by=STAGE1_HANDLER, handler_id=STAGE1_HANDLER,
                                 definition=DEFINITION)
    assert "6.13" in (machine.refusal(same) or "")
    machine = case_in(S.STAGE2_REVIEWING)
    answer = respond_to(machine.case, STAGE1_HANDLER, action_id="A9")
    assert "6.13" in (machine.refusal(answer) or "")
    assert machine.refusal(respond_to(machine.case, STAGE2_HANDLER, action_id="A9")) is None


def test_extensions_add_up_against_the_cap() -> None:
    """Code 6.4: two stage 1 extensions may not pass 10 working days without good reason."""
    machine = case_in(S.STAGE1_INVESTIGATING)
    machine.apply(Extend(by="s", working_days=6, reason="Survey needed"), AT)
    second = Extend(by="s", working_days=5, reason="Contractor delay")
    reason = machine.refusal(second)
    assert reason is not None and "11 working days" in reason and "6.4" in reason
    assert "at most 4" in reason
    assert machine.refusal(second.model_copy(update={"working_days": 4})) is None
    justified = second.model_copy(update={"good_reason": "Asbestos found; specialist needed"})
    machine.apply(justified, AT)
    assert machine.case.extension_days(1) == 11
    assert machine.case.extensions[-1].good_reason == "Asbestos found; specialist needed"


def test_stage2_cap_is_twenty() -> None:
    """Code 6.15: stage 2 allows 20 working days of extension, not 21."""
    machine = case_in(S.STAGE2_REVIEWING)
    assert machine.refusal(Extend(by="s", working_days=20, reason="Complex")) is None
    reason = machine.refusal(Extend(by="s", working_days=21, reason="Complex"))
    assert reason is not None and "6.15" in reason


def test_policy_caps_are_used() -> None:
    """A stricter policy cap (5 working days) refuses a 6-day extension."""
    machine = ComplaintMachine(new_case(), Limits(stage1_extension_cap=5))
    machine.apply(valid_action("acknowledge", machine), AT)
    assert "over the cap of 5" in (machine.refusal(
        Extend(by="s", working_days=6, reason="Complex")) or "")


def test_response_must_answer_every_point() -> None:
    """Code 6.7: a response missing a point of the definition is refused, naming it."""
    machine = case_in(S.STAGE1_INVESTIGATING)
    partial = Respond(by=STAGE1_HANDLER, decision=Decision.NOT_UPHELD, findings=(PointFinding(
        point=DEFINITION.points[0], finding="Repaired", reason="Job sheet 44"),))
    reason = machine.refusal(partial)
    assert reason is not None and DEFINITION.points[1] in reason and "6.7" in reason


def test_upheld_response_needs_a_remedy() -> None:
    """Code 7.1: an upheld complaint must set out what will be put right."""
    machine = case_in(S.STAGE1_INVESTIGATING)
    response = respond_to(machine.case, STAGE1_HANDLER).model_copy(
        update={"decision": Decision.UPHELD, "remedies": ()})
    assert "7.1" in (machine.refusal(response) or "")


def test_related_issue_is_folded_into_stage1_and_must_be_answered() -> None:
    """Code 6.8: a related issue before the response joins stage 1 and needs an answer."""
    machine = case_in(S.STAGE1_INVESTIGATING)
    machine.apply(AddIssue(by="s", description="The gutter also leaks", related=True), AT)
    assert machine.case.issues[-1].folded_into_stage1 is True
    old_answer = Respond(by=STAGE1_HANDLER, decision=Decision.NOT_UPHELD, findings=tuple(
        PointFinding(point=p, finding="f", reason="r") for p in DEFINITION.points))
    assert "The gutter also leaks" in (machine.refusal(old_answer) or "")


@pytest.mark.parametrize(("state", "related", "delay"), [
    (S.STAGE1_INVESTIGATING, False, False),
    (S.STAGE1_INVESTIGATING, True, True),
    (S.STAGE1_RESPONDED, True, False),
])
def test_other_issues_become_new_complaints(state: ComplaintState, related: bool,
                                            delay: bool) -> None:
    """Code 6.8: unrelated, delaying or post-response issues are logged as new complaints."""
    machine = case_in(state)
    machine.apply(AddIssue(by="s", description="Parking bays", related=related,
                           would_unreasonably_delay=delay), AT)
    assert machine.case.issues[-1].folded_into_stage1 is False
    assert machine.state is state


def test_out_of_time_decline_needs_discretion_considered() -> None:
    """Code 2.3: declining as over 12 months old needs discretion recorded."""
    machine = ComplaintMachine(new_case(issue_occurred_on=dt.date(2025, 6, 1)))
    decline = Decline(by="s", grounds=(ExclusionGround.OLDER_THAN_12_MONTHS,),
                      explanation="The leak was repaired in June 2025")
    assert "discretion" in (machine.refusal(decline) or "")
    considered = decline.model_copy(update={
        "discretion_considered": "No good reason for the delay was given"})
    machine.apply(considered, AT)
    assert machine.state is S.DECLINED
    assert machine.case.declined is not None
    assert machine.case.declined.discretion_considered == "No good reason for the delay was given"


def test_decline_within_twelve_months_is_refused() -> None:
    """Code 2.3: an issue 11 months before receipt cannot be declined as out of time."""
    machine = ComplaintMachine(new_case(issue_occurred_on=dt.date(2025, 12, 21)))
    decline = Decline(by="s", grounds=(ExclusionGround.OLDER_THAN_12_MONTHS,),
                      explanation="Old", discretion_considered="Considered")
    reason = machine.refusal(decline)
    assert reason is not None and "2025-12-21" in reason and "2.3" in reason
    # Exactly twelve months and a day before receipt (2026-11-20) may be declined.
    machine = ComplaintMachine(new_case(issue_occurred_on=dt.date(2025, 11, 19)))
    assert machine.refusal(decline) is None


def test_escalation_window_is_not_a_ground_to_decline() -> None:
    """Lateness of an escalation request is no ground to refuse a complaint outright."""
    machine = ComplaintMachine(new_case())
    decline = Decline(by="s", grounds=(ExclusionGround.OUTSIDE_ESCALATION_WINDOW,),
                      explanation="Too late")
    assert "2.2" in (machine.refusal(decline) or "")


def test_refused_escalation_then_ombudsman_order_reopens_stage2() -> None:
    """Code 5.11: after a refused escalation the Ombudsman may order stage 2."""
    machine = case_in(S.STAGE2_REQUESTED)
    machine.apply(RefuseEscalation(by="s", grounds=(ExclusionGround.LEGAL_PROCEEDINGS,),
                                   explanation="Claim filed at court"), AT)
    assert machine.state is S.CLOSED and machine.case.escalation_refused is not None
    machine.apply(ReopenOnOrder(by="s", order=OmbudsmanOrderKind.ESCALATE_TO_STAGE2,
                                details="Order 123"), AT)
    assert machine.state is S.STAGE2_REQUESTED
    assert machine.case.ombudsman_orders == ["escalate_to_stage2: Order 123"]


def test_declined_complaint_reopened_on_order_goes_back_to_received() -> None:
    """Code 2.4: the Ombudsman may tell the landlord to take on an excluded complaint."""
    machine = case_in(S.DECLINED)
    wrong = ReopenOnOrder(by="s", order=OmbudsmanOrderKind.ESCALATE_TO_STAGE2, details="x")
    assert "5.11" in (machine.refusal(wrong) or "")
    machine.apply(wrong.model_copy(update={"order": OmbudsmanOrderKind.TAKE_ON_COMPLAINT}), AT)
    assert machine.state is S.RECEIVED


def test_close_after_actions_completed() -> None:
    """Code 7.3: once every action is complete and every payment made the case may close."""
    machine = case_in(S.STAGE2_RESPONDED)
    for record in list(machine.case.open_actions()):
        machine.apply(CompleteAction(by="s", action_id=record.action.action_id), AT)
    assert machine.case.open_actions() == []
    reason = machine.refusal(Close(by="s"))
    assert reason is not None and "stage 1 remedy 2, stage 2 remedy 2" in reason
    for stage in (1, 2):
        machine.apply(PayRemedy(by="s", stage=stage, remedy=2, paid_on=AT.date(),
                                amount=Decimal("150.00")), AT)
    machine.apply(Close(by="s"), AT)
    assert machine.state is S.CLOSED and machine.case.closed_at == AT


def test_refused_signal_is_recorded_without_changing_state() -> None:
    """A refusal can be put on the audit trail while the state stays put."""
    machine = case_in(S.RECEIVED)
    action = valid_action("respond", case_in(S.STAGE1_INVESTIGATING))
    reason = machine.refusal(action)
    assert reason is not None
    event = machine.record_refusal(action, reason, AT)
    assert (event.accepted, event.from_state, event.to_state) == (False, "received", "received")
    assert machine.state is S.RECEIVED and machine.case.audit == [event]


def test_audit_sequence_has_no_gaps() -> None:
    """The audit trail numbers every event 1..n in order."""
    machine = case_in(S.WITH_OMBUDSMAN)
    assert [e.seq for e in machine.case.audit] == list(range(1, len(machine.case.audit) + 1))
    assert machine.case.audit[0].action == "acknowledge"


def test_stage_follows_the_state() -> None:
    """The stage is 0 before acceptance, 1 in stage 1 and 2 from the escalation request."""
    assert case_in(S.RECEIVED).case.stage == 0
    assert case_in(S.STAGE1_EXTENDED).case.stage == 1
    assert case_in(S.STAGE2_REQUESTED).case.stage == 2
    assert case_in(S.WITH_OMBUDSMAN).case.stage == 2


def test_machine_resumes_from_a_saved_case() -> None:
    """A case file serialised and loaded again drives on from where it was."""
    machine = case_in(S.STAGE2_REVIEWING)
    restored = ComplaintMachine(type(machine.case).model_validate_json(
        machine.case.model_dump_json()))
    assert restored.state is S.STAGE2_REVIEWING
    restored.apply(Extend(by=STAGE2_HANDLER, working_days=2, reason="Report late"), AT)
    assert restored.state is S.STAGE2_EXTENDED


def test_readme_diagram_is_current() -> None:
    """The Mermaid diagram in the README is the one generated from the transition table."""
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- lifecycle:start -->\n```mermaid\n(.*?)```\n<!-- lifecycle:end -->",
                      readme, re.S)
    assert found is not None, "README lacks the lifecycle block; run `complaints diagram --write`"
    assert found.group(1) == mermaid_diagram()


def test_assigning_names_who_will_acknowledge_and_acknowledging_clears_it() -> None:
    """A claim sets the assignee, the same person again is refused, acknowledging clears it."""
    from models.actions import Assign

    machine = case_in(S.RECEIVED)
    machine.apply(Assign(by="staff-101", to="staff-101"), AT)
    assert machine.case.assignee == "staff-101"
    again = machine.refusal(Assign(by="mgr-1", to="STAFF-101"))
    assert again is not None and "already has this case" in again
    machine.apply(valid_action("acknowledge", machine), AT)
    assert machine.case.assignee is None


def test_a_stage_2_request_is_never_assigned_to_a_stage_1_person() -> None:
    """Assigning stage 2 to whoever handled stage 1 is refused under Code 6.13."""
    from models.actions import Assign

    machine = case_in(S.STAGE2_REQUESTED)
    refusal = machine.refusal(Assign(by="mgr-1", to=machine.case.stage1_handler or ""))
    assert refusal is not None and "6.13" in refusal


def test_cases_before_revision_3_cannot_be_assigned() -> None:
    """A case that started under revision 2 refuses assign, saying what to do instead."""
    from models.actions import Assign

    machine = case_in(S.RECEIVED, casework=2)
    refusal = machine.refusal(Assign(by="mgr-1", to="staff-101"))
    assert refusal is not None and "acknowledge it naming the handler" in refusal
