"""The import tables: who imported which historic complaints, from which file, and when.

``complaints import`` (and ``POST /api/v1/imports``) writes a landlord's historic
complaints straight into the report's tables (``complaints.imports``). Each import that
writes anything is one ``import_runs`` row: who ran it, through which door, the SHA-256 of
the file and what it did. ``imported_complaints`` keeps, per imported reference, the run
that last wrote it and the SHA-256 of the row as read: importing the same row again
changes nothing, a changed row replaces what the earlier one wrote. Neither table holds
personal data (the file has none).
"""

import datetime as dt

from sqlalchemy import ForeignKey
from sqlmodel import Field, SQLModel

from models.tables import UTCDateTime, utcnow

__all__ = ["ImportRunRow", "ImportedComplaintRow"]


class ImportRunRow(SQLModel, table=True):
    """One import of a file of historic complaints (dry runs are not recorded)."""

    __tablename__ = "import_runs"

    id: int | None = Field(default=None, primary_key=True)
    #: The staff id of the API caller, or what the command line was given (``--by``).
    by: str = Field(max_length=64)
    #: ``cli`` or ``api``.
    via: str = Field(max_length=16)
    started_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    #: The SHA-256 of the file's bytes, as received.
    file_sha256: str = Field(max_length=64)
    #: Complaint rows in the file, and what became of them.
    row_count: int = 0
    imported: int = 0
    replaced: int = 0
    unchanged: int = 0


class ImportedComplaintRow(SQLModel, table=True):
    """An imported complaint: the run that last wrote it and the row it was built from."""

    __tablename__ = "imported_complaints"

    reference: str = Field(primary_key=True, max_length=32, sa_column_args=[ForeignKey(
        "complaints.reference", name="fk_imported_complaints_reference_complaints",
        ondelete="CASCADE")])
    run_id: int = Field(index=True, sa_column_args=[ForeignKey(
        "import_runs.id", name="fk_imported_complaints_run_import_runs")])
    #: The SHA-256 of the row as read (its columns normalised): the same row imported
    #: again is left alone.
    row_sha256: str = Field(max_length=64)
