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
from datetime import timedelta
from enum import StrEnum
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError
    from transitions import EventData, Machine

    from models.actions import (
        ACTION_BY_TRIGGER,
        Acknowledge,
        AcknowledgeEscalation,
        Action,
        AddIssue,
        Close,
        CompleteAction,
        Decline,
        Extend,
        OmbudsmanOrderKind,
        RecordContact,
        RefuseEscalation,
        ReopenOnOrder,
        RequestEscalation,
        Respond,
    )
    from models.case import (
        DECLINE_GROUNDS,
        ActionRecord,
        AuditEvent,
        CaseFile,
        Decision,
        DecisionRecord,
        ExclusionGround,
        ExtensionRecord,
        IssueRecord,
        ResponseRecord,
    )
    from models.letters import (
        ActionStatus,
        ActionUpdate,
        EscalationRefusal,
        Exclusion,
        Extension,
        FinalResponse,
        LetterKind,
        Stage1Acknowledgement,
        Stage1Response,
        Stage2Acknowledgement,
    )
    from models.messages import (
        AuditBatch,
        CarriedState,
        CaseSnapshot,
        CaseView,
        ComplaintInput,
        Deadline,
        DeadlineKind,
        DeadlineStatus,
        Intake,
        LetterReceipt,
        LetterRecord,
        LoadPolicyInput,
        NotificationKind,
        NotifyInput,
        OmbudsmanDetailsGiven,
        PlanDeadlineInput,
        RecordIntakeInput,
        SendLetterInput,
    )
    from models.policy import EscalationWindowStart, EscalationWindowUnit, Policy

#: The task queue complaint workers poll.
TASK_QUEUE = "complaints"

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
        WITHDRAWN: The resident withdrew the complaint.
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
    {"trigger": "decline", "source": S.RECEIVED, "dest": S.DECLINED, "after": "on_decline"},
    {"trigger": "extend", "source": [S.STAGE1_INVESTIGATING, S.STAGE1_EXTENDED],
     "dest": S.STAGE1_EXTENDED, "after": "on_extend"},
    {"trigger": "extend", "source": [S.STAGE2_REVIEWING, S.STAGE2_EXTENDED],
     "dest": S.STAGE2_EXTENDED, "after": "on_extend"},
    {"trigger": "respond", "source": STAGE1_OPEN, "dest": S.STAGE1_RESPONDED,
     "after": "on_respond"},
    {"trigger": "respond", "source": STAGE2_OPEN, "dest": S.STAGE2_RESPONDED,
     "after": "on_respond"},
    {"trigger": "request_escalation", "source": S.STAGE1_RESPONDED, "dest": S.STAGE2_REQUESTED,
     "after": "on_request_escalation"},
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
     "dest": S.WITHDRAWN, "after": "on_close"},
    {"trigger": "refer_ombudsman", "source": [*ACTIVE, S.DECLINED, S.CLOSED],
     "dest": S.WITH_OMBUDSMAN, "after": "on_refer_ombudsman"},
    {"trigger": "reopen_on_order", "source": [S.DECLINED, S.WITH_OMBUDSMAN], "dest": S.RECEIVED,
     "conditions": "order_takes_on_complaint", "after": "on_reopen"},
    {"trigger": "reopen_on_order", "source": [S.CLOSED, S.WITH_OMBUDSMAN],
     "dest": S.STAGE2_REQUESTED, "conditions": "order_escalates", "after": "on_reopen"},
    {"trigger": "close", "source": [S.STAGE1_RESPONDED, S.STAGE2_RESPONDED, S.WITH_OMBUDSMAN],
     "dest": S.CLOSED, "after": "on_close"},
]
for _transition in TRANSITIONS:
    _conditions = _transition.get("conditions", [])
    _transition["conditions"] = ["code_allows", *([_conditions] if isinstance(_conditions, str)
                                                  else _conditions)]

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
}


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
    """

    def __init__(self, stage1_extension_cap: int = 10, stage2_extension_cap: int = 20,
                 exclusion_window_months: int = 12, *, strict: bool = True) -> None:
        self.extension_cap = {1: stage1_extension_cap, 2: stage2_extension_cap}
        self.exclusion_window_months = exclusion_window_months
        self.strict = strict

    def same_person(self, first: str | None, second: str | None) -> bool:
        """Whether two staff ids name the same person (case-insensitively when strict)."""
        if first is None or second is None:
            return False
        if self.strict:
            return first.strip().casefold() == second.strip().casefold()
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
    if ExclusionGround.OLDER_THAN_12_MONTHS in action.grounds:
        if action.discretion_considered is None:
            return ("declining an out-of-time complaint needs discretion_considered: the Code "
                    "requires considering discretion to accept it (2.3)")
        limit = _months_before(case.received_on, limits.exclusion_window_months)
        if case.issue_occurred_on is not None and case.issue_occurred_on >= limit:
            return (f"the issue occurred on {case.issue_occurred_on.isoformat()}, within "
                    f"{limits.exclusion_window_months} months of receipt on "
                    f"{case.received_on.isoformat()}: it must be accepted (Code 2.3)")
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
    if ExclusionGround.OLDER_THAN_12_MONTHS in action.grounds and \
            action.discretion_considered is None:
        return ("refusing on the twelve-month ground needs discretion_considered: the Code "
                "requires considering discretion to accept it (2.3, 5.11)")
    return None


def guard_acknowledge_escalation(case: CaseFile, action: AcknowledgeEscalation,
                                 limits: Limits) -> str | None:
    """The stage 2 handler is never the stage 1 handler (6.13)."""
    if limits.same_person(action.handler_id, case.stage1_handler):
        return (f"{action.handler_id} handled stage 1: stage 2 must be considered by a "
                "different person (Code 6.13)")
    return None


def guard_complete_action(case: CaseFile, action: CompleteAction,
                          limits: Limits) -> str | None:
    """Only an open, known action can be completed."""
    open_ids = [a.action.action_id for a in case.open_actions()]
    if action.action_id not in open_ids:
        listed = ", ".join(open_ids) or "none"
        return f"no open action {action.action_id!r} on this case; open actions: {listed}"
    return None


def guard_close(case: CaseFile, action: Action, limits: Limits) -> str | None:
    """A case closes only when every remedy and action is followed through (7.3)."""
    open_ids = [a.action.action_id for a in case.open_actions()]
    if open_ids:
        return ("outstanding actions must be completed before closing (Code 7.3): "
                + ", ".join(open_ids))
    return None


def guard_reopen(case: CaseFile, action: ReopenOnOrder, limits: Limits) -> str | None:
    """An order reopens only what was refused: the complaint (2.4) or escalation (5.11)."""
    takes_on = action.order is OmbudsmanOrderKind.TAKE_ON_COMPLAINT
    if takes_on and case.declined is None:
        return "the complaint was never declined, so there is nothing to take on (Code 2.4)"
    if takes_on and limits.strict and case.stage1_definition is not None:
        return ("the complaint was taken on and acknowledged after it was declined, so there "
                "is nothing left to take on (Code 2.4)")
    if action.order is OmbudsmanOrderKind.ESCALATE_TO_STAGE2 and case.escalation_refused is None:
        return "escalation was never refused, so there is nothing to escalate (Code 5.11)"
    # Which states each order reopens from (the transition table's two reopen rows): an
    # order the state cannot act on is refused here, never left to fail in the machine.
    from_states = (S.DECLINED, S.WITH_OMBUDSMAN) if takes_on else (S.CLOSED, S.WITH_OMBUDSMAN)
    if case.state not in from_states:
        return (f"an order to {action.order.value.replace('_', ' ')} applies to a complaint "
                f"that is {' or '.join(s.value for s in from_states)}, not '{case.state}'")
    return None


GUARDS: dict[str, Guard] = {
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
    """

    def __init__(self, case: CaseFile, limits: Limits | None = None) -> None:
        self.case = case
        self.limits = limits or Limits()
        self._at: dt.datetime = dt.datetime.min.replace(tzinfo=dt.UTC)
        self._machine = Machine(
            model=self, states=ComplaintState, transitions=TRANSITIONS,
            initial=ComplaintState(case.state), auto_transitions=False, send_event=True,
            model_attribute="machine_state",
        )

    # -- public API -------------------------------------------------------------------

    @property
    def state(self) -> ComplaintState:
        """The current state."""
        return ComplaintState(self.case.state)

    def allowed(self) -> list[str]:
        """Triggers whose transitions leave the current state (before the Code's guards)."""
        return [t for t in TRIGGERS if self._machine.get_transitions(t, source=self.state.name)]

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
        guard = GUARDS.get(trigger)
        return guard(self.case, action, self.limits) if guard else None

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
        if not self.trigger(action.trigger, action=action):
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
        action: Action = event.kwargs["action"]
        guard = GUARDS.get(action.trigger)
        return guard is None or guard(self.case, action, self.limits) is None

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

    def on_decline(self, event: EventData) -> None:
        """Record the grounds, explanation and discretion."""
        action: Decline = event.kwargs["action"]
        self.case.declined = DecisionRecord(
            grounds=action.grounds, explanation=action.explanation,
            discretion_considered=action.discretion_considered, by=action.by, at=self._at)

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

    def on_close(self, event: EventData) -> None:
        """Record when the case finished."""
        self.case.closed_at = self._at

    # -- internals ------------------------------------------------------------------------

    def _audit(self, action: Action, before: ComplaintState, *, accepted: bool,
               detail: str = "") -> AuditEvent:
        event = AuditEvent(
            seq=len(self.case.audit) + 1, at=self._at, action=action.trigger, by=action.by,
            from_state=before.value, to_state=self.state.value, accepted=accepted,
            detail=detail)
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

    if False:  # pragma: no cover - for type checkers only; transitions adds it at runtime
        def trigger(self, name: str, **kwargs: Any) -> bool:
            """Fire ``name`` (added by ``transitions``)."""


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


