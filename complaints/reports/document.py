"""The report as a document: headings, paragraphs, tables and charts, for any output format.

``report_document`` lays a :class:`~complaints.reports.model.Report` out once, in the
order a committee paper or an annual complaints report reads; ``render`` turns the blocks
into Markdown or HTML, so the two always say the same thing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from complaints.reports.learning_model import (
    OTHER_THEMES,
    ChangeItem,
    LearningFigures,
    PreviousPeriod,
    TagCount,
    trend_columns,
    trend_table,
)
from complaints.reports.learning_model import label as learning_label
from complaints.reports.model import (
    BreachRow,
    Ch02Basis,
    EvidenceItem,
    Report,
    VolumeRow,
)

__all__ = [
    "Block",
    "Bullets",
    "Chart",
    "Heading",
    "Para",
    "Table",
    "evidence_document",
    "fmt_int",
    "fmt_money",
    "fmt_pct",
    "report_document",
]

#: Short names for the refusal grounds (models.case.ExclusionGround).
GROUND_LABELS: dict[str, str] = {
    "older_than_12_months": "Issue more than 12 months old",
    "legal_proceedings": "Legal proceedings started",
    "previously_considered": "Already considered under the complaints policy",
    "other_policy": "Dealt with under another policy",
    "criminal_matter": "Criminal matter for the police or courts",
    "not_landlord_responsibility": "Not the landlord's responsibility",
    "outside_escalation_window": "Requested after the escalation period",
}

#: How many rows of a breach table to show.
TOP_BREACHES = 10


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


def _num(value: float | int | None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.1f}"
    return f"{int(value):,}"


def _date(d: dt.date) -> str:
    return f"{d.day} {d:%B %Y}"


def _label(name: str) -> str:
    if len(name) <= 3:  # an abbreviation: asb -> ASB
        return name.upper()
    return name.replace("_", " ").capitalize()


def _per_1000(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _of(part: int, whole: int, percent: float | None) -> str:
    return f"{fmt_pct(percent)} ({fmt_int(part)} of {fmt_int(whole)})"


def _volume_table(rows: list[VolumeRow], what: str) -> Table:
    return Table([what, "Received", "Refused (excluded)", "Escalation requested"],
                 [[_label(r.name), fmt_int(r.received), fmt_int(r.excluded),
                   fmt_int(r.escalated)] for r in rows], [False, True, True, True])


def _breach_table(rows: list[BreachRow], what: str, label: bool = False) -> Table:
    shown = rows[:TOP_BREACHES]
    return Table([what, "Stage 1 ack.", "Stage 1 response", "Stage 2 ack.",
                  "Stage 2 response", "Total"],
                 [[_label(r.name) if label else r.name, fmt_int(r.stage1_acknowledgements),
                   fmt_int(r.stage1_responses),
                   fmt_int(r.stage2_acknowledgements), fmt_int(r.stage2_responses),
                   fmt_int(r.total)] for r in shown], [False] + [True] * 5,
                 caption=(f"The {len(shown)} with most breaches of {len(rows)}."
                          if len(rows) > len(shown) else ""))


def report_document(report: Report) -> list[Block]:
    """Lay the report out as blocks, in reading order.

    Args:
        report: The figures.

    Returns:
        The blocks; the evidence pack follows when the report carries one.

    """
    s1, s2 = report.stages
    c1, c2 = report.ch02
    a1, a2 = report.acknowledgements
    limits = report.limits
    actions = report.actions
    actions_done = _of(actions.completed_by_due_date, actions.due_in_period,
                       _sum_pct(actions.completed_by_due_date, actions.due_in_period))
    basis = {Ch02Basis.STRICT: "strict, within Code timescales",
             Ch02Basis.WITH_EXTENSION: "response only, with extension",
             Ch02Basis.BASE: "base timescale"}[report.ch02_basis]
    policies = ", ".join(f"`{p}`" for p in report.policies) or f"`{report.policy}`"
    blocks: list[Block] = [
        Heading(1, f"Complaints performance report: {report.landlord}, {report.period_label}"),
        Para(f"Period {_date(report.period_start)} to {_date(report.period_end)}; policy "
             f"`{report.policy}` (complaints handled under {policies}); figures as at "
             f"{_date(report.as_of)}; "
             f"{fmt_int(report.homes)} homes owned. Time limits (working days): acknowledge "
             f"{limits['stage1_acknowledgement']}, stage 1 response "
             f"{limits['stage1_response']} (+{limits['stage1_extension_cap']}), stage 2 "
             f"acknowledge {limits['stage2_acknowledgement']}, stage 2 response "
             f"{limits['stage2_response']} (+{limits['stage2_extension_cap']})."),
        Heading(2, "Tenant Satisfaction Measures"),
        Table(["Measure", "Stage 1", "Stage 2"], [
            ["CH01 complaints received", fmt_int(report.ch01[0].received),
             fmt_int(report.ch01[1].received)],
            ["CH01 per 1,000 homes", _per_1000(report.ch01[0].per_1000_homes),
             _per_1000(report.ch01[1].per_1000_homes)],
            ["CH02 responses issued", fmt_int(c1.responses), fmt_int(c2.responses)],
            ["CH02 within Code timescales (strict: acknowledgement, response, timely "
             "extensions)",
             _of(c1.within_code, c1.responses, c1.pct_within_code),
             _of(c2.within_code, c2.responses, c2.pct_within_code)],
            ["CH02 within the base response timescale (comparison)",
             _of(c1.within_base, c1.responses, c1.pct_within_base),
             _of(c2.within_base, c2.responses, c2.pct_within_base)],
            ["CH02 within the response timescale with extension (comparison)",
             _of(c1.within_extension, c1.responses, c1.pct_within_extension),
             _of(c2.within_extension, c2.responses, c2.pct_within_extension)],
            [f"**CH02 reported ({basis})**", f"**{fmt_pct(c1.headline_pct)}**",
             f"**{fmt_pct(c2.headline_pct)}**"],
        ], [False, True, True]),
        *_tenure_blocks(report),
        *_late_blocks(report),
        Heading(2, "Summary"),
        Bullets([
            f"{fmt_int(report.complaints_logged)} complaints logged; "
            f"{fmt_int(report.complaints_excluded)} refused under the exclusions; "
            f"{fmt_int(report.complaints_withdrawn)} withdrawn; "
            f"{fmt_int(report.ch01[1].received)} escalated to stage 2.",
            *([f"Of the complaints logged, {fmt_int(report.complaints_imported)} were "
               "imported from the landlord's previous system (complaints import) and are "
               "counted exactly as live ones."] if report.complaints_imported else []),
            f"Not within the Code timescales (strict CH02): stage 1 "
            f"{fmt_pct(_complement(c1.pct_within_code))}, stage 2 "
            f"{fmt_pct(_complement(c2.pct_within_code))}; listed below with the reason.",
            f"Timescale extended: stage 1 {_of(s1.extended, s1.responses, s1.pct_extended)}, "
            f"stage 2 {_of(s2.extended, s2.responses, s2.pct_extended)}.",
            f"Acknowledged within the time limit: stage 1 "
            f"{_of(a1.within_limit, a1.acknowledged, a1.pct_within_limit)}, stage 2 "
            f"{_of(a2.within_limit, a2.acknowledged, a2.pct_within_limit)}.",
            f"Resolved at stage 1: {fmt_pct(report.resolution.pct_stage1)}; at stage 2: "
            f"{fmt_pct(report.resolution.pct_stage2)}.",
            f"Upheld or partly upheld: stage 1 "
            f"{fmt_pct(_sum_pct(s1.upheld + s1.partly_upheld, s1.responses))}, stage 2 "
            f"{fmt_pct(_sum_pct(s2.upheld + s2.partly_upheld, s2.responses))}.",
            f"Remedies offered: {fmt_int(sum(r.offered for r in report.remedies))}, "
            f"financial remedies {fmt_money(report.remedies_total_pence)} in "
            f"{fmt_int(report.responses_with_financial_remedy)} responses.",
            f"Referred to the Housing Ombudsman: {fmt_int(report.ombudsman.referred)}.",
            _payments_summary(report),
            _orders_summary(report),
        ]),
        Heading(2, "Complaints received"),
        Chart("monthly_volumes", "Stage 1 complaints received and stage 2 escalations, "
                                 "by month"),
        Table(["Month", "Stage 1 received", "Stage 2 received", "Stage 1 responses",
               "On time (base)", "On time (with ext.)", "Stage 2 responses",
               "On time (base)", "On time (with ext.)"],
              [[m.month, fmt_int(m.stage1_received), fmt_int(m.stage2_received),
                fmt_int(m.stage1_responses), fmt_int(m.stage1_within_base),
                fmt_int(m.stage1_within_extension), fmt_int(m.stage2_responses),
                fmt_int(m.stage2_within_base), fmt_int(m.stage2_within_extension)]
               for m in report.monthly], [False] + [True] * 8),
        Heading(3, "By channel"),
        _volume_table(report.channels, "Channel"),
        Heading(3, "By category"),
        _volume_table(report.categories, "Category"),
        Heading(2, "Acknowledgements"),
        Table(["Stage", "Acknowledged", "Within the limit", "%",
               f"Unacknowledged and overdue at {report.as_of.isoformat()}"],
              [[str(a.stage), fmt_int(a.acknowledged), fmt_int(a.within_limit),
                fmt_pct(a.pct_within_limit), fmt_int(a.unacknowledged_overdue)]
               for a in report.acknowledgements], [False, True, True, True, True]),
        Heading(2, "Responses and time taken"),
        Chart("on_time", "Responses issued on time each month, per stage"),
        Chart("working_days", "Working days taken to respond, per stage: lighter bars "
                              "are past the base time limit (dashed), the dotted line "
                              "is the limit with the longest extension allowed"),
        Table(["Stage", "Responses", "Extended", "Met the extended date",
               "Late against the date in force", "Median WD", "90th percentile WD",
               "Mean WD", "Longest WD"],
              [[str(s.stage), fmt_int(s.responses), _of(s.extended, s.responses,
                                                         s.pct_extended),
                fmt_int(s.extended_within_new_date), fmt_int(s.late_against_final_due),
                _num(s.median_working_days), _num(s.p90_working_days),
                _num(s.mean_working_days), _num(s.max_working_days)]
               for s in report.stages], [False] + [True] * 8),
        Heading(2, "Outcomes"),
        Chart("outcomes", "Decisions at each stage"),
        Table(["Stage", "Upheld", "Partly upheld", "Not upheld"],
              [[str(s.stage), f"{fmt_int(s.upheld)} ({fmt_pct(s.pct_upheld)})",
                f"{fmt_int(s.partly_upheld)} ({fmt_pct(s.pct_partly_upheld)})",
                f"{fmt_int(s.not_upheld)} ({fmt_pct(s.pct_not_upheld)})"]
               for s in report.stages], [False, True, True, True]),
        Para(f"Resolved at stage 1: {fmt_int(report.resolution.resolved_stage1)} "
             f"({fmt_pct(report.resolution.pct_stage1)}); resolved at stage 2: "
             f"{fmt_int(report.resolution.resolved_stage2)} "
             f"({fmt_pct(report.resolution.pct_stage2)}); stage 1 responses in the period "
             f"later escalated: {fmt_int(report.resolution.escalated_after_stage1)}."),
        Heading(2, "Extensions and their reasons"),
    ]
    if report.extension_reasons:
        blocks.append(Table(["Stage", "Reason given", "Extensions"],
                            [[str(r.stage), r.reason[:160], fmt_int(r.extensions)]
                             for r in report.extension_reasons], [False, False, True],
                            caption="The ten most frequent reasons per stage, for "
                                    "extensions granted in the period."))
    else:
        blocks.append(Para("No extensions were granted in the period."))
    blocks.append(Heading(2, "Complaints and escalations refused (Code 8.1(b))"))
    for refusal in report.refusals:
        what = ("Complaints refused under the exclusions" if refusal.kind == "complaint"
                else "Escalations to stage 2 refused")
        blocks.append(Para(f"{what}: {fmt_int(refusal.cases)}."))
        if refusal.by_ground:
            blocks.append(Table(["Reason", "Cases"], [
                [GROUND_LABELS.get(g, _label(g)), fmt_int(n)]
                for g, n in refusal.by_ground.items()], [False, True]))
    blocks += [
        Heading(2, "Remedies"),
        Table(["Remedy", "Offered", "Financial value"],
              [[_label(r.kind), fmt_int(r.offered),
                fmt_money(r.amount_pence) if r.amount_pence else "-"]
               for r in report.remedies]
              + [["**Total**", f"**{fmt_int(sum(r.offered for r in report.remedies))}**",
                  f"**{fmt_money(report.remedies_total_pence)}**"]], [False, True, True]),
        Heading(3, "Remedy payments"),
        *_payment_blocks(report),
        Heading(2, "Outstanding actions"),
        Para(f"Actions due in the period: {fmt_int(actions.due_in_period)}, completed by "
             f"the date promised: {actions_done}"
             f". Overdue at {report.as_of.isoformat()}: {fmt_int(actions.overdue_at_as_of)}."),
    ]
    if report.actions.overdue:
        blocks.append(Table(["Reference", "Action", "Stage", "Due", "Owner"], [
            [a.reference, a.action_id, str(a.stage), a.due_by.isoformat(), a.owner or "-"]
            for a in report.actions.overdue], [False, False, True, False, False],
            caption=_listed(len(report.actions.overdue), report.actions.overdue_at_as_of)))
    blocks += [*_service_request_blocks(report),
        Heading(2, "Housing Ombudsman"),
        Para(f"Cases referred to the Housing Ombudsman in the period: "
             f"{fmt_int(report.ombudsman.referred)}"
             + (f" ({', '.join(report.ombudsman.references)}"
                f"{_more(len(report.ombudsman.references), report.ombudsman.referred)})."
                if report.ombudsman.references else ".")),
        Heading(3, "Ombudsman orders and instructions"),
        *_order_blocks(report),
        Heading(2, "Breaches by team and handler"),
    ]
    if report.breaches_by_team:
        blocks += [_breach_table(report.breaches_by_team, "Team (category)", label=True),
                   _breach_table(report.breaches_by_handler, "Handler")]
    else:
        blocks.append(Para("No time limit was missed in the period."))
    blocks += _learning_blocks(report)
    blocks += _submission_blocks(report)
    blocks += [Heading(2, "Method"), Bullets(list(report.method))]
    if report.evidence is not None:
        blocks += evidence_document(report.evidence, report, level=2)
    return blocks


def _submission_blocks(report: Report) -> list[Block]:
    """The Ombudsman's annual submission: its main fields and deadline (reporting years)."""
    from complaints.reports.submission import (
        SubmissionError,
        build_submission,
        is_reporting_year,
        summary_rows,
    )

    if not is_reporting_year(report):
        return []  # A quarter or a half-year has no annual submission.
    heading = Heading(2, "The Ombudsman's annual submission")
    try:
        made = build_submission(report)
    except SubmissionError as exc:
        return [heading, Para(f"Not worked out: {exc}.")]
    return [heading, Para(f"{made.deadline.statement} The data for its form, with each Code "
                          "provision's status from the policy check: `complaints report "
                          f"submission --year {made.reporting_year}` (json or csv); the "
                          "published report's and the governing body's response's "
                          "addresses are filled in by the landlord (Code 8.2)."),
            Table(["Field", "Value"], [list(row) for row in summary_rows(made)],
                  [False, True])]


