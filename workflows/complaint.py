"""The ``Complaint`` workflow: one complaint from receipt to closure; its id is the reference.

The lifecycle itself (states, the transition table, the Code's guards) is pure and lives in
:mod:`domain.lifecycle`; what the case decides (deadlines planned and met, letters, notices,
what a timer does) lives in :class:`domain.casebook.CaseBook`, with deadlines counted by
:mod:`domain.deadlines` on the calendar the case recorded when it started. This module adds
time and the outside world:

- **Staff actions** are updates, one per trigger, each with its validator beside it: a
  refusal says what is allowed and nothing enters history. Integrations may send them as
  signals, to one dynamic handler that decodes defensively (a typed one fails the task on
  another number of arguments); refusals are counted, the last few kept, batched.
- **Recording**: each accepted action (and each batch of refusals, and what a timer did)
  is one :class:`CaseEvent`, recorded by one activity that writes the audit entry, the read
  model and the letters in order and exactly once (a local activity, inside the workflow
  task; an ordinary one while signals arrive). The update returns once done.
- **Timers**: the main loop sleeps until the next reminder, deadline or breach notice.
  Entering a state stops every clock :data:`domain.lifecycle.CLOCKS` does not list for it.
- **Bounded state**: the workflow keeps states, dates, ids and counts, the last
  :data:`RECENT` audit entries and :data:`REFUSALS_KEPT` refusals; bodies live in the
  database. It continues as new when Temporal suggests it.

Cases started before this type run :mod:`workflows.complaint_v1` (``ComplaintWorkflow``).
Change this workflow (and the case book) only behind ``workflow.patched(...)``, with replay
tests over committed histories (``tests/histories/``).
"""

# No ``from __future__ import annotations``: the sandbox runs this module for every new
# case, and the SDK would compile each handler's string annotations again (3 to 4 ms).
import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from domain.casebook import (
        _MEETS,
        ACTION_HORIZON_DAYS,
        CALENDAR_YEARS_AHEAD,
        CASE_BOUNDS,
        RECENT,
        REFUSALS_KEPT,
        RETENTION,
        SYSTEM,
        CaseBook,
        validation_fields,
    )
    from domain.deadlines import london_date
    from domain.lifecycle import (
        CASEWORK_3_PATCH,
        CASEWORK_PATCH,
        IN_FLIGHT_LETTERS_PATCH,
        LOCAL_RECORDING_PATCH,
        REVISION_6_PATCH,
        REVISION_8_PATCH,
        SIGNALLED_RECORDING_PATCH,
        SIGNALS_SETTLE,
        TRIGGERS,
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
        Close,
        CompleteAction,
        ComplyOrder,
        Decline,
        DelayAction,
        Extend,
        OmbudsmanContact,
        OmbudsmanDetermination,
        PayRemedy,
        Reassign,
        RecordContact,
        ReferOmbudsman,
        RefuseEscalation,
        ReopenOnOrder,
        RequestEscalation,
        Respond,
        Void,
        Withdraw,
    )
    from models.events import (
        ActionResult,
        CalendarData,
        CaseContext,
        CaseEvent,
        CaseInput,
        CaseState,
        LoadCalendarInput,
        OpenCaseInput,
        PreviewAnswer,
        PreviewInput,
        Recorded,
        RefreshCalendar,
    )
    from models.limits import first_problem
    from models.messages import CaseView, NotificationKind

from workflows.timers import WakeTimer

__all__ = [  # with what the first workflow type and the tests take from here
    "ACTION_HORIZON_DAYS", "CASE_BOUNDS", "MAX_SIGNAL_BYTES", "POLICY_RETRY_EVERY", "RECENT",
    "REFUSALS_KEPT", "RETENTION", "RETRY", "SA_HANDLER", "SA_LANDLORD", "SA_NEXT_DEADLINE",
    "SA_OVERDUE", "SA_STAGE", "SA_STATE", "SEARCH_ATTRIBUTES", "SHORT", "SYSTEM", "TASK_QUEUE",
    "WORKFLOW_TYPE", "_MEETS", "ComplaintState", "ComplaintWorkflow", "_cause", "london_date",
]

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

#: Activities retry for ever with backoff: an outage must not lose anything.
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                    maximum_interval=timedelta(minutes=5),
                    non_retryable_error_types=["PolicyRejected", "PolicyError"])
