"""Messages that cross Temporal boundaries.

The workflow's input, its query result and the activities' inputs and results: one model
per call, a single argument each.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from models.case import (
    Adjustment,
    AuditEvent,
    CaseFile,
    Channel,
    Frozen,
    Label,
    Party,
    Text,
)
from models.letters import Letter, LetterKind
from models.limits import hostile_character as _hostile_character
from models.policy import OmbudsmanDetails, Policy

#: A complaint reference, also the workflow id: never personal data.
Reference = Annotated[str, StringConstraints(pattern=r"^CMP-\d{4}-\d{6}$")]


#: Where a complaint enters the system, these limits apply on top of the field types.
INTAKE_LIMITS: dict[str, int] = {
    "outcomes_sought": 20,
    "adjustments": 20,
    "address_lines": 10,
    "json_bytes": 200_000,
}
#: No complaint can have been received before this day (the engine's calendar starts later).
EARLIEST_RECEIPT = dt.date(2000, 1, 1)
#: No issue can have happened before this day (the working calendar starts in 1872).
EARLIEST_ISSUE = dt.date(1900, 1, 1)
#: A policy name: what ``load_policy`` accepts (never a path).
POLICY_NAME = r"^[a-z0-9][a-z0-9-]*$"


def london_today() -> dt.date:
    """Today's date in Europe/London (the landlord's day), from the wall clock."""
    from zoneinfo import ZoneInfo

    return dt.datetime.now(ZoneInfo("Europe/London")).date()


def _inside_temporal() -> bool:
    """Whether validation runs inside a Temporal workflow or activity (decoding a payload)."""
    try:
        from temporalio import activity, workflow
    except ImportError:  # pragma: no cover - temporalio is a dependency
        return False
    return workflow.in_workflow() or workflow.unsafe.in_sandbox() or activity.in_activity()


def _strings(value: Any, path: str) -> list[tuple[str, str]]:
    """Every string inside ``value`` with a dotted path to it."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, BaseModel):
        return [s for name in type(value).model_fields
                for s in _strings(getattr(value, name), f"{path}.{name}" if path else name)]
    if isinstance(value, tuple | list):
        return [s for i, item in enumerate(value) for s in _strings(item, f"{path}.{i}")]
    return []


class Tenure(StrEnum):
    """The resident's tenure, as the Regulator splits CH01 and CH02 (TSM)."""

    #: Low-cost rental accommodation.
    LCRA = "lcra"
    #: Low-cost home ownership.
    LCHO = "lcho"
    #: Neither (market rent, leasehold, a neighbour who is not a tenant...).
    OTHER = "other"


