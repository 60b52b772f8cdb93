"""Liveness and readiness: is the API up, and can it reach Temporal and the database."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from complaints.api.deps import ContextDep

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness: the API process answers")
async def health() -> dict[str, str]:
    """Always ``ok`` while the process serves requests."""
    return {"status": "ok"}


@router.get("/ready", summary="Readiness: Temporal and the database answer",
            responses={503: {"description": "A dependency is not answering"}})
async def ready(context: ContextDep) -> JSONResponse:
    """Check the database (``SELECT 1``) and Temporal (its health check), each bounded."""
    checks: dict[str, Any] = {}

    def database() -> None:
        with context.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(asyncio.to_thread(database), 5)
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure is "not ready", named
        checks["database"] = f"failing: {exc.__class__.__name__}"
    try:
        client = await context.temporal()
        await asyncio.wait_for(client.service_client.check_health(), 5)
        checks["temporal"] = "ok"
    except Exception as exc:  # noqa: BLE001 - as above
        checks["temporal"] = f"failing: {exc.__class__.__name__}"
    ok = all(v == "ok" for v in checks.values())
    body = {"status": "ready" if ok else "not ready", "checks": checks}
    return JSONResponse(body, status_code=200 if ok else 503)