# =====================================================================================
# The Temporal workflow: one per complaint, id = the complaint reference.
# =====================================================================================

#: Custom search attributes operators filter on in the Web UI (no personal data).
SA_STATE = SearchAttributeKey.for_keyword("ComplaintState")
SA_STAGE = SearchAttributeKey.for_int("ComplaintStage")
SA_NEXT_DEADLINE = SearchAttributeKey.for_datetime("NextDeadline")
SA_LANDLORD = SearchAttributeKey.for_keyword("Landlord")
SA_HANDLER = SearchAttributeKey.for_keyword("HandlerId")
SA_OVERDUE = SearchAttributeKey.for_bool("Overdue")
SEARCH_ATTRIBUTES: dict[str, str] = {
    "ComplaintState": "Keyword", "ComplaintStage": "Int", "NextDeadline": "Datetime",
    "Landlord": "Keyword", "HandlerId": "Keyword", "Overdue": "Bool",
}

#: Who acts when the system itself moves a case (the escalation window lapsing).
SYSTEM = "system"
#: How long a finished case stays open to late actions (the Ombudsman's 12 months).
RETENTION = timedelta(days=366)
#: Activity options: retry for ever with backoff (outages must not lose anything).
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                    maximum_interval=timedelta(minutes=5),
                    non_retryable_error_types=["PolicyRejected", "PolicyError"])
SHORT = timedelta(seconds=30)
#: Re-reading a policy's calendar before planning: a few tries, then the case's own calendar.
RETRY_BRIEF = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                          maximum_interval=timedelta(seconds=30), maximum_attempts=5,
                          non_retryable_error_types=["PolicyRejected", "PolicyError"])
#: How often a case whose policy cannot be loaded tries again (the manager is told once).
POLICY_RETRY_EVERY = timedelta(days=1)
#: The furthest ahead an outstanding action may be promised (planned as a deadline, 7.3).
ACTION_HORIZON_DAYS = 5 * 366

#: Patch id for the behaviour added after the first release: the intake checked against
#: the case's own clock (future receipt corrected, out-of-time flagged for a decision,
#: 2.3), a policy that cannot be loaded waited for instead of failing the case, the
#: policy's closure days and one-off bank holidays re-read before each later deadline is
#: planned, the strict guards of :class:`Limits`, no extension of a response deadline that
#: has already passed (6.4, 6.15) and no action promised more than five years ahead.
#: Cases started before it replay without any of these (``workflow.patched``).
PATCH_HARDENED = "hardened-intake-guards-calendar-2026-11"

