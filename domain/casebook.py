"""The case book: what a ``Complaint`` workflow knows about its case, and every decision it takes.

:class:`CaseBook` holds the case file, its deadlines, the letters sent, a bounded tail of the
audit trail and of refused signals, and the queue of :class:`CaseEvent` s still to record.
It decides, purely: whether an action is allowed now (the lifecycle's guards, the case's
bounds, the clock), what an accepted action brings (deadlines met and planned, letters and
staff notices), what a timer does when it fires (reminders, breaches, telling the lead), and
what the operator sees. It reads the time only through the clock it is given (the workflow
passes ``workflow.now``), does no I/O and calls no Temporal API, so the workflow module keeps
only what touches Temporal: handlers, timers and activities (:mod:`workflows.complaint`).

It lives outside ``workflows/`` for a second reason: the workflow sandbox re-imports a
workflow's own module for every case it runs, and imports what is passed through (this
module) once per worker.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from domain.deadlines import RecordedCalendar, escalation_window_length, london_date, plan
from domain.guards import Limits, months_before
from domain.lifecycle import CLOCKS, ENDED, ComplaintState
from domain.machine import ComplaintMachine
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
from models.case import AuditEvent, CaseFile, letter_channels
from models.events import (
    ActionResult,
    CalendarData,
    CaseContext,
    CaseEvent,
    CaseState,
    LetterSpec,
    ReadHeader,
    Refusal,
)
from models.letters import LetterKind
from models.limits import first_problem
from models.messages import (
    CaseView,
    Deadline,
    DeadlineKind,
    DeadlineStatus,
    Intake,
    LetterRecord,
    NotificationKind,
    NotifyInput,
)
from models.policy import EscalationWindowStart

S = ComplaintState
#: Who acts when the system itself moves a case (the escalation window lapsing).
SYSTEM = "system"
#: How long a finished case stays open to late actions (the Ombudsman's 12 months).
RETENTION = timedelta(days=366)
#: The furthest ahead an outstanding action may be promised (planned as a deadline, 7.3).
ACTION_HORIZON_DAYS = 5 * 366
#: Years of calendar a case keeps ahead of today (action deadlines reach five years out).
CALENDAR_YEARS_AHEAD = 6
#: Audit entries and refused signals kept in the workflow (the rest are in the database).
RECENT = 10
REFUSALS_KEPT = 5
#: Longest refusal reason or staff id kept in the workflow (they are shown, not stored).
MAX_REASON = 300
MAX_BY = 60

#: A closure this many days or fewer before a due date (or on it) is warned about: the
#: work must be done before the closure, as the Code's date does not move.
CLOSURE_WARNING_DAYS = 7

#: Bounds on the case file's lists (with ``models.limits`` on each action, they bound the
#: state a case carries, whatever staff do): issues raised (6.8), issues folded into stage 1
#: (each becomes a point to answer), extensions at one stage, outstanding actions.
CASE_BOUNDS: dict[str, int] = {"issues": 50, "folded_issues": 20, "extensions_per_stage": 20,
                               "actions": 100, "delays_per_action": 20, "reassignments": 50,
                               "ombudsman_contacts": 50, "orders": 50}

#: Which deadline each trigger meets.
_MEETS: dict[str, tuple[DeadlineKind, ...]] = {
    "acknowledge": (DeadlineKind.STAGE1_ACKNOWLEDGEMENT,),
    "decline": (DeadlineKind.STAGE1_ACKNOWLEDGEMENT,),
    "respond": (DeadlineKind.STAGE1_RESPONSE, DeadlineKind.STAGE2_RESPONSE),
    "request_escalation": (DeadlineKind.ESCALATION_WINDOW,),
    "acknowledge_escalation": (DeadlineKind.STAGE2_ACKNOWLEDGEMENT,),
    "refuse_escalation": (DeadlineKind.STAGE2_ACKNOWLEDGEMENT,),
}


class CaseBook:
    """One case's decisions, given a clock (see the module docstring).

    Args:
        intake: The complaint as lodged.
        carried: The state carried over a continue-as-new, or None for a new case.
        now: The clock; the workflow passes ``workflow.now``.
        casework: The casework rules' revision (see :class:`domain.guards.Limits`).
    """

    def __init__(self, intake: Intake, carried: CaseState | None,
                 now: Callable[[], dt.datetime], *, casework: int = 1) -> None:
        self.intake = intake
        self.now = now
        self.casework = casework
        self.context: CaseContext | None = carried.context if carried else None
        self.case = carried.case if carried else CaseFile(
            reference=intake.reference, policy_name=intake.policy_name,
            received_on=intake.received_on, issue_occurred_on=intake.issue_occurred_on,
            channel=intake.channel, category=intake.category,
            letter_channels=letter_channels(intake.parties))
        self.deadlines: list[Deadline] = carried.deadlines if carried else []
        self.letters: list[LetterRecord] = carried.letters if carried else []
        self.audit_seq = carried.audit_seq if carried else 0
        self.refused_total = carried.refused_total if carried else 0
        self.recent: list[AuditEvent] = carried.recent if carried else []
        self.refusals: list[Refusal] = carried.refusals if carried else []
        self.calendar = RecordedCalendar(self.context.calendar) if self.context else None
        self._unrecorded: list[AuditEvent] = []  # audit entries not queued for recording
        self._closure_notices: list[NotifyInput] = []  # warnings for the next event
        self.machine = ComplaintMachine(self.case, self.limits(), next_seq=self._next_seq)
        #: Events to record, in order; numbered over the case's life.
        self.queue: list[CaseEvent] = []
        self.events = self.recorded = carried.events if carried else 0
        # Refusals not recorded yet: counted in full, the last few kept.
        self.pending_count = carried.pending_refused if carried else 0
        self._pending: list[Refusal] = self.refusals[-self.pending_count:] \
            if self.pending_count else []
        # Everything carried over was recorded before continuing as new.
        self._last_case = self.case.model_dump(mode="json") if carried else {}
        self._last_deadlines = {d.key: d.model_dump(mode="json") for d in self.deadlines}

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

    def ended_at(self) -> dt.datetime | None:
        """When the case was closed or declined, if it was."""
        return self.case.closed_at or (self.case.declined.at if self.case.declined else None)

    # -- deciding -------------------------------------------------------------------------

    def refusal(self, action: Action) -> str | None:
        """Why ``action`` may not be taken now (the Code, the state, the clock), or None."""
        try:
            # The state first: it is the cheapest check, and a flood of refused signals
            # must stay cheap (every one is checked within a workflow task's time).
            return (self.machine.refusal(action) or first_problem(action)
                    or self._bounds_refusal(action) or self._dated_refusal(action))
        except Exception as exc:  # a bug in a check must refuse, never fail the task
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
        if isinstance(action, DelayAction):
            record = next((a for a in case.actions if a.action.action_id == action.action_id),
                          None)
            if record is not None and len(record.delays) >= CASE_BOUNDS["delays_per_action"]:
                return (f"delays: action {action.action_id} was delayed {len(record.delays)} "
                        f"times, at most {CASE_BOUNDS['delays_per_action']}: tell the "
                        "complaints lead, and complete or close it")
        if isinstance(action, OmbudsmanContact) and \
                case.ombudsman_contacts >= CASE_BOUNDS["ombudsman_contacts"]:
            return (f"ombudsman contacts: {case.ombudsman_contacts} on this case, at most "
                    f"{CASE_BOUNDS['ombudsman_contacts']}: record further ones as contacts")
        if isinstance(action, OmbudsmanDetermination) and \
                len(case.orders) + len(action.orders) > CASE_BOUNDS["orders"]:
            return (f"orders: the case would have {len(case.orders) + len(action.orders)}, "
                    f"at most {CASE_BOUNDS['orders']}")
        if isinstance(action, Reassign) and case.reassignments >= CASE_BOUNDS["reassignments"]:
            return (f"reassignments: {case.reassignments} on this case, at most "
                    f"{CASE_BOUNDS['reassignments']}")
        if isinstance(action, Respond) and \
                len(case.actions) + len(action.outstanding_actions) > CASE_BOUNDS["actions"]:
            return (f"outstanding_actions: the case would have "
                    f"{len(case.actions) + len(action.outstanding_actions)}, at most "
                    f"{CASE_BOUNDS['actions']}")
        return None

    def _dated_refusal(self, action: Action) -> str | None:
        """The checks that need the case's clock."""
        now = self.now()
        today = london_date(now)
        if isinstance(action, Extend):
            current = self._latest(response_kind(self.case.stage))
            if current is not None and current.met_at is None and (
                    current.status is DeadlineStatus.BREACHED or current.ends_at <= now):
                provision = "6.4" if self.case.stage == 1 else "6.15"
                return (f"the stage {self.case.stage} response was due on "
                        f"{current.due.isoformat()} and is overdue: an extension must be "
                        f"agreed and explained before the due date (Code {provision}); send "
                        "the response now")
        horizon = today + timedelta(days=ACTION_HORIZON_DAYS)
        if isinstance(action, Respond):
            late = [a.action_id for a in action.outstanding_actions if a.due_by > horizon]
            if late:
                return (f"outstanding actions must be due by {horizon.isoformat()} (at most "
                        f"five years ahead, Code 7.3 'by when'): {', '.join(late)}")
            if self.casework >= 2 and any(r.due_by is not None and r.due_by > horizon
                                          for r in action.remedies):
                return (f"remedies must be due by {horizon.isoformat()} (at most five years "
                        "ahead, Code 7.3)")
        if isinstance(action, DelayAction):
            if action.revised_due <= today:
                return (f"revised_due {action.revised_due.isoformat()} is not after today "
                        f"({today.isoformat()}): give the new date the action will be done by")
            if action.revised_due > horizon:
                return (f"revised_due must be by {horizon.isoformat()} (at most five years "
                        "ahead, Code 7.3)")
        if isinstance(action, OmbudsmanContact) and action.respond_by is not None and \
                not today <= action.respond_by <= horizon:
            return (f"respond_by must be from today ({today.isoformat()}) to "
                    f"{horizon.isoformat()}")
        if isinstance(action, OmbudsmanDetermination) and any(
                o.due_by > horizon for o in action.orders):
            return f"orders must be due by {horizon.isoformat()} (at most five years ahead)"
        if isinstance(action, AmendIntake) and action.adjustments_review_on is not None and \
                not today < action.adjustments_review_on <= horizon:
            return (f"adjustments_review_on must be after today ({today.isoformat()}) and by "
                    f"{horizon.isoformat()}")
        if isinstance(action, PayRemedy) and action.paid_on > today:
            return (f"paid_on {action.paid_on.isoformat()} is in the future: record a payment "
                    f"once it is made (today is {today.isoformat()})")
        if isinstance(action, RequestEscalation):
            responded = next((r.at for r in self.case.responses if r.stage == 1), None)
            if action.requested_on > today:
                return (f"requested_on {action.requested_on.isoformat()} is in the future; "
                        f"give the day the request was received (today is {today.isoformat()})")
            if responded is not None and action.requested_on < london_date(responded):
                return ("requested_on is before the stage 1 response was issued on "
                        f"{london_date(responded).isoformat()}")
        return None

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

    def system_note(self, action: str, detail: str) -> None:
        """Put something the system did or found on the audit trail (state unchanged)."""
        state = self.case.state
        self._remember(AuditEvent(seq=self._next_seq(), at=self.now(), action=action,
                                  by=SYSTEM, from_state=state, to_state=state, detail=detail))

    def refuse(self, name: str, by: str, reason: str) -> bool:
        """Count a refused signal; keep it short and recent (never its payload).

        Returns:
            Whether it starts a batch (the workflow logs once per batch, not per refusal).
        """
        refusal = Refusal(at=self.now(), name=name[:MAX_BY], by=by[:MAX_BY] or "unknown",
                          reason=reason[:MAX_REASON])
        self.refused_total += 1
        self.pending_count += 1
        self._pending = [*self._pending, refusal][-REFUSALS_KEPT:]
        self.refusals = [*self.refusals, refusal][-REFUSALS_KEPT:]
        return self.pending_count == 1

    # -- deadlines ------------------------------------------------------------------------

    def _plan(self, kind: DeadlineKind, stage: int, start: dt.date, *, key: str | None = None,
              label: str | None = None, **length: Any) -> Deadline:
        assert self.calendar is not None and self.context is not None
        if key is None:
            key = f"{kind.value}#{1 + sum(1 for d in self.deadlines if d.kind is kind)}"
        deadline = plan(self.calendar, self.context.policy, kind=kind, stage=stage,
                        start=start, key=key, label=label, **length)
        self.deadlines.append(deadline)
        if self.casework >= 2:
            self._warn_of_closures(deadline)
        return deadline

    def _warn_of_closures(self, deadline: Deadline) -> None:
        """Tell the manager when a due date falls in or just after the landlord's closure.

        Closure days never move a Code date (they are not in the calendar's non-working
        days): the work has to be planned around them.
        """
        assert self.context is not None
        closed = [d for d in self.context.calendar.closures
                  if deadline.start < d <= deadline.due
                  and (deadline.due - d).days < CLOSURE_WARNING_DAYS]
        if not closed:
            return
        days = ", ".join(d.isoformat() for d in closed[:5]) + (" ..." if len(closed) > 5 else "")
        self._closure_notices.append(self.notice(
            NotificationKind.CLOSURE_WARNING, "manager", deadline,
            f"{deadline.label} for {self.case.reference} is due on {deadline.due.isoformat()} "
            f"and the landlord is closed on {days} before it. Closure days do not move a "
            "Code date: plan the work to be done before the closure",
            key=f"closure-{deadline.key}"))

    def _latest(self, kind: DeadlineKind) -> Deadline | None:
        return next((d for d in reversed(self.deadlines) if d.kind is kind), None)

    def _mark_met(self, deadline: Deadline) -> None:
        if deadline.met_at is None and deadline.status in (DeadlineStatus.PENDING,
                                                             DeadlineStatus.BREACHED):
            deadline.met_at = self.now()
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

    def next_pending(self) -> Deadline | None:
        """The pending deadline that ends first."""
        return min((d for d in self._outstanding() if d.status is DeadlineStatus.PENDING),
                   key=lambda d: d.ends_at, default=None)

    def overdue(self) -> bool:
        """Whether a running clock's deadline is breached."""
        return any(d.status is DeadlineStatus.BREACHED for d in self._outstanding())

    def next_wake(self) -> tuple[dt.datetime | None, str | None]:
        """When the case must next wake up, and why (the timer's summary)."""
        moments: list[tuple[dt.datetime, str]] = []
        for d in self._outstanding():
            when = f"{d.label} due {d.due.isoformat()}"
            if d.status is DeadlineStatus.PENDING:
                if d.remind_at is not None and not d.reminded:
                    moments.append((d.remind_at, f"reminder: {when}"))
                moments.append((d.ends_at, f"deadline: {when}"))
            elif not d.lead_notified and d.kind is not DeadlineKind.ESCALATION_WINDOW:
                moments.append((d.escalate_at, f"tell complaints lead: {when} breached"))
        ended = self.ended_at()
        if ended is not None and self.machine.state in ENDED:
            until = ended + RETENTION
            moments.append((until, f"open for late Ombudsman actions until "
                                   f"{london_date(until).isoformat()}"))
        return min(moments, key=lambda m: m[0]) if moments else (None, None)

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
        queued = sum(1 for e in self.queue for s in e.letters
                     if s.kind is kind and s.stage == stage)
        seq = 1 + sent + queued
        return LetterSpec(letter_id=f"{self.case.reference}:{kind.value}:{stage}:{seq}",
                          kind=kind, stage=stage, seq=seq, due=due, previous_due=previous_due)

    def notice(self, kind: NotificationKind, role: str, deadline: Deadline | None,
               message: str, *, key: str | None = None) -> NotifyInput:
        """A notice to the case's manager or complaints lead, keyed to be sent once."""
        suffix = key or (deadline.key if deadline else "case")
        return NotifyInput(
            notification_id=f"{self.case.reference}:{kind.value}:{suffix}",
            reference=self.case.reference, kind=kind, recipient_role=role,
            recipient_id=self.intake.lead_id if role == "lead"
            else self.case.manager_id or self.intake.manager_id,
            deadline_key=deadline.key if deadline else None,
            due=deadline.due if deadline else None, message=message)

    def queue_event(self, *, action: Action | None = None, audit: tuple[AuditEvent, ...] = (),
                    letters: list[LetterSpec] | None = None,
                    notifications: list[NotifyInput] | None = None,
                    ombudsman: bool = False, only_if_changed: bool = False) -> int:
        """Queue what changed since the last event, with any refusals counted meanwhile.

        Returns:
            The event's number (0 when ``only_if_changed`` and nothing changed).
        """
        entries = list(self._unrecorded)
        self._unrecorded = []
        notifications = [*(notifications or ()), *self._closure_notices]
        self._closure_notices = []
        if self.pending_count:
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
        self.events += 1
        self.queue.append(CaseEvent(
            reference=self.case.reference, seq=self.events, at=self.now(),
            audit=tuple(sorted(entries, key=lambda e: e.seq)),
            action=action.model_dump(mode="json") | {"trigger": action.trigger}
            if action else None,
            changes=changes, deadlines=tuple(deadlines), header=self.header(),
            letters=tuple(letters or ()), notifications=tuple(notifications or ()),
            ombudsman_details=ombudsman))
        return self.events

    def _refusal_entry(self) -> AuditEvent:
        """One audit entry for the refusals counted since the last event."""
        count, last = self.pending_count, self._pending
        self.pending_count, self._pending = 0, []
        detail = (f"{count} signal(s) refused; the last {len(last)}: "
                  + "; ".join(f"{r.name} by {r.by}: {r.reason}" for r in last))
        state = self.case.state
        return AuditEvent(seq=self._next_seq(), at=self.now(), action="refused_signals",
                          by=last[-1].by if last else "unknown", from_state=state,
                          to_state=state, accepted=False, detail=detail[:2000])

    # -- what people see --------------------------------------------------------------------

    def header(self) -> ReadHeader:
        """The case's list columns (the read model's and the search attributes' source)."""
        nxt = self.next_pending()
        return ReadHeader(
            landlord=self.context.policy.landlord if self.context else "",
            policy_name=self.case.policy_name, state=self.case.state, stage=self.case.stage,
            handler_id=(self.case.assignee or self.case.stage2_handler
                        or self.case.stage1_handler),
            next_deadline=nxt.ends_at if nxt else None, overdue=self.overdue())

    def search_attributes(self) -> dict[str, Any]:
        """The search attributes' values by name (no personal data)."""
        header = self.header()
        return {"ComplaintState": header.state, "ComplaintStage": header.stage,
                "NextDeadline": header.next_deadline, "Landlord": header.landlord or None,
                "HandlerId": header.handler_id, "Overdue": header.overdue}

    def details(self) -> str:
        """The Web UI's current details for the case (markdown, no personal data)."""
        header = self.header()
        nxt = self.next_pending()
        last = self.recent[-1] if self.recent else None
        ended = self.ended_at() if self.machine.state in ENDED else None
        return (f"**{header.state}** (stage {header.stage})  \n"
                f"next deadline: {nxt.label + ' ' + nxt.due.isoformat() if nxt else 'none'}"
                f"{' (OVERDUE)' if header.overdue else ''}  \n"
                f"last action: {last.action + ' by ' + last.by if last else 'lodged'}"
                + (f"  \nfinished; open for late Ombudsman actions until "
                   f"{london_date(ended + RETENTION).isoformat()}" if ended else ""))

    def result(self, seq: int, letters: tuple[str, ...]) -> ActionResult:
        """What an update returns: small, never the whole case."""
        nxt = self.next_pending()
        return ActionResult(
            reference=self.case.reference, seq=seq, state=self.case.state,
            stage=self.case.stage,
            next_deadline=f"{nxt.label} due {nxt.due.isoformat()}" if nxt else None,
            overdue=self.overdue(), letters=letters)

    def view(self) -> CaseView:
        """The case as the query returns it (audit and refusals: the most recent)."""
        header = self.header()
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

    def limits(self) -> Limits:
        """The lifecycle's limits under the case's policy (the Code's, until it is read)."""
        if self.context is None:
            return Limits(casework=self.casework)
        policy = self.context.policy
        return Limits(policy.limits.stage1_extension_cap, policy.limits.stage2_extension_cap,
                      policy.exclusion_window_months, casework=self.casework)

    def carried(self) -> CaseState:
        """The bounded state a continue-as-new carries."""
        assert self.context is not None
        return CaseState(context=self.context, case=self.case, deadlines=self.deadlines,
                         letters=self.letters, audit_seq=self.audit_seq, events=self.events,
                         refused_total=self.refused_total, recent=self.recent,
                         refusals=self.refusals, pending_refused=self.pending_count)


def response_kind(stage: int) -> DeadlineKind:
    """The response deadline of ``stage``."""
    return DeadlineKind.STAGE1_RESPONSE if stage == 1 else DeadlineKind.STAGE2_RESPONSE


def validation_fields(exc: ValidationError) -> str:
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
