"""The Housing Ombudsman's annual submission, built from a report's figures.

Landlords demonstrate compliance with the Complaint Handling Code once a year through the
Ombudsman's online annual submission form: key information about the landlord and its
complaint handling with links to what it has published (the annual complaints performance
and service improvement report, Code 8.1, and the governing body's response to it, 8.2),
and whether it meets each provision of the Code. Landlords with more than 1,000 homes
submit by 30 September; others within six months of their financial year end.

The form's questions are not published as a list, so the fields here follow what Code 8.1
says the report must hold and the Regulator's Tenant Satisfaction Measures CH01 and CH02
(per stage, per tenure, CH02 strict). Every figure is taken from a built
:class:`~complaints.reports.model.Report` (nothing is counted again here); what the
records cannot give (the published addresses, the governing body's response, learning and
service improvements, findings by the Ombudsman) is left for the landlord to fill in.

Rendering (JSON, CSV) is in :mod:`complaints.reports.submission_render`, so that the
report document can summarise a submission without an import circle.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

from complaints.policies import check_against_code
from complaints.reports.model import EvidenceItem, RemedyRow, Report, Resolution
from models.policy import Policy

__all__ = [
    "POLICY_CHECKED",
    "SOURCES",
    "THRESHOLD_HOMES",
    "TO_COMPLETE",
    "Deadline",
    "OmbudsmanFigures",
    "PaymentSummary",
    "ProvisionStatus",
    "Publications",
    "Refused",
    "SelfAssessmentItem",
    "StageReturn",
    "Submission",
    "SubmissionError",
    "TenureReturn",
    "TsmStage",
    "build_submission",
    "is_reporting_year",
    "self_assessment",
    "submission_deadline",
    "summary_rows",
]

#: "Landlords with over 1,000 homes must submit the form by 30 September": 1,000 is not
#: over 1,000, so a landlord with exactly 1,000 homes follows the six-month rule.
THRESHOLD_HOMES = 1000

#: Where the fields and the deadline come from.
SOURCES: tuple[str, ...] = (
    "Housing Ombudsman, Complaint Handling Code 2024, section 8 (8.1-8.3)",
    "https://www.housing-ombudsman.org.uk/landlords-info/complaint-handling-code/"
    "guidance-on-annual-submissions",
    "https://www.housing-ombudsman.org.uk/centre-for-learning/key-topics/complaint-handling/"
    "chc-annual-submissions/",
    "Regulator of Social Housing, Tenant Satisfaction Measures: Technical Requirements "
    "(CH01, CH02)",
)

#: What the landlord adds before submitting: the records cannot give these.
TO_COMPLETE: tuple[str, ...] = (
    "publications.annual_report_url: where the annual complaints performance and service "
    "improvement report is published (Code 8.1, 8.2)",
    "publications.governing_body_response_url: the governing body's response, published "
    "alongside the report (Code 8.2)",
    "publications.self_assessment_url: the published self-assessment (Code 8.1(a))",
    "publications.complaints_policy_url: the complaints policy on the website (Code 3.3)",
    "Findings of non-compliance with the Code by the Ombudsman (Code 8.1(c))",
    "Service improvements made from the learning from complaints (Code 8.1(d))",
    "Any annual report about the landlord's performance from the Ombudsman, and other "
    "Ombudsman reports about its work (Code 8.1(e), (f))",
    "Each Code provision whose status is 'to confirm' (the policy check does not cover it)",
)

#: The provisions ``complaints policy check`` (check_against_code) tests, with a title.
POLICY_CHECKED: dict[str, str] = {
    "1.2": "A complaint however made (not only in writing)",
    "2.3": "Complaints within 12 months of the issue accepted",
    "5.2": "No informal or extra stage",
    "5.3": "No more than two stages",
    "6.2": "Stage 1 acknowledged within 5 working days",
    "6.3": "Stage 1 response within 10 working days of the acknowledgement",
    "6.4": "Stage 1 extension no more than 10 working days",
    "6.5": "Ombudsman's contact details given with an extension",
    "6.10": "A complaint not resolved at stage 1 goes to stage 2",
    "6.11": "Stage 2 acknowledged within 5 working days",
    "6.14": "Stage 2 response within 20 working days of the acknowledgement",
    "6.15": "Stage 2 extension no more than 20 working days",
}


class SubmissionError(ValueError):
    """A submission cannot be built from the report (the message says how to fix it)."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProvisionStatus(StrEnum):
    """Whether the landlord meets a Code provision, as far as the product can tell."""

    COMPLIES = "complies"
    DOES_NOT_COMPLY = "does not comply"
    #: The policy check does not cover it: the landlord confirms it on the form.
    TO_CONFIRM = "to confirm"


