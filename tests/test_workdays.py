"""Tests for ``complaints.workdays``.

The worked examples were counted by hand on a calendar and checked against the
``holidays`` package; the property tests compare the closed-form arithmetic with a
brute-force, day-by-day reference built straight from ``holidays.country_holidays``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from complaints import workdays
from complaints.workdays import (
    FIRST_YEAR,
    LAST_YEAR,
    SUBDIVISION,
    Deadline,
    WorkingCalendar,
    end_of_day_utc,
    start_of_day_utc,
)
from models.policy import (
    EscalationWindow,
    EscalationWindowUnit,
    Nation,
    Policy,
    TimeLimits,
)

ENG = Nation.ENGLAND_AND_WALES
SCT = Nation.SCOTLAND
NIR = Nation.NORTHERN_IRELAND

# Christmas shutdown, Wednesday 24 to Wednesday 31 December 2025 inclusive.
SHUTDOWN_2025 = tuple(date(2025, 12, 24) + timedelta(days=i) for i in range(8))


def _utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


# --------------------------------------------------------------------------------------
# Brute-force reference: one day at a time, straight from the holidays package.
# --------------------------------------------------------------------------------------

# Years the random inputs can reach: 2000-2090 plus/minus 400 working days and margins.
_REFERENCE_YEARS = range(1997, 2095)
_REFERENCE_HOLIDAYS = {
    nation: frozenset(
        holidays.country_holidays("GB", subdiv=SUBDIVISION[nation], years=_REFERENCE_YEARS)
    )
    for nation in Nation
}


def _reference_is_working(nation: Nation, d: date, extra: frozenset[date]) -> bool:
    return d.weekday() < 5 and d not in _REFERENCE_HOLIDAYS[nation] and d not in extra


def _reference_add(nation: Nation, start: date, n: int, extra: frozenset[date]) -> date:
    step = timedelta(days=1 if n > 0 else -1)
    counted, d = 0, start
    while counted != abs(n):
        d += step
        counted += _reference_is_working(nation, d, extra)
    return d


def _reference_between(nation: Nation, start: date, end: date, extra: frozenset[date]) -> int:
    lo, hi, sign = (start, end, 1) if end >= start else (end, start, -1)
    days = (hi - lo).days
    return sign * sum(
        _reference_is_working(nation, lo + timedelta(days=i), extra) for i in range(1, days + 1)
    )


# --------------------------------------------------------------------------------------
# Worked examples, every nation.
# --------------------------------------------------------------------------------------

# (start, n, {nation: expected}); each counted by hand, reasons in the ids.
WORKED: list[tuple[str, date, int, dict[Nation, date]]] = [
    (
        # Sat 25 & Sun 26 Dec; Mon 27 and Tue 28 are the observed Christmas and Boxing Day;
        # Wed 29, Thu 30, Fri 31 count 1-3; Mon 3 Jan is New Year's Day (observed); Tue 4
        # and Wed 5 count 4-5. Scotland also has Tue 4 Jan (2 January observed).
        "christmas-2021-on-weekend-and-new-year-2022",
        date(2021, 12, 24),
        5,
        {ENG: date(2022, 1, 5), SCT: date(2022, 1, 6), NIR: date(2022, 1, 5)},
    ),
    (
        # Sun 25 Dec 2022: Boxing Day Mon 26, Christmas observed Tue 27.
        "christmas-2022-on-sunday",
        date(2022, 12, 23),
        1,
        {ENG: date(2022, 12, 28), SCT: date(2022, 12, 28), NIR: date(2022, 12, 28)},
    ),
    (
        # Sat 25 Dec 2027: observed Mon 27 and Tue 28.
        "christmas-2027-on-saturday",
        date(2027, 12, 24),
        1,
        {ENG: date(2027, 12, 29), SCT: date(2027, 12, 29), NIR: date(2027, 12, 29)},
    ),
    (
        # Good Friday 29 Mar 2024 everywhere; Easter Monday 1 Apr not in Scotland.
        "easter-2024",
        date(2024, 3, 28),
        1,
        {ENG: date(2024, 4, 2), SCT: date(2024, 4, 1), NIR: date(2024, 4, 2)},
    ),
    (
        "state-funeral-2022-09-19",
        date(2022, 9, 16),
        1,
        {ENG: date(2022, 9, 20), SCT: date(2022, 9, 20), NIR: date(2022, 9, 20)},
    ),
    (
        "coronation-2023-05-08",
        date(2023, 5, 5),
        1,
        {ENG: date(2023, 5, 9), SCT: date(2023, 5, 9), NIR: date(2023, 5, 9)},
    ),
    (
        # Mon 1 Jan 2024 everywhere; Tue 2 Jan only in Scotland.
        "scotland-2-january-2024",
        date(2023, 12, 29),
        1,
        {ENG: date(2024, 1, 2), SCT: date(2024, 1, 3), NIR: date(2024, 1, 2)},
    ),
    (
        # St Andrew's Day, Thursday 30 Nov 2023.
        "st-andrews-day-2023",
        date(2023, 11, 29),
        1,
        {ENG: date(2023, 11, 30), SCT: date(2023, 12, 1), NIR: date(2023, 11, 30)},
    ),
    (
        # St Andrew's Day on Saturday 30 Nov 2024: substitute Monday 2 Dec.
        "st-andrews-day-2024-substitute",
        date(2024, 11, 29),
        1,
        {ENG: date(2024, 12, 2), SCT: date(2024, 12, 3), NIR: date(2024, 12, 2)},
    ),
    (
        # St Andrew's Day on Sunday 30 Nov 2025: substitute Monday 1 Dec.
        "st-andrews-day-2025-substitute",
        date(2025, 11, 28),
        1,
        {ENG: date(2025, 12, 1), SCT: date(2025, 12, 2), NIR: date(2025, 12, 1)},
    ),
    (
        # St Patrick's Day, Monday 17 Mar 2025.
        "st-patricks-day-2025",
        date(2025, 3, 14),
        1,
        {ENG: date(2025, 3, 17), SCT: date(2025, 3, 17), NIR: date(2025, 3, 18)},
    ),
    (
        # St Patrick's Day on Sunday 17 Mar 2024: substitute Monday 18 Mar.
        "st-patricks-day-2024-substitute",
        date(2024, 3, 15),
        1,
        {ENG: date(2024, 3, 18), SCT: date(2024, 3, 18), NIR: date(2024, 3, 19)},
    ),
    (
        # Battle of the Boyne, Friday 12 Jul 2024.
        "boyne-2024",
        date(2024, 7, 11),
        1,
        {ENG: date(2024, 7, 12), SCT: date(2024, 7, 12), NIR: date(2024, 7, 15)},
    ),
    (
        # Battle of the Boyne on Saturday 12 Jul 2025: substitute Monday 14 Jul.
        "boyne-2025-substitute",
        date(2025, 7, 11),
        1,
        {ENG: date(2025, 7, 14), SCT: date(2025, 7, 14), NIR: date(2025, 7, 15)},
    ),
    (
        # Scotland's summer bank holiday is the first Monday in August (4 Aug 2025).
        "scotland-early-august-2025",
        date(2025, 8, 1),
        1,
        {ENG: date(2025, 8, 4), SCT: date(2025, 8, 5), NIR: date(2025, 8, 4)},
    ),
    (
        # England's and NI's summer bank holiday is the last Monday in August (25 Aug 2025).
        "england-late-august-2025",
        date(2025, 8, 22),
        1,
        {ENG: date(2025, 8, 26), SCT: date(2025, 8, 25), NIR: date(2025, 8, 26)},
    ),
    (
        # Start on Saturday: day 0; Mon 16 to Fri 20 Jun count 1-5.
        "start-on-saturday",
        date(2025, 6, 14),
        5,
        {ENG: date(2025, 6, 20), SCT: date(2025, 6, 20), NIR: date(2025, 6, 20)},
    ),
    (
        # Start on Sunday 26 Dec 2021 (Boxing Day): Mon 27 and Tue 28 are observed days.
        "start-on-sunday-boxing-day",
        date(2021, 12, 26),
        1,
        {ENG: date(2021, 12, 29), SCT: date(2021, 12, 29), NIR: date(2021, 12, 29)},
    ),
    (
        # Start on a bank holiday (May Day, Monday 5 May 2025): it is day 0.
        "start-on-bank-holiday",
        date(2025, 5, 5),
        1,
        {ENG: date(2025, 5, 6), SCT: date(2025, 5, 6), NIR: date(2025, 5, 6)},
    ),
    (
        # A reminder 2 working days before Tue 2 Apr 2024: skips Easter Monday (not in
        # Scotland) and Good Friday.
        "two-working-days-before-easter-tuesday",
        date(2024, 4, 2),
        -2,
        {ENG: date(2024, 3, 27), SCT: date(2024, 3, 28), NIR: date(2024, 3, 27)},
    ),
    (
        # One working day before a Saturday is the Friday.
        "one-working-day-before-saturday",
        date(2025, 6, 14),
        -1,
        {ENG: date(2025, 6, 13), SCT: date(2025, 6, 13), NIR: date(2025, 6, 13)},
    ),
    (
        # Three working days before Wed 3 Jan 2024: Tue 2 (1; a bank holiday in
        # Scotland), Mon 1 Jan is a bank holiday, Fri 29 Dec (2), Thu 28 Dec (3); Scotland
        # goes on to Wed 27 Dec (Christmas and Boxing Day were Mon 25 and Tue 26).
        "three-working-days-before-new-year",
        date(2024, 1, 3),
        -3,
        {ENG: date(2023, 12, 28), SCT: date(2023, 12, 27), NIR: date(2023, 12, 28)},
    ),
]

WORKED_PARAMS = [
    pytest.param(nation, start, n, expected[nation], id=f"{name}-{nation.value}")
    for name, start, n, expected in WORKED
    for nation in Nation
]


@pytest.mark.parametrize(("nation", "start", "n", "expected"), WORKED_PARAMS)
def test_add_working_days_worked_examples(
    nation: Nation, start: date, n: int, expected: date
) -> None:
    """Adding working days gives the hand-counted day in every nation."""
    assert WorkingCalendar(nation).add_working_days(start, n) == expected


@pytest.mark.parametrize(("nation", "start", "n", "expected"), WORKED_PARAMS)
def test_working_days_between_worked_examples(
    nation: Nation, start: date, n: int, expected: date
) -> None:
    """Counting back over each worked example gives its N (start days are working or N >= 0)."""
    calendar = WorkingCalendar(nation)
    if n < 0 and not calendar.is_working_day(start):
        # From a non-working start, (result, start] holds |n| - 1 working days.
        assert calendar.working_days_between(start, expected) == n + 1
    else:
        assert calendar.working_days_between(start, expected) == n


def test_worked_examples_agree_with_reference() -> None:
    """The hand-counted table itself agrees with the day-by-day reference implementation."""
    for _name, start, n, expected in WORKED:
        for nation, due in expected.items():
            assert _reference_add(nation, start, n, frozenset()) == due


@pytest.mark.parametrize(
    ("nation", "expected"),
    # (2 Jan 2016, 1 Jan 2026] holds 521 weeks + 6 days = 2,609 weekdays. England and
    # Wales: 8 weekday bank holidays a year = 80 (1 Jan 2016 out, 1 Jan 2026 in), plus the
    # 2022 Jubilee extra day, the State Funeral and the Coronation = 83. Scotland: 9 a
    # year (2 Jan, St Andrew's, early August, no Easter Monday) = 90 + 3. NI: 10 a year
    # (St Patrick's, Boyne) = 100 + 3.
    [(ENG, 2609 - 83), (SCT, 2609 - 93), (NIR, 2609 - 103)],
)
def test_working_days_across_a_decade(nation: Nation, expected: int) -> None:
    """A decade (2016-2026) holds the hand-counted number of working days."""
    calendar = WorkingCalendar(nation)
    assert calendar.working_days_between(date(2016, 1, 1), date(2026, 1, 1)) == expected
    assert calendar.working_days_between(date(2026, 1, 1), date(2016, 1, 1)) == -expected


# --------------------------------------------------------------------------------------
# Reasons and single days.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nation", "day", "reason"),
    [
        (ENG, date(2021, 12, 25), "Saturday"),
        (ENG, date(2021, 12, 26), "Sunday"),
        (ENG, date(2021, 12, 27), "Christmas Day (observed)"),
        (ENG, date(2021, 12, 28), "Boxing Day (observed)"),
        (ENG, date(2022, 9, 19), "State Funeral of Queen Elizabeth II"),
        (SCT, date(2023, 5, 8), "Coronation of Charles III"),
        (ENG, date(2024, 4, 1), "Easter Monday"),
        (SCT, date(2024, 4, 1), None),
        (SCT, date(2024, 1, 2), "New Year Holiday"),
        (ENG, date(2024, 1, 2), None),
        (SCT, date(2024, 12, 2), "Saint Andrew's Day (observed)"),
        (NIR, date(2025, 3, 17), "Saint Patrick's Day"),
        (NIR, date(2025, 7, 14), "Battle of the Boyne (observed)"),
        (SCT, date(2025, 8, 4), "Summer Bank Holiday"),
        (ENG, date(2025, 8, 25), "Late Summer Bank Holiday"),
        (SCT, date(2025, 8, 25), None),
        (ENG, date(2025, 6, 18), None),
    ],
)
def test_non_working_reason(nation: Nation, day: date, reason: str | None) -> None:
    """Each day is explained by its weekend name, bank holiday name or nothing."""
    calendar = WorkingCalendar(nation)
    assert calendar.non_working_reason(day) == reason
    assert calendar.is_working_day(day) is (reason is None)


def test_closure_day_reason_and_bank_holiday_precedence() -> None:
    """Extra days read "closure day" unless a bank holiday or weekend explains them first."""
    calendar = WorkingCalendar(ENG, SHUTDOWN_2025)
    assert calendar.non_working_reason(date(2025, 12, 24)) == "closure day"
    assert calendar.non_working_reason(date(2025, 12, 25)) == "Christmas Day"
    assert calendar.non_working_reason(date(2025, 12, 27)) == "Saturday"
    assert calendar.non_working_reason(date(2026, 1, 2)) is None
    assert not calendar.is_working_day(date(2025, 12, 29))
    assert WorkingCalendar(ENG).is_working_day(date(2025, 12, 29))


# --------------------------------------------------------------------------------------
# Closure days and policies.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nation", "with_shutdown", "without"),
    # From Mon 22 Dec 2025, 5 working days. With the shutdown: Tue 23 (1), 24-31 closed
    # (25, 26 are bank holidays anyway), Thu 1 Jan bank holiday, Fri 2 (2; a bank holiday
    # in Scotland), Mon 5 .. Wed 7 (3-5). Without: 23, 24, 29, 30, 31.
    [
        (ENG, date(2026, 1, 7), date(2025, 12, 31)),
        (SCT, date(2026, 1, 8), date(2025, 12, 31)),
        (NIR, date(2026, 1, 7), date(2025, 12, 31)),
    ],
)
def test_christmas_shutdown_pushes_deadline(
    nation: Nation, with_shutdown: date, without: date
) -> None:
    """A 24-31 December shutdown passed as extra days pushes a 5-day deadline into January."""
    start = date(2025, 12, 22)
    assert WorkingCalendar(nation, SHUTDOWN_2025).add_working_days(start, 5) == with_shutdown
    assert WorkingCalendar(nation).add_working_days(start, 5) == without
    assert WorkingCalendar(nation, SHUTDOWN_2025).working_days_between(start, with_shutdown) == 5


def _policy(nation: Nation, closure: Iterable[date], one_off: Iterable[date]) -> Policy:
    return Policy(
        name="test",
        landlord="Test Homes",
        nation=nation,
        limits=TimeLimits(
            stage1_acknowledgement=5,
            stage1_response=10,
            stage1_extension_cap=10,
            stage2_acknowledgement=5,
            stage2_response=20,
            stage2_extension_cap=20,
        ),
        escalation_window=EscalationWindow(length=1, unit=EscalationWindowUnit.CALENDAR_MONTHS),
        closure_days=tuple(closure),
        one_off_bank_holidays=tuple(one_off),
    )


def test_for_policy_counts_one_off_holidays_but_never_closure_days() -> None:
    """A policy's one-off bank holidays are non-working; its closure days never lengthen a date."""
    policy = _policy(ENG, SHUTDOWN_2025, [date(2026, 1, 2)])
    calendar = WorkingCalendar.for_policy(policy)
    assert calendar.nation is ENG
    assert calendar.extra_non_working == {date(2026, 1, 2)}
    # Tue 23 (1), Wed 24 (2), 25-26 Dec bank holidays, Mon 29 (3), Tue 30 (4), Wed 31 (5).
    assert calendar.add_working_days(date(2025, 12, 22), 5) == date(2025, 12, 31)
    assert WorkingCalendar.for_policy(_policy(SCT, (), ())) == WorkingCalendar(SCT)


