"""Real processes for the fault tests: a Temporal dev server, a worker, an SMTP sink.

Everything here is the real thing, run the way production runs it: the Temporal CLI's dev
server (``temporal server start-dev`` with a persistent ``--db-filename``), the worker as
``python worker.py`` configured by environment variables, and an aiosmtpd server that the
worker's ``SmtpMailer`` talks SMTP to. Each process runs in its own process group, so a
``SIGKILL`` reaches it whole and nothing outlives a test (every owner stops its processes
in a ``finally``).

Also here: building intakes and the staff actions of a full two-stage lifecycle, sending
an action as an update that survives outages (a fixed update id, resent until it gets an
answer), and checking afterwards that nothing was lost or duplicated
(:func:`verify`) -- letters in the database, the outbox and the SMTP sink, deliveries,
notifications, audit trails and the read model against each workflow's query.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email
import email.policy
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiosmtpd.controller import Controller
from sqlmodel import Session, col, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError

from activities.letters import (
    DELIVERED,
    HANDED_OVER_MARKERS,
    OUTBOX,
    RESENT,
    SMTP,
    handed_over_marker,
    outbox_paths,
)
from activities.mail import message_id_for
from complaints.db import make_engine
from complaints.settings import Settings
from models.actions import (
    Acknowledge,
    AcknowledgeEscalation,
    Action,
    Close,
    CompleteAction,
    Extend,
    PayRemedy,
    RequestEscalation,
)
from models.case import Party, PartyRole
from models.events import ActionResult
from models.messages import CaseView, Intake
from models.tables import (
    AuditRow,
    ComplaintRow,
    DeadlineRow,
    DeliveryRow,
    LetterRow,
    NotificationDeliveryRow,
    NotificationRow,
)
from tests.cases import DEFINITION, STAGE1_HANDLER, STAGE2_HANDLER, respond_to
from tests.conftest import CONVERTER
from workflows.complaint import SEARCH_ATTRIBUTES, london_date

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]
TEMPORAL_CLI = Path(sys.executable).parent / "temporal"
#: Where each fault test writes the figures it measured (RELIABILITY.md quotes them).
FIGURES_DIR = ROOT / ".data" / "reliability"
#: Residents' addresses end with this; staff notifications go to ``STAFF_DOMAIN``.
RESIDENT_DOMAIN = "example.invalid"
STAFF_DOMAIN = "landlord.example"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- processes ---------------------------------------------------------------------------


class Process:
    """A child process in its own process group, logging to a file."""

    def __init__(self, name: str, command: list[str], log_path: Path,
                 env: dict[str, str] | None = None, cwd: Path = ROOT) -> None:
        self.name = name
        self.command = command
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def alive(self) -> bool:
        """Whether the process is running."""
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> None:
        """Start it (it must not be running)."""
        assert not self.alive, f"{self.name} is already running"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n=== {self.name} start {self.starts + 1} at "
                      f"{dt.datetime.now(dt.UTC).isoformat()} ===\n".encode())
            log.flush()
            self.popen = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=self.env, cwd=self.cwd,
                                          start_new_session=True)
        self.starts += 1

    def _signal_group(self, sig: int) -> None:
        assert self.popen is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole process group and reap it."""
        if self.popen is None:
            return
        self._signal_group(signal.SIGKILL)
        self.popen.wait()

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM the group, wait; SIGKILL whatever is left."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left in the group (children) goes too.
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)

    def log_text(self) -> str:
        """The log so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class TemporalServer(Process):
    """``temporal server start-dev`` with persistent state.

    The search attributes are registered and per-workflow time skipping is allowed, as
    the workflow tests run it.
    """

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.db_file = workdir / "temporal.db"
        self.port = port or free_port()
        self.ui_port = free_port()
        command = [str(TEMPORAL_CLI), "server", "start-dev", "--db-filename", str(self.db_file),
                   "--ip", "127.0.0.1", "--port", str(self.port),
                   "--ui-port", str(self.ui_port), "--headless", "--log-level", "warn",
                   "--namespace", "default", "--dynamic-config-value",
                   "frontend.WorkflowTimeSkippingEnabled=true"]
        for name, kind in SEARCH_ATTRIBUTES.items():
            command += ["--search-attribute", f"{name}={kind}"]
        super().__init__("temporal", command, workdir / "temporal.log")

    @property
    def address(self) -> str:
        """Its gRPC address."""
        return f"127.0.0.1:{self.port}"

    async def ready(self, timeout: float = 90) -> None:
        """Wait until it answers a visibility query (so the namespace is ready)."""
        give_up = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < give_up:
            if not self.alive:
                raise RuntimeError(f"the Temporal dev server exited: {self.log_text()[-2000:]}")
            try:
                client = await asyncio.wait_for(connect(self.address), timeout=5)
                await asyncio.wait_for(client.count_workflows(), timeout=5)
                return
            except Exception as exc:  # noqa: BLE001 - not up yet
                last = exc
                await asyncio.sleep(0.3)
        raise RuntimeError(f"the Temporal dev server did not come up: {last!r}")


class WorkerProcess(Process):
    """``python worker.py`` with the given settings in its environment."""

    def __init__(self, workdir: Path, settings: dict[str, str]) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "SMTP_"))}
        env.update({"LOG_JSON": "true", "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"})
        env.update(settings)
        super().__init__("worker", [sys.executable, "worker.py"], workdir / "worker.log", env)
        self._offset = 0

    def start(self) -> None:
        """Start it; ``ready`` then waits for this start's "worker started"."""
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        super().start()

    async def ready(self, timeout: float = 60) -> None:
        """Wait until this start has logged that it polls the task queue."""
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            if not self.alive:
                raise RuntimeError(f"the worker exited: {self.log_text()[-3000:]}")
            with self.log_path.open("rb") as log:
                log.seek(self._offset)
                if b"worker started" in log.read():
                    return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"the worker did not start: {self.log_text()[-3000:]}")

    def count(self, event: str) -> int:
        """How many log lines (JSON) carry ``"event": event``."""
        found = 0
        for line in self.log_text().splitlines():
            if f'"{event}"' in line:
                with contextlib.suppress(json.JSONDecodeError):
                    found += json.loads(line).get("event") == event
        return found


