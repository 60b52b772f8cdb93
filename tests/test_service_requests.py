"""Service requests (Code 1.4-1.6): the CLI, the monitoring figures, the API and the pages."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlmodel import Session, select

from complaints import service_requests as sr
from complaints.casefiles import london_today
from complaints.cli import cli
from complaints.db import make_engine, session_factory, upgrade
from complaints.directory import add_staff
from models.access import CaseViewRow
from models.service_requests import ComplaintServiceRequestRow, ServiceRequestRow
from models.tables import ComplaintRow
from tests.api_support import Api, running_api
from tests.conftest import Stack
from tests.test_web import browser_for, csrf_of, sign_in

#: Today in London, as the commands take it; refreshed before each test (a run that
#: crosses midnight must not compare with yesterday).
TODAY = london_today()
#: A request's fields as the API takes them (fictional people).
BODY = {"channel": "phone", "category": "repairs",
        "target_date": (TODAY + dt.timedelta(days=10)).isoformat(),
        "resident": {"name": "Jo Bloggs", "address": ["2 Test Row", "Ludlow"],
                     "email": "jo@example.invalid"},
        "description": "The kitchen tap drips."}


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated database of the test's own, named by the environment the CLI reads."""
    data = tmp_path / "data"
    database = f"sqlite:///{(data / 'complaints.db').as_posix()}"
    monkeypatch.setenv("COMPLAINTS_ENV_FILE", str(tmp_path / "absent.env"))
    monkeypatch.setenv("DATA_DIR", str(data))
    monkeypatch.setenv("DATABASE_URL", database)
    monkeypatch.delenv("API_URL", raising=False)
    upgrade(database)
    return database


@pytest.fixture
def session(url: str) -> Iterator[Session]:
    """A session on the test's database."""
    engine = make_engine(url)
    with session_factory(engine)() as opened:
        yield opened
    engine.dispose()


def run(*args: str) -> Result:
    """Run ``complaints service-requests ARGS`` in-process."""
    return CliRunner().invoke(cli, ["service-requests", *args])


@pytest.fixture(autouse=True)
def _today() -> None:
    """Take today afresh for each test."""
    global TODAY
    TODAY = london_today()


def log_args(*extra: str, target: dt.date | None = None) -> list[str]:
    """The options of ``log`` for a phone request about repairs, plus ``extra``."""
    target = target or TODAY + dt.timedelta(days=5)
    return ["log", "--channel", "phone", "--category", "repairs", "--target",
            target.isoformat(), "--resident", "Jo Bloggs", "--address", "2 Test Row",
            "--description", "The kitchen tap drips.", "--by", "hdl-1", *extra]


# --- the command line ----------------------------------------------------------------


def test_log_list_show_and_resolve_through_the_cli(url: str) -> None:
    """Logged requests are numbered SR-YYYY-NNNNNN, listed overdue first, then resolved."""
    first = run(*log_args())
    late = run(*log_args("--received", (TODAY - dt.timedelta(days=9)).isoformat(),
                         target=TODAY - dt.timedelta(days=2)))
    assert first.exit_code == 0 and late.exit_code == 0, first.output + late.output
    year = TODAY.year
    assert first.output.strip() == f"SR-{year}-000001"
    late_id = late.output.strip()
    assert re.fullmatch(r"SR-\d{4}-00000[12]", late_id) and late_id != first.output.strip()
    listed = run("list", "--json")
    rows = json.loads(listed.output)
    assert [r["id"] for r in rows][0] == late_id and rows[0]["overdue"] is True
    assert "Jo Bloggs" not in listed.output and "tap" not in listed.output
    shown = run("show", late_id)
    assert "resident name: Jo Bloggs" in shown.output
    resolved = run("resolve", late_id, "--by", "hdl-1", "--resolution", "New washer fitted")
    assert resolved.exit_code == 0, resolved.output
    still_open = json.loads(run("list", "--open", "--json").output)
    assert [r["id"] for r in still_open] == [f"SR-{year}-000001"]
    again = run("resolve", late_id, "--by", "hdl-1", "--resolution", "again")
    assert again.exit_code == 1 and "was resolved on" in again.output