def test_calendar_equality_ignores_order_and_weekend_extras_change_nothing() -> None:
    """Calendars compare by nation and extra days, and weekend extra days change no answer."""
    a, b = date(2025, 12, 29), date(2025, 12, 30)
    assert WorkingCalendar(ENG, [a, b]) == WorkingCalendar(ENG, [b, a])
    assert hash(WorkingCalendar(ENG, [a, b])) == hash(WorkingCalendar(ENG, (b, a)))
    assert WorkingCalendar(ENG, [a]) != WorkingCalendar(SCT, [a])
    weekend = WorkingCalendar(ENG, [date(2025, 6, 14), date(2025, 6, 15)])
    assert weekend.add_working_days(date(2025, 6, 13), 1) == date(2025, 6, 16)
    # (Sun 1 Jun, Tue 1 Jul 2025]: 21 weekdays in June from Mon 2 to Mon 30, plus 1 July.
    assert weekend.working_days_between(date(2025, 6, 1), date(2025, 7, 1)) == 22


# --------------------------------------------------------------------------------------
# N = 0, negative N, signs.
# --------------------------------------------------------------------------------------


def test_zero_working_days_returns_start_even_when_not_working() -> None:
    """N = 0 returns the start day unchanged, whether or not it is a working day."""
    calendar = WorkingCalendar(ENG)
    assert calendar.add_working_days(date(2025, 6, 14), 0) == date(2025, 6, 14)
    assert calendar.add_working_days(date(2025, 12, 25), 0) == date(2025, 12, 25)
    assert calendar.deadline(date(2025, 6, 14), 0).due == date(2025, 6, 14)


