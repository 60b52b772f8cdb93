"""The complaint lifecycle: states, the transition table and the Code's guards.

The table :data:`TRANSITIONS` is the whole BPMN-style lifecycle, declared as data in one
place. :class:`ComplaintMachine` drives it with ``transitions`` over a :class:`CaseFile`:
:meth:`ComplaintMachine.refusal` says why an action is not allowed (state or Code) without
changing anything, and :meth:`ComplaintMachine.apply` performs an allowed one. Everything
here is pure and deterministic (no clock, no I/O), so the Temporal workflow can run it and
replay it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from transitions import EventData, Machine

from models.actions import (
    ACTION_BY_TRIGGER,
    Acknowledge,
    AcknowledgeEscalation,
    Action,
    AddIssue,
    AmendIntake,
    Assign,
    CompleteAction,
    ComplyOrder,
    Decline,
    DelayAction,
    Extend,
    OmbudsmanContact,
    OmbudsmanContactKind,
    OmbudsmanDetermination,
    OmbudsmanOrderKind,
    PayRemedy,
    Reassign,
    ReassignRole,
    RecordContact,
    RefuseEscalation,
    ReopenOnOrder,
    RequestEscalation,
    Respond,
    Void,
    VoidReason,
    Withdraw,
)
from models.case import (
    DECLINE_GROUNDS,
    ActionDelay,
    ActionRecord,
    AuditEvent,
    CaseFile,
    Decision,
    DecisionRecord,
    ExclusionGround,
    ExtensionRecord,
    IssueRecord,
    OrderRecord,
    PartyRole,
    PaymentRecord,
    ResponseRecord,
    VoidRecord,
    WithdrawalRecord,
    letter_channels,
)
from models.limits import staff_key
from models.messages import DeadlineKind

# transitions logs every trigger at INFO, replays included: keep only its warnings.
logging.getLogger("transitions").setLevel(logging.WARNING)


class ComplaintState(StrEnum):
    """Where a complaint is in the Code's two-stage process.

    Attributes:
        RECEIVED: Logged, awaiting the stage 1 acknowledgement and definition (6.2: 5 WD).
        DECLINED: Not accepted as a complaint on a section 2 ground, explained in writing
            with the right to go to the Ombudsman (2.4).
        STAGE1_INVESTIGATING: Acknowledged and defined; stage 1 response due (6.3).
        STAGE1_EXTENDED: As above with the response date extended (6.4, 6.5).
        STAGE1_RESPONDED: Stage 1 response issued (6.9); outstanding actions tracked; the
            resident may escalate within the policy's window.
        STAGE2_REQUESTED: The resident asked for stage 2; acknowledgement due (6.11: 5 WD).
        STAGE2_REVIEWING: Stage 2 acknowledged by a different person (6.13); final
            response due (6.14).
        STAGE2_EXTENDED: As above with the final response date extended (6.15, 6.16).
        STAGE2_RESPONDED: Final response issued (6.19); actions tracked to completion.
        WITH_OMBUDSMAN: The Housing Ombudsman has taken the complaint; the landlord stops
            resolving directly unless asked, and complies with any order.
        CLOSED: Finished: every remedy and action followed through (7.3), the escalation
            window lapsed, or escalation was refused (5.11).
        WITHDRAWN: The resident withdrew the complaint (how they confirmed it is recorded,
            and a letter confirms it).
        VOIDED: Not a complaint to count: a duplicate, merged into another case, or created
            in error. No letter goes to the resident and reports leave it out.
    """

    RECEIVED = "received"
    DECLINED = "declined"
    STAGE1_INVESTIGATING = "stage1_investigating"
    STAGE1_EXTENDED = "stage1_extended"
    STAGE1_RESPONDED = "stage1_responded"
    STAGE2_REQUESTED = "stage2_requested"
    STAGE2_REVIEWING = "stage2_reviewing"
    STAGE2_EXTENDED = "stage2_extended"
    STAGE2_RESPONDED = "stage2_responded"
    WITH_OMBUDSMAN = "with_ombudsman"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"
    VOIDED = "voided"


S = ComplaintState
STAGE1_OPEN = [S.STAGE1_INVESTIGATING, S.STAGE1_EXTENDED]
STAGE2_OPEN = [S.STAGE2_REVIEWING, S.STAGE2_EXTENDED]
ACTIVE = [S.RECEIVED, *STAGE1_OPEN, S.STAGE1_RESPONDED, S.STAGE2_REQUESTED, *STAGE2_OPEN,
          S.STAGE2_RESPONDED]
#: States where remedies and outstanding actions may still be open.
ACTIONS_TRACKED = [S.STAGE1_RESPONDED, S.STAGE2_REQUESTED, *STAGE2_OPEN, S.STAGE2_RESPONDED,
                   S.WITH_OMBUDSMAN, S.CLOSED]

# The lifecycle. Every transition also has the condition "code_allows" (added below), so the
# machine itself never moves when a guard of the Code refuses. `dest: None` is an internal
# transition: the action is recorded and the state stays.
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "acknowledge", "source": S.RECEIVED, "dest": S.STAGE1_INVESTIGATING,
     "after": "on_acknowledge"},
    {"trigger": "decline", "source": [S.RECEIVED, *STAGE1_OPEN], "dest": S.DECLINED,
     "after": "on_decline"},
    {"trigger": "extend", "source": [S.STAGE1_INVESTIGATING, S.STAGE1_EXTENDED],
     "dest": S.STAGE1_EXTENDED, "after": "on_extend"},
    {"trigger": "extend", "source": [S.STAGE2_REVIEWING, S.STAGE2_EXTENDED],
     "dest": S.STAGE2_EXTENDED, "after": "on_extend"},
    {"trigger": "respond", "source": STAGE1_OPEN, "dest": S.STAGE1_RESPONDED,
     "after": "on_respond"},
    {"trigger": "respond", "source": STAGE2_OPEN, "dest": S.STAGE2_RESPONDED,
     "after": "on_respond"},
    {"trigger": "request_escalation", "source": [S.STAGE1_RESPONDED, S.CLOSED],
     "dest": S.STAGE2_REQUESTED, "after": "on_request_escalation"},
    {"trigger": "refuse_escalation", "source": S.STAGE2_REQUESTED, "dest": S.CLOSED,
     "after": "on_refuse_escalation"},
    {"trigger": "acknowledge_escalation", "source": S.STAGE2_REQUESTED,
     "dest": S.STAGE2_REVIEWING, "after": "on_acknowledge_escalation"},
    {"trigger": "add_issue", "source": STAGE1_OPEN, "dest": None,
     "conditions": "issue_folds", "after": "on_add_issue"},
    {"trigger": "add_issue", "source": ACTIVE, "dest": None, "after": "on_add_issue"},
    {"trigger": "record_contact", "source": list(S), "dest": None, "after": "on_record_contact"},
    {"trigger": "complete_action", "source": ACTIONS_TRACKED, "dest": None,
     "after": "on_complete_action"},
    {"trigger": "withdraw", "source": [s for s in ACTIVE if s is not S.STAGE2_RESPONDED],
     "dest": S.WITHDRAWN, "after": "on_withdraw"},
    {"trigger": "refer_ombudsman", "source": [*ACTIVE, S.DECLINED, S.CLOSED],
     "dest": S.WITH_OMBUDSMAN, "after": "on_refer_ombudsman"},
    {"trigger": "reopen_on_order", "source": [S.DECLINED, S.WITH_OMBUDSMAN], "dest": S.RECEIVED,
     "conditions": "order_takes_on_complaint", "after": "on_reopen"},
    {"trigger": "reopen_on_order", "source": [S.CLOSED, S.WITH_OMBUDSMAN, S.STAGE1_RESPONDED],
     "dest": S.STAGE2_REQUESTED, "conditions": "order_escalates", "after": "on_reopen"},
    {"trigger": "close", "source": [S.STAGE1_RESPONDED, S.STAGE2_RESPONDED, S.WITH_OMBUDSMAN],
     "dest": S.CLOSED, "after": "on_close"},
    {"trigger": "delay_action", "source": ACTIONS_TRACKED, "dest": None,
     "after": "on_delay_action"},
    {"trigger": "pay_remedy", "source": ACTIONS_TRACKED, "dest": None, "after": "on_pay_remedy"},
    {"trigger": "void", "source": ACTIVE, "dest": S.VOIDED, "after": "on_void"},
    {"trigger": "reassign", "source": [*ACTIVE, S.WITH_OMBUDSMAN], "dest": None,
     "after": "on_reassign"},
    {"trigger": "amend_intake", "source": [*ACTIVE, S.WITH_OMBUDSMAN], "dest": None,
     "after": "on_amend_intake"},
    {"trigger": "ombudsman_contact", "source": [*ACTIVE, S.DECLINED, S.CLOSED], "dest": None,
     "after": "on_ombudsman_contact"},
    {"trigger": "ombudsman_determination", "source": [*ACTIVE, S.WITH_OMBUDSMAN, S.DECLINED,
                                                      S.CLOSED],
     "dest": None, "after": "on_ombudsman_determination"},
    {"trigger": "comply_order", "source": [*ACTIVE, S.WITH_OMBUDSMAN, S.DECLINED, S.CLOSED],
     "dest": None, "after": "on_comply_order"},
    {"trigger": "assign", "source": [S.RECEIVED, S.STAGE2_REQUESTED], "dest": None,
     "after": "on_assign"},
]
for _transition in TRANSITIONS:
    _conditions = _transition.get("conditions", [])
    _transition["conditions"] = ["code_allows", *([_conditions] if isinstance(_conditions, str)
                                                  else _conditions)]

K = DeadlineKind
#: The clocks that may run in each state. Whenever a case enters a state, every pending
#: deadline whose kind is not listed is cancelled: leaving a stage (or ending the case)
#: stops that stage's clocks, so nothing can breach on a stage the case has left. Action
#: deadlines (7.3) outlive the responses that set them, until the actions are done; a
#: withdrawn case takes no more actions, so they stop there too.
CLOCKS: dict[ComplaintState, frozenset[DeadlineKind]] = {
    S.RECEIVED: frozenset({K.EARLY_CONTACT, K.STAGE1_ACKNOWLEDGEMENT}),
    S.DECLINED: frozenset(),
    S.STAGE1_INVESTIGATING: frozenset({K.EARLY_CONTACT, K.STAGE1_RESPONSE}),
    S.STAGE1_EXTENDED: frozenset({K.EARLY_CONTACT, K.STAGE1_RESPONSE}),
    S.STAGE1_RESPONDED: frozenset({K.ESCALATION_WINDOW, K.ACTION}),
    S.STAGE2_REQUESTED: frozenset({K.STAGE2_ACKNOWLEDGEMENT, K.ACTION}),
    S.STAGE2_REVIEWING: frozenset({K.STAGE2_RESPONSE, K.ACTION}),
    S.STAGE2_EXTENDED: frozenset({K.STAGE2_RESPONSE, K.ACTION}),
    S.STAGE2_RESPONDED: frozenset({K.ACTION}),
    S.WITH_OMBUDSMAN: frozenset({K.ACTION}),
    S.CLOSED: frozenset({K.ACTION}),
    S.WITHDRAWN: frozenset(),
    S.VOIDED: frozenset(),
}
# An adjustments review (5.10) runs while the complaint is open or with the Ombudsman.
for _state in (*ACTIVE, S.WITH_OMBUDSMAN):
    CLOCKS[_state] = CLOCKS[_state] | {K.REVIEW}
# An Ombudsman instruction or order runs whatever the landlord's process does, until it is
# complied with; only withdrawing or voiding the case stops it.
for _state in S:
    if _state not in (S.WITHDRAWN, S.VOIDED):
        CLOCKS[_state] = CLOCKS[_state] | {K.OMBUDSMAN}
#: States in which the case is over: no clock of the Code runs (actions aside, see CLOCKS).
ENDED = frozenset({S.CLOSED, S.DECLINED, S.WITHDRAWN, S.VOIDED})

TRIGGERS: tuple[str, ...] = tuple(dict.fromkeys(t["trigger"] for t in TRANSITIONS))

#: What each trigger does, in words, for refusals and the CLI.
TRIGGER_TEXT: dict[str, str] = {
    "acknowledge": "acknowledge the complaint",
    "decline": "decline the complaint",
    "extend": "extend the response time",
    "respond": "issue a response",
    "request_escalation": "request stage 2",
    "refuse_escalation": "refuse escalation",
    "acknowledge_escalation": "acknowledge the stage 2 request",
    "add_issue": "add an issue",
    "record_contact": "record contact",
    "complete_action": "complete an action",
    "withdraw": "withdraw the complaint",
    "refer_ombudsman": "refer to the Ombudsman",
    "reopen_on_order": "reopen on the Ombudsman's order",
    "close": "close the case",
    "delay_action": "report an action delayed",
    "pay_remedy": "record a remedy paid",
    "void": "void the case",
    "reassign": "reassign the case",
    "amend_intake": "amend who the complaint is from or what they need",
    "ombudsman_contact": "record contact from the Ombudsman",
    "ombudsman_determination": "record the Ombudsman's determination",
    "comply_order": "record compliance with an Ombudsman order",
    "assign": "assign or claim the case",
}


#: The ``workflow.patched`` id under which a case takes casework revision 2 (see Limits).
CASEWORK_PATCH = "casework-2"
#: The patch id of casework revision 3: an order to escalate overrides a late request.
CASEWORK_3_PATCH = "casework-3"
#: The triggers revision 3 adds: refused on cases that started before it.
CASEWORK_3_TRIGGERS = frozenset({"assign"})
#: The triggers revision 2 adds: refused on cases that started before it.
CASEWORK_2_TRIGGERS = frozenset({"delay_action", "pay_remedy", "void", "reassign",
                                 "ombudsman_contact", "ombudsman_determination",
                                 "comply_order", "amend_intake"})


class ActionRefused(Exception):
    """An action the state or the Code does not allow; the message says what is allowed."""


# --- Guards: each returns the reason for refusing, or None. Pure functions of the case,
# --- the action and the policy limits the workflow passes in.

Guard = Callable[[CaseFile, Any, "Limits"], "str | None"]


class Limits:
    """The policy figures the guards need (kept small so the machine stays pure).

    Args:
        stage1_extension_cap: Working days of extension allowed at stage 1 (6.4).
        stage2_extension_cap: Working days of extension allowed at stage 2 (6.15).
        exclusion_window_months: Issues older than this before receipt may be excluded (2.3).
        strict: Apply the guards added after the first release: staff ids compared without
            regard to case (6.13), and an Ombudsman order to take on a complaint only while
            it is still excluded (2.4). Cases that started before them replay without them
            (the workflow passes ``workflow.patched(...)``); everything else uses them.
        casework: The casework rules' revision. 2 adds late stage 2 requests, declining on
            a ground that arises after acknowledgement, orders to escalate any answered
            case, the different person checked against everyone at stage 1, reasons for
            withdrawals, delayed actions, remedy payments, voiding and reassigning. Cases
            that started before it keep revision 1 (:data:`CASEWORK_PATCH`). 3: an
            Ombudsman order to escalate clears a late request's lateness, so the landlord
            can no longer refuse it as late (:data:`CASEWORK_3_PATCH`).
    """

    def __init__(self, stage1_extension_cap: int = 10, stage2_extension_cap: int = 20,
                 exclusion_window_months: int = 12, *, strict: bool = True,
                 casework: int = 1) -> None:
        self.extension_cap = {1: stage1_extension_cap, 2: stage2_extension_cap}
        self.exclusion_window_months = exclusion_window_months
        self.strict = strict
        self.casework = casework

    def same_person(self, first: str | None, second: str | None) -> bool:
        """Whether two staff ids name the same person (case-insensitively when strict)."""
        if first is None or second is None:
            return False
        if self.strict:
            # Invisible characters, look-alike forms and case never make two people.
            return staff_key(first) == staff_key(second)
        return first == second


def _months_before(day: dt.date, months: int) -> dt.date:
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    month += 1
    if year < dt.MINYEAR:
        return dt.date.min  # an absurd window (a policy may set any number of months)
    # Clamp the day: 31 March less one month is the last day of February.
    for candidate in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month, min(day.day, candidate))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def guard_decline(case: CaseFile, action: Decline, limits: Limits) -> str | None:
    """Decline only on grounds section 2 permits, with discretion considered (2.1-2.5)."""
    bad = [g.value for g in action.grounds if g not in DECLINE_GROUNDS]
    if bad:
        return (f"cannot decline on {', '.join(bad)}: a complaint may be declined only on "
                f"{', '.join(sorted(g.value for g in DECLINE_GROUNDS))} (Code 2.2)")
    if limits.strict and len(set(action.grounds)) != len(action.grounds):
        return "give each ground once: the letter explains every ground to the resident (2.4)"
    acknowledged = case.state != S.RECEIVED
    if acknowledged and limits.casework < 2:
        return "cannot decline the complaint once it is acknowledged on this case"
    if acknowledged and ExclusionGround.OLDER_THAN_12_MONTHS in action.grounds:
        return ("the twelve-month ground was known when the complaint was acknowledged; after "
                "acknowledgement decline only on a ground that arose since, such as legal "
                "proceedings (Code 2.2)")
    if ExclusionGround.OLDER_THAN_12_MONTHS in action.grounds:
        if action.discretion_considered is None:
            return ("declining an out-of-time complaint needs discretion_considered: the Code "
                    "requires considering discretion to accept it (2.3)")
        limit = _months_before(case.received_on, limits.exclusion_window_months)
        occurred = case.issue_occurred_on or action.issue_occurred_on
        if limits.casework >= 2 and occurred is None:
            return ("the twelve-month ground needs the date the issue occurred: give "
                    "issue_occurred_on (and aware_on if the resident learnt of it later) "
                    "(Code 2.3)")
        if occurred is not None and occurred >= limit:
            return (f"the issue occurred on {occurred.isoformat()}, within "
                    f"{limits.exclusion_window_months} months of receipt on "
                    f"{case.received_on.isoformat()}: it must be accepted (Code 2.3)")
        if limits.casework >= 2 and action.aware_on is not None and action.aware_on >= limit:
            return (f"the resident became aware of the issue on {action.aware_on.isoformat()}, "
                    f"within {limits.exclusion_window_months} months of receipt: it must be "
                    "accepted (Code 2.3)")
    return None


def guard_extend(case: CaseFile, action: Extend, limits: Limits) -> str | None:
    """Extensions beyond the cap at a stage need an explicit good reason (6.4, 6.15)."""
    stage = case.stage
    cap = limits.extension_cap[stage]
    total = case.extension_days(stage) + action.working_days
    if total > cap and action.good_reason is None:
        provision = "6.4" if stage == 1 else "6.15"
        return (f"stage {stage} extensions would total {total} working days, over the cap of "
                f"{cap}: give good_reason to exceed it, or extend by at most "
                f"{max(cap - case.extension_days(stage), 0)} (Code {provision})")
    return None


def guard_respond(case: CaseFile, action: Respond, limits: Limits) -> str | None:
    """A response needs a definition, answers every point and remedies what went wrong."""
    stage = case.stage
    definition = case.stage1_definition if stage == 1 else case.stage2_definition
    if definition is None:
        return f"no stage {stage} complaint definition: acknowledge the complaint first (5.6)"
    if stage == 2 and limits.same_person(action.by, case.stage1_handler):
        return (f"{action.by} handled stage 1: the stage 2 response must come from someone "
                "else (Code 6.13)")
    if stage == 2 and limits.casework >= 2 and _stage1_person(action.by, case, limits):
        return (f"{action.by} acknowledged, extended or answered stage 1: the stage 2 "
                "response must come from someone not involved at stage 1 (Code 6.13)")
    points = list(definition.points)
    if stage == 1:
        points += [i.description for i in case.issues if i.folded_into_stage1]
    answered = [f.point for f in action.findings]
    missing = [p for p in points if p not in answered]
    if missing:
        return ("the response must address every point of the complaint definition with "
                f"reasons (Code 6.7); not answered: {'; '.join(missing)}")
    extra = sorted({p for p in answered if p not in points or answered.count(p) > 1})
    if extra:
        return ("give exactly one finding per point of the definition; not in it or repeated: "
                f"{'; '.join(extra)} (add a new point with add_issue first)")
    unpriced = [r.description for r in action.remedies
                if r.kind == "financial" and r.amount is None]
    if unpriced:
        return f"a financial remedy must state its amount (Code 7.3): {'; '.join(unpriced)}"
    undated = [r.description for r in action.remedies
               if r.kind == "financial" and r.due_by is None]
    if limits.casework >= 2 and undated:
        return ("a financial remedy must state the date it will be paid by (due_by) (Code "
                f"7.3): {'; '.join(undated)}")
    if action.decision is not Decision.NOT_UPHELD and not action.remedies:
        return (f"a {action.decision.value.replace('_', ' ')} complaint needs at least one "
                "remedy setting out what will be put right (Code 7.1)")
    ids = [a.action_id for a in action.outstanding_actions]
    known = {a.action.action_id for a in case.actions}
    clash = sorted({i for i in ids if ids.count(i) > 1 or i in known})
    if clash:
        return f"outstanding action ids must be unique on the case; repeated: {', '.join(clash)}"
    return None


def guard_refuse_escalation(case: CaseFile, action: RefuseEscalation,
                            limits: Limits) -> str | None:
    """Escalation may be refused only on a section 2 ground, explained (5.11).

    Every :class:`ExclusionGround` is a section 2 ground and the explanation is required by
    the action; the strict guards also refuse what the refusal letter could not state: a
    ground given twice, or the twelve-month ground without discretion considered (2.3).
    """
    if not limits.strict:
        return None
    if len(set(action.grounds)) != len(action.grounds):
        return "give each ground once: the letter explains every ground to the resident (5.11)"
    if limits.casework >= 2 and ExclusionGround.OUTSIDE_ESCALATION_WINDOW in action.grounds \
            and not case.escalation_late:
        if limits.casework >= 3 and _ordered_to_escalate(case):
            return ("the Ombudsman ordered this complaint escalated, which overrides a late "
                    "request: outside_escalation_window no longer applies; acknowledge it "
                    "(Code 5.11)")
        return ("the request came within the escalation window, so outside_escalation_window "
                "does not apply: acknowledge the request (Code 5.11, 6.10)")
    if ExclusionGround.OLDER_THAN_12_MONTHS in action.grounds and \
            action.discretion_considered is None:
        return ("refusing on the twelve-month ground needs discretion_considered: the Code "
                "requires considering discretion to accept it (2.3, 5.11)")
    return None


def guard_acknowledge_escalation(case: CaseFile, action: AcknowledgeEscalation,
                                 limits: Limits) -> str | None:
    """The stage 2 handler is never the stage 1 handler (6.13).

    From casework revision 2 nobody who acknowledged, handled, extended or answered stage 1
    may acknowledge stage 2 or be its handler.
    """
    if limits.same_person(action.handler_id, case.stage1_handler):
        return (f"{action.handler_id} handled stage 1: stage 2 must be considered by a "
                "different person (Code 6.13)")
    if limits.casework >= 2:
        for who in (action.handler_id, action.by):
            if _stage1_person(who, case, limits):
                return (f"{who} acknowledged, extended or answered stage 1: stage 2 must be "
                        "acknowledged and considered by someone not involved at stage 1 "
                        "(Code 6.13)")
    return None


def _ordered_to_escalate(case: CaseFile) -> bool:
    """Whether the Ombudsman's order to escalate is on the case (``on_reopen`` keeps it)."""
    prefix = f"{OmbudsmanOrderKind.ESCALATE_TO_STAGE2.value}:"
    return any(order.startswith(prefix) for order in case.ombudsman_orders)