def worker_settings(server: TemporalServer, task_queue: str, database_url: str,
                    outbox: Path, data_dir: Path, smtp_port: int | None) -> dict[str, str]:
    """The environment that points a worker at the test's surroundings."""
    settings = {"TEMPORAL_ADDRESS": server.address, "TEMPORAL_TASK_QUEUE": task_queue,
                "DATABASE_URL": database_url, "OUTBOX_DIR": str(outbox),
                "DATA_DIR": str(data_dir), "STAFF_EMAIL_DOMAIN": STAFF_DOMAIN,
                # As deployed: the recording in helper processes (conftest sets 0).
                "RECORDING_PROCESSES": str(Settings.model_fields["recording_processes"].default)}
    if smtp_port is not None:
        settings |= {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_port),
                     "SMTP_SENDER": "complaints@connexus.example"}
    return settings


async def connect(address: str) -> Client:
    """A client as staff tools make it (pydantic payloads)."""
    return await Client.connect(address, data_converter=CONVERTER)


# --- the SMTP sink -----------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One message accepted by the sink, for one recipient."""

    rcpt: str
    message_id: str
    subject: str
    at: float


class SmtpSink:
    """An aiosmtpd server on 127.0.0.1 that keeps what it accepts.

    Like a real server it commits a message the moment it has received all of it (the
    final ``.``, RFC 1047), then answers; ``messages`` holds what it committed, one entry
    per recipient. A client that is gone by the time of the answer still had its message
    delivered.

    Knobs for faults: ``refusing`` answers every recipient ``451 4.3.0`` (a server asking
    to try later); ``stop()`` closes the port (connection refused); ``commit_delay``
    holds each answer that long after the commit (a slow server, and a window in which a
    kill lands while letters are in flight); ``on_accept`` runs after each commit and
    before the answer; ``lose_answers`` commits that many messages and then drops the
    connection without answering (the answer lost on the network).
    """

    def __init__(self, commit_delay: float = 0.0) -> None:
        self.port = free_port()
        self.commit_delay = commit_delay
        self.messages: list[Received] = []
        self.refusing = False
        self.refusals = 0
        self.lose_answers = 0
        self.answers_lost: list[Received] = []
        self.in_data = 0
        #: Messages to staff (notifications) between their commit and their answer.
        self.staff_in_data = 0
        self.on_accept: Callable[[Received], Awaitable[None]] | None = None
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    def start(self) -> None:
        """Listen on ``port``."""
        if self._controller is None:
            self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
            self._controller.start()

    def stop(self) -> None:
        """Close the port."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        """Whether it listens."""
        return self._controller is not None

    def snapshot(self) -> list[Received]:
        """The messages accepted so far."""
        with self._lock:
            return list(self.messages)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any,  # noqa: N802
                          address: str, rcpt_options: list[str]) -> str:
        """Take the recipient, unless refusing."""
        if self.refusing:
            self.refusals += 1
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        """Commit the message for its recipients, then answer (see the class docstring)."""
        message = email.message_from_bytes(envelope.original_content or envelope.content,
                                           policy=email.policy.default)
        now = time.monotonic()
        accepted = [Received(str(r), str(message["Message-ID"]), str(message["Subject"]),
                             now) for r in envelope.rcpt_tos]
        with self._lock:
            self.messages.extend(accepted)
        staff = sum(1 for m in accepted if m.rcpt.endswith("@" + STAFF_DOMAIN))
        self.in_data += 1
        self.staff_in_data += staff
        try:
            if self.on_accept is not None:
                for item in accepted:
                    await self.on_accept(item)
            if self.commit_delay:
                await asyncio.sleep(self.commit_delay)
            if self.lose_answers > 0:
                self.lose_answers -= 1
                self.answers_lost.extend(accepted)
                if server.transport is not None:
                    server.transport.abort()
            return "250 2.0.0 Accepted"
        finally:
            self.in_data -= 1
            self.staff_in_data -= staff


# --- cases and staff actions -------------------------------------------------------------


def intake(number: int, received_on: dt.date) -> Intake:
    """A realistic complaint with two parties who both have an email address."""
    return Intake.model_validate({
        "reference": f"CMP-2026-{number:06d}", "policy_name": "connexus", "channel": "phone",
        "received_on": received_on,
        "parties": (
            Party(role=PartyRole.RESIDENT, name=f"Jo Bloggs {number}",
                  address=("2 Test Row", "Ludlow", "SY8 1AA"),
                  email=f"resident{number}@{RESIDENT_DOMAIN}"),
            Party(role=PartyRole.REPRESENTATIVE, name=f"Sam Advocate {number}",
                  email=f"advocate{number}@{RESIDENT_DOMAIN}"),
        ),
        "description": "The roof has leaked into the bedroom since August.",
        "outcomes_sought": ("Fix the roof",), "manager_id": "mgr-7", "lead_id": "lead-1",
    })


#: Recipients with an email address per case (see ``intake``).
RECIPIENTS = 2

Step = tuple[str, Callable[[CaseView | None], Action]]


def _case(view: CaseView | None) -> Any:
    assert view is not None
    return view.case


#: A full lifecycle: both stages, an extension, remedies and actions, both actions
#: completed, both payments made, closed. Seven letters (a payment sends none).
LIFECYCLE: list[Step] = [
    ("acknowledge", lambda v: Acknowledge(by=STAGE1_HANDLER, handler_id=STAGE1_HANDLER,
                                          definition=DEFINITION)),
    ("extend", lambda v: Extend(by=STAGE1_HANDLER, working_days=5,
                                reason="A surveyor must inspect the roof")),
    ("respond", lambda v: respond_to(_case(v), STAGE1_HANDLER)),
    ("request_escalation", lambda v: RequestEscalation(
        by="staff-900", requested_on=london_date(_case(v).responses[-1].at))),
    ("acknowledge_escalation", lambda v: AcknowledgeEscalation(
        by=STAGE2_HANDLER, handler_id=STAGE2_HANDLER, definition=DEFINITION)),
    ("final_response", lambda v: respond_to(_case(v), STAGE2_HANDLER, action_id="A2")),
    ("complete_A1", lambda v: CompleteAction(by=STAGE2_HANDLER, action_id="A1")),
    ("complete_A2", lambda v: CompleteAction(by=STAGE2_HANDLER, action_id="A2")),
    ("pay_1", lambda v: PayRemedy(by=STAGE2_HANDLER, stage=1, remedy=2, amount="150.00",
                                  paid_on=london_date(_case(v).responses[-1].at))),
    ("pay_2", lambda v: PayRemedy(by=STAGE2_HANDLER, stage=2, remedy=2, amount="150.00",
                                  paid_on=london_date(_case(v).responses[-1].at))),
    ("close", lambda v: Close(by=STAGE2_HANDLER)),
]
LETTERS_PER_LIFECYCLE = 7


@dataclass
class DriveStats:
    """What driving the cases took."""

    updates: int = 0
    update_retries: int = 0
    rpc_errors: Counter[str] = field(default_factory=Counter)


async def resilient(call: Callable[[], Awaitable[T]], stats: DriveStats, *,
                    give_up_after: float = 600, attempt_timeout: float = 90) -> T:
    """Await ``call()`` until it answers, retrying through server and worker outages.

    Refusals (``WorkflowUpdateFailedError``) are answers and are raised at once.
    """
    give_up = time.monotonic() + give_up_after
    while True:
        try:
            return await asyncio.wait_for(call(), timeout=attempt_timeout)
        except WorkflowUpdateFailedError:
            raise
        except (RPCError, WorkflowUpdateRPCTimeoutOrCancelledError, TimeoutError,
                ConnectionError, RuntimeError) as exc:
            stats.update_retries += 1
            stats.rpc_errors[type(exc).__name__] += 1
            if time.monotonic() > give_up:
                raise
            await asyncio.sleep(0.5)


async def act(handle: WorkflowHandle[Any, Any], action: Action, update_id: str,
              stats: DriveStats) -> CaseView:
    """Send a staff action as an update with a fixed id, until it is answered; then query.

    The id makes a resend the same update: Temporal answers a repeat with the first
    one's outcome, so an action whose answer was lost (worker killed, server restarted)
    is never applied twice. The update answers with a small ``ActionResult`` (its event
    is recorded by then); the case as a whole comes from the ``case_view`` query.
    """
    result = await resilient(lambda: handle.execute_update(
        action.trigger, action, id=update_id, result_type=ActionResult), stats)
    assert isinstance(result, ActionResult) and result.reference == handle.id, result
    stats.updates += 1
    view = await resilient(lambda: handle.query("case_view", result_type=CaseView), stats,
                           give_up_after=300, attempt_timeout=20)
    assert max(e.seq for e in view.case.audit) >= result.seq, (result, view.case.audit)
    return view


async def lodge(client: Client, task_queue: str, case: Intake,
                stats: DriveStats) -> WorkflowHandle[Any, Any]:
    """Lodge a case as ``complaints lodge`` does, through outages (it is idempotent)."""
    from complaints.staff import lodge_intake

    return await resilient(lambda: lodge_intake(client, case, task_queue), stats)


async def drive(client: Client, task_queue: str, case: Intake, steps: Iterable[Step],
                stats: DriveStats, progress: Callable[[str], None] | None = None) -> CaseView:
    """Lodge ``case`` and take it through ``steps``; return the case after the last."""
    handle = await lodge(client, task_queue, case, stats)
    view: CaseView | None = None
    for index, (name, build) in enumerate(steps):
        view = await act(handle, build(view), f"{case.reference}/{index}-{name}", stats)
        if progress is not None:
            progress(name)
    assert view is not None
    return view


async def query(client: Client, reference: str, stats: DriveStats | None = None) -> CaseView:
    """The case as the workflow's query returns it, through outages."""
    handle = client.get_workflow_handle(reference)
    return await resilient(lambda: handle.query("case_view", result_type=CaseView),
                           stats or DriveStats(), give_up_after=300, attempt_timeout=20)