def _learning_blocks(report: Report) -> list[Block]:
    """Learning from complaints, year on year, what changed, satisfaction (Code 8.1, 9).

    Themes and root causes with their trend (and charts), the same days a year earlier,
    the service changes made, the Ombudsman's determinations and orders, customer
    satisfaction, and the place for the governing body's response (8.2).
    """
    figures = report.learning
    if figures is None:
        return []
    p = figures.previous
    now_label = report.period_label
    before_label = ((p.label or f"{p.period_start.isoformat()} to {p.period_end.isoformat()}")
                    if p is not None else "A year earlier")
    responses = sum(c.responses for c in report.ch02)
    learnt = figures.responses_with_learning
    blocks: list[Block] = [
        Heading(2, "Learning from complaints (Code 8.1, 9)"),
        Para(f"Responses issued in the period with their learning recorded (themes, root "
             f"causes, lessons): {_of(learnt, responses, _sum_pct(learnt, responses))}."),
    ]
    if figures.themes:
        months, counts = trend_table(figures, [m.month for m in report.monthly])
        columns = trend_columns(figures)
        blocks += [
            Chart("learning_themes", f"Responses by theme: {now_label} beside {before_label}"),
            _tags_table("Theme", figures.themes, p.themes if p else [], now_label,
                        before_label),
            Heading(3, "Root causes"),
            _tags_table("Root cause", figures.root_causes, p.root_causes if p else [],
                        now_label, before_label),
            Heading(3, "Themes by month"),
            Chart("learning_trend", "Responses by theme, per month of the response"),
            Table(["Month", *(c if c == OTHER_THEMES else learning_label(c) for c in columns)],
                  [[m, *(fmt_int(n) for n in row)] for m, row in zip(months, counts,
                                                                      strict=True)],
                  [False] + [True] * len(columns),
                  caption="A response filed under several themes counts under each."),
        ]
    else:
        blocks.append(Para("No themes were recorded against the responses issued in the "
                           "period (complaints learning record)."))
    if p is not None:
        blocks += _year_on_year(report, figures, p, now_label, before_label)
    blocks += _changes_blocks(report, figures)
    blocks.append(Heading(2, "Ombudsman determinations and orders"))
    blocks.append(Table(["Finding", "Determinations"],
                        [[learning_label(d.name), fmt_int(d.count)]
                         for d in figures.determinations], [False, True])
                  if figures.determinations else
                  Para("No determination of the Ombudsman was recorded in the period."))
    blocks.append(Para(_orders_summary(report) + " Each order is listed under \"Ombudsman "
                                                 "orders and instructions\" above."))
    blocks += _satisfaction_blocks(figures)
    blocks += [Heading(2, "Governing body's response"),
               Para("**To be completed by the governing body.** This report goes to the "
                    "landlord's governing body, and is published with the governing body's "
                    "response to it alongside (Code 8.2). Insert that response here before "
                    "publishing.")]
    return blocks


