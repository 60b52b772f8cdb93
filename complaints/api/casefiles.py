"""A case file through the API: its documents (attach, list, download) and its triage.

The same records as ``complaints attach``, ``documents``, ``document``, ``triage`` and
``triage-show`` (:mod:`complaints.casefiles` does the work for both): kept in the
complaints database and the data folder, never in Temporal. ``by`` is always the caller.
Reading a document, the list of documents or the triage (notes, file names and a
resident's vulnerability are personal data) is recorded as a viewing of the case.
"""

from __future__ import annotations

import base64
import datetime as dt
import tempfile
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, UploadFile, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from complaints import casefiles
from complaints.api.cases import known_case
from complaints.api.deps import ApiContext, ContextDep, CurrentUser, SessionDep, require
from complaints.api.problems import Problem
from complaints.identity import Identity, record_view, relation_to
from domain.permissions import Permission
from models.tables import DocumentRow, TriageRow

__all__ = ["DIGEST_HEADER", "AttachedOut", "DocumentRecord", "TriageRecord", "TriageRequest",
           "router"]

router = APIRouter(prefix="/complaints", tags=["case files"])

#: The header that carries a download's recorded SHA-256 (RFC 9530 ``Repr-Digest``).
DIGEST_HEADER = "Repr-Digest"

_CHOICES = {"complexity": casefiles.COMPLEXITY, "vulnerability": casefiles.VULNERABILITY,
            "risk": casefiles.RISK}


class DocumentRecord(BaseModel):
    """A document on the case file, as recorded (the list's and ``documents --json``'s)."""

    reference: str
    document_id: str
    sha256: str
    file_name: str
    stored_name: str
    media_type: str
    size_bytes: int
    kind: str
    direction: str
    received_on: dt.date | None
    added_by: str | None
    added_at: dt.datetime
    note: str | None

    @classmethod
    def of(cls, row: DocumentRow) -> DocumentRecord:
        """The record of a stored row."""
        return cls.model_validate(row, from_attributes=True)


class AttachedOut(DocumentRecord):
    """A document attached: its record, whether it is new, and whether it was restored."""

    new: bool
    restored: bool


class TriageRequest(BaseModel):
    """A triage of the case (Code 5.10, 6.1); ``by`` is the caller, never the body."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    complexity: str = Field(json_schema_extra={"enum": list(casefiles.COMPLEXITY)})
    vulnerability: str = Field(description="The resident's vulnerability as known (5.10).",
                               json_schema_extra={"enum": list(casefiles.VULNERABILITY)})
    risk: str = Field(description="Risk to the resident or the home.",
                      json_schema_extra={"enum": list(casefiles.RISK)})
    note: str | None = Field(default=None, max_length=casefiles.MAX_TEXT, description="Why.")

    @field_validator("complexity", "vulnerability", "risk")
    @classmethod
    def _one_of(cls, value: str, info: ValidationInfo) -> str:
        allowed = _CHOICES[str(info.field_name)]
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value


class TriageRecord(BaseModel):
    """A triage as recorded."""

    id: int
    reference: str
    complexity: str
    vulnerability: str
    risk: str
    note: str | None
    by: str
    at: dt.datetime

    @classmethod
    def of(cls, row: TriageRow) -> TriageRecord:
        """The record of a stored row."""
        return cls.model_validate(row, from_attributes=True)


def _viewed(context: ApiContext, who: Identity, reference: str, what: str) -> None:
    """Record a viewing from a sync route (FastAPI runs it in a thread)."""
    with context.session() as writer:
        record_view(writer, who, reference, what, "api")


@router.post("/{reference}/documents", status_code=status.HTTP_201_CREATED,
             response_model=AttachedOut, summary="Attach a document",
             responses={404: {"description": "No such case"},
                        409: {"description": "Refused (size, type, a date in the future)"},
                        413: {"description": "Over 25 MiB"}})
async def upload_document(reference: str, context: ContextDep, session: SessionDep,
                          who: CurrentUser, file: UploadFile,
                          kind: Annotated[str, Form(description="letter, email, report, "
                                                    "photo, survey or other")],
                          direction: Annotated[str, Form(description="inbound or outbound")],
                          received_on: Annotated[dt.date | None, Form(
                              description="The day it was received (or sent); not in the "
                                          "future")] = None,
                          note: Annotated[str | None, Form(
                              max_length=casefiles.MAX_TEXT)] = None,
                          ) -> AttachedOut:
    """Store an inbound or outbound document on the case file (never in Temporal).

    The same bytes attached again are kept once (``new`` false).
    """
    known_case(session, reference)
    require(context, who, Permission.UPLOAD_DOCUMENTS, relation_to(session, who, reference))
    session.rollback()  # the read is done before the write
    data = await file.read(casefiles.MAX_DOCUMENT_BYTES + 1)
    if len(data) > casefiles.MAX_DOCUMENT_BYTES:
        raise Problem(413, f"the file is over {casefiles.MAX_DOCUMENT_BYTES // (1024 * 1024)} "
                           "MiB: send a smaller one")
    name = Path(file.filename or "document").name or "document"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        try:
            attached = await context.write(lambda writer: casefiles.attach_document(
                writer, context.settings.data_dir, reference, path, kind=kind,
                direction=direction, received_on=received_on, by=who.staff_id, note=note,
                today=context.today()))
        except casefiles.CaseFileError as exc:
            # The upload's temporary path means nothing to the caller: the name they sent.
            raise Problem(409, str(exc).replace(str(path), name)) from None
    return AttachedOut(**DocumentRecord.of(attached.row).model_dump(), new=attached.created,
                       restored=attached.restored)


@router.get("/{reference}/documents", response_model=list[DocumentRecord],
            summary="The documents on a case file", responses={404: {"description":
                                                                      "No such case"}})
def list_documents(reference: str, context: ContextDep, session: SessionDep,
                   who: CurrentUser) -> list[DocumentRecord]:
    """The case's documents, oldest first, with their notes; the viewing is recorded."""
    require(context, who, Permission.READ_CASES)
    known_case(session, reference)
    rows = casefiles.list_documents(session, reference)
    session.rollback()
    _viewed(context, who, reference, "documents")
    return [DocumentRecord.of(row) for row in rows]


