"""Service tokens on the web app's Staff page: made once-shown, used, revoked, and refused."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from structlog.testing import capture_logs

from complaints.identity import list_tokens
from tests.api_support import Api, running_api
from tests.conftest import Stack
from tests.test_web import browser_for, csrf_of, sign_in

#: The notice above a token just made.
ONCE = "Copy it now: it will not be shown again"


@pytest_asyncio.fixture
async def api(stack: Stack) -> AsyncIterator[Api]:
    """The app on this test's stack with dev sign-in on, staff seeded, a worker running."""
    async with running_api(stack, dev_sign_in=True) as running:
        yield running


def token_count(api: Api) -> int:
    """How many service tokens the database holds."""
    with api.context.session() as session:
        return len(list_tokens(session))


async def test_an_admin_makes_a_token_that_is_shown_once_then_revokes_it(api: Api) -> None:
    """The token shows once, acts within its scopes only, never shows again, and revokes."""
    async with browser_for(api) as client:
        await sign_in(client, "adm-1")
        chosen = (await client.get("/staff", params={"holder": "int-1"})).text
        assert "Service tokens" in chosen and 'value="read_cases"' in chosen
        assert 'value="acknowledge"' not in chosen  # Not an integration's to give.
        with capture_logs() as entries:
            made = await client.post("/staff/tokens", data={
                "csrf": csrf_of(chosen), "do": "create", "holder": "int-1",
                "label": "Housing system", "scopes": ["read_cases"], "expires_days": "30"})
        assert made.status_code == 200 and ONCE in made.text
        assert made.headers["cache-control"] == "no-store"
        found = re.search(r"API_TOKEN=(cmpt_[A-Za-z0-9_.-]+)", made.text)
        assert found
        token = found.group(1)
        token_id, _, secret = token.removeprefix("cmpt_").partition(".")
        assert made.text.count(secret) == 1
        assert [e["by"] for e in entries if e["event"] == "service_token_issued"] == ["adm-1"]
        assert secret not in repr(entries)

        bearer = {"Authorization": f"Bearer {token}"}
        assert (await api.http.get("/api/v1/complaints", headers=bearer)).status_code == 200
        lodged = await api.http.post("/api/v1/complaints", json=api.body(),
                                     headers={**bearer, "Idempotency-Key": "web-token-1"})
        assert lodged.status_code == 403 and "not scoped for lodge" in lodged.text

        listed = (await client.get("/staff")).text
        assert token_id in listed and "Housing system" in listed
        assert secret not in listed and ONCE not in listed
        with capture_logs() as entries:
            revoked = await client.post("/staff/tokens", data={
                "csrf": csrf_of(listed), "do": "revoke", "token_id": token_id})
        assert revoked.status_code == 303 and secret not in revoked.headers["location"]
        assert [e["by"] for e in entries if e["event"] == "service_token_revoked"] == ["adm-1"]
        after = (await client.get("/staff")).text
        assert f"Token {token_id} (int-1) is revoked" in after
        row = re.search(rf"<tr><td>{token_id}</td>.*?</tr>", after, re.S)
        assert row and "revoked</span> <time" in row.group(0)
    refused = await api.http.get("/api/v1/complaints", headers=bearer)
    assert refused.status_code == 401 and "revoked" in refused.text


async def test_the_form_refuses_a_bad_token_in_one_line_and_makes_none(api: Api) -> None:
    """A scope beyond the holder, a missing label or CSRF token: refused, nothing made."""
    before = token_count(api)
    async with browser_for(api) as client:
        await sign_in(client, "adm-1")
        page = (await client.get("/staff", params={"holder": "int-1"})).text
        form = {"csrf": csrf_of(page), "do": "create", "holder": "int-1",
                "label": "Housing system", "scopes": ["acknowledge"]}
        beyond = await client.post("/staff/tokens", data=form)
        assert beyond.status_code == 422
        assert "a token cannot do more than its holder" in beyond.text
        unlabelled = await client.post("/staff/tokens",
                                       data={**form, "label": "", "scopes": ["lodge"]})
        assert unlabelled.status_code == 422 and "give the token a label" in unlabelled.text
        forged = await client.post("/staff/tokens", data={**form, "csrf": "",
                                                          "scopes": ["lodge"]})
        assert forged.status_code == 403 and "this form has expired" in forged.text
        for response in (beyond, unlabelled, forged):
            assert ONCE not in response.text and "API_TOKEN=" not in response.text
    assert token_count(api) == before


async def test_only_those_who_manage_tokens_see_or_use_the_section(stack: Stack,
                                                                   tmp_path: Path) -> None:
    """A handler is refused the page and the POST; an admin without manage_tokens sees none."""
    own = tmp_path / "landlord.toml"
    own.write_text('[roles.admin]\nscope = "any"\ncan = ["read_reports", "admin_staff"]\n')
    async with running_api(stack, dev_sign_in=True, permissions_file=own) as api:
        before = token_count(api)
        async with browser_for(api) as client:
            home = await sign_in(client, "hdl-1")
            assert (await client.get("/staff")).status_code == 403
            refused = await client.post("/staff/tokens", data={
                "csrf": csrf_of(home), "do": "create", "holder": "hdl-1", "label": "Mine",
                "scopes": ["all"]})
            assert refused.status_code == 403
            assert "may not manage service tokens" in refused.text
        async with browser_for(api) as client:
            await sign_in(client, "adm-1")
            page = await client.get("/staff")
            assert page.status_code == 200 and "Add a member of staff" in page.text
            assert "Service tokens" not in page.text and "/staff/tokens" not in page.text
            refused = await client.post("/staff/tokens", data={
                "csrf": csrf_of(page.text), "do": "revoke", "token_id": "x"})
            assert refused.status_code == 403
            assert "may not manage service tokens" in refused.text
        assert token_count(api) == before