def _tags_table(what: str, now: list[TagCount], before: list[TagCount], now_label: str,
                before_label: str) -> Table:
    """Counts by theme (or root cause): this period, and a year earlier."""
    counts = {t.name: t.count for t in now}
    earlier = {t.name: t.count for t in before}
    names = [t.name for t in now] + [n for n in earlier if n not in counts]
    return Table([what, now_label, before_label],
                 [[learning_label(n), fmt_int(counts.get(n, 0)), fmt_int(earlier.get(n, 0))]
                  for n in names], [False, True, True])


def _diff(now: float | int | None, before: float | int | None, unit: str = "") -> str:
    """The change from a year earlier, signed, or n/a."""
    if now is None or before is None:
        return "n/a"
    diff = now - before
    return (f"{diff:+.1f}" if isinstance(diff, float) else f"{diff:+,}") + unit


def _year_on_year(report: Report, figures: LearningFigures, p: PreviousPeriod,
                  now_label: str, before_label: str) -> list[Block]:
    """This period beside the same days a year earlier, counted by the same rules."""
    (a, b), (c1, c2) = report.ch01, report.ch02
    learnt = _sum_pct(figures.responses_with_learning, c1.responses + c2.responses)
    learnt_before = _sum_pct(p.responses_with_learning,
                             p.stage1_responses + p.stage2_responses)
    points = " points"
    rows = [
        ["Homes (for CH01 per 1,000)", fmt_int(report.homes), fmt_int(p.homes),
         _diff(report.homes, p.homes)],
        ["CH01 stage 1 complaints received", fmt_int(a.received), fmt_int(p.stage1_received),
         _diff(a.received, p.stage1_received)],
        ["CH01 stage 1 per 1,000 homes", _per_1000(a.per_1000_homes),
         _per_1000(p.stage1_per_1000_homes), "-"],
        ["CH01 stage 2 complaints received", fmt_int(b.received), fmt_int(p.stage2_received),
         _diff(b.received, p.stage2_received)],
        ["CH01 stage 2 per 1,000 homes", _per_1000(b.per_1000_homes),
         _per_1000(p.stage2_per_1000_homes), "-"],
        ["CH02 stage 1 within Code timescales (strict)", fmt_pct(c1.pct_within_code),
         fmt_pct(p.stage1_pct_within_code),
         _diff(c1.pct_within_code, p.stage1_pct_within_code, points)],
        ["CH02 stage 2 within Code timescales (strict)", fmt_pct(c2.pct_within_code),
         fmt_pct(p.stage2_pct_within_code),
         _diff(c2.pct_within_code, p.stage2_pct_within_code, points)],
        ["Responses with learning recorded", fmt_pct(learnt), fmt_pct(learnt_before),
         _diff(learnt, learnt_before, points)],
        ["Satisfied with complaint handling", fmt_pct(figures.pct_satisfied),
         fmt_pct(p.pct_satisfied), _diff(figures.pct_satisfied, p.pct_satisfied, points)],
    ]
    return [Heading(2, "Year on year"),
            Para(f"{now_label} beside the same days a year earlier ({before_label}: "
                 f"{_date(p.period_start)} to {_date(p.period_end)}), counted by the same "
                 "rules."),
            Table(["Measure", now_label, before_label, "Change"], rows,
                  [False, True, True, True])]