def test_working_days_between_zero_and_negative() -> None:
    """Counts are zero for no working days in between and negative when end is earlier."""
    calendar = WorkingCalendar(ENG)
    assert calendar.working_days_between(date(2025, 6, 18), date(2025, 6, 18)) == 0
    assert calendar.working_days_between(date(2025, 6, 14), date(2025, 6, 15)) == 0
    assert calendar.working_days_between(date(2021, 12, 24), date(2021, 12, 28)) == 0
    assert calendar.working_days_between(date(2021, 12, 24), date(2021, 12, 29)) == 1
    assert calendar.working_days_between(date(2025, 6, 14), date(2025, 6, 13)) == 0
    assert calendar.working_days_between(date(2025, 6, 16), date(2025, 6, 13)) == -1
    assert calendar.working_days_between(date(2024, 4, 2), date(2024, 3, 27)) == -2


# --------------------------------------------------------------------------------------
# Deadlines across daylight-saving changes.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "due", "ends_at"),
    [
        # Clocks go forward on Sunday 30 March 2025.
        (date(2025, 3, 21), date(2025, 3, 28), _utc(2025, 3, 28, 23, 59, 59, 999000)),
        (date(2025, 3, 24), date(2025, 3, 31), _utc(2025, 3, 31, 22, 59, 59, 999000)),
        # Clocks go back on Sunday 26 October 2025.
        (date(2025, 10, 17), date(2025, 10, 24), _utc(2025, 10, 24, 22, 59, 59, 999000)),
        (date(2025, 10, 20), date(2025, 10, 27), _utc(2025, 10, 27, 23, 59, 59, 999000)),
    ],
)
def test_deadline_ends_at_london_midnight_across_dst(
    start: date, due: date, ends_at: datetime
) -> None:
    """A 5-day deadline ends at 23:59:59.999 London time: 22:59 UTC in BST, 23:59 in GMT."""
    deadline = WorkingCalendar(ENG).deadline(start, 5)
    assert deadline == Deadline(due=due, ends_at=ends_at)
    assert deadline.ends_at.tzinfo is UTC


