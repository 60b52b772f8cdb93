"""The case book's state: what a case carries, its bounds, and what people see.

:class:`CaseBookState` holds what a ``Complaint`` workflow knows about its case (the case
file, deadlines, letters, the bounded audit and refusal tails, the events still to record)
and answers the read-only questions about it: which deadlines are outstanding, when the case
next wakes, its header, search attributes, view and the state a continue-as-new carries. The
constants bounding what a case keeps live here too. :class:`domain.casebook.CaseBook` builds
on it; the workflow imports all of it through :mod:`domain.casebook`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from domain.deadlines import RecordedCalendar, london_date
from domain.guards import Limits
from domain.lifecycle import CLOCKS, ENDED
from domain.machine import ComplaintMachine
from models.case import AuditEvent, CaseFile, letter_channels
from models.events import ActionResult, CaseContext, CaseEvent, CaseState, ReadHeader, Refusal
from models.messages import (
    CaseView,
    Deadline,
    DeadlineKind,
    DeadlineStatus,
    Intake,
    LetterRecord,
    NotifyInput,
)

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


class CaseBookState:
    """One case's state and views, given a clock (see the module docstring).

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
        #: The event being recorded (taken off the queue, its letters not yet in
        #: ``letters``), and whether letter numbers count it (``IN_FLIGHT_LETTERS_PATCH``).
        self.in_flight: CaseEvent | None = None
        self.count_in_flight = False
        self.events = self.recorded = carried.events if carried else 0
        # Refusals not recorded yet: counted in full, the last few kept.
        self.pending_count = carried.pending_refused if carried else 0
        self._pending: list[Refusal] = self.refusals[-self.pending_count:] \
            if self.pending_count else []
        # Everything carried over was recorded before continuing as new.
        self._last_case = self.case.model_dump(mode="json") if carried else {}
        self._last_deadlines = {d.key: d.model_dump(mode="json") for d in self.deadlines}

    def ended_at(self) -> dt.datetime | None:
        """When the case was closed or declined, if it was."""
        return self.case.closed_at or (self.case.declined.at if self.case.declined else None)

    # -- deadlines outstanding ------------------------------------------------------------

    def _latest(self, kind: DeadlineKind) -> Deadline | None:
        return next((d for d in reversed(self.deadlines) if d.kind is kind), None)

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

    # -- the audit trail --------------------------------------------------------------------

    def _next_seq(self) -> int:
        self.audit_seq += 1
        return self.audit_seq

    def _remember(self, event: AuditEvent) -> None:
        self._unrecorded.append(event)
        self.recent = [*self.recent, event][-RECENT:]

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
        wake_at, why = self.next_wake()  # what the case's timer waits for
        return (f"**{header.state}** (stage {header.stage})  \n"
                f"next deadline: {nxt.label + ' ' + nxt.due.isoformat() if nxt else 'none'}"
                f"{' (OVERDUE)' if header.overdue else ''}  \n"
                f"last action: {last.action + ' by ' + last.by if last else 'lodged'}"
                + (f"  \nfinished; open for late Ombudsman actions until "
                   f"{london_date(ended + RETENTION).isoformat()}" if ended else "")
                + (f"  \nnext wake {wake_at:%Y-%m-%d %H:%M} UTC: {why}"
                   if wake_at is not None else ""))

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