def _change_rows(items: list[ChangeItem], done: bool) -> list[list[str]]:
    return [[str(c.id), (c.done_on or c.due_on).isoformat() if done else
             c.due_on.isoformat() + (" **overdue**" if c.overdue else ""),
             c.owner, learning_label(c.theme) if c.theme else "-", c.reference or "-",
             c.description[:200]] for c in items]


def _changes_blocks(report: Report, figures: LearningFigures) -> list[Block]:
    """Service changes done in the period, and those still open (overdue flagged)."""
    blocks: list[Block] = [
        Heading(2, "What changed as a result"),
        Para(f"Service changes made because of complaints, done in the period: "
             f"{fmt_int(figures.changes_done_total)}; open at {report.as_of.isoformat()}: "
             f"{fmt_int(figures.changes_open_total)}, of which overdue: "
             f"{fmt_int(figures.changes_overdue_total)}.")]
    rest = ["Owner", "Theme", "Complaint", "Change"]
    numeric = [True, False, False, False, False, False]
    if figures.changes_done:
        blocks.append(Table(["Id", "Done", *rest], _change_rows(figures.changes_done, True),
                            numeric, caption=_listed(len(figures.changes_done),
                                                     figures.changes_done_total)))
    if figures.changes_open:
        blocks += [Heading(3, "Still to do"),
                   Table(["Id", "Due", *rest], _change_rows(figures.changes_open, False),
                         numeric, caption=_listed(len(figures.changes_open),
                                                  figures.changes_open_total))]
    return blocks