# --- checks ------------------------------------------------------------------------------


@dataclass
class Verification:
    """What :func:`verify` found: the figures and every problem."""

    figures: dict[str, Any]
    problems: list[str]


def _sessions(database_url: str) -> Callable[[], Session]:
    engine = make_engine(database_url)
    return lambda: Session(engine)


async def wait_recorded(client: Client, references: list[str], database_url: str,
                        timeout: float = 300) -> dict[str, CaseView]:
    """Wait until every case's read model and audit trail have caught up with its query.

    The query holds the last ten audit entries; the highest seq among them is the last
    the case handed out, and the database must hold 1..that seq. A timer's event (a
    reminder, a breach) may still be recording when the last update has answered.
    """
    sessions = _sessions(database_url)
    give_up = time.monotonic() + timeout
    pending = set(references)
    views: dict[str, CaseView] = {}
    while True:
        for reference in sorted(pending):
            view = await query(client, reference)
            views[reference] = view
            with sessions() as session:
                row = session.get(ComplaintRow, reference)
                audit = session.exec(select(AuditRow.seq).where(
                    AuditRow.reference == reference)).all()
            highest = max((e.seq for e in view.case.audit), default=0)
            if row is not None and row.state == view.state and \
                    max(audit, default=0) >= highest and row.snapshot_at is not None \
                    and row.overdue == view.overdue:
                pending.discard(reference)
        if not pending:
            return views
        if time.monotonic() > give_up:
            raise AssertionError(f"{len(pending)} cases never caught up: {sorted(pending)[:5]}")
        await asyncio.sleep(0.5)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def verify(views: dict[str, CaseView], intakes: dict[str, Intake], database_url: str,
           outbox: Path, sink: SmtpSink | None, *, expect_state: str | None = None,
           commit_window: Iterable[tuple[str, str]] = ()) -> Verification:
    """Check that nothing was lost or duplicated, against each workflow's own view.

    - every case is in ``expect_state`` (when given);
    - every letter the workflow sent is stored once (``LetterRow``), written once as
      ``.txt`` and ``.html`` to the outbox, emailed once to each recipient (the sink holds
      exactly one message per letter and recipient, with the letter's Message-ID) and
      recorded as delivered once per channel and recipient; nothing else is there;
    - every staff notification recorded was emailed once, and every deadline the
      workflow marks as told (``manager_notified``, ``lead_notified``) has its notice;
    - each audit trail is ``seq`` 1..n without gaps or repeats, n is the highest seq the
      query shows, and its last entries equal the query's (it keeps the last ten);
    - the read model (state, stage, overdue, next deadline, deadlines) equals the query.

    The one duplicate allowed is an email in ``commit_window`` (message id, recipient),
    to a resident or to staff:
    one the server had committed when a kill stopped the worker before it could note the
    hand-over (see ``in_commit_window``); it must be recorded ``resent``.
    """
    problems: list[str] = []
    sessions = _sessions(database_url)
    with sessions() as session:
        letter_rows = session.exec(select(LetterRow)).all()
        deliveries = session.exec(select(DeliveryRow)).all()
        notifications = session.exec(select(NotificationRow)).all()
        notice_deliveries = session.exec(select(NotificationDeliveryRow)).all()
        audit_rows = session.exec(select(AuditRow).order_by(col(AuditRow.reference),
                                                            col(AuditRow.seq))).all()
        complaints = {row.reference: row for row in session.exec(select(ComplaintRow))}
        deadline_rows = session.exec(select(DeadlineRow)).all()

    expected_letters = {r.letter_id: ref for ref, v in views.items() for r in v.letters}
    stored = Counter(r.letter_id for r in letter_rows)
    if set(stored) != set(expected_letters):
        problems.append(f"LetterRow ids differ from the workflows' letters: missing "
                        f"{sorted(set(expected_letters) - set(stored))[:5]}, extra "
                        f"{sorted(set(stored) - set(expected_letters))[:5]}")
    problems += [f"LetterRow {k} stored {n} times" for k, n in stored.items() if n != 1]

    # The outbox: one .txt and one .html per letter, nothing else.
    txt = html = temp_files = 0
    for reference, view in views.items():
        expected_txt = {outbox_paths(outbox, reference, r.letter_id)[0].name
                        for r in view.letters}
        expected_html = {outbox_paths(outbox, reference, r.letter_id)[1].name
                         for r in view.letters}
        folder = outbox_paths(outbox, reference, "x")[0].parent
        names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
        got_txt = sorted(n for n in names if n.endswith(".txt") and not n.startswith("."))
        got_html = sorted(n for n in names if n.endswith(".html") and not n.startswith("."))
        temp_files += sum(1 for n in names if n.startswith("."))
        txt += len(got_txt)
        html += len(got_html)
        if got_txt != sorted(expected_txt) or got_html != sorted(expected_html):
            problems.append(f"{reference}: outbox has {got_txt + got_html}, expected "
                            f"{sorted(expected_txt | expected_html)}")
    markers = outbox / HANDED_OVER_MARKERS
    markers_left = sum(1 for _ in markers.iterdir()) if markers.is_dir() else 0
    if markers_left:
        problems.append(f"{markers_left} handed-over markers left (unrecorded deliveries)")

    # Deliveries recorded: the outbox once, each recipient once, all delivered.
    recipients = {ref: sorted({str(p.email) for p in intakes[ref].parties if p.email})
                  for ref in views}
    expected_deliveries: Counter[tuple[str, str, str]] = Counter()
    for letter_id, reference in expected_letters.items():
        expected_deliveries[(letter_id, OUTBOX, "file")] += 1
        if sink is not None:
            for address in recipients[reference]:
                expected_deliveries[(letter_id, SMTP, address)] += 1
    got_deliveries = Counter((d.letter_id, d.channel, d.recipient) for d in deliveries)
    if got_deliveries != expected_deliveries:
        diff = (got_deliveries - expected_deliveries) + (expected_deliveries - got_deliveries)
        problems.append(f"DeliveryRow differs from the letters: {sorted(diff)[:5]}")
    statuses = Counter(d.status for d in deliveries)
    problems += [f"delivery {d.letter_id} {d.channel} {d.recipient} is {d.status!r}"
                 for d in deliveries if d.status not in DELIVERED][:5]

    figures: dict[str, Any] = {
        "cases": len(views), "letters": len(expected_letters),
        "letter_rows": len(letter_rows), "outbox_txt": txt, "outbox_html": html,
        "outbox_temp_files_left": temp_files, "handed_over_markers_left": markers_left,
        "deliveries": dict(statuses),
    }

    # The SMTP sink: exactly one message per letter and recipient, with its Message-ID.
    if sink is not None:
        received = sink.snapshot()
        to_residents = Counter((m.message_id, m.rcpt) for m in received
                               if m.rcpt.endswith("@" + RESIDENT_DOMAIN))
        wanted = Counter((message_id_for(letter_id), address)
                         for letter_id, reference in expected_letters.items()
                         for address in recipients[reference])
        duplicated = {k for k, n in to_residents.items() if n > 1}
        duplicates = sum(n - 1 for n in to_residents.values() if n > 1)
        missing = wanted - to_residents
        unexpected = Counter({k: n for k, n in to_residents.items() if k not in wanted})
        window = set(commit_window)
        unexplained = duplicated - window
        if unexplained or any(to_residents[k] > 2 for k in duplicated):
            problems.append(f"{duplicates} duplicate emails to residents: "
                            f"{sorted(unexplained)[:5]}")
        resent = {(message_id_for(d.letter_id), d.recipient) for d in deliveries
                  if d.status == RESENT}
        if duplicated - resent:
            problems.append(f"duplicates not recorded as resent: {sorted(duplicated - resent)}")
        if missing:
            problems.append(f"{sum(missing.values())} letter emails never arrived: "
                            f"{sorted(missing)[:5]}")
        if unexpected:
            problems.append(f"unexpected emails: {sorted(unexpected)[:5]}")
        to_staff = Counter((m.message_id, m.rcpt) for m in received
                           if m.rcpt.endswith("@" + STAFF_DOMAIN))
        staff = Counter(m.message_id for m in received if m.rcpt.endswith("@" + STAFF_DOMAIN))
        wanted_staff = Counter(message_id_for(n.notification_id) for n in notifications)
        staff_duplicates = sum(n - 1 for n in to_staff.values() if n > 1)
        staff_unexplained = {k for k, n in to_staff.items()
                             if n > 2 or (n == 2 and k not in window)}
        if staff_unexplained:
            problems.append(f"{staff_duplicates} duplicate staff notification emails: "
                            f"{sorted(staff_unexplained)[:5]}")
        if set(staff) != set(wanted_staff):
            problems.append(f"staff emails differ from NotificationRow: "
                            f"{sorted(set(staff) ^ set(wanted_staff))[:5]}")
        figures |= {
            "emails_expected": sum(wanted.values()),
            "emails_received": sum(to_residents.values()),
            "unique_message_ids": len({m for m, _ in to_residents}),
            "duplicates": duplicates,
            "duplicates_outside_commit_window": len(unexplained),
            "losses": sum(missing.values()),
            "staff_emails": sum(staff.values()), "staff_email_duplicates": staff_duplicates,
            "staff_duplicates_outside_commit_window": len(staff_unexplained),
        }

    # Notifications: every deadline the workflow says it told someone about has its notice
    # recorded (the email is checked above), and nothing is recorded twice.
    figures["notifications"] = dict(Counter(n.kind for n in notifications))
    figures["notification_deliveries"] = dict(Counter(d.status for d in notice_deliveries))
    problems += [f"notification email {d.notification_id} to {d.recipient} is {d.status!r}"
                 for d in notice_deliveries if d.status not in DELIVERED][:5]
    recorded_ids = Counter(n.notification_id for n in notifications)
    problems += [f"notification {k} recorded {n} times" for k, n in recorded_ids.items()
                 if n != 1]
    for reference, view in views.items():
        for d in view.deadlines:
            told = ([f"{reference}:breach:{d.key}"] if d.manager_notified else []) + \
                ([f"{reference}:breach_escalated:{d.key}"] if d.lead_notified else [])
            problems += [f"{reference}: notice {n} not recorded" for n in told
                         if n not in recorded_ids]

    # Audit trails: 1..n, no gaps, no repeats; n and the last entries as the workflow's.
    by_reference: dict[str, list[AuditRow]] = {}
    for row in audit_rows:
        by_reference.setdefault(row.reference, []).append(row)
    for reference, view in views.items():
        rows = by_reference.get(reference, [])
        seqs = [r.seq for r in rows]
        highest = max((e.seq for e in view.case.audit), default=0)
        if seqs != list(range(1, len(seqs) + 1)) or len(seqs) != highest:
            problems.append(f"{reference}: audit seqs {seqs} but the workflow has handed "
                            f"out 1..{highest}")
            continue
        by_seq = {r.seq: r for r in rows}
        for event in view.case.audit:
            row = by_seq[event.seq]
            ours = (row.action, row.by, row.from_state, row.to_state, row.accepted,
                    _utc(row.at))
            theirs = (event.action, event.by, event.from_state, event.to_state,
                      event.accepted, event.at)
            if ours != theirs:
                problems.append(f"{reference}: audit {row.seq} is {ours}, the workflow "
                                f"says {theirs}")
                break
    figures["audit_events"] = len(audit_rows)

    # The read model against the query.
    deadlines: dict[str, dict[str, str]] = {}
    for deadline_row in deadline_rows:
        deadlines.setdefault(deadline_row.reference, {})[deadline_row.key] = deadline_row.status
    for reference, view in views.items():
        complaint_row = complaints.get(reference)
        if complaint_row is None:
            problems.append(f"{reference}: no ComplaintRow")
            continue
        read_model = (complaint_row.state, complaint_row.stage, complaint_row.overdue,
                      _utc(complaint_row.next_deadline))
        queried = (view.state, view.stage, view.overdue, view.next_deadline)
        if read_model != queried:
            problems.append(f"{reference}: read model {read_model}, workflow {queried}")
        want = {d.key: d.status.value for d in view.deadlines}
        if deadlines.get(reference, {}) != want:
            problems.append(f"{reference}: deadlines {deadlines.get(reference)}, workflow "
                            f"{want}")
        if expect_state is not None and view.state != expect_state:
            problems.append(f"{reference} is {view.state}, not {expect_state}")
    figures["cases_in_state"] = dict(Counter(v.state for v in views.values()))
    return Verification(figures, problems)


