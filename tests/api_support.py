"""What the API and web tests share: an app on the test's stack, staff, and their tokens."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from complaints.api.app import create_app, make_context
from complaints.api.deps import ApiContext
from complaints.directory import add_staff
from complaints.identity import issue_token
from domain.permissions import Matrix, Permission
from models.actions import ACTION_BY_TRIGGER
from tests.cases import DEFINITION
from tests.conftest import Stack, make_intake

#: The staff every API test starts with: id, role, team.
STAFF = (("hdl-1", "handler", "North"), ("hdl-2", "handler", "South"),
         ("hdl-3", "handler", "North"), ("rev-1", "reviewer", "Review"),
         ("mgr-1", "manager", "North"), ("lead-1", "lead", "Quality"),
         ("view-1", "viewer", "Board"), ("int-1", "integration", "Systems"),
         ("adm-1", "admin", "IT"), ("ops-1", "operator", "IT"))


def everything(matrix: Matrix, roles: tuple[str, ...]) -> list[str]:
    """Every name the roles allow: a service token with all of a person's permissions."""
    names = [*ACTION_BY_TRIGGER, *(p.value for p in Permission)]
    return [n for n in names if matrix.allowed(roles, n)]


def seed_staff(context: ApiContext, *, subjects: bool = False) -> dict[str, str]:
    """Add :data:`STAFF` to the directory; a service token per person, by staff id."""
    tokens = {}
    with context.session() as session:
        for staff_id, role, team in STAFF:
            add_staff(session, staff_id, display_name=f"Staff {staff_id}",
                      job_title=role.title(), team=team, email=f"{staff_id}@landlord.example",
                      roles=(role,), subject=staff_id if subjects else None)
        for staff_id, role, _team in STAFF:
            _row, token = issue_token(session, staff_id, scopes=everything(context.matrix,
                                                                           (role,)),
                                      label="tests", created_by="adm-1", matrix=context.matrix)
            tokens[staff_id] = token
    return tokens


@dataclass
class Api:
    """An app on a test's stack, reached in-process, with a token per member of staff."""

    http: httpx.AsyncClient
    stack: Stack
    context: ApiContext
    tokens: dict[str, str] = field(default_factory=dict)
    #: Makes this test's complaints its own: the server is shared by the session, and the
    #: same intake lodged again is (rightly) the same case.
    salt: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def body(self, **overrides: Any) -> dict[str, Any]:
        """A lodging body unique to this test (see :func:`intake_body`)."""
        return intake_body(**{"channel_reference": f"call-{self.salt}", **overrides})

    def auth(self, staff_id: str) -> dict[str, str]:
        """The Authorization header of ``staff_id``."""
        return {"Authorization": f"Bearer {self.tokens[staff_id]}"}

    async def lodge(self, key: str = "key-1", as_who: str = "hdl-1",
                    **overrides: Any) -> str:
        """Lodge a complaint through the API; its reference."""
        response = await self.http.post("/api/v1/complaints", json=self.body(**overrides),
                                        headers={**self.auth(as_who), "Idempotency-Key": key})
        assert response.status_code == 201, response.text
        reference: str = response.json()["reference"]
        return reference

    async def act(self, reference: str, trigger: str, body: dict[str, Any],
                  as_who: str) -> httpx.Response:
        """POST one action as ``as_who``."""
        return await self.http.post(f"/api/v1/complaints/{reference}/{trigger}", json=body,
                                    headers=self.auth(as_who))


def intake_body(**overrides: Any) -> dict[str, Any]:
    """A lodging body (the intake less its reference), received today."""
    intake = make_intake(received_on=dt.date.today(), **overrides)
    return intake.model_dump(mode="json", exclude={"reference"})


def acknowledge_body(handler: str = "hdl-1") -> dict[str, Any]:
    """An acknowledgement naming ``handler``."""
    return {"handler_id": handler, "definition": DEFINITION.model_dump(mode="json")}


@asynccontextmanager
async def running_api(stack: Stack, *, subjects: bool = False,
                      **settings: Any) -> AsyncIterator[Api]:
    """The app on ``stack`` with a worker running and the staff seeded."""
    chosen = stack.settings.model_copy(update={"temporal_task_queue": stack.task_queue,
                                               **settings})
    context = make_context(chosen)
    context.client = stack.env.client
    tokens = seed_staff(context, subjects=subjects)
    app = create_app(context=context)
    try:
        async with stack.worker(), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
            yield Api(http, stack, context, tokens)
    finally:
        context.engine.dispose()
