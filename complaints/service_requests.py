"""Service requests: log, resolve, convert to a complaint, and monitor them (Code 1.4-1.6).

A service request is a resident's request for something to be put right. It is not a
complaint and starts no workflow, but it must be recorded, monitored and reviewed (1.4).
When the resident is dissatisfied with the response, a complaint is raised (1.5):
:func:`convert_to_complaint` lodges one through the normal lodging path
(:mod:`complaints.lodging`) with the request's resident and description, and records the
link both ways; the request carries on until it is resolved. A resident who expressed
dissatisfaction in a survey is told how to complain (1.6): :func:`told_how_to_complain`.

:func:`report` gives the monitoring figures for a period (volumes, conversion rate,
themes) from an engine or a connection, for the annual report to include.

Shared by the command line (:mod:`complaints.service_requests_cli`), the API
(:mod:`complaints.api.service_requests`) and the web pages. Every refusal is a
:class:`ServiceRequestError` with one line for staff and an HTTP status. Nothing here
logs or quotes the resident's data: ids, dates and counts only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import ColumnElement, Connection, Engine, and_, case, func, or_
from sqlalchemy import select as core_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from models.access import IdempotencyRow
from models.case import Channel, Label, Party, PartyRole, Text
from models.limits import first_problem
from models.messages import Intake
from models.service_requests import ComplaintServiceRequestRow, ServiceRequestRow
from models.tables import StaffRow, utcnow

__all__ = [
    "MAX_SEQ",
    "Converted",
    "ServiceRequestError",
    "ServiceRequestIn",
    "ServiceRequestReport",
    "Theme",
    "check_by",
    "convert_to_complaint",
    "format_id",
    "get_request",
    "intake_for",
    "is_overdue",
    "list_requests",
    "log_request",
    "parse_id",
    "report",
    "resident_of",
    "resolve",
    "told_how_to_complain",
]

#: The largest sequence number an id carries (``SR-YYYY-NNNNNN``).
MAX_SEQ = 999_999
#: A complaint reference that passes the pattern; the real one is allocated when lodged.
_PLACEHOLDER = "CMP-0000-000000"


class ServiceRequestError(Exception):
    """A refusal: one line for staff (what is wrong, how to fix it) and an HTTP status.

    Attributes:
        detail: The line.
        status: 404 (no such request), 409 (a conflict) or 422 (bad input).
    """

    def __init__(self, detail: str, status: int = 422) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


def _london_today() -> dt.date:
    from complaints.casefiles import london_today

    return london_today()


def format_id(year: int, seq: int) -> str:
    """``SR-YYYY-NNNNNN`` for a year and a sequence number."""
    return f"SR-{year:04d}-{seq:06d}"


def parse_id(value: str) -> tuple[int, int]:
    """The (year, sequence number) of an ``SR-YYYY-NNNNNN`` id.

    Raises:
        ServiceRequestError: It does not have that form (404: there is no such request).
    """
    parts = value.split("-")
    if (len(parts) != 3 or parts[0] != "SR" or len(parts[1]) != 4 or len(parts[2]) != 6
            or not (parts[1] + parts[2]).isdigit()):
        raise ServiceRequestError(f"{value[:40]!r} is not a service request id: they read "
                                  "SR-YYYY-NNNNNN", 404)
    return int(parts[1]), int(parts[2])


class ServiceRequestIn(BaseModel):
    """A service request as logged: how it came in, what it is about, and who asks.

    ``received_on`` defaults to today (London); the target date must not be before it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: Channel
    channel_reference: Label | None = Field(
        default=None, description="The channel's own id (email or call id): logging it "
                                  "twice is one service request.")
    received_on: dt.date | None = None
    category: Label = "general"
    target_date: dt.date = Field(description="When the landlord aims to have it done.")
    resident: Party
    description: Text

    @model_validator(mode="after")
    def _dates_in_order(self) -> ServiceRequestIn:
        if self.received_on is not None and self.target_date < self.received_on:
            raise ValueError(f"target_date {self.target_date.isoformat()} is before "
                             f"received_on {self.received_on.isoformat()}: give a target on "
                             "or after the day it came in")
        return self


