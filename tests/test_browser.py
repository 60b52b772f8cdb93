"""The web app in a real browser: Playwright drives Debian's chromium (never downloaded).

Staff sign in through the real OpenID Connect provider on loopback (npm oidc-provider,
the ``oidc_provider`` fixture): its own sign-in and consent pages, the authorisation code
flow with PKCE, back to the app, whose session maps the subject to the staff directory.
The app runs under uvicorn on the port the provider's redirect URI names; a worker runs
on the test's task queue. axe-core (from the axe-playwright-python package) checks each
page against WCAG 2.2 A and AA. Set SCREENSHOTS_DIR to keep screenshots of the inbox and
a case page (the README's come from here).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import uvicorn

from complaints.api.app import make_context
from complaints.web import create_web_app
from tests.api_support import Api, running_api
from tests.cases import DEFINITION
from tests.conftest import Stack

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: The accessibility rules run: WCAG 2.0, 2.1 and 2.2 at levels A and AA.
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=(
    "Debian's chromium is not installed: scripts/test.sh installs it (apt-get install "
    "chromium); this skip only happens outside the project's test command"))


@contextmanager
def serving(app: Any, port: int) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1:``port`` in a thread; its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        threading.Event().wait(0.05)
    assert server.started, "the web app did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest_asyncio.fixture
async def site(stack: Stack, oidc_provider: Any, web_app_port: int) -> AsyncIterator[
        tuple[Api, str]]:
    """The web app on the reserved port, signing in through the provider; staff seeded."""
    target = stack.env.client.service_client.config.target_host
    base = f"http://127.0.0.1:{web_app_port}"
    async with running_api(
            stack, subjects=True, oidc_issuer=oidc_provider.issuer,
            oidc_client_id="complaints-web", oidc_client_secret="web-secret-for-tests-only",
            oidc_audience=oidc_provider.audience, public_url=base,
            session_secret="a-session-secret-for-the-browser-tests-only",
            temporal_address=target) as api:
        # The server's own context: its Temporal client connects on the server's loop.
        app = create_web_app(context=make_context(api.context.settings))
        with serving(app, web_app_port) as url:
            yield api, url


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Any]:
    """Debian's chromium, headless, through Playwright."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield launched
        await launched.close()


async def signed_in(browser: Any, url: str, login: str) -> Any:
    """A new browser page signed in as ``login`` through the provider's own pages."""
    page = await (await browser.new_context()).new_page()
    await page.goto(f"{url}/cases/mine")
    await page.fill("input[name=login]", login)
    if await page.locator("input[name=password]").count():
        await page.fill("input[name=password]", "any password")
    await page.click("button[type=submit]")
    await page.wait_for_load_state()
    if "/cases/mine" not in page.url:  # the provider's consent page
        await page.click("button[type=submit]")
    await page.wait_for_url(f"{url}/cases/mine")
    return page


async def accessible(page: Any) -> list[str]:
    """The axe-core violations of ``page`` at WCAG 2.2 AA (rule ids and counts)."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page, options={"runOnly": {"type": "tag",
                                                         "values": WCAG_TAGS}})
    assert results.response["passes"], "axe-core checked nothing: was it injected?"
    return [f"{v['id']} ({len(v['nodes'])})" for v in results.response["violations"]]


async def shot(page: Any, name: str) -> None:
    """Keep a screenshot when SCREENSHOTS_DIR is set."""
    folder = os.environ.get("SCREENSHOTS_DIR")
    if folder:
        await page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


async def open_action(page: Any, title: str) -> None:
    """Open an action's form on a case page."""
    await page.click(f"summary:has-text('{title}')")