def _stage1_person(who: str, case: CaseFile, limits: Limits) -> bool:
    return any(limits.same_person(who, person) for person in case.stage1_people())


def guard_request_escalation(case: CaseFile, action: RequestEscalation,
                             limits: Limits) -> str | None:
    """A closed case answered at stage 1 can still take a (late) request (5.11, 6.10)."""
    if case.state != S.CLOSED:
        return None
    if limits.casework < 2:
        return "cannot request stage 2 while the complaint is 'closed' on this case"
    if not any(r.stage == 1 for r in case.responses) or case.stage2_definition is not None \
            or case.escalation_refused is not None:
        return ("only a case closed after its stage 1 response, never escalated, can take a "
                "stage 2 request; otherwise log a new complaint or refer the resident to the "
                "Ombudsman")
    return None


def guard_withdraw(case: CaseFile, action: Withdraw, limits: Limits) -> str | None:
    """A withdrawal records why and how the resident confirmed it (5.12)."""
    if limits.casework >= 2 and (action.reason is None or action.confirmed_via is None):
        return ("a withdrawal needs the resident's reason and how they confirmed it "
                "(reason, confirmed_via): the record must show it was their choice (Code 5.12)")
    return None


def _revision_2(trigger: str, limits: Limits) -> str | None:
    if limits.casework < 2:
        return (f"cannot {TRIGGER_TEXT[trigger]} on this case: it started before this action "
                "existed; record it with record_contact and tell the complaints lead")
    return None


