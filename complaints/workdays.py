"""Working-day arithmetic for complaint deadlines.

The Complaint Handling Code counts time limits in working days but does not define one;
the policy reading (see the domain brief, "Working days") is Monday-Friday, excluding the
bank holidays of the landlord's nation and any closure days the landlord declares.
"Within N working days of D" means by the end of the Nth working day after D, and D is
day 0 even when it is not itself a working day.

Everything here is pure and deterministic (no clock, no I/O) so that it can run inside
Temporal workflow code. Bank-holiday data comes from the ``holidays`` package and is
loaded lazily, per nation, for the years actually asked about.

The arithmetic never walks day by day. Every date is mapped to a *weekday index* (how many
Mondays-to-Fridays there are from 0001-01-01 up to it), which is closed-form; the
non-working weekdays are a sorted array of such indices, so "how many working days up to
X" is one subtraction and one ``bisect``, and "the k-th working day" is one ``bisect``
on a derived array (see ``_Index``).
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from functools import lru_cache
from types import MappingProxyType
from typing import Final
from zoneinfo import ZoneInfo

from holidays.countries.united_kingdom import UnitedKingdom

from models.policy import Nation, Policy

__all__ = [
    "FIRST_YEAR",
    "LAST_YEAR",
    "LONDON",
    "SUBDIVISION",
    "Deadline",
    "WorkingCalendar",
    "end_of_day_utc",
    "non_working_weekdays",
    "start_of_day_utc",
]

LONDON: Final = ZoneInfo("Europe/London")

# England and Wales share their bank holidays, so "ENG" stands for both. A subdivision is
# always passed because GB without one omits regional days such as Easter Monday and the
# August bank holiday.
SUBDIVISION: Final[dict[Nation, str]] = {
    Nation.ENGLAND_AND_WALES: "ENG",
    Nation.SCOTLAND: "SCT",
    Nation.NORTHERN_IRELAND: "NIR",
}

FIRST_YEAR: Final = 1872
"""First year with bank-holiday data (the Bank Holidays Act 1871 took effect in 1872).

