"""The staff web app's pages, in-process on the real Temporal test server (dev sign-in)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest_asyncio
from sqlmodel import select

from complaints.web import create_web_app
from models.access import CaseViewRow
from models.tables import AuditRow, ComplaintRow, LetterRow
from tests.api_support import Api, running_api
from tests.cases import DEFINITION
from tests.conftest import Stack


@asynccontextmanager
async def browser_for(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client with a cookie jar on the web app sharing the API's context."""
    app = create_web_app(context=api.context)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://web") as client:
        yield client


@pytest_asyncio.fixture
async def api(stack: Stack) -> AsyncIterator[Api]:
    """The app on this test's stack with dev sign-in on, staff seeded, a worker running."""
    async with running_api(stack, dev_sign_in=True) as running:
        yield running


def csrf_of(html: str) -> str:
    """The CSRF token in a page's forms."""
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


async def sign_in(client: httpx.AsyncClient, staff_id: str) -> str:
    """Sign in through the dev picker; the first page after it."""
    picker = await client.get("/auth/dev")
    done = await client.post("/auth/dev", data={"staff_id": staff_id,
                                                "csrf": csrf_of(picker.text)})
    assert done.status_code == 303
    return (await client.get(done.headers["location"], follow_redirects=True)).text


async def test_pages_need_sign_in_and_dev_sign_in_works(api: Api) -> None:
    """A page redirects to sign-in; after picking a person their cases page greets them."""
    async with browser_for(api) as client:
        first = await client.get("/cases/mine")
        assert first.status_code == 303
        assert first.headers["location"] == "/auth/login?next=/cases/mine"
        page = await sign_in(client, "hdl-1")
        assert "Signed in as <strong>Staff hdl-1</strong>" in page
        assert "<h1>My cases</h1>" in page


async def test_an_administrator_starts_at_a_page_their_roles_open(api: Api) -> None:
    """An administrator, who reads no cases, lands on the reports with no case lists offered."""
    async with browser_for(api) as client:
        page = await sign_in(client, "adm-1")
        assert "<h1>Reports</h1>" in page
        assert 'href="/cases/mine"' not in page and 'href="/staff"' in page


async def test_a_handler_lodges_and_acknowledges_through_forms(api: Api) -> None:
    """Lodge by form, then acknowledge from the case page's form made from the model."""
    async with browser_for(api) as client:
        await sign_in(client, "hdl-1")
        form = await client.get("/lodge")
        lodged = await client.post("/lodge", data={
            "csrf": csrf_of(form.text), "channel": "phone", "received_on": "",
            "channel_reference": f"web-{api.salt}", "policy": "connexus", "name": "Jo Bloggs",
            "address": "2 Test Row\nLudlow", "description": "The roof leaks.",
            "outcomes": "Fix the roof"})
        assert lodged.status_code == 422 and "received_on" in lodged.text
        lodged = await client.post("/lodge", data={
            "csrf": csrf_of(form.text), "channel": "phone",
            "received_on": api.context.today().isoformat(),
            "channel_reference": f"web-{api.salt}", "policy": "connexus", "name": "Jo Bloggs",
            "address": "2 Test Row\nLudlow", "description": "The roof leaks.",
            "outcomes": "Fix the roof", "tenure": "lcho"})
        assert lodged.status_code == 303, lodged.text
        case_url = lodged.headers["location"]
        reference = case_url.rsplit("/", 1)[-1]
        case = await client.get(case_url)
        assert 'action="/case/' + reference + '/acknowledge"' in case.text
        acknowledged = await client.post(f"/case/{reference}/acknowledge", data={
            "csrf": csrf_of(case.text), "handler_id": "hdl-1",
            "definition.summary": DEFINITION.summary,
            "definition.points": "\n".join(DEFINITION.points),
            "definition.outcomes_sought": "\n".join(DEFINITION.outcomes_sought)})
        assert acknowledged.status_code == 303, acknowledged.text
        after = await client.get(case_url)
        assert "the case is now stage1 investigating" in after.text
    with api.context.session() as session:
        audit = session.exec(select(AuditRow).where(AuditRow.reference == reference,
                                                    AuditRow.action == "acknowledge")).one()
        views = session.exec(select(CaseViewRow.via).where(
            CaseViewRow.reference == reference)).all()
    assert audit.by == "hdl-1" and set(views) == {"web"}
    with api.context.session() as session:  # the tenure chosen reaches the report's table
        assert session.get(ComplaintRow, reference).tenure == "lcho"  # type: ignore[union-attr]


async def test_a_refusal_shows_its_reason_and_viewers_see_why_not(api: Api) -> None:
    """A viewer sees why each action is closed to them; a refused form says the case's reason."""
    reference = await api.lodge()
    async with browser_for(api) as client:
        await sign_in(client, "view-1")
        page = (await client.get(f"/case/{reference}")).text
        assert "Not open to you" in page and "your roles (viewer) may not" in page
        assert 'action="/case/' not in page
    async with browser_for(api) as client:
        await sign_in(client, "hdl-1")
        page = (await client.get(f"/case/{reference}")).text
        refused = await client.post(f"/case/{reference}/acknowledge", data={
            "csrf": csrf_of(page), "handler_id": "nobody-9",
            "definition.summary": "x", "definition.points": "p",
            "definition.outcomes_sought": "o"}, headers={"HX-Request": "true"})
        assert refused.status_code == 200
        assert "not in the staff directory" in refused.text
        forged = await client.post(f"/case/{reference}/acknowledge", data={"csrf": "wrong"})
        assert forged.status_code == 403


async def test_lists_order_and_mark_cases(api: Api) -> None:
    """The unassigned list shows a new case with its working days left and a status tag."""
    reference = await api.lodge()
    async with browser_for(api) as client:
        await sign_in(client, "hdl-2")
        page = (await client.get("/cases/unassigned")).text
        assert reference in page
        assert re.search(r'class="tag tag-(green|amber|red)"', page)