def check_by(session: Session, staff_id: str, option: str = "--by") -> str:
    """``staff_id`` as the staff directory spells it, or why it may not act.

    As for staff actions (:func:`complaints.directory.check_staff`): the id must be well
    formed, and, once the directory holds anyone, be in it and active.

    Raises:
        ServiceRequestError: The id is malformed, unknown or inactive.
    """
    from complaints.directory import (
        DirectoryError,
        check_staff_id,
        find_staff,
        inactive_since,
    )

    try:
        normal = check_staff_id(staff_id, option)
    except DirectoryError as exc:
        raise ServiceRequestError(str(exc)) from None
    if not session.exec(select(func.count()).select_from(StaffRow)).one():
        return normal  # An empty directory (a new install) refuses nobody, as for actions.
    row = find_staff(session, normal)
    if row is None:
        raise ServiceRequestError(f"{option}: staff id '{normal}' is not in the staff "
                                  "directory (add it with complaints staff add)")
    if not row.active:
        raise ServiceRequestError(f"{option}: staff id '{normal}' is inactive since "
                                  f"{inactive_since(row)}: give the id of someone who "
                                  "works on service requests now")
    return row.staff_id


def _not_future(day: dt.date, what: str, today: dt.date) -> None:
    if day > today:
        raise ServiceRequestError(f"{what} {day.isoformat()} is in the future (today is "
                                  f"{today.isoformat()} in London): give the day it happened")


def _find_channel(session: Session, channel: str, reference: str) -> ServiceRequestRow | None:
    return session.exec(select(ServiceRequestRow).where(
        ServiceRequestRow.channel == channel,
        ServiceRequestRow.channel_reference == reference)).first()


def _same_request(row: ServiceRequestRow, data: ServiceRequestIn) -> bool:
    return (row.description == data.description and row.resident_name == data.resident.name
            and row.category == data.category and row.target_date == data.target_date)


def _existing(session: Session, data: ServiceRequestIn,
              idempotency: tuple[str, str, str] | None) -> ServiceRequestRow | None:
    """The request this one repeats (same key, or same channel id), or None if it is new.

    Raises:
        ServiceRequestError: The key or channel id was used for a different request.
    """
    if idempotency is not None:
        staff_id, key, digest = idempotency
        claimed = session.exec(select(IdempotencyRow).where(
            IdempotencyRow.staff_id == staff_id, IdempotencyRow.key == key)).first()
        if claimed is not None:
            if claimed.request_sha256 != digest or claimed.reference is None:
                raise ServiceRequestError("this Idempotency-Key was used with a different "
                                          "request: use a new key for a new service request")
            found = session.get(ServiceRequestRow, claimed.reference)
            if found is None:
                raise ServiceRequestError("this Idempotency-Key was used for a complaint: "
                                          "use a new key for a new service request")
            return found
    if data.channel_reference is not None:
        found = _find_channel(session, data.channel.value, data.channel_reference)
        if found is not None:
            if not _same_request(found, data):
                raise ServiceRequestError(
                    f"this {data.channel.value} channel reference was already logged as "
                    f"{found.id} with different content: if it is the same request, act on "
                    f"{found.id}; if not, give it a channel reference of its own", 409)
            return found
    return None


