"""The report's building blocks: headings, paragraphs, lists, tables, charts, and numbers.

The block types (:data:`Block`) are what :mod:`complaints.reports.document` lays a report
out in and :mod:`complaints.reports.render` writes as Markdown, HTML, JSON or CSV; the
formatting helpers here word every count, percentage, amount and date the same way in
each section (:mod:`complaints.reports.sections`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Heading:
    """A heading, level 1-3."""

    level: int
    text: str


@dataclass(frozen=True)
class Para:
    """A paragraph of plain text (``**bold**`` spans allowed)."""

    text: str


@dataclass(frozen=True)
class Bullets:
    """A bulleted list."""

    items: list[str]


@dataclass(frozen=True)
class Table:
    """A table; ``numeric`` marks right-aligned columns."""

    headers: list[str]
    rows: list[list[str]]
    numeric: list[bool] = field(default_factory=list)
    caption: str = ""


@dataclass(frozen=True)
class Chart:
    """A chart (HTML only): its name in ``complaints.reports.charts`` and a caption."""

    name: str
    caption: str


Block = Heading | Para | Bullets | Table | Chart


def fmt_int(n: int | None) -> str:
    """Format a count with thousands separators."""
    return "n/a" if n is None else f"{n:,}"


def fmt_pct(value: float | None) -> str:
    """Format a percentage to one decimal place, or n/a."""
    return "n/a" if value is None else f"{value:.1f}%"


def fmt_money(pence: int) -> str:
    """Format pence as pounds."""
    return f"£{pence / 100:,.2f}"


def num(value: float | int | None) -> str:
    """A figure: whole numbers with thousands separators, others to one decimal place."""
    if value is None:
        return "n/a"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.1f}"
    return f"{int(value):,}"


def long_date(d: dt.date) -> str:
    """A date as the report writes it (1 April 2025)."""
    return f"{d.day} {d:%B %Y}"


def name_label(name: str) -> str:
    """A category or team name as a label (short names are abbreviations: upper case)."""
    if len(name) <= 3:  # an abbreviation: asb -> ASB
        return name.upper()
    return name.replace("_", " ").capitalize()


def per_1000(value: float | None) -> str:
    """A rate per 1,000 homes to two decimal places, or n/a."""
    return "n/a" if value is None else f"{value:.2f}"


def share_of(part: int, whole: int, percent: float | None) -> str:
    """A percentage with the counts it is of (50.0% (1 of 2))."""
    return f"{fmt_pct(percent)} ({fmt_int(part)} of {fmt_int(whole)})"


def complement(percent: float | None) -> float | None:
    """The rest of 100 percent (to one decimal place), or None."""
    return None if percent is None else round(100 - percent, 1)


def sum_pct(part: int, whole: int) -> float | None:
    """``part`` as a percentage of ``whole`` (one decimal place), or None when it is 0."""
    return round(100 * part / whole, 1) if whole else None


def more(shown: int, total: int) -> str:
    """How many more there are than shown, as a clause (empty when all are shown)."""
    return f" and {total - shown:,} more" if total > shown else ""


def listed(shown: int, total: int) -> str:
    """A table's caption when it lists only the first rows (empty when all are)."""
    return f"The first {shown:,} of {total:,}." if total > shown else ""


