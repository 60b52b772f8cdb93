"""The ``Complaint`` workflow: one complaint from receipt to closure; its id is the reference.

The lifecycle itself (states, the transition table, the Code's guards) is pure and lives in
:mod:`domain.lifecycle`; deadlines are planned by :mod:`domain.deadlines` from the calendar
the case recorded when it started. This module adds time and the outside world:

- **Staff actions** are updates, one per trigger, each with its validator beside it: a
  refusal says what is allowed and nothing enters history. Integrations may send the same
  actions as signals; a single dynamic handler decodes them defensively, because a typed
  signal handler fails the workflow task when it is sent another number of arguments. A
  refused signal is counted, the last few kept, and the batch recorded as one audit entry.
- **Recording**: each accepted action (and each batch of refusals, and what a timer did)
  is one :class:`CaseEvent`, recorded by one activity that writes the audit entry, the read
  model and the letters in order and exactly once. The update returns once it is recorded.
- **Timers**: the main loop sleeps until the next reminder, deadline or breach notice.
  Entering a state stops every clock :data:`domain.lifecycle.CLOCKS` does not list for it.
- **Bounded state**: the workflow keeps states, dates, ids and counts, the last
  :data:`RECENT` audit entries and :data:`REFUSALS_KEPT` refusals; bodies live in the
  database. It continues as new when Temporal suggests it.

Cases started before this type run :mod:`workflows.complaint_v1` (type ``ComplaintWorkflow``).
Change this workflow only behind ``workflow.patched(...)``, with replay tests over committed
histories (``tests/histories/``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from domain.deadlines import (
        RecordedCalendar,
        escalation_window_length,
        london_date,
        plan,
    )
    from domain.lifecycle import (
        CLOCKS,
        ENDED,
        TRIGGERS,
        ComplaintMachine,
        ComplaintState,
        Limits,
        _months_before,
    )
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
        ReferOmbudsman,
        RefuseEscalation,
        ReopenOnOrder,
        RequestEscalation,
        Respond,
        Withdraw,
    )
    from models.case import AuditEvent, CaseFile
    from models.events import (
        ActionResult,
        CalendarData,
        CaseContext,
        CaseEvent,
        CaseInput,
        CaseState,
        LetterSpec,
        LoadCalendarInput,
        OpenCaseInput,
        ReadHeader,
        Recorded,
        RefreshCalendar,
        Refusal,
    )
    from models.letters import LetterKind
    from models.limits import first_problem
    from models.messages import (
        CaseView,
        Deadline,
        DeadlineKind,
        DeadlineStatus,
        LetterRecord,
        NotificationKind,
        NotifyInput,
    )
    from models.policy import EscalationWindowStart

#: The task queue complaint workers poll.
TASK_QUEUE = "complaints"
#: The workflow type new cases start as.
WORKFLOW_TYPE = "Complaint"

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
_SA_KEYS: dict[str, Any] = {
    "ComplaintState": SA_STATE, "ComplaintStage": SA_STAGE, "NextDeadline": SA_NEXT_DEADLINE,
    "Landlord": SA_LANDLORD, "HandlerId": SA_HANDLER, "Overdue": SA_OVERDUE}

S = ComplaintState
#: Who acts when the system itself moves a case (the escalation window lapsing).
SYSTEM = "system"
#: How long a finished case stays open to late actions (the Ombudsman's 12 months).
RETENTION = timedelta(days=366)
#: Activities retry for ever with backoff: an outage must not lose anything.
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                    maximum_interval=timedelta(minutes=5),
                    non_retryable_error_types=["PolicyRejected", "PolicyError"])
#: Recording sends letters: a killed worker is noticed by its heartbeat in 40 s (just
#: above the 30 s SMTP socket timeout), not after the whole two minutes.
RECORD_TIMEOUT = timedelta(minutes=2)
RECORD_HEARTBEAT = timedelta(seconds=40)
SHORT = timedelta(seconds=30)
#: How often a case whose policy cannot be loaded tries again (the manager is told once).
POLICY_RETRY_EVERY = timedelta(days=1)
#: The furthest ahead an outstanding action may be promised (planned as a deadline, 7.3).
ACTION_HORIZON_DAYS = 5 * 366
#: Years of calendar a case keeps ahead of today (action deadlines reach five years out).
CALENDAR_YEARS_AHEAD = 6
#: Audit entries and refused signals kept in the workflow (the rest are in the database).
RECENT = 10
REFUSALS_KEPT = 5
#: A signal payload larger than this is refused unread (an action is far smaller).
MAX_SIGNAL_BYTES = 64 * 1024
#: Longest refusal reason or staff id kept in the workflow (they are shown, not stored).
MAX_REASON = 300
MAX_BY = 60

#: Bounds on the case file's lists (with ``models.limits`` on each action, they bound the
#: state a case carries, whatever staff do): issues raised (6.8), issues folded into stage 1
#: (each becomes a point to answer), extensions at one stage, outstanding actions.
CASE_BOUNDS: dict[str, int] = {"issues": 50, "folded_issues": 20, "extensions_per_stage": 20,
                               "actions": 100}

#: Which deadline each trigger meets.
_MEETS: dict[str, tuple[DeadlineKind, ...]] = {
    "acknowledge": (DeadlineKind.STAGE1_ACKNOWLEDGEMENT,),
    "decline": (DeadlineKind.STAGE1_ACKNOWLEDGEMENT,),
    "respond": (DeadlineKind.STAGE1_RESPONSE, DeadlineKind.STAGE2_RESPONSE),
    "request_escalation": (DeadlineKind.ESCALATION_WINDOW,),
    "acknowledge_escalation": (DeadlineKind.STAGE2_ACKNOWLEDGEMENT,),
    "refuse_escalation": (DeadlineKind.STAGE2_ACKNOWLEDGEMENT,),
}


@workflow.defn(name=WORKFLOW_TYPE)
class ComplaintWorkflow:
    """One complaint under one landlord's policy (see the module docstring)."""

    @workflow.init
    def __init__(self, input: CaseInput) -> None:
        self.intake = input.intake
        carried = input.carried
        self.context: CaseContext | None = carried.context if carried else None
        self.case = carried.case if carried else CaseFile(
            reference=self.intake.reference, policy_name=self.intake.policy_name,
            received_on=self.intake.received_on, issue_occurred_on=self.intake.issue_occurred_on,
            channel=self.intake.channel, category=self.intake.category)
        self.deadlines: list[Deadline] = carried.deadlines if carried else []
        self.letters: list[LetterRecord] = carried.letters if carried else []
        self.audit_seq = carried.audit_seq if carried else 0
        self.refused_total = carried.refused_total if carried else 0
        self.recent: list[AuditEvent] = carried.recent if carried else []
        self.refusals: list[Refusal] = carried.refusals if carried else []
        self.calendar = RecordedCalendar(self.context.calendar) if self.context else None
        self._unrecorded: list[AuditEvent] = []  # audit entries not queued for recording
        self.machine = ComplaintMachine(self.case, self._limits(), next_seq=self._next_seq)
        self._queue: list[CaseEvent] = []
        # Events are numbered over the case's life and recorded in order.
        self._events = self._recorded = carried.events if carried else 0
        self._awaited: set[int] = set()  # events an update waits on ...
        self._sent: dict[int, tuple[str, ...]] = {}  # ... and the letters they sent
        # Refusals not recorded yet: counted in full, the last few kept.
        self._pending_count = carried.pending_refused if carried else 0
        self._pending: list[Refusal] = self.refusals[-self._pending_count:] \
            if self._pending_count else []
        # Everything carried over was recorded before continuing as new.
        self._last_case = self.case.model_dump(mode="json") if carried else {}
        self._last_deadlines = {d.key: d.model_dump(mode="json") for d in self.deadlines}
        self._search: dict[str, Any] = {}

    # -- the main loop ------------------------------------------------------------------

    @workflow.run
    async def run(self, input: CaseInput) -> CaseView:
        """Run the case until it is finished and its retention window has passed."""
        if self.context is None:
            await self._open()
        while True:
            while self._queue:
                await self._record(self._queue.pop(0))
            # Checked before recording refusals: under a flood of signals there are always
            # more to record, and the history must not grow past what a replay can take.
            if workflow.info().is_continue_as_new_suggested():
                # An update in flight waits for its event to be recorded here: wait for
                # the handlers or for work, never for the handlers alone (a deadlock).
                await workflow.wait_condition(
                    lambda: workflow.all_handlers_finished() or bool(self._queue))
                if self._queue or not workflow.all_handlers_finished():
                    continue
                # Refusals still to record travel in the carried state.
                workflow.continue_as_new(CaseInput(intake=self.intake,
                                                   carried=self._carried()))
            if self._pending_count:
                self._queue_event()
                continue
            self._operator_view()
            if self._finished():
                break
            if self.calendar and london_date(workflow.now()).year + CALENDAR_YEARS_AHEAD \
                    > self.calendar.last_year:
                await self._extend_calendar()
            wake_at, summary = self._next_wake()
            # At least a second: a zero timeout would spin without letting time pass.
            timeout = None if wake_at is None else max(wake_at - workflow.now(),
                                                       timedelta(seconds=1))
            try:
                await workflow.wait_condition(
                    lambda: bool(self._queue) or self._pending_count > 0,
                    timeout=timeout, timeout_summary=summary)
            except TimeoutError:
                self._timers_due()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.view()

    async def _open(self) -> None:
        """Load the policy and calendar once, store the intake, plan the first deadlines.

        A policy that cannot be loaded (missing, or looser than the Code) is waited for:
        the manager is told once and the case tries again daily.
        """
        received = self.intake.received_on
        told = False
        while True:
            try:
                context: CaseContext = await workflow.execute_activity(
                    "open_case", OpenCaseInput(
                        intake=self.intake, first_year=received.year - 1,
                        last_year=max(received.year, london_date(workflow.now()).year)
                        + CALENDAR_YEARS_AHEAD),
                    result_type=CaseContext, start_to_close_timeout=SHORT, retry_policy=RETRY)
                break
            except ActivityError as exc:
                if not told:
                    told = True
                    await workflow.execute_activity(
                        "notify", self._notice(
                            NotificationKind.POLICY_UNAVAILABLE, "manager", None,
                            f"policy {self.intake.policy_name!r} for {self.case.reference} "
                            f"cannot be loaded ({_cause(exc)}); the case waits and tries "
                            "again daily: fix or restore the policy file", key="policy"),
                        start_to_close_timeout=SHORT, retry_policy=RETRY)
                await workflow.sleep(POLICY_RETRY_EVERY,
                                     summary=f"retry loading policy {self.intake.policy_name}")
        self.context = context
        self.calendar = RecordedCalendar(context.calendar)
        self.machine.limits = self._limits()
        notices = self._check_intake()
        limits = context.policy.limits
        self._plan(DeadlineKind.STAGE1_ACKNOWLEDGEMENT, 1, self.case.received_on,
                   working_days=limits.stage1_acknowledgement)
        if limits.early_contact:
            self._plan(DeadlineKind.EARLY_CONTACT, 1, self.case.received_on,
                       working_days=limits.early_contact)
        self._queue_event(notifications=notices)

    def _check_intake(self) -> list[NotifyInput]:
        """Check the intake against the case's own clock and the policy (2.3).

        A receipt date after the day the case started is impossible (an integration sent
        it): the case is timed from the day it started and the manager told. An issue
        older than the exclusion window is flagged ``out_of_time`` and the manager asked to
        decide, considering discretion; the case is never declined by itself.
        """
        assert self.context is not None
        notices = []
        today = london_date(workflow.now())
        if self.case.received_on > today:
            self.case.received_on_as_lodged = self.case.received_on
            self.case.received_on = today
            why = (f"received_on {self.case.received_on_as_lodged.isoformat()} was after the "
                   f"day the case started; timed from {today.isoformat()}")
            self._system_note("intake_corrected", why)
            notices.append(self._notice(
                NotificationKind.INTAKE_CORRECTED, "manager", None,
                f"{self.case.reference}: {why}; check the date with the resident's "
                "correspondence", key="received_on"))
        window = self.context.policy.exclusion_window_months
        occurred = self.case.issue_occurred_on
        if occurred is not None and occurred < _months_before(self.case.received_on, window):
            self.case.out_of_time = True
            why = (f"the issue occurred on {occurred.isoformat()}, more than {window} months "
                   f"before receipt on {self.case.received_on.isoformat()}")
            self._system_note("out_of_time", why)
            notices.append(self._notice(
                NotificationKind.EXCLUSION_DECISION, "manager", None,
                f"{self.case.reference}: {why}. Decide whether to accept it, considering "
                "discretion (Code 2.3): acknowledge it, or decline it with the reasons and "
                "how discretion was considered", key="out_of_time"))
        return notices

    def _finished(self) -> bool:
        state = self.machine.state
        if state not in ENDED or (self.case.open_actions() and state is not S.WITHDRAWN):
            return False
        ended = self._ended_at()
        return ended is not None and workflow.now() >= ended + RETENTION

    def _ended_at(self) -> dt.datetime | None:
        return self.case.closed_at or (self.case.declined.at if self.case.declined else None)

    # -- staff actions: one update per trigger, each with its validator ------------------

    @workflow.update
    async def acknowledge(self, action: Acknowledge) -> ActionResult:
        """Acknowledge, define and log the complaint at stage 1 (5.6, 6.2)."""
        return await self._act(action)

    @acknowledge.validator
    def _acknowledge_allowed(self, action: Acknowledge) -> None:
        self._validate(action)

    @workflow.update
    async def decline(self, action: Decline) -> ActionResult:
        """Decline the complaint on a section 2 ground, in writing (2.1-2.5)."""
        return await self._act(action)

    @decline.validator
    def _decline_allowed(self, action: Decline) -> None:
        self._validate(action)

    @workflow.update
    async def extend(self, action: Extend) -> ActionResult:
        """Extend the current stage's response date (6.4, 6.5, 6.15, 6.16)."""
        return await self._act(action)

    @extend.validator
    def _extend_allowed(self, action: Extend) -> None:
        self._validate(action)

    @workflow.update
    async def respond(self, action: Respond) -> ActionResult:
        """Issue the stage 1 response or the final response (6.6-6.9, 6.17-6.19)."""
        return await self._act(action)

    @respond.validator
    def _respond_allowed(self, action: Respond) -> None:
        self._validate(action)

    @workflow.update
    async def request_escalation(self, action: RequestEscalation) -> ActionResult:
        """Record the resident's request for stage 2 (6.10-6.12)."""
        return await self._act(action)

    @request_escalation.validator
    def _request_escalation_allowed(self, action: RequestEscalation) -> None:
        self._validate(action)

    @workflow.update
    async def refuse_escalation(self, action: RefuseEscalation) -> ActionResult:
        """Refuse to escalate, on a section 2 ground, in writing (5.11)."""
        return await self._act(action)

    @refuse_escalation.validator
    def _refuse_escalation_allowed(self, action: RefuseEscalation) -> None:
        self._validate(action)

    @workflow.update
    async def acknowledge_escalation(self, action: AcknowledgeEscalation) -> ActionResult:
        """Acknowledge and define stage 2, handled by a different person (6.11, 6.13)."""
        return await self._act(action)

    @acknowledge_escalation.validator
    def _acknowledge_escalation_allowed(self, action: AcknowledgeEscalation) -> None:
        self._validate(action)

    @workflow.update
    async def add_issue(self, action: AddIssue) -> ActionResult:
        """Add an issue: folded into stage 1, or to be logged as a new complaint (6.8)."""
        return await self._act(action)

    @add_issue.validator
    def _add_issue_allowed(self, action: AddIssue) -> None:
        self._validate(action)

    @workflow.update
    async def record_contact(self, action: RecordContact) -> ActionResult:
        """Record contact with the resident; the first early contact meets its deadline."""
        return await self._act(action)

    @record_contact.validator
    def _record_contact_allowed(self, action: RecordContact) -> None:
        self._validate(action)

    @workflow.update
    async def complete_action(self, action: CompleteAction) -> ActionResult:
        """Mark an outstanding action complete and tell the resident (6.6, 7.3)."""
        return await self._act(action)

    @complete_action.validator
    def _complete_action_allowed(self, action: CompleteAction) -> None:
        self._validate(action)

    @workflow.update
    async def withdraw(self, action: Withdraw) -> ActionResult:
        """Record that the resident withdrew the complaint."""
        return await self._act(action)

    @withdraw.validator
    def _withdraw_allowed(self, action: Withdraw) -> None:
        self._validate(action)

    @workflow.update
    async def refer_ombudsman(self, action: ReferOmbudsman) -> ActionResult:
        """Record that the Housing Ombudsman has taken the complaint."""
        return await self._act(action)

    @refer_ombudsman.validator
    def _refer_ombudsman_allowed(self, action: ReferOmbudsman) -> None:
        self._validate(action)

    @workflow.update
    async def reopen_on_order(self, action: ReopenOnOrder) -> ActionResult:
        """Reopen what was refused, on the Ombudsman's order (2.4, 5.11)."""
        return await self._act(action)

    @reopen_on_order.validator
    def _reopen_on_order_allowed(self, action: ReopenOnOrder) -> None:
        self._validate(action)

    @workflow.update
    async def close(self, action: Close) -> ActionResult:
        """Close the case once every action is followed through (7.3)."""
        return await self._act(action)

    @close.validator
    def _close_allowed(self, action: Close) -> None:
        self._validate(action)

    @workflow.update
    async def refresh_calendar(self, request: RefreshCalendar) -> ActionResult:
        """Read the policy's calendar again; deadlines planned from now on count with it.

        The case reads its calendar once, when it starts, and again only when asked: a
        proclaimed bank holiday or a new closure day reaches a running case this way.
        Deadlines already planned keep their dates: residents were told them.
        """
        await workflow.wait_condition(lambda: self.context is not None)
        assert self.context is not None
        current = self.context.calendar
        data: CalendarData = await workflow.execute_activity(
            "load_calendar", LoadCalendarInput(policy_name=self.context.policy.name,
                                               first_year=current.first_year,
                                               last_year=current.last_year),
            result_type=CalendarData, start_to_close_timeout=SHORT, retry_policy=RETRY)
        self.context = self.context.model_copy(update={"calendar": data})
        self.calendar = RecordedCalendar(data)
        self._system_note("calendar_refreshed", f"asked by {request.by[:MAX_BY]}: "
                          f"{len(data.closed)} non-working weekdays in {data.first_year}-"
                          f"{data.last_year}")
        number = self._queue_event()
        self._awaited.add(number)
        await workflow.wait_condition(lambda: self._recorded >= number)
        return self._result(number, self.audit_seq)

    @refresh_calendar.validator
    def _refresh_calendar_allowed(self, request: RefreshCalendar) -> None:
        # Every update has a validator: one called with the wrong arguments raises here,
        # which rejects the update, where a handler would fail the workflow task.
        problem = first_problem(request)
        if problem is not None:
            raise ApplicationError(problem, type="ActionRefused", non_retryable=True)

    # -- signals: any name, any shape; never a failed workflow task ----------------------

    @workflow.signal(dynamic=True)
    def signal(self, name: str, args: Sequence[RawValue]) -> None:
        """Take a staff action sent as a signal; refuse (and count) anything else."""
        try:
            self._signalled(name, args)
        except Exception as exc:
            if isinstance(exc, workflow.NondeterminismError):
                raise
            self._refuse(name, "unknown", f"could not be processed ({type(exc).__name__})")

    def _signalled(self, name: str, args: Sequence[RawValue]) -> None:
        if name not in ACTION_BY_TRIGGER:
            self._refuse(name, "unknown", "unknown action; signals are: " + ", ".join(TRIGGERS))
            return
        if len(args) != 1:
            self._refuse(name, "unknown", f"takes one JSON object, {len(args)} arguments given")
            return
        size = len(args[0].payload.data)
        if size > MAX_SIGNAL_BYTES:
            self._refuse(name, "unknown", f"{size:,} bytes, at most {MAX_SIGNAL_BYTES:,}")
            return
        raw = args[0].payload
        # Plain JSON (what every client sends) is parsed directly: a flood of signals must
        # stay cheap; anything else goes through the converter.
        payload = json.loads(raw.data) if raw.metadata.get("encoding") == b"json/plain" \
            else workflow.payload_converter().from_payload(raw, None)
        if not isinstance(payload, dict):
            self._refuse(name, "unknown", f"takes a JSON object, not {type(payload).__name__}")
            return
        by = payload.get("by")
        by = by if isinstance(by, str) else "unknown"
        try:
            action = ACTION_BY_TRIGGER[name].model_validate(payload)
        except ValidationError as exc:
            self._refuse(name, by, "malformed: " + _fields(exc))
            return
        reason = self._refusal(action) if self.context else "the case is still starting"
        if reason is not None:
            self._refuse(name, by, reason)
            return
        self._accept(action)

    @workflow.query
    def case_view(self) -> CaseView:
        """The case: state, stage, handlers, deadlines, letters, recent audit and refusals."""
        return self.view()

    # -- deciding -------------------------------------------------------------------------

    def _validate(self, action: Action) -> None:
        reason = self._refusal(action)
        if reason is not None:
            # Raised in a validator: the update is rejected and nothing enters history.
            raise ApplicationError(reason, type="ActionRefused", non_retryable=True)

    def _refusal(self, action: Action) -> str | None:
        """Why ``action`` may not be taken now (the Code, the state, the clock), or None."""
        try:
            # The state first: it is the cheapest check, and a flood of refused signals
            # must stay cheap (every one is checked within a workflow task's time).
            return (self.machine.refusal(action) or first_problem(action)
                    or self._bounds_refusal(action) or self._dated_refusal(action))
        except Exception as exc:
            if isinstance(exc, workflow.NondeterminismError | workflow.ReadOnlyContextError):
                raise
            return (f"the action could not be checked ({type(exc).__name__}); nothing was "
                    "changed: report this to the system's operators")

    def _bounds_refusal(self, action: Action) -> str | None:
        """The case file's lists are bounded: past a bound an action is refused, named."""
        case = self.case
        if isinstance(action, AddIssue):
            folded = sum(1 for i in case.issues if i.folded_into_stage1)
            if len(case.issues) >= CASE_BOUNDS["issues"]:
                return (f"issues: the case has {len(case.issues)}, at most "
                        f"{CASE_BOUNDS['issues']}: log further matters as a new complaint")
            if folded >= CASE_BOUNDS["folded_issues"] and action.related \
                    and self.machine.state in (S.STAGE1_INVESTIGATING, S.STAGE1_EXTENDED):
                return (f"issues: {folded} already folded into stage 1, at most "
                        f"{CASE_BOUNDS['folded_issues']}: log this one as a new complaint "
                        "(related: false)")
        if isinstance(action, Extend):
            made = sum(1 for e in case.extensions if e.stage == case.stage)
            if made >= CASE_BOUNDS["extensions_per_stage"]:
                return (f"extensions: {made} at stage {case.stage}, at most "
                        f"{CASE_BOUNDS['extensions_per_stage']}: respond instead")
        if isinstance(action, Respond) and \
                len(case.actions) + len(action.outstanding_actions) > CASE_BOUNDS["actions"]:
            return (f"outstanding_actions: the case would have "
                    f"{len(case.actions) + len(action.outstanding_actions)}, at most "
                    f"{CASE_BOUNDS['actions']}")
        return None

    def _dated_refusal(self, action: Action) -> str | None:
        """The checks that need the case's clock."""
        now = workflow.now()
        today = london_date(now)
        if isinstance(action, Extend):
            current = self._latest(_response_kind(self.case.stage))
            if current is not None and current.met_at is None and (
                    current.status is DeadlineStatus.BREACHED or current.ends_at <= now):
                provision = "6.4" if self.case.stage == 1 else "6.15"
                return (f"the stage {self.case.stage} response was due on "
                        f"{current.due.isoformat()} and is overdue: an extension must be "
                        f"agreed and explained before the due date (Code {provision}); send "
                        "the response now")
        if isinstance(action, Respond):
            horizon = today + timedelta(days=ACTION_HORIZON_DAYS)
            late = [a.action_id for a in action.outstanding_actions if a.due_by > horizon]
            if late:
                return (f"outstanding actions must be due by {horizon.isoformat()} (at most "
                        f"five years ahead, Code 7.3 'by when'): {', '.join(late)}")
        if isinstance(action, RequestEscalation):
            responded = next((r.at for r in self.case.responses if r.stage == 1), None)
            if action.requested_on > today:
                return (f"requested_on {action.requested_on.isoformat()} is in the future; "
                        f"give the day the request was received (today is {today.isoformat()})")
            if responded is not None and action.requested_on < london_date(responded):
                return ("requested_on is before the stage 1 response was issued on "
                        f"{london_date(responded).isoformat()}")
        return None

    async def _act(self, action: Action) -> ActionResult:
        await workflow.wait_condition(lambda: self.context is not None)
        reason = self._refusal(action)
        if reason is not None:
            # The case moved between validation and now: refuse, nothing changed.
            self._refuse(action.trigger, action.by, reason)
            raise ApplicationError(reason, type="ActionRefused", non_retryable=True)
        number, seq = self._accept(action)
        self._awaited.add(number)
        await workflow.wait_condition(lambda: self._recorded >= number)
        return self._result(number, seq)

    def _result(self, number: int, seq: int) -> ActionResult:
        nxt = self._next_pending()
        return ActionResult(
            reference=self.case.reference, seq=seq, state=self.case.state,
            stage=self.case.stage,
            next_deadline=f"{nxt.label} due {nxt.due.isoformat()}" if nxt else None,
            overdue=self._overdue(), letters=self._sent.pop(number, ()))

    def _accept(self, action: Action) -> tuple[int, int]:
        """Apply ``action``, plan its deadlines and letters, queue its recording."""
        event = self.machine.apply(action, workflow.now())
        self._remember(event)
        letters, notices, ombudsman, close_why = self._consequences(action)
        self._stop_clocks()
        number = self._queue_event(action=action, audit=(event,), letters=letters,
                                   notifications=notices, ombudsman=ombudsman)
        workflow.logger.info("action accepted", extra={
            "reference": self.case.reference, "action": action.trigger,
            "state": self.case.state})
        if close_why is not None:
            self._system_close(close_why)
        return number, event.seq

    def _consequences(self, action: Action) -> tuple[list[LetterSpec], list[NotifyInput],
                                                      bool, str | None]:
        """The deadlines, letters and notices an accepted action brings (pure)."""
        assert self.context is not None
        limits = self.context.policy.limits
        today = london_date(workflow.now())
        letters: list[LetterSpec] = []
        notices: list[NotifyInput] = []
        for kind in _MEETS.get(action.trigger, ()):
            self._meet(kind)
        if isinstance(action, RecordContact) and action.early_contact:
            self._meet(DeadlineKind.EARLY_CONTACT)
        if isinstance(action, Acknowledge):
            start = today if limits.stage1_response_from == "acknowledgement" \
                else self.case.received_on
            due = self._plan(DeadlineKind.STAGE1_RESPONSE, 1, start,
                             working_days=limits.stage1_response)
            letters.append(self._letter(LetterKind.STAGE1_ACKNOWLEDGEMENT, 1, due=due.due))
        elif isinstance(action, Decline):
            letters.append(self._letter(LetterKind.EXCLUSION, 1))
        elif isinstance(action, Extend):
            stage = self.case.stage
            current = self._latest(_response_kind(stage))
            previous = current.due if current else today
            if current is not None and current.status is DeadlineStatus.PENDING:
                current.status = DeadlineStatus.EXTENDED
            new = self._plan(_response_kind(stage), stage, previous,
                             working_days=action.working_days)
            letters.append(self._letter(LetterKind.EXTENSION, stage, due=new.due,
                                        previous_due=previous))
            return letters, notices, True, None
        elif isinstance(action, Respond):
            stage = 1 if self.machine.state is S.STAGE1_RESPONDED else 2
            kind = LetterKind.STAGE1_RESPONSE if stage == 1 else LetterKind.FINAL_RESPONSE
            letters.append(self._letter(kind, stage))
            for item in action.outstanding_actions:
                # Counted from the response so that a reminder falls before the due date.
                self._plan(DeadlineKind.ACTION, stage, today,
                           calendar_days=max((item.due_by - today).days, 0),
                           key=f"action:{item.action_id}", label=f"Action {item.action_id}")
            if stage == 1:
                self._plan_escalation_window(today)
        elif isinstance(action, RequestEscalation):
            self._plan(DeadlineKind.STAGE2_ACKNOWLEDGEMENT, 2, action.requested_on,
                       working_days=limits.stage2_acknowledgement)
        elif isinstance(action, AcknowledgeEscalation):
            start = today if limits.stage2_response_from == "acknowledgement" \
                else (self.case.escalation_requested_on or today)
            due = self._plan(DeadlineKind.STAGE2_RESPONSE, 2, start,
                             working_days=limits.stage2_response)
            letters.append(self._letter(LetterKind.STAGE2_ACKNOWLEDGEMENT, 2, due=due.due))
        elif isinstance(action, RefuseEscalation):
            letters.append(self._letter(LetterKind.ESCALATION_REFUSAL, 2))
        elif isinstance(action, CompleteAction):
            return letters, notices, False, self._complete(action, today, letters)
        elif isinstance(action, AddIssue) and not self.case.issues[-1].folded_into_stage1:
            notices.append(self._notice(
                NotificationKind.NEW_COMPLAINT_NEEDED, "manager", None,
                f"an issue raised on {self.case.reference} must be logged as a new "
                "complaint (Code 6.8)", key=f"issue-{len(self.case.issues)}"))
        elif isinstance(action, ReopenOnOrder):
            if action.order is OmbudsmanOrderKind.TAKE_ON_COMPLAINT:
                self._plan(DeadlineKind.STAGE1_ACKNOWLEDGEMENT, 1, today,
                           working_days=limits.stage1_acknowledgement)
            else:
                self._plan(DeadlineKind.STAGE2_ACKNOWLEDGEMENT, 2, today,
                           working_days=limits.stage2_acknowledgement)
        return letters, notices, False, None

    def _complete(self, action: CompleteAction, today: dt.date,
                  letters: list[LetterSpec]) -> str | None:
        """Meet the action's deadline, write to the resident; say if the case now closes."""
        for deadline in self.deadlines:
            if deadline.key == f"action:{action.action_id}":
                self._mark_met(deadline)
        record = next(a for a in self.case.actions if a.action.action_id == action.action_id)
        letters.append(self._letter(LetterKind.ACTION_UPDATE, record.stage))
        if self.machine.state is S.STAGE1_RESPONDED and not self.case.open_actions():
            window = self._latest(DeadlineKind.ESCALATION_WINDOW)
            if window is None:
                self._plan_escalation_window(today)
            elif window.status is DeadlineStatus.LAPSED:
                return "escalation window lapsed and every action is complete"
        return None

    def _plan_escalation_window(self, today: dt.date) -> None:
        """Start the escalation window once it can run (from the response or last action)."""
        assert self.context is not None
        policy = self.context.policy
        if policy.escalation_window.runs_from is EscalationWindowStart.ACTIONS_COMPLETED \
                and self.case.open_actions():
            return  # Starts when the last action is completed.
        self._plan(DeadlineKind.ESCALATION_WINDOW, 1, today, **escalation_window_length(policy))

    def _system_close(self, why: str) -> None:
        action = Close(by=SYSTEM, note=why)
        if self.machine.refusal(action) is None:
            self._accept(action)

    def _system_note(self, action: str, detail: str) -> None:
        """Put something the system did or found on the audit trail (state unchanged)."""
        state = self.case.state
        self._remember(AuditEvent(seq=self._next_seq(), at=workflow.now(), action=action,
                                  by=SYSTEM, from_state=state, to_state=state, detail=detail))

    def _refuse(self, name: str, by: str, reason: str) -> None:
        """Count a refused signal; keep it short and recent (never its payload)."""
        refusal = Refusal(at=workflow.now(), name=name[:MAX_BY], by=by[:MAX_BY] or "unknown",
                          reason=reason[:MAX_REASON])
        self.refused_total += 1
        self._pending_count += 1
        self._pending = [*self._pending, refusal][-REFUSALS_KEPT:]
        self.refusals = [*self.refusals, refusal][-REFUSALS_KEPT:]
        if self._pending_count == 1:  # once per batch: a flood must not flood the logs
            workflow.logger.warning("signal refused", extra={"reference": self.case.reference})

    # -- deadlines ------------------------------------------------------------------------

    def _plan(self, kind: DeadlineKind, stage: int, start: dt.date, *, key: str | None = None,
              label: str | None = None, **length: int) -> Deadline:
        assert self.calendar is not None and self.context is not None
        if key is None:
            key = f"{kind.value}#{1 + sum(1 for d in self.deadlines if d.kind is kind)}"
        deadline = plan(self.calendar, self.context.policy, kind=kind, stage=stage,
                        start=start, key=key, label=label, **length)
        self.deadlines.append(deadline)
        return deadline

    def _latest(self, kind: DeadlineKind) -> Deadline | None:
        return next((d for d in reversed(self.deadlines) if d.kind is kind), None)

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

    def _stop_clocks(self) -> None:
        """Cancel every pending deadline the state's clocks do not include."""
        running = CLOCKS[self.machine.state]
        for deadline in self.deadlines:
            if deadline.status is DeadlineStatus.PENDING and deadline.kind not in running:
                deadline.status = DeadlineStatus.CANCELLED

    def _outstanding(self) -> list[Deadline]:
        """Deadlines of the running clocks still to be met: pending, or breached."""
        running = CLOCKS[self.machine.state]
        return [d for d in self.deadlines if d.met_at is None and d.kind in running
                and d.status in (DeadlineStatus.PENDING, DeadlineStatus.BREACHED)]

    def _next_pending(self) -> Deadline | None:
        return min((d for d in self._outstanding() if d.status is DeadlineStatus.PENDING),
                   key=lambda d: d.ends_at, default=None)

    def _overdue(self) -> bool:
        return any(d.status is DeadlineStatus.BREACHED for d in self._outstanding())

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
        ended = self._ended_at()
        if ended is not None and self.machine.state in ENDED:
            until = ended + RETENTION
            moments.append((until, f"open for late Ombudsman actions until "
                                   f"{london_date(until).isoformat()}"))
        return min(moments, key=lambda m: m[0]) if moments else (None, None)

    def _timers_due(self) -> None:
        """Remind, mark breaches and tell the lead; record what happened as one event."""
        now = workflow.now()
        notices: list[NotifyInput] = []
        close_why = None
        for d in self._outstanding():
            due = f"{d.label} for {self.case.reference}"
            if d.status is DeadlineStatus.PENDING and d.remind_at is not None \
                    and not d.reminded and d.remind_at <= now < d.ends_at:
                d.reminded = True
                notices.append(self._notice(
                    NotificationKind.REMINDER, "manager", d,
                    f"{due} is due on {d.due.isoformat()} (Code {d.provision})"))
            if d.status is DeadlineStatus.PENDING and d.ends_at <= now:
                if d.kind is DeadlineKind.ESCALATION_WINDOW:
                    d.status = DeadlineStatus.LAPSED
                    if self.machine.state is S.STAGE1_RESPONDED and not self.case.open_actions():
                        close_why = "escalation window lapsed with no request"
                    continue
                d.status = DeadlineStatus.BREACHED
                d.breached_at = now
                d.manager_notified = True
                self._system_note("deadline_breached", f"{d.label} due {d.due.isoformat()}")
                notices.append(self._notice(
                    NotificationKind.BREACH, "manager", d,
                    f"{due} was due on {d.due.isoformat()} and is overdue "
                    f"(Code {d.provision})"))
            elif d.status is DeadlineStatus.BREACHED and not d.lead_notified \
                    and d.escalate_at <= now:
                d.lead_notified = True
                notices.append(self._notice(
                    NotificationKind.BREACH_ESCALATED, "lead", d,
                    f"{due} is still overdue since {d.due.isoformat()} "
                    f"(Code {d.provision})"))
        self._queue_event(notifications=notices, only_if_changed=True)
        if close_why is not None:
            self._system_close(close_why)

    async def _extend_calendar(self) -> None:
        """Record more years of calendar (a case open for years): the same policy's days."""
        assert self.calendar is not None and self.context is not None
        first = self.context.calendar.first_year
        data: CalendarData = await workflow.execute_activity(
            "load_calendar", LoadCalendarInput(
                policy_name=self.context.policy.name, first_year=first,
                last_year=london_date(workflow.now()).year + CALENDAR_YEARS_AHEAD),
            result_type=CalendarData, start_to_close_timeout=SHORT, retry_policy=RETRY)
        # Keep the recorded years as they were: only later years are added.
        kept = tuple(d for d in self.context.calendar.closed
                     if d.year <= self.context.calendar.last_year)
        added = tuple(d for d in data.closed if d.year > self.context.calendar.last_year)
        calendar = data.model_copy(update={"closed": kept + added})
        self.context = self.context.model_copy(update={"calendar": calendar})
        self.calendar = RecordedCalendar(calendar)

    # -- recording ------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self.audit_seq += 1
        return self.audit_seq

    def _remember(self, event: AuditEvent) -> None:
        self._unrecorded.append(event)
        self.recent = [*self.recent, event][-RECENT:]

    def _letter(self, kind: LetterKind, stage: int, *, due: dt.date | None = None,
                previous_due: dt.date | None = None) -> LetterSpec:
        sent = sum(1 for r in self.letters if r.kind is kind and r.stage == stage)
        queued = sum(1 for e in self._queue for s in e.letters
                     if s.kind is kind and s.stage == stage)
        seq = 1 + sent + queued
        return LetterSpec(letter_id=f"{self.case.reference}:{kind.value}:{stage}:{seq}",
                          kind=kind, stage=stage, seq=seq, due=due, previous_due=previous_due)

    def _notice(self, kind: NotificationKind, role: str, deadline: Deadline | None,
                message: str, *, key: str | None = None) -> NotifyInput:
        suffix = key or (deadline.key if deadline else "case")
        return NotifyInput(
            notification_id=f"{self.case.reference}:{kind.value}:{suffix}",
            reference=self.case.reference, kind=kind, recipient_role=role,
            recipient_id=self.intake.lead_id if role == "lead" else self.intake.manager_id,
            deadline_key=deadline.key if deadline else None,
            due=deadline.due if deadline else None, message=message)

    def _queue_event(self, *, action: Action | None = None, audit: tuple[AuditEvent, ...] = (),
                     letters: list[LetterSpec] | None = None,
                     notifications: list[NotifyInput] | None = None,
                     ombudsman: bool = False, only_if_changed: bool = False) -> int:
        """Queue what changed since the last event, with any refusals counted meanwhile.

        Returns:
            The event's number (0 when ``only_if_changed`` and nothing changed).
        """
        entries = list(self._unrecorded)
        self._unrecorded = []
        if self._pending_count:
            entries.insert(0, self._refusal_entry())
        case = self.case.model_dump(mode="json", exclude={"audit"})
        changes = {k: v for k, v in case.items() if self._last_case.get(k) != v}
        self._last_case = case
        deadlines = []
        for deadline in self.deadlines:
            dumped = deadline.model_dump(mode="json")
            if self._last_deadlines.get(deadline.key) != dumped:
                self._last_deadlines[deadline.key] = dumped
                deadlines.append(deadline.model_copy())
        if only_if_changed and not (entries or changes or deadlines or notifications):
            return 0
        self._events += 1
        self._queue.append(CaseEvent(
            reference=self.case.reference, seq=self._events, at=workflow.now(),
            audit=tuple(sorted(entries, key=lambda e: e.seq)),
            action=action.model_dump(mode="json") | {"trigger": action.trigger}
            if action else None,
            changes=changes, deadlines=tuple(deadlines), header=self._header(),
            letters=tuple(letters or ()), notifications=tuple(notifications or ()),
            ombudsman_details=ombudsman))
        return self._events

    def _refusal_entry(self) -> AuditEvent:
        """One audit entry for the refusals counted since the last event."""
        count, last = self._pending_count, self._pending
        self._pending_count, self._pending = 0, []
        detail = (f"{count} signal(s) refused; the last {len(last)}: "
                  + "; ".join(f"{r.name} by {r.by}: {r.reason}" for r in last))
        state = self.case.state
        return AuditEvent(seq=self._next_seq(), at=workflow.now(), action="refused_signals",
                          by=last[-1].by if last else "unknown", from_state=state,
                          to_state=state, accepted=False, detail=detail[:2000])

    async def _record(self, event: CaseEvent) -> None:
        """Record one event; a failure that retrying cannot mend is told to a person."""
        try:
            recorded: Recorded = await workflow.execute_activity(
                "record_case_event", event, result_type=Recorded,
                start_to_close_timeout=RECORD_TIMEOUT, heartbeat_timeout=RECORD_HEARTBEAT,
                retry_policy=RETRY)
            self.letters.extend(recorded.letters)
            if event.seq in self._awaited:
                self._awaited.discard(event.seq)
                self._sent[event.seq] = tuple(r.letter_id for r in recorded.letters)
        except ActivityError as exc:
            workflow.logger.error("recording failed", extra={
                "reference": self.case.reference, "error": _cause(exc)})
            await workflow.execute_activity(
                "notify", self._notice(
                    NotificationKind.ACTION_REFUSED, "manager", None,
                    f"{self.case.reference}: recording event {event.seq} failed: "
                    f"{_cause(exc)}", key=f"record-{event.seq}"),
                start_to_close_timeout=SHORT, retry_policy=RETRY)
        self._recorded = event.seq

    # -- what people see --------------------------------------------------------------------

    def _header(self) -> ReadHeader:
        nxt = self._next_pending()
        return ReadHeader(
            landlord=self.context.policy.landlord if self.context else "",
            policy_name=self.case.policy_name, state=self.case.state, stage=self.case.stage,
            handler_id=self.case.stage2_handler or self.case.stage1_handler,
            next_deadline=nxt.ends_at if nxt else None, overdue=self._overdue())

    def _operator_view(self) -> None:
        """Search attributes (upserted only when they change) and the current details."""
        header = self._header()
        wanted: dict[str, Any] = {
            "ComplaintState": header.state, "ComplaintStage": header.stage,
            "NextDeadline": header.next_deadline, "Landlord": header.landlord or None,
            "HandlerId": header.handler_id, "Overdue": header.overdue}
        changed = {k: v for k, v in wanted.items() if self._search.get(k, object()) != v}
        if changed:
            workflow.upsert_search_attributes([
                _SA_KEYS[k].value_set(v) if v is not None else _SA_KEYS[k].value_unset()
                for k, v in changed.items()])
            self._search.update(changed)
        nxt = self._next_pending()
        last = self.recent[-1] if self.recent else None
        ended = self._ended_at() if self.machine.state in ENDED else None
        workflow.set_current_details(
            f"**{header.state}** (stage {header.stage})  \n"
            f"next deadline: {nxt.label + ' ' + nxt.due.isoformat() if nxt else 'none'}"
            f"{' (OVERDUE)' if header.overdue else ''}  \n"
            f"last action: {last.action + ' by ' + last.by if last else 'lodged'}"
            + (f"  \nfinished; open for late Ombudsman actions until "
               f"{london_date(ended + RETENTION).isoformat()}" if ended else ""))

    def view(self) -> CaseView:
        """The case as the query returns it (audit and refusals: the most recent)."""
        header = self._header()
        state = self.case.state
        return CaseView(
            reference=self.case.reference, landlord=header.landlord,
            policy_name=self.case.policy_name, state=state, stage=self.case.stage,
            handlers={k: v for k, v in (("stage1", self.case.stage1_handler),
                                        ("stage2", self.case.stage2_handler)) if v},
            next_deadline=header.next_deadline, overdue=header.overdue,
            case=self.case.model_copy(update={"audit": list(self.recent)}),
            deadlines=self.deadlines, letters=self.letters,
            rejected=[AuditEvent(seq=0, at=r.at, action=r.name, by=r.by, from_state=state,
                                 to_state=state, accepted=False, detail=r.reason)
                      for r in self.refusals],
            refused_total=self.refused_total)

    def _limits(self) -> Limits:
        if self.context is None:
            return Limits()
        policy = self.context.policy
        return Limits(policy.limits.stage1_extension_cap, policy.limits.stage2_extension_cap,
                      policy.exclusion_window_months)

    def _carried(self) -> CaseState:
        assert self.context is not None
        return CaseState(context=self.context, case=self.case, deadlines=self.deadlines,
                         letters=self.letters, audit_seq=self.audit_seq, events=self._events,
                         refused_total=self.refused_total, recent=self.recent,
                         refusals=self.refusals, pending_refused=self._pending_count)


def _response_kind(stage: int) -> DeadlineKind:
    return DeadlineKind.STAGE1_RESPONSE if stage == 1 else DeadlineKind.STAGE2_RESPONSE


def _fields(exc: ValidationError) -> str:
    """A validation error as field paths and messages, never the values given.

    The one place a path holds what the sender wrote is an unknown field's name: it is
    shown as ``<unknown field>``.
    """
    def path(error: Any) -> str:
        loc = [str(p) for p in error["loc"]]
        if error["type"] == "extra_forbidden" and loc:
            loc[-1] = "<unknown field>"
        return ".".join(loc) or "input"

    return "; ".join(f"{path(e)}: {e['msg']}" for e in exc.errors()[:5])[:MAX_REASON]


def _cause(exc: BaseException) -> str:
    """A short description of a failure, safe for a staff notification (no personal data).

    The innermost cause's type; with its first line only for an ``ApplicationError``,
    whose messages the engine's own activities write without personal data.
    """
    inner: BaseException = exc
    while inner.__cause__ is not None:
        inner = inner.__cause__
    if isinstance(inner, ApplicationError) and inner.message:
        return f"{inner.type or 'ApplicationError'}: {inner.message.splitlines()[0]}"[:500]
    return type(inner).__name__
