"""What a compliance report holds: plain pydantic models, rendered by ``render``.

Every count is an integer worked out in the database; percentages are rounded to one
decimal place and None when there is nothing to divide by (shown as "n/a").
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from complaints.reports.learning_model import LearningFigures
from complaints.service_requests import ServiceRequestReport

__all__ = [
    "AckFigures",
    "ActionException",
    "ActionFigures",
    "BreachRow",
    "Ch01",
    "Ch02",
    "Ch02Basis",
    "Ch02Late",
    "EvidenceItem",
    "ExceptionRow",
    "ExtensionReason",
    "MonthRow",
    "OrderException",
    "OrderFigures",
    "PaymentException",
    "PaymentFigures",
    "ReferralFigures",
    "RefusalFigures",
    "RemedyRow",
    "Report",
    "Resolution",
    "StageFigures",
    "TenureFigures",
    "VolumeRow",
    "WorkingDaysCount",
    "pct",
]


def pct(part: int, whole: int) -> float | None:
    """Return ``part`` as a percentage of ``whole`` to one decimal place, None for 0/0."""
    return round(100 * part / whole, 1) if whole else None


class Ch02Basis(StrEnum):
    """Which CH02 figure is the headline: how acknowledgements and extensions are treated."""

    #: The whole chain within the Code: acknowledged in time, responded by the due date
    #: in force after timely, Code-compliant extensions (the Regulator's CH02).
    STRICT = "strict"
    #: Within the due date in force, a Code-compliant extension included.
    WITH_EXTENSION = "with-extension"
    #: Within the base timescale (10 / 20 working days), extensions ignored.
    BASE = "base"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Ch01(_Model):
    """CH01 for one stage: complaints received, per 1,000 homes."""

    stage: int
    received: int
    homes: int
    per_1000_homes: float | None


class Ch02(_Model):
    """CH02 for one stage: responses issued in the period within Code timescales."""

    stage: int
    responses: int
    within_base: int
    within_extension: int
    pct_within_base: float | None
    pct_within_extension: float | None
    headline_pct: float | None
    #: Strict: the whole chain within the Code timescales (the headline by default).
    within_code: int = 0
    pct_within_code: float | None = None


class Ch02Late(_Model):
    """A response issued in the period that is not within the Code timescales, and why."""

    reference: str
    stage: int
    responded_on: dt.date
    reason: str


class TenureFigures(_Model):
    """CH01 and CH02 for one tenure (``lcra``, ``lcho``, ``other``, ``not recorded``)."""

    tenure: str
    homes: int | None
    ch01: list[Ch01]
    ch02: list[Ch02]


class StageFigures(_Model):
    """Responses issued at one stage in the period: time taken, extensions, outcomes."""

    stage: int
    responses: int
    extended: int
    pct_extended: float | None
    extended_within_new_date: int
    late_against_final_due: int
    median_working_days: float | None
    p90_working_days: int | None
    mean_working_days: float | None
    max_working_days: int | None
    upheld: int
    partly_upheld: int
    not_upheld: int
    pct_upheld: float | None
    pct_partly_upheld: float | None
    pct_not_upheld: float | None


class AckFigures(_Model):
    """Acknowledgements at one stage (6.2, 6.11) of complaints / requests in the period."""

    stage: int
    acknowledged: int
    within_limit: int
    pct_within_limit: float | None
    unacknowledged_overdue: int


class Resolution(_Model):
    """Where complaints answered in the period ended: stage 1 or stage 2."""

    resolved_stage1: int
    resolved_stage2: int
    pct_stage1: float | None
    pct_stage2: float | None
    escalated_after_stage1: int


class VolumeRow(_Model):
    """Complaints received in the period for one channel or category."""

    name: str
    received: int
    excluded: int
    escalated: int


class MonthRow(_Model):
    """One calendar month: complaints received and responses issued, on time or not."""

    month: str
    stage1_received: int
    stage2_received: int
    stage1_responses: int
    stage1_within_base: int
    stage1_within_extension: int
    stage2_responses: int
    stage2_within_base: int
    stage2_within_extension: int
    stage1_within_code: int = 0
    stage2_within_code: int = 0


class WorkingDaysCount(_Model):
    """How many responses at a stage took a given number of working days."""

    stage: int
    working_days: int
    responses: int


class ExtensionReason(_Model):
    """A reason given for extensions granted in the period, and how often."""

    stage: int
    reason: str
    extensions: int


class RefusalFigures(_Model):
    """Refusals decided in the period, of complaints (2.x) or escalations (5.11)."""

    kind: str
    cases: int
    by_ground: dict[str, int]


class RemedyRow(_Model):
    """Remedies of one kind offered in responses issued in the period (7.1)."""

    kind: str
    offered: int
    amount_pence: int


class ActionException(_Model):
    """An outstanding action still open after its due date (6.6, 7.3)."""

    reference: str
    action_id: str
    stage: int
    due_by: dt.date
    owner: str | None


class ActionFigures(_Model):
    """Outstanding actions: those due in the period and those overdue at the as-of date."""

    due_in_period: int
    completed_by_due_date: int
    overdue_at_as_of: int
    overdue: list[ActionException]


class PaymentException(_Model):
    """A financial remedy not paid by the date promised, at the as-of date (7.3)."""

    reference: str
    stage: int
    remedy: int
    due_by: dt.date
    amount_pence: int | None


class PaymentFigures(_Model):
    """Financial remedies offered in responses issued in the period, followed to payment.

    A remedy counts as paid when a payment was recorded (``pay-remedy``) with a paid-on
    date on or before the as-of date; paid late when that date is after the date promised.
    """

    offered: int = 0
    amount_offered_pence: int = 0
    paid: int = 0
    amount_paid_pence: int = 0
    paid_late: int = 0
    unpaid_overdue: int = 0
    unpaid_not_yet_due: int = 0
    unpaid_no_date: int = 0
    overdue: list[PaymentException] = []


class OrderException(_Model):
    """An Ombudsman order or instruction not complied with by its date, at the as-of date."""

    reference: str
    order_id: str
    due_by: dt.date
    #: The determination's finding (``maladministration``...) or ``instruction``.
    what: str


class OrderFigures(_Model):
    """Ombudsman orders (determinations) and instructions recorded in the period.

    Each is tracked to compliance (``comply-order``): on time when complied with by the end
    of its due date; outstanding when not complied with by the as-of date, overdue when
    its date was before then; stopped when the case was withdrawn.
    """

    made: int = 0
    from_determinations: int = 0
    instructions: int = 0
    complied_on_time: int = 0
    complied_late: int = 0
    outstanding_not_yet_due: int = 0
    outstanding_overdue: int = 0
    stopped: int = 0
    overdue: list[OrderException] = []


class ReferralFigures(_Model):
    """Cases referred to the Housing Ombudsman in the period."""

    referred: int
    references: list[str]


class BreachRow(_Model):
    """Missed time limits in the period for one handler or team."""

    name: str
    stage1_acknowledgements: int
    stage1_responses: int
    stage2_acknowledgements: int
    stage2_responses: int
    total: int


class ExceptionRow(_Model):
    """One case that did not meet a provision, with what happened."""

    reference: str
    detail: str


class EvidenceItem(_Model):
    """The evidence drawn from the records for one Code provision."""

    provision: str
    title: str
    requirement: str
    measure: str
    cases: int
    met: int
    pct_met: float | None
    exceptions_total: int
    exceptions: list[ExceptionRow]


class Report(_Model):
    """A complaints performance report for one landlord and period."""

    landlord: str
    policy: str
    period_label: str
    period_start: dt.date
    period_end: dt.date
    as_of: dt.date
    homes: int
    ch02_basis: Ch02Basis
    complaints_logged: int
    complaints_excluded: int
    complaints_withdrawn: int
    #: Of the complaints logged, those imported from the landlord's previous system.
    complaints_imported: int = 0
    ch01: list[Ch01]
    ch02: list[Ch02]
    stages: list[StageFigures]
    acknowledgements: list[AckFigures]
    resolution: Resolution
    channels: list[VolumeRow]
    categories: list[VolumeRow]
    monthly: list[MonthRow]
    working_days: list[WorkingDaysCount]
    extension_reasons: list[ExtensionReason]
    refusals: list[RefusalFigures]
    remedies: list[RemedyRow]
    remedies_total_pence: int
    responses_with_financial_remedy: int
    actions: ActionFigures
    ombudsman: ReferralFigures
    #: Remedy payments and Ombudsman orders (casework revision 2); empty for older data.
    remedy_payments: PaymentFigures = PaymentFigures()
    ombudsman_orders: OrderFigures = OrderFigures()
    breaches_by_handler: list[BreachRow]
    breaches_by_team: list[BreachRow]
    limits: dict[str, int]
    method: list[str]
    #: Every policy file the landlord's complaints in the report were handled under.
    policies: list[str] = []
    #: The responses not within the Code timescales (strict CH02), with the reason each.
    ch02_late: list[Ch02Late] = []
    #: Service requests logged, resolved and converted to complaints (Code 1.4, 1.5).
    service_requests: ServiceRequestReport | None = None
    #: Learning from complaints: themes, trend, year on year, changes, satisfaction.
    learning: LearningFigures | None = None
    ch02_late_total: int = 0
    #: CH01 and CH02 per tenure (LCRA, LCHO, then any other or not recorded).
    tenures: list[TenureFigures] = []
    evidence: list[EvidenceItem] | None = None