def test_the_same_channel_id_is_one_request_and_another_is_refused(url: str) -> None:
    """Logging a channel id twice gives the same request; with other content it is refused."""
    once = run(*log_args("--channel-reference", "call-7"))
    twice = run(*log_args("--channel-reference", "call-7"))
    other = run("log", "--channel", "phone", "--channel-reference", "call-7", "--target",
                TODAY.isoformat(), "--resident", "Al Other", "--description", "Lights out",
                "--by", "hdl-1")
    assert once.output == twice.output and once.exit_code == 0
    assert other.exit_code == 1
    assert f"already logged as {once.output.strip()}" in other.output
    assert "Al Other" not in other.output


def test_by_is_checked_against_the_staff_directory(url: str, session: Session) -> None:
    """Once the directory has anyone, an unknown --by is refused in one line."""
    add_staff(session, "hdl-1", display_name="H One", job_title="Handler", team="North",
              email="hdl-1@landlord.example", roles=("handler",))
    refused = run(*log_args()[:-2], "--by", "nobody-9")
    accepted = run(*log_args())
    assert refused.exit_code == 1 and "not in the staff directory" in refused.output
    assert accepted.exit_code == 0


def test_told_how_to_complain_is_recorded(url: str, session: Session) -> None:
    """Code 1.6: the day the resident was told how to complain is kept on the request."""
    request_id = run(*log_args()).output.strip()
    done = run("told-how-to-complain", request_id, "--by", "hdl-1")
    row = session.get(ServiceRequestRow, request_id)
    assert done.exit_code == 0, done.output
    assert row is not None and row.told_how_to_complain_on == TODAY


# --- the monitoring figures ----------------------------------------------------------


def _row(seq: int, category: str, received: dt.date, target: dt.date,
         resolved: dt.date | None = None, converted: dt.date | None = None,
         told: dt.date | None = None) -> ServiceRequestRow:
    return ServiceRequestRow(
        id=sr.format_id(received.year, seq), year=received.year, seq=seq, channel="phone",
        category=category, received_on=received, target_date=target,
        resident_name="Jo Bloggs", description="x", logged_by="hdl-1", resolved_on=resolved,
        resolved_by="hdl-1" if resolved else None,
        complaint_reference=f"CMP-2026-{seq:06d}" if converted else None,
        converted_on=converted, told_how_to_complain_on=told)


def test_report_figures_on_a_hand_made_set(url: str, session: Session) -> None:
    """Volumes, overdue, conversion rate and themes for April 2026, worked by hand.

    In April: 1 (repairs, resolved on time), 2 (repairs, resolved late in May, so open and
    overdue at the end of April), 3 (damp, open, target in May: open, not overdue), 4
    (repairs, converted in April). 5 came in March and was resolved in April (resolved,
    not logged); 6 came in May (outside). Logged 4, resolved 2 (1 within target), open 3,
    overdue 1, converted 1 of 4 logged = 0.25, themes repairs 3, damp 1.
    """
    d = dt.date
    session.add_all([
        _row(1, "repairs", d(2026, 4, 2), d(2026, 4, 10), resolved=d(2026, 4, 9)),
        _row(2, "repairs", d(2026, 4, 3), d(2026, 4, 20), resolved=d(2026, 5, 2)),
        _row(3, "damp", d(2026, 4, 28), d(2026, 5, 8), told=d(2026, 4, 29)),
        _row(4, "repairs", d(2026, 4, 30), d(2026, 5, 10), converted=d(2026, 4, 30)),
        _row(5, "repairs", d(2026, 3, 20), d(2026, 3, 30), resolved=d(2026, 4, 1)),
        _row(6, "damp", d(2026, 5, 1), d(2026, 5, 9)),
    ])
    session.commit()
    engine = make_engine(url)
    with engine.connect() as connection:
        figures = sr.report(connection, d(2026, 4, 1), d(2026, 4, 30))
    engine.dispose()
    assert (figures.logged, figures.resolved, figures.resolved_within_target) == (4, 2, 1)
    assert (figures.open, figures.overdue, figures.converted) == (3, 1, 1)
    assert figures.conversion_rate == 0.25 and figures.told_how_to_complain == 1
    assert [(t.category, t.count) for t in figures.themes] == [("repairs", 3), ("damp", 1)]
    printed = run("report", "--from", "2026-04-01", "--to", "2026-04-30", "--json")
    assert json.loads(printed.output) == figures.model_dump(mode="json")
    # The annual report carries the same figures in its own section.
    from complaints.policies import load_policy
    from complaints.reports.figures import build_report
    from complaints.reports.period import Period
    from complaints.reports.queries import ReportOptions
    from complaints.reports.render import render

    annual = build_report(make_engine(url), ReportOptions(
        Period(d(2026, 4, 1), d(2026, 4, 30), "April 2026"), load_policy("connexus")))
    assert annual.service_requests == figures
    text = render(annual, "md")
    assert "## Service requests (Code 1.4, 1.5)" in text
    assert "Converted to a complaint because the resident was dissatisfied: 1 (25.0% of" in text
    empty = sr.report(make_engine(url), d(2025, 1, 1), d(2025, 1, 31))
    assert empty.logged == 0 and empty.conversion_rate is None and empty.themes == []


