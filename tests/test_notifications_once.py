"""Staff notification emails go out exactly once, through kills, refusals and other workers.

A real SMTP server (aiosmtpd on 127.0.0.1) and a real SQLite database; the attempt that
dies is ``notify`` in a child process killed with ``SIGKILL`` at a chosen point of its
SMTP conversation (the server holds its answer there), and the retry runs like the
restarted worker's: a fresh ``NotificationActivities`` on the same database and outbox.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlmodel import Session, select
from temporalio.testing import ActivityEnvironment

from activities.email_once import HANDED_OVER_MARKERS, RESENT, SENT, UNCONFIRMED
from activities.mail import Mailer, SmtpMailer, message_id_for
from activities.notifications import NotificationActivities
from complaints.db import make_engine, session_factory, upgrade
from models.messages import NotificationKind, NotifyInput
from models.tables import NotificationDeliveryRow, NotificationRow

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = "CMP-2026-000321"
NOTIFICATION_ID = f"{REFERENCE}:breach:s1-ack"
STAFF_DOMAIN = "landlord.example"
STAFF_ADDRESS = f"repairs-manager@{STAFF_DOMAIN}"
WAIT_S = 20.0

#: The attempt that dies: ``notify`` once, run as the worker runs it (no activity context).
CHILD = """
import sys
from pathlib import Path
from activities.mail import SmtpMailer
from activities.notifications import NotificationActivities
from complaints.db import make_engine, session_factory
from models.messages import NotifyInput

url, port, outbox, payload = sys.argv[1:5]
activities = NotificationActivities(
    session_factory(make_engine(url)), SmtpMailer("127.0.0.1", int(port), timeout=60),
    None, "landlord.example", outbox_dir=Path(outbox))
activities.notify(NotifyInput.model_validate_json(payload))
"""


def _notify_input() -> NotifyInput:
    return NotifyInput(notification_id=NOTIFICATION_ID, reference=REFERENCE,
                       kind=NotificationKind.BREACH, recipient_role="manager",
                       recipient_id="repairs-manager", deadline_key="s1-ack",
                       due=dt.date(2026, 11, 27),
                       message="Stage 1 acknowledgement was due Friday 27 November 2026")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """An SMTP server that keeps what it commits and can hold its answer at RCPT or DATA.

    Like a real server it commits a message the moment it has all of it (the final ``.``,
    RFC 1047), before answering. ``hold`` names the command whose answer waits until
    ``release()``; ``holding`` is set once a client waits there. ``refuse`` answers
    every recipient ``550``.
    """

    def __init__(self) -> None:
        self.port = _free_port()
        self.messages: list[tuple[str, str]] = []  # (recipient, Message-ID)
        self.hold: str | None = None
        self.refuse = False
        self.holding = threading.Event()
        self._released = threading.Event()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    def release(self) -> None:
        """Let a held answer go."""
        self._released.set()

    async def _maybe_hold(self, command: str) -> None:
        if self.hold == command:
            self.holding.set()
            while not self._released.is_set():
                await asyncio.sleep(0.02)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any,  # noqa: N802
                          address: str, rcpt_options: list[str]) -> str:
        """Take the recipient (or refuse it), after any hold."""
        await self._maybe_hold("RCPT")
        if self.refuse:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        """Commit the message, then answer after any hold."""
        message = email.message_from_bytes(envelope.original_content or envelope.content,
                                           policy=email.policy.default)
        self.messages.extend((str(r), str(message["Message-ID"])) for r in envelope.rcpt_tos)
        await self._maybe_hold("DATA")
        return "250 Message accepted for delivery"


@pytest.fixture
def server() -> Iterator[Server]:
    """A running SMTP server on 127.0.0.1."""
    smtp = Server()
    smtp._controller.start()
    try:
        yield smtp
    finally:
        smtp.release()
        smtp._controller.stop()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A migrated SQLite database in a temporary folder."""
    url = f"sqlite:///{(tmp_path / 'complaints.db').as_posix()}"
    upgrade(url)
    return url


@pytest.fixture
def sessions(db_url: str) -> Iterator[Callable[[], Session]]:
    """A session factory on the test database."""
    engine = make_engine(db_url)
    yield session_factory(engine)
    engine.dispose()


def _start_child(db_url: str, server: Server, outbox: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, db_url, str(server.port), str(outbox),
         _notify_input().model_dump_json()],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True)


def _kill(child: subprocess.Popen[bytes]) -> None:
    os.killpg(child.pid, signal.SIGKILL)
    child.wait(10)


