"""Service requests (Code 1.4-1.6): log (idempotently), list, read, resolve, convert.

A service request is not a complaint: it lives in the database only. Converting one
(1.5) lodges a complaint through :func:`complaints.lodging.lodge`, as ``POST
/complaints`` does, and links the two; the request stays open. Reading one shows the
resident's data and is recorded (``case_views``, what ``service_request``); the list
shows none, and takes no personal data in its query string.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlmodel import Session

from complaints import service_requests as sr
from complaints.api.cases import _fingerprint
from complaints.api.deps import ApiContext, ContextDep, CurrentUser, SessionDep, require
from complaints.api.problems import Problem
from complaints.identity import Identity, record_view
from domain.permissions import Permission
from models.case import Channel, Label, Text
from models.messages import Intake
from models.service_requests import ServiceRequestRow

router = APIRouter(prefix="/service-requests", tags=["service requests"])

#: The most rows a page of the list holds.
MAX_PER_PAGE = 100


class ServiceRequestSummary(BaseModel):
    """A service request in a list: no personal data."""

    id: str
    status: str
    overdue: bool
    channel: str
    category: str
    received_on: dt.date
    target_date: dt.date
    resolved_on: dt.date | None
    complaint_reference: str | None
    told_how_to_complain_on: dt.date | None


class ServiceRequestOut(ServiceRequestSummary):
    """A service request with everything on it (the resident's data included)."""

    channel_reference: str | None
    resident_name: str
    resident_address: list[str]
    resident_email: str | None
    resident_phone: str | None
    description: str
    logged_by: str
    logged_at: dt.datetime
    resolved_by: str | None
    resolution: str | None
    converted_on: dt.date | None
    converted_by: str | None
    told_how_to_complain_by: str | None
    erased: bool


class ServiceRequestPage(BaseModel):
    """One page of service requests, overdue first, then by target date."""

    items: list[ServiceRequestSummary]
    total: int
    page: int
    per_page: int


class ListFilter(BaseModel):
    """What the list may be narrowed by (never personal data)."""

    open: bool = Field(default=False, description="Only those not resolved.")
    overdue: bool = Field(default=False, description="Only open ones past their target.")
    category: Label | None = None
    page: int = Field(default=1, ge=1)
    per_page: int = Field(default=50, ge=1, le=MAX_PER_PAGE)


class ResolveIn(BaseModel):
    """How a service request was put right."""

    resolution: Text
    resolved_on: dt.date | None = Field(default=None, description="Default: today.")


class ToldIn(BaseModel):
    """When the resident was told how to complain (Code 1.6)."""

    on: dt.date | None = Field(default=None, description="Default: today.")


class ConvertIn(BaseModel):
    """The complaint a dissatisfied resident's request becomes; the rest comes from it."""

    policy_name: Label = "code-2024"
    received_on: dt.date | None = Field(
        default=None, description="The day they expressed dissatisfaction (default: today).")
    channel: Channel | None = Field(default=None,
                                    description="Default: the request's channel.")
    description: Text | None = Field(default=None,
                                     description="Default: the request's description.")
    outcomes_sought: list[Text] = []


class ConvertedOut(BaseModel):
    """The complaint a service request was converted to."""

    service_request_id: str
    reference: str
    created: bool


def summary_of(row: ServiceRequestRow, today: dt.date) -> ServiceRequestSummary:
    """A request's list entry."""
    return ServiceRequestSummary(
        id=row.id, status="resolved" if row.resolved_on is not None else "open",
        overdue=sr.is_overdue(row, today), channel=row.channel, category=row.category,
        received_on=row.received_on, target_date=row.target_date,
        resolved_on=row.resolved_on, complaint_reference=row.complaint_reference,
        told_how_to_complain_on=row.told_how_to_complain_on)


def detail_of(row: ServiceRequestRow, today: dt.date) -> ServiceRequestOut:
    """A request with everything on it."""
    return ServiceRequestOut(
        **summary_of(row, today).model_dump(), channel_reference=row.channel_reference,
        resident_name=row.resident_name,
        resident_address=[x for x in row.resident_address.splitlines() if x.strip()],
        resident_email=row.resident_email, resident_phone=row.resident_phone,
        description=row.description, logged_by=row.logged_by, logged_at=row.logged_at,
        resolved_by=row.resolved_by, resolution=row.resolution, converted_on=row.converted_on,
        converted_by=row.converted_by, told_how_to_complain_by=row.told_how_to_complain_by,
        erased=row.erased_at is not None)


def refused(exc: sr.ServiceRequestError) -> Problem:
    """A service request refusal as a problem."""
    return Problem(exc.status, exc.detail)


async def write(context: ApiContext, work: Any) -> Any:
    """Run ``work(session)`` in a write session; a refusal becomes its problem."""
    try:
        return await context.write(work)
    except sr.ServiceRequestError as exc:
        raise refused(exc) from None


def _location(request_id: str) -> dict[str, str]:
    return {"Location": f"/api/v1/service-requests/{request_id}"}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ServiceRequestOut,
             summary="Log a service request",
             responses={200: {"model": ServiceRequestOut,
                              "description": "Logged before with this key or channel id"},
                        409: {"description": "A channel reference taken by another"},
                        422: {"description": "Invalid request, or a key reused"},
                        428: {"description": "No Idempotency-Key"}})