def test_deadline_over_easter_2024_into_bst() -> None:
    """A deadline pushed past Easter 2024 also crosses into BST (clocks changed 31 March)."""
    deadline = WorkingCalendar(ENG).deadline(date(2024, 3, 28), 1)
    assert deadline.due == date(2024, 4, 2)
    assert deadline.ends_at == _utc(2024, 4, 2, 22, 59, 59, 999000)


@pytest.mark.parametrize(
    ("day", "end", "nine_am"),
    [
        (date(2025, 3, 29), _utc(2025, 3, 29, 23, 59, 59, 999000), _utc(2025, 3, 29, 9)),
        (date(2025, 3, 30), _utc(2025, 3, 30, 22, 59, 59, 999000), _utc(2025, 3, 30, 8)),
        (date(2025, 10, 25), _utc(2025, 10, 25, 22, 59, 59, 999000), _utc(2025, 10, 25, 8)),
        (date(2025, 10, 26), _utc(2025, 10, 26, 23, 59, 59, 999000), _utc(2025, 10, 26, 9)),
    ],
)
def test_day_boundaries_on_clock_change_weekends(
    day: date, end: datetime, nine_am: datetime
) -> None:
    """End of day and 9am local shift by an hour in UTC exactly at the clock changes."""
    assert end_of_day_utc(day) == end
    assert start_of_day_utc(day) == nine_am


