"""Reporting periods: a date range, a 1 April - 31 March reporting year, and their instants."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from complaints.workdays import LONDON

__all__ = ["Period", "parse_year"]

_YEAR = re.compile(r"^(\d{4})\s*[/-]\s*(\d{2}|\d{4})$")


@dataclass(frozen=True)
class Period:
    """The days a report covers, both ends included, in Europe/London.

    Attributes:
        start: The first day.
        end: The last day.
        label: How the period is named in the report (``2025/26`` for a reporting year).
    """

    start: dt.date
    end: dt.date
    label: str = ""

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"the period ends ({self.end}) before it starts ({self.start})")
        if not self.label:
            object.__setattr__(self, "label", f"{self.start.isoformat()} to "
                                              f"{self.end.isoformat()}")

    @property
    def start_instant(self) -> dt.datetime:
        """Midnight at the start of ``start`` in London, as an aware UTC datetime."""
        return dt.datetime.combine(self.start, dt.time(0), tzinfo=LONDON).astimezone(dt.UTC)

    @property
    def end_instant(self) -> dt.datetime:
        """Midnight after ``end`` in London (excluded), as an aware UTC datetime."""
        after = self.end + dt.timedelta(days=1)
        return dt.datetime.combine(after, dt.time(0), tzinfo=LONDON).astimezone(dt.UTC)

    def months(self) -> list[tuple[int, int]]:
        """Every (year, month) the period touches, in order."""
        months: list[tuple[int, int]] = []
        year, month = self.start.year, self.start.month
        while (year, month) <= (self.end.year, self.end.month):
            months.append((year, month))
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return months


def parse_year(text: str) -> Period:
    """Parse a reporting year such as ``2025/26`` (1 April 2025 - 31 March 2026).

    ``2025/2026`` and ``2025-26`` are accepted too.

    Args:
        text: The year as written.

    Returns:
        The period, labelled ``2025/26``.

    Raises:
        ValueError: If ``text`` is not a reporting year, or its two years do not follow.

    """
    match = _YEAR.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a reporting year: write it as 2025/26")
    first = int(match.group(1))
    second = int(match.group(2))
    expected = first + 1 if len(match.group(2)) == 4 else (first + 1) % 100
    if second != expected:
        raise ValueError(f"{text!r} is not a reporting year: the second year must follow "
                         f"the first, e.g. {first}/{(first + 1) % 100:02d}")
    return Period(dt.date(first, 4, 1), dt.date(first + 1, 3, 31),
                  f"{first}/{(first + 1) % 100:02d}")
