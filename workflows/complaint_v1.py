"""The first complaint workflow type, ``ComplaintWorkflow``: kept to finish the cases it started.

New cases run :class:`workflows.complaint.ComplaintWorkflow` (workflow type ``Complaint``).
This module keeps the first type's code, unchanged in behaviour, so that cases started before
the cut-over carry on and replay (``tests/test_replay.py`` replays their committed histories).
It shares the pure lifecycle (:mod:`domain.lifecycle`) with the new type: a change there must
keep those replays green, or freeze a copy of the old rule here. Retire this module once no
``ComplaintWorkflow`` execution is open (at most 366 days after the last one closed).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from domain.deadlines import LABEL, PROVISION, london_date
    from domain.guards import Limits, months_before
    from domain.lifecycle import (
        TRIGGER_TEXT,
        ActionRefused,  # noqa: F401 - part of this module's old public surface
        ComplaintState,
    )
    from domain.machine import ComplaintMachine
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
    from models.case import AuditEvent, CaseFile
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

# What both workflow types share, defined once in the current one (same values as when
# this type was written, so its histories replay unchanged).
from workflows.complaint import (  # noqa: E402
    _MEETS,
    ACTION_HORIZON_DAYS,
    POLICY_RETRY_EVERY,
    RETENTION,
    RETRY,
    SA_HANDLER,
    SA_LANDLORD,
    SA_NEXT_DEADLINE,
    SA_OVERDUE,
    SA_STAGE,
    SA_STATE,
    SHORT,
    SYSTEM,
    _cause,
)

S = ComplaintState

# transitions logs every trigger at INFO, replays included: keep only its warnings.
logging.getLogger("transitions").setLevel(logging.WARNING)

# =====================================================================================
# The Temporal workflow: one per complaint, id = the complaint reference.
# =====================================================================================

#: Re-reading a policy's calendar before planning: a few tries, then the case's own calendar.
RETRY_BRIEF = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                          maximum_interval=timedelta(seconds=30), maximum_attempts=5,
                          non_retryable_error_types=["PolicyRejected", "PolicyError"])

#: Patch id for the behaviour added after the first release: the intake checked against
#: the case's own clock (future receipt corrected, out-of-time flagged for a decision,
#: 2.3), a policy that cannot be loaded waited for instead of failing the case, the
#: policy's closure days and one-off bank holidays re-read before each later deadline is
#: planned, the strict guards of :class:`Limits`, no extension of a response deadline that
#: has already passed (6.4, 6.15) and no action promised more than five years ahead.
#: Cases started before it replay without any of these (``workflow.patched``).
PATCH_HARDENED = "hardened-intake-guards-calendar-2026-11"
#: Signals of any other shape than one JSON object under a known name are refused and
#: recorded; before it they failed the workflow task or were dropped (see ``signal``).
SIGNAL_SHAPES_PATCH = "v1-signal-shapes-2026-11"

class _Effect:
    """A transition applied in a handler, waiting for the main loop's side effects."""

    def __init__(self, seq: int, action: Action, event: AuditEvent) -> None:
        self.seq = seq
        self.action = action
        self.event = event


class ComplaintWorkflowV1:
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
        limit = months_before(self.case.received_on, policy.exclusion_window_months)
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

    @workflow.signal(dynamic=True)
    def signal(self, name: str, args: Sequence[RawValue]) -> None:
        """Take a staff action sent as a signal: one JSON object, under a trigger's name.

        Any other shape once failed the workflow task (no argument, or several: the named
        handlers this replaced took exactly one) or was dropped unrecorded (a value that
        is not an object, an unknown name). Since :data:`SIGNAL_SHAPES_PATCH` each is
        refused on the audit trail; a history from before it replays as it ran.
        """
        payload, problem = _one_object(name, args)
        if not problem:
            self._signalled(name, payload)
        elif workflow.patched(SIGNAL_SHAPES_PATCH):
            # The audit names a known action, never an unknown name: that is free text.
            self._reject_signal(name if name in ACTION_BY_TRIGGER else "unknown", "unknown",
                                problem)

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
        reason: str | None  # A malformed payload's reason, else the refusal (None: accepted).
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
        # The key is always one of _plan's int lengths; mypy cannot see that through **.
        await self._plan(DeadlineKind.ESCALATION_WINDOW, 1, today,
                         **{lengths[window.unit]: window.length})  # type: ignore[arg-type]

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
                label=label or LABEL[kind], provision=PROVISION[kind], start=start,
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


class _Note(Action):
    """Placeholder action for side-effect-free entries (a refused signal)."""

    trigger = "record_contact"


_NOTE = _Note(by=SYSTEM)


def _update_handler(trigger: str, model: type[Action]) -> Callable[..., Any]:
    """Build the update (with its validator) for one trigger."""

    async def handler(self: ComplaintWorkflowV1, action: Action) -> CaseView:
        return await self._act(action)

    def validator(self: ComplaintWorkflowV1, action: Action) -> None:
        self._validate(action)

    # Temporal reads the argument type from the annotations to decode the payload.
    handler.__annotations__ = {"action": model, "return": CaseView}
    validator.__annotations__ = {"action": model, "return": None}
    handler.__name__ = handler.__qualname__ = trigger
    handler.__doc__ = f"Staff action: {TRIGGER_TEXT[trigger]} (validated update)."
    update = workflow.update(name=trigger)(handler)
    update.validator(validator)
    return update


def _one_object(name: str, args: Sequence[RawValue]) -> tuple[Any, str]:
    """A signal's one JSON object, and what is wrong with the signal ("" when nothing)."""
    if name not in ACTION_BY_TRIGGER:
        return None, "unknown action; signals are: " + ", ".join(ACTION_BY_TRIGGER)
    if len(args) != 1:
        return None, f"takes one JSON object, {len(args)} arguments given"
    try:
        payload = workflow.payload_converter().from_payload(args[0].payload)
    except Exception as exc:  # noqa: BLE001 - any undecodable payload is refused
        if isinstance(exc, workflow.NondeterminismError):
            raise
        return None, f"takes a JSON object ({type(exc).__name__})"
    if not isinstance(payload, dict):
        return None, f"takes a JSON object, not {type(payload).__name__}"
    return payload, ""


for _trigger, _model in ACTION_BY_TRIGGER.items():
    setattr(ComplaintWorkflowV1, _trigger, _update_handler(_trigger, _model))
ComplaintWorkflowV1 = workflow.defn(name="ComplaintWorkflow")(ComplaintWorkflowV1)  # type: ignore[misc]