def test_start_of_day_other_hours_and_transition_hour() -> None:
    """Other hours convert too; 01:00 on change days follows zoneinfo's fold=0 reading."""
    assert start_of_day_utc(date(2025, 7, 1), hour=0) == _utc(2025, 6, 30, 23)
    assert start_of_day_utc(date(2025, 1, 6), hour=17) == _utc(2025, 1, 6, 17)
    assert start_of_day_utc(date(2025, 3, 30), hour=1) == _utc(2025, 3, 30, 1)
    assert start_of_day_utc(date(2025, 10, 26), hour=1) == _utc(2025, 10, 26, 0)
    with pytest.raises(ValueError):
        start_of_day_utc(date(2025, 1, 6), hour=24)


# --------------------------------------------------------------------------------------
# Inputs and range.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.add_working_days(datetime(2025, 6, 13, 23, 30, tzinfo=UTC), 1),
        lambda c: c.working_days_between(date(2025, 6, 13), datetime(2025, 6, 20)),
        lambda c: c.is_working_day(datetime(2025, 6, 13)),
        lambda c: WorkingCalendar(ENG, [datetime(2025, 6, 13)]),
        lambda c: end_of_day_utc(datetime(2025, 6, 13)),
    ],
)
def test_datetimes_are_refused(call: Callable[[WorkingCalendar], object]) -> None:
    """A datetime is refused rather than silently read as a (possibly UTC) day."""
    with pytest.raises(TypeError):
        call(WorkingCalendar(ENG))