def log_request(session: Session, data: ServiceRequestIn, by: str, *,
                today: dt.date | None = None,
                idempotency: tuple[str, str, str] | None = None,
                ) -> tuple[ServiceRequestRow, bool]:
    """Log a service request under the next ``SR-YYYY-NNNNNN`` of its year of receipt.

    Numbers run from 000001 within a year, past the highest there (two loggings at once
    race on the unique constraint; the loser tries again), as complaint references do.
    The same channel id, or the same ``Idempotency-Key`` with the same body, finds the
    request logged before instead.

    Args:
        session: A writing session.
        data: The validated request.
        by: The staff id logging it (checked by :func:`check_by` by the caller).
        today: Today in London (default: now).
        idempotency: (staff id, key, SHA-256 of the body) from an API call, or None.

    Returns:
        The request, and whether this call logged it.

    Raises:
        ServiceRequestError: A date in the future, a limit broken, or a key or channel
            id used for a different request.
    """
    today = today or _london_today()
    received = data.received_on or today
    _not_future(received, "received_on", today)
    if data.target_date < received:
        raise ServiceRequestError(f"target_date {data.target_date.isoformat()} is before the "
                                  f"day it came in ({received.isoformat()}): give a later one")
    problem = first_problem(data)
    if problem is not None:
        raise ServiceRequestError(f"cannot log: {problem}")
    for _ in range(50):
        found = _existing(session, data, idempotency)
        if found is not None:
            return found, False
        top = session.exec(select(func.max(ServiceRequestRow.seq)).where(
            ServiceRequestRow.year == received.year)).one()
        seq = (top or 0) + 1
        if seq > MAX_SEQ:
            raise ServiceRequestError(f"every service request id of {received.year} is taken",
                                      409)
        resident = data.resident
        row = ServiceRequestRow(
            id=format_id(received.year, seq), year=received.year, seq=seq,
            channel=data.channel.value, channel_reference=data.channel_reference,
            category=data.category, received_on=received, target_date=data.target_date,
            resident_name=resident.name, resident_address="\n".join(resident.address),
            resident_email=resident.email, resident_phone=resident.phone,
            description=data.description, logged_by=by)
        session.add(row)
        if idempotency is not None:
            session.add(IdempotencyRow(staff_id=idempotency[0], key=idempotency[1],
                                       request_sha256=idempotency[2], reference=row.id))
        try:
            session.commit()
            return row, True
        except IntegrityError:
            session.rollback()  # Another logging took the number (or the key): again.
    raise ServiceRequestError("could not allocate a service request id after 50 tries "
                              "(other loggings are racing for them): log it again", 409)


def get_request(session: Session, request_id: str) -> ServiceRequestRow:
    """The service request ``request_id``; a 404 :class:`ServiceRequestError` if none."""
    parse_id(request_id)
    row = session.get(ServiceRequestRow, request_id)
    if row is None:
        raise ServiceRequestError(f"no service request {request_id}: `complaints "
                                  "service-requests list` lists them", 404)
    return row


def is_overdue(row: ServiceRequestRow, today: dt.date) -> bool:
    """Whether an open request is past its target date."""
    return row.resolved_on is None and row.target_date < today


def resident_of(row: ServiceRequestRow) -> Party:
    """The request's resident as a complaint's party."""
    lines = tuple(x for x in row.resident_address.splitlines() if x.strip())
    return Party(role=PartyRole.RESIDENT, name=row.resident_name, address=lines,
                 email=row.resident_email, phone=row.resident_phone)


def list_requests(session: Session, *, today: dt.date, open_only: bool = False,
                  overdue: bool = False, category: str | None = None, page: int = 1,
                  per_page: int = 50) -> tuple[list[ServiceRequestRow], int]:
    """Service requests, overdue first, then by target date; one page and the total.

    Args:
        session: A session.
        today: Today in London (what "overdue" is measured against).
        open_only: Only those not resolved.
        overdue: Only open ones past their target date.
        category: Only this category.
        page: The page, from 1.
        per_page: Rows a page.

    """
    query = select(ServiceRequestRow)
    if open_only or overdue:
        query = query.where(col(ServiceRequestRow.resolved_on).is_(None))
    if overdue:
        query = query.where(col(ServiceRequestRow.target_date) < today)
    if category:
        query = query.where(ServiceRequestRow.category == category)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    late = case((and_(col(ServiceRequestRow.resolved_on).is_(None),
                      col(ServiceRequestRow.target_date) < today), 0), else_=1)
    rows = session.exec(query.order_by(
        late, col(ServiceRequestRow.resolved_on).is_not(None), col(ServiceRequestRow.target_date),
        col(ServiceRequestRow.id)).offset((page - 1) * per_page).limit(per_page)).all()
    return list(rows), int(total)


