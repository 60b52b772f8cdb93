"""The Import page: historic complaints from a landlord's previous system, from a CSV file.

The same import as ``complaints import`` and ``POST /api/v1/imports``
(:func:`complaints.imports.import_complaints`): all of the file or nothing, "check only"
for a dry run. It needs ``import_complaints`` (admins by default); the run is recorded as
the person's, through the door ``web``. A refused file lists every problem with its line
and column, never a cell's value (the file holds no personal data, but say nothing of it).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from complaints.api.deps import ContextDep
from complaints.api.imports import MAX_IMPORT_BYTES
from complaints.api.problems import Problem
from complaints.identity import Identity
from complaints.web.auth import WebUser, check_csrf
from domain.permissions import Permission

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

#: Read the uploaded file this many bytes at a time.
_CHUNK = 1024 * 1024


def _allowed(context: Any, user: Identity) -> None:
    refusal = user.refusal(context.matrix, Permission.IMPORT_COMPLAINTS)
    if refusal is not None:
        raise Problem(403, refusal)


def _page(request: Request, user: Identity, status: int = 200, **values: Any) -> Response:
    from complaints.web.pages import page

    shown = {"summary": None, "problem": None, "problems": [], "dry_run": False, **values}
    return page(request, "import.html", user, status=status,
                title="Import historic complaints", max_mib=MAX_IMPORT_BYTES // 2**20,
                **shown)


@router.get("/import")
def import_form(request: Request, context: ContextDep, user: WebUser) -> Response:
    """The form: a CSV file, and whether only to check it."""
    _allowed(context, user)
    return _page(request, user)


async def _read(upload: UploadFile) -> bytes:
    """The uploaded file, refused past :data:`MAX_IMPORT_BYTES`."""
    data = bytearray()
    while chunk := await upload.read(_CHUNK):
        data += chunk
        if len(data) > MAX_IMPORT_BYTES:
            raise ValueError(f"the file is over {MAX_IMPORT_BYTES // 2**20} MiB: split it "
                             "into several files and import each")
    return bytes(data)


@router.post("/import")
async def import_file(request: Request, context: ContextDep, user: WebUser) -> Response:
    """Import (or, checking only, check) the file; the counts, or every problem found."""
    from complaints.imports import ImportRefused, import_complaints

    form = await request.form()
    check_csrf(request, str(form.get("csrf", "")))
    _allowed(context, user)
    dry_run = form.get("dry_run") is not None
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return _page(request, user, status=422, dry_run=dry_run,
                     problem="choose the CSV file to import (UTF-8, one row per complaint)")
    try:
        data = await _read(upload)
    except ValueError as exc:
        return _page(request, user, status=413, dry_run=dry_run, problem=str(exc))
    finally:
        await upload.close()
    try:
        summary = await asyncio.to_thread(import_complaints, context.engine, data,
                                          by=user.staff_id, via="web", dry_run=dry_run,
                                          today=context.today())
    except ImportRefused as exc:
        return _page(request, user, status=422, dry_run=dry_run,
                     problem=exc.line(": each is listed below"), problems=exc.problems)
    return _page(request, user, dry_run=dry_run, summary=summary)