class Intake(Frozen):
    """A complaint as lodged: everything known on receipt.

    Personal data (parties, description) lives here, in the workflow's input and the
    database; never in the workflow id, search attributes, metrics or logs.

    Validation comes in two layers. The field types (lengths, patterns, enums, at most 50
    parties, the issue not after receipt) hold everywhere. The *lodging rules* hold where
    a complaint enters the system (``complaints lodge``, an API, ``Intake.model_validate``
    in any program): no receipt date after today in London, none before
    :data:`EARLIEST_RECEIPT`, a plain policy name, the :data:`INTAKE_LIMITS`, and no
    control, bidirectional-override or surrogate characters in any text. They are not
    re-checked when Temporal decodes the payload inside a workflow or an activity: a
    running case re-reads its input on every replay, so a rule added later must never
    make an already accepted case undecodable, and a workflow has no wall clock (it
    checks the receipt date against its own deterministic clock instead, see
    ``ComplaintWorkflow``). Pass ``context={"today": date}`` to ``model_validate`` to fix
    "today" (tests, back-office imports); ``context={"lodging": False}`` skips the rules.
    """

    reference: Reference
    policy_name: Label = "code-2024"
    channel: Channel
    channel_reference: Label | None = None
    received_on: dt.date
    issue_occurred_on: dt.date | None = None
    category: Label = "general"
    parties: tuple[Party, ...] = Field(min_length=1, max_length=50)
    description: Text
    outcomes_sought: tuple[Text, ...] = ()
    adjustments: tuple[Adjustment, ...] = ()
    manager_id: Label = "complaints-manager"
    lead_id: Label = "complaints-lead"
    #: The resident's tenure; None: not recorded (reported as such).
    tenure: Tenure | None = None

    @field_validator("issue_occurred_on")
    @classmethod
    def _issue_not_after_receipt(cls, value: dt.date | None, info: object) -> dt.date | None:
        data = getattr(info, "data", {})
        received = data.get("received_on")
        if value is not None and received is not None and value > received:
            raise ValueError("issue_occurred_on cannot be after received_on")
        return value

    # -- the lodging rules: field validators so that each message names its field --------

    @field_validator("received_on")
    @classmethod
    def _received_not_future(cls, value: dt.date, info: ValidationInfo) -> dt.date:
        today = _lodging_today(info)
        if today is None:
            return value
        if value > today:
            raise ValueError(f"{value.isoformat()} is in the future (today is "
                             f"{today.isoformat()} in London): give the day the complaint "
                             "was received")
        if value < EARLIEST_RECEIPT:
            raise ValueError(f"{value.isoformat()} is before {EARLIEST_RECEIPT.isoformat()}: "
                             "check the year")
        return value

    @field_validator("issue_occurred_on", mode="after")
    @classmethod
    def _issue_not_ancient(cls, value: dt.date | None, info: ValidationInfo) -> dt.date | None:
        if value is not None and _lodging_today(info) is not None and value < EARLIEST_ISSUE:
            raise ValueError(f"{value.isoformat()} is before {EARLIEST_ISSUE.isoformat()}: "
                             "check the year")
        return value

    @field_validator("policy_name")
    @classmethod
    def _plain_policy_name(cls, value: str, info: ValidationInfo) -> str:
        if _lodging_today(info) is not None and not re.fullmatch(POLICY_NAME, value):
            raise ValueError(f"{value!r} is not a policy name: lower-case letters, digits "
                             "and '-' only (e.g. connexus)")
        return value

    @field_validator("outcomes_sought", "adjustments")
    @classmethod
    def _not_too_many(cls, value: tuple[Any, ...], info: ValidationInfo) -> tuple[Any, ...]:
        limit = INTAKE_LIMITS[str(info.field_name)]
        if _lodging_today(info) is not None and len(value) > limit:
            raise ValueError(f"{len(value)} given, at most {limit}")
        return value

    @field_validator("parties")
    @classmethod
    def _short_addresses(cls, value: tuple[Party, ...],
                         info: ValidationInfo) -> tuple[Party, ...]:
        limit = INTAKE_LIMITS["address_lines"]
        if _lodging_today(info) is not None:
            for i, party in enumerate(value, 1):
                if len(party.address) > limit:
                    raise ValueError(f"party {i} has {len(party.address)} address lines, "
                                     f"at most {limit}")
        return value

    @field_validator("*")
    @classmethod
    def _no_hostile_characters(cls, value: Any, info: ValidationInfo) -> Any:
        if _lodging_today(info) is None:
            return value
        for path, text in _strings(value, ""):
            bad = _hostile_character(text)
            if bad is not None:
                where = f" (at {path})" if path else ""
                raise ValueError(f"contains the control or formatting character {bad}{where}")
        return value

    @model_validator(mode="after")
    def _not_too_large(self, info: ValidationInfo) -> Self:
        if _lodging_today(info) is not None:
            size = len(self.model_dump_json().encode("utf-8", "replace"))
            if size > INTAKE_LIMITS["json_bytes"]:
                raise ValueError(f"the intake is {size:,} bytes, at most "
                                 f"{INTAKE_LIMITS['json_bytes']:,}: attach long documents to "
                                 "the case file instead")
        return self


def _lodging_today(info: ValidationInfo) -> dt.date | None:
    """Today's London date when the lodging rules apply, else None (see :class:`Intake`)."""
    context = info.context if isinstance(info.context, dict) else {}
    if context.get("lodging") is False:
        return None
    if "today" in context:
        today = context["today"]
        return today if isinstance(today, dt.date) else dt.date.fromisoformat(str(today))
    if _inside_temporal():
        return None
    return london_today()


class DeadlineKind(StrEnum):
    """The windows the Code and the policy set."""

    EARLY_CONTACT = "early_contact"
    STAGE1_ACKNOWLEDGEMENT = "stage1_acknowledgement"
    STAGE1_RESPONSE = "stage1_response"
    ESCALATION_WINDOW = "escalation_window"
    STAGE2_ACKNOWLEDGEMENT = "stage2_acknowledgement"
    STAGE2_RESPONSE = "stage2_response"
    ACTION = "action"
    OMBUDSMAN = "ombudsman"  # an Ombudsman instruction or order, due by its own date
    REVIEW = "review"  # reviewing a resident's reasonable adjustments with them (5.10)


class DeadlineStatus(StrEnum):
    """Where a deadline stands."""

    PENDING = "pending"
    MET = "met"
    BREACHED = "breached"
    EXTENDED = "extended"  # replaced by a later deadline after an extension
    CANCELLED = "cancelled"  # no longer applies (withdrawn, declined, with the Ombudsman)
    LAPSED = "lapsed"  # an escalation window that ran out (not a breach)


class Deadline(BaseModel):
    """One deadline of a case and what became of it."""

    model_config = ConfigDict(extra="forbid")

    key: str
    kind: DeadlineKind
    stage: int
    label: str
    provision: str
    start: dt.date
    due: dt.date
    ends_at: dt.datetime
    remind_at: dt.datetime | None = None
    escalate_at: dt.datetime
    status: DeadlineStatus = DeadlineStatus.PENDING
    reminded: bool = False
    manager_notified: bool = False
    lead_notified: bool = False
    met_at: dt.datetime | None = None
    breached_at: dt.datetime | None = None


