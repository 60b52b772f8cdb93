"""The case book: what a ``Complaint`` workflow knows about its case, and every decision it takes.

:class:`CaseBook` holds the case file, its deadlines, the letters sent, a bounded tail of the
audit trail and of refused signals, and the queue of :class:`CaseEvent` s still to record.
It decides, purely: whether an action is allowed now (the lifecycle's guards, the case's
bounds, the clock), what an accepted action brings (deadlines met and planned, letters and
staff notices), what a timer does when it fires (reminders, breaches, telling the lead), and
what the operator sees. It reads the time only through the clock it is given (the workflow
passes ``workflow.now``), does no I/O and calls no Temporal API, so the workflow module keeps
only what touches Temporal: handlers, timers and activities (:mod:`workflows.complaint`).

It is built in layers, each a module of its own: :mod:`domain.casebook_state` (what the case
carries, its bounds and what people see), :mod:`domain.casebook_record` (recording and
planning deadlines) and :mod:`domain.casebook_checks` (whether an action is allowed). This
module adds the decisions: the case's start, what an accepted action brings, and what a timer
does. Everything the workflow uses is importable from here.

It lives outside ``workflows/`` for a second reason: the workflow sandbox re-imports a
workflow's own module for every case it runs, and imports what is passed through (this
module, and the modules above, which it imports) once per worker.
"""

from __future__ import annotations

import datetime as dt

from domain.casebook_checks import CaseBookChecks, validation_fields
from domain.casebook_record import CaseBookRecord
from domain.casebook_state import (
    ACTION_HORIZON_DAYS,
    CALENDAR_YEARS_AHEAD,
    CASE_BOUNDS,
    CLOSURE_WARNING_DAYS,
    MAX_BY,
    MAX_REASON,
    RECENT,
    REFUSALS_KEPT,
    RETENTION,
    SYSTEM,
    CaseBookState,
    response_kind,
)
from domain.deadlines import RecordedCalendar, escalation_window_length, london_date
from domain.guards import months_before
from domain.lifecycle import ENDED, ComplaintState
from models.actions import (
    Acknowledge,
    AcknowledgeEscalation,
    Action,
    AddIssue,
    AmendIntake,
    Close,
    CompleteAction,
    ComplyOrder,
    Decline,
    DelayAction,
    Extend,
    OmbudsmanContact,
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
    Withdraw,
)
from models.events import CalendarData, CaseContext, LetterSpec
from models.letters import LetterKind
from models.messages import DeadlineKind, DeadlineStatus, NotificationKind, NotifyInput
from models.policy import EscalationWindowStart

__all__ = [
    "ACTION_HORIZON_DAYS", "CALENDAR_YEARS_AHEAD", "CASE_BOUNDS", "CLOSURE_WARNING_DAYS",
    "MAX_BY", "MAX_REASON", "RECENT", "REFUSALS_KEPT", "RETENTION", "SYSTEM", "_MEETS",
    "CaseBook", "CaseBookChecks", "CaseBookRecord", "CaseBookState", "response_kind",
    "validation_fields",
]

S = ComplaintState

#: Which deadline each trigger meets.
_MEETS: dict[str, tuple[DeadlineKind, ...]] = {
    "acknowledge": (DeadlineKind.STAGE1_ACKNOWLEDGEMENT,),
    "decline": (DeadlineKind.STAGE1_ACKNOWLEDGEMENT,),
    "respond": (DeadlineKind.STAGE1_RESPONSE, DeadlineKind.STAGE2_RESPONSE),
    "request_escalation": (DeadlineKind.ESCALATION_WINDOW,),
    "acknowledge_escalation": (DeadlineKind.STAGE2_ACKNOWLEDGEMENT,),
    "refuse_escalation": (DeadlineKind.STAGE2_ACKNOWLEDGEMENT,),
}


