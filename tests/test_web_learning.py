"""The web app's learning pages: a case's Learning panel, service changes, satisfaction, import.

Imported complaints (:mod:`complaints.imports`) carry the responses that learning is
recorded against, and have no workflow: the case page, the lists and the API's case
detail must show them without asking Temporal for one.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
from sqlmodel import select

from complaints.import_csv import COLUMNS, OPTIONAL
from complaints.learning import show_learning
from models.imports import ImportRunRow
from tests.api_support import Api, running_api
from tests.conftest import Stack
from tests.test_web import browser_for, csrf_of, sign_in


def csv_of(rows: list[dict[str, str]]) -> bytes:
    """Connexus's rows as an import file, every column, empty cells where not given."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*COLUMNS, *OPTIONAL], lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({"landlord": "Connexus", **row})
    return buffer.getvalue().encode()


#: Closed after a stage 1 response on 20 June 2025.
ANSWERED = {"reference": "OLD-1", "tenure": "lcra", "received_on": "2025-06-03",
            "stage1_acknowledged_on": "2025-06-10", "stage1_responded_on": "2025-06-20",
            "stage1_decision": "upheld"}
#: Acknowledged, not answered yet: no response to learn from.
OPEN = {"reference": "OLD-2", "tenure": "lcho", "received_on": "2025-11-03",
        "stage1_acknowledged_on": "2025-11-04"}
GOOD = csv_of([ANSWERED, OPEN])
#: Line 2: an unknown tenure; line 3: a response with no decision.
BAD = csv_of([{**ANSWERED, "tenure": "x"},
              {**OPEN, "stage1_responded_on": "2025-11-20"}])


@pytest_asyncio.fixture
async def api(stack: Stack) -> AsyncIterator[Api]:
    """The app on this test's stack with dev sign-in on, staff seeded, a worker running."""
    async with running_api(stack, dev_sign_in=True) as running:
        yield running


async def upload(client: httpx.AsyncClient, data: bytes, *, dry_run: bool) -> httpx.Response:
    """Send ``data`` through the Import page's form (signed in already)."""
    form = await client.get("/import")
    assert form.status_code == 200, form.text
    fields = {"csrf": csrf_of(form.text), **({"dry_run": "true"} if dry_run else {})}
    return await client.post("/import", data=fields,
                             files={"file": ("year.csv", data, "text/csv")})


async def imported(api: Api) -> None:
    """Import :data:`GOOD` as the administrator, through the page."""
    async with browser_for(api) as client:
        await sign_in(client, "adm-1")
        done = await upload(client, GOOD, dry_run=False)
        assert done.status_code == 200 and "2 imported" in done.text, done.text


async def test_the_import_page_checks_lists_problems_and_imports(api: Api) -> None:
    """A dry run writes nothing; a bad file lists line and field; a good one is imported."""
    async with browser_for(api) as client:
        await sign_in(client, "hdl-1")
        assert (await client.get("/import")).status_code == 403
    async with browser_for(api) as client:
        await sign_in(client, "adm-1")
        assert '<a href="/import" aria-current="page">Import</a>' in (
            await client.get("/import")).text
        checked = await upload(client, GOOD, dry_run=True)
        assert checked.status_code == 200
        assert "dry run: 2 rows would import 2" in checked.text
        bad = await upload(client, BAD, dry_run=False)
        assert bad.status_code == 422
        rows = re.findall(r"<tr><td>(\d+)</td><td>([a-z0-9_]+)</td>", bad.text)
        assert rows == [("2", "tenure"), ("3", "stage1_decision")]
        assert "line 2, field tenure: must be one of lcra, lcho, other" in bad.text
        with api.context.session() as session:
            assert session.exec(select(ImportRunRow)).all() == []
        done = await upload(client, GOOD, dry_run=False)
        assert done.status_code == 200 and "2 rows: 2 imported, 0 replaced" in done.text
    with api.context.session() as session:
        runs = session.exec(select(ImportRunRow)).all()
    assert [(r.by, r.via, r.imported) for r in runs] == [("adm-1", "web", 2)]


