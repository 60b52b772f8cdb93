"""Deadline planning in the workflow: London time by rule, and the recorded calendar."""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

from activities.casework import calendar_data
from complaints.policies import load_compliant_policy
from complaints.workdays import WorkingCalendar, end_of_day_utc, start_of_day_utc
from domain.deadlines import RecordedCalendar, end_of_day, london_date, london_time
from models.messages import EARLIEST_RECEIPT

LONDON = ZoneInfo("Europe/London")


def test_london_time_by_rule_matches_the_tz_database_for_two_centuries() -> None:
    """End of day, 09:00 and an instant's date agree with zoneinfo from 2000 (earliest receipt)."""
    day = EARLIEST_RECEIPT
    while day.year <= 2199:
        assert end_of_day(day) == end_of_day_utc(day), day
        assert london_time(day, dt.time(9)) == start_of_day_utc(day), day
        for hour in (0, 1, 2, 23):
            instant = dt.datetime.combine(day, dt.time(hour, 30), tzinfo=dt.UTC)
            assert london_date(instant) == instant.astimezone(LONDON).date(), instant
        day += dt.timedelta(days=1)


def test_recorded_calendar_counts_as_the_working_calendar() -> None:
    """Adding and counting working days on the recorded calendar match WorkingCalendar."""
    rng = random.Random(7)
    for name in ("connexus", "code-2024"):
        policy = load_compliant_policy(name)
        recorded = RecordedCalendar(calendar_data(policy, 2024, 2032))
        working = WorkingCalendar.for_policy(policy)
        for _ in range(2_000):
            start = dt.date(2025, 1, 1) + dt.timedelta(days=rng.randrange(6 * 365))
            n = rng.randrange(-10, 60)
            assert recorded.add_working_days(start, n) == working.add_working_days(start, n)
            end = start + dt.timedelta(days=rng.randrange(-30, 90))
            assert recorded.working_days_between(start, end) == \
                working.working_days_between(start, end)
