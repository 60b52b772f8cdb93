"""The report's later sections, each a function returning its blocks.

The learning from complaints (themes and root causes, year on year, service changes,
determinations, satisfaction), the Ombudsman's annual submission, service requests, the
figures by tenure, the late responses, remedy payments and Ombudsman orders, with the
summary lines on payments and orders. :func:`complaints.reports.document.report_document`
puts them in reading order.
"""

from __future__ import annotations

from complaints.reports.blocks import (
    Block,
    Chart,
    Heading,
    Para,
    Table,
    fmt_int,
    fmt_money,
    fmt_pct,
    listed,
    long_date,
    per_1000,
    share_of,
    sum_pct,
)
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
from complaints.reports.model import Report


def submission_blocks(report: Report) -> list[Block]:
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


def learning_blocks(report: Report) -> list[Block]:
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
             f"causes, lessons): {share_of(learnt, responses, sum_pct(learnt, responses))}."),
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
    blocks.append(Para(orders_summary(report) + " Each order is listed under \"Ombudsman "
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
    learnt = sum_pct(figures.responses_with_learning, c1.responses + c2.responses)
    learnt_before = sum_pct(p.responses_with_learning,
                            p.stage1_responses + p.stage2_responses)
    points = " points"
    rows = [
        ["Homes (for CH01 per 1,000)", fmt_int(report.homes), fmt_int(p.homes),
         _diff(report.homes, p.homes)],
        ["CH01 stage 1 complaints received", fmt_int(a.received), fmt_int(p.stage1_received),
         _diff(a.received, p.stage1_received)],
        ["CH01 stage 1 per 1,000 homes", per_1000(a.per_1000_homes),
         per_1000(p.stage1_per_1000_homes), "-"],
        ["CH01 stage 2 complaints received", fmt_int(b.received), fmt_int(p.stage2_received),
         _diff(b.received, p.stage2_received)],
        ["CH01 stage 2 per 1,000 homes", per_1000(b.per_1000_homes),
         per_1000(p.stage2_per_1000_homes), "-"],
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
                 f"{long_date(p.period_start)} to {long_date(p.period_end)}), counted by the same "
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
                            numeric, caption=listed(len(figures.changes_done),
                                                     figures.changes_done_total)))
    if figures.changes_open:
        blocks += [Heading(3, "Still to do"),
                   Table(["Id", "Due", *rest], _change_rows(figures.changes_open, False),
                         numeric, caption=listed(len(figures.changes_open),
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


def service_request_blocks(report: Report) -> list[Block]:
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


def tenure_blocks(report: Report) -> list[Block]:
    """CH01 and CH02 per tenure, as the Regulator publishes them (LCRA, LCHO)."""
    if not report.tenures:
        return []
    names = {"lcra": "LCRA", "lcho": "LCHO", "other": "Other tenure"}
    rows = [[names.get(t.tenure, t.tenure.capitalize()),
             fmt_int(t.homes) if t.homes is not None else "-",
             f"{fmt_int(t.ch01[0].received)} ({per_1000(t.ch01[0].per_1000_homes)})",
             f"{fmt_int(t.ch01[1].received)} ({per_1000(t.ch01[1].per_1000_homes)})",
             share_of(t.ch02[0].within_code, t.ch02[0].responses, t.ch02[0].pct_within_code),
             share_of(t.ch02[1].within_code, t.ch02[1].responses, t.ch02[1].pct_within_code)]
            for t in report.tenures]
    return [Heading(3, "By tenure"),
            Table(["Tenure", "Homes at 31 March", "CH01(1) (per 1,000)",
                   "CH01(2) (per 1,000)", "CH02(1) strict", "CH02(2) strict"], rows,
                  [False, True, True, True, True, True])]


def late_blocks(report: Report) -> list[Block]:
    """The responses that count as late for CH02, each with the reason (disclosure)."""
    if not report.ch02_late_total:
        return [Para("Every response issued in the period was within the Code timescales.")]
    return [
        Heading(3, "Responses not within the Code timescales (CH02)"),
        Table(["Reference", "Stage", "Responded", "Why"],
              [[r.reference, str(r.stage), r.responded_on.isoformat(), r.reason]
               for r in report.ch02_late], [False, True, False, False],
              caption=listed(len(report.ch02_late), report.ch02_late_total))]


def payments_summary(report: Report) -> str:
    """The summary's line on financial remedies paid (7.3)."""
    p = report.remedy_payments
    return (f"Financial remedies paid: {fmt_int(p.paid)} of {fmt_int(p.offered)} offered "
            f"({fmt_money(p.amount_paid_pence)} of {fmt_money(p.amount_offered_pence)}); "
            f"{fmt_int(p.paid_late)} paid late; {fmt_int(p.unpaid_overdue)} unpaid past the "
            "date promised.")


def orders_summary(report: Report) -> str:
    """The summary's line on the Ombudsman's orders and instructions."""
    o = report.ombudsman_orders
    return (f"Ombudsman orders and instructions: {fmt_int(o.made)} recorded; "
            f"{fmt_int(o.complied_on_time)} complied with on time, {fmt_int(o.complied_late)} "
            f"late; {fmt_int(o.outstanding_overdue + o.outstanding_not_yet_due)} outstanding "
            f"({fmt_int(o.outstanding_overdue)} overdue).")


def payment_blocks(report: Report) -> list[Block]:
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
            caption=listed(len(p.overdue), p.unpaid_overdue)))
    return blocks


def order_blocks(report: Report) -> list[Block]:
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
            caption=listed(len(o.overdue), o.outstanding_overdue)))
    return blocks

