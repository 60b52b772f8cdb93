"""Finding cases: the lists and search that staff work from, over the read model.

Queries on the complaints database (``complaints``, with the staff directory for teams),
never on Temporal: a page of an inbox with 10,000 open cases is one indexed query. Each
case in a list carries its next due date, the working days left under its landlord's
policy (the Code's count: Monday to Friday less the nation's bank holidays) and a
red/amber/green mark (:func:`rag`). Filters take no personal data: a resident is found
by their case's reference or channel reference, never by name in a query string.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, false, func, or_
from sqlmodel import Session, col, select

from complaints.workdays import WorkingCalendar
from domain.lifecycle import ENDED
from models.policy import Nation
from models.tables import ComplaintRow, StaffRow

__all__ = ["AMBER_DAYS", "RED_DAYS", "CaseFilter", "CasePage", "CaseSummary", "rag",
           "search_cases"]

UK = ZoneInfo("Europe/London")
#: A case with this many working days left or fewer is red (overdue is always red).
RED_DAYS = 2
#: ... and with this many or fewer, amber; more is green.
AMBER_DAYS = 5

Rag = Literal["red", "amber", "green"]


class CaseFilter(BaseModel):
    """What to list: every filter is optional; an empty filter lists every open case."""

    model_config = ConfigDict(extra="forbid")

    state: str | None = Field(default=None, max_length=40,
                              description="A lifecycle state (received, stage1_open, ...).")
    stage: int | None = Field(default=None, ge=0, le=2)
    handler: str | None = Field(default=None, max_length=64, description="A staff id.")
    team: str | None = Field(default=None, max_length=200,
                             description="The handler's team in the staff directory.")
    landlord: str | None = Field(default=None, max_length=200)
    unassigned: bool | None = Field(default=None, description="Cases with no handler yet.")
    overdue: bool | None = None
    due_within: int | None = Field(default=None, ge=0, le=60,
                                   description="Next deadline within N working days.")
    received_from: dt.date | None = None
    received_to: dt.date | None = None
    include_closed: bool = Field(default=False,
                                 description="Also closed, declined and withdrawn cases.")
    reference: str | None = Field(default=None, max_length=64,
                                  description="A reference or channel reference.")
    page: int = Field(default=1, ge=1, le=10_000)
    per_page: int = Field(default=25, ge=1, le=100)


class CaseSummary(BaseModel):
    """One case in a list (no personal data: no names, addresses or complaint text)."""

    reference: str
    landlord: str
    policy_name: str
    state: str
    stage: int
    category: str
    handler_id: str | None
    handler_team: str | None
    received_on: dt.date
    next_due: dt.date | None
    working_days_left: int | None
    rag: Rag | None
    overdue: bool


class CasePage(BaseModel):
    """A page of cases, most urgent first."""

    items: list[CaseSummary]
    page: int
    per_page: int
    total: int


@lru_cache(maxsize=32)
def _calendar(policy_name: str) -> WorkingCalendar:
    from complaints.policies import PolicyError, load_policy

    try:
        return WorkingCalendar.for_policy(load_policy(policy_name))
    except PolicyError:  # A policy since removed: the Code's own count, England and Wales.
        return WorkingCalendar(Nation.ENGLAND_AND_WALES)


def rag(working_days_left: int | None, overdue: bool) -> Rag | None:
    """Red, amber or green by working days left (overdue: red; nothing due: None)."""
    if overdue or (working_days_left is not None and working_days_left <= RED_DAYS):
        return "red"
    if working_days_left is None:
        return None
    return "amber" if working_days_left <= AMBER_DAYS else "green"


def _due_date(at: dt.datetime | None) -> dt.date | None:
    return at.astimezone(UK).date() if at is not None else None


def _within(session: Session, days: int, today: dt.date) -> object:
    """Cases whose next deadline ends within ``days`` working days, per landlord policy."""
    policies = session.exec(select(ComplaintRow.policy_name).distinct()).all()
    parts = []
    for name in policies:
        last = _calendar(name).add_working_days(today, days)
        end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), UK)
        parts.append(and_(col(ComplaintRow.policy_name) == name,
                          col(ComplaintRow.next_deadline) < end))
    return or_(*parts) if parts else false()


def search_cases(session: Session, wanted: CaseFilter, today: dt.date) -> CasePage:
    """The page of cases ``wanted`` asks for: overdue first, then by next deadline.

    Voided cases (duplicates) are never listed; ended cases only with ``include_closed``
    or when asked for by state.
    """
    handler = StaffRow
    query = select(ComplaintRow, handler.team).join(
        handler, col(handler.staff_id) == col(ComplaintRow.handler_id), isouter=True)
    conditions: list[object] = [col(ComplaintRow.state) != "voided"]
    if wanted.state is not None:
        conditions.append(col(ComplaintRow.state) == wanted.state)
    elif not wanted.include_closed:
        conditions.append(col(ComplaintRow.state).not_in([s.value for s in ENDED]))
    if wanted.stage is not None:
        conditions.append(col(ComplaintRow.stage) == wanted.stage)
    if wanted.handler is not None:
        conditions.append(func.lower(ComplaintRow.handler_id) == wanted.handler.lower())
    if wanted.team is not None:
        conditions.append(col(handler.team) == wanted.team)
    if wanted.landlord is not None:
        conditions.append(col(ComplaintRow.landlord) == wanted.landlord)
    if wanted.unassigned is not None:
        is_none = col(ComplaintRow.handler_id).is_(None)
        conditions.append(is_none if wanted.unassigned else ~is_none)
    if wanted.overdue is not None:
        conditions.append(col(ComplaintRow.overdue).is_(wanted.overdue))
    if wanted.due_within is not None:
        conditions.append(_within(session, wanted.due_within, today))
    if wanted.received_from is not None:
        conditions.append(col(ComplaintRow.received_on) >= wanted.received_from)
    if wanted.received_to is not None:
        conditions.append(col(ComplaintRow.received_on) <= wanted.received_to)
    if wanted.reference is not None:
        text = wanted.reference.strip()
        conditions.append(or_(col(ComplaintRow.reference) == text.upper(),
                              col(ComplaintRow.channel_reference) == text))
    query = query.where(*conditions)  # type: ignore[arg-type]
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(
        col(ComplaintRow.overdue).desc(), col(ComplaintRow.next_deadline).is_(None),
        col(ComplaintRow.next_deadline), col(ComplaintRow.reference))
        .offset((wanted.page - 1) * wanted.per_page).limit(wanted.per_page)).all()
    items = []
    for row, team in rows:
        due = _due_date(row.next_deadline)
        left = (_calendar(row.policy_name).working_days_between(today, due)
                if due is not None else None)
        items.append(CaseSummary(
            reference=row.reference, landlord=row.landlord, policy_name=row.policy_name,
            state=row.state, stage=row.stage, category=row.category,
            handler_id=row.handler_id, handler_team=team, received_on=row.received_on,
            next_due=due, working_days_left=left, rag=rag(left, row.overdue),
            overdue=row.overdue))
    return CasePage(items=items, page=wanted.page, per_page=wanted.per_page, total=total)