def guard_delay_action(case: CaseFile, action: DelayAction, limits: Limits) -> str | None:
    """A delay names an open action and moves its date later, with a reason (6.6, 7.3)."""
    record = next((a for a in case.open_actions() if a.action.action_id == action.action_id),
                  None)
    if record is None:
        listed = ", ".join(a.action.action_id for a in case.open_actions()) or "none"
        return f"no open action {action.action_id!r} on this case; open actions: {listed}"
    if action.revised_due <= record.due_by:
        return (f"the revised date must be after {record.due_by.isoformat()}, when action "
                f"{action.action_id} is now due")
    return None


def guard_pay_remedy(case: CaseFile, action: PayRemedy, limits: Limits) -> str | None:
    """Only a financial remedy that a response promised, and not yet paid, is paid (7.3)."""
    response = next((r for r in case.responses if r.stage == action.stage), None)
    if response is None:
        return f"no stage {action.stage} response on this case, so no remedy to pay"
    if action.remedy > len(response.remedies):
        return (f"the stage {action.stage} response lists {len(response.remedies)} "
                f"remedies; give remedy as a number from 1 to {len(response.remedies)}")
    remedy = response.remedies[action.remedy - 1]
    if remedy.kind != "financial":
        return (f"remedy {action.remedy} at stage {action.stage} is {remedy.kind.value}, not "
                "financial: complete it with complete_action if it is an action")
    if (action.stage, action.remedy) not in case.unpaid_remedies():
        return f"remedy {action.remedy} at stage {action.stage} is already recorded as paid"
    return None


