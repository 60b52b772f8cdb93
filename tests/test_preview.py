"""Letters previewed before sending: the workflow's query, the API route, nothing changed."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from sqlmodel import select

from complaints.letters import ukdate
from domain.deadlines import london_date
from models.access import CaseViewRow
from models.actions import Acknowledge
from models.events import PreviewAnswer, PreviewInput
from models.messages import CaseView, DeadlineKind
from models.tables import AuditRow, ComplaintRow, LetterRow
from tests.api_support import Api, acknowledge_body, running_api
from tests.cases import DEFINITION, STAGE1_HANDLER
from tests.conftest import Stack, make_intake
from tests.test_workflow import started, view

PROBLEM = "application/problem+json"


@pytest_asyncio.fixture
async def api(stack: Stack) -> AsyncIterator[Api]:
    """The API on this test's stack, staff seeded, a worker running."""
    async with running_api(stack) as running:
        yield running


def recorded(api: Api, reference: str) -> dict[str, Any]:
    """What the database holds of a case that a preview must leave alone."""
    outbox = Path(api.context.settings.effective_outbox())
    with api.context.session() as session:
        row = session.get(ComplaintRow, reference)
        assert row is not None
        return {
            "state": row.state,
            "letters": session.exec(select(LetterRow.letter_id).where(
                LetterRow.reference == reference)).all(),
            "audit": [(a.seq, a.action, a.by) for a in session.exec(
                select(AuditRow).where(AuditRow.reference == reference)).all()],
            "outbox": sorted(str(p) for p in outbox.rglob("*")) if outbox.exists() else [],
        }


async def live(api: Api, reference: str) -> CaseView:
    """The case as its workflow's ``case_view`` query returns it."""
    handle = api.stack.env.client.get_workflow_handle(reference)
    return await handle.query("case_view", result_type=CaseView)


def preview_url(reference: str, trigger: str) -> str:
    """The preview route of ``trigger`` on a case."""
    return f"/api/v1/complaints/{reference}/{trigger}/preview"


