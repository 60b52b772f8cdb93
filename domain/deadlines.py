"""Planning deadlines inside a workflow, from a calendar recorded in its history.

A case records its working calendar once, when it starts (``open_case`` reads the bank
holidays of its nation from the ``holidays`` package and the policy's own days, and the
workflow history keeps the answer). Every deadline is then planned here, in workflow code,
without an activity: the same history always plans the same dates, and a later update of
the holiday data (or of the tz database) cannot move a running case's deadlines.

Everything here is pure: no clock, no I/O, no tz database. London time comes from the UK
summer-time rule (last Sundays of March and October at 01:00 UTC, in force since 1996 and
set by the Summer Time Order 2002); ``tests/test_deadlines.py`` checks it against
``zoneinfo`` for every day from 2000 (the earliest receipt the engine accepts) to 2199.
"""

from __future__ import annotations

import calendar as _calendar
import datetime as dt
from bisect import bisect_right

from models.events import CalendarData
from models.messages import Deadline, DeadlineKind
from models.policy import EscalationWindowUnit, Policy

#: The complaints lead is told of a deadline still unmet this many working days after it.
ESCALATE_AFTER_WORKING_DAYS = 2
#: Reminders go out at this hour, London time, ``reminder_lead`` working days before.
REMINDER_HOUR = 9
_END_OF_DAY = dt.time(23, 59, 59, 999000)

#: What each deadline is called, and the provision (or "policy") that sets it.
LABEL: dict[DeadlineKind, str] = {
    DeadlineKind.EARLY_CONTACT: "Early contact",
    DeadlineKind.STAGE1_ACKNOWLEDGEMENT: "Stage 1 acknowledgement",
    DeadlineKind.STAGE1_RESPONSE: "Stage 1 response",
    DeadlineKind.ESCALATION_WINDOW: "Escalation window",
    DeadlineKind.STAGE2_ACKNOWLEDGEMENT: "Stage 2 acknowledgement",
    DeadlineKind.STAGE2_RESPONSE: "Stage 2 final response",
    DeadlineKind.ACTION: "Action",
    DeadlineKind.OMBUDSMAN: "Ombudsman order",
    DeadlineKind.REVIEW: "Adjustments review",
}
PROVISION: dict[DeadlineKind, str] = {
    DeadlineKind.EARLY_CONTACT: "policy", DeadlineKind.STAGE1_ACKNOWLEDGEMENT: "6.2",
    DeadlineKind.STAGE1_RESPONSE: "6.3", DeadlineKind.ESCALATION_WINDOW: "policy",
    DeadlineKind.STAGE2_ACKNOWLEDGEMENT: "6.11", DeadlineKind.STAGE2_RESPONSE: "6.14",
    DeadlineKind.ACTION: "7.3",
    DeadlineKind.OMBUDSMAN: "Ombudsman",
    DeadlineKind.REVIEW: "5.10",
}


class OutsideCalendar(ValueError):
    """A date the recorded calendar does not cover: the case must record more years."""

    def __init__(self, year: int) -> None:
        super().__init__(f"the case's calendar does not cover {year}")
        self.year = year


# -- London time, by rule ------------------------------------------------------------------


def _last_sunday(year: int, month: int) -> dt.date:
    last = dt.date(year, month, _calendar.monthrange(year, month)[1])
    return last - dt.timedelta(days=(last.weekday() + 1) % 7)


def _summer_time_on(day: dt.date) -> bool:
    """Whether London keeps summer time for the whole of ``day`` after 01:00 UTC.

    Clocks change at 01:00 UTC on the last Sundays of March and October, so every instant
    of a day this module computes (09:00 and 23:59 local) is on the day's later side.
    """
    return _last_sunday(day.year, 3) <= day < _last_sunday(day.year, 10)


def london_time(day: dt.date, at: dt.time) -> dt.datetime:
    """``at`` on ``day`` in London, as an aware UTC instant (``at`` after 02:00 local)."""
    offset = dt.timedelta(hours=1 if _summer_time_on(day) else 0)
    return dt.datetime.combine(day, at, tzinfo=dt.UTC) - offset


def london_date(instant: dt.datetime) -> dt.date:
    """The Europe/London calendar date of an aware instant, without the tz database."""
    utc = instant.astimezone(dt.UTC)
    start = dt.datetime.combine(_last_sunday(utc.year, 3), dt.time(1), tzinfo=dt.UTC)
    end = dt.datetime.combine(_last_sunday(utc.year, 10), dt.time(1), tzinfo=dt.UTC)
    return (utc + dt.timedelta(hours=1 if start <= utc < end else 0)).date()


def end_of_day(day: dt.date) -> dt.datetime:
    """The last millisecond of ``day`` in London (23:59:59.999), as a UTC instant."""
    return london_time(day, _END_OF_DAY)


