"""Importing historic complaints over the API: ``POST /imports`` with a CSV body.

The same import as ``complaints import FILE.csv`` (:mod:`complaints.imports`): the body
is the file itself (``Content-Type: text/csv``), all of it or nothing. It needs the
``import_complaints`` permission (admin by default); the run is recorded as the caller's.
A bad file is a 422 problem whose ``detail`` is the first problem and whose ``errors``
list every one found, each with its ``line`` and ``field`` (never a cell's value).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from complaints.api.deps import ContextDep, CurrentUser, require
from complaints.api.problems import Problem
from domain.permissions import Permission

router = APIRouter(tags=["imports"])

#: The largest file taken (some 200,000 complaints).
MAX_IMPORT_BYTES = 64 * 1024 * 1024
MEDIA_TYPE = "text/csv"


class ImportOut(BaseModel):
    """What an import did (or, dry, would do)."""

    rows: int
    imported: int
    replaced: int
    unchanged: int
    dry_run: bool
    run_id: int | None
    file_sha256: str


async def _body(request: Request) -> bytes:
    """The request body, refused with 413 past :data:`MAX_IMPORT_BYTES`."""
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_IMPORT_BYTES:
            raise Problem(413, f"the file is over {MAX_IMPORT_BYTES // (1024 * 1024)} MiB: "
                               "split it into several files and import each")
    return bytes(data)


@router.post(
    "/imports", status_code=status.HTTP_201_CREATED, response_model=ImportOut,
    summary="Import historic complaints from a CSV file",
    openapi_extra={"requestBody": {"required": True, "content": {
        MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}}},
    responses={200: {"description": "Dry run: what would change (nothing written)"},
               413: {"description": "Over 64 MiB"},
               415: {"description": "Not sent as text/csv"},
               422: {"description": "A bad file or row: nothing was imported"}})
async def import_complaints(
        request: Request, context: ContextDep, who: CurrentUser,
        dry_run: Annotated[bool, Query(description="Check and say what would change; "
                                                   "write nothing")] = False,
) -> JSONResponse:
    """Import a landlord's historic complaints: one CSV row per complaint (see the README).

    Imported complaints count in the reports exactly as live ones and start no workflow.
    Importing the same file again changes nothing; a changed row replaces what the
    earlier import wrote for its reference.
    """
    from complaints.imports import ImportRefused
    from complaints.imports import import_complaints as run_import

    require(context, who, Permission.IMPORT_COMPLAINTS)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != MEDIA_TYPE:
        raise Problem(415, "send the file as the body with Content-Type: text/csv "
                           "(UTF-8, one row per complaint)")
    data = await _body(request)
    try:
        summary = await asyncio.to_thread(run_import, context.engine, data,
                                          by=who.staff_id, via="api", dry_run=dry_run,
                                          today=context.today())
    except ImportRefused as exc:
        raise Problem(422, exc.line(": errors lists them"), errors=[
            {"line": p.line, "field": p.field, "detail": p.message}
            for p in exc.problems]) from None
    out = ImportOut(rows=summary.rows, imported=summary.imported, replaced=summary.replaced,
                    unchanged=summary.unchanged, dry_run=summary.dry_run,
                    run_id=summary.run_id, file_sha256=summary.file_sha256)
    return JSONResponse(out.model_dump(), status_code=200 if dry_run else 201)
