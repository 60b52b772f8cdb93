"""The staff directory's table: who works on complaints, by the id they type.

Kept by ``complaints.directory``; :mod:`models.tables` imports this module so that the
table is on ``SQLModel.metadata`` whenever the others are.
"""

import datetime as dt

from sqlalchemy import Boolean, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.columns import UTCDateTime, utcnow

__all__ = ["StaffRow"]


class StaffRow(SQLModel, table=True):
    """A member of staff in the staff directory (``complaints.directory``).

    ``staff_id`` is the id people type in commands (``mgr-1``), kept as first typed;
    ``staff_key`` is its :func:`models.limits.staff_key` (case, compatibility forms and
    invisible characters folded), unique, so ``MGR-1`` and ``mgr-1`` are one person.
    ``roles`` is a comma-separated list from ``complaints.directory.ROLES``. A member of
    staff who leaves is made inactive (``active`` false, with when and why), never deleted,
    so the ids on past cases keep their meaning.
    """

    __tablename__ = "staff"
    __table_args__ = (
        UniqueConstraint("staff_key", name="uq_staff_staff_key"),
        UniqueConstraint("subject", name="uq_staff_subject"),
    )

    staff_id: str = Field(primary_key=True, max_length=64)
    staff_key: str = Field(max_length=256)
    display_name: str = Field(max_length=200)
    job_title: str = Field(max_length=200)
    team: str = Field(max_length=200)
    email: str = Field(max_length=254)
    phone: str | None = Field(default=None, max_length=40)
    roles: str = Field(max_length=200)
    #: Their OpenID Connect subject (the ``sub``, or the claim ``OIDC_SUBJECT_CLAIM`` names,
    #: e.g. Entra ID's ``oid``): who they are when they sign in. Unique when set.
    subject: str | None = Field(default=None, max_length=255)
    active: bool = Field(default=True, sa_type=Boolean)
    deactivated_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    deactivation_reason: str | None = Field(default=None, max_length=1000)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
