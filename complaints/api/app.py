"""The FastAPI application: ``create_app`` wires settings, database, Temporal and routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from complaints.api import actions, casefiles, cases, codec, health, privacy, problems, reports
from complaints.api.deps import ApiContext
from complaints.db import ensure_schema, make_engine
from complaints.identity import OidcVerifier
from complaints.settings import Settings
from domain.permissions import load_matrix

API_PREFIX = "/api/v1"


def make_context(settings: Settings) -> ApiContext:
    """The shared context of an app for ``settings`` (database migrated)."""
    url = settings.effective_database_url()
    ensure_schema(url)
    verifier = None
    if settings.oidc_issuer:
        verifier = OidcVerifier(issuer=settings.oidc_issuer,
                                audience=settings.oidc_audience or settings.oidc_client_id
                                or "complaints-api",
                                subject_claim=settings.oidc_subject_claim)
    return ApiContext(settings=settings, engine=make_engine(url),
                      reader=make_engine(url, read_only=True),
                      matrix=load_matrix(settings.permissions_file), verifier=verifier)


def create_app(settings: Settings | None = None, *, context: ApiContext | None = None) -> FastAPI:
    """The API (and, when mounted by ``complaints.web``, the pages) for one deployment.

    Args:
        settings: The settings (default: from the environment).
        context: A ready context (tests give one with their Temporal client).

    """
    context = context or make_context(settings or Settings())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        context.engine.dispose()
        context.reader.dispose()

    app = FastAPI(title="Complaints engine API", version="1",
                  description=("Housing Ombudsman Complaint Handling Code casework. Errors "
                               "are RFC 9457 problem details."),
                  lifespan=lifespan)
    app.state.context = context
    problems.install(app)
    api = APIRouter(prefix=API_PREFIX)
    api.include_router(health.router)
    api.include_router(cases.router)
    api.include_router(casefiles.router)
    api.include_router(actions.router)
    api.include_router(reports.router)
    api.include_router(privacy.router)
    api.include_router(__import__("complaints.api.service_requests", fromlist=["router"]).router)
    api.include_router(__import__("complaints.api.imports", fromlist=["router"]).router)
    api.include_router(__import__("complaints.api.learning", fromlist=["router"]).router)
    app.include_router(api)
    app.include_router(codec.router)
    return app