def _satisfaction_blocks(figures: LearningFigures) -> list[Block]:
    """Customer satisfaction with complaint handling, per period surveyed and in all."""
    blocks: list[Block] = [Heading(2, "Customer satisfaction with complaint handling")]
    if not figures.satisfaction:
        return blocks + [Para("No satisfaction results were entered for the period "
                              "(complaints satisfaction record).")]
    rows = [[f"{s.period_start.isoformat()} to {s.period_end.isoformat()}",
             fmt_int(s.surveyed), fmt_int(s.satisfied), fmt_pct(s.pct_satisfied),
             s.source[:160] or "-"] for s in figures.satisfaction]
    rows.append(["**All**", f"**{fmt_int(figures.surveyed)}**",
                 f"**{fmt_int(figures.satisfied)}**",
                 f"**{fmt_pct(figures.pct_satisfied)}**", ""])
    return blocks + [Table(["Period surveyed", "Surveyed", "Satisfied", "%", "Source"], rows,
                           [False, True, True, True, False])]


def _service_request_blocks(report: Report) -> list[Block]:
    """Service requests (Code 1.4, 1.5): volumes, resolution, conversion, themes."""
    figures = report.service_requests
    if figures is None:
        return []
    rate = None if figures.conversion_rate is None else 100 * figures.conversion_rate
    blocks: list[Block] = [
        Heading(2, "Service requests (Code 1.4, 1.5)"),
        Para(f"Service requests logged in the period: {fmt_int(figures.logged)}; resolved: "
             f"{fmt_int(figures.resolved)} ({fmt_int(figures.resolved_within_target)} by "
             f"their target date); open at the end of the period: {fmt_int(figures.open)}, "
             f"of which past their target date: {fmt_int(figures.overdue)}. Converted to a "
             f"complaint because the resident was dissatisfied: {fmt_int(figures.converted)}"
             f" ({fmt_pct(rate)} of those logged). Residents told how to "
             f"complain (1.6): {fmt_int(figures.told_how_to_complain)}.")]
    if figures.themes:
        blocks.append(Table(["Theme (category)", "Logged"],
                            [[t.category, fmt_int(t.count)] for t in figures.themes],
                            [False, True]))
    return blocks