class Deadline(_Model):
    """When the submission is due, and why, from the landlord's homes."""

    homes: int
    more_than_1000_homes: bool
    #: ``30 September`` (more than 1,000 homes), else six months after the financial year.
    rule: Literal["30 September", "six months after the financial year end"]
    due: dt.date
    #: Every member landlord submits; only the rule for the date depends on its homes.
    must_submit: bool = True
    #: The obligation in a sentence, for people.
    statement: str


class TsmStage(_Model):
    """CH01 and strict CH02 for one stage."""

    stage: int
    #: CH01: complaints received at the stage in the year, refused ones not counted.
    received: int
    per_1000_homes: float | None
    #: CH02: responses issued in the year, and those within the Code timescales (strict).
    responded: int
    within_timescales: int
    pct_within_timescales: float | None


class StageReturn(TsmStage):
    """One stage in full: the TSMs, extensions and acknowledgements."""

    extended: int
    acknowledged: int
    acknowledged_within_limit: int
    pct_acknowledged_within_limit: float | None


class TenureReturn(_Model):
    """CH01 and strict CH02 for one tenure (LCRA, LCHO), with its homes at 31 March."""

    tenure: str
    homes: int | None
    stages: list[TsmStage]


class Refused(_Model):
    """Complaints or escalations refused in the year, by case and by ground."""

    cases: int
    by_ground: dict[str, int]


class PaymentSummary(_Model):
    """Financial remedies offered in the year and their payment (Code 7.1-7.3)."""

    offered: int
    amount_offered_pence: int
    paid: int
    amount_paid_pence: int
    paid_late: int
    unpaid_overdue: int


class OmbudsmanFigures(_Model):
    """Referrals to the Ombudsman and its orders (determinations, instructions) in the year."""

    referrals: int
    orders_made: int
    from_determinations: int
    instructions: int
    complied_on_time: int
    complied_late: int
    outstanding_not_yet_due: int
    outstanding_overdue: int
    stopped: int


class SelfAssessmentItem(_Model):
    """One Code provision: its status, where that comes from, and the records' evidence."""

    provision: str
    title: str
    status: ProvisionStatus
    #: ``policy check``, or ``landlord`` when the landlord must confirm it.
    basis: str
    detail: str
    records_cases: int | None = None
    records_met: int | None = None
    records_pct_met: float | None = None


class Publications(_Model):
    """Addresses the landlord fills in before submitting (empty until then)."""

    annual_report_url: str = ""
    governing_body_response_url: str = ""
    self_assessment_url: str = ""
    complaints_policy_url: str = ""


class Submission(_Model):
    """The data the Ombudsman's annual submission asks for, for one landlord and year."""

    schema_version: Literal[1] = 1
    landlord: str
    policy: str
    policies: list[str]
    reporting_year: str
    period_start: dt.date
    period_end: dt.date
    as_of: dt.date
    deadline: Deadline
    homes: int
    homes_by_tenure: dict[str, int | None]
    complaints_logged: int
    complaints_withdrawn: int
    #: Received in the year and refused under the exclusions: not in CH01 (Code 2).
    complaints_excluded: int
    stages: list[StageReturn]
    tenures: list[TenureReturn]
    #: Refusals decided in the year (Code 8.1(b): the types of complaint refused).
    complaints_refused: Refused
    #: Escalations to stage 2 refused in the year (Code 5.11).
    escalations_refused: Refused
    resolution: Resolution
    remedies: list[RemedyRow]
    remedies_total_pence: int
    financial_remedies: PaymentSummary
    ombudsman: OmbudsmanFigures
    self_assessment: list[SelfAssessmentItem]
    publications: Publications = Publications()
    to_complete: list[str] = list(TO_COMPLETE)
    sources: list[str] = list(SOURCES)