def test_outside_supported_years_is_refused() -> None:
    """Days before FIRST_YEAR or after LAST_YEAR raise ValueError instead of guessing."""
    calendar = WorkingCalendar(ENG)
    with pytest.raises(ValueError):
        calendar.add_working_days(date(LAST_YEAR, 12, 30), 5)
    with pytest.raises(ValueError):
        calendar.add_working_days(date(FIRST_YEAR, 1, 3), -5)
    with pytest.raises(ValueError):
        calendar.working_days_between(date(2025, 1, 1), date(LAST_YEAR + 1, 1, 1))
    with pytest.raises(ValueError):
        calendar.is_working_day(date(FIRST_YEAR - 1, 6, 1))
    with pytest.raises(ValueError):
        calendar.add_working_days(date(2025, 1, 1), 10**7)


def test_years_after_2100_still_have_bank_holidays() -> None:
    """Past the holidays package's default 2100 horizon, Christmas and Easter still count."""
    calendar = WorkingCalendar(ENG)
    # Christmas 2101 is a Sunday: Boxing Day Mon 26, Christmas observed Tue 27.
    assert calendar.non_working_reason(date(2101, 12, 27)) == "Christmas Day (observed)"
    assert calendar.add_working_days(date(2101, 12, 23), 1) == date(2101, 12, 28)
    # Easter Sunday 2150 is 12 April (computus): Good Friday 10, Easter Monday 13 April.
    assert calendar.add_working_days(date(2150, 4, 9), 1) == date(2150, 4, 14)
    assert WorkingCalendar(SCT).add_working_days(date(2150, 4, 9), 1) == date(2150, 4, 13)