async def activity_retries(client: Client, references: Iterable[str]) -> dict[str, Any]:
    """From the histories: activities that needed more than one attempt, by type.

    ``after_timeout`` counts those whose last failed attempt timed out, which is what a
    killed worker leaves behind: the attempt was running when the process died. A case's
    own recordings are local activities (run inside a workflow task): a kill during one
    times the workflow task out, and the next worker records it (its marker) in the next
    task it completes, so that counts for the local activity the marker names. A local
    activity retried within one worker's run shows as a marker with attempt > 1.
    """
    retried: Counter[str] = Counter()
    after_timeout: Counter[str] = Counter()
    for reference in references:
        history = await client.get_workflow_handle(reference).fetch_history()
        scheduled: dict[int, str] = {}
        task_timed_out = completed_after_timeout = False
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                scheduled[event.event_id] = \
                    event.activity_task_scheduled_event_attributes.activity_type.name
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                attributes = event.activity_task_started_event_attributes
                if attributes.attempt > 1:
                    name = scheduled.get(attributes.scheduled_event_id, "?")
                    retried[name] += 1
                    if attributes.last_failure.HasField("timeout_failure_info"):
                        after_timeout[name] += 1
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
                task_timed_out = True
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                completed_after_timeout, task_timed_out = task_timed_out, False
            elif event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
                marker = event.marker_recorded_event_attributes
                if marker.marker_name != "core_local_activity":
                    continue
                data = json.loads(marker.details["data"].payloads[0].data)
                name = str(data.get("activity_type", "?"))
                if int(data.get("attempt") or 1) > 1:
                    retried[name] += 1
                if completed_after_timeout:
                    after_timeout[name] += 1
                    completed_after_timeout = False
    return {"retried": dict(retried), "after_timeout": dict(after_timeout)}


