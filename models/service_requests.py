"""The service request tables: requests for something to be put right (Code 1.4, 1.5).

A service request is not a complaint: it starts no workflow and has no Code time limits,
but it must be recorded, monitored and reviewed (1.4). ``service_requests`` holds each one
as logged, resolved and, when the resident is dissatisfied, converted to a complaint (1.5:
the request carries on alongside the complaint). ``complaint_service_requests`` is the
complaint's side of that link, kept apart so that ``complaints`` and the workflow's input
stay as they are.

The resident's name, address, email and phone and the description are personal data:
erased by retention as a complaint's parties are (``activities.retention``); the id,
dates, channel, category and links are kept, so the monitoring figures do not change.
"""

import datetime as dt

from sqlalchemy import Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.tables import UTCDateTime, utcnow

__all__ = ["ComplaintServiceRequestRow", "ServiceRequestRow"]


class ServiceRequestRow(SQLModel, table=True):
    """A service request: logged, then resolved; maybe converted to a complaint.

    ``id`` is ``SR-YYYY-NNNNNN``, numbered per year of receipt (``year``, ``seq``) in a
    series of its own, as complaint references are. A channel's own id
    (``channel_reference``) is logged once: logging it again finds the same request.
    """

    __tablename__ = "service_requests"
    __table_args__ = (
        UniqueConstraint("year", "seq", name="uq_service_requests_year_seq"),
        UniqueConstraint("channel", "channel_reference", name="uq_service_requests_channel"),
        Index("ix_service_requests_resolved_on_target_date", "resolved_on", "target_date"),
    )

    id: str = Field(primary_key=True, max_length=32)
    year: int
    seq: int
    channel: str = Field(max_length=32)
    channel_reference: str | None = Field(default=None, max_length=200)
    #: A free-text label (the themes the monitoring counts); not personal data.
    category: str = Field(max_length=200, index=True)
    received_on: dt.date = Field(index=True)
    target_date: dt.date
    resident_name: str = Field(max_length=200)
    #: One line a line.
    resident_address: str = Field(default="", sa_type=Text)
    resident_email: str | None = Field(default=None, max_length=200)
    resident_phone: str | None = Field(default=None, max_length=200)
    description: str = Field(sa_type=Text)
    logged_by: str = Field(max_length=64)
    logged_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    resolved_on: dt.date | None = None
    resolved_by: str | None = Field(default=None, max_length=64)
    resolution: str | None = Field(default=None, sa_type=Text)
    #: The complaint it was converted to (1.5), when the resident was dissatisfied.
    complaint_reference: str | None = Field(default=None, max_length=32, index=True)
    converted_on: dt.date | None = None
    converted_by: str | None = Field(default=None, max_length=64)
    #: The day the resident was told how to complain (1.6, e.g. after a survey).
    told_how_to_complain_on: dt.date | None = None
    told_how_to_complain_by: str | None = Field(default=None, max_length=64)
    #: When retention erased its personal fields (None: not erased).
    erased_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class ComplaintServiceRequestRow(SQLModel, table=True):
    """A complaint's link to the service request it was raised from (Code 1.5).

    Written when the request is converted, in the same transaction as the request's own
    ``complaint_reference``; one request per complaint.
    """

    __tablename__ = "complaint_service_requests"

    reference: str = Field(primary_key=True, max_length=32)
    service_request_id: str = Field(max_length=32, index=True)
    linked_by: str = Field(max_length=64)
    linked_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
