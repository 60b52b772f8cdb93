"""Planning deadlines: due dates, reminder and escalation instants, from the calendar.

Bank-holiday data (the ``holidays`` package) and the policy's one-off bank holidays are read
here (closure days never lengthen a Code timescale),
in an activity, so that a deadline is computed once and recorded in the workflow's
history: a later holiday-data update cannot change a running case's deadlines on replay.
"""

from __future__ import annotations

import calendar
import datetime as dt

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from complaints.workdays import (
    WorkingCalendar,
    end_of_day_utc,
    non_working_weekdays,
    start_of_day_utc,
)
from models.events import CalendarData
from models.messages import Deadline, PlanDeadlineInput
from models.policy import Policy

__all__ = ["ESCALATE_AFTER_WORKING_DAYS", "CalendarActivities", "add_calendar_months"]

log = structlog.get_logger(__name__)

#: The complaints lead is told of a deadline still unmet this many working days after it.
ESCALATE_AFTER_WORKING_DAYS = 2


def add_calendar_months(start: dt.date, months: int) -> dt.date:
    """Add calendar months, clamping to the end of a shorter month.

    Args:
        start: The day to count from.
        months: How many months to add (may be negative).

    Returns:
        The same day of the month ``months`` later, or that month's last day when it is
        shorter (31 January + 1 month = 28 or 29 February).

    """
    index = start.year * 12 + (start.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    last = calendar.monthrange(year, month)[1]
    return dt.date(year, month, min(start.day, last))


def calendar_data(policy: Policy, first_year: int, last_year: int) -> CalendarData:
    """The policy's working calendar for the given years, as a case records it."""
    calendar = WorkingCalendar.for_policy(policy)
    return CalendarData(nation=policy.nation.value, first_year=first_year, last_year=last_year,
                        closed=non_working_weekdays(calendar, first_year, last_year),
                        closures=tuple(sorted(d for d in policy.closure_days
                                              if first_year <= d.year <= last_year)))


class CalendarActivities:
    """Work out deadlines with the working calendar of a case's policy."""

    @activity.defn
    def plan_deadline(self, input: PlanDeadlineInput) -> Deadline:
        """Plan one deadline.

        The due date is ``working_days`` working days after ``start`` (``start`` is day
        0) on the policy's calendar, or ``calendar_days`` days after it, or
        ``calendar_months`` months after it (clamped to the month's end). A calendar
        window stays calendar: its due date is not moved off a weekend or holiday.

        Args:
            input: The deadline's identity, its start and exactly one length.

        Returns:
            The deadline, pending: it ends at the end of the due day in Europe/London;
            the reminder is at 9am London time ``policy.limits.reminder_lead`` working days
            before the due day (None when the lead is 0 or that day is not after
            ``start``); escalation to the complaints lead is at the end of the second
            working day after the due day.

        Raises:
            ApplicationError: Non-retryable, of type ``InvalidDeadline``, when not exactly
                one non-negative length is given or the dates fall outside the calendar.

        """
        with structlog.contextvars.bound_contextvars(reference=activity.info().workflow_id):
            return self._plan(input)

    def _plan(self, input: PlanDeadlineInput) -> Deadline:
        """Plan the deadline (see ``plan_deadline``)."""
        lengths = {"working_days": input.working_days, "calendar_days": input.calendar_days,
                   "calendar_months": input.calendar_months}
        given = {unit: n for unit, n in lengths.items() if n is not None}
        if len(given) != 1:
            raise ApplicationError(
                f"deadline {input.key!r}: give exactly one of {', '.join(lengths)}",
                type="InvalidDeadline", non_retryable=True)
        (unit, length), = given.items()
        if length < 0:
            raise ApplicationError(f"deadline {input.key!r}: {unit} must not be negative",
                                   type="InvalidDeadline", non_retryable=True)
        cal = WorkingCalendar.for_policy(input.policy)
        try:
            if unit == "working_days":
                due = cal.add_working_days(input.start, length)
            elif unit == "calendar_days":
                due = input.start + dt.timedelta(days=length)
            else:
                due = add_calendar_months(input.start, length)
            remind_at = None
            lead = input.policy.limits.reminder_lead
            if lead > 0:
                remind_day = cal.add_working_days(due, -lead)
                if remind_day > input.start:
                    remind_at = start_of_day_utc(remind_day)
            escalate_at = end_of_day_utc(cal.add_working_days(due, ESCALATE_AFTER_WORKING_DAYS))
        except (ValueError, OverflowError) as exc:
            raise ApplicationError(f"deadline {input.key!r}: {exc}", type="InvalidDeadline",
                                   non_retryable=True) from exc
        deadline = Deadline(
            key=input.key, kind=input.kind, stage=input.stage, label=input.label,
            provision=input.provision, start=input.start, due=due,
            ends_at=end_of_day_utc(due), remind_at=remind_at, escalate_at=escalate_at,
        )
        log.info("deadline_planned", deadline_key=input.key, kind=input.kind.value,
                 policy=input.policy.name, unit=unit, length=length, due=due.isoformat())
        return deadline