def test_holiday_data_is_shared_loaded_lazily_and_extended(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Holiday years are loaded once per nation, on demand, and extended in either direction."""
    monkeypatch.setattr(workdays, "_TABLES", {})
    loads: list[tuple[Nation, int, int]] = []
    real_load = workdays._load_years

    def counting_load(nation: Nation, first: int, last: int) -> dict[date, str]:
        if first <= last:
            loads.append((nation, first, last))
        return real_load(nation, first, last)

    monkeypatch.setattr(workdays, "_load_years", counting_load)
    one, two = WorkingCalendar(ENG), WorkingCalendar(ENG, SHUTDOWN_2025)
    assert loads == []
    assert one.add_working_days(date(2025, 12, 22), 5) == date(2025, 12, 31)
    assert two.add_working_days(date(2025, 12, 22), 5) == date(2026, 1, 7)
    assert len(loads) == 1
    # Far in both directions, then a year already covered: each far query loads once.
    # Christmas 2190 is a Saturday: Mon 27 and Tue 28 are the observed days.
    assert one.add_working_days(date(2190, 12, 24), 1) == date(2190, 12, 29)
    # Christmas Day and Boxing Day 1900 were Tuesday and Wednesday.
    assert one.add_working_days(date(1900, 12, 27), -1) == date(1900, 12, 24)
    assert one.working_days_between(date(2016, 1, 1), date(2026, 1, 1)) == 2526
    assert len(loads) == 3
    # The span stays contiguous, in whole 25-year blocks counted from 1872 (1897-1921 for
    # 1900, 2172-2196 for 2190).
    assert (workdays._TABLES[ENG].first_year, workdays._TABLES[ENG].last_year) == (1897, 2196)
    # A calendar built before the extensions picks them up (2060 came with the 2190 load).
    year_2060 = two.working_days_between(date(2059, 12, 31), date(2060, 12, 31))
    assert year_2060 == _reference_between(ENG, date(2059, 12, 31), date(2060, 12, 31), frozenset())
    assert WorkingCalendar(SCT).is_working_day(date(2025, 6, 18))
    assert {nation for nation, _, _ in loads} == {ENG, SCT}


def test_holiday_names_do_not_depend_on_the_process_locale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reasons are the en_GB names even when the process locale says otherwise."""
    monkeypatch.setattr(workdays, "_TABLES", {})
    for variable in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.setenv(variable, "th_TH.UTF-8")
    calendar = WorkingCalendar(ENG)
    assert calendar.non_working_reason(date(2025, 12, 25)) == "Christmas Day"
    # Whit Monday 1950 (29 May); the en_US names call it "Pentecost Monday".
    assert calendar.non_working_reason(date(1950, 5, 29)) == "Whit Monday"


@pytest.mark.parametrize("nation", list(Nation))
def test_no_holiday_spills_into_a_neighbouring_year(nation: Nation) -> None:
    """Loading any one year yields only days of that year, so loading by blocks loses none."""
    for year in range(FIRST_YEAR, LAST_YEAR + 1):
        assert {d.year for d in workdays._load_years(nation, year, year)} <= {year}


# --------------------------------------------------------------------------------------
# Properties, against the brute-force reference.
# --------------------------------------------------------------------------------------

nations = st.sampled_from(list(Nation))
days = st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31))
counts = st.integers(min_value=0, max_value=400)
# Extra days clustered near the start so that they matter (including long runs).
extra_offsets = st.lists(st.integers(min_value=-30, max_value=200), max_size=40)