# --- the API ---------------------------------------------------------------------------


async def _log(api: Api, key: str, as_who: str = "hdl-1", **overrides: object) -> str:
    response = await api.http.post("/api/v1/service-requests", json={**BODY, **overrides},
                                   headers={**api.auth(as_who), "Idempotency-Key": key})
    assert response.status_code == 201, response.text
    request_id: str = response.json()["id"]
    return request_id


async def test_api_logs_once_per_key_and_lists_without_personal_data(stack: Stack) -> None:
    """The same key and body give the same request; another body is refused; no key, 428."""
    async with running_api(stack) as api:
        request_id = await _log(api, "k-1")
        headers = {**api.auth("hdl-1"), "Idempotency-Key": "k-1"}
        again = await api.http.post("/api/v1/service-requests", json=BODY, headers=headers)
        other = await api.http.post("/api/v1/service-requests",
                                    json={**BODY, "description": "Another thing"},
                                    headers=headers)
        keyless = await api.http.post("/api/v1/service-requests", json=BODY,
                                      headers=api.auth("hdl-1"))
        listed = await api.http.get("/api/v1/service-requests?open=true",
                                    headers=api.auth("view-1"))
    assert again.status_code == 200 and again.json()["id"] == request_id
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["detail"]
    assert keyless.status_code == 428
    assert listed.status_code == 200 and listed.json()["total"] == 1
    assert listed.json()["items"][0]["id"] == request_id
    assert "Jo Bloggs" not in listed.text and "tap" not in listed.text


async def test_api_convert_lodges_a_complaint_linked_both_ways(stack: Stack) -> None:
    """Converting lodges a real case with the resident; both sides link; the request stays open."""
    async with running_api(stack) as api:
        request_id = await _log(api, "k-2")
        converted = await api.http.post(f"/api/v1/service-requests/{request_id}/convert",
                                        json={"policy_name": "connexus",
                                              "outcomes_sought": ["Fix the tap"]},
                                        headers=api.auth("hdl-1"))
        assert converted.status_code == 201, converted.text
        reference = converted.json()["reference"]
        case = await api.http.get(f"/api/v1/complaints/{reference}", headers=api.auth("hdl-1"))
        shown = await api.http.get(f"/api/v1/service-requests/{request_id}",
                                   headers=api.auth("hdl-1"))
        again = await api.http.post(f"/api/v1/service-requests/{request_id}/convert",
                                    json={}, headers=api.auth("hdl-1"))
        resolved = await api.http.post(f"/api/v1/service-requests/{request_id}/resolve",
                                       json={"resolution": "Tap replaced"},
                                       headers=api.auth("hdl-1"))
    assert case.status_code == 200, case.text
    parties = case.json()["records"]["parties"]
    assert any(p["name"] == "Jo Bloggs" for p in parties)
    assert shown.json()["complaint_reference"] == reference
    assert shown.json()["status"] == "open"
    assert again.status_code == 200 and again.json()["reference"] == reference
    assert resolved.status_code == 200 and resolved.json()["complaint_reference"] == reference
    with api.context.session() as session:
        link = session.get(ComplaintServiceRequestRow, reference)
        complaint = session.get(ComplaintRow, reference)
    assert link is not None and link.service_request_id == request_id
    assert complaint is not None and complaint.channel_reference == request_id
    assert complaint.category == "repairs"