def is_reporting_year(report: Report) -> bool:
    """Whether ``report`` covers one whole reporting year, 1 April to 31 March."""
    start, end = report.period_start, report.period_end
    return (start.month, start.day) == (4, 1) and end == dt.date(start.year + 1, 3, 31)


def _six_months_after(day: dt.date) -> dt.date:
    """The same day six months on; a month's last day gives the last day of that month."""
    month = day.month + 6
    year, month = day.year + (month - 1) // 12, (month - 1) % 12 + 1
    last = calendar.monthrange(year, month)[1]
    at_month_end = day.day == calendar.monthrange(day.year, day.month)[1]
    return dt.date(year, month, last if at_month_end else min(day.day, last))


def submission_deadline(landlord: str, year_end: dt.date, homes: int) -> Deadline:
    """When a landlord with ``homes`` submits for the year ending ``year_end``.

    More than 1,000 homes: 30 September after the year end. 1,000 or fewer: within six
    months of the financial year end, taken as the reporting year's end (31 March gives
    30 September as well); a landlord whose financial year ends on another date counts
    six months from that.

    Args:
        landlord: The landlord's name, for the statement.
        year_end: The last day of the reporting year.
        homes: The landlord's homes at the year end.

    Returns:
        The deadline, the rule it follows and the obligation in a sentence.

    Raises:
        SubmissionError: Without a homes figure (the rule depends on it).

    """
    if homes <= 0:
        raise SubmissionError("the submission's deadline depends on the homes owned and none "
                              "is known: pass --homes N, or set homes_owned (or "
                              "[homes.YEAR]) in the policy file")
    when = f"{year_end.day} {year_end:%B %Y}"
    if homes > THRESHOLD_HOMES:
        september = dt.date(year_end.year, 9, 30)
        due = september if year_end <= september else dt.date(year_end.year + 1, 9, 30)
        return Deadline(
            homes=homes, more_than_1000_homes=True, rule="30 September", due=due,
            statement=f"{landlord} had {homes:,} homes at {when}, more than 1,000: it must "
                      f"submit to the Housing Ombudsman by {due.day} {due:%B %Y}.")
    due = _six_months_after(year_end)
    return Deadline(
        homes=homes, more_than_1000_homes=False,
        rule="six months after the financial year end", due=due,
        statement=f"{landlord} had {homes:,} homes at {when}, not more than 1,000: the 30 "
                  "September date does not apply; it must submit within six months of its "
                  f"financial year end ({due.day} {due:%B %Y} for a year ending {when}).")


def _tsm(stage: int, report_stage: int, report: Report) -> TsmStage:
    """CH01 and strict CH02 of ``report`` for one stage (index ``report_stage``)."""
    ch01, ch02 = report.ch01[report_stage], report.ch02[report_stage]
    return TsmStage(stage=stage, received=ch01.received, per_1000_homes=ch01.per_1000_homes,
                    responded=ch02.responses, within_timescales=ch02.within_code,
                    pct_within_timescales=ch02.pct_within_code)


def _stages(report: Report) -> list[StageReturn]:
    """Both stages: CH01, strict CH02, extensions and acknowledgements."""
    out = []
    for index, (stage, ack) in enumerate(zip(report.stages, report.acknowledgements,
                                             strict=True)):
        tsm = _tsm(stage.stage, index, report)
        out.append(StageReturn(
            **tsm.model_dump(), extended=stage.extended, acknowledged=ack.acknowledged,
            acknowledged_within_limit=ack.within_limit,
            pct_acknowledged_within_limit=ack.pct_within_limit))
    return out