def _tenure_blocks(report: Report) -> list[Block]:
    """CH01 and CH02 per tenure, as the Regulator publishes them (LCRA, LCHO)."""
    if not report.tenures:
        return []
    names = {"lcra": "LCRA", "lcho": "LCHO", "other": "Other tenure"}
    rows = [[names.get(t.tenure, t.tenure.capitalize()),
             fmt_int(t.homes) if t.homes is not None else "-",
             f"{fmt_int(t.ch01[0].received)} ({_per_1000(t.ch01[0].per_1000_homes)})",
             f"{fmt_int(t.ch01[1].received)} ({_per_1000(t.ch01[1].per_1000_homes)})",
             _of(t.ch02[0].within_code, t.ch02[0].responses, t.ch02[0].pct_within_code),
             _of(t.ch02[1].within_code, t.ch02[1].responses, t.ch02[1].pct_within_code)]
            for t in report.tenures]
    return [Heading(3, "By tenure"),
            Table(["Tenure", "Homes at 31 March", "CH01(1) (per 1,000)",
                   "CH01(2) (per 1,000)", "CH02(1) strict", "CH02(2) strict"], rows,
                  [False, True, True, True, True, True])]


def _late_blocks(report: Report) -> list[Block]:
    """The responses that count as late for CH02, each with the reason (disclosure)."""
    if not report.ch02_late_total:
        return [Para("Every response issued in the period was within the Code timescales.")]
    return [
        Heading(3, "Responses not within the Code timescales (CH02)"),
        Table(["Reference", "Stage", "Responded", "Why"],
              [[r.reference, str(r.stage), r.responded_on.isoformat(), r.reason]
               for r in report.ch02_late], [False, True, False, False],
              caption=_listed(len(report.ch02_late), report.ch02_late_total))]