_PROVISION = {
    DeadlineKind.EARLY_CONTACT: "policy", DeadlineKind.STAGE1_ACKNOWLEDGEMENT: "6.2",
    DeadlineKind.STAGE1_RESPONSE: "6.3", DeadlineKind.ESCALATION_WINDOW: "policy",
    DeadlineKind.STAGE2_ACKNOWLEDGEMENT: "6.11", DeadlineKind.STAGE2_RESPONSE: "6.14",
    DeadlineKind.ACTION: "7.3",
}
_LABEL = {
    DeadlineKind.EARLY_CONTACT: "Early contact", DeadlineKind.STAGE1_ACKNOWLEDGEMENT:
    "Stage 1 acknowledgement", DeadlineKind.STAGE1_RESPONSE: "Stage 1 response",
    DeadlineKind.ESCALATION_WINDOW: "Escalation window",
    DeadlineKind.STAGE2_ACKNOWLEDGEMENT: "Stage 2 acknowledgement",
    DeadlineKind.STAGE2_RESPONSE: "Stage 2 final response", DeadlineKind.ACTION: "Action",
}
#: Which deadline each trigger meets.
_MEETS: dict[str, tuple[DeadlineKind, ...]] = {
    "acknowledge": (DeadlineKind.STAGE1_ACKNOWLEDGEMENT,),
    "decline": (DeadlineKind.STAGE1_ACKNOWLEDGEMENT,),
    "respond": (DeadlineKind.STAGE1_RESPONSE, DeadlineKind.STAGE2_RESPONSE),
    "request_escalation": (DeadlineKind.ESCALATION_WINDOW,),
    "acknowledge_escalation": (DeadlineKind.STAGE2_ACKNOWLEDGEMENT,),
    "refuse_escalation": (DeadlineKind.STAGE2_ACKNOWLEDGEMENT,),
}


def london_date(instant: dt.datetime) -> dt.date:
    """The Europe/London calendar date of a UTC instant, without reading tz data.

    UK summer time runs from 01:00 UTC on the last Sunday of March to 01:00 UTC on the last
    Sunday of October (Summer Time Order 2002). Computing it here keeps the workflow free
    of the tz database, which may change under a running case.
    """
    utc = instant.astimezone(dt.UTC)

    def last_sunday(month: int) -> dt.datetime:
        last = dt.date(utc.year, month, 31)
        day = last - dt.timedelta(days=(last.weekday() + 1) % 7)
        return dt.datetime(day.year, day.month, day.day, 1, tzinfo=dt.UTC)

    summer = last_sunday(3) <= utc < last_sunday(10)
    return (utc + dt.timedelta(hours=1 if summer else 0)).date()


class _Effect:
    """A transition applied in a handler, waiting for the main loop's side effects."""

    def __init__(self, seq: int, action: Action, event: AuditEvent) -> None:
        self.seq = seq
        self.action = action
        self.event = event