def _tenures(report: Report) -> list[TenureReturn]:
    """CH01 and strict CH02 per tenure, as the report worked them out."""
    return [TenureReturn(tenure=t.tenure, homes=t.homes, stages=[
        TsmStage(stage=c1.stage, received=c1.received, per_1000_homes=c1.per_1000_homes,
                 responded=c2.responses, within_timescales=c2.within_code,
                 pct_within_timescales=c2.pct_within_code)
        for c1, c2 in zip(t.ch01, t.ch02, strict=True)]) for t in report.tenures]


def _refused(report: Report, kind: str) -> Refused:
    """The report's refusals of ``kind`` (``complaint`` or ``escalation``)."""
    found = next((r for r in report.refusals if r.kind == kind), None)
    return Refused(cases=found.cases if found else 0,
                   by_ground=dict(found.by_ground) if found else {})


def _provision_key(provision: str) -> tuple[int, int, str]:
    """``6.10`` after ``6.5``, ``2.1-2.5`` before ``2.3``: by the first number, then text."""
    found = re.match(r"(\d+)(?:\.(\d+))?", provision)
    if found is None:
        return (10_000, 0, provision)
    return (int(found.group(1)), int(found.group(2) or 0), provision)


def self_assessment(policy: Policy | None,
                    evidence: list[EvidenceItem] | None) -> list[SelfAssessmentItem]:
    """Each provision's status from the policy check, with the records' evidence beside it.

    A provision the policy check covers complies unless the check finds a breach; one it
    does not cover but the evidence pack measures is "to confirm", with the records shown.
    The records never decide a status: the self-assessment is the landlord's, and a
    provision can be met in policy while some cases missed it (the evidence says how many).

    Args:
        policy: The landlord's policy (None: no provision is derived from it).
        evidence: The report's evidence pack, when it carries one.

    Returns:
        The provisions, in Code order.

    """
    items: dict[str, SelfAssessmentItem] = {}
    if policy is not None:
        breaches: dict[str, list[str]] = {}
        for breach in check_against_code(policy):
            breaches.setdefault(breach.provision, []).append(breach.message)
        for provision in sorted({*POLICY_CHECKED, *breaches}, key=_provision_key):
            found = breaches.get(provision)
            items[provision] = SelfAssessmentItem(
                provision=provision, title=POLICY_CHECKED.get(provision, "Code provision"),
                status=ProvisionStatus.DOES_NOT_COMPLY if found else ProvisionStatus.COMPLIES,
                basis="policy check",
                detail="; ".join(found) if found else
                f"policy {policy.name} meets it (complaints policy check)")
    for item in evidence or []:
        records = {"records_cases": item.cases, "records_met": item.met,
                   "records_pct_met": item.pct_met}
        if item.provision in items:
            items[item.provision] = items[item.provision].model_copy(update=records)
        else:
            items[item.provision] = SelfAssessmentItem(
                provision=item.provision, title=item.title,
                status=ProvisionStatus.TO_CONFIRM, basis="landlord",
                detail="not covered by the policy check: the records are shown as evidence",
                **records)
    return [items[p] for p in sorted(items, key=_provision_key)]