async def test_api_permissions_and_viewing_is_recorded(stack: Stack) -> None:
    """A viewer may read but not log or convert; integrations log but do not convert."""
    async with running_api(stack) as api:
        request_id = await _log(api, "k-3", as_who="int-1")
        viewer_logs = await api.http.post(
            "/api/v1/service-requests", json=BODY,
            headers={**api.auth("view-1"), "Idempotency-Key": "k-4"})
        viewer_converts = await api.http.post(
            f"/api/v1/service-requests/{request_id}/convert", json={},
            headers=api.auth("view-1"))
        integration_converts = await api.http.post(
            f"/api/v1/service-requests/{request_id}/convert", json={},
            headers=api.auth("int-1"))
        viewer_resolves = await api.http.post(
            f"/api/v1/service-requests/{request_id}/resolve", json={"resolution": "x"},
            headers=api.auth("view-1"))
        read = await api.http.get(f"/api/v1/service-requests/{request_id}",
                                  headers=api.auth("view-1"))
        missing = await api.http.get("/api/v1/service-requests/SR-2026-999999",
                                     headers=api.auth("view-1"))
    assert viewer_logs.status_code == 403 and "log and resolve service requests" in \
        viewer_logs.json()["detail"]
    assert viewer_converts.status_code == 403 and integration_converts.status_code == 403
    assert viewer_resolves.status_code == 403
    assert read.status_code == 200 and read.json()["resident_name"] == "Jo Bloggs"
    assert missing.status_code == 404
    with api.context.session() as session:
        views = session.exec(select(CaseViewRow).where(
            CaseViewRow.reference == request_id)).all()
    assert [(v.staff_id, v.what, v.via) for v in views] == [("view-1", "service_request",
                                                             "api")]


