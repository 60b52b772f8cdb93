"""The case book's recording: audit entries, events, letters, notices and deadlines planned.

:class:`CaseBookRecord` adds to :class:`domain.casebook_state.CaseBookState` everything that
writes: numbering letters, keying notices, queueing :class:`models.events.CaseEvent` s with
what changed since the last one (and the refusals counted meanwhile), putting the system's
own notes on the audit trail, and planning, meeting and stopping deadlines. Pure, like the
rest of the case book: the workflow imports it through :mod:`domain.casebook`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from domain.casebook_state import (
    CLOSURE_WARNING_DAYS,
    MAX_BY,
    MAX_REASON,
    REFUSALS_KEPT,
    SYSTEM,
    CaseBookState,
)
from domain.deadlines import plan
from domain.lifecycle import CLOCKS
from models.actions import Action
from models.case import AuditEvent
from models.events import CaseEvent, LetterSpec, Refusal
from models.letters import LetterKind
from models.messages import Deadline, DeadlineKind, DeadlineStatus, NotificationKind, NotifyInput


class CaseBookRecord(CaseBookState):
    """What a case book writes down (see the module docstring)."""

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

    # -- recording ------------------------------------------------------------------------

    def _letter(self, kind: LetterKind, stage: int, *, due: dt.date | None = None,
                previous_due: dt.date | None = None) -> LetterSpec:
        sent = sum(1 for r in self.letters if r.kind is kind and r.stage == stage)
        unsent = self.queue if self.in_flight is None or not self.count_in_flight \
            else [self.in_flight, *self.queue]
        queued = sum(1 for e in unsent for s in e.letters
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
