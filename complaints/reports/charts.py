"""Charts for the HTML report, drawn with matplotlib (Agg) as inline SVG.

Each chart is drawn from the report's figures only (never from the database), as an SVG
string with its text kept as text and deterministic ids (``svg.hashsalt``), so the same
report always gives the same page.
"""

from __future__ import annotations

import calendar
import io
from collections.abc import Callable
from typing import Any

from complaints.reports.learning_model import OTHER_THEMES, trend_columns, trend_table
from complaints.reports.learning_model import label as learning_label
from complaints.reports.model import Report

__all__ = ["CHARTS", "draw_all"]

STAGE1, STAGE2 = "#005ea5", "#d4351c"
STAGE1_LIGHT, STAGE2_LIGHT = "#8fb8dc", "#f0a090"
OUTCOME_COLOURS = ("#d4351c", "#f47738", "#00703c")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        "svg.fonttype": "none", "font.size": 9, "axes.spines.top": False,
        "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
        "axes.axisbelow": True, "legend.frameon": False,
        "font.family": ["DejaVu Sans", "sans-serif"],
    })
    return plt


def _svg(figure: Any, name: str) -> str:
    plt = _pyplot()
    with plt.rc_context({"svg.hashsalt": f"complaints-{name}"}):
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and doctype: inline SVG


def _month_labels(report: Report) -> list[str]:
    import calendar

    return [f"{calendar.month_abbr[int(m.month[5:])]}\n{m.month[2:4]}" for m in report.monthly]


def monthly_volumes(report: Report) -> str:
    """Grouped bars: stage 1 complaints received and stage 2 escalations per month."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(9, 3.2))
    x = range(len(report.monthly))
    width = 0.4
    stage1 = [m.stage1_received for m in report.monthly]
    stage2 = [m.stage2_received for m in report.monthly]
    bars1 = axes.bar([i - width / 2 for i in x], stage1, width, color=STAGE1,
                     label="Stage 1 received")
    bars2 = axes.bar([i + width / 2 for i in x], stage2, width, color=STAGE2,
                     label="Stage 2 escalations")
    if len(report.monthly) <= 14:
        axes.bar_label(bars1, fontsize=7, padding=1)
        axes.bar_label(bars2, fontsize=7, padding=1)
    axes.set_xticks(list(x), _month_labels(report))
    axes.set_ylabel("Complaints")
    axes.legend(loc="lower left", bbox_to_anchor=(0, 1.02), ncols=2)
    axes.grid(axis="x", visible=False)
    return _svg(figure, "monthly_volumes")


def on_time(report: Report) -> str:
    """Lines: % of responses within the Code each month, per stage, strict and response-only."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(9, 3.2))
    x = list(range(len(report.monthly)))

    def rate(part: str, whole: str) -> list[float]:
        values: list[float] = []
        for m in report.monthly:
            n = getattr(m, whole)
            values.append(100 * getattr(m, part) / n if n else float("nan"))
        return values

    # The published CH02 (strict: the whole chain within the Code) solid, and the
    # response-only figure (within the extended date) dashed beside it for comparison.
    axes.plot(x, rate("stage1_within_code", "stage1_responses"), color=STAGE1,
              marker="o", label="Stage 1 (CH02, strict)")
    axes.plot(x, rate("stage1_within_extension", "stage1_responses"), color=STAGE1_LIGHT,
              linestyle="--", marker=".", label="Stage 1 (response only)")
    axes.plot(x, rate("stage2_within_code", "stage2_responses"), color=STAGE2,
              marker="s", label="Stage 2 (CH02, strict)")
    axes.plot(x, rate("stage2_within_extension", "stage2_responses"), color=STAGE2_LIGHT,
              linestyle="--", marker=".", label="Stage 2 (response only)")
    axes.set_ylim(0, 105)
    axes.set_ylabel("% on time")
    axes.set_xticks(x, _month_labels(report))
    axes.legend(loc="lower left", bbox_to_anchor=(0, 1.02), ncols=4, fontsize=8)
    return _svg(figure, "on_time")


def working_days(report: Report) -> str:
    """Histograms per stage of working days to respond, with the time limits marked."""
    plt = _pyplot()
    figure, panes = plt.subplots(1, 2, figsize=(9, 3.0))
    for stage, pane, colour in ((1, panes[0], STAGE1), (2, panes[1], STAGE2)):
        counts = [(w.working_days, w.responses) for w in report.working_days
                  if w.stage == stage]
        limit = report.limits[f"stage{stage}_response"]
        cap = limit + report.limits[f"stage{stage}_extension_cap"]
        if counts:
            days, n = zip(*counts, strict=True)
            pane.bar(days, n, width=0.85, color=[colour if d <= limit else
                                                 (STAGE1_LIGHT if stage == 1 else STAGE2_LIGHT)
                                                 for d in days])
        pane.axvline(limit + 0.5, color="#1b1f24", linestyle="--", linewidth=1)
        pane.axvline(cap + 0.5, color="#6f777b", linestyle=":", linewidth=1)
        pane.text(limit + 0.7, 0.97, f"{limit} WD", transform=pane.get_xaxis_transform(),
                  va="top", fontsize=7)
        pane.text(cap + 0.7, 0.97, f"+{cap - limit} ext.",
                  transform=pane.get_xaxis_transform(), va="top", fontsize=7)
        pane.set_title(f"Stage {stage}", fontsize=9)
        pane.set_xlabel("Working days to respond")
        pane.grid(axis="x", visible=False)
    panes[0].set_ylabel("Responses")
    return _svg(figure, "working_days")