def guard_void(case: CaseFile, action: Void, limits: Limits) -> str | None:
    """A duplicate or a merge names the case that carries on."""
    if action.reason is not VoidReason.CREATED_IN_ERROR and not action.duplicate_of:
        return (f"a case voided as {action.reason.value} must name the case that carries on "
                "(duplicate_of)")
    if action.duplicate_of == case.reference:
        return "a case cannot be a duplicate of itself: name the case that carries on"
    return None


def guard_reassign(case: CaseFile, action: Reassign, limits: Limits) -> str | None:
    """A handler moves only at a stage that has one, never back to stage 1 people (6.13)."""
    if action.role is ReassignRole.MANAGER:
        current = case.manager_id
        if current is not None and limits.same_person(current, action.to):
            return f"{action.to} is already the manager of this case"
        return None
    stage2 = case.stage2_handler is not None
    current = case.stage2_handler if stage2 else case.stage1_handler
    if current is None:
        return ("no handler yet: the handler is named when the complaint (or its stage 2 "
                "request) is acknowledged")
    if limits.same_person(current, action.to):
        return f"{action.to} already handles this case"
    if stage2 and _stage1_person(action.to, case, limits):
        return (f"{action.to} acknowledged, extended or answered stage 1: stage 2 must be "
                "handled by someone not involved at stage 1 (Code 6.13)")
    return None