def _payments_summary(report: Report) -> str:
    """The summary's line on financial remedies paid (7.3)."""
    p = report.remedy_payments
    return (f"Financial remedies paid: {fmt_int(p.paid)} of {fmt_int(p.offered)} offered "
            f"({fmt_money(p.amount_paid_pence)} of {fmt_money(p.amount_offered_pence)}); "
            f"{fmt_int(p.paid_late)} paid late; {fmt_int(p.unpaid_overdue)} unpaid past the "
            "date promised.")


def _orders_summary(report: Report) -> str:
    """The summary's line on the Ombudsman's orders and instructions."""
    o = report.ombudsman_orders
    return (f"Ombudsman orders and instructions: {fmt_int(o.made)} recorded; "
            f"{fmt_int(o.complied_on_time)} complied with on time, {fmt_int(o.complied_late)} "
            f"late; {fmt_int(o.outstanding_overdue + o.outstanding_not_yet_due)} outstanding "
            f"({fmt_int(o.outstanding_overdue)} overdue).")


def _payment_blocks(report: Report) -> list[Block]:
    """Financial remedies offered in the period and what became of each payment (7.3)."""
    p = report.remedy_payments
    if not p.offered:
        return [Para("No financial remedy was offered in the period.")]
    blocks: list[Block] = [Table(["Financial remedies", "Remedies", "Amount"], [
        ["Offered", fmt_int(p.offered), fmt_money(p.amount_offered_pence)],
        ["Paid", fmt_int(p.paid), fmt_money(p.amount_paid_pence)],
        ["Paid after the date promised", fmt_int(p.paid_late), "-"],
        [f"Unpaid, past the date promised at {report.as_of.isoformat()}",
         fmt_int(p.unpaid_overdue), "-"],
        ["Unpaid, not yet due", fmt_int(p.unpaid_not_yet_due), "-"],
        ["Unpaid, no date promised", fmt_int(p.unpaid_no_date), "-"],
    ], [False, True, True])]
    if p.overdue:
        blocks.append(Table(["Reference", "Stage", "Remedy", "Promised by", "Amount"], [
            [e.reference, str(e.stage), str(e.remedy), e.due_by.isoformat(),
             fmt_money(e.amount_pence) if e.amount_pence is not None else "-"]
            for e in p.overdue], [False, True, True, False, True],
            caption=_listed(len(p.overdue), p.unpaid_overdue)))
    return blocks