#: Recording sends letters: a killed worker is noticed by its heartbeat in 40 s (just
#: above the 30 s SMTP socket timeout), not after the whole two minutes.
RECORD_TIMEOUT = timedelta(minutes=2)
RECORD_HEARTBEAT = timedelta(seconds=40)
SHORT = timedelta(seconds=30)
#: How a recording that will not succeed fails: ordinary, an ``ActivityError``; local, its
#: own ``ApplicationError`` (unwrapped) or, past its timeout, a ``TimeoutError``.
RECORDING_FAILED = (ActivityError, ApplicationError, ActivityTimeout)
#: How often a case whose policy cannot be loaded tries again (the manager is told once).
POLICY_RETRY_EVERY = timedelta(days=1)
#: A signal payload larger than this is refused unread (an action is far smaller).
MAX_SIGNAL_BYTES = 64 * 1024


@workflow.defn(name=WORKFLOW_TYPE)
class ComplaintWorkflow:
    """One complaint under one landlord's policy (see the module docstring)."""

    @workflow.init
    def __init__(self, input: CaseInput) -> None:
        self.intake = input.intake
        # Decided once per run, before any handler (validators may not call patched()); a
        # case started from revision 6 (8) on takes every earlier patch under one marker.
        self._revision_8 = workflow.patched(REVISION_8_PATCH)
        if self._revision_8 or workflow.patched(REVISION_6_PATCH):
            casework, in_flight, local = 3, True, True
        else:
            casework = 2 if workflow.patched(CASEWORK_PATCH) else 1
            if casework == 2 and workflow.patched(CASEWORK_3_PATCH):
                casework = 3
            in_flight = workflow.patched(IN_FLIGHT_LETTERS_PATCH)
            local = workflow.patched(LOCAL_RECORDING_PATCH)
        self.book = CaseBook(input.intake, input.carried, workflow.now, casework=casework)
        self.book.count_in_flight = in_flight
        self._local = local
        self._awaited: set[int] = set()  # events an update waits on ...
        self._sent: dict[int, tuple[str, ...]] = {}  # ... and the letters they sent
        self._search: dict[str, Any] = {}
        # When the last signal came; a run continued with refusals to record came mid-flood.
        self._signalled_at = workflow.now() if self.book.pending_count else None
        self._timer = WakeTimer(keep=self._revision_8)

    # -- the main loop ------------------------------------------------------------------

    @workflow.run
    async def run(self, input: CaseInput) -> CaseView:
        """Run the case until it is finished and its retention window has passed."""
        book = self.book
        if book.context is None:
            await self._open()
        while True:
            while book.queue:
                await self._record(book.queue.pop(0))
            # Before recording refusals: under a flood there are always more to record.
            if workflow.info().is_continue_as_new_suggested():
                # An update in flight waits for its event here: never wait on handlers alone.
                await workflow.wait_condition(
                    lambda: workflow.all_handlers_finished() or bool(book.queue))
                if book.queue or not workflow.all_handlers_finished():
                    continue
                # Refusals still to record travel in the carried state.
                workflow.continue_as_new(CaseInput(intake=self.intake, carried=book.carried()))
            if book.pending_count:
                book.queue_event()
                continue
            self._operator_view()
            if book.finished():
                break
            if book.calendar_wanted():
                await self._extend_calendar()
            # Why it wakes is in the current details: a timer summary would cost a payload.
            wake_at, _ = book.next_wake()
            if await self._timer.wait(wake_at, lambda: bool(book.queue) or book.pending_count > 0):
                book.timers_due()
        self._timer.cancel()  # an action ended the case before its timer fired (revision 8)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return book.view()

    async def _open(self) -> None:
        """Load the policy and calendar once, store the intake, plan the first deadlines.

        A policy that cannot be loaded (missing, or looser than the Code) is waited for:
        the manager is told once and the case tries again daily.
        """
        received = self.intake.received_on
        told = False
        while True:
            try:
                context: CaseContext = await self._recording(
                    "open_case", OpenCaseInput(
                        intake=self.intake, first_year=received.year - 1,
                        last_year=max(received.year, london_date(workflow.now()).year)
                        + CALENDAR_YEARS_AHEAD),
                    CaseContext, SHORT)
                break
            except RECORDING_FAILED as exc:
                if not told:
                    told = True
                    await workflow.execute_activity(
                        "notify", self.book.notice(
                            NotificationKind.POLICY_UNAVAILABLE, "manager", None,
                            f"policy {self.intake.policy_name!r} for {self.intake.reference} "
                            f"cannot be loaded ({_cause(exc)}); the case waits and tries "
                            "again daily: fix or restore the policy file", key="policy"),
                        start_to_close_timeout=SHORT, retry_policy=RETRY)
                await workflow.sleep(POLICY_RETRY_EVERY,
                                     summary=f"retry loading policy {self.intake.policy_name}")
        self.book.opened(context)

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
    async def delay_action(self, action: DelayAction) -> ActionResult:
        """Report an outstanding action delayed, with its revised date; tell the resident."""
        return await self._act(action)

    @delay_action.validator
    def _delay_action_allowed(self, action: DelayAction) -> None:
        self._validate(action)

    @workflow.update
    async def pay_remedy(self, action: PayRemedy) -> ActionResult:
        """Record a financial remedy paid (7.3): its payment deadline is met."""
        return await self._act(action)

    @pay_remedy.validator
    def _pay_remedy_allowed(self, action: PayRemedy) -> None:
        self._validate(action)

    @workflow.update
    async def void(self, action: Void) -> ActionResult:
        """Void a duplicate, a merged case or one created in error: no letter, not counted."""
        return await self._act(action)

    @void.validator
    def _void_allowed(self, action: Void) -> None:
        self._validate(action)

    @workflow.update
    async def reassign(self, action: Reassign) -> ActionResult:
        """Move the handler (the resident is written to) or the manager to someone else."""
        return await self._act(action)

    @reassign.validator
    def _reassign_allowed(self, action: Reassign) -> None:
        self._validate(action)

    @workflow.update
    async def assign(self, action: Assign) -> ActionResult:
        """Give the case, not yet acknowledged, to a handler: claiming is assigning oneself."""
        return await self._act(action)

    @assign.validator
    def _assign_allowed(self, action: Assign) -> None:
        self._validate(action)

    @workflow.update
    async def amend_intake(self, action: AmendIntake) -> ActionResult:
        """Correct who the complaint is from or what they need; letters follow the change."""
        return await self._act(action)

    @amend_intake.validator
    def _amend_intake_allowed(self, action: AmendIntake) -> None:
        self._validate(action)

    @workflow.update
    async def ombudsman_contact(self, action: OmbudsmanContact) -> ActionResult:
        """Record an Ombudsman enquiry or instruction; the case's own clocks carry on."""
        return await self._act(action)

    @ombudsman_contact.validator
    def _ombudsman_contact_allowed(self, action: OmbudsmanContact) -> None:
        self._validate(action)

    @workflow.update
    async def ombudsman_determination(self, action: OmbudsmanDetermination) -> ActionResult:
        """Record the Ombudsman's determination; each order is tracked to its due date."""
        return await self._act(action)

    @ombudsman_determination.validator
    def _ombudsman_determination_allowed(self, action: OmbudsmanDetermination) -> None:
        self._validate(action)

    @workflow.update
    async def comply_order(self, action: ComplyOrder) -> ActionResult:
        """Record compliance with an Ombudsman order or instruction, with the evidence."""
        return await self._act(action)

    @comply_order.validator
    def _comply_order_allowed(self, action: ComplyOrder) -> None:
        self._validate(action)

    @workflow.update
    async def refresh_calendar(self, request: RefreshCalendar) -> ActionResult:
        """Read the policy's calendar again; deadlines planned from now on count with it.

        Read once at the start, and again only when asked: how a proclaimed bank holiday
        reaches a running case. Deadlines already planned keep the dates residents got.
        """
        book = self.book
        await workflow.wait_condition(lambda: book.context is not None)
        assert book.context is not None
        current = book.context.calendar
        data: CalendarData = await workflow.execute_activity(
            "load_calendar", LoadCalendarInput(policy_name=book.context.policy.name,
                                               first_year=current.first_year,
                                               last_year=current.last_year),
            result_type=CalendarData, start_to_close_timeout=SHORT, retry_policy=RETRY)
        number = book.calendar_refreshed(data, request.by)
        self._awaited.add(number)
        await workflow.wait_condition(lambda: book.recorded >= number)
        return book.result(book.audit_seq, self._sent.pop(number, ()))

    @refresh_calendar.validator
    def _refresh_calendar_allowed(self, request: RefreshCalendar) -> None:
        # Wrong arguments raise here, rejecting the update, not in the handler (a failed task).
        problem = first_problem(request)
        if problem is not None:
            raise ApplicationError(problem, type="ActionRefused", non_retryable=True)

    # -- signals: any name, any shape; never a failed workflow task ----------------------

    @workflow.signal(dynamic=True)
    def signal(self, name: str, args: Sequence[RawValue]) -> None:
        """Take a staff action sent as a signal; refuse (and count) anything else."""
        self._signalled_at = workflow.now()
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
        # Plain JSON (what every client sends) is parsed directly, to keep a flood cheap.
        payload = json.loads(raw.data) if raw.metadata.get("encoding") == b"json/plain" \
            else workflow.payload_converter().from_payload(raw)
        if not isinstance(payload, dict):
            self._refuse(name, "unknown", f"takes a JSON object, not {type(payload).__name__}")
            return
        by = payload.get("by")
        by = by if isinstance(by, str) else "unknown"
        try:
            action = ACTION_BY_TRIGGER[name].model_validate(payload)
        except ValidationError as exc:
            self._refuse(name, by, "malformed: " + validation_fields(exc))
            return
        reason = self.book.refusal(action) if self.book.context else "the case is still starting"
        if reason is not None:
            self._refuse(name, by, reason)
            return
        self._accepted(action)

    def _refuse(self, name: str, by: str, reason: str) -> None:
        if self.book.refuse(name, by, reason):  # once per batch: a flood must not flood logs
            workflow.logger.warning("signal refused", extra={"reference": self.intake.reference})

    @workflow.query
    def case_view(self) -> CaseView:
        """The case: state, stage, handlers, deadlines, letters, recent audit and refusals."""
        return self.book.view()

    @workflow.query
    def preview(self, question: PreviewInput) -> PreviewAnswer:
        """What an action would do if taken now: its refusal, or its event and case file.

        Decided on a twin of the case book, so nothing here changes the case, and nothing
        enters history (a query adds no event: no patch is needed). Never raises on bad
        input: a malformed action or unknown trigger is answered as a refusal.
        """
        try:
            return self._preview(question)
        except Exception as exc:
            if isinstance(exc, workflow.NondeterminismError):
                raise
            return PreviewAnswer(refusal=f"the action could not be previewed "
                                         f"({type(exc).__name__}); nothing was changed")

    def _preview(self, question: PreviewInput) -> PreviewAnswer:
        book = self.book
        model = ACTION_BY_TRIGGER.get(question.trigger)
        if model is None:
            return PreviewAnswer(refusal="unknown action; actions are: " + ", ".join(TRIGGERS))
        try:
            action = model.model_validate(question.action)
        except ValidationError as exc:
            return PreviewAnswer(refusal="malformed: " + validation_fields(exc))
        if book.context is None:
            return PreviewAnswer(refusal="the case is still starting")
        # A deep copy through JSON: carried() shares what accept() mutates in place.
        carried = CaseState.model_validate(book.carried().model_dump(mode="json"))
        now = workflow.now()
        if question.at is not None and question.at > now:
            now = question.at  # a quiet case's own time is its last task's (see PreviewInput)
        twin = CaseBook(self.intake, carried, lambda: now, casework=book.casework)
        twin.queue = list(book.queue)  # queued events count towards letter numbers
        twin.in_flight, twin.count_in_flight = book.in_flight, book.count_in_flight
        reason = twin.refusal(action)
        if reason is not None:
            return PreviewAnswer(refusal=reason)
        number, _seq = twin.accept(action)
        event = next(e for e in twin.queue if e.seq == number)
        return PreviewAnswer(event=event, case=twin.case)

    # -- deciding: the case book decides, the workflow waits for the record ---------------

    def _validate(self, action: Action) -> None:
        reason = self.book.refusal(action)
        if reason is not None:
            # Raised in a validator: the update is rejected and nothing enters history.
            raise ApplicationError(reason, type="ActionRefused", non_retryable=True)

    async def _act(self, action: Action) -> ActionResult:
        book = self.book
        await workflow.wait_condition(lambda: book.context is not None)
        reason = book.refusal(action)
        if reason is not None:
            # The case moved between validation and now: refuse, nothing changed.
            self._refuse(action.trigger, action.by, reason)
            raise ApplicationError(reason, type="ActionRefused", non_retryable=True)
        number, seq = self._accepted(action)
        self._awaited.add(number)
        await workflow.wait_condition(lambda: book.recorded >= number)
        return book.result(seq, self._sent.pop(number, ()))

    def _accepted(self, action: Action) -> tuple[int, int]:
        number, seq = self.book.accept(action)
        workflow.logger.info("action accepted", extra={
            "reference": self.intake.reference, "action": action.trigger,
            "state": self.book.case.state})
        return number, seq

    async def _extend_calendar(self) -> None:
        """Record more years of calendar (a case open for years): the same policy's days."""
        book = self.book
        assert book.context is not None
        data: CalendarData = await workflow.execute_activity(
            "load_calendar", LoadCalendarInput(
                policy_name=book.context.policy.name, first_year=book.context.calendar.first_year,
                last_year=london_date(workflow.now()).year + CALENDAR_YEARS_AHEAD),
            result_type=CalendarData, start_to_close_timeout=SHORT, retry_policy=RETRY)
        book.calendar_extended(data)

    # -- recording ------------------------------------------------------------------------

    async def _recording(self, name: str, arg: Any, result_type: type[Any],
                         timeout: timedelta, heartbeat: timedelta | None = None) -> Any:
        """Run one of the case's own recording activities (``open_case``, an event).

        Local on cases started under :data:`LOCAL_RECORDING_PATCH`: accepted, recorded and
        answered in one workflow task; a killed worker is noticed by the task's 10 s
        timeout and the next one runs it again (idempotent); ``complaints resync`` gets
        the inputs by replaying. Ordinary while signals arrive (see
        :data:`SIGNALLED_RECORDING_PATCH`).
        """
        if self._local and not self._signals_arriving():
            return await workflow.execute_local_activity(
                name, arg, result_type=result_type, start_to_close_timeout=timeout,
                retry_policy=RETRY)
        return await workflow.execute_activity(
            name, arg, result_type=result_type, start_to_close_timeout=timeout,
            heartbeat_timeout=heartbeat, retry_policy=RETRY)

    def _signals_arriving(self) -> bool:
        """Whether a signal came within :data:`SIGNALS_SETTLE` (patch asked lazily; r8 has it)."""
        return (self._signalled_at is not None
                and workflow.now() - self._signalled_at < SIGNALS_SETTLE
                and (self._revision_8 or workflow.patched(SIGNALLED_RECORDING_PATCH)))

    async def _record(self, event: CaseEvent) -> None:
        """Record one event; a failure that retrying cannot mend is told to a person."""
        book = self.book
        book.in_flight = event
        try:
            recorded: Recorded = await self._recording("record_case_event", event, Recorded,
                                                       RECORD_TIMEOUT, RECORD_HEARTBEAT)
            book.letters.extend(recorded.letters)
            book.in_flight = None
            if event.seq in self._awaited:
                self._awaited.discard(event.seq)
                self._sent[event.seq] = tuple(r.letter_id for r in recorded.letters)
        except RECORDING_FAILED as exc:
            book.in_flight = None  # its letters were not sent: their numbers are free again
            workflow.logger.error("recording failed", extra={
                "reference": self.intake.reference, "error": _cause(exc)})
            await workflow.execute_activity(
                "notify", book.notice(
                    NotificationKind.ACTION_REFUSED, "manager", None,
                    f"{self.intake.reference}: recording event {event.seq} failed: "
                    f"{_cause(exc)}", key=f"record-{event.seq}"),
                start_to_close_timeout=SHORT, retry_policy=RETRY)
        book.recorded = event.seq

    # -- what operators see -----------------------------------------------------------------

    def _operator_view(self) -> None:
        """Search attributes (upserted only when they change) and the current details."""
        wanted = self.book.search_attributes()
        changed = {k: v for k, v in wanted.items() if self._search.get(k, object()) != v}
        if changed:
            workflow.upsert_search_attributes([
                _SA_KEYS[k].value_set(v) if v is not None else _SA_KEYS[k].value_unset()
                for k, v in changed.items()])
            self._search.update(changed)
        workflow.set_current_details(self.book.details())


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