def outcomes(report: Report) -> str:
    """Stacked horizontal bars: upheld / partly / not upheld shares per stage."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(9, 1.8))
    labels = ("Upheld", "Partly upheld", "Not upheld")
    for row, stage in enumerate(report.stages):
        values = (stage.upheld, stage.partly_upheld, stage.not_upheld)
        total = sum(values)
        left = 0.0
        for value, label, colour in zip(values, labels, OUTCOME_COLOURS, strict=True):
            share = 100 * value / total if total else 0.0
            axes.barh(row, share, left=left, color=colour, height=0.6,
                      label=label if row == 0 else None)
            if share >= 6:
                axes.text(left + share / 2, row, f"{share:.0f}%", ha="center", va="center",
                          color="white", fontsize=8)
            left += share
    axes.set_yticks(range(len(report.stages)),
                    [f"Stage {s.stage} ({s.responses:,})" for s in report.stages])
    axes.invert_yaxis()
    axes.set_xlim(0, 100)
    axes.set_xlabel("% of responses issued in the period")
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.45), ncols=3)
    axes.grid(visible=False)
    return _svg(figure, "outcomes")


def learning_themes(report: Report) -> str:
    """Horizontal bars: responses per theme in the period, beside the year before."""
    figures = report.learning
    if figures is None or not figures.themes:
        return ""  # The document shows no such chart then.
    plt = _pyplot()
    names = [t.name for t in figures.themes]
    earlier = {t.name: t.count for t in figures.previous.themes} if figures.previous else {}
    figure, axes = plt.subplots(figsize=(9, 0.45 * len(names) + 1.0))
    y = range(len(names))
    bars = axes.barh([i - 0.19 for i in y], [t.count for t in figures.themes], 0.38,
                     color=STAGE1, label=report.period_label)
    axes.barh([i + 0.19 for i in y], [earlier.get(n, 0) for n in names], 0.38,
              color=STAGE1_LIGHT, label=(figures.previous.label if figures.previous
                                         and figures.previous.label else "A year earlier"))
    axes.bar_label(bars, fontsize=7, padding=2)
    axes.set_yticks(list(y), [learning_label(n) for n in names])
    axes.invert_yaxis()
    axes.set_xlabel("Responses")
    axes.xaxis.get_major_locator().set_params(integer=True)  # whole responses
    axes.legend(loc="lower left", bbox_to_anchor=(0, 1.02), ncols=2)
    axes.grid(axis="y", visible=False)
    return _svg(figure, "learning_themes")


def learning_trend(report: Report) -> str:
    """Stacked bars: responses per month by theme (the most frequent by name)."""
    figures = report.learning
    if figures is None or not figures.themes:
        return ""
    plt = _pyplot()
    months, rows = trend_table(figures, [m.month for m in report.monthly])
    columns = trend_columns(figures)
    palette = (STAGE1, STAGE2, "#00703c", "#f47738", "#4c2c92", "#b58840", "#6f777b")
    figure, axes = plt.subplots(figsize=(9, 3.2))
    x = list(range(len(months)))
    bottom = [0] * len(months)
    for index, column in enumerate(columns):
        values = [row[index] for row in rows]
        axes.bar(x, values, 0.7, bottom=bottom, color=palette[index % len(palette)],
                 label=column if column == OTHER_THEMES else learning_label(column))
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axes.set_xticks(x, [f"{calendar.month_abbr[int(m[5:])]}\n{m[2:4]}" for m in months])
    axes.set_ylabel("Responses")
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.legend(loc="lower left", bbox_to_anchor=(0, 1.02), ncols=4, fontsize=8)
    axes.grid(axis="x", visible=False)
    return _svg(figure, "learning_trend")


#: The charts the report document refers to by name.
CHARTS: dict[str, Callable[[Report], str]] = {
    "monthly_volumes": monthly_volumes, "on_time": on_time, "working_days": working_days,
    "outcomes": outcomes, "learning_themes": learning_themes, "learning_trend": learning_trend,
}


def draw_all(report: Report) -> dict[str, str]:
    """Draw every chart of ``report`` as inline SVG, by name."""
    return {name: draw(report) for name, draw in CHARTS.items()}