def _wait_for(check: Callable[[], bool], what: str, child: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if child.poll() is not None:
            stderr = child.stderr.read().decode() if child.stderr else ""
            pytest.fail(f"the attempt ended (exit {child.returncode}) before {what}:\n"
                        f"{stderr[-2000:]}")
        if time.monotonic() > deadline:
            _kill(child)
            pytest.fail(f"no {what} within {WAIT_S:.0f}s")
        time.sleep(0.02)


def _retry(sessions: Callable[[], Session], mailer: Mailer, outbox: Path) -> None:
    """The retry, as on the restarted worker: a new process memory, same database."""
    activities = NotificationActivities(sessions, mailer, None, STAFF_DOMAIN,
                                        outbox_dir=outbox)
    ActivityEnvironment().run(activities.notify, _notify_input())


def _deliveries(sessions: Callable[[], Session]) -> list[tuple[str, str, str]]:
    with sessions() as session:
        return [(d.notification_id, d.recipient, d.status)
                for d in session.exec(select(NotificationDeliveryRow))]


def _recorded(sessions: Callable[[], Session]) -> bool:
    with sessions() as session:
        return session.get(NotificationRow, NOTIFICATION_ID) is not None


def _markers(outbox: Path) -> list[Path]:
    folder = outbox / HANDED_OVER_MARKERS
    return sorted(folder.iterdir()) if folder.is_dir() else []


def _notifier(sessions: Callable[[], Session], server: Server, outbox: Path,
              mailer: Mailer | None = None) -> NotificationActivities:
    """Notification activities emailing through ``server`` (or ``mailer``), no webhook."""
    return NotificationActivities(sessions, mailer or SmtpMailer("127.0.0.1", server.port,
                                                                 timeout=10),
                                  None, STAFF_DOMAIN, outbox_dir=outbox)


def test_a_retry_after_a_kill_between_send_and_record_does_not_email_again(
        tmp_path: Path, db_url: str, sessions: Callable[[], Session], server: Server) -> None:
    """Killed after handing the whole email over, before recording it: the retry sends none."""
    outbox = tmp_path / "outbox"
    server.hold = "DATA"  # the server has committed the email; its answer waits
    child = _start_child(db_url, server, outbox)
    _wait_for(lambda: server.holding.is_set() and bool(_markers(outbox)),
              "email handed over (server committed, marker left)", child)
    _kill(child)
    assert server.messages == [(STAFF_ADDRESS, message_id_for(NOTIFICATION_ID))]
    assert not _recorded(sessions)

    server.release()
    _retry(sessions, SmtpMailer("127.0.0.1", server.port, timeout=10), outbox)

    assert server.messages == [(STAFF_ADDRESS, message_id_for(NOTIFICATION_ID))]
    assert _deliveries(sessions) == [(NOTIFICATION_ID, STAFF_ADDRESS, UNCONFIRMED)]
    assert _recorded(sessions)
    assert _markers(outbox) == []


def test_a_retry_after_a_kill_before_sending_emails_it(
        tmp_path: Path, db_url: str, sessions: Callable[[], Session], server: Server) -> None:
    """Killed mid-conversation before the message went: the retry sends it, once, ``resent``."""
    outbox = tmp_path / "outbox"
    server.hold = "RCPT"  # the email is claimed, the message not yet sent
    child = _start_child(db_url, server, outbox)
    _wait_for(server.holding.is_set, "SMTP conversation at RCPT", child)
    _kill(child)
    assert server.messages == []
    assert _markers(outbox) == []

    server.hold = None
    server.release()
    _retry(sessions, SmtpMailer("127.0.0.1", server.port, timeout=10), outbox)

    assert server.messages == [(STAFF_ADDRESS, message_id_for(NOTIFICATION_ID))]
    assert _deliveries(sessions) == [(NOTIFICATION_ID, STAFF_ADDRESS, RESENT)]
    assert _recorded(sessions)


def test_an_email_that_went_is_not_sent_again_by_another_worker(
        tmp_path: Path, sessions: Callable[[], Session], server: Server) -> None:
    """Email accepted, webhook down: the retry on another worker posts but does not email."""
    outbox = tmp_path / "outbox"
    mailer = SmtpMailer("127.0.0.1", server.port, timeout=10)
    with socket.socket() as closed:  # a port nothing listens on: the webhook is down
        closed.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{closed.getsockname()[1]}/hook"
    first = NotificationActivities(sessions, mailer, down, STAFF_DOMAIN, outbox_dir=outbox)
    with pytest.raises(OSError):
        ActivityEnvironment().run(first.notify, _notify_input())
    assert len(server.messages) == 1
    assert not _recorded(sessions)

    _retry(sessions, mailer, outbox)  # another worker: no webhook configured there

    assert len(server.messages) == 1
    assert _deliveries(sessions) == [(NOTIFICATION_ID, STAFF_ADDRESS, SENT)]
    assert _recorded(sessions)


def test_a_refused_email_releases_its_claim_and_is_sent_on_retry(
        tmp_path: Path, sessions: Callable[[], Session], server: Server) -> None:
    """A 550 from the server leaves no claim: the retry sends normally (``sent``, once)."""
    outbox = tmp_path / "outbox"
    activities = _notifier(sessions, server, outbox)
    server.refuse = True
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        ActivityEnvironment().run(activities.notify, _notify_input())
    assert _deliveries(sessions) == []
    assert not _recorded(sessions)

    server.refuse = False
    ActivityEnvironment().run(activities.notify, _notify_input())
    ActivityEnvironment().run(activities.notify, _notify_input())

    assert server.messages == [(STAFF_ADDRESS, message_id_for(NOTIFICATION_ID))]
    assert _deliveries(sessions) == [(NOTIFICATION_ID, STAFF_ADDRESS, SENT)]
    assert _markers(outbox) == []


def test_a_cancellation_while_the_server_answers_does_not_email_again(
        tmp_path: Path, sessions: Callable[[], Session], server: Server) -> None:
    """A cancellation raised into the attempt's thread after the hand-over: the retry sends none."""
    outbox = tmp_path / "outbox"
    mailer = SmtpMailer("127.0.0.1", server.port, timeout=10)
    activities = _notifier(sessions, server, outbox, mailer)
    env = ActivityEnvironment()
    failures: list[BaseException] = []

    def attempt() -> None:
        try:
            env.run(activities.notify, _notify_input())
        except BaseException as exc:  # noqa: BLE001 - checked below
            failures.append(exc)

    server.hold = "DATA"  # the server has committed the email; its answer waits
    thread = threading.Thread(target=attempt)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not (server.holding.is_set() and _markers(outbox)):
        assert time.monotonic() < deadline, "the email was never handed over"
        time.sleep(0.02)
    # As the worker cancels a local activity whose workflow task was lost: the SDK raises
    # CancelledError inside the activity's thread, here as soon as the answer arrives.
    env.cancel()
    server.release()
    thread.join(WAIT_S)
    assert [type(exc).__name__ for exc in failures] == ["CancelledError"]

    _retry(sessions, mailer, outbox)

    assert server.messages == [(STAFF_ADDRESS, message_id_for(NOTIFICATION_ID))]
    assert _deliveries(sessions) == [(NOTIFICATION_ID, STAFF_ADDRESS, SENT)]
    assert _recorded(sessions)
    assert _markers(outbox) == []


class _FailsAfterHandOver(SmtpMailer):
    """Hands the message over, then fails in a way that is no SMTP refusal.

    A stand-in for a fault in mail code after the final ``.`` (nothing here raises one
    naturally once ``SmtpMailer`` has handed a message over).
    """

    def send(self, *, to: str, subject: str, text: str, html: str | None,
             message_id: str, on_handed_over: Callable[[], None] | None = None) -> None:
        def then_fail() -> None:
            if on_handed_over is not None:
                on_handed_over()
            raise RuntimeError("a fault after the hand-over")

        super().send(to=to, subject=subject, text=text, html=html, message_id=message_id,
                     on_handed_over=then_fail)


def test_a_failure_after_the_hand_over_keeps_the_claim(
        tmp_path: Path, sessions: Callable[[], Session], server: Server) -> None:
    """An error that is no refusal, after the hand-over: the retry records it, sends none."""
    outbox = tmp_path / "outbox"
    failing = _notifier(sessions, server, outbox,
                        _FailsAfterHandOver("127.0.0.1", server.port, timeout=10))
    with pytest.raises(RuntimeError):
        ActivityEnvironment().run(failing.notify, _notify_input())
    deadline = time.monotonic() + WAIT_S
    while not server.messages:  # the server reads the message after the client has gone
        assert time.monotonic() < deadline, "the server never committed the email"
        time.sleep(0.02)
    assert len(_markers(outbox)) == 1

    _retry(sessions, SmtpMailer("127.0.0.1", server.port, timeout=10), outbox)

    assert server.messages == [(STAFF_ADDRESS, message_id_for(NOTIFICATION_ID))]
    assert _deliveries(sessions) == [(NOTIFICATION_ID, STAFF_ADDRESS, UNCONFIRMED)]
    assert _markers(outbox) == []
