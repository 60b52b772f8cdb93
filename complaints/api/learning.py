"""Learning from complaints over the API: responses' learning, service changes, satisfaction.

Kept in the database only (:mod:`complaints.learning`); no workflow is involved. None of it
is personal data, so reading it records no viewing. Who may do what (the permission
matrix): ``record_learning`` (handlers, reviewers, managers, leads; on the cases their
scope reaches), ``manage_service_changes`` (managers, leads), ``record_satisfaction``
(managers, leads, admins); reading needs ``read_cases`` (a case's learning) or
``read_reports`` (changes and satisfaction).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status
from pydantic import BaseModel, Field

from complaints import learning as ln
from complaints.api.deps import ApiContext, ContextDep, CurrentUser, SessionDep, require
from complaints.api.problems import Problem
from complaints.identity import relation_to
from domain.permissions import Permission
from models.case import Label, Text
from models.learning import SatisfactionRow, ServiceChangeRow

router = APIRouter(tags=["learning"])

_REFUSALS: dict[int | str, dict[str, Any]] = {
    403: {"description": "Your roles or scope do not allow it"},
    404: {"description": "No such case or change"},
    409: {"description": "Not possible now (no response at that stage, overlapping period)"},
    422: {"description": "Invalid body, or an entry outside the vocabulary"}}


class LearningBody(BaseModel):
    """What a stage response taught."""

    themes: list[Label] = Field(min_length=1, max_length=ln.MAX_TAGS)
    root_causes: list[Label] = Field(min_length=1, max_length=ln.MAX_TAGS)
    lessons: Text | None = None


class DoneBody(BaseModel):
    """When a service change was made."""

    done_on: dt.date | None = Field(default=None, description="Default: today.")


class ServiceChangeOut(BaseModel):
    """A service change, with whether it is overdue."""

    id: int
    reference: str | None
    landlord: str
    theme: str | None
    description: str
    owner: str
    due_on: dt.date
    done_on: dt.date | None
    done_by: str | None
    recorded_by: str
    recorded_at: dt.datetime
    overdue: bool

    @classmethod
    def of(cls, row: ServiceChangeRow, today: dt.date) -> ServiceChangeOut:
        """The change as the API shows it."""
        return cls(**row.model_dump(), overdue=ln.is_overdue(row, today))


class SatisfactionOut(BaseModel):
    """Satisfaction with complaint handling over one period."""

    landlord: str
    period_start: dt.date
    period_end: dt.date
    surveyed: int
    satisfied: int
    pct_satisfied: float | None
    source: str
    recorded_by: str
    recorded_at: dt.datetime

    @classmethod
    def of(cls, row: SatisfactionRow) -> SatisfactionOut:
        """The result as the API shows it."""
        data = row.model_dump(exclude={"id"})
        return cls(**data, pct_satisfied=round(100 * row.satisfied / row.surveyed, 1)
                   if row.surveyed else None)


async def _write(context: ApiContext, work: Any) -> Any:
    """Run ``work(session)`` in a write session; a refusal becomes its problem."""
    try:
        return await context.write(work)
    except ln.LearningError as exc:
        raise Problem(exc.status, exc.detail) from None


@router.put("/complaints/{reference}/learning/{stage}", response_model=ln.LearningView,
            summary="Record what a stage response taught", responses=_REFUSALS)
async def record_learning(reference: str, stage: Annotated[int, Path(ge=1, le=2)],
                          body: LearningBody, context: ContextDep, session: SessionDep,
                          who: CurrentUser) -> ln.LearningView:
    """File the response under themes and root causes with its lessons; again replaces."""
    relation = relation_to(session, who, reference)
    if relation is None:
        raise Problem(404, f"no complaint {reference}: GET /api/v1/complaints lists them")
    require(context, who, Permission.RECORD_LEARNING, relation)
    session.rollback()
    data = ln.LearningIn(stage=stage, themes=tuple(body.themes),
                         root_causes=tuple(body.root_causes), lessons=body.lessons)
    view: ln.LearningView = await _write(
        context, lambda w: ln.record_learning(w, reference, data, who.staff_id))
    return view


@router.get("/complaints/{reference}/learning", response_model=list[ln.LearningView],
            summary="The learning recorded on a case", responses={404: _REFUSALS[404]})
def show_learning(reference: str, context: ContextDep, session: SessionDep,
                  who: CurrentUser) -> list[ln.LearningView]:
    """Each stage's themes, root causes and lessons (no personal data)."""
    require(context, who, Permission.READ_CASES)
    try:
        return ln.show_learning(session, reference)
    except ln.LearningError as exc:
        raise Problem(exc.status, exc.detail) from None


@router.get("/service-changes", response_model=list[ServiceChangeOut],
            summary="Service changes made because of complaints")
def list_changes(context: ContextDep, session: SessionDep, who: CurrentUser,
                 open: Annotated[bool, Query(description="Only those not done.")] = False,
                 overdue: Annotated[bool, Query(description="Only open ones past due.")]
                 = False) -> list[ServiceChangeOut]:
    """Open changes by due date (overdue marked), then done ones, latest first."""
    require(context, who, Permission.READ_REPORTS)
    today = context.today()
    rows = ln.list_changes(session, today=today, open_only=open, overdue=overdue)
    return [ServiceChangeOut.of(r, today) for r in rows]


@router.post("/service-changes", status_code=status.HTTP_201_CREATED,
             response_model=ServiceChangeOut, summary="Record a service change",
             responses=_REFUSALS)
async def add_change(body: ln.ChangeIn, context: ContextDep, who: CurrentUser,
                     ) -> ServiceChangeOut:
    """Record a change to the service, its owner and due date."""
    require(context, who, Permission.MANAGE_SERVICE_CHANGES)
    row = await _write(context, lambda w: ln.add_change(w, body, who.staff_id))
    return ServiceChangeOut.of(row, context.today())


@router.post("/service-changes/{change_id}/done", response_model=ServiceChangeOut,
             summary="Record that a service change was made", responses=_REFUSALS)
async def complete_change(change_id: int, body: DoneBody, context: ContextDep,
                          who: CurrentUser) -> ServiceChangeOut:
    """Record the day the change was made (today unless given; never in the future)."""
    require(context, who, Permission.MANAGE_SERVICE_CHANGES)
    today = context.today()
    row = await _write(context, lambda w: ln.complete_change(
        w, change_id, who.staff_id, done_on=body.done_on or today, today=today))
    return ServiceChangeOut.of(row, today)


@router.get("/satisfaction", response_model=list[SatisfactionOut],
            summary="Customer satisfaction with complaint handling, per period")
def list_satisfaction(context: ContextDep, session: SessionDep, who: CurrentUser,
                      ) -> list[SatisfactionOut]:
    """The results recorded, by landlord and period."""
    require(context, who, Permission.READ_REPORTS)
    return [SatisfactionOut.of(r) for r in ln.list_satisfaction(session)]


@router.put("/satisfaction", response_model=SatisfactionOut,
            summary="Record satisfaction with complaint handling for a period",
            responses=_REFUSALS)
async def record_satisfaction(body: ln.SatisfactionIn, context: ContextDep,
                              who: CurrentUser) -> SatisfactionOut:
    """Record (or replace) one period's results; periods may not overlap."""
    require(context, who, Permission.RECORD_SATISFACTION)
    row = await _write(context, lambda w: ln.record_satisfaction(w, body, who.staff_id))
    return SatisfactionOut.of(row)