@router.get("/{reference}/documents/{document_id}", summary="Download a document",
            response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}},
                             "description": f"The document's bytes; {DIGEST_HEADER} holds "
                                            "its recorded SHA-256"},
                       404: {"description": "No such case or document"},
                       500: {"description": "The stored copy is missing or damaged"}})
def download_document(reference: str, document_id: str, context: ContextDep,
                      session: SessionDep, who: CurrentUser) -> Response:
    """A document's bytes, checked against the SHA-256 recorded when it was attached.

    ``Repr-Digest: sha-256=:BASE64:`` (RFC 9530) carries that SHA-256, so the caller can
    check what it received; ``Content-Disposition`` its name. The viewing is recorded.
    """
    require(context, who, Permission.READ_CASES)
    known_case(session, reference)
    try:
        row, data = casefiles.read_document(session, context.settings.data_dir, reference,
                                            document_id)
    except casefiles.DocumentDamaged:
        # The operator's message names the stored file's path: not for remote callers.
        raise Problem(500, f"the stored copy of document {document_id} on {reference} is "
                           "missing or does not match its recorded SHA-256: ask an operator "
                           "to restore the documents folder from a backup") from None
    except casefiles.CaseFileError:
        raise Problem(404, f"no document {document_id} on {reference}: GET "
                           f"/api/v1/complaints/{reference}/documents lists them") from None
    session.rollback()
    _viewed(context, who, reference, f"document:{row.document_id}")
    fallback = row.file_name.encode("ascii", "replace").decode().replace('"', "_")
    digest = base64.b64encode(bytes.fromhex(row.sha256)).decode()
    return Response(data, media_type=row.media_type, headers={
        "Content-Disposition": f"attachment; filename=\"{fallback}\"; "
                               f"filename*=UTF-8''{quote(row.file_name, safe='')}",
        DIGEST_HEADER: f"sha-256=:{digest}:", "Cache-Control": "no-store"})


@router.post("/{reference}/triage", status_code=status.HTTP_201_CREATED,
             response_model=TriageRecord, summary="Record a triage",
             responses={403: {"description": "Your roles or scope do not allow it"},
                        404: {"description": "No such case"},
                        422: {"description": "The body is not valid"}})
async def record_triage(reference: str, body: TriageRequest, context: ContextDep,
                        session: SessionDep, who: CurrentUser) -> TriageRecord:
    """Record a triage of the case (Code 5.10, 6.1); the latest is the current one."""
    relation = relation_to(session, who, reference)
    if relation is None:
        raise Problem(404, f"no complaint {reference}: GET /api/v1/complaints lists them")
    require(context, who, Permission.TRIAGE, relation)
    session.rollback()
    try:
        row = await context.write(lambda writer: casefiles.record_triage(
            writer, reference, complexity=body.complexity, vulnerability=body.vulnerability,
            risk=body.risk, note=body.note, by=who.staff_id))
    except casefiles.CaseFileError as exc:
        raise Problem(422, f"the body is not valid: {exc}") from None
    return TriageRecord.of(row)


@router.get("/{reference}/triage", response_model=list[TriageRecord],
            summary="A case's triage, current first",
            responses={404: {"description": "No such case"}})
def triage_history(reference: str, context: ContextDep, session: SessionDep,
                   who: CurrentUser) -> list[TriageRecord]:
    """Every triage of the case, the current (latest) first; the viewing is recorded."""
    require(context, who, Permission.READ_CASES)
    known_case(session, reference)
    rows = casefiles.triage_history(session, reference)
    session.rollback()
    _viewed(context, who, reference, "triage")
    return [TriageRecord.of(row) for row in rows]