async def test_cli_convert_lodges_through_temporal(stack: Stack, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """`service-requests convert` prints the new complaint's reference and links it."""
    database = stack.settings.effective_database_url()
    monkeypatch.setenv("COMPLAINTS_ENV_FILE", str(tmp_path / "absent.env"))
    monkeypatch.setenv("DATA_DIR", str(stack.settings.data_dir))
    monkeypatch.setenv("DATABASE_URL", database)
    monkeypatch.setenv("TEMPORAL_ADDRESS",
                       stack.env.client.service_client.config.target_host)
    monkeypatch.setenv("TEMPORAL_TASK_QUEUE", stack.task_queue)
    monkeypatch.delenv("API_URL", raising=False)
    upgrade(database)
    logged = await asyncio.to_thread(run, *log_args())
    request_id = logged.output.strip()
    async with stack.worker():
        # The session's Temporal server is shared and every test's database numbers from
        # SR-YYYY-000001, the complaint's channel reference: a channel of this test's own.
        converted = await asyncio.to_thread(run, "convert", request_id, "--by", "hdl-1",
                                            "--policy", "connexus", "--channel", "letter")
    assert converted.exit_code == 0, converted.output
    reference = converted.stdout.strip().splitlines()[-1]  # after any log line
    assert reference.startswith(f"CMP-{TODAY.year}-")
    with stack.session() as session:
        row = session.get(ServiceRequestRow, request_id)
        link = session.get(ComplaintServiceRequestRow, reference)
    assert row is not None and row.complaint_reference == reference
    assert row.resolved_on is None and link is not None


# --- the web pages ---------------------------------------------------------------------


async def test_web_lodge_page_offers_a_service_request_and_logs_one(stack: Stack) -> None:
    """The Lodge page links the service request form; sending it twice logs one request."""
    async with running_api(stack, dev_sign_in=True) as api, browser_for(api) as client:
        await sign_in(client, "hdl-1")
        lodge = await client.get("/lodge")
        form = await client.get("/lodge/service-request")
        key = re.search(r'name="form_key" value="(\w+)"', form.text)
        assert key is not None
        fields = {"csrf": csrf_of(form.text), "form_key": key[1],
                  "channel": "phone", "received_on": TODAY.isoformat(),
                  "category": "repairs", "target_date": TODAY.isoformat(),
                  "name": "Jo Bloggs", "address": "2 Test Row\nLudlow",
                  "description": "The kitchen tap drips."}
        bad = await client.post("/lodge/service-request", data={**fields, "target_date": ""})
        logged = await client.post("/lodge/service-request", data=fields)
        twice = await client.post("/lodge/service-request", data=fields)
        shown = await client.get(logged.headers["location"])
    assert 'href="/lodge/service-request"' in lodge.text
    assert "<h1>Log a service request</h1>" in form.text and 'for="s-target"' in form.text
    assert bad.status_code == 422 and "target_date" in bad.text
    assert logged.status_code == 303 and twice.headers["location"] == logged.headers["location"]
    request_id = logged.headers["location"].rsplit("/", 1)[-1]
    assert f"<h1>Service request {request_id}</h1>" in shown.text and "Jo Bloggs" in shown.text
    with api.context.session() as session:
        views = session.exec(select(CaseViewRow.via).where(
            CaseViewRow.reference == request_id, CaseViewRow.what == "service_request")).all()
        count = len(session.exec(select(ServiceRequestRow)).all())
    assert views == ["web"] and count == 1


async def test_web_lists_open_requests_and_converts_one(stack: Stack) -> None:
    """The list shows the overdue request first; Convert lodges a case and keeps it open."""
    async with running_api(stack, dev_sign_in=True) as api, browser_for(api) as client:
        # A channel of this test's own: see test_cli_convert_lodges_through_temporal.
        due = await _log(api, "w-1", channel="email")
        late = await _log(api, "w-2", channel="email",
                          received_on=(TODAY - dt.timedelta(days=5)).isoformat(),
                          target_date=(TODAY - dt.timedelta(days=1)).isoformat())
        await sign_in(client, "hdl-1")
        listed = await client.get("/service-requests")
        converted = await client.post(f"/service-requests/{due}/convert", data={
            "csrf": csrf_of(listed.text), "policy": "connexus"})
        case = await client.get(converted.headers["location"])
        after = await client.get("/service-requests")
        forged = await client.post(f"/service-requests/{late}/resolve",
                                   data={"csrf": "wrong", "resolution": "x"})
    assert listed.text.index(late) < listed.text.index(due)
    assert f'action="/service-requests/{due}/convert"' in listed.text
    assert converted.status_code == 303, converted.text
    reference = converted.headers["location"].rsplit("/", 1)[-1]
    assert reference.startswith("CMP-") and case.status_code == 200
    assert f'<a href="/case/{reference}">{reference}</a>' in after.text  # still listed, open
    assert forged.status_code == 403


# --- retention -------------------------------------------------------------------------


def test_erasing_a_complaint_erases_its_resolved_service_requests(session: Session) -> None:
    """The resolved request a complaint came from is erased with it; an open one is kept."""
    from activities.retention import ERASED, anonymise_case

    d = dt.date
    done = _row(1, "repairs", d(2019, 4, 2), d(2019, 4, 10), resolved=d(2019, 4, 9),
                converted=d(2019, 4, 5))
    done.resident_email, done.resolution = "jo@example.invalid", "Tap fixed for Jo"
    ongoing = _row(2, "repairs", d(2019, 4, 3), d(2019, 4, 10), converted=d(2019, 4, 5))
    ongoing.complaint_reference = done.complaint_reference
    session.add_all([done, ongoing])
    session.commit()
    assert done.complaint_reference is not None
    counts = anonymise_case(session, done.complaint_reference, d(2026, 1, 1), "retention")
    session.commit()
    erased = session.get(ServiceRequestRow, done.id)
    kept = session.get(ServiceRequestRow, ongoing.id)
    assert erased is not None and kept is not None
    assert (erased.resident_name, erased.description, erased.resolution) == (ERASED,) * 3
    assert erased.resident_email is None and erased.erased_at is not None
    assert erased.category == "repairs" and erased.resolved_on == d(2019, 4, 9)
    assert counts["fields"] >= 4
    assert kept.resident_name == "Jo Bloggs" and kept.erased_at is None
