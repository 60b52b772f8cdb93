"""Cases: lodge (idempotently), list and search, read one, and its letters.

A case file's documents and triage are in :mod:`complaints.api.casefiles`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, status
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from temporalio.client import WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.service import RPCError

from complaints.api.deps import ContextDep, CurrentUser, SessionDep, require
from complaints.api.problems import Problem, from_validation
from complaints.casedetail import ActionOption, CaseRecords, action_options, case_records
from complaints.caseindex import CaseFilter, CasePage, search_cases
from complaints.identity import record_view, relation_to
from domain.permissions import Permission
from models.access import IdempotencyRow
from models.messages import CaseView, Intake
from models.tables import ComplaintRow, LetterRow

router = APIRouter(prefix="/complaints", tags=["complaints"])

#: How long lodging waits for the new case to reach the read model (see :func:`recorded`).
RECORD_WAIT_S = 10.0
#: A reference that passes the pattern; the real one is allocated when lodged.
_PLACEHOLDER = "CMP-0000-000000"


class LodgeRequest(Intake):
    """A complaint to lodge: the intake, without a reference (one is allocated)."""

    reference: str | None = None  # type: ignore[assignment]


class Lodged(BaseModel):
    """A lodged case."""

    reference: str
    created: bool


class CaseOut(BaseModel):
    """A case: its records, its live state from the workflow, and what you may do."""

    records: CaseRecords
    live: CaseView | None
    live_error: str | None
    actions: list[ActionOption]


def _fingerprint(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


@router.post("", status_code=status.HTTP_201_CREATED, response_model=Lodged,
             summary="Lodge a complaint",
             responses={200: {"model": Lodged, "description": "Lodged before with this key"},
                        409: {"description": "Refused (e.g. a channel reference taken)"},
                        422: {"description": "Invalid intake, or a key reused"},
                        428: {"description": "No Idempotency-Key"}})
async def lodge(body: LodgeRequest, context: ContextDep, session: SessionDep,
                who: CurrentUser,
                idempotency_key: Annotated[str | None, Header(
                    alias="Idempotency-Key", max_length=255,
                    description="Any unique string per complaint; a retry sends the same "
                                "key and body and gets the same case.")] = None,
                ) -> JSONResponse:
    """Lodge a complaint, once: the same key and body return the case already made."""
    require(context, who, Permission.LODGE)
    if not idempotency_key:
        raise Problem(428, "send an Idempotency-Key header (any unique string per "
                           "complaint) so that a retry cannot lodge it twice")
    data = body.model_dump(mode="json", exclude={"reference"})
    digest = _fingerprint(data)
    key_row = session.exec(select(IdempotencyRow).where(
        IdempotencyRow.staff_id == who.staff_id, IdempotencyRow.key == idempotency_key)).first()
    if key_row is not None:
        if key_row.request_sha256 != digest:
            raise Problem(422, "this Idempotency-Key was used with a different complaint: "
                               "use a new key for a new complaint", type_key=422)
        if key_row.reference is None:
            raise Problem(409, "a request with this Idempotency-Key is still being lodged: "
                               "retry in a few seconds")
        return JSONResponse({"reference": key_row.reference, "created": False}, 200,
                            headers={"Location": f"/api/v1/complaints/{key_row.reference}"})
    session.rollback()  # the read is done; the key is claimed in a write of its own

    def claim(writer: Session) -> int:
        row = IdempotencyRow(staff_id=who.staff_id, key=idempotency_key,
                             request_sha256=digest)
        writer.add(row)
        writer.commit()
        assert row.id is not None
        return row.id

    def settle(reference: str | None) -> Callable[[Session], None]:
        def run(writer: Session) -> None:
            row = writer.get(IdempotencyRow, claimed)
            if row is None:
                return
            if reference is None:
                writer.delete(row)  # Nothing was lodged: the key may be used again.
            else:
                row.reference = reference
                writer.add(row)
            writer.commit()
        return run

    try:
        claimed = await context.write(claim)
    except IntegrityError:
        raise Problem(409, "a request with this Idempotency-Key is being lodged at the same "
                           "time: retry in a few seconds") from None
    try:
        lodged = await _lodge(context, data)
    except BaseException:
        await context.write(settle(None))
        raise
    await context.write(settle(lodged.reference))
    await recorded(context, lodged.reference)
    return JSONResponse({"reference": lodged.reference, "created": lodged.created},
                        201 if lodged.created else 200,
                        headers={"Location": f"/api/v1/complaints/{lodged.reference}"})


async def _lodge(context: Any, data: dict[str, Any]) -> Lodged:
    from complaints.lodging import LodgingRefused, lodge
    from complaints.policies import PolicyError

    try:
        intake = Intake.model_validate({**data, "reference": _PLACEHOLDER})
    except ValidationError as exc:
        raise from_validation(exc) from None
    client = await context.temporal()
    try:
        done = await lodge(client, context.engine, intake, context.settings.temporal_task_queue)
    except LodgingRefused as exc:
        raise Problem(409, str(exc)) from None
    except PolicyError as exc:
        raise Problem(422, str(exc)) from None
    return Lodged(reference=done.reference, created=done.created)


async def recorded(context: Any, reference: str, timeout: float = RECORD_WAIT_S) -> bool:
    """Wait (bounded) until a new case is in the read model, so a client can read it next.

    The workflow records the complaint moments after it starts; a client that lodges and
    at once reads or acts on the case should find it. After ``timeout`` the case is still
    lodged (and will be recorded when a worker runs): the answer does not wait for ever.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        with context.read_session() as session:
            if session.get(ComplaintRow, reference) is not None:
                return True
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)