async def test_an_imported_case_shows_without_a_workflow(api: Api) -> None:
    """The case page says it was imported and offers no actions; lists and API cope."""
    await imported(api)
    today = api.context.today().strftime("%-d %B %Y")
    async with browser_for(api) as client:
        await sign_in(client, "mgr-1")
        case = await client.get("/case/OLD-2")
        assert case.status_code == 200, case.text
        assert ("Imported from the landlord's previous system on "
                f"{today}; no workflow runs it") in case.text
        assert 'action="/case/OLD-2/' not in case.text and "Live state unavailable" not in case.text
        assert "this case has none yet" in case.text  # no response: no learning form
        found = await client.get("/cases/search", params={"reference": "old-2"})
        assert found.status_code == 200 and 'href="/case/OLD-2"' in found.text
        for inbox in ("mine", "team", "unassigned"):
            assert (await client.get(f"/cases/{inbox}")).status_code == 200
        refused = await client.post("/case/OLD-2/close", data={"csrf": csrf_of(case.text)})
        assert refused.status_code == 409 and "no workflow runs it" in refused.text
    detail = await api.http.get("/api/v1/complaints/OLD-1", headers=api.auth("mgr-1"))
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert (body["actions"], body["live"], body["live_error"]) == ([], None, None)
    assert body["records"]["imported_on"] == api.context.today().isoformat()


async def test_learning_is_recorded_from_the_case_page(api: Api) -> None:
    """A manager ticks themes and root causes; the panel shows them; a stray theme is refused."""
    await imported(api)
    async with browser_for(api) as client:
        await sign_in(client, "mgr-1")
        case = (await client.get("/case/OLD-1")).text
        assert "Stage 1 response" in case and "None recorded." in case
        assert 'action="/case/OLD-1/learning/1"' in case
        assert re.search(r"<legend>Themes</legend>", case)
        assert 'id="l1-theme-repairs_delays"' in case and 'for="l1-theme-repairs_delays"' in case
        done = await client.post("/case/OLD-1/learning/1", data={
            "csrf": csrf_of(case), "themes": ["repairs_delays", "communication"],
            "root_causes": ["contractor_performance"],
            "lessons": "Book the contractor before promising a date"})
        assert done.status_code == 303 and done.headers["location"] == "/case/OLD-1#learning-1"
        shown = (await client.get("/case/OLD-1")).text
        assert "Learning recorded for the stage 1 response." in shown
        assert "communication, repairs delays" in shown
        assert "contractor performance" in shown
        assert "Book the contractor before promising a date" in shown
        assert re.search(r'id="l1-theme-communication" name="themes" value="communication" '
                         r"checked", shown)  # the form starts from what is recorded
        stray = await client.post("/case/OLD-1/learning/1", data={
            "csrf": csrf_of(shown), "themes": ["leaky_roof"],
            "root_causes": ["resourcing"]})
        assert stray.status_code == 422
        assert re.search(r'class="error-summary" role="alert"[^>]*><h4>Not recorded</h4><p>'
                         r"theme &#39;leaky_roof&#39; is not in the landlord&#39;s vocabulary "
                         r"\(policy connexus, \[learning\]\): use one of repairs_delays",
                         stray.text)
        empty = await client.post("/case/OLD-1/learning/1", data={"csrf": csrf_of(shown),
                                                                  "themes": ["other"]})
        assert empty.status_code == 422 and "tick at least one theme" in empty.text
    with api.context.session() as session:
        recorded = show_learning(session, "OLD-1")
    assert [(v.themes, v.root_causes, v.recorded_by) for v in recorded] == [
        (["communication", "repairs_delays"], ["contractor_performance"], "mgr-1")]


async def test_without_the_permission_there_is_no_form_and_a_post_is_refused(api: Api) -> None:
    """A handler (not their team's case) and a viewer see no form; their POSTs get 403."""
    await imported(api)
    for staff_id in ("hdl-1", "view-1"):
        async with browser_for(api) as client:
            await sign_in(client, staff_id)
            case = (await client.get("/case/OLD-1")).text
            assert "Stage 1 response" in case and "None recorded." in case
            assert 'action="/case/OLD-1/learning/1"' not in case
            assert "You cannot record learning on this case" in case
            refused = await client.post("/case/OLD-1/learning/1", data={
                "csrf": csrf_of(case), "themes": ["other"], "root_causes": ["resourcing"]})
            assert refused.status_code == 403
            assert "record what a response taught" in refused.text
    with api.context.session() as session:
        assert show_learning(session, "OLD-1") == []


