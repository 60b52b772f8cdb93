"""Messages that cross Temporal boundaries.

The workflow's input, its query result and the activities' inputs and results: one model
per call, a single argument each.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

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
from models.policy import OmbudsmanDetails, Policy

#: A complaint reference, also the workflow id: never personal data.
Reference = Annotated[str, StringConstraints(pattern=r"^CMP-\d{4}-\d{6}$")]


class Intake(Frozen):
    """A complaint as lodged: everything known on receipt.

    Personal data (parties, description) lives here, in the workflow's input and the
    database; never in the workflow id, search attributes, metrics or logs.
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

    @field_validator("issue_occurred_on")
    @classmethod
    def _issue_not_after_receipt(cls, value: dt.date | None, info: object) -> dt.date | None:
        data = getattr(info, "data", {})
        received = data.get("received_on")
        if value is not None and received is not None and value > received:
            raise ValueError("issue_occurred_on cannot be after received_on")
        return value


class DeadlineKind(StrEnum):
    """The windows the Code and the policy set."""

    EARLY_CONTACT = "early_contact"
    STAGE1_ACKNOWLEDGEMENT = "stage1_acknowledgement"
    STAGE1_RESPONSE = "stage1_response"
    ESCALATION_WINDOW = "escalation_window"
    STAGE2_ACKNOWLEDGEMENT = "stage2_acknowledgement"
    STAGE2_RESPONSE = "stage2_response"
    ACTION = "action"


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


class RecordIntakeInput(Frozen):
    """Store the complaint, its parties and adjustments (idempotent by reference)."""

    intake: Intake
    landlord: str


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