async def test_an_administrator_keeps_the_directory_and_others_cannot(api: Api) -> None:
    """An admin adds someone from the staff page; a handler is refused the page."""
    async with browser_for(api) as client:
        await sign_in(client, "hdl-1")
        assert (await client.get("/staff")).status_code == 403
    async with browser_for(api) as client:
        await sign_in(client, "adm-1")
        page = await client.get("/staff")
        added = await client.post("/staff", data={
            "csrf": csrf_of(page.text), "do": "add", "staff_id": "hdl-9",
            "display_name": "Sam Patel", "job_title": "Complaints officer", "team": "East",
            "email": "sam.patel@landlord.example", "roles": ["handler"], "subject": "sam-9"})
        assert added.status_code == 303
        listed = (await client.get("/staff")).text
        assert "Sam Patel" in listed and "sam-9" in listed
        again = await client.post("/staff", data={
            "csrf": csrf_of(listed), "do": "add", "staff_id": "HDL-9",
            "display_name": "Sam Patel", "job_title": "x", "team": "East",
            "email": "sam@landlord.example", "roles": ["handler"]})
        assert again.status_code == 422 and "already in the staff directory" in again.text


async def test_the_reports_page_shows_the_annual_report(api: Api) -> None:
    """A viewer opens the reports page and reads the year's report."""
    await api.lodge()
    async with browser_for(api) as client:
        await sign_in(client, "view-1")
        page = await client.get("/reports")
        assert page.status_code == 200
        assert "Reporting year" in page.text and "complaints" in page.text.lower()


async def test_claiming_from_the_unassigned_list(api: Api) -> None:
    """The Claim button on the unassigned list makes the case the handler's own."""
    reference = await api.lodge()
    async with browser_for(api) as client:
        await sign_in(client, "hdl-2")
        listed = (await client.get("/cases/unassigned")).text
        assert f'action="/case/{reference}/assign"' in listed
        claimed = await client.post(f"/case/{reference}/assign",
                                    data={"csrf": csrf_of(listed), "to": "hdl-2"})
        assert claimed.status_code == 303
        mine = (await client.get("/cases/mine")).text
        assert reference in mine


async def test_a_letter_reads_in_the_page_and_downloads_as_pdf(api: Api) -> None:
    """The acknowledgement letter shows in the app and downloads as a PDF, both recorded."""
    from tests.api_support import acknowledge_body

    reference = await api.lodge()
    assert (await api.act(reference, "acknowledge", acknowledge_body(), "hdl-1")).status_code \
        == 200
    async with browser_for(api) as client:
        await sign_in(client, "hdl-1")
        case = (await client.get(f"/case/{reference}")).text
        link = re.search(rf'href="(/case/{reference}/letters/[^"]+)"', case)
        assert link
        letter = await client.get(link.group(1))
        assert letter.status_code == 200 and "srcdoc=" in letter.text
        pdf = await client.get(link.group(1) + "/pdf")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    with api.context.session() as session:
        whats = session.exec(select(CaseViewRow.what).where(
            CaseViewRow.reference == reference, CaseViewRow.via == "web")).all()
    assert any(w.endswith(":pdf") for w in whats) and len(whats) >= 3


async def test_the_preview_button_shows_the_letter_not_sent(api: Api) -> None:
    """Preview letter renders the acknowledgement under the form (htmx or not); nothing sent."""
    reference = await api.lodge()
    form = {"handler_id": "hdl-1", "definition.summary": DEFINITION.summary,
            "definition.points": "\n".join(DEFINITION.points),
            "definition.outcomes_sought": "\n".join(DEFINITION.outcomes_sought)}
    url = f"/case/{reference}/actions/acknowledge/preview"
    async with browser_for(api) as client:
        await sign_in(client, "hdl-1")
        case = (await client.get(f"/case/{reference}")).text
        assert f'hx-post="{url}"' in case and 'hx-target="#preview-acknowledge"' in case
        fragment = await client.post(url, data={"csrf": csrf_of(case), **form},
                                     headers={"HX-Request": "true"})
        assert fragment.status_code == 200, fragment.text
        assert 'role="region"' in fragment.text and "Preview — not sent" in fragment.text
        assert "<iframe" in fragment.text and "sandbox" in fragment.text
        assert "Staff hdl-1, Handler is handling your complaint" in fragment.text
        assert "<h1" not in fragment.text  # a fragment, not a page
        assert re.search(r'srcdoc="&lt;!doctype html', fragment.text, re.I)  # escaped
        whole = await client.post(url, data={"csrf": csrf_of(case), **form})
        assert whole.status_code == 200 and f"<h1>{reference}</h1>" in whole.text
        assert "Preview — not sent" in whole.text
        refused = await client.post(f"/case/{reference}/actions/respond/preview",
                                    data={"csrf": csrf_of(case), "decision": "upheld",
                                          "findings.0.point": "p", "findings.0.finding": "f",
                                          "findings.0.reason": "r"},
                                    headers={"HX-Request": "true"})
        assert refused.status_code == 200 and "Cannot preview this" in refused.text
        assert "while the complaint is &#39;received&#39;" in refused.text
        claim = await client.post(f"/case/{reference}/actions/assign/preview",
                                  data={"csrf": csrf_of(case), "to": "hdl-1"},
                                  headers={"HX-Request": "true"})
        assert "This action sends no letter." in claim.text
        forged = await client.post(url, data={"csrf": "wrong", **form})
        assert forged.status_code == 403
    with api.context.session() as session:
        letters = session.exec(select(LetterRow).where(LetterRow.reference == reference)).all()
    assert letters == []