def build_submission(report: Report, policy: Policy | None = None) -> Submission:
    """The annual submission's data from a built report (no figure is counted again).

    Args:
        report: The report for one reporting year (``build_report``; with the evidence
            pack, the self-assessment shows each provision's records).
        policy: The landlord's policy, for the self-assessment's policy check (None: the
            self-assessment lists only what the evidence pack measures).

    Returns:
        The submission.

    Raises:
        SubmissionError: The report is not for one reporting year, or gives no homes.

    """
    if not is_reporting_year(report):
        raise SubmissionError(f"the annual submission is for a reporting year (1 April - 31 "
                              f"March), not {report.period_label}: pass --year, e.g. 2025/26")
    payments, orders = report.remedy_payments, report.ombudsman_orders
    return Submission(
        landlord=report.landlord, policy=report.policy,
        policies=list(report.policies) or [report.policy],
        reporting_year=report.period_label, period_start=report.period_start,
        period_end=report.period_end, as_of=report.as_of,
        deadline=submission_deadline(report.landlord, report.period_end, report.homes),
        homes=report.homes, homes_by_tenure={t.tenure: t.homes for t in report.tenures},
        complaints_logged=report.complaints_logged,
        complaints_withdrawn=report.complaints_withdrawn,
        complaints_excluded=report.complaints_excluded,
        stages=_stages(report), tenures=_tenures(report),
        complaints_refused=_refused(report, "complaint"),
        escalations_refused=_refused(report, "escalation"),
        resolution=report.resolution, remedies=list(report.remedies),
        remedies_total_pence=report.remedies_total_pence,
        financial_remedies=PaymentSummary(
            offered=payments.offered, amount_offered_pence=payments.amount_offered_pence,
            paid=payments.paid, amount_paid_pence=payments.amount_paid_pence,
            paid_late=payments.paid_late, unpaid_overdue=payments.unpaid_overdue),
        ombudsman=OmbudsmanFigures(
            referrals=report.ombudsman.referred, orders_made=orders.made,
            from_determinations=orders.from_determinations,
            instructions=orders.instructions, complied_on_time=orders.complied_on_time,
            complied_late=orders.complied_late,
            outstanding_not_yet_due=orders.outstanding_not_yet_due,
            outstanding_overdue=orders.outstanding_overdue, stopped=orders.stopped),
        self_assessment=self_assessment(policy, report.evidence))


def summary_rows(submission: Submission) -> list[tuple[str, str]]:
    """The submission's main fields as (field, value) rows, for the report's section."""
    def share(part: int, whole: int, percent: float | None) -> str:
        shown = "n/a" if percent is None else f"{percent:.1f}%"
        return f"{shown} ({part:,} of {whole:,})"

    deadline = submission.deadline
    why = ("more than 1,000 homes" if deadline.more_than_1000_homes
           else "1,000 homes or fewer: six months after the financial year end")
    rows: list[tuple[str, str]] = [
        ("Homes at 31 March", f"{submission.homes:,}"),
        ("Submission due", f"{deadline.due.day} {deadline.due:%B %Y} ({why})"),
    ]
    for s in submission.stages:
        rows += [
            (f"Stage {s.stage} complaints received (CH01)",
             f"{s.received:,} ({'n/a' if s.per_1000_homes is None else f'{s.per_1000_homes:.2f}'}"
             " per 1,000 homes)"),
            (f"Stage {s.stage} responses issued", f"{s.responded:,}"),
            (f"Stage {s.stage} within the Code timescales (CH02, strict)",
             share(s.within_timescales, s.responded, s.pct_within_timescales)),
        ]
    refused, escalations = submission.complaints_refused, submission.escalations_refused
    omb, money = submission.ombudsman, submission.financial_remedies
    rows += [
        ("Complaints refused under the exclusions", f"{refused.cases:,}"),
        ("Escalations to stage 2 refused", f"{escalations.cases:,}"),
        ("Referrals to the Housing Ombudsman", f"{omb.referrals:,}"),
        ("Ombudsman orders and instructions",
         f"{omb.orders_made:,} ({omb.complied_on_time:,} complied with on time, "
         f"{omb.complied_late:,} late, "
         f"{omb.outstanding_overdue + omb.outstanding_not_yet_due:,} outstanding)"),
        ("Financial remedies offered",
         f"{money.offered:,} (£{money.amount_offered_pence / 100:,.2f}), {money.paid:,} paid"),
    ]
    checked = [i for i in submission.self_assessment if i.basis == "policy check"]
    if checked:
        failing = [i.provision for i in checked if i.status is ProvisionStatus.DOES_NOT_COMPLY]
        rows.append(("Code provisions checked against the policy",
                     f"{len(checked)}, of which not met: {', '.join(failing) or 'none'}"))
    return rows