def _order_blocks(report: Report) -> list[Block]:
    """The Ombudsman's orders and instructions recorded in the period, to compliance."""
    o = report.ombudsman_orders
    if not o.made:
        return [Para("No Ombudsman order or instruction was recorded in the period.")]
    blocks: list[Block] = [Table(["Orders and instructions", "Count"], [
        ["Recorded (orders of determinations)", fmt_int(o.from_determinations)],
        ["Recorded (instructions)", fmt_int(o.instructions)],
        ["Complied with on time", fmt_int(o.complied_on_time)],
        ["Complied with late", fmt_int(o.complied_late)],
        [f"Outstanding at {report.as_of.isoformat()}, not yet due",
         fmt_int(o.outstanding_not_yet_due)],
        [f"Outstanding at {report.as_of.isoformat()}, overdue", fmt_int(o.outstanding_overdue)],
        ["No longer tracked (case withdrawn)", fmt_int(o.stopped)],
    ], [False, True])]
    if o.overdue:
        blocks.append(Table(["Reference", "Order", "Due", "From"], [
            [e.reference, e.order_id, e.due_by.isoformat(), e.what] for e in o.overdue],
            [False, False, False, False],
            caption=_listed(len(o.overdue), o.outstanding_overdue)))
    return blocks


def _complement(percent: float | None) -> float | None:
    return None if percent is None else round(100 - percent, 1)


def _sum_pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def _more(shown: int, total: int) -> str:
    return f" and {total - shown:,} more" if total > shown else ""


def _listed(shown: int, total: int) -> str:
    return f"The first {shown:,} of {total:,}." if total > shown else ""


def evidence_document(items: list[EvidenceItem], report: Report, level: int = 1) -> list[Block]:
    """Lay the self-assessment evidence pack out as blocks.

    Args:
        items: The evidence, one item per provision.
        report: The report it belongs to (landlord, period, as-of date).
        level: The heading level of the pack's title.

    Returns:
        The blocks: a summary table, then each provision with its exceptions.

    """
    blocks: list[Block] = [
        Heading(level, f"Self-assessment evidence: {report.landlord}, {report.period_label}"),
        Para(f"Drawn from the complaint records for {_date(report.period_start)} to "
             f"{_date(report.period_end)}, as at {_date(report.as_of)}, to support the "
             "annual self-assessment against the Complaint Handling Code."),
        Table(["Code", "Provision", "Cases", "Met", "%", "Exceptions"],
              [[i.provision, i.title, fmt_int(i.cases), fmt_int(i.met), fmt_pct(i.pct_met),
                fmt_int(i.exceptions_total)] for i in items],
              [False, False, True, True, True, True]),
    ]
    for item in items:
        blocks += [Heading(level + 1, f"{item.provision} {item.title}"),
                   Para(f"{item.requirement} Evidence: {item.measure}: "
                        f"{_of(item.met, item.cases, item.pct_met)} met.")]
        if item.exceptions:
            blocks.append(Table(["Reference", "Exception"],
                                [[e.reference, e.detail] for e in item.exceptions],
                                [False, False],
                                caption=_listed(len(item.exceptions), item.exceptions_total)))
    return blocks