def guard_assign(case: CaseFile, action: Assign, limits: Limits) -> str | None:
    """A stage 2 request never goes to someone involved at stage 1 (6.13)."""
    if case.assignee is not None and limits.same_person(case.assignee, action.to):
        return f"{action.to} already has this case"
    if case.state == ComplaintState.STAGE2_REQUESTED.value \
            and _stage1_person(action.to, case, limits):
        return (f"{action.to} acknowledged, extended or answered stage 1: stage 2 must be "
                "handled by someone not involved at stage 1 (Code 6.13)")
    return None


def guard_complete_action(case: CaseFile, action: CompleteAction,
                          limits: Limits) -> str | None:
    """Only an open, known action can be completed."""
    open_ids = [a.action.action_id for a in case.open_actions()]
    if action.action_id not in open_ids:
        listed = ", ".join(open_ids) or "none"
        return f"no open action {action.action_id!r} on this case; open actions: {listed}"
    return None




def guard_reopen(case: CaseFile, action: ReopenOnOrder, limits: Limits) -> str | None:
    """An order reopens what was refused: the complaint (2.4) or escalation (5.11).

    From casework revision 2 an order to escalate works on any case answered at stage 1
    and not yet at stage 2: refused, closed (a late request included), or still waiting.
    """
    takes_on = action.order is OmbudsmanOrderKind.TAKE_ON_COMPLAINT
    if takes_on and case.declined is None:
        return "the complaint was never declined, so there is nothing to take on (Code 2.4)"
    if takes_on and limits.strict and case.stage1_definition is not None:
        return ("the complaint was taken on and acknowledged after it was declined, so there "
                "is nothing left to take on (Code 2.4)")
    escalates = action.order is OmbudsmanOrderKind.ESCALATE_TO_STAGE2
    if escalates and limits.casework >= 2:
        if not any(r.stage == 1 for r in case.responses):
            return ("the complaint has no stage 1 response yet: answer stage 1 first, then "
                    "escalate as ordered (Code 5.11)")
        if case.stage2_definition is not None:
            return "the complaint is already at stage 2: there is nothing to escalate"
    elif escalates and case.escalation_refused is None:
        return "escalation was never refused, so there is nothing to escalate (Code 5.11)"
    # Which states each order reopens from (the transition table's two reopen rows): an
    # order the state cannot act on is refused here, never left to fail in the machine.
    if takes_on:
        from_states: tuple[ComplaintState, ...] = (S.DECLINED, S.WITH_OMBUDSMAN)
    elif limits.casework >= 2:
        from_states = (S.STAGE1_RESPONDED, S.CLOSED, S.WITH_OMBUDSMAN)
    else:
        from_states = (S.CLOSED, S.WITH_OMBUDSMAN)
    if case.state not in from_states:
        return (f"an order to {action.order.value.replace('_', ' ')} applies to a complaint "
                f"that is {' or '.join(s.value for s in from_states)}, not '{case.state}'")
    return None