def _extras(start: date, offsets: list[int]) -> frozenset[date]:
    return frozenset(start + timedelta(days=o) for o in offsets)


@settings(max_examples=300, deadline=None)
@given(nation=nations, start=days, n=counts)
def test_round_trip_and_result_is_working(nation: Nation, start: date, n: int) -> None:
    """Counting back to add(D, N) gives N, and for N > 0 the result is a working day."""
    calendar = WorkingCalendar(nation)
    due = calendar.add_working_days(start, n)
    assert calendar.working_days_between(start, due) == n
    if n > 0:
        assert due > start
        assert due.weekday() < 5
        assert due not in _REFERENCE_HOLIDAYS[nation]
        assert calendar.is_working_day(due)


@settings(max_examples=200, deadline=None)
@given(nation=nations, start=days, n=st.integers(min_value=0, max_value=60))
def test_add_is_strictly_increasing_in_n(nation: Nation, start: date, n: int) -> None:
    """Each extra working day moves the result strictly later."""
    calendar = WorkingCalendar(nation)
    assert calendar.add_working_days(start, n) < calendar.add_working_days(start, n + 1)


@settings(max_examples=200, deadline=None)
@given(nation=nations, start=days, a=counts, b=counts)
def test_add_composes(nation: Nation, start: date, a: int, b: int) -> None:
    """Adding a then b working days equals adding a + b (add(D, a) is working for a > 0)."""
    calendar = WorkingCalendar(nation)
    assert calendar.add_working_days(
        calendar.add_working_days(start, a), b
    ) == calendar.add_working_days(start, a + b)


@settings(max_examples=200, deadline=None)
@given(nation=nations, start=days, n=st.integers(min_value=1, max_value=400))
def test_negative_n_inverts_positive_n_from_working_days(
    nation: Nation, start: date, n: int
) -> None:
    """From a working day, going back n then forward n returns to it, and counts -n."""
    calendar = WorkingCalendar(nation)
    working = calendar.add_working_days(start, 1)
    back = calendar.add_working_days(working, -n)
    assert calendar.is_working_day(back)
    assert calendar.working_days_between(working, back) == -n
    assert calendar.add_working_days(back, n) == working


@settings(max_examples=300, deadline=None)
@given(
    nation=nations,
    start=days,
    n=st.integers(min_value=-400, max_value=400),
    offsets=extra_offsets,
)
def test_add_matches_day_by_day_reference(
    nation: Nation, start: date, n: int, offsets: list[int]
) -> None:
    """add_working_days agrees with a day-by-day walk, with random closure days."""
    extra = _extras(start, offsets)
    calendar = WorkingCalendar(nation, extra)
    assert calendar.add_working_days(start, n) == _reference_add(nation, start, n, extra)


@settings(max_examples=300, deadline=None)
@given(
    nation=nations,
    start=days,
    span=st.integers(min_value=-800, max_value=800),
    offsets=extra_offsets,
)
def test_between_matches_day_by_day_reference(
    nation: Nation, start: date, span: int, offsets: list[int]
) -> None:
    """working_days_between agrees with a day-by-day count, either direction, with closures."""
    extra = _extras(start, offsets)
    end = start + timedelta(days=span)
    calendar = WorkingCalendar(nation, extra)
    assert calendar.working_days_between(start, end) == _reference_between(
        nation, start, end, extra
    )


@settings(max_examples=300, deadline=None)
@given(nation=nations, day=days, offsets=extra_offsets)
def test_is_working_day_matches_reference(nation: Nation, day: date, offsets: list[int]) -> None:
    """is_working_day and non_working_reason agree with the reference on single days."""
    extra = _extras(day - timedelta(days=5), offsets)
    calendar = WorkingCalendar(nation, extra)
    expected = _reference_is_working(nation, day, extra)
    assert calendar.is_working_day(day) is expected
    assert (calendar.non_working_reason(day) is None) is expected