def in_commit_window(database_url: str, outbox: Path,
                     accepted: Iterable[Received]) -> list[Received]:
    """Emails the SMTP server committed that the worker has not noted anywhere (yet).

    Called right after a kill, these are the emails caught in SMTP's commit window: the
    server had the whole message, but the worker died before it noted the hand-over (the
    marker file, then the database). Its retry cannot know and sends them again.
    """
    sessions = _sessions(database_url)
    with sessions() as session:
        letters = {message_id_for(d.letter_id): d.letter_id for d in session.exec(
            select(DeliveryRow).where(DeliveryRow.channel == SMTP))}
        done = {(message_id_for(d.letter_id), d.recipient) for d in session.exec(
            select(DeliveryRow).where(DeliveryRow.channel == SMTP)) if d.status in DELIVERED}
        done |= {(message_id_for(n), f"{r}@{STAFF_DOMAIN}") for n, r in session.exec(
            select(NotificationRow.notification_id, NotificationRow.recipient_id))}
        notices = {message_id_for(d.notification_id): d.notification_id
                   for d in session.exec(select(NotificationDeliveryRow))}
        done |= {(message_id_for(d.notification_id), d.recipient) for d in session.exec(
            select(NotificationDeliveryRow)) if d.status in DELIVERED}
    pending = []
    for m in accepted:
        if (m.message_id, m.rcpt) in done:
            continue
        letter_id = letters.get(m.message_id)
        if letter_id is not None and handed_over_marker(outbox, letter_id, m.rcpt).exists():
            continue
        notice_id = notices.get(m.message_id)
        if notice_id is not None and handed_over_marker(
                outbox, NOTICE_MARKER_NAMESPACE + notice_id, m.rcpt).exists():
            continue
        pending.append(m)
    return pending