class ComplaintWorkflow:
    """One complaint, from receipt to closure, under one landlord's policy.

    Staff actions arrive as updates (validated before anything is written to history) or
    as signals (refusals recorded on the audit trail). The main loop performs the side
    effects of each accepted action in order (letters, records, deadlines) and sleeps
    until the next reminder, deadline or escalation of a breach.
    """

    @workflow.init
    def __init__(self, input: ComplaintInput) -> None:
        self.intake = input.intake
        carried = input.carried
        self.policy: Policy | None = carried.policy if carried else None
        self.case = carried.case if carried else CaseFile(
            reference=self.intake.reference, policy_name=self.intake.policy_name,
            received_on=self.intake.received_on, issue_occurred_on=self.intake.issue_occurred_on,
            channel=self.intake.channel, category=self.intake.category)
        self.deadlines: list[Deadline] = carried.deadlines if carried else []
        self.letters: list[LetterRecord] = carried.letters if carried else []
        self.notifications_sent = carried.notifications_sent if carried else 0
        self.audit_recorded = carried.audit_recorded if carried else 0
        # Decided once per run, before any handler: validators may not call patched().
        self._hardened = workflow.patched(PATCH_HARDENED)
        self.machine = ComplaintMachine(self.case, self._limits())
        self._effects: list[_Effect] = []
        self._applied = 0
        self._done = 0
        self._search: dict[str, Any] = {}
        #: Whether the policy's calendar days must be re-read before the next deadline is
        #: planned (once per accepted action, see _refresh_calendar).
        self._calendar_stale = True

    # -- the main loop ------------------------------------------------------------------

    @workflow.run
    async def run(self, input: ComplaintInput) -> CaseView:
        """Run the case until it is finished and its retention window has passed."""
        if self.policy is None:
            self.policy = await self._load_policy()
            self.machine.limits = self._limits()
            intake = self.intake
            if self._hardened:
                intake = await self._check_intake(self.policy)
            await workflow.execute_activity(
                "record_intake", RecordIntakeInput(intake=intake,
                                                   landlord=self.policy.landlord),
                start_to_close_timeout=SHORT, retry_policy=RETRY)
            try:
                # The policy was loaded a moment ago: no need to re-read its calendar.
                await self._plan(DeadlineKind.STAGE1_ACKNOWLEDGEMENT, 1, self.case.received_on,
                                 working_days=self.policy.limits.stage1_acknowledgement,
                                 fresh_calendar=True)
                if self.policy.limits.early_contact:
                    await self._plan(DeadlineKind.EARLY_CONTACT, 1, self.case.received_on,
                                     working_days=self.policy.limits.early_contact,
                                     fresh_calendar=True)
            except ActivityError as exc:
                # Only an impossible receipt date gets here: keep the case, tell a person.
                await self._report_failure("planning the first deadlines", exc, "start")
        while True:
            while self._effects:
                effect = self._effects.pop(0)
                try:
                    await self._side_effects(effect)
                except Exception as exc:
                    # A letter that cannot be built, a deadline the calendar cannot plan, any
                    # bug: the action stays recorded, the case carries on, a person is told.
                    # A raised exception must never fail a workflow task (or the case).
                    if isinstance(exc, workflow.NondeterminismError):
                        raise
                    await self._report_failure(f"{effect.action.trigger} was recorded but its "
                                               "letter or deadlines failed", exc,
                                               f"effect-{effect.event.seq}")
                self._done = effect.seq
            await self._sync()
            if self._finished():
                break
            if workflow.info().is_continue_as_new_suggested() and not self._effects:
                await workflow.wait_condition(workflow.all_handlers_finished)
                if not self._effects:
                    workflow.continue_as_new(ComplaintInput(intake=self.intake,
                                                            carried=self._carried()))
            wake_at, summary = self._next_wake()
            # At least a second: a zero timeout would spin without letting time pass.
            timeout = None if wake_at is None else max(wake_at - workflow.now(),
                                                       timedelta(seconds=1))
            try:
                await workflow.wait_condition(lambda: bool(self._effects), timeout=timeout,
                                              timeout_summary=summary)
            except TimeoutError:
                await self._timers_due()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.view()

    async def _load_policy(self) -> Policy:
        """Load the case's policy; if it cannot be loaded, tell the manager and keep trying.

        Before :data:`PATCH_HARDENED` a policy that could not be loaded failed the case.
        """
        told = False
        while True:
            try:
                policy: Policy = await workflow.execute_activity(
                    "load_policy", LoadPolicyInput(name=self.intake.policy_name),
                    result_type=Policy, start_to_close_timeout=SHORT, retry_policy=RETRY)
                return policy
            except ActivityError as exc:
                if not self._hardened:
                    raise
                if not told:
                    told = True
                    await self._notify(
                        NotificationKind.POLICY_UNAVAILABLE, "manager", self.intake.manager_id,
                        None, f"policy {self.intake.policy_name!r} for {self.case.reference} "
                              f"cannot be loaded ({_cause(exc)}); the case waits and tries "
                              "again daily: fix or restore the policy file", key="policy")
                await workflow.sleep(POLICY_RETRY_EVERY,
                                     summary=f"retry loading policy {self.intake.policy_name}")

    async def _check_intake(self, policy: Policy) -> Intake:
        """Check the intake against the case's own clock and the policy (deterministic).

        A receipt date after the day the case started is impossible (an integration sent
        it): the case is timed from the day it started, the date as lodged is kept and the
        manager told. An issue older than the policy's exclusion window before receipt is
        flagged ``out_of_time`` and the manager asked to decide: the Code requires
        discretion to be considered (2.3), so the case is never declined by itself and
        runs (acknowledgement letter included) as any other.

        Returns:
            The intake to record: the one lodged, with the receipt date corrected if needed.
        """
        intake = self.intake
        today = london_date(workflow.now())
        if intake.received_on > today:
            self.case.received_on_as_lodged = intake.received_on
            self.case.received_on = today
            intake = intake.model_copy(update={"received_on": today})
            why = (f"received_on {self.case.received_on_as_lodged.isoformat()} was after the "
                   f"day the case started; timed from {today.isoformat()}")
            self._system_note("intake_corrected", why)
            await self._notify(NotificationKind.INTAKE_CORRECTED, "manager",
                               intake.manager_id, None,
                               f"{self.case.reference}: {why}; check the date with the "
                               "resident's correspondence", key="received_on")
        limit = _months_before(self.case.received_on, policy.exclusion_window_months)
        if intake.issue_occurred_on is not None and intake.issue_occurred_on < limit:
            self.case.out_of_time = True
            why = (f"the issue occurred on {intake.issue_occurred_on.isoformat()}, more than "
                   f"{policy.exclusion_window_months} months before receipt on "
                   f"{self.case.received_on.isoformat()}")
            self._system_note("out_of_time", why)
            await self._notify(NotificationKind.EXCLUSION_DECISION, "manager",
                               intake.manager_id, None,
                               f"{self.case.reference}: {why}. Decide whether to accept it, "
                               "considering discretion (Code 2.3): acknowledge it, or decline "
                               "it with the reasons and how discretion was considered",
                               key="out_of_time")
        return intake

    def _system_note(self, action: str, detail: str) -> None:
        """Put something the system did or found on the audit trail (state unchanged)."""
        state = self.case.state
        self.case.audit.append(AuditEvent(
            seq=len(self.case.audit) + 1, at=workflow.now(), action=action, by=SYSTEM,
            from_state=state, to_state=state, accepted=True, detail=detail))

    async def _report_failure(self, what: str, exc: BaseException, key: str) -> None:
        """Tell the manager that something failed; the case itself carries on."""
        workflow.logger.error("side effect failed", extra={
            "reference": self.case.reference, "what": what, "error": type(exc).__name__})
        await self._notify(NotificationKind.ACTION_REFUSED, "manager", self.intake.manager_id,
                           None, f"{self.case.reference}: {what}: {_cause(exc)}", key=key)

    def _finished(self) -> bool:
        state = self.machine.state
        # A withdrawn case takes no more actions, so its open ones cannot hold it open.
        actions_done = not self.case.open_actions() or (
            state is S.WITHDRAWN and workflow.patched("withdrawn-completes-with-open-actions"))
        if state in (S.CLOSED, S.DECLINED, S.WITHDRAWN) and actions_done:
            ended = self.case.closed_at or (self.case.declined.at if self.case.declined else None)
            return ended is not None and workflow.now() >= ended + RETENTION
        return False

    # -- staff actions: updates, validators, signals ------------------------------------

    def _refusal(self, action: Action) -> str | None:
        """The machine's refusal, plus the checks that need today's date; never raises."""
        try:
            reason = self._refusal_unchecked(action)
        except Exception as exc:
            if isinstance(exc, workflow.NondeterminismError | workflow.ReadOnlyContextError):
                raise
            return (f"the action could not be checked ({type(exc).__name__}); nothing was "
                    "changed: report this to the system's operators")
        return reason

    def _refusal_unchecked(self, action: Action) -> str | None:
        reason = self.machine.refusal(action)
        if reason is None and self._hardened:
            reason = self._late_refusal(action)
        if reason is None and isinstance(action, RequestEscalation):
            today = london_date(workflow.now())
            responded = next((r.at for r in self.case.responses if r.stage == 1), None)
            if action.requested_on > today:
                return (f"requested_on {action.requested_on.isoformat()} is in the future; "
                        f"give the day the request was received (today is {today.isoformat()})")
            if responded is not None and action.requested_on < london_date(responded):
                return ("requested_on is before the stage 1 response was issued on "
                        f"{london_date(responded).isoformat()}")
        return reason

    def _late_refusal(self, action: Action) -> str | None:
        """Checks added with :data:`PATCH_HARDENED` that need the case's clock."""
        now = workflow.now()
        if isinstance(action, Extend):
            stage = self.case.stage
            kind = DeadlineKind.STAGE1_RESPONSE if stage == 1 else DeadlineKind.STAGE2_RESPONSE
            current = self._latest(kind)
            if current is not None and current.met_at is None and (
                    current.status is DeadlineStatus.BREACHED or current.ends_at <= now):
                provision = "6.4" if stage == 1 else "6.15"
                return (f"the stage {stage} response was due on {current.due.isoformat()} and "
                        "is overdue: an extension must be agreed and explained before the "
                        f"due date (Code {provision}); send the response now")
        if isinstance(action, Respond):
            horizon = london_date(now) + timedelta(days=ACTION_HORIZON_DAYS)
            late = [a.action_id for a in action.outstanding_actions if a.due_by > horizon]
            if late:
                return (f"outstanding actions must be due by {horizon.isoformat()} (at most "
                        f"five years ahead, Code 7.3 'by when'): {', '.join(late)}")
        return None

    def _validate(self, action: Action) -> None:
        reason = self._refusal(action)
        if reason is not None:
            # Raised in a validator: the update is rejected and nothing enters history.
            raise ApplicationError(reason, type="ActionRefused", non_retryable=True)

    async def _act(self, action: Action) -> CaseView:
        await workflow.wait_condition(lambda: self.policy is not None)
        reason = self._refusal(action)
        if reason is not None:
            # The state moved between validation and now: refuse, the case is unchanged.
            self.machine.record_refusal(action, reason, workflow.now())
            raise ApplicationError(reason, type="ActionRefused", non_retryable=True)
        try:
            seq = self._accept(action)
        except Exception as exc:
            # Unreachable while refusal() mirrors the machine; an update must fail, not the
            # workflow task.
            if isinstance(exc, workflow.NondeterminismError):
                raise
            raise ApplicationError(f"the action could not be applied ({exc})",
                                   type="ActionRefused", non_retryable=True) from None
        await workflow.wait_condition(lambda: self._done >= seq)
        return self.view()

    def _accept(self, action: Action) -> int:
        event = self.machine.apply(action, workflow.now())
        self._applied += 1
        self._effects.append(_Effect(self._applied, action, event))
        workflow.logger.info("action accepted", extra={"reference": self.case.reference,
                                                       "action": action.trigger,
                                                       "state": self.case.state})
        return self._applied

    def _signalled(self, trigger: str, payload: Any) -> None:
        try:
            self._signalled_unchecked(trigger, payload)
        except Exception as exc:
            # A signal handler that raised would fail the workflow task: record it instead.
            if isinstance(exc, workflow.NondeterminismError):
                raise
            by = payload.get("by") if isinstance(payload, dict) else None
            self._reject_signal(trigger, str(by or "unknown"),
                                f"{trigger} could not be processed ({type(exc).__name__})")

    def _signalled_unchecked(self, trigger: str, payload: Any) -> None:
        try:
            action = ACTION_BY_TRIGGER[trigger].model_validate(payload)
        except ValidationError as exc:
            reason = "malformed " + trigger + ": " + "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            self._reject_signal(trigger, str(payload.get("by", "unknown"))
                                if isinstance(payload, dict) else "unknown", reason)
            return
        reason = (self._refusal(action) if self.policy is not None
                  else "the case is still starting; try again")
        if reason is not None:
            self._reject_signal(trigger, action.by, reason)
            return
        self._accept(action)

    def _reject_signal(self, trigger: str, by: str, reason: str) -> None:
        state = self.case.state
        self.case.audit.append(AuditEvent(
            seq=len(self.case.audit) + 1, at=workflow.now(), action=trigger,
            by=by[:200] or "unknown", from_state=state, to_state=state, accepted=False,
            detail=reason[:2000]))
        workflow.logger.warning("signal refused", extra={"reference": self.case.reference,
                                                         "action": trigger})
        self._effects.append(_Effect(self._applied, _NOTE, self.case.audit[-1]))

    @workflow.query
    def case_view(self) -> CaseView:
        """The full case: state, stage, handlers, deadlines, letters, actions, audit."""
        return self.view()

    # -- side effects of an accepted action (main loop only, in order) -------------------

    async def _side_effects(self, effect: _Effect) -> None:
        action, event = effect.action, effect.event
        if not event.accepted or self.policy is None:
            return
        self._calendar_stale = True  # re-read at most once per action, before planning
        policy = self.policy
        today = london_date(workflow.now())
        trigger = action.trigger
        for kind in _MEETS.get(trigger, ()):
            self._meet(kind)
        if isinstance(action, RecordContact) and action.early_contact:
            self._meet(DeadlineKind.EARLY_CONTACT)
        if isinstance(action, Acknowledge):
            start = today if policy.limits.stage1_response_from == "acknowledgement" \
                else self.case.received_on
            due = await self._plan(DeadlineKind.STAGE1_RESPONSE, 1, start,
                                   working_days=policy.limits.stage1_response)
            await self._letter(Stage1Acknowledgement(
                **self._letter_base(today), definition=action.definition,
                received_on=self.case.received_on, response_due=due.due,
                handler=action.handler_id,
                adjustments=tuple(a.description for a in self.intake.adjustments)), 1)
        elif isinstance(action, Decline):
            self._cancel_pending()
            await self._letter(Exclusion(
                **self._letter_base(today), grounds=action.grounds,
                explanation=action.explanation,
                discretion_considered=action.discretion_considered,
                received_on=self.case.received_on,
                complaint_summary=self.intake.description[:500]), 1)
        elif isinstance(action, Extend):
            await self._extend(action, today)
        elif isinstance(action, Respond):
            await self._respond(action, today)
        elif isinstance(action, RequestEscalation):
            await self._plan(DeadlineKind.STAGE2_ACKNOWLEDGEMENT, 2, action.requested_on,
                             working_days=policy.limits.stage2_acknowledgement)
        elif isinstance(action, AcknowledgeEscalation):
            start = today if policy.limits.stage2_response_from == "acknowledgement" \
                else (self.case.escalation_requested_on or today)
            due = await self._plan(DeadlineKind.STAGE2_RESPONSE, 2, start,
                                   working_days=policy.limits.stage2_response)
            await self._letter(Stage2Acknowledgement(
                **self._letter_base(today), definition=action.definition,
                escalation_requested_on=self.case.escalation_requested_on or today,
                response_due=due.due, reviewer=action.handler_id,
                stage1_handler=self.case.stage1_handler,
                adjustments=tuple(a.description for a in self.intake.adjustments)), 2)
        elif isinstance(action, RefuseEscalation):
            await self._letter(EscalationRefusal(
                **self._letter_base(today), grounds=action.grounds,
                explanation=action.explanation,
                discretion_considered=action.discretion_considered,
                escalation_requested_on=self.case.escalation_requested_on or today), 2)
        elif isinstance(action, CompleteAction):
            await self._complete(action, today)
        elif isinstance(action, AddIssue):
            issue = self.case.issues[-1]
            if not issue.folded_into_stage1:
                await self._notify(NotificationKind.NEW_COMPLAINT_NEEDED, "manager",
                                   self.intake.manager_id, None,
                                   f"an issue raised on {self.case.reference} must be logged "
                                   "as a new complaint (Code 6.8)",
                                   key=f"issue-{len(self.case.issues)}")
        elif trigger in ("withdraw", "refer_ombudsman"):
            self._cancel_pending(keep_actions=trigger == "refer_ombudsman")
        elif isinstance(action, ReopenOnOrder):
            if action.order is OmbudsmanOrderKind.TAKE_ON_COMPLAINT:
                await self._plan(DeadlineKind.STAGE1_ACKNOWLEDGEMENT, 1, today,
                                 working_days=policy.limits.stage1_acknowledgement)
            else:
                await self._plan(DeadlineKind.STAGE2_ACKNOWLEDGEMENT, 2, today,
                                 working_days=policy.limits.stage2_acknowledgement)

    async def _extend(self, action: Extend, today: dt.date) -> None:
        assert self.policy is not None
        stage = self.case.stage
        kind = DeadlineKind.STAGE1_RESPONSE if stage == 1 else DeadlineKind.STAGE2_RESPONSE
        current = self._latest(kind)
        previous_due = current.due if current else today
        if current is not None and current.status is DeadlineStatus.PENDING:
            current.status = DeadlineStatus.EXTENDED
        new = await self._plan(kind, stage, previous_due, working_days=action.working_days)
        so_far = self.case.extension_days(stage) - action.working_days
        extension_seq = sum(1 for e in self.case.extensions if e.stage == stage)
        letter = Extension(
            **self._letter_base(today), stage=1 if stage == 1 else 2, reason=action.reason,
            previous_due=previous_due, new_due=new.due, working_days=action.working_days,
            extended_so_far=so_far, cap=self.policy.extension_cap(stage),
            good_reason=action.good_reason, update_interval=action.update_interval)
        record = await self._letter(letter, stage)
        # Code 6.5 / 6.16: keep a record of the Ombudsman details given, and in which letter.
        await workflow.execute_activity(
            "record_ombudsman_details", OmbudsmanDetailsGiven(
                record_id=f"{self.case.reference}:ombudsman:{stage}:{extension_seq}",
                reference=self.case.reference, stage=stage, extension_seq=extension_seq,
                letter_id=record.letter_id, given_to=tuple(p.name for p in self.intake.parties),
                given_at=workflow.now(), details=self.policy.ombudsman),
            start_to_close_timeout=SHORT, retry_policy=RETRY)

    async def _respond(self, action: Respond, today: dt.date) -> None:
        assert self.policy is not None
        stage = 1 if self.machine.state is S.STAGE1_RESPONDED else 2
        definition = self.case.stage1_definition if stage == 1 else self.case.stage2_definition
        assert definition is not None
        if stage == 1:
            # Issues folded in (6.8) are answered as points of the definition.
            folded = tuple(i.description for i in self.case.issues if i.folded_into_stage1)
            definition = definition.model_copy(
                update={"points": definition.points + folded})
        common = {"definition": definition, "decision": action.decision,
                  "findings": action.findings, "remedies": action.remedies,
                  "outstanding_actions": action.outstanding_actions}
        if stage == 1:
            await self._letter(Stage1Response(**self._letter_base(today), **common,
                                              escalation_window=self.policy.escalation_window),
                               1)
        else:
            await self._letter(FinalResponse(**self._letter_base(today), **common), 2)
        for item in action.outstanding_actions:
            # Counted from the response so that a reminder falls before the due date.
            await self._plan(DeadlineKind.ACTION, stage, today,
                             calendar_days=max((item.due_by - today).days, 0),
                             key=f"action:{item.action_id}",
                             label=f"Action {item.action_id}")
        if stage == 1:
            await self._plan_escalation_window(today)

    async def _plan_escalation_window(self, today: dt.date) -> None:
        """Start the escalation window once it can run (from response or last action)."""
        assert self.policy is not None
        window = self.policy.escalation_window
        if window.runs_from is EscalationWindowStart.ACTIONS_COMPLETED and \
                self.case.open_actions():
            return  # Starts when the last action is completed.
        lengths = {EscalationWindowUnit.WORKING_DAYS: "working_days",
                   EscalationWindowUnit.CALENDAR_DAYS: "calendar_days",
                   EscalationWindowUnit.CALENDAR_MONTHS: "calendar_months"}
        await self._plan(DeadlineKind.ESCALATION_WINDOW, 1, today,
                         **{lengths[window.unit]: window.length})

    async def _complete(self, action: CompleteAction, today: dt.date) -> None:
        key = f"action:{action.action_id}"
        for deadline in self.deadlines:
            if deadline.key == key:
                self._mark_met(deadline)
        record = next(a for a in self.case.actions if a.action.action_id == action.action_id)
        await self._letter(ActionUpdate(**self._letter_base(today), action=record.action,
                                        status=ActionStatus.COMPLETED, note=action.note),
                           record.stage)
        if self.machine.state is S.STAGE1_RESPONDED and not self.case.open_actions():
            window = self._latest(DeadlineKind.ESCALATION_WINDOW)
            if window is None:
                await self._plan_escalation_window(today)
            elif window.status is DeadlineStatus.LAPSED:
                self._system_close("escalation window lapsed and every action is complete")

    # -- deadlines ----------------------------------------------------------------------

    async def _plan(self, kind: DeadlineKind, stage: int, start: dt.date, *,
                    working_days: int | None = None, calendar_days: int | None = None,
                    calendar_months: int | None = None, key: str | None = None,
                    label: str | None = None, fresh_calendar: bool = False) -> Deadline:
        if self._hardened and self._calendar_stale and not fresh_calendar:
            await self._refresh_calendar()
        if self.policy is None:
            raise ApplicationError("no policy loaded", type="NoPolicy", non_retryable=True)
        if key is None:
            count = sum(1 for d in self.deadlines if d.kind is kind)
            key = f"{kind.value}#{count + 1}"
        deadline = await workflow.execute_activity(
            "plan_deadline", PlanDeadlineInput(
                policy=self.policy, key=key, kind=kind, stage=stage,
                label=label or _LABEL[kind], provision=_PROVISION[kind], start=start,
                working_days=working_days, calendar_days=calendar_days,
                calendar_months=calendar_months),
            result_type=Deadline, start_to_close_timeout=SHORT, retry_policy=RETRY)
        self.deadlines.append(deadline)
        return deadline

    async def _refresh_calendar(self) -> None:
        """Re-read the policy's closure days and one-off bank holidays before planning.

        Design: a deadline already planned never moves (its date is in the history and in
        the letter that gave it). A deadline planned *later* counts working days on the
        calendar as it is when it is planned: bank holidays come from the ``holidays``
        package inside ``plan_deadline`` anyway, so the landlord's own list (a proclaimed
        one-off bank holiday, a declared closure) is re-read too, through an activity, so
        replay stays deterministic. The rest of the policy (time limits, caps, windows,
        the Ombudsman's details) stays as it was when the case started. If the policy
        cannot be read now, the calendar the case already has is used.
        """
        self._calendar_stale = False
        if self.policy is None:
            return
        try:
            fresh: Policy = await workflow.execute_activity(
                "load_policy", LoadPolicyInput(name=self.intake.policy_name),
                result_type=Policy, start_to_close_timeout=SHORT, retry_policy=RETRY_BRIEF,
                summary="re-read calendar days")
        except ActivityError as exc:
            workflow.logger.warning("calendar not re-read", extra={
                "reference": self.case.reference, "error": _cause(exc)})
            return
        self.policy = self.policy.model_copy(update={
            "closure_days": fresh.closure_days,
            "one_off_bank_holidays": fresh.one_off_bank_holidays})

    def _latest(self, kind: DeadlineKind) -> Deadline | None:
        matching = [d for d in self.deadlines if d.kind is kind]
        return matching[-1] if matching else None

    def _mark_met(self, deadline: Deadline) -> None:
        if deadline.met_at is None and deadline.status in (DeadlineStatus.PENDING,
                                                             DeadlineStatus.BREACHED):
            deadline.met_at = workflow.now()
            if deadline.status is DeadlineStatus.PENDING:
                deadline.status = DeadlineStatus.MET

    def _meet(self, kind: DeadlineKind) -> None:
        deadline = self._latest(kind)
        if deadline is not None:
            self._mark_met(deadline)

    def _cancel_pending(self, *, keep_actions: bool = False) -> None:
        for deadline in self.deadlines:
            if deadline.status is DeadlineStatus.PENDING and not (
                    keep_actions and deadline.kind is DeadlineKind.ACTION):
                deadline.status = DeadlineStatus.CANCELLED

    def _outstanding(self) -> list[Deadline]:
        """Deadlines still to be met: pending, or breached and not yet met."""
        return [d for d in self.deadlines if d.met_at is None and d.status in (
            DeadlineStatus.PENDING, DeadlineStatus.BREACHED)]

    def _next_wake(self) -> tuple[dt.datetime | None, str | None]:
        moments: list[tuple[dt.datetime, str]] = []
        for d in self._outstanding():
            when = f"{d.label} due {d.due.isoformat()}"
            if d.status is DeadlineStatus.PENDING:
                if d.remind_at is not None and not d.reminded:
                    moments.append((d.remind_at, f"reminder: {when}"))
                moments.append((d.ends_at, f"deadline: {when}"))
            elif not d.lead_notified and d.kind is not DeadlineKind.ESCALATION_WINDOW:
                moments.append((d.escalate_at, f"tell complaints lead: {when} breached"))
        ended = self.case.closed_at or (self.case.declined.at if self.case.declined else None)
        if ended is not None and self.machine.state in (S.CLOSED, S.DECLINED, S.WITHDRAWN):
            moments.append((ended + RETENTION, "retention: Ombudsman referral window ends"))
        if not moments:
            return None, None
        return min(moments, key=lambda m: m[0])

    async def _timers_due(self) -> None:
        now = workflow.now()
        for d in list(self._outstanding()):
            if d.status is DeadlineStatus.PENDING and d.remind_at is not None \
                    and not d.reminded and d.remind_at <= now < d.ends_at:
                d.reminded = True
                await self._notify(NotificationKind.REMINDER, "manager", self.intake.manager_id,
                                   d, f"{d.label} for {self.case.reference} is due on "
                                      f"{d.due.isoformat()} (Code {d.provision})")
            if d.status is DeadlineStatus.PENDING and d.ends_at <= now:
                if d.kind is DeadlineKind.ESCALATION_WINDOW:
                    d.status = DeadlineStatus.LAPSED
                    if self.machine.state is S.STAGE1_RESPONDED and not self.case.open_actions():
                        self._system_close("escalation window lapsed with no request")
                    continue
                d.status = DeadlineStatus.BREACHED
                d.breached_at = now
                d.manager_notified = True
                await self._notify(NotificationKind.BREACH, "manager", self.intake.manager_id, d,
                                   f"{d.label} for {self.case.reference} was due on "
                                   f"{d.due.isoformat()} and is overdue (Code {d.provision})")
            elif d.status is DeadlineStatus.BREACHED and not d.lead_notified \
                    and d.escalate_at <= now:
                d.lead_notified = True
                await self._notify(NotificationKind.BREACH_ESCALATED, "lead",
                                   self.intake.lead_id, d,
                                   f"{d.label} for {self.case.reference} is still overdue since "
                                   f"{d.due.isoformat()} (Code {d.provision})")

    def _system_close(self, why: str) -> None:
        action = Close(by=SYSTEM, note=why)
        if self.machine.refusal(action) is None:
            self._accept(action)

    # -- letters, notifications, records -----------------------------------------------

    def _letter_base(self, today: dt.date) -> dict[str, Any]:
        assert self.policy is not None
        return {"reference": self.case.reference, "landlord": self.policy.landlord,
                "landlord_contact": self.policy.landlord_contact,
                "recipients": self.intake.parties, "letter_date": today,
                "signed_by": f"{self.policy.landlord} complaints team",
                "ombudsman": self.policy.ombudsman}

    async def _letter(self, letter: Any, stage: int) -> LetterRecord:
        assert self.policy is not None
        kind = LetterKind(letter.kind)
        seq = 1 + sum(1 for r in self.letters if r.kind is kind and r.stage == stage)
        letter_id = f"{self.case.reference}:{kind.value}:{stage}:{seq}"
        receipt = await workflow.execute_activity(
            "send_letter", SendLetterInput(letter_id=letter_id, reference=self.case.reference,
                                           stage=stage, seq=seq, template_set=self.policy.name,
                                           letter=letter),
            result_type=LetterReceipt, start_to_close_timeout=timedelta(minutes=2),
            # send_letter heartbeats at every step: a killed worker is noticed in 40 s,
            # not after the whole two minutes (just above the 30 s SMTP socket timeout).
            heartbeat_timeout=timedelta(seconds=40), retry_policy=RETRY)
        record = LetterRecord(letter_id=letter_id, kind=kind, stage=stage, seq=seq,
                              subject=receipt.subject, sent_at=workflow.now(),
                              delivered_to=receipt.delivered_to, sha256=receipt.sha256)
        self.letters.append(record)
        return record

    async def _notify(self, kind: NotificationKind, role: str, recipient: str,
                      deadline: Deadline | None, message: str, *, key: str | None = None) -> None:
        suffix = key or (deadline.key if deadline else "case")
        self.notifications_sent += 1
        await workflow.execute_activity(
            "notify", NotifyInput(
                notification_id=f"{self.case.reference}:{kind.value}:{suffix}",
                reference=self.case.reference, kind=kind, recipient_role=role,
                recipient_id=recipient, deadline_key=deadline.key if deadline else None,
                due=deadline.due if deadline else None, message=message),
            start_to_close_timeout=SHORT, retry_policy=RETRY)

    async def _sync(self) -> None:
        """Write the read model and new audit events, and refresh what operators see."""
        view = self.view()
        # Handlers may append events while the activity runs: record exactly this slice.
        upto = len(self.case.audit)
        new_events = self.case.audit[self.audit_recorded:upto]
        if new_events:
            await workflow.execute_activity(
                "record_audit", AuditBatch(reference=self.case.reference,
                                           events=tuple(new_events)),
                start_to_close_timeout=SHORT, retry_policy=RETRY)
            self.audit_recorded = upto
        await workflow.execute_activity(
            "record_snapshot", CaseSnapshot(
                reference=view.reference, landlord=view.landlord, policy_name=view.policy_name,
                state=view.state, stage=view.stage, handler_id=self._handler(),
                next_deadline=view.next_deadline, overdue=view.overdue,
                updated_at=workflow.now(),
                # The audit trail travels in AuditBatch; keep the snapshot small.
                case=self.case.model_copy(update={"audit": []}),
                deadlines=tuple(self.deadlines)),
            start_to_close_timeout=SHORT, retry_policy=RETRY)
        self._operator_view(view)

    def _handler(self) -> str | None:
        return self.case.stage2_handler or self.case.stage1_handler

    def _operator_view(self, view: CaseView) -> None:
        wanted: dict[str, Any] = {
            "ComplaintState": view.state, "ComplaintStage": view.stage,
            "NextDeadline": view.next_deadline, "Landlord": view.landlord,
            "HandlerId": self._handler(), "Overdue": view.overdue}
        changed = {k: v for k, v in wanted.items() if self._search.get(k, object()) != v}
        if changed:
            keys: dict[str, Any] = {"ComplaintState": SA_STATE, "ComplaintStage": SA_STAGE,
                                    "NextDeadline": SA_NEXT_DEADLINE, "Landlord": SA_LANDLORD,
                                    "HandlerId": SA_HANDLER, "Overdue": SA_OVERDUE}
            updates = [keys[k].value_set(v) if v is not None else keys[k].value_unset()
                       for k, v in changed.items()]
            workflow.upsert_search_attributes(updates)
            self._search.update(changed)
        nxt = min(self._outstanding(), key=lambda d: d.ends_at, default=None)
        last = self.case.audit[-1] if self.case.audit else None
        workflow.set_current_details(
            f"**{view.state}** (stage {view.stage})  \n"
            f"next deadline: {nxt.label + ' ' + nxt.due.isoformat() if nxt else 'none'}"
            f"{' (OVERDUE)' if view.overdue else ''}  \n"
            f"last action: {last.action + ' by ' + last.by if last else 'lodged'}")

    def view(self) -> CaseView:
        """The case as the query returns it."""
        pending = [d for d in self._outstanding() if d.status is DeadlineStatus.PENDING]
        overdue = any(d.status is DeadlineStatus.BREACHED for d in self._outstanding())
        handlers = {k: v for k, v in (("stage1", self.case.stage1_handler),
                                      ("stage2", self.case.stage2_handler)) if v}
        return CaseView(
            reference=self.case.reference,
            landlord=self.policy.landlord if self.policy else "",
            policy_name=self.case.policy_name, state=self.case.state, stage=self.case.stage,
            handlers=handlers,
            next_deadline=min((d.ends_at for d in pending), default=None),
            overdue=overdue, case=self.case, deadlines=self.deadlines, letters=self.letters,
            rejected=[e for e in self.case.audit if not e.accepted])

    def _limits(self) -> Limits:
        if self.policy is None:
            return Limits(strict=self._hardened)
        return Limits(self.policy.limits.stage1_extension_cap,
                      self.policy.limits.stage2_extension_cap,
                      self.policy.exclusion_window_months, strict=self._hardened)

    def _carried(self) -> CarriedState:
        assert self.policy is not None
        return CarriedState(policy=self.policy, case=self.case, deadlines=self.deadlines,
                            letters=self.letters, notifications_sent=self.notifications_sent,
                            audit_recorded=self.audit_recorded)