def add_calendar_months(start: dt.date, months: int) -> dt.date:
    """``start`` plus ``months`` calendar months, clamped to the end of a shorter month."""
    year, month = divmod(start.year * 12 + start.month - 1 + months, 12)
    last = _calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(start.day, last))


# -- the recorded working calendar ---------------------------------------------------------


def _weekdays_upto(ordinal: int) -> int:
    """Mondays-to-Fridays among ordinals 1..``ordinal`` (ordinal 1 is a Monday)."""
    weeks, rest = divmod(ordinal, 7)
    return 5 * weeks + min(rest, 5)


def _nth_weekday(k: int) -> int:
    """The ordinal of the ``k``-th Monday-to-Friday (``k`` >= 1)."""
    weeks, rest = divmod(k - 1, 5)
    return 7 * weeks + rest + 1


class RecordedCalendar:
    """Working days from a recorded list of non-working weekdays (see ``CalendarData``).

    The same arithmetic as ``domain.calendar.WorkingCalendar`` (a weekday index and a sorted
    list, no day-by-day loop), answering only inside the recorded years.
    """

    def __init__(self, data: CalendarData) -> None:
        self.first_year = data.first_year
        self.last_year = data.last_year
        closed = sorted({_weekdays_upto(d.toordinal()) for d in data.closed
                         if d.weekday() < 5})
        self._closed = closed
        self._shifted = [c - i for i, c in enumerate(closed)]

    def _check(self, day: dt.date) -> None:
        if not self.first_year <= day.year <= self.last_year:
            raise OutsideCalendar(day.year)

    def _working_upto(self, ordinal: int) -> int:
        weekdays = _weekdays_upto(ordinal)
        return weekdays - bisect_right(self._closed, weekdays)

    def add_working_days(self, start: dt.date, n: int) -> dt.date:
        """The ``n``-th working day after ``start`` (before it when negative; day 0 = start)."""
        self._check(start)
        if n == 0:
            return start
        origin = start.toordinal()
        base = self._working_upto(origin) if n > 0 else self._working_upto(origin - 1) + 1
        target = base + n
        if target < 1:
            raise OutsideCalendar(dt.MINYEAR)
        result = dt.date.fromordinal(_nth_weekday(target + bisect_right(self._shifted, target)))
        self._check(result)
        return result

    def working_days_between(self, start: dt.date, end: dt.date) -> int:
        """Working days in (``start``, ``end``], negated when ``end`` is before ``start``."""
        self._check(start)
        self._check(end)
        return self._working_upto(end.toordinal()) - self._working_upto(start.toordinal())


def plan(calendar: RecordedCalendar, policy: Policy, *, kind: DeadlineKind, stage: int,
         start: dt.date, key: str, working_days: int | None = None,
         calendar_days: int | None = None, calendar_months: int | None = None,
         label: str | None = None) -> Deadline:
    """Plan one deadline: exactly one length, counted from ``start`` (day 0).

    A working-day deadline is due on the Nth working day; a calendar window is due on the
    day it reaches (not moved off a weekend). The deadline ends at the end of its due day
    in London; the reminder is at 09:00 London ``reminder_lead`` working days before (none
    when that is not after ``start``); the complaints lead is told at the end of the
    second working day after the due day.

    Raises:
        ValueError: Not exactly one non-negative length.
        OutsideCalendar: A date falls outside the recorded years.
    """
    lengths = [n for n in (working_days, calendar_days, calendar_months) if n is not None]
    if len(lengths) != 1 or lengths[0] < 0:
        raise ValueError(f"deadline {key!r}: give exactly one non-negative length")
    if working_days is not None:
        due = calendar.add_working_days(start, working_days)
    elif calendar_days is not None:
        due = start + dt.timedelta(days=calendar_days)
    else:
        due = add_calendar_months(start, calendar_months or 0)
    remind_at = None
    lead = policy.limits.reminder_lead
    if lead > 0:
        remind_day = calendar.add_working_days(due, -lead)
        if remind_day > start:
            remind_at = london_time(remind_day, dt.time(REMINDER_HOUR))
    return Deadline(
        key=key, kind=kind, stage=stage, label=label or LABEL[kind],
        provision=PROVISION[kind], start=start, due=due, ends_at=end_of_day(due),
        remind_at=remind_at,
        escalate_at=end_of_day(calendar.add_working_days(due, ESCALATE_AFTER_WORKING_DAYS)))


def escalation_window_length(policy: Policy) -> dict[str, int]:
    """The policy's escalation window as the keyword ``plan`` takes."""
    window = policy.escalation_window
    unit = {EscalationWindowUnit.WORKING_DAYS: "working_days",
            EscalationWindowUnit.CALENDAR_DAYS: "calendar_days",
            EscalationWindowUnit.CALENDAR_MONTHS: "calendar_months"}[window.unit]
    return {unit: window.length}