async def test_an_acknowledgement_preview_is_the_letter_sent_and_changes_nothing(
        api: Api) -> None:
    """The preview names the handler and due date, changes nothing, and equals the letter sent."""
    reference = await api.lodge()
    before, view_before = recorded(api, reference), await live(api, reference)
    day = london_date(dt.datetime.now(dt.UTC))
    response = await api.http.post(preview_url(reference, "acknowledge"),
                                   json=acknowledge_body(), headers=api.auth("hdl-1"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["note"] == "nothing has been sent"
    [letter] = body["letters"]
    assert letter["kind"] == "stage1_acknowledgement"
    assert letter["letter_id"] == f"{reference}:stage1_acknowledgement:1:1"
    assert "Staff hdl-1, Handler is handling your complaint" in letter["text"]
    assert letter["html"].lstrip().lower().startswith("<!doctype html")
    assert recorded(api, reference) == before
    assert (await live(api, reference)).model_dump() == view_before.model_dump()
    with api.context.session() as session:
        views = session.exec(select(CaseViewRow.what, CaseViewRow.via).where(
            CaseViewRow.reference == reference)).all()
    assert views == [("preview:acknowledge", "api")]

    done = await api.act(reference, "acknowledge", acknowledge_body(), "hdl-1")
    assert done.status_code == 200, done.text
    assert done.json()["letters"] == [letter["letter_id"]]
    due = next(d.due for d in (await live(api, reference)).deadlines
               if d.kind is DeadlineKind.STAGE1_RESPONSE)
    assert f"full written response by {ukdate(due)}" in letter["text"]
    with api.context.session() as session:
        sent = session.get(LetterRow, letter["letter_id"])
    assert sent is not None and sent.subject == letter["subject"]
    if london_date(dt.datetime.now(dt.UTC)) == day:  # the letter's date is the day it goes
        assert sent.text == letter["text"]


async def test_a_refused_preview_is_a_409_with_the_case_reason(api: Api) -> None:
    """Previewing a response before acknowledgement is refused as the action would be."""
    reference = await api.lodge()
    response = await api.http.post(preview_url(reference, "respond"), json={
        "decision": "upheld", "findings": [{"point": "p", "finding": "f", "reason": "r"}]},
        headers=api.auth("mgr-1"))
    assert response.status_code == 409
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["detail"].startswith("refused: cannot issue")
    assert "while the complaint is 'received'" in response.json()["detail"]


async def test_a_preview_is_checked_like_the_action(api: Api) -> None:
    """A viewer gets 403, a bad body 422, an unknown case 404, an unknown handler 409."""
    reference = await api.lodge()
    viewer = await api.http.post(preview_url(reference, "acknowledge"),
                                 json=acknowledge_body(), headers=api.auth("view-1"))
    assert viewer.status_code == 403 and "viewer" in viewer.json()["detail"]
    bad = await api.http.post(preview_url(reference, "acknowledge"),
                              json={**acknowledge_body(), "by": "lead-1"},
                              headers=api.auth("hdl-1"))
    assert bad.status_code == 422
    assert any(e["pointer"] == "#/by" for e in bad.json()["errors"])
    unknown = await api.http.post(preview_url("CMP-2026-999999", "acknowledge"),
                                  json=acknowledge_body(), headers=api.auth("hdl-1"))
    assert unknown.status_code == 404
    nobody = await api.http.post(preview_url(reference, "acknowledge"),
                                 json=acknowledge_body("nobody-9"), headers=api.auth("hdl-1"))
    assert nobody.status_code == 409 and "not in the staff directory" in nobody.json()["detail"]
    with api.context.session() as session:
        views = session.exec(select(CaseViewRow).where(
            CaseViewRow.reference == reference)).all()
    assert views == []  # nothing was shown


async def test_an_action_without_a_letter_previews_an_empty_list(api: Api) -> None:
    """Claiming a case sends the resident nothing: the preview says so with no letters."""
    reference = await api.lodge()
    before = recorded(api, reference)
    response = await api.http.post(preview_url(reference, "assign"), json={"to": "hdl-1"},
                                   headers=api.auth("hdl-1"))
    assert response.status_code == 200, response.text
    assert response.json() == {"letters": [], "note": "nothing has been sent"}
    assert recorded(api, reference) == before


async def test_the_preview_query_leaves_the_case_as_it_was(stack: Stack) -> None:
    """The workflow's preview answers from a copy: case_view is unchanged, bad input refused."""
    async with stack.worker():
        handle = await stack.lodge(make_intake())
        before = await started(handle)
        acknowledge = Acknowledge(by=STAGE1_HANDLER, handler_id=STAGE1_HANDLER,
                                  definition=DEFINITION)
        answer = await handle.query("preview", PreviewInput(
            trigger="acknowledge", action=acknowledge.model_dump(mode="json")),
            result_type=PreviewAnswer)
        assert answer.refusal is None and answer.event is not None and answer.case is not None
        assert [s.kind.value for s in answer.event.letters] == ["stage1_acknowledgement"]
        assert answer.case.state == "stage1_investigating"
        assert answer.case.stage1_handler == STAGE1_HANDLER
        after = await view(handle)
        assert after.model_dump() == before.model_dump()
        assert after.state == "received" and after.letters == []
        malformed = await handle.query("preview", PreviewInput(
            trigger="acknowledge", action={"by": STAGE1_HANDLER}), result_type=PreviewAnswer)
        assert malformed.refusal is not None and malformed.refusal.startswith("malformed: ")
        unknown = await handle.query("preview", PreviewInput(trigger="fly", action={}),
                                     result_type=PreviewAnswer)
        assert unknown.refusal is not None and unknown.refusal.startswith("unknown action")
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
        dated = await handle.query("preview", PreviewInput(
            trigger="acknowledge", action=acknowledge.model_dump(mode="json"), at=later),
            result_type=PreviewAnswer)
        assert dated.event is not None and dated.event.at == later  # the caller's clock
        assert (await view(handle)).model_dump() == before.model_dump()