The ``holidays`` data before 1971 is incomplete (England, Wales and Northern Ireland lack
the first-Monday-in-August bank holiday of 1871-1964), which matters only for history.
"""

LAST_YEAR: Final = 2200
"""Last year the calendar will answer for (see ``_UnitedKingdom``)."""

_WEEKDAYS_PER_WEEK: Final = 5
_SATURDAY: Final = 5
_DAY_NAMES: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_CLOSURE_REASON: Final = "closure day"
# Holiday data is loaded in aligned blocks of years, so that a run of nearby queries costs
# one load rather than one per year, and a query far away does not load a century.
_BLOCK_YEARS: Final = 25
_FIRST_ORDINAL: Final = date(FIRST_YEAR, 1, 1).toordinal()
_LAST_ORDINAL: Final = date(LAST_YEAR, 12, 31).toordinal()
_END_OF_DAY: Final = time(23, 59, 59, 999000)


class _UnitedKingdom(UnitedKingdom):
    """The ``holidays`` UK calendar with its horizon pushed out to ``LAST_YEAR``.

    ``holidays`` stops every country at the library-wide default end year (2100), which is
    a convention rather than a property of UK law: the UK days are rules (fixed dates,
    Easter, "first Monday of ...") that project the same way into 2150 as into 2050.
    Without this the calendar would silently treat Christmas 2101 as a working day.
    """

    end_year = LAST_YEAR


def _weekdays_upto(ordinal: int) -> int:
    """Count Mondays-to-Fridays among ordinals 1..``ordinal`` (ordinal 1 is a Monday)."""
    weeks, rest = divmod(ordinal, 7)
    return _WEEKDAYS_PER_WEEK * weeks + min(rest, _WEEKDAYS_PER_WEEK)


def _nth_weekday(k: int) -> int:
    """Return the ordinal of the ``k``-th Monday-to-Friday day (``k`` >= 1)."""
    weeks, rest = divmod(k - 1, _WEEKDAYS_PER_WEEK)
    return 7 * weeks + rest + 1


def _require_date(d: date, what: str = "date") -> None:
    # datetime is a subclass of date; a datetime (often UTC) would silently be taken for
    # its own calendar day and would never match the date keys of the holiday table.
    if isinstance(d, datetime):
        raise TypeError(f"{what} must be a date, not a datetime: convert to Europe/London first")


def _check_ordinal(ordinal: int) -> None:
    if not _FIRST_ORDINAL <= ordinal <= _LAST_ORDINAL:
        raise ValueError(
            f"working days are only known from {FIRST_YEAR} to {LAST_YEAR}; "
            "the calculation needs a day outside that range"
        )


def _block_span(first_year: int, last_year: int) -> tuple[int, int]:
    """Widen a year range to whole loading blocks, clamped to the supported years."""
    lo = FIRST_YEAR + (first_year - FIRST_YEAR) // _BLOCK_YEARS * _BLOCK_YEARS
    hi = FIRST_YEAR + ((last_year - FIRST_YEAR) // _BLOCK_YEARS + 1) * _BLOCK_YEARS - 1
    return max(lo, FIRST_YEAR), min(hi, LAST_YEAR)


# eq=False: snapshots compare and hash by identity, which is what the index cache needs
# (a newer snapshot of the same nation must never be mistaken for an older one).
@dataclass(frozen=True, slots=True, eq=False)
class _NationHolidays:
    """An immutable snapshot of one nation's bank holidays for a contiguous span of years.

    Attributes:
        first_year: First year whose bank holidays are all present.
        last_year: Last year whose bank holidays are all present.
        names: Every bank holiday in the span (weekends included) and its name.
        weekday_indices: Weekday indices of the bank holidays falling Monday-Friday.

    """

    first_year: int
    last_year: int
    names: Mapping[date, str]
    weekday_indices: frozenset[int]

    def covers(self, first_year: int, last_year: int) -> bool:
        """Whether every year in ``first_year``..``last_year`` is loaded."""
        return self.first_year <= first_year and last_year <= self.last_year


def _load_years(nation: Nation, first_year: int, last_year: int) -> dict[date, str]:
    if first_year > last_year:
        return {}
    # The language is pinned because ``holidays`` otherwise names days after the process
    # locale (LANG, LC_ALL...): a worker with another locale would give other reasons,
    # and the C locale already gives "Pentecost Monday" for the UK's "Whit Monday".
    table = _UnitedKingdom(
        subdiv=SUBDIVISION[nation], years=range(first_year, last_year + 1), language="en_GB"
    )
    return dict(table.items())


# One snapshot per nation, shared by every calendar so that building many calendars (one
# per case or per policy) costs nothing. Snapshots are replaced, never mutated, so readers
# need no lock; the lock only stops two threads loading the same years at once.
_TABLES: dict[Nation, _NationHolidays] = {}
_TABLES_LOCK: Final = threading.Lock()


def _nation_holidays(nation: Nation, first_year: int, last_year: int) -> _NationHolidays:
    """Return a snapshot of ``nation``'s bank holidays covering the given years.

    Raises:
        ValueError: If the years fall outside ``FIRST_YEAR``..``LAST_YEAR``.

    """
    current = _TABLES.get(nation)
    if current is not None and current.covers(first_year, last_year):
        return current
    if first_year < FIRST_YEAR or last_year > LAST_YEAR:
        raise ValueError(
            f"working days are only known from {FIRST_YEAR} to {LAST_YEAR}, "
            f"not for {first_year}-{last_year}"
        )
    with _TABLES_LOCK:
        current = _TABLES.get(nation)
        if current is not None and current.covers(first_year, last_year):
            return current
        lo, hi = _block_span(first_year, last_year)
        if current is None:
            names = _load_years(nation, lo, hi)
        else:
            # Keep the span contiguous, so that any two covered dates have every holiday
            # between them loaded too. UK holidays (observed days included) never spill
            # into a neighbouring year, so loading years separately loses nothing.
            lo, hi = min(lo, current.first_year), max(hi, current.last_year)
            names = dict(current.names)
            names.update(_load_years(nation, lo, current.first_year - 1))
            names.update(_load_years(nation, current.last_year + 1, hi))
        snapshot = _NationHolidays(
            first_year=lo,
            last_year=hi,
            names=MappingProxyType(names),
            weekday_indices=frozenset(
                _weekdays_upto(d.toordinal()) for d in names if d.weekday() < _SATURDAY
            ),
        )
        _TABLES[nation] = snapshot
        return snapshot


@dataclass(frozen=True, slots=True)
class _Index:
    """The non-working weekdays of one calendar, arranged for ``bisect``.

    Working days are numbered 1, 2, 3... from 0001-01-01 (``working_upto``). Only
    differences of these numbers are meaningful, and only between dates inside
    ``source``'s span, where every bank holiday is known.

    Attributes:
        source: The nation snapshot this index was built from.
        closed: Sorted weekday indices of all non-working weekdays (bank holidays and the
            calendar's extra days).
        shifted: ``closed[i] - i``. Because ``closed`` is strictly increasing this is
            non-decreasing, and the k-th working day has weekday index
            ``k + bisect_right(shifted, k)``: with p = that count, exactly p closed
            weekdays come before weekday index k + p and that index is not closed.

    """

    source: _NationHolidays
    closed: tuple[int, ...]
    shifted: tuple[int, ...]

    @classmethod
    @lru_cache(maxsize=256)
    def build(cls, source: _NationHolidays, extra: frozenset[int]) -> _Index:
        """Merge a nation's weekday bank holidays with a calendar's extra weekdays.

        Cached, so that the many calendars built for one policy (one per case) share one
        index instead of each sorting a few hundred holidays again.
        """
        closed = tuple(sorted(source.weekday_indices | extra))
        return cls(source, closed, tuple(c - i for i, c in enumerate(closed)))

    def working_upto(self, ordinal: int) -> int:
        """Count working days among ordinals 1..``ordinal``."""
        weekdays = _weekdays_upto(ordinal)
        return weekdays - bisect_right(self.closed, weekdays)

    def nth_working(self, k: int) -> int:
        """Return the ordinal of the ``k``-th working day (``k`` >= 1)."""
        return _nth_weekday(k + bisect_right(self.shifted, k))


@dataclass(frozen=True)
class Deadline:
    """A working-day deadline.

    Attributes:
        due: The last working day on which the action is in time.
        ends_at: The instant the deadline passes, as an aware UTC datetime: the end of
            ``due`` in Europe/London (23:59:59.999 local time), so timers set from it
            survive daylight-saving changes.

    """

    due: date
    ends_at: datetime


class WorkingCalendar:
    """Working days of one nation plus a landlord's own non-working days.

    A working day is a Monday-Friday that is neither a bank holiday of the nation
    (including substitute "(observed)" days and proclaimed one-off days the ``holidays``
    package knows about) nor one of ``extra_non_working``.

    A calendar is immutable: its nation and extra days are fixed at construction. The
    only state that changes is an internal index, rebuilt when the shared bank-holiday
    data is extended to years not asked about before. Calendars answer for dates in
    ``FIRST_YEAR``..``LAST_YEAR``; a calculation that reaches outside raises
    ``ValueError``.
    """

    __slots__ = ("_nation", "_extra", "_extra_indices", "_index")

    def __init__(self, nation: Nation, extra_non_working: Iterable[date] = ()) -> None:
        """Build a calendar.

        Args:
            nation: Whose bank holidays count.
            extra_non_working: The landlord's closure days and any proclaimed one-off bank
                holidays missing from the holiday data. Weekend days are accepted and
                change nothing.

        Raises:
            TypeError: If an extra day is a ``datetime`` rather than a ``date``.

        """
        extra = frozenset(extra_non_working)
        for d in extra:
            _require_date(d, "an extra non-working day")
        self._nation: Final = Nation(nation)
        self._extra: Final = extra
        self._extra_indices: Final = frozenset(
            _weekdays_upto(d.toordinal()) for d in extra if d.weekday() < _SATURDAY
        )
        self._index: _Index | None = None

    @classmethod
    def for_policy(cls, policy: Policy) -> WorkingCalendar:
        """Build the calendar a landlord's policy describes.

        Args:
            policy: The policy; its nation and its closure and one-off days are used.

        Returns:
            The policy's working calendar.

        """
        return cls(policy.nation, policy.non_working_days())

    @property
    def nation(self) -> Nation:
        """Whose bank holidays count."""
        return self._nation

    @property
    def extra_non_working(self) -> frozenset[date]:
        """The non-working days on top of the nation's bank holidays."""
        return self._extra

    def __repr__(self) -> str:
        return f"WorkingCalendar({self._nation.value!r}, {len(self._extra)} extra days)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WorkingCalendar):
            return NotImplemented
        return self._nation == other._nation and self._extra == other._extra

    def __hash__(self) -> int:
        return hash((self._nation, self._extra))

    def _index_for(self, first_year: int, last_year: int) -> _Index:
        """Return an index whose bank-holiday data covers the given years."""
        source = _nation_holidays(self._nation, first_year, last_year)
        index = self._index
        if index is None or index.source is not source:
            # The shared data grew since this index was built: merge again. A single
            # attribute store, so a concurrent reader sees the old or the new index.
            index = _Index.build(source, self._extra_indices)
            self._index = index
        return index

    def is_working_day(self, d: date) -> bool:
        """Whether ``d`` is a working day.

        Args:
            d: The day, in Europe/London.

        Returns:
            True for a Monday-Friday that is not a bank holiday or an extra day.

        Raises:
            ValueError: If ``d`` is outside ``FIRST_YEAR``..``LAST_YEAR``.

        """
        return self.non_working_reason(d) is None

    def non_working_reason(self, d: date) -> str | None:
        """Say why ``d`` is not a working day.

        A weekend day is reported as the weekend (``"Saturday"``) even when a bank holiday
        falls on it, because what the weekend holiday gives is the substitute weekday,
        which is reported by name (``"Christmas Day (observed)"``). A bank holiday that is
        also a closure day is reported as the bank holiday.

        Args:
            d: The day, in Europe/London.

        Returns:
            ``"Saturday"`` or ``"Sunday"``, the bank holiday's name as the ``holidays``
            package gives it, ``"closure day"`` for an extra day, or None for a working
            day.

        Raises:
            ValueError: If ``d`` is outside ``FIRST_YEAR``..``LAST_YEAR``.

        """
        _require_date(d)
        weekday = d.weekday()
        if weekday >= _SATURDAY:
            return _DAY_NAMES[weekday]
        name = _nation_holidays(self._nation, d.year, d.year).names.get(d)
        if name is not None:
            return name
        if d in self._extra:
            return _CLOSURE_REASON
        return None

    def add_working_days(self, start: date, n: int) -> date:
        """Count ``n`` working days from ``start``.

        ``start`` is day 0 whether or not it is a working day.

        Args:
            start: The day counting starts from (e.g. the day a complaint was received).
            n: Positive for the n-th working day strictly after ``start``, negative for
                the |n|-th working day strictly before it (e.g. a reminder 2 working days
                before a due date), zero for ``start`` itself.

        Returns:
            The day reached; a working day unless ``n`` is 0.

        Raises:
            ValueError: If the answer or ``start`` is outside ``FIRST_YEAR``..``LAST_YEAR``.

        """
        _require_date(start, "start")
        if n == 0:
            return start
        origin = start.toordinal()
        _check_ordinal(origin)
        first_year = last_year = start.year
        while True:
            index = self._index_for(first_year, last_year)
            if n > 0:
                target = index.working_upto(origin) + n
            else:
                # Working days strictly before start are those up to the day before it.
                target = index.working_upto(origin - 1) + n + 1
            # A target below 1 would be before 0001-01-01: out of range like any other
            # day before FIRST_YEAR.
            ordinal = index.nth_working(target) if target >= 1 else 0
            _check_ordinal(ordinal)
            result = date.fromordinal(ordinal)
            if index.source.first_year <= result.year <= index.source.last_year:
                return result
            # The answer lies past the loaded holidays, so holidays on the way may have
            # been missed: load through the answer's year and count again. Loading more
            # can only push the answer further out, so this settles in a step or two.
            first_year = min(first_year, result.year)
            last_year = max(last_year, result.year)

    def working_days_between(self, start: date, end: date) -> int:
        """Count the working days from ``start`` to ``end``.

        The count is of working days in (``start``, ``end``], negated when ``end`` is
        before ``start`` (then of (``end``, ``start``]). So
        ``working_days_between(d, add_working_days(d, n)) == n`` for every ``d`` and every
        ``n >= 0``, and for ``n < 0`` whenever ``d`` is a working day.

        Args:
            start: The day counting starts from (day 0).
            end: The day counting stops at.

        Returns:
            The signed number of working days.

        Raises:
            ValueError: If either day is outside ``FIRST_YEAR``..``LAST_YEAR``.

        """
        _require_date(start, "start")
        _require_date(end, "end")
        a, b = start.toordinal(), end.toordinal()
        _check_ordinal(a)
        _check_ordinal(b)
        index = self._index_for(min(start.year, end.year), max(start.year, end.year))
        return index.working_upto(b) - index.working_upto(a)

    def deadline(self, start: date, n: int) -> Deadline:
        """Work out the deadline "within ``n`` working days of ``start``".

        Args:
            start: The day the time limit runs from (day 0).
            n: The time limit in working days.

        Returns:
            The due day and the instant it ends.

        Raises:
            ValueError: If the due day is outside ``FIRST_YEAR``..``LAST_YEAR``.

        """
        due = self.add_working_days(start, n)
        return Deadline(due=due, ends_at=end_of_day_utc(due))


def end_of_day_utc(d: date) -> datetime:
    """Return the last millisecond of ``d`` in Europe/London, as an aware UTC datetime.

    That is 23:59:59.999 UTC in winter (GMT) and 22:59:59.999 UTC in summer (BST). UK
    clocks change at 01:00 UTC, so 23:59 local time always exists and is never ambiguous.

    Args:
        d: The day, in Europe/London.

    Returns:
        The instant, in UTC.

    """
    _require_date(d)
    return datetime.combine(d, _END_OF_DAY, tzinfo=LONDON).astimezone(UTC)


def start_of_day_utc(d: date, hour: int = 9) -> datetime:
    """Return ``hour``:00 on ``d`` in Europe/London, as an aware UTC datetime.

    Meant for reminders ("9am on the due day"). For 01:00 on a clock-change Sunday the
    standard ``zoneinfo`` reading applies: in March (a time that does not exist) the
    offset before the change is used, giving 01:00 UTC; in October (a time that occurs
    twice) the first occurrence, 00:00 UTC.

    Args:
        d: The day, in Europe/London.
        hour: The local hour, 0-23.

    Returns:
        The instant, in UTC.

    Raises:
        ValueError: If ``hour`` is not in 0-23.

    """
    _require_date(d)
    return datetime.combine(d, time(hour), tzinfo=LONDON).astimezone(UTC)


def non_working_weekdays(calendar: WorkingCalendar, first_year: int,
                         last_year: int) -> tuple[date, ...]:
    """Every non-working Monday-Friday of ``calendar`` in the given years, sorted.

    What a case records of its calendar when it starts (see ``domain.deadlines``): the
    nation's bank holidays (substitute days included) and the calendar's extra days.

    Raises:
        ValueError: If the years fall outside ``FIRST_YEAR``..``LAST_YEAR``.

    """
    source = _nation_holidays(calendar.nation, first_year, last_year)
    days = set(source.names) | set(calendar.extra_non_working)
    return tuple(sorted(d for d in days
                        if first_year <= d.year <= last_year and d.weekday() < _SATURDAY))
