"""The tables of who may get in and what they did there: the HTTP API's and web app's.

SQLModel tables beside :mod:`models.tables`, kept apart because they are about access, not
about complaints: service tokens for integrations, the record of who viewed a case (Code
5.12's record keeping, and the resident's right to know who saw their data), and the
``Idempotency-Key`` of each lodging through the API. Written only by ``complaints.api``,
``complaints.web`` and the ``complaints staff token`` commands, never by workflows; except
``webhook_deliveries``, the integrations' outgoing webhooks, which the recording activity
writes and the worker's dispatcher sends (``complaints.webhooks``).
"""

import datetime as dt

from sqlalchemy import Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.tables import UTCDateTime, utcnow

__all__ = ["CaseViewRow", "IdempotencyRow", "ServiceTokenRow", "WebhookDeliveryRow"]


class ServiceTokenRow(SQLModel, table=True):
    """A bearer token for an integration (a housing-management system, a resident portal).

    The token is shown once, when made; only the SHA-256 of its secret is kept. It acts as
    one member of the staff directory (``staff_id``, normally with the ``integration``
    role) and only within its ``scopes`` (comma-separated names from the permission
    matrix, ``domain.permissions``). Revoked or expired tokens are refused.
    """

    __tablename__ = "service_tokens"

    token_id: str = Field(primary_key=True, max_length=32)
    secret_sha256: str = Field(max_length=64)
    staff_id: str = Field(max_length=64, index=True)
    scopes: str = Field(max_length=2000)
    label: str = Field(max_length=200)
    created_by: str = Field(max_length=64)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_used_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class CaseViewRow(SQLModel, table=True):
    """One viewing of a case's personal data: who, when, what, and through which door."""

    __tablename__ = "case_views"
    __table_args__ = (Index("ix_case_views_reference_at", "reference", "viewed_at"),)

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(max_length=32)
    staff_id: str = Field(max_length=64, index=True)
    #: ``case``, ``letter:ID`` or ``document:ID``.
    what: str = Field(max_length=120)
    #: ``api`` or ``web``.
    via: str = Field(max_length=16)
    viewed_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class IdempotencyRow(SQLModel, table=True):
    """An ``Idempotency-Key`` given with a lodging, and the request it was given with.

    Keys are per caller (``staff_id``): the same key with the same body returns the case
    it made; with a different body it is refused.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("staff_id", "key", name="uq_idempotency_staff_key"),)

    id: int | None = Field(default=None, primary_key=True)
    staff_id: str = Field(max_length=64)
    key: str = Field(max_length=255)
    request_sha256: str = Field(max_length=64)
    reference: str | None = Field(default=None, max_length=32)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class WebhookDeliveryRow(SQLModel, table=True):
    """One signed webhook event for integrations, delivered at least once, keyed once.

    ``event_id`` is stable (the case reference and what happened), so a retried delivery
    is the same event and receivers can drop repeats. Written in the recording activity's
    transaction (``activities.casework``), delivered by ``complaints.webhooks``.
    ``payload`` is the JSON body exactly as signed and sent (no personal data);
    ``next_attempt_at`` is when the dispatcher may try it next (backoff, or the lease of
    an attempt in flight).
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),)

    event_id: str = Field(primary_key=True, max_length=200)
    reference: str = Field(max_length=32, index=True)
    event_type: str = Field(max_length=64)
    url: str = Field(max_length=2000)
    payload: str = Field(default="{}", sa_type=Text)
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=500)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    next_attempt_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    delivered_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