def guard_close(case: CaseFile, action: Action, limits: Limits) -> str | None:
    """A case closes only when every remedy and action is followed through (7.3)."""
    open_ids = [a.action.action_id for a in case.open_actions()]
    if open_ids:
        return ("outstanding actions must be completed before closing (Code 7.3): "
                + ", ".join(open_ids))
    orders = [o.order_id for o in case.open_orders()]
    if orders:
        return ("the Ombudsman's orders must be complied with before closing; record each "
                "with comply_order: " + ", ".join(orders))
    unpaid = case.unpaid_remedies()
    if limits.casework >= 2 and unpaid:
        return ("financial remedies must be paid before closing (Code 7.3); record each with "
                "pay_remedy: " + ", ".join(f"stage {st} remedy {n}" for st, n in unpaid))
    return None


def guard_amend_intake(case: CaseFile, action: AmendIntake, limits: Limits) -> str | None:
    """An amendment changes something; a representative comes with the resident's authority."""
    if action.parties is None and action.adjustments is None \
            and action.adjustments_review_on is None:
        return "nothing to amend: give parties, adjustments or adjustments_review_on"
    if action.parties is not None:
        if not any(p.role is PartyRole.RESIDENT for p in action.parties):
            return "parties must include the resident (role resident)"
        if any(p.role is PartyRole.REPRESENTATIVE for p in action.parties) and \
                action.representative_authority is None and \
                not case.representative_authority_recorded:
            return ("a representative needs the resident's authority recorded: give "
                    "representative_authority (how and when the resident agreed, Code 3.6)")
    return None


def guard_ombudsman_contact(case: CaseFile, action: OmbudsmanContact,
                            limits: Limits) -> str | None:
    """An instruction has a date to do it by (it is tracked like an order)."""
    if action.kind is OmbudsmanContactKind.INSTRUCTION and action.respond_by is None:
        return ("an instruction from the Ombudsman needs respond_by: the date it must be done "
                "by, which is tracked until it is complied with")
    return None


def guard_determination(case: CaseFile, action: OmbudsmanDetermination,
                        limits: Limits) -> str | None:
    """Order ids are unique on the case (each is complied with on its own)."""
    ids = [o.order_id for o in action.orders]
    known = {o.order_id for o in case.orders}
    clash = sorted({i for i in ids if ids.count(i) > 1 or i in known})
    if clash:
        return f"order ids must be unique on the case; repeated: {', '.join(clash)}"
    return None


def guard_comply_order(case: CaseFile, action: ComplyOrder, limits: Limits) -> str | None:
    """Only an order or instruction still open can be complied with."""
    open_ids = [o.order_id for o in case.open_orders()]
    if action.order_id not in open_ids:
        listed = ", ".join(open_ids) or "none"
        return (f"no open Ombudsman order {action.order_id!r} on this case; open orders: "
                f"{listed}")
    return None


def check(case: CaseFile, action: Action, limits: Limits) -> str | None:
    """The Code's guard for ``action`` (and the casework revision it needs), or None."""
    if action.trigger in CASEWORK_2_TRIGGERS and limits.casework < 2:
        return _revision_2(action.trigger, limits)
    if action.trigger in CASEWORK_3_TRIGGERS and limits.casework < 3:
        return (f"cannot {TRIGGER_TEXT[action.trigger]} on this case: it started before this "
                "action existed; acknowledge it naming the handler instead")
    guard = GUARDS.get(action.trigger)
    return guard(case, action, limits) if guard else None


GUARDS: dict[str, Guard] = {
    "assign": guard_assign,
    "amend_intake": guard_amend_intake,
    "ombudsman_contact": guard_ombudsman_contact,
    "ombudsman_determination": guard_determination,
    "comply_order": guard_comply_order,
    "request_escalation": guard_request_escalation,
    "withdraw": guard_withdraw,
    "delay_action": guard_delay_action,
    "pay_remedy": guard_pay_remedy,
    "void": guard_void,
    "reassign": guard_reassign,
    "decline": guard_decline,
    "extend": guard_extend,
    "respond": guard_respond,
    "refuse_escalation": guard_refuse_escalation,
    "acknowledge_escalation": guard_acknowledge_escalation,
    "complete_action": guard_complete_action,
    "close": guard_close,
    "reopen_on_order": guard_reopen,
}


