"""The machine that drives a case file through the transition table.

:class:`ComplaintMachine` fires :data:`domain.lifecycle.TRANSITIONS` with ``transitions``
over a :class:`CaseFile`: :meth:`ComplaintMachine.refusal` says why an action is not
allowed (state or Code, :mod:`domain.guards`) without changing anything, and
:meth:`ComplaintMachine.apply` performs an allowed one. Pure and deterministic (no clock,
no I/O), so the Temporal workflow can run it and replay it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from transitions import EventData, Machine

from domain.guards import Limits, check
from domain.lifecycle import (
    STAGE1_OPEN,
    TRANSITIONS,
    TRIGGER_TEXT,
    TRIGGERS,
    ActionRefused,
    ComplaintState,
)
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
    Withdraw,
)
from models.case import (
    ActionDelay,
    ActionRecord,
    AuditEvent,
    CaseFile,
    DecisionRecord,
    ExtensionRecord,
    IssueRecord,
    OrderRecord,
    PaymentRecord,
    ResponseRecord,
    VoidRecord,
    WithdrawalRecord,
    letter_channels,
)

S = ComplaintState


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
