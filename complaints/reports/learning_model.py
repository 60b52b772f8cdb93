"""What the report holds on learning from complaints (Code 8.1, 9): plain pydantic models.

Kept apart from :mod:`complaints.reports.model` (which imports this) so that the queries
in :mod:`complaints.reports.learning` can use the report's shared building blocks without
the modules importing each other. The few helpers at the end lay the trend out the same
way for the document's table and its chart.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict

__all__ = ["OTHER_THEMES", "TREND_THEMES", "ChangeItem", "LearningFigures", "PreviousPeriod",
           "SatisfactionItem", "TagCount", "ThemeMonth", "label", "trend_columns",
           "trend_table"]

#: How many themes the month-by-month table and chart show by name (the rest together).
TREND_THEMES = 6
#: The column for the themes beyond :data:`TREND_THEMES`.
OTHER_THEMES = "Other themes"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TagCount(_Model):
    """How many responses (or determinations) were filed under one name."""

    name: str
    count: int


class ThemeMonth(_Model):
    """Responses issued in one month filed under one theme (the trend)."""

    month: str
    name: str
    count: int


class ChangeItem(_Model):
    """A service change made because of complaints."""

    id: int
    reference: str | None
    theme: str | None
    description: str
    owner: str
    due_on: dt.date
    done_on: dt.date | None
    overdue: bool


class SatisfactionItem(_Model):
    """Customer satisfaction with complaint handling over one period surveyed."""

    period_start: dt.date
    period_end: dt.date
    surveyed: int
    satisfied: int
    pct_satisfied: float | None
    source: str


class PreviousPeriod(_Model):
    """The same figures for the period a year earlier (year on year)."""

    label: str
    period_start: dt.date
    period_end: dt.date
    homes: int
    stage1_received: int
    stage2_received: int
    stage1_per_1000_homes: float | None
    stage2_per_1000_homes: float | None
    stage1_responses: int
    stage1_within_code: int
    stage1_pct_within_code: float | None
    stage2_responses: int
    stage2_within_code: int
    stage2_pct_within_code: float | None
    responses_with_learning: int
    themes: list[TagCount]
    root_causes: list[TagCount]
    surveyed: int
    satisfied: int
    pct_satisfied: float | None


class LearningFigures(_Model):
    """Learning from complaints in the period: themes, trend, changes, satisfaction.

    Attributes:
        responses_with_learning: Responses issued in the period with learning recorded.
        themes: Those responses by theme, most first (a response may have several).
        root_causes: The same by root cause.
        trend: Per month of the response and theme.
        previous: The period a year earlier.
        changes_done: Service changes done in the period (the first ``exceptions``).
        changes_open: Not done by the as-of date, by due date; ``overdue`` when due before.
        determinations: The Ombudsman's determinations recorded in the period, by finding.
        satisfaction: Each period surveyed within the report's period.
    """

    responses_with_learning: int = 0
    themes: list[TagCount] = []
    root_causes: list[TagCount] = []
    trend: list[ThemeMonth] = []
    previous: PreviousPeriod | None = None
    changes_done: list[ChangeItem] = []
    changes_done_total: int = 0
    changes_open: list[ChangeItem] = []
    changes_open_total: int = 0
    changes_overdue_total: int = 0
    determinations: list[TagCount] = []
    satisfaction: list[SatisfactionItem] = []
    surveyed: int = 0
    satisfied: int = 0
    pct_satisfied: float | None = None


def label(name: str) -> str:
    """A vocabulary entry for people: ``repairs_delays`` -> ``Repairs delays``."""
    return name.replace("_", " ").capitalize()


def trend_columns(figures: LearningFigures) -> list[str]:
    """The themes the trend shows by name, most frequent first, and then the rest."""
    names = [t.name for t in figures.themes][:TREND_THEMES]
    rest = {t.name for t in figures.themes} - set(names)
    return names + ([OTHER_THEMES] if rest else [])


def trend_table(figures: LearningFigures, months: list[str]) -> tuple[list[str],
                                                                      list[list[int]]]:
    """Per month (``YYYY-MM``, every one of the period): responses per trend column.

    Args:
        figures: The learning figures.
        months: The period's months (the report's monthly rows); any month of the trend
            not among them is added in order.

    Returns:
        The months, and for each the counts per column of :func:`trend_columns`.
    """
    columns = trend_columns(figures)
    every = sorted(set(months) | {t.month for t in figures.trend})
    cells = {m: [0] * len(columns) for m in every}
    for point in figures.trend:
        name = point.name if point.name in columns else OTHER_THEMES
        cells[point.month][columns.index(name)] += point.count
    return every, [cells[m] for m in every]
