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
}
#: States in which the case is over: no clock of the Code runs (actions aside, see CLOCKS).
ENDED = frozenset({S.CLOSED, S.DECLINED, S.WITHDRAWN})

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