class ComplaintMachine:
    """Drives a :class:`CaseFile` through :data:`TRANSITIONS`.

    Args:
        case: The case to drive; it is mutated in place by :meth:`apply`.
        limits: The policy's extension caps and exclusion window.
        next_seq: Numbers the audit entries and keeps them off the case file (the
            workflow records them in the database); by default they are appended to
            ``case.audit`` and numbered from it.
    """

    def __init__(self, case: CaseFile, limits: Limits | None = None, *,
                 next_seq: Callable[[], int] | None = None) -> None:
        self.case = case
        self.limits = limits or Limits()
        self._next_seq = next_seq
        self._at: dt.datetime = dt.datetime.min.replace(tzinfo=dt.UTC)

    # -- public API -------------------------------------------------------------------

    @property
    def state(self) -> ComplaintState:
        """The current state."""
        return ComplaintState(self.case.state)

    def allowed(self) -> list[str]:
        """Triggers whose transitions leave the current state (before the Code's guards)."""
        return list(_ALLOWED[self.state])

    def refusal(self, action: Action) -> str | None:
        """Why ``action`` may not be taken now, or None when it may. Changes nothing."""
        trigger = action.trigger
        if trigger not in ACTION_BY_TRIGGER or not isinstance(action, ACTION_BY_TRIGGER[trigger]):
            return f"unknown action {type(action).__name__}"
        allowed = self.allowed()
        if trigger not in allowed:
            listed = ", ".join(allowed) or "nothing (the case is finished)"
            return (f"cannot {TRIGGER_TEXT[trigger]} while the complaint is "
                    f"'{self.state.value}'; allowed now: {listed}")
        return check(self.case, action, self.limits)

    def apply(self, action: Action, at: dt.datetime) -> AuditEvent:
        """Take ``action`` at time ``at`` and append it to the audit trail.

        Raises:
            ActionRefused: The state or the Code does not allow it; nothing changed.
        """
        reason = self.refusal(action)
        if reason is not None:
            raise ActionRefused(reason)
        before = self.state
        self._at = at
        if not _MACHINE.events[action.trigger].trigger(self, action=action):
            # Unreachable while refusal() mirrors the conditions; never move silently.
            raise ActionRefused(f"cannot {TRIGGER_TEXT[action.trigger]} now")
        return self._audit(action, before, accepted=True)

    def record_refusal(self, action: Action, reason: str, at: dt.datetime) -> AuditEvent:
        """Put a refused action (e.g. a signal) on the audit trail; the state is unchanged."""
        self._at = at
        return self._audit(action, self.state, accepted=False, detail=reason)

    # -- conditions ---------------------------------------------------------------------

    def code_allows(self, event: EventData) -> bool:
        """Transition condition mirroring :data:`GUARDS`."""
        return check(self.case, event.kwargs["action"], self.limits) is None

    def issue_folds(self, event: EventData) -> bool:
        """A related issue raised before the stage 1 response is folded into it (6.8)."""
        action: AddIssue = event.kwargs["action"]
        return action.related and not action.would_unreasonably_delay

    def order_takes_on_complaint(self, event: EventData) -> bool:
        """The Ombudsman ordered the landlord to take on an excluded complaint (2.4)."""
        return bool(event.kwargs["action"].order is OmbudsmanOrderKind.TAKE_ON_COMPLAINT)

    def order_escalates(self, event: EventData) -> bool:
        """The Ombudsman ordered a refused escalation to go to stage 2 (5.11)."""
        return bool(event.kwargs["action"].order is OmbudsmanOrderKind.ESCALATE_TO_STAGE2)

    # -- callbacks (pure: they only write the case file) --------------------------------

    def on_acknowledge(self, event: EventData) -> None:
        """Record the stage 1 handler and definition."""
        action: Acknowledge = event.kwargs["action"]
        self.case.stage1_handler = action.handler_id
        self.case.stage1_definition = action.definition
        self.case.stage1_acknowledged_by = action.by
        self.case.assignee = None

    def on_decline(self, event: EventData) -> None:
        """Record the grounds, explanation and discretion."""
        action: Decline = event.kwargs["action"]
        self.case.declined = DecisionRecord(
            grounds=action.grounds, explanation=action.explanation,
            discretion_considered=action.discretion_considered, by=action.by, at=self._at)
        if self.case.issue_occurred_on is None and action.issue_occurred_on is not None:
            self.case.issue_occurred_on = action.issue_occurred_on

    def on_extend(self, event: EventData) -> None:
        """Record the extension at the current stage."""
        action: Extend = event.kwargs["action"]
        self.case.extensions.append(ExtensionRecord(
            stage=self.case.stage, working_days=action.working_days, reason=action.reason,
            good_reason=action.good_reason, by=action.by, at=self._at))

    def on_respond(self, event: EventData) -> None:
        """Record the response and start tracking its outstanding actions."""
        action: Respond = event.kwargs["action"]
        stage = 1 if self.state is S.STAGE1_RESPONDED else 2
        self.case.responses.append(ResponseRecord(
            stage=stage, decision=action.decision, findings=action.findings,
            remedies=action.remedies, by=action.by, at=self._at))
        self.case.actions.extend(ActionRecord(action=a, stage=stage)
                                 for a in action.outstanding_actions)

    def on_request_escalation(self, event: EventData) -> None:
        """Record when stage 2 was asked for (the 6.11 clock starts here)."""
        action: RequestEscalation = event.kwargs["action"]
        self.case.escalation_requested_on = action.requested_on
        self.case.closed_at = None  # a late request reopens a closed case (5.11)

    def on_refuse_escalation(self, event: EventData) -> None:
        """Record the refusal and its grounds, for reporting (8.1b)."""
        action: RefuseEscalation = event.kwargs["action"]
        self.case.escalation_refused = DecisionRecord(
            grounds=action.grounds, explanation=action.explanation, by=action.by, at=self._at)
        self.case.closed_at = self._at

    def on_acknowledge_escalation(self, event: EventData) -> None:
        """Record the stage 2 handler and definition."""
        action: AcknowledgeEscalation = event.kwargs["action"]
        self.case.stage2_handler = action.handler_id
        self.case.stage2_definition = action.definition
        self.case.assignee = None

    def on_add_issue(self, event: EventData) -> None:
        """Fold the issue into stage 1, or note it is to be logged as a new complaint."""
        action: AddIssue = event.kwargs["action"]
        folded = self.state in STAGE1_OPEN and self.issue_folds(event)
        self.case.issues.append(IssueRecord(
            description=action.description, folded_into_stage1=folded, at=self._at))

    def on_record_contact(self, event: EventData) -> None:
        """Count the contact; the first early contact is timed (Connexus: 3 WD)."""
        action: RecordContact = event.kwargs["action"]
        self.case.contacts += 1
        if action.early_contact and self.case.early_contact_at is None:
            self.case.early_contact_at = self._at

    def on_complete_action(self, event: EventData) -> None:
        """Mark the action complete."""
        action: CompleteAction = event.kwargs["action"]
        self.case.actions = [
            a.model_copy(update={"completed_at": self._at})
            if a.action.action_id == action.action_id and a.completed_at is None else a
            for a in self.case.actions
        ]

    def on_refer_ombudsman(self, event: EventData) -> None:
        """Record that the Ombudsman has the complaint."""
        self.case.referred_to_ombudsman_at = self._at

    def on_reopen(self, event: EventData) -> None:
        """Record the order and clear the refusal it overturned."""
        action: ReopenOnOrder = event.kwargs["action"]
        self.case.ombudsman_orders.append(f"{action.order.value}: {action.details}")
        self.case.closed_at = None
        if action.order is OmbudsmanOrderKind.ESCALATE_TO_STAGE2:
            self.case.escalation_refused = None
            if self.limits.casework >= 3:
                # The order overrides lateness (5.11): the request stands as if in time.
                self.case.escalation_late = False

    def on_close(self, event: EventData) -> None:
        """Record when the case finished."""
        self.case.closed_at = self._at

    def on_withdraw(self, event: EventData) -> None:
        """Record the withdrawal, why and how it was confirmed, and when the case finished."""
        action: Withdraw = event.kwargs["action"]
        self.case.withdrawal = WithdrawalRecord(
            reason=action.reason, by=action.by, at=self._at,
            confirmed_via=action.confirmed_via.value if action.confirmed_via else None)
        self.case.closed_at = self._at

    def on_delay_action(self, event: EventData) -> None:
        """Record the revised date and why."""
        action: DelayAction = event.kwargs["action"]
        delay = ActionDelay(revised_due=action.revised_due, reason=action.reason,
                            by=action.by, at=self._at)
        self.case.actions = [
            a.model_copy(update={"delays": (*a.delays, delay)})
            if a.action.action_id == action.action_id and a.completed_at is None else a
            for a in self.case.actions
        ]

    def on_pay_remedy(self, event: EventData) -> None:
        """Record the payment."""
        action: PayRemedy = event.kwargs["action"]
        self.case.payments.append(PaymentRecord(
            stage=action.stage, remedy=action.remedy, amount=action.amount,
            paid_on=action.paid_on, method=action.method, by=action.by, at=self._at))

    def on_void(self, event: EventData) -> None:
        """Record why the case was voided; it is over."""
        action: Void = event.kwargs["action"]
        self.case.voided = VoidRecord(reason=action.reason.value, explanation=action.explanation,
                                      duplicate_of=action.duplicate_of, by=action.by,
                                      at=self._at)
        self.case.closed_at = self._at

    def on_amend_intake(self, event: EventData) -> None:
        """Count the amendment; the parties and adjustments themselves go to the database."""
        action: AmendIntake = event.kwargs["action"]
        self.case.amendments += 1
        if action.representative_authority is not None:
            self.case.representative_authority_recorded = True
        if action.parties is not None:  # letters go to the new parties, as they prefer
            self.case.letter_channels = letter_channels(action.parties)

    def on_ombudsman_contact(self, event: EventData) -> None:
        """Count the contact; an instruction is tracked like an order."""
        action: OmbudsmanContact = event.kwargs["action"]
        self.case.ombudsman_contacts += 1
        if action.kind is OmbudsmanContactKind.INSTRUCTION and action.respond_by is not None:
            self.case.orders.append(OrderRecord(
                order_id=f"instruction-{self.case.ombudsman_contacts}", source="instruction",
                description=action.details[:200], due_by=action.respond_by, at=self._at))

    def on_ombudsman_determination(self, event: EventData) -> None:
        """Record the finding and start tracking each order."""
        action: OmbudsmanDetermination = event.kwargs["action"]
        self.case.determinations.append(action.finding.value)
        self.case.orders.extend(OrderRecord(
            order_id=o.order_id, source=action.finding.value, description=o.description[:200],
            due_by=o.due_by, at=self._at) for o in action.orders)

    def on_comply_order(self, event: EventData) -> None:
        """Mark the order complied with (the evidence is in the audit trail)."""
        action: ComplyOrder = event.kwargs["action"]
        self.case.orders = [
            o.model_copy(update={"complied_at": self._at})
            if o.order_id == action.order_id and o.complied_at is None else o
            for o in self.case.orders]

    def on_assign(self, event: EventData) -> None:
        """Give the case, not yet acknowledged, to someone (claiming: to oneself)."""
        action: Assign = event.kwargs["action"]
        self.case.assignee = action.to

    def on_reassign(self, event: EventData) -> None:
        """Move the handler of the current stage, or the manager."""
        action: Reassign = event.kwargs["action"]
        self.case.reassignments += 1
        if action.role is ReassignRole.MANAGER:
            self.case.manager_id = action.to
        elif self.case.stage2_handler is not None:
            self.case.stage2_handler = action.to
        else:
            if self.case.stage1_handler is not None:
                self.case.former_stage1_handlers.append(self.case.stage1_handler)
            self.case.stage1_handler = action.to

    # -- internals ------------------------------------------------------------------------

    def _audit(self, action: Action, before: ComplaintState, *, accepted: bool,
               detail: str = "") -> AuditEvent:
        seq = self._next_seq() if self._next_seq else len(self.case.audit) + 1
        event = AuditEvent(
            seq=seq, at=self._at, action=action.trigger, by=action.by,
            from_state=before.value, to_state=self.state.value, accepted=accepted,
            detail=detail)
        if self._next_seq is None:
            self.case.audit.append(event)
        return event

    # transitions sets this attribute; keeping the case file's state in step with it.
    @property
    def machine_state(self) -> ComplaintState:
        """The state as ``transitions`` sees it (backed by the case file)."""
        return ComplaintState(self.case.state)

    @machine_state.setter
    def machine_state(self, value: ComplaintState | str) -> None:
        self.case.state = ComplaintState(value).value



