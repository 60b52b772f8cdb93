"""The data protection tables: retention runs, erasures and subject access exports.

Written by the retention job (``activities.retention``), erasure on request and
``complaints.subject_access``; :mod:`models.tables` imports this module so that the tables
are on ``SQLModel.metadata`` whenever the others are.
"""

import datetime as dt

from sqlalchemy import Boolean, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.columns import UTCDateTime, utcnow

__all__ = ["ErasureRow", "ErasureRunRow", "SubjectAccessRow"]


class ErasureRunRow(SQLModel, table=True):
    """One run of the retention job (``activities.retention``): when, as of when, what.

    ``run_key`` names the run once (the scheduled workflow's run id, or a fresh id for
    ``complaints retention run``), so a retried activity finishes the same row. The counts
    add up the run's ``erasures``; a dry run (``dry_run``) counts what it *would* erase and
    erases nothing. ``skipped_json`` lists the cases passed over and why (references and
    reasons only, the first 100).
    """

    __tablename__ = "erasure_runs"
    __table_args__ = (UniqueConstraint("run_key", name="uq_erasure_runs_run_key"),)

    id: int | None = Field(default=None, primary_key=True)
    run_key: str = Field(max_length=200)
    started_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    as_of: dt.date
    dry_run: bool = Field(default=False, sa_type=Boolean)
    cases_erased: int = 0
    cases_skipped: int = 0
    fields: int = 0
    letters: int = 0
    documents: int = 0
    files: int = 0
    histories: int = 0
    skipped_json: str = Field(default="[]", sa_type=Text)


class ErasureRow(SQLModel, table=True):
    """A case whose personal data was erased: once per case, by a run or on request.

    ``reason`` is ``retention`` (``run_id`` names the run) or ``request`` (a resident's
    erasure request: ``request_id``, who recorded it and their note). The counts say what
    was erased: personal field values replaced, letters and documents tombstoned, files
    deleted, Temporal histories (runs) deleted.
    """

    __tablename__ = "erasures"
    __table_args__ = (UniqueConstraint("reference", name="uq_erasures_reference"),)

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(max_length=32)
    run_id: int | None = Field(default=None, index=True)
    request_id: str | None = Field(default=None, max_length=36)
    reason: str = Field(max_length=16)
    requested_by: str | None = Field(default=None, max_length=64)
    request_note: str | None = Field(default=None, sa_type=Text)
    erased_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    fields: int = 0
    letters: int = 0
    documents: int = 0
    files: int = 0
    histories: int = 0


class SubjectAccessRow(SQLModel, table=True):
    """A subject access export: who made it, when, through which door, how much it held.

    The search terms are personal data and are not kept: only the SHA-256 of the
    normalised terms, so that a repeated request can be recognised.
    """

    __tablename__ = "subject_access_requests"

    id: int | None = Field(default=None, primary_key=True)
    staff_id: str = Field(max_length=64)
    via: str = Field(max_length=16)
    requested_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    cases: int = 0
    files: int = 0
    terms_sha256: str = Field(max_length=64)
