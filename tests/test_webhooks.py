"""Signed webhooks for integrations: recorded once with their event, delivered at least once.

The recording tests run the real recording activity (in Temporal's ActivityEnvironment)
on events the case book queues with a hand-moved clock. The delivery tests POST to a real
HTTP server on loopback. The last test runs the real workflow on the test server.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import http.server
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select
from temporalio.testing import ActivityEnvironment

from activities import (
    CaseworkActivities,
    LetterActivities,
    NotificationActivities,
    PolicyActivities,
    RecordActivities,
)
from complaints.db import make_engine, session_factory, upgrade
from complaints.settings import Settings
from complaints.webhooks import (
    CASE_LODGED,
    DEADLINE_BREACHED,
    RESPONSE_ISSUED,
    WebhookDispatcher,
    WebhookSettingsError,
    backoff_seconds,
    dispatcher_from_settings,
    sign,
    verify_signature,
)
from domain.casebook import CaseBook
from domain.deadlines import london_time
from models.access import WebhookDeliveryRow
from models.actions import Acknowledge
from models.events import CaseEvent, OpenCaseInput
from models.messages import DeadlineKind
from tests.cases import DEFINITION, STAGE1_HANDLER, Clock, respond_to
from tests.conftest import Stack, make_intake
from tests.pg import create_database, postgres_url  # noqa: F401

SECRET = "whsec_" + "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0zMi1ieXRlcw=="
RECEIVED = dt.date(2026, 11, 23)
#: What make_intake puts in a case that is personal data: none may be in a payload.
PERSONAL = ("Jo Bloggs", "2 Test Row", "SY8 1AA", "jo@example.invalid", "roof has leaked")


# --- a receiver on loopback ------------------------------------------------------------


class Receiver:
    """A real HTTP server on 127.0.0.1 that keeps each POST and answers from a script."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        #: Status codes to answer with, in order; 204 once they run out.
        self.script: list[int] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                status = receiver.script.pop(0) if receiver.script else 204
                answer = b"stack trace with secrets" if status >= 300 else b""
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/complaints"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def events(self) -> list[dict[str, Any]]:
        """The bodies received, parsed."""
        return [json.loads(body) for _, body in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running receiver."""
    running = Receiver()
    running.thread.start()
    try:
        yield running
    finally:
        running.server.shutdown()
        running.server.server_close()


# --- recording ---------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request: pytest.FixtureRequest,
             tmp_path: Path) -> Iterator[Callable[[], Session]]:
    """A session factory on a migrated database: SQLite, and a real PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{(tmp_path / 'complaints.db').as_posix()}"
    else:
        request.getfixturevalue("postgres_url")
        url = create_database(f"webhooks_{uuid.uuid4().hex[:8]}")
    upgrade(url)
    engine = make_engine(url)
    yield session_factory(engine)
    engine.dispose()


def _casework(sessions: Callable[[], Session], tmp_path: Path,
              url: str | None = "http://127.0.0.1:9/hooks") -> CaseworkActivities:
    return CaseworkActivities(sessions, PolicyActivities(), RecordActivities(sessions),
                              LetterActivities(sessions, tmp_path / "outbox"),
                              NotificationActivities(sessions), integration_webhook_url=url)


def _opened(casework: CaseworkActivities) -> tuple[CaseBook, Clock]:
    """A new case opened on 23 November 2026 at 10:00 London, and its clock."""
    clock = Clock(london_time(RECEIVED, dt.time(10)))
    intake = make_intake(RECEIVED)
    book = CaseBook(intake, None, clock, casework=2)
    book.opened(casework.open_case(OpenCaseInput(intake=intake, first_year=2026,
                                                 last_year=2030)))
    return book, clock


def _record(env: ActivityEnvironment, casework: CaseworkActivities,
            events: list[CaseEvent]) -> None:
    for event in events:
        env.run(casework.record_case_event, event)


def _rows(sessions: Callable[[], Session]) -> list[WebhookDeliveryRow]:
    with sessions() as session:
        return list(session.exec(select(WebhookDeliveryRow)
                                 .order_by(WebhookDeliveryRow.event_id)).all())


def test_recording_the_same_events_twice_stores_each_webhook_once(
        sessions: Callable[[], Session], tmp_path: Path) -> None:
    """Lodging and a stage 1 response, each recorded twice, make one row each."""
    casework = _casework(sessions, tmp_path)
    book, clock = _opened(casework)
    book.accept(Acknowledge(by=STAGE1_HANDLER, handler_id=STAGE1_HANDLER,
                            definition=DEFINITION))
    clock.at += dt.timedelta(days=3)
    book.accept(respond_to(book.case, STAGE1_HANDLER))
    env = ActivityEnvironment()
    _record(env, casework, book.queue)
    _record(env, casework, book.queue)  # a retried activity, after the first had committed
    rows = _rows(sessions)
    reference = book.case.reference
    assert [(r.event_id, r.event_type, r.status, r.attempts) for r in rows] == [
        (f"{reference}:{CASE_LODGED}", CASE_LODGED, "pending", 0),
        (f"{reference}:{RESPONSE_ISSUED}:3", RESPONSE_ISSUED, "pending", 0)]
    lodged, responded = (json.loads(r.payload) for r in rows)
    assert lodged["data"] == {"reference": reference, "landlord": "Connexus",
                              "state": "received", "stage": 0, "received_on": "2026-11-23"}
    assert responded["type"] == RESPONSE_ISSUED and responded["id"] == rows[1].event_id
    assert responded["data"]["response"] == {"stage": 1, "decision": "partly_upheld"}
    assert responded["data"]["state"] == "stage1_responded"
    assert not [p for r in rows for p in PERSONAL if p in r.payload]


def test_a_breach_is_one_webhook_however_often_its_deadline_is_recorded(
        sessions: Callable[[], Session], tmp_path: Path) -> None:
    """Each breached deadline, recorded again when the lead is told, is one row."""
    casework = _casework(sessions, tmp_path)
    book, clock = _opened(casework)
    env = ActivityEnvironment()
    _record(env, casework, book.queue)
    book.queue.clear()
    deadline = next(d for d in book.deadlines
                    if d.kind is DeadlineKind.STAGE1_ACKNOWLEDGEMENT)
    clock.at = deadline.ends_at + dt.timedelta(minutes=1)
    book.timers_due()
    clock.at = deadline.escalate_at + dt.timedelta(minutes=1)
    book.timers_due()  # the lead is told: the same breached deadline is in this event too
    assert sum(1 for e in book.queue for d in e.deadlines if d.key == deadline.key) == 2
    _record(env, casework, book.queue)
    breaches = {r.event_id: r for r in _rows(sessions) if r.event_type == DEADLINE_BREACHED}
    # Early contact (3 working days) is due before the acknowledgement and breached too.
    assert sorted(breaches) == sorted(
        f"{book.case.reference}:{DEADLINE_BREACHED}:{d.key}" for d in book.deadlines
        if d.kind in (DeadlineKind.STAGE1_ACKNOWLEDGEMENT, DeadlineKind.EARLY_CONTACT))
    data = json.loads(breaches[
        f"{book.case.reference}:{DEADLINE_BREACHED}:{deadline.key}"].payload)["data"]
    assert data["deadline"]["kind"] == "stage1_acknowledgement"
    assert data["deadline"]["due"] == deadline.due.isoformat()
    assert data["deadline"]["label"] == deadline.label


def test_an_event_whose_transaction_fails_leaves_no_webhook_and_its_retry_one(
        sessions: Callable[[], Session], tmp_path: Path) -> None:
    """A failure after the webhook insert rolls it back with the event; the retry stores one."""
    casework = _casework(sessions, tmp_path)
    book, _ = _opened(casework)
    real = casework.records.apply_snapshot
    failures = iter([True])

    def failing_once(*args: Any, **kwargs: Any) -> Any:
        if next(failures, False):
            raise RuntimeError("worker killed mid-transaction")
        return real(*args, **kwargs)

    casework.records.apply_snapshot = failing_once  # type: ignore[method-assign]
    env = ActivityEnvironment()
    with pytest.raises(RuntimeError):
        _record(env, casework, book.queue)
    assert _rows(sessions) == []
    _record(env, casework, book.queue)
    assert [r.event_type for r in _rows(sessions)] == [CASE_LODGED]


def test_no_webhooks_are_stored_without_a_url(sessions: Callable[[], Session],
                                              tmp_path: Path) -> None:
    """Without INTEGRATION_WEBHOOK_URL the recording stores no webhook rows."""
    casework = _casework(sessions, tmp_path, url=None)
    book, _ = _opened(casework)
    _record(ActivityEnvironment(), casework, book.queue)
    assert _rows(sessions) == []


# --- signing -----------------------------------------------------------------------------


def test_signature_matches_the_standard_webhooks_example() -> None:
    """The signature of the Standard Webhooks example is the one its libraries give."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    headers = {"Webhook-Id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
               "Webhook-Timestamp": "1614265330",
               "Webhook-Signature": f"v1,bm9wZQ== {signature}"}  # a rotated key's first
    assert verify_signature(secret, headers, body, now=1614265330 + 60)
    assert not verify_signature(secret, headers, body, now=1614265330 + 3600)  # a replay
    assert not verify_signature(secret, headers, body + b" ", now=1614265330)
    assert not verify_signature("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUE=", headers, body,
                                now=1614265330)


def test_backoff_doubles_up_to_an_hour() -> None:
    """Waits double from 30 s and stop growing at one hour."""
    assert [backoff_seconds(n) for n in (1, 2, 3, 8, 12)] == [30, 60, 120, 3600, 3600]


def test_a_url_without_a_usable_secret_is_refused(tmp_path: Path) -> None:
    """The worker refuses a webhook URL with no secret, or with one too short to be safe."""
    plain = Settings(data_dir=tmp_path, _env_file=None)
    hooked = plain.model_copy(update={"integration_webhook_url": "http://127.0.0.1:9/hooks"})
    with pytest.raises(WebhookSettingsError, match="without INTEGRATION_WEBHOOK_SECRET"):
        dispatcher_from_settings(hooked)
    with pytest.raises(WebhookSettingsError, match="at least 16 bytes"):
        dispatcher_from_settings(hooked.model_copy(
            update={"integration_webhook_secret": "short"}))
    assert dispatcher_from_settings(plain) is None


# --- delivery ----------------------------------------------------------------------------


def _pending(sessions: Callable[[], Session], event_id: str, payload: dict[str, Any],
             created_at: dt.datetime | None = None) -> None:
    with sessions() as session:
        session.add(WebhookDeliveryRow(
            event_id=event_id, reference="CMP-2026-000001", event_type=CASE_LODGED,
            url="http://old.invalid/", payload=json.dumps(payload),
            created_at=created_at or dt.datetime.now(dt.UTC)))
        session.commit()


class MovingClock:
    """The dispatcher's clock, moved by hand past its backoff waits."""

    def __init__(self) -> None:
        self.at = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        """The time set."""
        return self.at


async def test_a_delivered_webhook_is_signed_and_verifiable(
        sessions: Callable[[], Session], receiver: Receiver) -> None:
    """The receiver gets both events oldest first, signed; a tampered body fails to verify."""
    early = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    _pending(sessions, "CMP-2026-000001:case.lodged:b", {"n": 2})
    _pending(sessions, "CMP-2026-000001:case.lodged:a", {"n": 1}, created_at=early)
    async with httpx.AsyncClient() as client:
        done = await WebhookDispatcher(sessions, receiver.url, SECRET, client).deliver_once()
    assert (done.delivered, done.retrying, done.failed) == (2, 0, 0)
    assert [e["n"] for e in receiver.events()] == [1, 2]
    headers, body = receiver.requests[0]
    assert headers["webhook-id"] == "CMP-2026-000001:case.lodged:a"
    assert headers["content-type"] == "application/json"
    assert verify_signature(SECRET, headers, body)
    assert not verify_signature(SECRET, headers, body.replace(b"1", b"9"))
    assert not verify_signature(SECRET, {**headers, "webhook-id": "other"}, body)
    rows = _rows(sessions)
    assert [(r.status, r.attempts, r.url) for r in rows] == [("delivered", 1, receiver.url)] * 2
    assert all(r.delivered_at is not None for r in rows)


async def test_a_failing_receiver_is_retried_with_backoff_then_delivered(
        sessions: Callable[[], Session], receiver: Receiver) -> None:
    """Two 500s wait 30 s then 60 s; the third attempt is delivered with the same id."""
    _pending(sessions, "CMP-2026-000001:case.lodged", {"n": 1})
    receiver.script = [500, 500]
    clock = MovingClock()
    async with httpx.AsyncClient() as client:
        dispatcher = WebhookDispatcher(sessions, receiver.url, SECRET, client, clock=clock)
        assert (await dispatcher.deliver_once()).retrying == 1
        row = _rows(sessions)[0]
        assert (row.status, row.attempts, row.last_error) == ("pending", 1, "HTTP 500")
        assert row.next_attempt_at == clock.at + dt.timedelta(seconds=30)
        assert (await dispatcher.deliver_once()).attempted == 0  # not due yet
        clock.at += dt.timedelta(seconds=30)
        assert (await dispatcher.deliver_once()).retrying == 1
        assert _rows(sessions)[0].next_attempt_at == clock.at + dt.timedelta(seconds=60)
        clock.at += dt.timedelta(seconds=60)
        assert (await dispatcher.deliver_once()).delivered == 1
    row = _rows(sessions)[0]
    assert (row.status, row.attempts, row.last_error) == ("delivered", 3, None)
    assert {h["webhook-id"] for h, _ in receiver.requests} == {"CMP-2026-000001:case.lodged"}
    assert len(receiver.requests) == 3


async def test_a_webhook_is_given_up_after_its_attempts(
        sessions: Callable[[], Session], receiver: Receiver) -> None:
    """After the last attempt the row is failed, with a one-line error and no body echo."""
    _pending(sessions, "CMP-2026-000001:case.lodged", {"n": 1})
    receiver.script = [503, 503]
    clock = MovingClock()
    async with httpx.AsyncClient() as client:
        dispatcher = WebhookDispatcher(sessions, receiver.url, SECRET, client, clock=clock,
                                       max_attempts=2)
        await dispatcher.deliver_once()
        clock.at += dt.timedelta(hours=1)
        assert (await dispatcher.deliver_once()).failed == 1
        clock.at += dt.timedelta(days=1)
        assert (await dispatcher.deliver_once()).attempted == 0
    row = _rows(sessions)[0]
    assert (row.status, row.attempts, row.last_error) == ("failed", 2, "HTTP 503")


async def test_an_unreachable_receiver_is_an_error_line_not_a_crash(
        sessions: Callable[[], Session]) -> None:
    """A refused connection counts as a failed attempt with the error's type."""
    _pending(sessions, "CMP-2026-000001:case.lodged", {"n": 1})
    with socket_closed_port() as url:
        async with httpx.AsyncClient() as client:
            done = await WebhookDispatcher(sessions, url, SECRET, client).deliver_once()
    assert done.retrying == 1
    error = _rows(sessions)[0].last_error or ""
    assert error.startswith("ConnectError") and "\n" not in error


def socket_closed_port() -> Any:
    """A context giving a loopback URL on which nothing listens."""
    import contextlib
    import socket

    @contextlib.contextmanager
    def closed() -> Iterator[str]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        yield f"http://127.0.0.1:{port}/hooks"

    return closed()


async def test_the_background_task_survives_errors_and_stops(
        sessions: Callable[[], Session], receiver: Receiver) -> None:
    """A database error in one pass is logged; later passes deliver; stop ends the task."""
    _pending(sessions, "CMP-2026-000001:case.lodged", {"n": 1})
    broken = iter([True])

    def flaky() -> Session:
        if next(broken, False):
            raise OSError("database unavailable")
        return sessions()

    async with httpx.AsyncClient() as client:
        dispatcher = WebhookDispatcher(flaky, receiver.url, SECRET, client, poll_seconds=0.05)
        dispatcher.start()
        for _ in range(100):
            if receiver.requests:
                break
            await asyncio.sleep(0.05)
        await dispatcher.stop()
        assert dispatcher._task is None
    assert _rows(sessions)[0].status == "delivered"


# --- end to end through the workflow -------------------------------------------------------


async def test_lodging_and_a_stage1_response_reach_the_receiver_signed(
        stack: Stack, receiver: Receiver, tmp_path: Path) -> None:
    """The real workflow's lodging and response arrive as signed events with no personal data."""
    from tests.test_workflow import do, started, view

    settings = stack.settings.model_copy(update={"integration_webhook_url": receiver.url,
                                                 "integration_webhook_secret": SECRET})
    from activities import build_activities

    hooked = Stack(stack.env, f"tq-{uuid.uuid4()}", settings, build_activities(settings))
    async with hooked.worker():
        handle = await hooked.lodge(make_intake())
        await started(handle)
        await do(handle, Acknowledge(by=STAGE1_HANDLER, handler_id=STAGE1_HANDLER,
                                     definition=DEFINITION))
        await do(handle, respond_to((await view(handle)).case, STAGE1_HANDLER))
    made = dispatcher_from_settings(settings)
    assert made is not None
    dispatcher, close = made
    try:
        done = await dispatcher.deliver_once()
    finally:
        await close()
    assert done.delivered == 2 and done.retrying == done.failed == 0
    assert [e["type"] for e in receiver.events()] == [CASE_LODGED, RESPONSE_ISSUED]
    assert {e["data"]["reference"] for e in receiver.events()} == {handle.id}
    assert receiver.events()[1]["data"]["response"]["decision"] == "partly_upheld"
    for headers, body in receiver.requests:
        assert verify_signature(SECRET, headers, body)
        assert not [p for p in PERSONAL if p.encode() in body]


# --- the command line ------------------------------------------------------------------------


def test_webhooks_list_shows_counts_and_the_last_failures(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``complaints webhooks list`` counts each status and names a failure with its error."""
    from click.testing import CliRunner

    from complaints.cli import cli

    url = f"sqlite:///{(tmp_path / 'complaints.db').as_posix()}"
    monkeypatch.setenv("COMPLAINTS_ENV_FILE", str(tmp_path / "absent.env"))
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", url)
    upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    _pending(sessions, "CMP-2026-000001:case.lodged", {"n": 1})
    _pending(sessions, "CMP-2026-000002:case.lodged", {"n": 2})
    with sessions() as session:
        row = session.get(WebhookDeliveryRow, "CMP-2026-000002:case.lodged")
        assert row is not None
        row.status, row.attempts, row.last_error = "failed", 12, "HTTP 410"
        session.add(row)
        session.commit()
    engine.dispose()
    result = CliRunner().invoke(cli, ["webhooks", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "pending 1  delivered 0  failed 1"
    assert lines[1:] == ["failed   CMP-2026-000002:case.lodged  attempts 12: HTTP 410"]
    data = json.loads(CliRunner().invoke(cli, ["webhooks", "list", "--json"]).output)
    assert data["counts"] == {"pending": 1, "delivered": 0, "failed": 1}
    assert [f["event_id"] for f in data["failures"]] == ["CMP-2026-000002:case.lodged"]


async def test_the_worker_runs_the_dispatcher_beside_it_and_stops_it(
        stack: Stack, receiver: Receiver) -> None:
    """``run_worker`` sends a new case's ``case.lodged`` by itself and stops cleanly."""
    from complaints.staff import lodge_intake
    from worker import run_worker

    settings = stack.settings.model_copy(update={
        "integration_webhook_url": receiver.url, "integration_webhook_secret": SECRET,
        "temporal_address": stack.env.client.service_client.config.target_host,
        "temporal_task_queue": f"tq-{uuid.uuid4()}"})
    stop = asyncio.Event()
    running = asyncio.create_task(run_worker(settings, stop))
    try:
        # Lodged once the worker polls: before its start check, a running case on an empty
        # database would read as a lost database.
        await _polled(stack, settings.temporal_task_queue, running)
        handle = await lodge_intake(stack.env.client, make_intake(),
                                    settings.temporal_task_queue)
        for _ in range(300):
            if receiver.requests or running.done():
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=60)
    assert [(e["type"], e["data"]["reference"]) for e in receiver.events()] == [
        (CASE_LODGED, handle.id)]
    assert verify_signature(SECRET, *receiver.requests[0])


async def _polled(stack: Stack, task_queue: str, running: asyncio.Task[None]) -> None:
    """Wait until a worker polls ``task_queue`` (or ``running`` ended)."""
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    for _ in range(300):
        if running.done():
            return
        found = await stack.env.client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(namespace=stack.env.client.namespace,
                                     task_queue=TaskQueue(name=task_queue)))
        if found.pollers:
            return
        await asyncio.sleep(0.1)
