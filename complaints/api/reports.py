"""Reports over the API: the annual report (no personal data), and who viewed a case."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel
from sqlmodel import col, select

from complaints.api.deps import ContextDep, CurrentUser, SessionDep, require
from complaints.api.problems import Problem
from domain.permissions import Permission
from models.access import CaseViewRow

if TYPE_CHECKING:
    from complaints.reports.period import Period

router = APIRouter(tags=["reports"])

_MEDIA = {"json": "application/json", "csv": "text/csv; charset=utf-8",
          "html": "text/html; charset=utf-8", "md": "text/markdown; charset=utf-8"}


def _year(year: str) -> Period:
    """The reporting year ``year`` names (``2025/26``); 422 with the reason when it names none."""
    from complaints.reports.period import parse_year

    try:
        return parse_year(year)
    except ValueError as exc:
        raise Problem(422, str(exc)) from None


@router.get("/reports/annual", summary="The annual complaints report",
            response_class=Response,
            responses={200: {"content": {m.split(";")[0]: {} for m in _MEDIA.values()}}})
def annual_report(context: ContextDep, who: CurrentUser,
                  year: Annotated[str, Query(description="A reporting year, e.g. 2025/26",
                                             max_length=9)],
                  format: Annotated[Literal["json", "csv", "html", "md"],
                                    Query(description="json, csv, html (charts) or md")]
                  = "json") -> Response:
    """The annual report for a reporting year, in the format asked for."""
    from complaints.reports.annual import annual_report_text

    require(context, who, Permission.READ_REPORTS)
    return Response(annual_report_text(context, _year(year), format),
                    media_type=_MEDIA[format])


@router.get("/reports/submission", summary="The Housing Ombudsman's annual submission",
            response_class=Response,
            responses={200: {"content": {"application/json": {}, "text/csv": {}}}})
def ombudsman_submission(context: ContextDep, who: CurrentUser,
                         year: Annotated[str, Query(description="A reporting year, e.g. "
                                                    "2025/26", max_length=9)],
                         format: Annotated[Literal["json", "csv"],
                                           Query(description="json, or csv (field,value)")]
                         = "json") -> Response:
    """The data of the annual submission to the Ombudsman for a reporting year (Code 8)."""
    from complaints.reports.submission import SubmissionError
    from complaints.reports.submission_render import submission_text

    require(context, who, Permission.READ_REPORTS)
    period = _year(year)
    try:
        text = submission_text(context, period, format)
    except SubmissionError as exc:
        raise Problem(422, str(exc)) from None
    return Response(text, media_type=_MEDIA[format])


class CaseViewOut(BaseModel):
    """One viewing of a case's personal data."""

    staff_id: str
    what: str
    via: str
    viewed_at: dt.datetime


@router.get("/complaints/{reference}/views", response_model=list[CaseViewOut],
            summary="Who viewed a case's personal data, and when", tags=["complaints"])
def case_views(reference: str, context: ContextDep, session: SessionDep,
               who: CurrentUser) -> list[CaseViewOut]:
    """Every recorded viewing of the case, newest first (for a subject access request)."""
    require(context, who, Permission.READ_CASES)
    rows = session.exec(select(CaseViewRow).where(CaseViewRow.reference == reference)
                        .order_by(col(CaseViewRow.viewed_at).desc())).all()
    return [CaseViewOut.model_validate(r, from_attributes=True) for r in rows]