class PlanDeadlineInput(Frozen):
    """Ask the calendar for a due date: exactly one of the three lengths is set."""

    policy: Policy
    key: str
    kind: DeadlineKind
    stage: int
    label: str
    provision: str
    start: dt.date
    working_days: int | None = None
    calendar_days: int | None = None
    calendar_months: int | None = None


class LoadPolicyInput(Frozen):
    """Load a named, Code-compliant policy."""

    name: Label


class LetterRecord(Frozen):
    """A letter the workflow has had sent."""

    letter_id: str
    kind: LetterKind
    stage: int
    seq: int
    subject: str
    sent_at: dt.datetime
    delivered_to: tuple[str, ...]
    sha256: str


class SendLetterInput(Frozen):
    """Render, store and deliver one letter, exactly once per ``letter_id``."""

    letter_id: str
    reference: Reference
    stage: int
    seq: int
    template_set: str
    letter: Letter


class LetterReceipt(Frozen):
    """What the letter activity did."""

    letter_id: str
    subject: str
    delivered_to: tuple[str, ...]
    sha256: str


class NotificationKind(StrEnum):
    """Why staff are told something."""

    REMINDER = "reminder"
    BREACH = "breach"
    BREACH_ESCALATED = "breach_escalated"
    NEW_COMPLAINT_NEEDED = "new_complaint_needed"
    ACTION_REFUSED = "action_refused"
    EXCLUSION_DECISION = "exclusion_decision"  # out of time: decide on discretion (2.3)
    INTAKE_CORRECTED = "intake_corrected"  # an impossible receipt date was corrected
    POLICY_UNAVAILABLE = "policy_unavailable"  # the case waits until its policy loads
    LATE_ESCALATION = "late_escalation"  # accept at discretion or refuse in writing (5.11)
    CLOSURE_WARNING = "closure_warning"  # a due date in or after a closure: it does not move


class NotifyInput(Frozen):
    """Tell a member of staff; ``message`` must hold no personal data."""

    notification_id: str
    reference: Reference
    kind: NotificationKind
    recipient_role: str
    recipient_id: str
    deadline_key: str | None = None
    due: dt.date | None = None
    message: str


class OmbudsmanDetailsGiven(Frozen):
    """The Ombudsman's contact details given with an extension (6.5, 6.16)."""

    record_id: str
    reference: Reference
    stage: int
    extension_seq: int
    letter_id: str
    given_to: tuple[str, ...]
    given_at: dt.datetime
    details: OmbudsmanDetails


def _accepted_intake(value: Any, handler: Any, info: ValidationInfo) -> Any:
    """Decode an intake that was accepted when lodged, without the lodging rules again."""
    if isinstance(value, dict):
        context = dict(info.context) if isinstance(info.context, dict) else {}
        try:
            return Intake.model_validate(value, context={**context, "lodging": False})
        except ValueError as exc:  # a ValidationError: report it as this field's error
            raise ValueError(str(exc)) from None
    return handler(value)


class RecordIntakeInput(Frozen):
    """Store the complaint, its parties and adjustments (idempotent by reference)."""

    intake: Intake
    landlord: str

    _intake = field_validator("intake", mode="wrap")(_accepted_intake)


class CaseSnapshot(Frozen):
    """The read model of a case, written after every change."""

    reference: Reference
    landlord: str
    policy_name: str
    state: str
    stage: int
    handler_id: str | None
    next_deadline: dt.datetime | None
    overdue: bool
    updated_at: dt.datetime
    case: CaseFile
    deadlines: tuple[Deadline, ...]


class AuditBatch(Frozen):
    """Audit events to append; idempotent on (reference, seq)."""

    reference: Reference
    events: tuple[AuditEvent, ...]


class CaseView(BaseModel):
    """The full case as the ``case`` query returns it."""

    model_config = ConfigDict(extra="forbid")

    reference: str
    landlord: str
    policy_name: str
    state: str
    stage: int
    handlers: dict[str, str]
    next_deadline: dt.datetime | None
    overdue: bool
    case: CaseFile
    deadlines: list[Deadline]
    letters: list[LetterRecord]
    rejected: list[AuditEvent]
    #: Signals refused over the case's life (``rejected`` lists the most recent).
    refused_total: int = 0


class CarriedState(BaseModel):
    """What a case carries across continue-as-new."""

    model_config = ConfigDict(extra="forbid")

    policy: Policy
    case: CaseFile
    deadlines: list[Deadline]
    letters: list[LetterRecord]
    notifications_sent: int
    audit_recorded: int


class ComplaintInput(Frozen):
    """The workflow's single argument."""

    intake: Intake
    carried: CarriedState | None = None

    _intake = field_validator("intake", mode="wrap")(_accepted_intake)