def _cause(exc: BaseException) -> str:
    """A short description of a failure, safe for a staff notification (no personal data).

    The innermost cause's type; with its first line only for an ``ApplicationError``,
    whose messages the engine's own activities write without personal data. Any other
    message (a ``ValidationError`` quotes its input) is left out.
    """
    inner: BaseException = exc
    while inner.__cause__ is not None:
        inner = inner.__cause__
    if isinstance(inner, ApplicationError) and inner.message:
        return f"{inner.type or 'ApplicationError'}: {inner.message.splitlines()[0]}"[:500]
    return type(inner).__name__


class _Note(Action):
    """Placeholder action for side-effect-free entries (a refused signal)."""

    trigger = "record_contact"


_NOTE = _Note(by=SYSTEM)


def _update_handler(trigger: str, model: type[Action]) -> Callable[..., Any]:
    """Build the update (with its validator) for one trigger."""

    async def handler(self: ComplaintWorkflow, action: Action) -> CaseView:
        return await self._act(action)

    def validator(self: ComplaintWorkflow, action: Action) -> None:
        self._validate(action)

    # Temporal reads the argument type from the annotations to decode the payload.
    handler.__annotations__ = {"action": model, "return": CaseView}
    validator.__annotations__ = {"action": model, "return": None}
    handler.__name__ = handler.__qualname__ = trigger
    handler.__doc__ = f"Staff action: {TRIGGER_TEXT[trigger]} (validated update)."
    update = workflow.update(name=trigger)(handler)
    update.validator(validator)
    return update


def _signal_handler(trigger: str) -> Callable[..., Any]:
    """Build the fire-and-forget signal for one trigger; refusals go on the audit trail."""

    def handler(self: ComplaintWorkflow, payload: dict[str, Any]) -> None:
        self._signalled(trigger, payload)

    handler.__annotations__ = {"payload": dict[str, Any], "return": None}
    handler.__name__ = handler.__qualname__ = f"{trigger}_signal"
    return workflow.signal(name=trigger)(handler)


for _trigger, _model in ACTION_BY_TRIGGER.items():
    setattr(ComplaintWorkflow, _trigger, _update_handler(_trigger, _model))
    setattr(ComplaintWorkflow, f"{_trigger}_signal", _signal_handler(_trigger))
ComplaintWorkflow = workflow.defn(name="ComplaintWorkflow")(ComplaintWorkflow)  # type: ignore[misc]
