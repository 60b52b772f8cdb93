"""The case-file tables: documents, restrictions on contact and triage.

Written by ``complaints.casefiles`` only (never by the workflow's activities), beside the
read model of :mod:`models.tables`, which imports this module so that the tables are on
``SQLModel.metadata`` whenever the tables are.
"""

import datetime as dt

from sqlalchemy import ForeignKey, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.columns import UTCDateTime, reference_fk, utcnow

__all__ = ["DocumentRow", "RestrictionHistoryRow", "RestrictionRow", "TriageRow"]


class DocumentRow(SQLModel, table=True):
    """A document on a case file (5.12): a letter, email, report, photo or survey.

    The file itself is kept under the data folder as ``documents/<reference>/<stored_name>``
    (``<sha256>.<ext>``, ``0600`` in ``0700`` folders; ``complaints.casefiles``); this row
    says what it is. The same bytes are attached to a case once: key (reference, sha256),
    and ``document_id`` (the first 16 hex digits of the SHA-256) names it to staff.
    """

    __tablename__ = "case_documents"
    __table_args__ = (
        UniqueConstraint("reference", "sha256", name="uq_case_documents_reference_sha256"),
        UniqueConstraint("reference", "document_id",
                         name="uq_case_documents_reference_document_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(sa_column_args=[reference_fk("case_documents")])
    document_id: str
    sha256: str = Field(max_length=64)
    #: The original file name, sanitised for display (never used as a path).
    file_name: str
    #: The file's name in the case's documents folder: ``<sha256>.<ext>``.
    stored_name: str
    media_type: str
    size_bytes: int
    kind: str  # letter | email | report | photo | survey | other
    direction: str  # inbound | outbound
    #: The day it was received (inbound) or sent (outbound), when known.
    received_on: dt.date | None = None
    added_by: str | None = None
    added_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    note: str | None = Field(default=None, sa_type=Text)


class RestrictionRow(SQLModel, table=True):
    """A restriction on how a resident may contact the landlord (3.6), kept under review.

    It limits the contact route only; the complaint itself carries on under the Code.
    ``status`` is ``active`` until a review lifts it (``lifted``, ``review_on`` cleared).
    Every change is appended to ``RestrictionHistoryRow``.
    """

    __tablename__ = "contact_restrictions"
    __table_args__ = (
        Index("ix_contact_restrictions_reference", "reference"),
        Index("ix_contact_restrictions_status_review_on", "status", "review_on"),
    )

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(sa_column_args=[reference_fk("contact_restrictions")])
    status: str = "active"
    reason: str = Field(sa_type=Text)
    evidence: str = Field(sa_type=Text)
    proportionality: str = Field(sa_type=Text)
    contact_route: str = Field(sa_type=Text)
    #: The next review date (Europe/London); None once lifted.
    review_on: dt.date | None = None
    added_by: str
    added_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    lifted_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class RestrictionHistoryRow(SQLModel, table=True):
    """One entry of a restriction's append-only history: who did what, and when.

    ``action`` is ``added`` or ``reviewed`` (then ``outcome`` is ``continue``, ``lift`` or
    ``change``); ``snapshot_json`` is the restriction as it stood after the entry.
    """

    __tablename__ = "contact_restriction_history"
    __table_args__ = (
        Index("ix_contact_restriction_history_restriction_id", "restriction_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    restriction_id: int = Field(sa_column_args=[ForeignKey(
        "contact_restrictions.id", name="fk_contact_restriction_history_restriction",
        ondelete="CASCADE")])
    reference: str = Field(sa_column_args=[reference_fk("contact_restriction_history")])
    action: str
    outcome: str | None = None
    note: str | None = Field(default=None, sa_type=Text)
    next_review_on: dt.date | None = None
    by: str
    at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    snapshot_json: str = Field(sa_type=Text)


class TriageRow(SQLModel, table=True):
    """A triage of a case (5.10, 6.1): complexity, vulnerability and risk.

    Every triage is kept; the latest recorded (highest ``id``) is the case's current one.
    """

    __tablename__ = "case_triage"
    __table_args__ = (
        Index("ix_case_triage_reference_id", "reference", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(sa_column_args=[reference_fk("case_triage")])
    complexity: str  # low | medium | high
    vulnerability: str  # none | some | high
    risk: str  # low | medium | high
    note: str | None = Field(default=None, sa_type=Text)
    by: str
    at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