#: The one ``transitions`` machine every case shares: built once per process (it holds the
#: table, not a case), and fired with the case's :class:`ComplaintMachine` as the model, so
#: a workflow (or a replay) costs no machine construction.
_MACHINE = Machine(model=None, states=ComplaintState, transitions=TRANSITIONS,
                   initial=ComplaintState.RECEIVED, auto_transitions=False, send_event=True,
                   model_attribute="machine_state")

#: The triggers each state allows (before the Code's guards), read from the machine once:
#: checking an action costs a lookup, which keeps a flood of refused signals cheap.
_ALLOWED: dict[ComplaintState, tuple[str, ...]] = {
    state: tuple(t for t in TRIGGERS if _MACHINE.get_transitions(t, source=state.name))
    for state in ComplaintState}


def allowed_triggers(state: str) -> tuple[str, ...]:
    """The triggers the table allows from ``state`` (before the Code's guards)."""
    try:
        return _ALLOWED[ComplaintState(state)]
    except ValueError:  # not a state of this lifecycle
        return ()


def mermaid_diagram() -> str:
    """The lifecycle as a Mermaid state diagram, generated from :data:`TRANSITIONS`.

    Internal transitions (recording contact, issues, completing actions) stay off the
    diagram to keep it readable; the README lists them.
    """
    from transitions.extensions import GraphMachine

    class _Model:
        pass

    def values(states: Any) -> Any:
        return [s.value for s in states] if isinstance(states, list) else states.value

    # Drawn with the state values (what operators filter on), not the Enum member names.
    drawn = [{"trigger": t["trigger"], "source": values(t["source"]), "dest": t["dest"].value}
             for t in TRANSITIONS if t["dest"] is not None]
    model = _Model()
    GraphMachine(model=model, states=[s.value for s in ComplaintState], transitions=drawn,
                 initial=ComplaintState.RECEIVED.value, auto_transitions=False,
                 graph_engine="mermaid", title="Complaint lifecycle")
    text: str = model.get_graph().draw(None)  # type: ignore[attr-defined]
    # Drop the styling lines that mark the "active" state: the diagram is of the process.
    lines = [ln for ln in text.splitlines()
             if not ln.strip().startswith(("classDef", "Class "))]
    return "\n".join(ln.rstrip() for ln in lines).strip() + "\n"


