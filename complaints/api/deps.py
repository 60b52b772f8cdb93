"""The API's dependencies: its context, a database session, Temporal, and who is asking.

As in FastAPI's full-stack template: ``SessionDep`` and ``CurrentUser`` are annotated
dependencies that routes declare; :class:`ApiContext` is made once per app
(:func:`complaints.api.app.create_app`) and holds what requests share.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import Client

from complaints.api.problems import Problem
from complaints.identity import AccessDenied, Identity, OidcVerifier, bearer_identity
from complaints.settings import Settings
from domain.permissions import Matrix

T = TypeVar("T")

__all__ = ["ApiContext", "ContextDep", "CurrentUser", "SessionDep", "TemporalDep"]


def _london_today() -> dt.date:
    from complaints.casefiles import london_today

    return london_today()


@dataclass
class ApiContext:
    """What every request of one app shares.

    Attributes:
        settings: The deployment's settings.
        engine: The complaints database, for writes (short transactions, off the loop).
        reader: The same database for reads (``make_engine(read_only=True)``): on SQLite
            its transactions never take the write lock the worker needs.
        matrix: The permission matrix in force.
        verifier: Checks OIDC access tokens (None: service tokens only).
        client: The Temporal client, connected on first use (or given, in tests).
        today: Today's London date (a function, so tests can fix it).
    """

    settings: Settings
    engine: Engine
    reader: Engine
    matrix: Matrix
    verifier: OidcVerifier | None
    client: Client | None = None
    today: Callable[[], dt.date] = _london_today
    _connecting: asyncio.Lock = field(default_factory=asyncio.Lock)

    def session(self) -> Session:
        """A new session for writing to the complaints database."""
        return Session(self.engine, expire_on_commit=False)

    def read_session(self) -> Session:
        """A new session for reading the complaints database."""
        return Session(self.reader, expire_on_commit=False)

    async def write(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in its own write session, in a thread (never on the event loop)."""
        def run() -> T:
            with self.session() as session:
                return work(session)

        return await asyncio.to_thread(run)

    async def temporal(self) -> Client:
        """The Temporal client, connecting once; 503 when Temporal cannot be reached."""
        if self.client is not None:
            return self.client
        async with self._connecting:
            if self.client is None:
                from worker import connect

                try:
                    self.client = await asyncio.wait_for(connect(self.settings), 10)
                except (TimeoutError, RuntimeError, OSError) as exc:
                    raise Problem(503, f"cannot reach Temporal at "
                                       f"{self.settings.temporal_address} "
                                       f"({exc.__class__.__name__}): start it, or check "
                                       "TEMPORAL_ADDRESS") from None
        return self.client


def get_context(request: Request) -> ApiContext:
    """The app's :class:`ApiContext`."""
    context: ApiContext = request.app.state.context
    return context


ContextDep = Annotated[ApiContext, Depends(get_context)]


def get_session(context: ContextDep) -> Iterator[Session]:
    """A reading session for one request; writes go through :meth:`ApiContext.write`.

    Reads never hold SQLite's write lock (the worker recording the very action a request
    awaits needs it); a route still ends its read before it awaits Temporal, so that it
    sees what the worker wrote meanwhile.
    """
    with context.read_session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


async def get_temporal(context: ContextDep) -> Client:
    """The Temporal client."""
    return await context.temporal()


TemporalDep = Annotated[Client, Depends(get_temporal)]

_bearer = HTTPBearer(auto_error=False, description=(
    "An OpenID Connect access token from the landlord's provider, or a service token "
    "(cmpt_...) made with `complaints staff token create`."))


async def get_current_user(context: ContextDep, session: SessionDep,
                           credentials: Annotated[HTTPAuthorizationCredentials | None,
                                                  Depends(_bearer)]) -> Identity:
    """Who is asking, from the bearer token; 401 without one, 403 for unknown staff."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AccessDenied(401, "send a bearer token (Authorization: Bearer ...): an OIDC "
                                "access token, or a service token from an administrator")
    try:
        return await bearer_identity(context, session, credentials.credentials)
    finally:
        session.rollback()  # a fresh snapshot for the route's own reads


CurrentUser = Annotated[Identity, Depends(get_current_user)]


def require(context: ApiContext, who: Identity, name: str, case: Any = None) -> None:
    """Refuse with 403 and the reason unless ``who`` may do ``name`` (on ``case``)."""
    refusal = who.refusal(context.matrix, name, case)
    if refusal is not None:
        raise Problem(403, refusal)
