"""The report as a document: headings, paragraphs, tables and charts, for any output format.

``report_document`` lays a :class:`~complaints.reports.model.Report` out once, in the
order a committee paper or an annual complaints report reads; ``render`` turns the blocks
into Markdown or HTML, so the two always say the same thing.

The later sections (learning, the annual submission, service requests, tenures, late
responses, payments and orders) are built in :mod:`complaints.reports.sections`; the block
types and number formats live in :mod:`complaints.reports.blocks` and are importable from
here too.
"""

from __future__ import annotations

from complaints.reports.blocks import (
    Block,
    Bullets,
    Chart,
    Heading,
    Para,
    Table,
    complement,
    fmt_int,
    fmt_money,
    fmt_pct,
    listed,
    long_date,
    more,
    name_label,
    num,
    per_1000,
    share_of,
    sum_pct,
)
from complaints.reports.model import BreachRow, Ch02Basis, EvidenceItem, Report, VolumeRow
from complaints.reports.sections import (
    late_blocks,
    learning_blocks,
    order_blocks,
    orders_summary,
    payment_blocks,
    payments_summary,
    service_request_blocks,
    submission_blocks,
    tenure_blocks,
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

def _volume_table(rows: list[VolumeRow], what: str) -> Table:
    return Table([what, "Received", "Refused (excluded)", "Escalation requested"],
                 [[name_label(r.name), fmt_int(r.received), fmt_int(r.excluded),
                   fmt_int(r.escalated)] for r in rows], [False, True, True, True])


def _breach_table(rows: list[BreachRow], what: str, label: bool = False) -> Table:
    shown = rows[:TOP_BREACHES]
    return Table([what, "Stage 1 ack.", "Stage 1 response", "Stage 2 ack.",
                  "Stage 2 response", "Total"],
                 [[name_label(r.name) if label else r.name, fmt_int(r.stage1_acknowledgements),
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
    actions_done = share_of(actions.completed_by_due_date, actions.due_in_period,
                            sum_pct(actions.completed_by_due_date, actions.due_in_period))
    basis = {Ch02Basis.STRICT: "strict, within Code timescales",
             Ch02Basis.WITH_EXTENSION: "response only, with extension",
             Ch02Basis.BASE: "base timescale"}[report.ch02_basis]
    policies = ", ".join(f"`{p}`" for p in report.policies) or f"`{report.policy}`"
    blocks: list[Block] = [
        Heading(1, f"Complaints performance report: {report.landlord}, {report.period_label}"),
        Para(f"Period {long_date(report.period_start)} to {long_date(report.period_end)}; policy "
             f"`{report.policy}` (complaints handled under {policies}); figures as at "
             f"{long_date(report.as_of)}; "
             f"{fmt_int(report.homes)} homes owned. Time limits (working days): acknowledge "
             f"{limits['stage1_acknowledgement']}, stage 1 response "
             f"{limits['stage1_response']} (+{limits['stage1_extension_cap']}), stage 2 "
             f"acknowledge {limits['stage2_acknowledgement']}, stage 2 response "
             f"{limits['stage2_response']} (+{limits['stage2_extension_cap']})."),
        Heading(2, "Tenant Satisfaction Measures"),
        Table(["Measure", "Stage 1", "Stage 2"], [
            ["CH01 complaints received", fmt_int(report.ch01[0].received),
             fmt_int(report.ch01[1].received)],
            ["CH01 per 1,000 homes", per_1000(report.ch01[0].per_1000_homes),
             per_1000(report.ch01[1].per_1000_homes)],
            ["CH02 responses issued", fmt_int(c1.responses), fmt_int(c2.responses)],
            ["CH02 within Code timescales (strict: acknowledgement, response, timely "
             "extensions)",
             share_of(c1.within_code, c1.responses, c1.pct_within_code),
             share_of(c2.within_code, c2.responses, c2.pct_within_code)],
            ["CH02 within the base response timescale (comparison)",
             share_of(c1.within_base, c1.responses, c1.pct_within_base),
             share_of(c2.within_base, c2.responses, c2.pct_within_base)],
            ["CH02 within the response timescale with extension (comparison)",
             share_of(c1.within_extension, c1.responses, c1.pct_within_extension),
             share_of(c2.within_extension, c2.responses, c2.pct_within_extension)],
            [f"**CH02 reported ({basis})**", f"**{fmt_pct(c1.headline_pct)}**",
             f"**{fmt_pct(c2.headline_pct)}**"],
        ], [False, True, True]),
        *tenure_blocks(report),
        *late_blocks(report),
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
            f"{fmt_pct(complement(c1.pct_within_code))}, stage 2 "
            f"{fmt_pct(complement(c2.pct_within_code))}; listed below with the reason.",
            f"Timescale extended: stage 1 {share_of(s1.extended, s1.responses, s1.pct_extended)}, "
            f"stage 2 {share_of(s2.extended, s2.responses, s2.pct_extended)}.",
            f"Acknowledged within the time limit: stage 1 "
            f"{share_of(a1.within_limit, a1.acknowledged, a1.pct_within_limit)}, stage 2 "
            f"{share_of(a2.within_limit, a2.acknowledged, a2.pct_within_limit)}.",
            f"Resolved at stage 1: {fmt_pct(report.resolution.pct_stage1)}; at stage 2: "
            f"{fmt_pct(report.resolution.pct_stage2)}.",
            f"Upheld or partly upheld: stage 1 "
            f"{fmt_pct(sum_pct(s1.upheld + s1.partly_upheld, s1.responses))}, stage 2 "
            f"{fmt_pct(sum_pct(s2.upheld + s2.partly_upheld, s2.responses))}.",
            f"Remedies offered: {fmt_int(sum(r.offered for r in report.remedies))}, "
            f"financial remedies {fmt_money(report.remedies_total_pence)} in "
            f"{fmt_int(report.responses_with_financial_remedy)} responses.",
            f"Referred to the Housing Ombudsman: {fmt_int(report.ombudsman.referred)}.",
            payments_summary(report),
            orders_summary(report),
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
              [[str(s.stage), fmt_int(s.responses), share_of(s.extended, s.responses,
                                                              s.pct_extended),
                fmt_int(s.extended_within_new_date), fmt_int(s.late_against_final_due),
                num(s.median_working_days), num(s.p90_working_days),
                num(s.mean_working_days), num(s.max_working_days)]
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
                [GROUND_LABELS.get(g, name_label(g)), fmt_int(n)]
                for g, n in refusal.by_ground.items()], [False, True]))
    blocks += [
        Heading(2, "Remedies"),
        Table(["Remedy", "Offered", "Financial value"],
              [[name_label(r.kind), fmt_int(r.offered),
                fmt_money(r.amount_pence) if r.amount_pence else "-"]
               for r in report.remedies]
              + [["**Total**", f"**{fmt_int(sum(r.offered for r in report.remedies))}**",
                  f"**{fmt_money(report.remedies_total_pence)}**"]], [False, True, True]),
        Heading(3, "Remedy payments"),
        *payment_blocks(report),
        Heading(2, "Outstanding actions"),
        Para(f"Actions due in the period: {fmt_int(actions.due_in_period)}, completed by "
             f"the date promised: {actions_done}"
             f". Overdue at {report.as_of.isoformat()}: {fmt_int(actions.overdue_at_as_of)}."),
    ]
    if report.actions.overdue:
        blocks.append(Table(["Reference", "Action", "Stage", "Due", "Owner"], [
            [a.reference, a.action_id, str(a.stage), a.due_by.isoformat(), a.owner or "-"]
            for a in report.actions.overdue], [False, False, True, False, False],
            caption=listed(len(report.actions.overdue), report.actions.overdue_at_as_of)))
    blocks += [*service_request_blocks(report),
        Heading(2, "Housing Ombudsman"),
        Para(f"Cases referred to the Housing Ombudsman in the period: "
             f"{fmt_int(report.ombudsman.referred)}"
             + (f" ({', '.join(report.ombudsman.references)}"
                f"{more(len(report.ombudsman.references), report.ombudsman.referred)})."
                if report.ombudsman.references else ".")),
        Heading(3, "Ombudsman orders and instructions"),
        *order_blocks(report),
        Heading(2, "Breaches by team and handler"),
    ]
    if report.breaches_by_team:
        blocks += [_breach_table(report.breaches_by_team, "Team (category)", label=True),
                   _breach_table(report.breaches_by_handler, "Handler")]
    else:
        blocks.append(Para("No time limit was missed in the period."))
    blocks += learning_blocks(report)
    blocks += submission_blocks(report)
    blocks += [Heading(2, "Method"), Bullets(list(report.method))]
    if report.evidence is not None:
        blocks += evidence_document(report.evidence, report, level=2)
    return blocks


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
        Para(f"Drawn from the complaint records for {long_date(report.period_start)} to "
             f"{long_date(report.period_end)}, as at {long_date(report.as_of)}, to support the "
             "annual self-assessment against the Complaint Handling Code."),
        Table(["Code", "Provision", "Cases", "Met", "%", "Exceptions"],
              [[i.provision, i.title, fmt_int(i.cases), fmt_int(i.met), fmt_pct(i.pct_met),
                fmt_int(i.exceptions_total)] for i in items],
              [False, False, True, True, True, True]),
    ]
    for item in items:
        blocks += [Heading(level + 1, f"{item.provision} {item.title}"),
                   Para(f"{item.requirement} Evidence: {item.measure}: "
                        f"{share_of(item.met, item.cases, item.pct_met)} met.")]
        if item.exceptions:
            blocks.append(Table(["Reference", "Exception"],
                                [[e.reference, e.detail] for e in item.exceptions],
                                [False, False],
                                caption=listed(len(item.exceptions), item.exceptions_total)))
    return blocks
