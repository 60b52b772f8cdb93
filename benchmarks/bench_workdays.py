"""Time working-day arithmetic: ``python benchmarks/bench_workdays.py``.

Builds a calendar per nation, warms the shared holiday cache, then times the two
operations the engine leans on: a 20-working-day deadline and a count across a decade.
Prints microseconds per call (best of several runs, to keep noise from other processes out).
"""

from __future__ import annotations

import sys
import timeit
from datetime import date, timedelta
from pathlib import Path

# Run as a plain script from anywhere: make the project importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from complaints.workdays import WorkingCalendar  # noqa: E402
from models.policy import Nation  # noqa: E402

NUMBER = 100_000
REPEAT = 5


def _per_call_us(stmt: str, namespace: dict[str, object]) -> float:
    runs = timeit.repeat(stmt, globals=namespace, number=NUMBER, repeat=REPEAT)
    return min(runs) / NUMBER * 1e6


def main() -> None:
    """Print per-call timings for each nation."""
    shutdown = [date(2025, 12, 24) + timedelta(days=i) for i in range(8)]
    start, decade_from, decade_to = date(2025, 12, 22), date(2016, 1, 1), date(2026, 1, 1)
    print(f"{'calendar':<32} {'add 20 WD':>12} {'count 2016-2026':>16} {'build':>10}")
    for nation in Nation:
        for label, extra in (("", []), (" + shutdown", shutdown)):
            calendar = WorkingCalendar(nation, extra)
            # Warm: loads the nation's holiday years and builds the calendar's index.
            calendar.add_working_days(start, 20)
            calendar.working_days_between(decade_from, decade_to)
            namespace: dict[str, object] = {
                "calendar": calendar,
                "start": start,
                "a": decade_from,
                "b": decade_to,
                "WorkingCalendar": WorkingCalendar,
                "nation": nation,
                "extra": extra,
            }
            add = _per_call_us("calendar.add_working_days(start, 20)", namespace)
            count = _per_call_us("calendar.working_days_between(a, b)", namespace)
            # A fresh calendar per case: construction plus its first (index-building) call.
            build = _per_call_us(
                "WorkingCalendar(nation, extra).add_working_days(start, 20)", namespace
            )
            print(f"{nation.value + label:<32} {add:>9.2f} us {count:>13.2f} us {build:>7.1f} us")


if __name__ == "__main__":
    main()