async def log(body: sr.ServiceRequestIn, context: ContextDep, session: SessionDep,
              who: CurrentUser,
              idempotency_key: Annotated[str | None, Header(
                  alias="Idempotency-Key", max_length=255,
                  description="Any unique string per service request; a retry sends the "
                              "same key and body and gets the same request.")] = None,
              ) -> JSONResponse:
    """Log a service request, once: the same key and body return the request made."""
    require(context, who, Permission.LOG_SERVICE_REQUESTS)
    if not idempotency_key:
        raise Problem(428, "send an Idempotency-Key header (any unique string per service "
                           "request) so that a retry cannot log it twice")
    session.rollback()  # nothing read is kept: the write below decides
    digest = _fingerprint({"service_request": body.model_dump(mode="json")})
    today = context.today()
    row, created = await write(context, lambda w: sr.log_request(
        w, body, who.staff_id, today=today,
        idempotency=(who.staff_id, idempotency_key, digest)))
    return JSONResponse(detail_of(row, today).model_dump(mode="json"),
                        201 if created else 200, headers=_location(row.id))


@router.get("", response_model=ServiceRequestPage, summary="List service requests")
def list_requests(context: ContextDep, session: SessionDep, who: CurrentUser,
                  wanted: Annotated[ListFilter, Query()]) -> ServiceRequestPage:
    """Service requests, overdue first, then by target date; no personal data."""
    require(context, who, Permission.READ_CASES)
    today = context.today()
    rows, total = sr.list_requests(session, today=today, open_only=wanted.open,
                                   overdue=wanted.overdue, category=wanted.category,
                                   page=wanted.page, per_page=wanted.per_page)
    return ServiceRequestPage(items=[summary_of(r, today) for r in rows], total=total,
                              page=wanted.page, per_page=wanted.per_page)


def _known(session: Session, request_id: str) -> ServiceRequestRow:
    try:
        return sr.get_request(session, request_id)
    except sr.ServiceRequestError as exc:
        raise refused(exc) from None


async def viewed(context: ApiContext, who: Identity, request_id: str, via: str) -> None:
    """Record that ``who`` saw a service request's personal data."""
    await context.write(lambda w: record_view(w, who, request_id, "service_request", via))


@router.get("/{request_id}", response_model=ServiceRequestOut, summary="A service request")
async def get_request(request_id: str, context: ContextDep, session: SessionDep,
                      who: CurrentUser) -> ServiceRequestOut:
    """A service request with the resident's details; the viewing is recorded."""
    require(context, who, Permission.READ_CASES)
    row = _known(session, request_id)
    session.rollback()
    await viewed(context, who, row.id, "api")
    return detail_of(row, context.today())


@router.post("/{request_id}/resolve", response_model=ServiceRequestOut,
             summary="Resolve a service request")
async def resolve(request_id: str, body: ResolveIn, context: ContextDep, who: CurrentUser,
                  ) -> ServiceRequestOut:
    """Record that it was put right: when, by whom, how."""
    require(context, who, Permission.LOG_SERVICE_REQUESTS)
    today = context.today()
    row = await write(context, lambda w: sr.resolve(
        w, request_id, who.staff_id, body.resolution, resolved_on=body.resolved_on,
        today=today))
    return detail_of(row, today)


@router.post("/{request_id}/told-how-to-complain", response_model=ServiceRequestOut,
             summary="Record that the resident was told how to complain")
async def told(request_id: str, body: ToldIn, context: ContextDep, who: CurrentUser,
               ) -> ServiceRequestOut:
    """Record the day the resident was told how to complain (Code 1.6)."""
    require(context, who, Permission.LOG_SERVICE_REQUESTS)
    today = context.today()
    row = await write(context, lambda w: sr.told_how_to_complain(
        w, request_id, who.staff_id, on=body.on, today=today))
    return detail_of(row, today)


async def convert_request(context: ApiContext, who: Identity, request_id: str,
                          body: ConvertIn) -> sr.Converted:
    """Convert a request to a complaint through the API's lodging path (also the web's).

    Raises:
        Problem: Not allowed (403), no such request (404), lodging refused (409), or an
            invalid complaint (422).
    """
    from complaints.api.cases import recorded
    from complaints.lodging import LodgingRefused, lodge
    from complaints.policies import PolicyError

    require(context, who, Permission.CONVERT_SERVICE_REQUESTS)

    async def lodge_it(intake: Intake) -> tuple[str, bool]:
        client = await context.temporal()
        done = await lodge(client, context.engine, intake, context.settings.temporal_task_queue)
        return done.reference, done.created

    try:
        converted = await sr.convert_to_complaint(
            context.engine, request_id, lodge_it, by=who.staff_id,
            policy_name=body.policy_name, received_on=body.received_on,
            channel=body.channel.value if body.channel else None,
            description=body.description, outcomes_sought=tuple(body.outcomes_sought),
            today=context.today())
    except sr.ServiceRequestError as exc:
        raise refused(exc) from None
    except LodgingRefused as exc:
        raise Problem(409, str(exc)) from None
    except PolicyError as exc:
        raise Problem(422, str(exc)) from None
    await recorded(context, converted.reference)
    return converted


@router.post("/{request_id}/convert", status_code=status.HTTP_201_CREATED,
             response_model=ConvertedOut, summary="Convert to a complaint (Code 1.5)",
             responses={200: {"model": ConvertedOut, "description": "Converted before"},
                        409: {"description": "Lodging refused"}})
async def convert(request_id: str, body: ConvertIn, context: ContextDep,
                  who: CurrentUser) -> JSONResponse:
    """Lodge a complaint from a service request; the request carries on alongside it."""
    done = await convert_request(context, who, request_id, body)
    return JSONResponse(done.model_dump(mode="json"), 201 if done.created else 200,
                        headers={"Location": f"/api/v1/complaints/{done.reference}"})
