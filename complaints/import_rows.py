"""The report's rows of one imported complaint, built as a live case would have left them.

:mod:`complaints.imports` reads and checks a file of historic complaints into
:class:`ImportRow` values; :func:`build_rows` turns each into the rows the report reads:
the complaint (``imported`` true), one response per stage answered, the extensions, the
refusals (exclusion, escalation refused) and a financial remedy. The response columns
come from :func:`activities.records.measure_responses`, the very function that measures a
live case's responses when its deadlines are not on record: clock start, base and final
due dates, working days taken and the strict CH02 verdict
(:func:`activities.records.strict_verdict`), on the policy's working calendar with the
row's nation. So an imported complaint and a live one follow one rule.

Times: the file holds dates only; each event is put at noon, Europe/London, on its day
(so it falls on that London day whatever the clocks do).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from activities.records import measure_responses
from complaints.workdays import LONDON, WorkingCalendar
from models.case import CaseFile, Decision, ExtensionRecord, ResponseRecord
from models.policy import Nation, Policy

__all__ = ["CHANNEL", "DESCRIPTION", "EXTENSION_REASON", "IMPORTED_BY", "NO_GROUND",
           "BuiltRows", "ImportRow", "StageDates", "build_rows", "calendar_for", "noon"]

#: ``by`` on everything an import writes, and the stage handlers: no member of staff.
IMPORTED_BY = "import"
#: The channel of an imported complaint: the file does not say how it came in.
CHANNEL = "import"
#: The description of an imported complaint (the file holds no complaint text).
DESCRIPTION = "Imported from the landlord's previous system: no description is imported."
#: The reason of an imported extension given without a good reason.
EXTENSION_REASON = "not recorded (imported)"
#: The ground of an escalation refused without one in the file.
NO_GROUND = "not_recorded"
#: The description of an imported financial remedy.
REMEDY_DESCRIPTION = "Financial remedy (imported)"


@dataclass(frozen=True)
class StageDates:
    """One stage of an imported complaint, as the file gives it (None: not applicable)."""

    acknowledged_on: dt.date | None = None
    responded_on: dt.date | None = None
    extension_agreed_on: dt.date | None = None
    extension_working_days: int | None = None
    extension_good_reason: str | None = None
    decision: Decision | None = None


@dataclass(frozen=True)
class ImportRow:
    """One complaint of an import file, read and checked.

    Attributes:
        line: The file's line the row starts on (the header is line 1).
        reference: The complaint's reference in the old system.
        policy: The landlord's policy (time limits, calendar).
        nation: Whose bank holidays count (the policy's unless the file says).
        tenure: ``lcra``, ``lcho``, ``other`` or None (not recorded).
        category: The service area (``not recorded`` when the file gives none).
        received_on: The day the complaint was received.
        excluded_on: The day it was refused under the exclusions.
        exclusion_ground: The ground of the exclusion or of the escalation refusal.
        withdrawn_on: The day it was withdrawn.
        stage1: The stage 1 dates, extension and decision.
        stage2_requested_on: The day stage 2 was asked for.
        escalation_refused_on: The day the escalation was refused.
        stage2: The stage 2 dates, extension and decision.
        remedy_pence: A financial remedy offered with the last response, in pence.
        sha256: The SHA-256 of the row as read (normalised): the same row, the same hash.
    """

    line: int
    reference: str
    policy: Policy
    nation: Nation
    tenure: str | None
    category: str
    received_on: dt.date
    excluded_on: dt.date | None = None
    exclusion_ground: str | None = None
    withdrawn_on: dt.date | None = None
    stage1: StageDates = StageDates()
    stage2_requested_on: dt.date | None = None
    escalation_refused_on: dt.date | None = None
    stage2: StageDates = StageDates()
    remedy_pence: int | None = None
    sha256: str = ""


@dataclass
class BuiltRows:
    """The rows of one imported complaint, as column dictionaries per table."""

    complaint: dict[str, Any]
    responses: list[dict[str, Any]] = field(default_factory=list)
    extensions: list[dict[str, Any]] = field(default_factory=list)
    refusals: list[dict[str, Any]] = field(default_factory=list)
    remedies: list[dict[str, Any]] = field(default_factory=list)


def noon(day: dt.date) -> dt.datetime:
    """Noon in London on ``day``, as an aware UTC instant."""
    return dt.datetime.combine(day, dt.time(12), tzinfo=LONDON).astimezone(dt.UTC)


def calendar_for(policy: Policy, nation: Nation,
                 cache: dict[tuple[str, Nation], WorkingCalendar]) -> WorkingCalendar:
    """The policy's working calendar with ``nation``'s bank holidays (made once per pair)."""
    key = (policy.name, nation)
    if key not in cache:
        chosen = policy if policy.nation is nation else policy.model_copy(
            update={"nation": nation})
        cache[key] = WorkingCalendar.for_policy(chosen)
    return cache[key]


def _stages(row: ImportRow) -> list[tuple[int, StageDates]]:
    return [(1, row.stage1), (2, row.stage2)]


def _state(row: ImportRow) -> tuple[str, int, dt.datetime | None]:
    """The state, stage and closing instant a live case would be left in."""
    s1, s2 = row.stage1, row.stage2
    if row.excluded_on is not None:
        return "declined", 0, None
    state, stage, closed = "received", 0, None
    if s1.acknowledged_on is not None:
        state, stage = "stage1_investigating", 1
    if s1.extension_agreed_on is not None:
        state = "stage1_extended"
    if s1.responded_on is not None:
        # Historic: the escalation window has run out unless stage 2 was asked for.
        state, closed = "closed", noon(s1.responded_on)
    if row.stage2_requested_on is not None:
        state, closed = "stage2_requested", None
    if row.escalation_refused_on is not None:
        state, closed = "closed", noon(row.escalation_refused_on)
    if s2.acknowledged_on is not None:
        state, stage = "stage2_reviewing", 2
    if s2.extension_agreed_on is not None:
        state = "stage2_extended"
    if s2.responded_on is not None:
        state, closed = "closed", noon(s2.responded_on)
    if row.withdrawn_on is not None:
        state, closed = "withdrawn", None
    return state, stage, closed


def _case_file(row: ImportRow) -> CaseFile:
    """The case file :func:`measure_responses` reads: responses and extensions."""
    extensions = [ExtensionRecord(
        stage=n, working_days=s.extension_working_days or 0,
        reason=s.extension_good_reason or EXTENSION_REASON,
        good_reason=s.extension_good_reason, by=IMPORTED_BY, at=noon(s.extension_agreed_on))
        for n, s in _stages(row) if s.extension_agreed_on is not None]
    responses = [ResponseRecord(stage=n, decision=s.decision or Decision.NOT_UPHELD,
                                findings=(), remedies=(), by=IMPORTED_BY,
                                at=noon(s.responded_on))
                 for n, s in _stages(row) if s.responded_on is not None]
    return CaseFile(reference=row.reference, policy_name=row.policy.name,
                    received_on=row.received_on,
                    escalation_requested_on=row.stage2_requested_on,
                    extensions=extensions, responses=responses)


def build_rows(row: ImportRow, calendar: WorkingCalendar, now: dt.datetime) -> BuiltRows:
    """Every report row of one imported complaint.

    Args:
        row: The complaint as read from the file.
        calendar: The policy's working calendar for the row's nation.
        now: When the import runs (the rows' ``created_at`` / ``updated_at``).

    Returns:
        The complaint's row and its child rows.

    """
    policy, limits = row.policy, row.policy.limits
    s1, s2 = row.stage1, row.stage2
    state, stage, closed = _state(row)
    excluded = row.excluded_on is not None
    requested = row.stage2_requested_on
    complaint: dict[str, Any] = {
        "reference": row.reference, "landlord": policy.landlord, "policy_name": policy.name,
        "channel": CHANNEL, "channel_reference": None, "category": row.category,
        "received_on": row.received_on, "issue_occurred_on": None,
        "description": DESCRIPTION, "outcomes_sought": "", "state": state, "stage": stage,
        # Not a member of staff: keeps an open imported case out of the unassigned lists.
        "handler_id": IMPORTED_BY, "next_deadline": None, "overdue": False,
        "created_at": now, "updated_at": now, "closed_at": closed, "snapshot_at": None,
        "stage1_handler": IMPORTED_BY if s1.acknowledged_on else None,
        "stage2_handler": IMPORTED_BY if s2.acknowledged_on else None,
        "acknowledged_on": s1.acknowledged_on,
        "acknowledgement_due": calendar.add_working_days(row.received_on,
                                                         limits.stage1_acknowledgement),
        "escalation_requested_on": requested,
        "stage2_acknowledged_on": s2.acknowledged_on,
        "stage2_acknowledgement_due": None if requested is None else
        calendar.add_working_days(requested, limits.stage2_acknowledgement),
        "excluded": excluded,
        "declined_at": noon(row.excluded_on) if row.excluded_on else None,
        "escalation_refused": row.escalation_refused_on is not None,
        "withdrawn_at": noon(row.withdrawn_on) if row.withdrawn_on else None,
        "referred_to_ombudsman_at": None, "tenure": row.tenure, "taken_on_on": None,
        "imported": True,
    }
    built = BuiltRows(complaint)
    case = _case_file(row)
    for m in measure_responses(case, [], policy, calendar, s1.acknowledged_on,
                               s2.acknowledged_on):
        built.responses.append({
            "reference": row.reference, "stage": m.stage, "seq": m.seq,
            "decision": m.decision, "responded_at": m.responded_at,
            "responded_on": m.responded_on, "by": m.by, "clock_start": m.clock_start,
            "due_base": m.due_base, "due_final": m.due_final,
            "extension_days": m.extension_days,
            "extension_within_code": m.extension_within_code,
            "working_days_taken": m.working_days_taken, "acknowledged_on": m.acknowledged_on,
            "acknowledgement_due": m.acknowledgement_due,
            "extensions_timely": m.extensions_timely, "within_code": m.within_code,
            "late_reason": m.late_reason})
    for seq, extension in enumerate(case.extensions, 1):
        built.extensions.append({
            "reference": row.reference, "extension_seq": seq, "stage": extension.stage,
            "working_days": extension.working_days, "reason": extension.reason,
            "good_reason": extension.good_reason, "granted_by": IMPORTED_BY,
            "granted_at": extension.at, "stage_seq": 1})
    refusals = [("complaint", row.excluded_on), ("escalation", row.escalation_refused_on)]
    for kind, day in refusals:
        if day is not None:
            built.refusals.append({
                "reference": row.reference, "kind": kind,
                "ground": row.exclusion_ground or NO_GROUND, "decided_at": noon(day),
                "decided_on": day, "by": IMPORTED_BY})
    # A financial remedy goes with the last response (stage 2 when there is one).
    answered = built.responses
    if row.remedy_pence and answered:
        last = answered[-1]
        built.remedies.append({
            "reference": row.reference, "stage": last["stage"], "position": 1,
            "kind": "financial", "description": REMEDY_DESCRIPTION,
            "amount_pence": row.remedy_pence, "due_by": None, "decision": last["decision"],
            "offered_by": IMPORTED_BY, "offered_at": last["responded_at"]})
    return built
