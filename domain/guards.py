"""The Code's guards: why an action may not be taken now, or None.

Each guard is a pure function of the case file, the action and the policy figures the
workflow passes in (:class:`Limits`); :func:`check` picks the action's guard (and refuses
an action the case's casework revision predates). The transition table decides which
actions a state allows (:mod:`domain.lifecycle`); these decide what the Code allows on top.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from domain.lifecycle import (
    CASEWORK_2_TRIGGERS,
    CASEWORK_3_TRIGGERS,
    TRIGGER_TEXT,
    ComplaintState,
)
from models.actions import (
    AcknowledgeEscalation,
    Action,
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
    CaseFile,
    Decision,
    ExclusionGround,
    PartyRole,
)
from models.limits import staff_key

S = ComplaintState

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


def months_before(day: dt.date, months: int) -> dt.date:
    """The same day ``months`` calendar months earlier (the month's last day if shorter)."""
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
        limit = months_before(case.received_on, limits.exclusion_window_months)
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
