"""A resident's preferred channel for letters, applied when letters are delivered (5.10).

Run in Temporal's ActivityEnvironment against real SQLite and a real SMTP server on
loopback (aiosmtpd), as ``tests/test_activities.py`` does: post means no email copy; email
means an email whenever an address is known (else the posted copy, and staff are told).
The preference travels with the case: the parties' table has no column for it, the case
file keeps it by position (``CaseFile.letter_channels``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlmodel import Session, select
from structlog.testing import capture_logs
from temporalio.testing import ActivityEnvironment

from activities import (
    CaseworkActivities,
    LetterActivities,
    NotificationActivities,
    PolicyActivities,
    RecordActivities,
)
from activities.letters import outbox_paths
from activities.mail import SmtpMailer
from complaints.db import make_engine, session_factory, upgrade
from complaints.staff import intake_from_options
from domain.casebook import CaseBook
from domain.deadlines import london_time
from models.actions import Acknowledge, AmendIntake, Extend
from models.case import Party, PreferredChannel
from models.events import OpenCaseInput
from models.tables import DeliveryRow
from tests.cases import DEFINITION, STAGE1_HANDLER, Clock
from tests.conftest import make_intake
from tests.test_activities import (
    LETTER_ID,
    MEMBER,
    NO_EMAIL,
    PERSONAL,
    REFERENCE,
    RESIDENT,
    _free_port,
    _Inbox,
    _send_input,
)

POST, EMAIL = PreferredChannel.POST, PreferredChannel.EMAIL


@pytest.fixture
def env() -> ActivityEnvironment:
    """An activity environment."""
    return ActivityEnvironment()


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[Callable[[], Session]]:
    """A session factory on a migrated SQLite database in a temporary folder."""
    url = f"sqlite:///{(tmp_path / 'db' / 'complaints.db').as_posix()}"
    upgrade(url)
    engine = make_engine(url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def smtp() -> Iterator[tuple[_Inbox, SmtpMailer]]:
    """A real SMTP server on 127.0.0.1 and a mailer pointed at it."""
    inbox = _Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, SmtpMailer("127.0.0.1", port, sender="complaints@connexus.example",
                                timeout=10)
    finally:
        controller.stop()


def _emailed(inbox: _Inbox) -> list[str]:
    return sorted(rcpt for rcpts, _ in inbox.messages for rcpt in rcpts)


def test_a_resident_who_prefers_post_gets_no_email_copy(
        env: ActivityEnvironment, sessions: Callable[[], Session],
        smtp: tuple[_Inbox, SmtpMailer], tmp_path: Path) -> None:
    """The resident asked for post: only the group member with no preference is emailed."""
    inbox, mailer = smtp
    outbox = tmp_path / "outbox"
    by_post = RESIDENT.model_copy(update={"preferred_channel": POST})
    receipt = env.run(LetterActivities(sessions, outbox, mailer).send_letter,
                      _send_input(by_post, MEMBER))
    assert receipt.delivered_to == ("outbox", "smtp:1")
    assert _emailed(inbox) == [str(MEMBER.email)]
    assert outbox_paths(outbox, REFERENCE, LETTER_ID)[0].exists()  # the copy to post
    with sessions() as session:
        recipients = session.exec(select(DeliveryRow.recipient)).all()
    assert str(RESIDENT.email) not in recipients


def test_a_resident_who_prefers_email_is_emailed_when_an_address_is_known(
        env: ActivityEnvironment, sessions: Callable[[], Session],
        smtp: tuple[_Inbox, SmtpMailer], tmp_path: Path) -> None:
    """With an address they are emailed; without one they are posted and staff are told."""
    inbox, mailer = smtp
    by_email = RESIDENT.model_copy(update={"preferred_channel": EMAIL})
    no_address = NO_EMAIL.model_copy(update={"preferred_channel": EMAIL})
    with capture_logs() as logs:
        receipt = env.run(LetterActivities(sessions, tmp_path / "outbox", mailer).send_letter,
                          _send_input(by_email, no_address))
    assert receipt.delivered_to == ("outbox", "smtp:1")
    assert _emailed(inbox) == [str(RESIDENT.email)]
    warned = [e for e in logs if e["event"] == "preferred_email_not_possible"]
    assert [(e["recipients"], e["mailer"]) for e in warned] == [(1, True)]
    assert not [item for item in PERSONAL if item and item in repr(logs)]


def test_without_a_mailer_an_email_preference_is_posted_and_staff_told(
        env: ActivityEnvironment, sessions: Callable[[], Session], tmp_path: Path) -> None:
    """No mailer configured: the letter goes to the outbox only, and the gap is logged."""
    by_email = RESIDENT.model_copy(update={"preferred_channel": EMAIL})
    with capture_logs() as logs:
        receipt = env.run(LetterActivities(sessions, tmp_path / "outbox").send_letter,
                          _send_input(by_email))
    assert receipt.delivered_to == ("outbox",)
    assert [(e["recipients"], e["mailer"]) for e in logs
            if e["event"] == "preferred_email_not_possible"] == [(1, False)]


def test_the_preference_travels_with_the_case_and_follows_an_amendment(
        env: ActivityEnvironment, sessions: Callable[[], Session],
        smtp: tuple[_Inbox, SmtpMailer], tmp_path: Path) -> None:
    """Lodged preferring post: not emailed; amended to email: the next letter is emailed."""
    inbox, mailer = smtp
    casework = CaseworkActivities(sessions, PolicyActivities(), RecordActivities(sessions),
                                  LetterActivities(sessions, tmp_path / "outbox", mailer),
                                  NotificationActivities(sessions))
    received = dt.date(2026, 3, 2)
    resident = Party(name="Jo Bloggs", address=("2 Test Row", "Ludlow", "SY8 1AA"),
                     email="jo@example.org", preferred_channel=POST)
    intake = make_intake(received, policy_name="code-2024", parties=(resident,))
    clock = Clock(london_time(received, dt.time(10)))
    book = CaseBook(intake, None, clock, casework=2)
    book.opened(env.run(casework.open_case, OpenCaseInput(intake=intake, first_year=2026,
                                                          last_year=2032)))
    assert book.case.letter_channels == (POST,)
    book.accept(Acknowledge(by=STAGE1_HANDLER, handler_id=STAGE1_HANDLER,
                            definition=DEFINITION))
    clock.at += dt.timedelta(days=1)
    book.accept(AmendIntake(by="mgr-7", reason="Asked for email from now on", parties=(
        resident.model_copy(update={"preferred_channel": EMAIL}),)))
    assert book.case.letter_channels == (EMAIL,)
    clock.at += dt.timedelta(days=1)
    book.accept(Extend(by=STAGE1_HANDLER, working_days=5, reason="A survey is needed"))
    receipts = [env.run(casework.record_case_event, event) for event in book.queue]
    sent = [r for receipt in receipts for r in receipt.letters]
    assert [(r.kind.value, r.delivered_to) for r in sent] == [
        ("stage1_acknowledgement", ("outbox",)), ("extension", ("outbox", "smtp:1"))]
    assert _emailed(inbox) == ["jo@example.org"]


def test_lodge_takes_the_residents_preferred_channel() -> None:
    """``complaints lodge --prefers post`` records the preference on the resident."""
    intake = intake_from_options({}, {
        "resident": "Jo Bloggs", "address": ("2 Test Row",), "email": "jo@example.org",
        "phone": None, "prefers": "post", "representative": None, "group_member": (),
        "channel": "phone", "received": dt.date(2026, 3, 2), "description": "The roof leaks",
        "outcome": (), "adjustment": ()})
    assert intake.parties[0].preferred_channel is POST
