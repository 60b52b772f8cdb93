"""The database tables: the records a landlord must keep (Code 5.12) and the read model.

SQLModel ``table=True`` models, imported only by activities and operator tools, never by
workflow code. The workflow is the source of truth for a running case; these tables are
what the activities write so that staff, reports and auditors can read a case without
Temporal: the complaint as received (with its parties and reasonable adjustments), every
letter as sent and where it went, extensions and the Ombudsman details given with them,
staff notifications, remedies and actions to completion, deadlines and the audit trail.

Every timestamp is timezone-aware and stored in UTC (``UTCDateTime``); every row that an
activity may write more than once has a natural key with a unique constraint, so retried
activities upsert rather than duplicate.

The column types (``UTCDateTime``, ``utcnow``) are in :mod:`models.columns`; the case-file,
staff directory and data protection tables in :mod:`models.case_files`,
:mod:`models.directory` and :mod:`models.data_protection`. All are imported and
re-exported here, so that importing this module puts every one of them on
``SQLModel.metadata`` (the migrations and ``tests/test_db.py`` count on it).
"""

import datetime as dt

from sqlalchemy import (
    Boolean,
    Index,
    LargeBinary,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlmodel import Field, SQLModel

from models.case_files import DocumentRow, RestrictionHistoryRow, RestrictionRow, TriageRow
from models.columns import UTCDateTime, reference_fk, utcnow
from models.data_protection import ErasureRow, ErasureRunRow, SubjectAccessRow
from models.directory import StaffRow

__all__ = [
    "ActionRow",
    "AdjustmentRow",
    "AuditRow",
    "CaseRecordRow",
    "ComplaintRow",
    "DeadlineRow",
    "DeliveryRow",
    "DocumentRow",
    "ErasureRow",
    "ErasureRunRow",
    "ExtensionRow",
    "LetterRow",
    "NotificationDeliveryRow",
    "NotificationRow",
    "OmbudsmanDetailsRow",
    "PartyRow",
    "ReferenceRow",
    "RefusalRow",
    "RemedyPaymentRow",
    "RemedyRow",
    "ResponseRow",
    "RestrictionHistoryRow",
    "RestrictionRow",
    "StaffRow",
    "SubjectAccessRow",
    "TriageRow",
    "UTCDateTime",
    "utcnow",
]


class ComplaintRow(SQLModel, table=True):
    """A complaint as received (5.12) and its current read-model state.

    The received fields are written once by ``record_intake``; everything else (``state``,
    ``stage``, the handlers, the dates the reports count from...) is refreshed by every
    ``record_snapshot`` that is not older than the last one applied.

    The reporting columns (revision 0003): ``acknowledged_on`` and
    ``stage2_acknowledged_on`` are the Europe/London dates the stage 1 complaint and the
    stage 2 request were acknowledged (6.2, 6.11), ``acknowledgement_due`` and
    ``stage2_acknowledgement_due`` the due dates in force for them; ``excluded`` is true
    while the complaint stands refused under the policy's exclusions (2.x) and
    ``escalation_refused`` while its escalation stands refused (5.11); ``declined_at``,
    ``withdrawn_at`` and ``referred_to_ombudsman_at`` say when those happened.
    """

    __tablename__ = "complaints"
    __table_args__ = (
        Index("ix_complaints_landlord_received_on", "landlord", "received_on"),
        Index("ix_complaints_state_next_deadline", "state", "next_deadline"),
        Index("ix_complaints_policy_received_on", "policy_name", "received_on"),
        Index("ix_complaints_escalation_requested_on", "escalation_requested_on"),
        Index("ix_complaints_referred_to_ombudsman_at", "referred_to_ombudsman_at"),
        # The report's pass over the responses joins each to its complaint for these
        # columns only: with them in the index the join never reads the table row
        # (half the pass's time on SQLite; revision 0016).
        Index("ix_complaints_report_join", "reference", "state", "landlord", "tenure",
              "policy_name", "category", "escalation_requested_on"),
        Index("ix_complaints_taken_on_on", "taken_on_on"),
        # Inboxes find a handler's cases whatever the capitals typed (staff ids are one
        # person in any case): an index on the expression the query uses.
        Index("ix_complaints_handler_lower", text("lower(handler_id)")),
    )

    reference: str = Field(primary_key=True)
    landlord: str
    policy_name: str
    channel: str
    channel_reference: str | None = None
    category: str = Field(index=True)
    received_on: dt.date = Field(index=True)
    issue_occurred_on: dt.date | None = None
    description: str = Field(sa_type=Text)
    outcomes_sought: str = Field(default="", sa_type=Text)
    state: str = "received"
    stage: int = 0
    handler_id: str | None = Field(default=None, index=True)
    next_deadline: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    overdue: bool = Field(default=False, sa_type=Boolean)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    closed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    #: The ``updated_at`` (workflow time) of the last snapshot applied; None before any.
    snapshot_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    stage1_handler: str | None = None
    stage2_handler: str | None = None
    acknowledged_on: dt.date | None = None
    acknowledgement_due: dt.date | None = None
    escalation_requested_on: dt.date | None = None
    stage2_acknowledged_on: dt.date | None = None
    stage2_acknowledgement_due: dt.date | None = None
    excluded: bool = Field(default=False, sa_type=Boolean)
    declined_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    escalation_refused: bool = Field(default=False, sa_type=Boolean)
    withdrawn_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    referred_to_ombudsman_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    #: The resident's tenure (``lcra`` / ``lcho`` / ``other``), None when not recorded: the
    #: Regulator's CH01 and CH02 are published per tenure (revision 0012).
    tenure: str | None = None
    #: The day a declined complaint was taken on by the Ombudsman's order (the start of
    #: its new acknowledgement clock): it counts in CH01 for that day's year, not the
    #: year received, so a published year never changes (revision 0012).
    taken_on_on: dt.date | None = None
    #: The row came from ``complaints import`` (a year brought from the landlord's old
    #: system): no workflow runs it, and the report counts it as a live one (revision 0014).
    imported: bool = Field(default=False, sa_type=Boolean,
                           sa_column_kwargs={"server_default": false()})


class PartyRow(SQLModel, table=True):
    """A person the landlord corresponds with about a complaint (3.6; group complaints)."""

    __tablename__ = "parties"
    __table_args__ = (
        UniqueConstraint("reference", "position", name="uq_parties_reference_position"),
    )

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(sa_column_args=[reference_fk("parties")])
    position: int
    role: str
    name: str
    address: str = Field(default="", sa_type=Text)
    email: str | None = None
    phone: str | None = None


class AdjustmentRow(SQLModel, table=True):
    """A reasonable adjustment agreed or a disability disclosed, kept under review (5.10)."""

    __tablename__ = "adjustments"
    __table_args__ = (
        UniqueConstraint("reference", "position", name="uq_adjustments_reference_position"),
    )

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(sa_column_args=[reference_fk("adjustments")])
    position: int
    description: str = Field(sa_type=Text)
    disability_disclosed: bool = Field(default=False, sa_type=Boolean)
    recorded_on: dt.date
    reviewed_on: dt.date | None = None


class LetterRow(SQLModel, table=True):
    """A letter exactly as rendered and sent (5.12: all correspondence)."""

    __tablename__ = "letters"
    __table_args__ = (
        # Covers "is this response's letter on record" (the 5.12 evidence) without
        # reading the letters' text.
        Index("ix_letters_reference_kind_stage", "reference", "kind", "stage"),
    )

    letter_id: str = Field(primary_key=True)
    reference: str = Field(index=True)
    kind: str
    stage: int
    seq: int
    subject: str
    text: str = Field(sa_type=Text)
    html: str = Field(sa_type=Text)
    sha256: str = Field(max_length=64)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    #: The letter printed to an accessible PDF from ``html`` (None for letters stored
    #: before revision 0009), and the SHA-256 of those bytes.
    pdf: bytes | None = Field(default=None, sa_type=LargeBinary)
    pdf_sha256: str | None = Field(default=None, max_length=64)


class DeliveryRow(SQLModel, table=True):
    """One delivery of a letter over one channel to one recipient, made at most once."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("letter_id", "channel", "recipient",
                         name="uq_deliveries_letter_channel_recipient"),
    )

    id: int | None = Field(default=None, primary_key=True)
    letter_id: str
    channel: str  # "outbox" | "smtp"
    recipient: str  # "file" for the outbox, the email address for SMTP
    status: str = "sent"
    delivered_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ExtensionRow(SQLModel, table=True):
    """An extension granted at a stage (6.4, 6.15), from the case snapshot."""

    __tablename__ = "extensions"
    __table_args__ = (
        UniqueConstraint("reference", "extension_seq", name="uq_extensions_reference_seq"),
    )

    id: int | None = Field(default=None, primary_key=True)
    reference: str
    extension_seq: int
    stage: int
    working_days: int
    reason: str = Field(sa_type=Text)
    good_reason: str | None = Field(default=None, sa_type=Text)
    granted_by: str
    granted_at: dt.datetime = Field(sa_type=UTCDateTime)
    #: The extension's number at its stage (1, 2...), as ``OmbudsmanDetailsRow`` counts.
    stage_seq: int | None = None


class OmbudsmanDetailsRow(SQLModel, table=True):
    """The Ombudsman's contact details exactly as given with an extension (6.5, 6.16)."""

    __tablename__ = "ombudsman_details"
    __table_args__ = (
        Index("ix_ombudsman_details_reference_stage", "reference", "stage"),
    )

    record_id: str = Field(primary_key=True)
    reference: str
    stage: int
    extension_seq: int
    letter_id: str = Field(index=True)
    given_to: str = Field(sa_type=Text)  # the recipients' names, one a line
    given_at: dt.datetime = Field(sa_type=UTCDateTime)
    name: str
    address: str
    phone: str
    phone_hours: str
    online_form: str
    email: str | None = None
    email_new_cases_until: dt.date | None = None


class NotificationRow(SQLModel, table=True):
    """A notice sent to a member of staff (reminder, breach...), sent at most once."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_reference_kind", "reference", "kind"),
    )

    notification_id: str = Field(primary_key=True)
    reference: str
    kind: str
    recipient_role: str
    recipient_id: str = Field(index=True)
    deadline_key: str | None = None
    due: dt.date | None = None
    message: str = Field(sa_type=Text)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class NotificationDeliveryRow(SQLModel, table=True):
    """One email of a staff notification: claimed (``sending``) before it is sent, then done.

    The same claim-and-marker record as ``DeliveryRow`` for letters
    (``activities.email_once``), kept apart so that letters' deliveries stay exactly the
    letters'. The notification's own row (``NotificationRow``) is written once every
    channel is done; this one lets a retry after a crash tell whether the email went.
    """

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        UniqueConstraint("notification_id", "channel", "recipient",
                         name="uq_notification_deliveries_notification_channel_recipient"),
    )

    id: int | None = Field(default=None, primary_key=True)
    notification_id: str
    channel: str  # "smtp"
    recipient: str  # the member of staff's email address
    status: str = "sent"
    delivered_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


#: The rows of the remedies' partial indexes: the financial remedies.
FINANCIAL_REMEDY = text("kind = 'financial'")


class RemedyRow(SQLModel, table=True):
    """A remedy offered in a stage response (7.1-7.3); key (reference, stage, position)."""

    __tablename__ = "remedies"
    __table_args__ = (
        UniqueConstraint("reference", "stage", "position",
                         name="uq_remedies_reference_stage_position"),
        # The financial remedies, as the report reads them besides their tally (revision
        # 0020): by the date promised, for the unpaid ones listed in that order, and by
        # the instant offered, a response's side by side, for the responses offering money.
        Index("ix_remedies_financial_due", "due_by", "reference", "stage", "position",
              "offered_at", postgresql_where=FINANCIAL_REMEDY, sqlite_where=FINANCIAL_REMEDY),
        Index("ix_remedies_financial_offered", "offered_at", "reference", "stage",
              postgresql_where=FINANCIAL_REMEDY, sqlite_where=FINANCIAL_REMEDY),
    )

    id: int | None = Field(default=None, primary_key=True)
    reference: str
    stage: int
    position: int
    kind: str = Field(index=True)
    description: str = Field(sa_type=Text)
    amount_pence: int | None = None
    due_by: dt.date | None = None
    decision: str
    offered_by: str
    offered_at: dt.datetime = Field(sa_type=UTCDateTime)


class RemedyPaymentRow(SQLModel, table=True):
    """A financial remedy paid, as ``pay_remedy`` recorded it (7.1-7.3); key (reference, seq).

    Written beside the audit entry of the accepted action (``seq`` is the entry's), from
    what staff submitted: the response's stage, the remedy's number in it, the day paid
    and the amount. The report counts payments from these columns (revision 0017; before
    it read each entry's JSON).
    """

    __tablename__ = "remedy_payments"
    __table_args__ = (
        UniqueConstraint("reference", "seq", name="uq_remedy_payments_reference_seq"),
        Index("ix_remedy_payments_reference_stage_position", "reference", "stage",
              "position"),
    )

    id: int | None = Field(default=None, primary_key=True)
    reference: str
    seq: int
    stage: int
    position: int
    paid_on: dt.date
    amount_pence: int


class ActionRow(SQLModel, table=True):
    """An outstanding action after a response, tracked to completion (6.6, 6.17, 7.3)."""

    __tablename__ = "actions"
    __table_args__ = (
        UniqueConstraint("reference", "action_id", name="uq_actions_reference_action_id"),
        # The open actions (not completed, or completed after an as-of date) by due date:
        # the report's overdue actions (revision 0020).
        Index("ix_actions_completed_on_due_by", "completed_on", "due_by"),
    )

    id: int | None = Field(default=None, primary_key=True)
    reference: str
    action_id: str
    stage: int
    description: str = Field(sa_type=Text)
    due_by: dt.date
    owner: str | None = None
    completed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    #: The Europe/London date of ``completed_at`` (revision 0003), for on-time counts.
    completed_on: dt.date | None = None


class DeadlineRow(SQLModel, table=True):
    """A deadline of a case and what became of it (CH02: responded to within timescale)."""

    __tablename__ = "deadlines"
    __table_args__ = (
        UniqueConstraint("reference", "key", name="uq_deadlines_reference_key"),
        Index("ix_deadlines_status_ends_at", "status", "ends_at"),
        Index("ix_deadlines_kind_due", "kind", "due"),
    )

    id: int | None = Field(default=None, primary_key=True)
    reference: str
    key: str
    kind: str
    stage: int
    label: str
    provision: str
    start: dt.date
    due: dt.date
    ends_at: dt.datetime = Field(sa_type=UTCDateTime)
    status: str
    met_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    breached_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class ResponseRow(SQLModel, table=True):
    """A stage response as issued, with the dates it is measured against (CH02, 6.3, 6.14).

    Written by ``record_snapshot`` from the case's responses and response deadlines; key
    (reference, stage, seq), ``seq`` counting the responses at that stage (1 in practice).

    Attributes:
        responded_on: The Europe/London date the response was issued.
        clock_start: The day the stage's response clock started (day 0): the
            acknowledgement, or receipt / the stage 2 request under a policy that counts
            from those.
        due_base: The due date without any extension (10 / 20 working days, 6.3 / 6.14).
        due_final: The due date in force when the response was issued, extensions included.
        extension_days: Working days of extension at the stage (``due_base`` to
            ``due_final``).
        extension_within_code: Whether the extension keeps within the Code: no more than
            the cap (6.4: 10, 6.15: 20 working days) or a good reason recorded.
        working_days_taken: Working days from ``clock_start`` to ``responded_on``.
        acknowledged_on: The day the stage was acknowledged (stage 1: the complaint,
            stage 2: the escalation request); None when it never was (revision 0012).
        acknowledgement_due: The acknowledgement's due date as planned (5 working days of
            receipt / the request at most, 6.2 / 6.11).
        extensions_timely: Whether every extension of the response's clock was agreed on
            or before the due date it extends (true with none; None: not yet measured).
        within_code: The strict CH02 verdict: acknowledged by its due date, and responded
            by the due date in force after timely, Code-compliant extensions only. None
            for rows written before revision 0012 until ``complaints resync``.
        late_reason: Why the response is not within the Code timescales (the report's
            disclosure), None when it is.
    """

    __tablename__ = "responses"
    __table_args__ = (
        UniqueConstraint("reference", "stage", "seq", name="uq_responses_reference_stage_seq"),
        Index("ix_responses_stage_responded_on", "stage", "responded_on"),
    )

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(sa_column_args=[reference_fk("responses")])
    stage: int
    seq: int
    decision: str
    responded_at: dt.datetime = Field(sa_type=UTCDateTime)
    responded_on: dt.date
    by: str
    clock_start: dt.date
    due_base: dt.date
    due_final: dt.date
    extension_days: int = 0
    extension_within_code: bool = Field(default=True, sa_type=Boolean)
    working_days_taken: int
    acknowledged_on: dt.date | None = None
    acknowledgement_due: dt.date | None = None
    extensions_timely: bool | None = Field(default=None, sa_type=Boolean)
    within_code: bool | None = Field(default=None, sa_type=Boolean)
    late_reason: str | None = None


class RefusalRow(SQLModel, table=True):
    """A refusal and one of its grounds: a complaint excluded (2.x) or escalation (5.11).

    One row per ground, key (reference, kind, ground); ``kind`` is ``complaint`` or
    ``escalation``. Kept when an Ombudsman's order later overturns the refusal: it was
    still made, and is reported (8.1(b)).
    """

    __tablename__ = "refusals"
    __table_args__ = (
        UniqueConstraint("reference", "kind", "ground",
                         name="uq_refusals_reference_kind_ground"),
        Index("ix_refusals_kind_decided_on", "kind", "decided_on"),
    )

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(sa_column_args=[reference_fk("refusals")])
    kind: str
    ground: str
    decided_at: dt.datetime = Field(sa_type=UTCDateTime)
    decided_on: dt.date
    by: str


class AuditRow(SQLModel, table=True):
    """One entry of a case's append-only audit trail; key (reference, seq)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        UniqueConstraint("reference", "seq", name="uq_audit_events_reference_seq"),
        # Reports count accepted actions of one kind in a period (determinations).
        Index("ix_audit_events_action_at", "action", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    reference: str
    seq: int
    at: dt.datetime = Field(sa_type=UTCDateTime)
    action: str
    by: str
    from_state: str
    to_state: str
    accepted: bool = Field(default=True, sa_type=Boolean)
    detail: str = Field(default="", sa_type=Text)


class ReferenceRow(SQLModel, table=True):
    """Complaint references handed out, and the channel id and intake each was lodged for.

    Lodging the same intake twice (same channel reference and the same fingerprint) is
    given the same reference, hence the same workflow: one case, not two. A different
    intake under a reference or channel reference already here is refused, never merged
    (``complaints.lodging``); Temporal, not this table, has the last word on which
    references exist.
    """

    __tablename__ = "references"
    __table_args__ = (
        UniqueConstraint("year", "seq", name="uq_references_year_seq"),
        UniqueConstraint("channel", "channel_reference", name="uq_references_channel"),
    )

    reference: str = Field(primary_key=True)
    year: int
    seq: int
    channel: str
    channel_reference: str | None = Field(default=None)
    #: SHA-256 of the intake without its reference (``complaints.lodging``); never logged.
    #: NULL for references handed out before revision 0004.
    fingerprint: str | None = Field(default=None)
    created_at: dt.datetime = Field(default_factory=lambda: utcnow(),
                                    sa_type=UTCDateTime)  # type: ignore[call-overload]


class CaseRecordRow(SQLModel, table=True):
    """What the ``Complaint`` workflow has recorded of a case, event by event.

    ``record_case_event`` applies each event once (``event_seq`` is the last applied): the
    case file and deadlines as JSON (merged from each event's changes), from which the read
    model rows and letters are written, what the last event replaced (``undo_json``), and
    the case's policy as it was loaded when the case started, so its letters print the
    details the case runs under.
    """

    __tablename__ = "case_records"

    reference: str = Field(primary_key=True, foreign_key="complaints.reference")
    event_seq: int = 0
    policy_json: str = Field(sa_type=Text)  # type: ignore[call-overload]
    case_json: str = Field(default="{}", sa_type=Text)  # type: ignore[call-overload]
    deadlines_json: str = Field(default="[]", sa_type=Text)  # type: ignore[call-overload]
    #: What the latest event replaced, to take back if it is recorded again in another
    #: version: ``{"case": {field: old}, "absent": [field], "deadlines": {key: old|null}}``.
    undo_json: str = Field(default="{}", sa_type=Text)  # type: ignore[call-overload]
    updated_at: dt.datetime = Field(default_factory=lambda: utcnow(),
                                    sa_type=UTCDateTime)  # type: ignore[call-overload]
