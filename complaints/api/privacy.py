"""Data protection over the API: subject access exports and erasure requests.

- ``POST /subject-access`` (permission ``subject_access``): the person's details go in
  the JSON body, never the URL (URLs end up in logs and browser histories); the answer is
  the zip :func:`complaints.subject_access.export` makes, and each case in it is recorded
  as viewed by the caller.
- ``POST /complaints/{reference}/erasure`` (permission ``erase``): erase one case's
  personal data at the resident's request, where the law allows
  (:meth:`activities.retention.RetentionActivities.erase_on_request`); refused with 409
  and when it will be allowed while the case is open, with the Ombudsman, under an open
  order, or its workflow still runs.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from complaints.api.deps import ContextDep, CurrentUser, require
from complaints.api.problems import Problem
from complaints.subject_access import SubjectTerms, export
from domain.permissions import Permission
from models.retention import CaseErased, ErasureRequestInput

__all__ = ["ErasureBody", "router"]

router = APIRouter(tags=["data protection"])


@router.post("/subject-access", summary="Export everything held about one person",
             response_class=Response,
             responses={200: {"content": {"application/zip": {}},
                              "description": "The archive: index.html, index.txt and a "
                                             "folder per case"},
                        403: {"description": "Not allowed (lead and admin only)"},
                        422: {"description": "A name alone, or a malformed body"}})
async def subject_access(terms: SubjectTerms, context: ContextDep,
                         who: CurrentUser) -> Response:
    """Every case where the person is a party, as one zip with an index a person can read.

    Matched by email, by phone, or by the exact name with the first line of the address.
    """
    require(context, who, Permission.SUBJECT_ACCESS)
    made = await context.write(lambda session: export(
        session, context.settings.data_dir, terms, who, "api"))
    stamp = context.today().isoformat()
    return Response(made.data, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="subject-access-{stamp}.zip"',
        "X-Cases": str(len(made.references))})


class ErasureBody(BaseModel):
    """An erasure request as recorded; ``by`` is the caller, never the body."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    reason: str = Field(min_length=1, max_length=2000,
                        description="How and when the resident asked (no personal data).")


@router.post("/complaints/{reference}/erasure", response_model=CaseErased,
             summary="Erase a case's personal data at the resident's request",
             tags=["complaints"],
             responses={403: {"description": "Not allowed (lead and admin only)"},
                        404: {"description": "No such case"},
                        409: {"description": "Not allowed yet: the detail says until when"}})
async def erase(reference: str, body: ErasureBody, context: ContextDep,
                who: CurrentUser) -> CaseErased:
    """Erase the case's personal data (once; asked again, the erasure already made)."""
    from activities.retention import ErasureRefused, RetentionActivities
    from models.tables import ComplaintRow

    require(context, who, Permission.ERASE)
    with context.read_session() as session:
        if session.get(ComplaintRow, reference) is None:
            raise Problem(404, f"no complaint {reference}: check the reference")
    activities = RetentionActivities(context.session, context.settings.effective_outbox(),
                                     context.settings.data_dir / "documents",
                                     client=await context.temporal())
    try:
        return await activities.erase_on_request(ErasureRequestInput(
            reference=reference, by=who.staff_id, note=body.reason.strip() or "request"))
    except ErasureRefused as exc:
        raise Problem(409, str(exc)) from None