async def test_service_changes_are_added_flagged_overdue_and_done(api: Api) -> None:
    """A manager adds a change due yesterday (overdue), marks it done; a viewer only reads."""
    await imported(api)
    today = api.context.today()
    yesterday = today - dt.timedelta(days=1)
    async with browser_for(api) as client:
        page = await sign_in(client, "mgr-1")
        assert 'href="/service-changes"' in page
        form = (await client.get("/service-changes")).text
        assert "No open service changes." in form and '<label for="c-owner">Owner</label>' in form
        missing = await client.post("/service-changes", data={
            "csrf": csrf_of(form), "description": "Dates confirmed on the call",
            "owner": "mgr-1"})
        assert missing.status_code == 422 and "give the date the change is due" in missing.text
        added = await client.post("/service-changes", data={
            "csrf": csrf_of(form), "description": "Contractor dates confirmed on the call",
            "owner": "lead-1", "due_on": yesterday.isoformat(), "reference": "OLD-1",
            "theme": "repairs_delays"})
        assert added.status_code == 303, added.text
        listed = (await client.get("/service-changes")).text
        assert "Service change 1 recorded" in listed
        assert re.search(r"Contractor dates confirmed on the call</td><td>repairs delays</td>"
                         r'.*?<td>lead-1</td>.*?<strong class="tag tag-red">Overdue</strong>',
                         listed, re.S)
        future = await client.post("/service-changes/1/done", data={
            "csrf": csrf_of(listed), "done_on": (today + dt.timedelta(days=1)).isoformat()})
        assert future.status_code == 422 and "is after today" in future.text
        done = await client.post("/service-changes/1/done", data={
            "csrf": csrf_of(listed), "done_on": today.isoformat()})
        assert done.status_code == 303
        after = (await client.get("/service-changes")).text
        assert "No open service changes." in after
        assert f'Done</strong> {today.strftime("%-d %b %Y")} (mgr-1)' in after
    async with browser_for(api) as client:
        page = await sign_in(client, "view-1")
        assert 'href="/service-changes"' not in page  # no nav link: reached from Reports
        assert 'href="/service-changes"' in (await client.get("/reports")).text
        read = (await client.get("/service-changes")).text
        assert "Contractor dates confirmed on the call" in read
        assert 'action="/service-changes"' not in read and "/done" not in read
        refused = await client.post("/service-changes", data={
            "csrf": csrf_of(read), "description": "x", "owner": "mgr-1",
            "due_on": today.isoformat()})
        assert refused.status_code == 403


async def test_satisfaction_is_recorded_on_the_service_changes_page(api: Api) -> None:
    """An administrator records a period's survey; more satisfied than surveyed is refused."""
    await imported(api)
    async with browser_for(api) as client:
        await sign_in(client, "adm-1")
        form = (await client.get("/service-changes")).text
        assert '<a href="/service-changes" aria-current="page">' in form
        assert 'action="/satisfaction"' in form and 'action="/service-changes"' not in form
        survey = {"csrf": csrf_of(form), "period_start": "2026-04-01",
                  "period_end": "2026-06-30", "surveyed": "40",
                  "source": "Quarterly transactional survey"}
        too_many = await client.post("/satisfaction", data={**survey, "satisfied": "41"})
        assert too_many.status_code == 422
        assert "satisfied can be at most the number surveyed" in too_many.text
        done = await client.post("/satisfaction", data={**survey, "satisfied": "30"})
        assert done.status_code == 303
        listed = (await client.get("/service-changes")).text
        assert "Satisfaction recorded for Connexus" in listed
        assert re.search(r"<td>40</td>\s*<td>30</td>\s*<td>75\.0%</td>", listed)
    async with browser_for(api) as client:
        await sign_in(client, "hdl-1")
        read = await client.get("/service-changes")
        assert read.status_code == 200 and 'action="/satisfaction"' not in read.text
        refused = await client.post("/satisfaction", data={**survey, "csrf": csrf_of(read.text),
                                                           "satisfied": "30"})
        assert refused.status_code == 403