def resolve(session: Session, request_id: str, by: str, resolution: str, *,
            resolved_on: dt.date | None = None,
            today: dt.date | None = None) -> ServiceRequestRow:
    """Record that a service request was put right: when, by whom, and how.

    Raises:
        ServiceRequestError: No such request, resolved already, no resolution note, or a
            date in the future or before it came in.
    """
    today = today or _london_today()
    row = get_request(session, request_id)
    if row.resolved_on is not None:
        raise ServiceRequestError(f"{row.id} was resolved on {row.resolved_on.isoformat()} "
                                  f"by {row.resolved_by}: nothing to do", 409)
    note = resolution.strip()
    if not note:
        raise ServiceRequestError("resolution: say how it was put right")
    day = resolved_on or today
    _not_future(day, "resolved_on", today)
    if day < row.received_on:
        raise ServiceRequestError(f"resolved_on {day.isoformat()} is before it came in "
                                  f"({row.received_on.isoformat()}): give a later date")
    row.resolved_on, row.resolved_by, row.resolution = day, by, note
    session.add(row)
    session.commit()
    return row


def told_how_to_complain(session: Session, request_id: str, by: str, *,
                         on: dt.date | None = None,
                         today: dt.date | None = None) -> ServiceRequestRow:
    """Record the day the resident was told how to complain (Code 1.6)."""
    today = today or _london_today()
    row = get_request(session, request_id)
    day = on or today
    _not_future(day, "told_how_to_complain_on", today)
    row.told_how_to_complain_on, row.told_how_to_complain_by = day, by
    session.add(row)
    session.commit()
    return row


def intake_for(row: ServiceRequestRow, *, received_on: dt.date, policy_name: str,
               channel: str | None = None, description: str | None = None,
               outcomes_sought: tuple[str, ...] = ()) -> Intake:
    """The complaint a dissatisfied resident's request becomes, prefilled from it.

    The complaint's channel reference is the request's id, so lodging it again (a retry
    after a crash) finds the same case rather than making a second.

    Raises:
        ServiceRequestError: The request's personal data was erased, or the intake is
            invalid (the message names the field).
    """
    if row.erased_at is not None:
        raise ServiceRequestError(f"{row.id}'s personal data was erased: lodge the complaint "
                                  "with `complaints lodge` instead", 409)
    try:
        return Intake.model_validate({
            "reference": _PLACEHOLDER, "policy_name": policy_name,
            "channel": channel or row.channel, "channel_reference": row.id,
            "received_on": received_on, "category": row.category,
            "parties": [resident_of(row).model_dump()],
            "description": description or row.description,
            "outcomes_sought": list(outcomes_sought)})
    except ValidationError as exc:
        from complaints.staff import one_line

        raise ServiceRequestError(f"cannot lodge the complaint: {one_line(exc)}") from None


class Converted(BaseModel):
    """A service request converted to a complaint."""

    service_request_id: str
    reference: str
    created: bool


#: Lodges an intake the caller's way; (reference, whether it is a new case).
Lodger = Callable[[Intake], Awaitable[tuple[str, bool]]]


def _link(engine: Engine, request_id: str, reference: str, by: str, day: dt.date) -> None:
    """Record the link both ways, in one transaction (once: a repeat changes nothing)."""
    with Session(engine, expire_on_commit=False) as session:
        row = session.get(ServiceRequestRow, request_id)
        if row is None:
            return
        if row.complaint_reference is None:
            row.complaint_reference, row.converted_on, row.converted_by = reference, day, by
            session.add(row)
        if session.get(ComplaintServiceRequestRow, reference) is None:
            session.add(ComplaintServiceRequestRow(reference=reference,
                                                   service_request_id=request_id,
                                                   linked_by=by, linked_at=utcnow()))
        session.commit()