@router.get("", response_model=CasePage, summary="List and search cases")
def list_cases(context: ContextDep, session: SessionDep, who: CurrentUser,
               wanted: Annotated[CaseFilter, Query()]) -> CasePage:
    """Cases most urgent first (overdue, then next deadline); no personal data."""
    require(context, who, Permission.READ_CASES)
    return search_cases(session, wanted, context.today())


async def live_view(context: Any, reference: str) -> tuple[CaseView | None, str | None]:
    """The case's live view from its workflow, or why it could not be had."""
    try:
        client = await context.temporal()
        view = await client.get_workflow_handle(reference).query(
            "case_view", result_type=CaseView, rpc_timeout=dt.timedelta(seconds=10))
        return view, None
    except Problem as exc:
        return None, exc.detail
    except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError) as exc:
        return None, f"the workflow did not answer ({exc.__class__.__name__}): the records " \
                     "below are the database's"


@router.get("/{reference}", response_model=CaseOut, summary="A case, with everything on it")
async def get_case(reference: str, context: ContextDep, session: SessionDep,
                   who: CurrentUser) -> CaseOut:
    """The case's records, live state and allowed actions; the viewing is recorded."""
    require(context, who, Permission.READ_CASES)
    records = case_records(session, reference, context.today())
    if records is None:
        raise Problem(404, f"no complaint {reference}: GET /api/v1/complaints lists them")
    session.rollback()  # the read is done before the case is asked (a fresh one after)
    await context.write(lambda w: record_view(w, who, reference, "case", "api"))
    if records.imported_on is not None:  # no workflow to ask, and none to act on
        return CaseOut(records=records, live=None, live_error=None, actions=[])
    view, why = await live_view(context, reference)
    state = view.state if view is not None else records.summary.state
    options = action_options(context.matrix, who, state, relation_to(session, who, reference))
    return CaseOut(records=records, live=view, live_error=why, actions=options)


def known_case(session: Any, reference: str) -> ComplaintRow:
    """The case's row; a 404 problem when there is no such case."""
    row = session.get(ComplaintRow, reference)
    if row is None:
        raise Problem(404, f"no complaint {reference}: GET /api/v1/complaints lists them")
    return row


_MEDIA = {"text": "text/plain; charset=utf-8", "html": "text/html; charset=utf-8",
          "pdf": "application/pdf"}


@router.get("/{reference}/letters/{letter_id}", summary="A letter as sent",
            response_class=Response,
            responses={200: {"content": {m.split(";")[0]: {} for m in _MEDIA.values()}}})
def get_letter(reference: str, letter_id: str, context: ContextDep, session: SessionDep,
               who: CurrentUser,
               format: Annotated[Literal["text", "html", "pdf"], Query(
                   description="text, html or pdf (printed and kept on first ask)")] = "text",
               ) -> Response:
    """A letter's text, HTML or accessible PDF; the viewing is recorded."""
    require(context, who, Permission.READ_CASES)
    known_case(session, reference)
    row = session.get(LetterRow, letter_id)
    if row is None or row.reference != reference:
        raise Problem(404, f"no letter {letter_id} on {reference}: GET "
                           f"/api/v1/complaints/{reference} lists its letters")
    with context.session() as writer:  # a sync route: FastAPI runs it in a thread
        record_view(writer, who, reference, f"letter:{letter_id}", "api")
    if format == "pdf":
        from activities.letters import LetterActivities
        from complaints.db import session_factory

        printed = LetterActivities(session_factory(context.engine),
                                   context.settings.effective_outbox()).print_letter(letter_id)
        body: bytes | str = printed.pdf or b""
    else:
        body = row.text if format == "text" else row.html
    extension = "txt" if format == "text" else format
    return Response(body, media_type=_MEDIA[format], headers={
        "Content-Disposition": f'inline; filename="{letter_id}.{extension}"'})