#: Notifications' markers are namespaced (``activities/notifications.py``).
NOTICE_MARKER_NAMESPACE = "notification\0"


def write_figures(name: str, figures: dict[str, Any]) -> Path:
    """Write a test's measured figures to ``.data/reliability/<name>.json`` and print them."""
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    path = FIGURES_DIR / f"{name}.json"
    figures = {"test": name, "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
               **figures}
    path.write_text(json.dumps(figures, indent=2, sort_keys=False, default=str) + "\n")
    print(f"\n{name}: {json.dumps(figures, default=str)}")
    return path


class SqliteOutage:
    """Make a SQLite database unavailable for a while.

    Holds its write lock (``BEGIN EXCLUSIVE``) from another connection for ``seconds``:
    every transaction of the worker (they all begin ``IMMEDIATE``) waits for it, then
    fails with "database is locked" after the busy timeout.
    """

    def __init__(self, path: Path, seconds: float) -> None:
        self.path = path
        self.seconds = seconds
        self.acquired = threading.Event()
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self._thread = threading.Thread(target=self._hold, name="sqlite-outage", daemon=True)
        self._error: BaseException | None = None

    def _hold(self) -> None:
        import sqlite3

        try:
            connection = sqlite3.connect(self.path, timeout=120, isolation_level=None)
            try:
                connection.execute("BEGIN EXCLUSIVE")
                self.started_at = time.monotonic()
                self.acquired.set()
                time.sleep(self.seconds)
                connection.execute("ROLLBACK")
            finally:
                connection.close()
                self.ended_at = time.monotonic()
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self._error = exc
            self.acquired.set()

    def start(self) -> None:
        """Take the lock (returns once it is held)."""
        self._thread.start()
        self.acquired.wait(150)
        if self._error is not None:
            raise self._error

    def join(self) -> float:
        """Wait for the end of the outage; return how long it lasted, in seconds."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self.started_at is not None and self.ended_at is not None
        return self.ended_at - self.started_at


def outbox_letters(outbox: Path) -> int:
    """How many letters (``.txt`` files) the outbox holds."""
    return sum(1 for _ in outbox.glob("*/*.txt")) if outbox.is_dir() else 0