async def test_a_handler_takes_a_case_from_lodging_to_a_stage_1_response(
        site: tuple[Api, str], browser: Any) -> None:
    """Sign in via OIDC, lodge, acknowledge and respond in the browser; pages pass axe."""
    api, url = site
    page = await signed_in(browser, url, "hdl-1")
    assert await page.locator("text=Signed in as").count() == 1
    await page.click("nav >> text=Lodge a complaint")
    await page.fill("#l-chref", f"browser-{api.salt}")
    await page.select_option("#l-policy", "connexus")
    await page.fill("#l-name", "Jo Bloggs")
    await page.fill("#l-address", "2 Test Row\nLudlow\nSY8 1AA")
    await page.fill("#l-description", "The roof has leaked into the bedroom since August.")
    await page.fill("#l-outcomes", "Fix the roof")
    await page.click("button:has-text('Lodge the complaint')")
    await page.wait_for_url(f"{url}/case/CMP-*")
    reference = page.url.rsplit("/", 1)[-1]
    assert await accessible(page) == []
    await open_action(page, "Acknowledge the complaint")
    await page.fill("#acknowledge-f-handler_id", "hdl-1")
    await page.fill("#acknowledge-f-definition-summary", DEFINITION.summary)
    await page.fill("#acknowledge-f-definition-points", "\n".join(DEFINITION.points))
    await page.fill("#acknowledge-f-definition-outcomes_sought",
                    "\n".join(DEFINITION.outcomes_sought))
    await page.click("button:has-text('Acknowledge the complaint')")
    await page.wait_for_selector("text=the case is now stage1 investigating")
    await open_action(page, "Issue a response")
    await page.select_option("#respond-f-decision", "partly_upheld")
    for row, point in enumerate(DEFINITION.points):
        await page.fill(f"#respond-f-findings-{row}-point", point)
        await page.fill(f"#respond-f-findings-{row}-finding", "Found so")
        await page.fill(f"#respond-f-findings-{row}-reason", "Our repair records show it")
    await page.select_option("#respond-f-remedies-0-kind", "apology")
    await page.fill("#respond-f-remedies-0-description", "We apologise for the delay")
    await page.click("button:has-text('Issue a response')")
    await page.wait_for_selector("text=the case is now stage1 responded")
    assert await page.locator(".timeline >> text=Letter sent").count() >= 2
    await shot(page, "case-page")
    await page.click("nav >> text=My cases")
    assert await page.locator(f"text={reference}").count() == 1
    assert await accessible(page) == []
    await shot(page, "inbox")


async def test_a_manager_reassigns_and_a_refusal_shows_its_reason(
        site: tuple[Api, str], browser: Any) -> None:
    """A manager's reassignment goes through; a refused one shows the case's reason inline."""
    api, url = site
    reference = await api.lodge()
    from tests.api_support import acknowledge_body

    assert (await api.act(reference, "acknowledge", acknowledge_body(), "hdl-1")).status_code \
        == 200
    page = await signed_in(browser, url, "mgr-1")
    await page.goto(f"{url}/case/{reference}")
    await open_action(page, "Reassign the case")
    await page.select_option("#reassign-f-role", "handler")
    await page.fill("#reassign-f-to", "hdl-1")
    await page.fill("#reassign-f-reason", "Moving it")
    await page.click("button:has-text('Reassign the case')")
    refusal = page.locator("#result-reassign .error-summary")
    await refusal.wait_for()
    assert "already handles this case" in await refusal.inner_text()
    await page.fill("#reassign-f-to", "hdl-3")
    await page.fill("#reassign-f-reason", "hdl-1 is on leave for a month")
    await page.click("button:has-text('Reassign the case')")
    await page.wait_for_selector("text=Reassign the case: done")
    assert await page.locator("text=Handler: hdl-3").count() == 1


async def test_a_read_only_user_cannot_act(site: tuple[Api, str], browser: Any) -> None:
    """A viewer sees the case and why each action is closed to them, and no form to act."""
    api, url = site
    reference = await api.lodge()
    page = await signed_in(browser, url, "view-1")
    await page.goto(f"{url}/case/{reference}")
    assert await page.locator("form[action*='/acknowledge']").count() == 0
    barred = await page.locator("ul.barred").inner_text()
    assert "your roles (viewer) may not" in barred
    assert await page.locator("nav >> text=Lodge a complaint").count() == 0
    response = await page.goto(f"{url}/lodge")
    assert response is not None and response.status == 403
    assert await accessible(page) == []


async def test_someone_not_in_the_directory_gets_no_access(
        site: tuple[Api, str], browser: Any) -> None:
    """Signing in at the provider as an unknown subject ends on a 403 page, not a session."""
    _api, url = site
    page = await (await browser.new_context()).new_page()
    await page.goto(f"{url}/cases/mine")
    await page.fill("input[name=login]", "stranger")
    if await page.locator("input[name=password]").count():
        await page.fill("input[name=password]", "x")
    await page.click("button[type=submit]")
    await page.wait_for_load_state()
    if "auth/callback" not in page.url and "/cases" not in page.url:
        await page.click("button[type=submit]")
    await page.wait_for_selector("text=not in the staff directory")
    assert await page.locator("text=Signed in as").count() == 0
    # Asking again goes round the provider (still signed in there) and is refused again:
    # no session was made for the stranger.
    again = await page.goto(f"{url}/cases/mine")
    assert again is not None and again.status == 403
    assert await page.locator("text=Signed in as").count() == 0