class CaseBook(CaseBookChecks):
    """One case's decisions, given a clock (see the module docstring).

    Args:
        intake: The complaint as lodged.
        carried: The state carried over a continue-as-new, or None for a new case.
        now: The clock; the workflow passes ``workflow.now``.
        casework: The casework rules' revision (see :class:`domain.guards.Limits`).
    """

    # -- the case's start and its calendar --------------------------------------------------

    def opened(self, context: CaseContext) -> None:
        """Take the policy and calendar the case starts with; plan the first deadlines."""
        self.context = context
        self.calendar = RecordedCalendar(context.calendar)
        self.machine.limits = self.limits()
        notices = self._check_intake()
        limits = context.policy.limits
        self._plan(DeadlineKind.STAGE1_ACKNOWLEDGEMENT, 1, self.case.received_on,
                   working_days=limits.stage1_acknowledgement)
        if limits.early_contact:
            self._plan(DeadlineKind.EARLY_CONTACT, 1, self.case.received_on,
                       working_days=limits.early_contact)
        self.queue_event(notifications=notices)

    def _check_intake(self) -> list[NotifyInput]:
        """Check the intake against the case's own clock and the policy (2.3).

        A receipt date after the day the case started is impossible (an integration sent
        it): the case is timed from the day it started and the manager told. An issue
        older than the exclusion window is flagged ``out_of_time`` and the manager asked to
        decide, considering discretion; the case is never declined by itself.
        """
        assert self.context is not None
        notices = []
        today = london_date(self.now())
        if self.case.received_on > today:
            self.case.received_on_as_lodged = self.case.received_on
            self.case.received_on = today
            why = (f"received_on {self.case.received_on_as_lodged.isoformat()} was after the "
                   f"day the case started; timed from {today.isoformat()}")
            self.system_note("intake_corrected", why)
            notices.append(self.notice(
                NotificationKind.INTAKE_CORRECTED, "manager", None,
                f"{self.case.reference}: {why}; check the date with the resident's "
                "correspondence", key="received_on"))
        window = self.context.policy.exclusion_window_months
        occurred = self.case.issue_occurred_on
        if occurred is not None and occurred < months_before(self.case.received_on, window):
            self.case.out_of_time = True
            why = (f"the issue occurred on {occurred.isoformat()}, more than {window} months "
                   f"before receipt on {self.case.received_on.isoformat()}")
            self.system_note("out_of_time", why)
            notices.append(self.notice(
                NotificationKind.EXCLUSION_DECISION, "manager", None,
                f"{self.case.reference}: {why}. Decide whether to accept it, considering "
                "discretion (Code 2.3): acknowledge it, or decline it with the reasons and "
                "how discretion was considered", key="out_of_time"))
        return notices

    def calendar_wanted(self) -> bool:
        """Whether the recorded calendar runs out within :data:`CALENDAR_YEARS_AHEAD`."""
        return self.calendar is not None and \
            london_date(self.now()).year + CALENDAR_YEARS_AHEAD > self.calendar.last_year

    def calendar_refreshed(self, data: CalendarData, by: str) -> int:
        """Count deadlines planned from now on with ``data``; returns the event's number."""
        assert self.context is not None
        self.context = self.context.model_copy(update={"calendar": data})
        self.calendar = RecordedCalendar(data)
        self.system_note("calendar_refreshed", f"asked by {by[:MAX_BY]}: "
                         f"{len(data.closed)} non-working weekdays in {data.first_year}-"
                         f"{data.last_year}")
        return self.queue_event()

    def calendar_extended(self, data: CalendarData) -> None:
        """Add later years of calendar; the years already recorded stay as they were."""
        assert self.context is not None
        current = self.context.calendar
        kept = tuple(d for d in current.closed if d.year <= current.last_year)
        added = tuple(d for d in data.closed if d.year > current.last_year)
        closures = tuple(d for d in current.closures if d.year <= current.last_year) + tuple(
            d for d in data.closures if d.year > current.last_year)
        calendar = data.model_copy(update={"closed": kept + added, "closures": closures})
        self.context = self.context.model_copy(update={"calendar": calendar})
        self.calendar = RecordedCalendar(calendar)

    def finished(self) -> bool:
        """Whether the case has ended, followed through, and its retention has passed."""
        state = self.machine.state
        open_work = self.case.open_actions() or self.case.open_orders()
        if state not in ENDED or (open_work and state not in (S.WITHDRAWN, S.VOIDED)):
            return False
        ended = self.ended_at()
        return ended is not None and self.now() >= ended + RETENTION

    # -- deciding -------------------------------------------------------------------------

    def accept(self, action: Action) -> tuple[int, int]:
        """Apply an allowed ``action``, plan its deadlines and letters, queue its recording.

        Returns:
            The number of the event that records it, and its audit entry's seq.
        """
        event = self.machine.apply(action, self.now())
        self._remember(event)
        letters, notices, ombudsman, close_why = self._consequences(action)
        self._stop_clocks()
        number = self.queue_event(action=action, audit=(event,), letters=letters,
                                  notifications=notices, ombudsman=ombudsman)
        if close_why is not None:
            self._system_close(close_why)
        return number, event.seq

    def _consequences(self, action: Action) -> tuple[list[LetterSpec], list[NotifyInput],
                                                      bool, str | None]:
        """The deadlines, letters and notices an accepted action brings."""
        assert self.context is not None
        limits = self.context.policy.limits
        today = london_date(self.now())
        letters: list[LetterSpec] = []
        notices: list[NotifyInput] = []
        if isinstance(action, RequestEscalation) and self.casework >= 2:
            self._late_request(action, notices)
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
            current = self._latest(response_kind(stage))
            previous = current.due if current else today
            if current is not None and current.status is DeadlineStatus.PENDING:
                current.status = DeadlineStatus.EXTENDED
            new = self._plan(response_kind(stage), stage, previous,
                             working_days=action.working_days)
            letters.append(self._letter(LetterKind.EXTENSION, stage, due=new.due,
                                        previous_due=previous))
            return letters, notices, True, None
        elif isinstance(action, Respond):
            stage = 1 if self.machine.state is S.STAGE1_RESPONDED else 2
            letters.append(self._letter(
                LetterKind.STAGE1_RESPONSE if stage == 1 else LetterKind.FINAL_RESPONSE, stage))
            for item in action.outstanding_actions:
                # Counted from the response so that a reminder falls before the due date.
                self._plan(DeadlineKind.ACTION, stage, today,
                           calendar_days=max((item.due_by - today).days, 0),
                           key=f"action:{item.action_id}", label=f"Action {item.action_id}")
            if self.casework >= 2:
                for number, remedy in enumerate(action.remedies, 1):
                    if remedy.kind == "financial" and remedy.due_by is not None:
                        self._plan(DeadlineKind.ACTION, stage, today,
                                   calendar_days=max((remedy.due_by - today).days, 0),
                                   key=f"remedy:{stage}:{number}",
                                   label=f"Payment of remedy {number} (stage {stage})")
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
        elif isinstance(action, DelayAction):
            self._delay(action, today, letters)
        elif isinstance(action, PayRemedy):
            for deadline in self.deadlines:
                if deadline.key == f"remedy:{action.stage}:{action.remedy}":
                    self._mark_met(deadline)
            return letters, notices, False, self._followed_through(today)
        elif isinstance(action, OmbudsmanContact | OmbudsmanDetermination):
            for order in self.case.orders:
                if order.at == self.now() and not any(
                        d.key == f"order:{order.order_id}" for d in self.deadlines):
                    self._plan(DeadlineKind.OMBUDSMAN, max(self.case.stage, 1), today,
                               calendar_days=max((order.due_by - today).days, 0),
                               key=f"order:{order.order_id}",
                               label=f"Ombudsman {order.source.replace('_', ' ')} "
                                     f"{order.order_id}")
        elif isinstance(action, AmendIntake):
            if action.adjustments is not None:
                self._meet(DeadlineKind.REVIEW)  # the adjustments were looked at again
            if action.adjustments_review_on is not None:
                for deadline in self.deadlines:
                    if deadline.kind is DeadlineKind.REVIEW and deadline.met_at is None and \
                            deadline.status is DeadlineStatus.PENDING:
                        deadline.status = DeadlineStatus.EXTENDED  # replaced by the new date
                self._plan(DeadlineKind.REVIEW, max(self.case.stage, 1), today,
                           calendar_days=max((action.adjustments_review_on - today).days, 0))
        elif isinstance(action, ComplyOrder):
            for deadline in self.deadlines:
                if deadline.key == f"order:{action.order_id}":
                    self._mark_met(deadline)
        elif isinstance(action, Withdraw) and self.casework >= 2:
            letters.append(self._letter(LetterKind.WITHDRAWAL_CONFIRMATION,
                                        max(self.case.stage, 1)))
        elif isinstance(action, Reassign) and action.role is ReassignRole.HANDLER:
            # The resident's contact changed: they are told who it is now.
            letters.append(self._letter(LetterKind.HANDLER_CHANGED, max(self.case.stage, 1)))
        elif isinstance(action, AddIssue) and not self.case.issues[-1].folded_into_stage1:
            notices.append(self.notice(
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
        key = f"action:{action.action_id}"
        for deadline in self.deadlines:
            # A delayed action's deadline was planned again as ``action:<id>#<n>``.
            if deadline.key == key or deadline.key.startswith(key + "#"):
                self._mark_met(deadline)
        record = next(a for a in self.case.actions if a.action.action_id == action.action_id)
        letters.append(self._letter(LetterKind.ACTION_UPDATE, record.stage))
        return self._followed_through(today)

    def _delay(self, action: DelayAction, today: dt.date, letters: list[LetterSpec]) -> None:
        """Plan the action's revised date instead of its current one; tell the resident."""
        record = next(a for a in self.case.actions if a.action.action_id == action.action_id)
        key = f"action:{action.action_id}"
        for deadline in self.deadlines:
            if (deadline.key == key or deadline.key.startswith(key + "#")) \
                    and deadline.status in (DeadlineStatus.PENDING, DeadlineStatus.BREACHED) \
                    and deadline.met_at is None:
                deadline.status = DeadlineStatus.EXTENDED
        self._plan(DeadlineKind.ACTION, record.stage, today,
                   calendar_days=(action.revised_due - today).days,
                   key=f"{key}#{len(record.delays)}", label=f"Action {action.action_id}")
        letters.append(self._letter(LetterKind.ACTION_UPDATE, record.stage))

    def _late_request(self, action: RequestEscalation, notices: list[NotifyInput]) -> None:
        """Mark a request made after the escalation window ended, and ask for a decision."""
        window = self._latest(DeadlineKind.ESCALATION_WINDOW)
        if window is None or action.requested_on <= window.due:
            return
        self.case.escalation_late = True
        notices.append(self.notice(
            NotificationKind.LATE_ESCALATION, "manager", None,
            f"{self.case.reference}: stage 2 was requested on "
            f"{action.requested_on.isoformat()}, after the escalation window ended on "
            f"{window.due.isoformat()}. Decide: accept it at the landlord's discretion "
            "(acknowledge-escalation), or refuse it in writing with reasons and the "
            "Ombudsman's details (refuse-escalation, ground outside_escalation_window) "
            "(Code 5.11)", key=f"late-escalation-{action.requested_on.isoformat()}"))

    def _followed_through(self, today: dt.date) -> str | None:
        """After stage 1, once every action is done: start the window, or say it lapsed."""
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
        # The dict holds one length keyword; mypy cannot tell it from ``key`` or ``label``.
        self._plan(DeadlineKind.ESCALATION_WINDOW, 1, today,
                   **escalation_window_length(policy))  # type: ignore[arg-type]

    def _system_close(self, why: str) -> None:
        action = Close(by=SYSTEM, note=why)
        if self.machine.refusal(action) is None:
            self.accept(action)

    # -- timers ---------------------------------------------------------------------------

    def timers_due(self) -> None:
        """Remind, mark breaches and tell the lead; record what happened as one event."""
        now = self.now()
        notices: list[NotifyInput] = []
        close_why = None
        for d in self._outstanding():
            due = f"{d.label} for {self.case.reference}"
            if d.status is DeadlineStatus.PENDING and d.remind_at is not None \
                    and not d.reminded and d.remind_at <= now < d.ends_at:
                d.reminded = True
                notices.append(self.notice(
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
                self.system_note("deadline_breached", f"{d.label} due {d.due.isoformat()}")
                notices.append(self.notice(
                    NotificationKind.BREACH, "manager", d,
                    f"{due} was due on {d.due.isoformat()} and is overdue "
                    f"(Code {d.provision})"))
            elif d.status is DeadlineStatus.BREACHED and not d.lead_notified \
                    and d.escalate_at <= now:
                d.lead_notified = True
                notices.append(self.notice(
                    NotificationKind.BREACH_ESCALATED, "lead", d,
                    f"{due} is still overdue since {d.due.isoformat()} "
                    f"(Code {d.provision})"))
        self.queue_event(notifications=notices, only_if_changed=True)
        if close_why is not None:
            self._system_close(close_why)