async def convert_to_complaint(engine: Engine, request_id: str, lodge: Lodger, *, by: str,
                               policy_name: str = "code-2024",
                               received_on: dt.date | None = None,
                               channel: str | None = None, description: str | None = None,
                               outcomes_sought: tuple[str, ...] = (),
                               today: dt.date | None = None) -> Converted:
    """Raise a complaint from a service request (Code 1.5); the request stays open.

    A request converted before gives its complaint again (nothing is lodged). Otherwise
    the complaint is lodged with ``lodge`` (the caller's lodging path: the CLI's
    ``lodge_complaint``, the API's ``lodging.lodge``), then the link is recorded: the
    complaint's reference on the request, the request's id in
    ``complaint_service_requests``.

    Args:
        engine: The complaints database (for writing).
        request_id: The service request.
        lodge: Lodges an intake; its reference and whether the case is new.
        by: The staff id converting it.
        policy_name: The complaint's policy.
        received_on: The day the resident expressed dissatisfaction (default today).
        channel: How they did (default the request's channel).
        description: What they say (default the request's description).
        outcomes_sought: What they want.
        today: Today in London (default: now).

    Raises:
        ServiceRequestError: No such request, erased, or an invalid intake.
        LodgingRefused: Lodging refused it (the caller turns it into its own error).
    """
    today = today or _london_today()

    def read() -> ServiceRequestRow:
        with Session(engine, expire_on_commit=False) as session:
            return get_request(session, request_id)

    row = await asyncio.to_thread(read)
    if row.complaint_reference is not None:
        return Converted(service_request_id=row.id, reference=row.complaint_reference,
                         created=False)
    day = received_on or today
    _not_future(day, "received_on", today)
    intake = intake_for(row, received_on=day, policy_name=policy_name, channel=channel,
                        description=description, outcomes_sought=outcomes_sought)
    reference, created = await lodge(intake)
    await asyncio.to_thread(_link, engine, row.id, reference, by, day)
    return Converted(service_request_id=row.id, reference=reference, created=created)


# --- monitoring -----------------------------------------------------------------------


class Theme(BaseModel):
    """A category and how many requests logged in the period had it."""

    category: str
    count: int


class ServiceRequestReport(BaseModel):
    """The monitoring figures for a period (Code 1.4: recorded, monitored, reviewed).

    Attributes:
        start: The first day of the period.
        end: The last day of the period (inclusive).
        logged: Requests received in the period.
        resolved: Requests resolved in the period (whenever received).
        open: Requests received by the end of the period and not resolved by then.
        overdue: Of those open, the ones past their target date at the end of the period.
        resolved_within_target: Requests resolved in the period on or before their target.
        converted: Requests received in the period converted to a complaint by its end.
        conversion_rate: ``converted`` / ``logged`` (None when none were logged).
        told_how_to_complain: Requests whose resident was told how to complain in the
            period (1.6).
        themes: Requests received in the period by category, most first.
    """

    start: dt.date
    end: dt.date
    logged: int
    resolved: int
    open: int
    overdue: int
    resolved_within_target: int
    converted: int
    conversion_rate: float | None
    told_how_to_complain: int
    themes: list[Theme]


def report(bind: Engine | Connection, start: dt.date, end: dt.date) -> ServiceRequestReport:
    """The service request figures for the period ``start`` to ``end`` (both included).

    Reads ``service_requests`` only (two queries), so the figures are the same after
    retention has erased the residents' data.

    Args:
        bind: An engine, or a connection already open (the annual report's).
        start: The first day.
        end: The last day.

    Raises:
        ValueError: ``end`` is before ``start``.
    """
    if end < start:
        raise ValueError(f"the period ends ({end.isoformat()}) before it starts "
                         f"({start.isoformat()})")
    if isinstance(bind, Engine):
        with bind.connect() as connection:
            return report(connection, start, end)
    table = ServiceRequestRow.__table__  # type: ignore[attr-defined]
    c = table.c
    in_period = c.received_on.between(start, end)
    open_at_end = and_(c.received_on <= end,
                       or_(c.resolved_on.is_(None), c.resolved_on > end))

    def count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    figures = bind.execute(core_select(
        count_if(in_period),
        count_if(c.resolved_on.between(start, end)),
        count_if(open_at_end),
        count_if(and_(open_at_end, c.target_date < end)),
        count_if(and_(c.resolved_on.between(start, end), c.resolved_on <= c.target_date)),
        count_if(and_(in_period, c.converted_on.is_not(None), c.converted_on <= end)),
        count_if(c.told_how_to_complain_on.between(start, end)),
    )).one()
    logged, resolved, open_, overdue, within, converted, told = (int(x) for x in figures)
    themes = bind.execute(
        core_select(c.category, func.count()).where(in_period).group_by(c.category)
        .order_by(func.count().desc(), c.category)).all()
    return ServiceRequestReport(
        start=start, end=end, logged=logged, resolved=resolved, open=open_, overdue=overdue,
        resolved_within_target=within, converted=converted,
        conversion_rate=round(converted / logged, 4) if logged else None,
        told_how_to_complain=told,
        themes=[Theme(category=str(name), count=int(n)) for name, n in themes])
