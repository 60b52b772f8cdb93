"""The activities, run in Temporal's ActivityEnvironment against real SQLite, SMTP and HTTP."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import hashlib
import http.server
import json
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiosmtpd.controller import Controller
from sqlmodel import Session, col, select
from structlog.testing import capture_logs
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import complaints.letters as letters_module
from activities import build_activities
from activities.calendar import CalendarActivities, add_calendar_months
from activities.casework import calendar_data
from activities.letter_writing import write_letter
from activities.letters import LetterActivities, outbox_paths
from activities.mail import Mailer, SmtpMailer, message_id_for
from activities.notifications import NotificationActivities
from activities.policy import PolicyActivities
from activities.records import RecordActivities
from complaints.db import make_engine, session_factory, upgrade
from complaints.letters import render_letter
from complaints.policies import load_compliant_policy
from complaints.settings import Settings
from domain.casebook import CaseBook
from domain.deadlines import london_time
from models.actions import Acknowledge, AcknowledgeEscalation, RequestEscalation
from models.case import (
    ActionRecord,
    Adjustment,
    AuditEvent,
    CaseFile,
    Channel,
    ComplaintDefinition,
    Decision,
    ExtensionRecord,
    OutstandingAction,
    Party,
    PartyRole,
    PointFinding,
    Remedy,
    RemedyKind,
    ResponseRecord,
)
from models.events import CaseContext, CaseEvent
from models.letters import (
    LATE_APOLOGY,
    REMEDY_PAYMENT,
    Stage1Acknowledgement,
    Stage1Response,
    Stage2Acknowledgement,
)
from models.messages import (
    AuditBatch,
    CaseSnapshot,
    Deadline,
    DeadlineKind,
    DeadlineStatus,
    Intake,
    LoadPolicyInput,
    NotificationKind,
    NotifyInput,
    OmbudsmanDetailsGiven,
    PlanDeadlineInput,
    RecordIntakeInput,
    SendLetterInput,
)
from models.policy import OmbudsmanDetails, Policy
from models.tables import (
    ActionRow,
    AdjustmentRow,
    AuditRow,
    ComplaintRow,
    DeadlineRow,
    DeliveryRow,
    ExtensionRow,
    LetterRow,
    NotificationRow,
    OmbudsmanDetailsRow,
    PartyRow,
    RemedyPaymentRow,
    RemedyRow,
)

REFERENCE = "CMP-2026-000123"
LETTER_ID = f"{REFERENCE}:stage1_acknowledgement:1"
AT = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
END_OF_DAY = dt.time(23, 59, 59, 999000)

RESIDENT = Party(name="Amira Patel", address=("Flat 4, Mill Court", "Corve Street", "SY8 1AB"),
                 email="amira.patel@example.org", phone="07700 900123")
MEMBER = Party(role=PartyRole.GROUP_MEMBER, name="Tomasz Nowak", address=("Flat 5, Mill Court",),
               email="t.nowak@example.net")
NO_EMAIL = Party(role=PartyRole.GROUP_MEMBER, name="Grace Okafor", address=("Flat 6, Mill Court",))
DESCRIPTION = "The kitchen ceiling at Flat 4 has leaked since August and nobody came."
ADJUSTMENT = "Large print letters; partially sighted"
DEFINITION = ComplaintDefinition(
    summary="You are unhappy that the leak in your kitchen ceiling has not been repaired.",
    points=("The leak reported in August was not repaired.",),
    outcomes_sought=("Repair the ceiling.",),
)
PERSONAL = (RESIDENT.name, MEMBER.name, NO_EMAIL.name, *RESIDENT.address, RESIDENT.email,
            MEMBER.email, RESIDENT.phone, DESCRIPTION, ADJUSTMENT, DEFINITION.summary)


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[Callable[[], Session]]:
    """A session factory on a migrated SQLite database in a temporary folder."""
    url = f"sqlite:///{(tmp_path / 'db' / 'complaints.db').as_posix()}"
    upgrade(url)
    engine = make_engine(url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def env() -> ActivityEnvironment:
    """An activity environment."""
    return ActivityEnvironment()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Inbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.original_content or envelope.content,
                                           policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


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


class _Webhook:
    """A real HTTP server on 127.0.0.1 that records POSTs and answers with ``status``."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.status = 200
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if hook.status < 300:
                    hook.posts.append((dict(self.headers), json.loads(body)))
                self.send_response(hook.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/complaints"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def webhook() -> Iterator[_Webhook]:
    """A running webhook receiver."""
    hook = _Webhook()
    hook.thread.start()
    try:
        yield hook
    finally:
        hook.server.shutdown()
        hook.server.server_close()


# --- builders -------------------------------------------------------------------------


def _policy(name: str = "connexus") -> Policy:
    return load_compliant_policy(name)


def _letter(*recipients: Party, reference: str = REFERENCE) -> Stage1Acknowledgement:
    policy = _policy()
    return Stage1Acknowledgement(
        reference=reference, landlord=policy.landlord, landlord_contact=policy.landlord_contact,
        recipients=recipients or (RESIDENT,), letter_date=dt.date(2026, 11, 23),
        signed_by="Sam Jones, Complaints Officer", ombudsman=policy.ombudsman,
        definition=DEFINITION, received_on=dt.date(2026, 11, 20),
        response_due=dt.date(2026, 12, 7), handler="Sam Jones", adjustments=(ADJUSTMENT,))


def _send_input(*recipients: Party, template_set: str = "connexus") -> SendLetterInput:
    return SendLetterInput(letter_id=LETTER_ID, reference=REFERENCE, stage=1, seq=1,
                           template_set=template_set, letter=_letter(*recipients))


def _intake() -> Intake:
    return Intake(reference=REFERENCE, policy_name="connexus", channel=Channel.PHONE,
                  channel_reference="call-778", received_on=dt.date(2026, 11, 20),
                  issue_occurred_on=dt.date(2026, 8, 3), category="repairs",
                  parties=(RESIDENT, MEMBER), description=DESCRIPTION,
                  outcomes_sought=("Repair the ceiling", "Compensation"),
                  adjustments=(Adjustment(description=ADJUSTMENT, disability_disclosed=True),))


def _plan(policy: Policy, start: dt.date, **length: int) -> PlanDeadlineInput:
    return PlanDeadlineInput(policy=policy, key="stage1_acknowledgement", stage=1,
                             kind=DeadlineKind.STAGE1_ACKNOWLEDGEMENT,
                             label="Stage 1 acknowledgement", provision="6.2", start=start,
                             **length)


def _deadline(key: str, status: DeadlineStatus = DeadlineStatus.PENDING,
              met_at: dt.datetime | None = None) -> Deadline:
    due = dt.date(2026, 11, 27)
    return Deadline(key=key, kind=DeadlineKind.STAGE1_ACKNOWLEDGEMENT, stage=1,
                    label="Stage 1 acknowledgement", provision="6.2",
                    start=dt.date(2026, 11, 20), due=due,
                    ends_at=dt.datetime.combine(due, END_OF_DAY, tzinfo=dt.UTC),
                    escalate_at=dt.datetime(2026, 12, 1, 23, 59, tzinfo=dt.UTC),
                    status=status, met_at=met_at)


def _snapshot(updated_at: dt.datetime, *, state: str = "stage1_responded",
              completed_at: dt.datetime | None = None,
              deadline_status: DeadlineStatus = DeadlineStatus.PENDING) -> CaseSnapshot:
    case = CaseFile(
        reference=REFERENCE, policy_name="connexus", state=state,
        received_on=dt.date(2026, 11, 20), channel=Channel.PHONE, category="repairs",
        stage1_handler="staff-101", stage1_definition=DEFINITION,
        extensions=[ExtensionRecord(stage=1, working_days=5, reason="Awaiting a survey",
                                    good_reason=None, by="staff-101", at=AT)],
        responses=[ResponseRecord(
            stage=1, decision=Decision.PARTLY_UPHELD,
            findings=(PointFinding(point=DEFINITION.points[0], finding="Not repaired",
                                   reason="No job was raised"),),
            remedies=(Remedy(kind=RemedyKind.APOLOGY, description="We apologise"),
                      Remedy(kind=RemedyKind.FINANCIAL, description="Compensation",
                             amount=Decimal("150.50"), due_by=dt.date(2026, 12, 18))),
            by="staff-101", at=AT)],
        actions=[ActionRecord(action=OutstandingAction(action_id="A1",
                                                       description="Repair the ceiling",
                                                       due_by=dt.date(2027, 1, 15),
                                                       owner="repairs-team"),
                              stage=1, completed_at=completed_at)],
    )
    met_at = AT if deadline_status is DeadlineStatus.MET else None
    return CaseSnapshot(
        reference=REFERENCE, landlord="Connexus", policy_name="connexus", state=state,
        stage=1, handler_id="staff-101", next_deadline=dt.datetime(2027, 1, 15, 23, 59,
                                                                   tzinfo=dt.UTC),
        overdue=False, updated_at=updated_at, case=case,
        deadlines=(_deadline("s1-ack", deadline_status, met_at), _deadline("s1-response")))


def _count(sessions: Callable[[], Session], table: type) -> int:
    with sessions() as session:
        return len(session.exec(select(table)).all())


def _no_personal_data(entries: Sequence[Mapping[str, Any]]) -> None:
    dump = repr(entries)
    leaked = [item for item in PERSONAL if item and item in dump]
    assert leaked == []


# --- policy ---------------------------------------------------------------------------


def test_load_policy_returns_a_compliant_policy(env: ActivityEnvironment) -> None:
    """The connexus policy loads with its closure days."""
    policy = env.run(PolicyActivities().load_policy, LoadPolicyInput(name="connexus"))
    assert policy.name == "connexus"
    assert dt.date(2026, 12, 29) in policy.closure_days


def test_load_policy_refuses_connect_2017_non_retryably(env: ActivityEnvironment) -> None:
    """connect-2017 breaks the Code: a non-retryable PolicyRejected naming the provisions."""
    with pytest.raises(ApplicationError) as caught:
        env.run(PolicyActivities().load_policy, LoadPolicyInput(name="connect-2017"))
    assert caught.value.type == "PolicyRejected"
    assert caught.value.non_retryable is True
    assert set(caught.value.details[0]) == {"5.2", "5.3", "1.2"}
    assert "5.2" in caught.value.message


@pytest.mark.parametrize("name", ["no-such-policy", "../../etc/passwd", "Connexus.toml"])
def test_load_policy_unknown_or_path_is_a_policy_error(env: ActivityEnvironment,
                                                       name: str) -> None:
    """A missing policy or anything but a plain name is a non-retryable PolicyError."""
    with pytest.raises(ApplicationError) as caught:
        env.run(PolicyActivities().load_policy, LoadPolicyInput(name=name))
    assert caught.value.type == "PolicyError"
    assert caught.value.non_retryable is True


def test_load_policy_prefers_the_landlord_folder(env: ActivityEnvironment,
                                                 tmp_path: Path) -> None:
    """A policy in the configured folder is used before the shipped one of the same name."""
    shipped = (Path(__file__).parent.parent / "complaints" / "policies" / "connexus.toml")
    (tmp_path / "connexus.toml").write_text(
        shipped.read_text(encoding="utf-8").replace("homes_owned = 11000", "homes_owned = 42"),
        encoding="utf-8")
    policy = env.run(PolicyActivities(tmp_path).load_policy, LoadPolicyInput(name="connexus"))
    assert policy.homes_owned == 42


# --- calendar -------------------------------------------------------------------------


def test_plan_deadline_over_christmas_2026_ignores_closure_days(env: ActivityEnvironment) -> None:
    """Connexus, 5 WD from Mon 21 Dec 2026: 22, 23, 24, 29, 30 Dec, so due Wed 30 Dec."""
    # Not counted: 25 Dec, 28 Dec (Boxing Day observed). Counted: the 29-31 Dec closure,
    # which never lengthens a Code timescale.
    deadline = env.run(CalendarActivities().plan_deadline,
                       _plan(_policy("connexus"), dt.date(2026, 12, 21), working_days=5))
    assert deadline.due == dt.date(2026, 12, 30)
    assert deadline.ends_at == dt.datetime(2026, 12, 30, 23, 59, 59, 999000, tzinfo=dt.UTC)
    # Two working days before 30 Dec: 29 Dec, then back past 28 and 25 Dec to 24 Dec.
    assert deadline.remind_at == dt.datetime(2026, 12, 24, 9, 0, tzinfo=dt.UTC)
    # Two working days after 30 Dec: 31 Dec, (1 Jan), Mon 4 Jan, end of day.
    assert deadline.escalate_at == dt.datetime(2027, 1, 4, 23, 59, 59, 999000, tzinfo=dt.UTC)
    assert deadline.status is DeadlineStatus.PENDING
    assert (deadline.key, deadline.stage, deadline.provision) == ("stage1_acknowledgement", 1,
                                                                 "6.2")


def test_plan_deadline_is_the_same_with_or_without_closure_days(
        env: ActivityEnvironment) -> None:
    """Under code-2024 (no closure) the same 5 WD are due on the same day, 30 Dec."""
    deadline = env.run(CalendarActivities().plan_deadline,
                       _plan(_policy("code-2024"), dt.date(2026, 12, 21), working_days=5))
    assert deadline.due == dt.date(2026, 12, 30)


def test_plan_deadline_across_the_october_2026_clock_change(env: ActivityEnvironment) -> None:
    """Clocks go back on Sun 25 Oct 2026: a deadline ends 22:59 UTC before, 23:59 UTC after."""
    plan = CalendarActivities().plan_deadline
    policy = _policy("connexus")
    in_bst = env.run(plan, _plan(policy, dt.date(2026, 10, 19), working_days=4))
    in_gmt = env.run(plan, _plan(policy, dt.date(2026, 10, 19), working_days=5))
    assert in_bst.due == dt.date(2026, 10, 23)
    assert (in_bst.ends_at.hour, in_bst.ends_at.minute) == (22, 59)
    assert in_gmt.due == dt.date(2026, 10, 26)
    assert (in_gmt.ends_at.hour, in_gmt.ends_at.minute) == (23, 59)
    # The reminder for Fri 23 Oct is 9am BST on Wed 21 Oct, which is 08:00 UTC.
    assert in_bst.remind_at == dt.datetime(2026, 10, 21, 8, 0, tzinfo=dt.UTC)


def test_plan_deadline_calendar_months_clamp_to_month_end(env: ActivityEnvironment) -> None:
    """31 Jan 2027 + 1 calendar month is Sun 28 Feb 2027, kept although it is a weekend."""
    deadline = env.run(CalendarActivities().plan_deadline,
                       _plan(_policy(), dt.date(2027, 1, 31), calendar_months=1))
    assert deadline.due == dt.date(2027, 2, 28)
    assert deadline.ends_at == dt.datetime(2027, 2, 28, 23, 59, 59, 999000, tzinfo=dt.UTC)
    assert add_calendar_months(dt.date(2028, 1, 31), 1) == dt.date(2028, 2, 29)
    assert add_calendar_months(dt.date(2026, 11, 30), 3) == dt.date(2027, 2, 28)


def test_plan_deadline_calendar_days(env: ActivityEnvironment) -> None:
    """21 Dec 2026 + 14 calendar days is 4 Jan 2027, holidays notwithstanding."""
    deadline = env.run(CalendarActivities().plan_deadline,
                       _plan(_policy(), dt.date(2026, 12, 21), calendar_days=14))
    assert deadline.due == dt.date(2027, 1, 4)


def test_plan_deadline_reminder_only_when_useful(env: ActivityEnvironment) -> None:
    """No reminder with a zero lead, nor when the reminder day is not after the start."""
    policy = _policy()
    no_lead = policy.model_copy(update={"limits": policy.limits.model_copy(
        update={"reminder_lead": 0})})
    plan = CalendarActivities().plan_deadline
    assert env.run(plan, _plan(no_lead, dt.date(2026, 11, 20), working_days=5)).remind_at is None
    short = env.run(plan, _plan(policy, dt.date(2026, 11, 20), working_days=2))
    assert short.remind_at is None
    assert short.due == dt.date(2026, 11, 24)


@pytest.mark.parametrize("lengths", [{}, {"working_days": 5, "calendar_days": 5},
                                     {"working_days": -1}])
def test_plan_deadline_needs_exactly_one_length(env: ActivityEnvironment,
                                                lengths: dict[str, int]) -> None:
    """No length, two lengths or a negative length is a non-retryable InvalidDeadline."""
    with pytest.raises(ApplicationError) as caught:
        env.run(CalendarActivities().plan_deadline,
                _plan(_policy(), dt.date(2026, 11, 20), **lengths))
    assert caught.value.type == "InvalidDeadline"
    assert caught.value.non_retryable is True


# --- letters --------------------------------------------------------------------------


def test_send_letter_stores_and_writes_the_outbox(env: ActivityEnvironment,
                                                  sessions: Callable[[], Session],
                                                  tmp_path: Path) -> None:
    """Without a mailer a letter is stored and written to the outbox as .txt and .html."""
    outbox = tmp_path / "outbox"
    receipt = env.run(LetterActivities(sessions, outbox).send_letter, _send_input())
    expected = render_letter(_letter(), "connexus")
    text_path, html_path = outbox_paths(outbox, REFERENCE, LETTER_ID)
    assert text_path == outbox / REFERENCE / f"{REFERENCE}_stage1_acknowledgement_1.txt"
    assert text_path.read_text(encoding="utf-8") == expected.text
    assert html_path.read_text(encoding="utf-8") == expected.html
    assert receipt.delivered_to == ("outbox",)
    assert receipt.sha256 == hashlib.sha256(expected.text.encode()).hexdigest()
    assert receipt.subject == expected.subject
    with sessions() as session:
        row = session.get(LetterRow, LETTER_ID)
        deliveries = session.exec(select(DeliveryRow)).all()
    assert row is not None
    assert (row.kind, row.stage, row.seq, row.sha256) == ("stage1_acknowledgement", 1, 1,
                                                          receipt.sha256)
    assert row.text == expected.text
    assert [(d.channel, d.recipient, d.status) for d in deliveries] == [
        ("outbox", "file", "sent")]


def test_send_letter_emails_every_recipient_once(env: ActivityEnvironment,
                                                 sessions: Callable[[], Session],
                                                 smtp: tuple[_Inbox, SmtpMailer],
                                                 tmp_path: Path) -> None:
    """Two calls send one email per recipient with an address, one letter row, two files."""
    inbox, mailer = smtp
    outbox = tmp_path / "outbox"
    activities = LetterActivities(sessions, outbox, mailer)
    # A line of the letter starts "From " (mbox-style mangling would turn it into ">From ").
    summary = "From August onwards the kitchen ceiling has leaked."
    request = _send_input(RESIDENT, MEMBER, NO_EMAIL).model_copy(update={
        "letter": _letter(RESIDENT, MEMBER, NO_EMAIL).model_copy(update={
            "definition": DEFINITION.model_copy(update={"summary": summary})})})
    first = env.run(activities.send_letter, request)
    second = env.run(activities.send_letter, request)
    assert first == second
    assert first.delivered_to == ("outbox", "smtp:2")
    assert sorted(rcpts[0] for rcpts, _ in inbox.messages) == sorted([str(MEMBER.email),
                                                                      str(RESIDENT.email)])
    assert all(len(rcpts) == 1 for rcpts, _ in inbox.messages)
    assert _count(sessions, LetterRow) == 1
    assert _count(sessions, DeliveryRow) == 3
    assert sorted(p.name for p in (outbox / REFERENCE).iterdir()) == [
        f"{REFERENCE}_stage1_acknowledgement_1.html",  # no .pdf: printed when asked for
        f"{REFERENCE}_stage1_acknowledgement_1.txt"]
    with sessions() as session:
        row = session.get(LetterRow, LETTER_ID)
    assert row is not None
    _, message = inbox.messages[0]
    assert message["Message-ID"] == f"<{REFERENCE}.stage1_acknowledgement.1@complaints>"
    assert message["Subject"] == row.subject
    assert message["From"] == "complaints@connexus.example"
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    # Whole text equal: the "£"/"·" survive and a line starting "From " is not mangled.
    assert "\nFrom " in row.text
    assert plain.get_content().replace("\r\n", "\n") == row.text
    assert html.get_content().replace("\r\n", "\n") == row.html
    assert "Amira Patel" in plain.get_content()
    assert "<html" in html.get_content().lower()


def test_send_letter_retry_after_smtp_failure_skips_delivered(
        env: ActivityEnvironment, sessions: Callable[[], Session],
        smtp: tuple[_Inbox, SmtpMailer], tmp_path: Path) -> None:
    """When the second email fails, the retry sends only that one: no duplicate to the first."""
    inbox, mailer = smtp

    class FailingOnce(Mailer):
        def __init__(self) -> None:
            self.calls = 0

        def send(self, **kwargs: Any) -> None:
            self.calls += 1
            if self.calls == 2:
                raise ConnectionRefusedError("SMTP server unavailable")
            mailer.send(**kwargs)

    activities = LetterActivities(sessions, tmp_path / "outbox", FailingOnce())
    with pytest.raises(ConnectionRefusedError):
        env.run(activities.send_letter, _send_input(RESIDENT, MEMBER))
    assert [rcpts for rcpts, _ in inbox.messages] == [[RESIDENT.email]]
    receipt = env.run(activities.send_letter, _send_input(RESIDENT, MEMBER))
    assert [rcpts for rcpts, _ in inbox.messages] == [[RESIDENT.email], [MEMBER.email]]
    assert receipt.delivered_to == ("outbox", "smtp:2")


def test_send_letter_keeps_what_was_delivered(env: ActivityEnvironment,
                                              sessions: Callable[[], Session],
                                              tmp_path: Path) -> None:
    """A repeat that renders differently (new templates) keeps the letter already sent."""
    activities = LetterActivities(sessions, tmp_path / "outbox")
    first = env.run(activities.send_letter, _send_input(template_set="connexus"))
    second = env.run(activities.send_letter, _send_input(template_set="default"))
    default_sha = hashlib.sha256(render_letter(_letter(), "default").text.encode()).hexdigest()
    assert default_sha != first.sha256
    assert second.sha256 == first.sha256


def test_send_letter_falls_back_to_the_default_templates(env: ActivityEnvironment,
                                                         sessions: Callable[[], Session],
                                                         tmp_path: Path) -> None:
    """A template set with no folder renders with the default set."""
    receipt = env.run(LetterActivities(sessions, tmp_path / "outbox").send_letter,
                      _send_input(template_set="no-such-landlord"))
    expected = render_letter(_letter(), "default")
    assert receipt.sha256 == hashlib.sha256(expected.text.encode()).hexdigest()


def test_send_letter_refuses_a_letter_for_another_complaint(env: ActivityEnvironment,
                                                            sessions: Callable[[], Session],
                                                            tmp_path: Path) -> None:
    """A letter whose reference is not the input's is a non-retryable LetterMismatch."""
    bad = SendLetterInput(letter_id=LETTER_ID, reference=REFERENCE, stage=1, seq=1,
                          template_set="default",
                          letter=_letter(RESIDENT, reference="CMP-2026-000999"))
    with pytest.raises(ApplicationError) as caught:
        env.run(LetterActivities(sessions, tmp_path / "outbox").send_letter, bad)
    assert caught.value.type == "LetterMismatch"
    assert caught.value.non_retryable is True
    assert _count(sessions, LetterRow) == 0


def test_send_letter_logs_no_personal_data(env: ActivityEnvironment,
                                           sessions: Callable[[], Session],
                                           smtp: tuple[_Inbox, SmtpMailer],
                                           tmp_path: Path) -> None:
    """The letter activity logs under the reference without names, addresses or text."""
    _, mailer = smtp
    activities = LetterActivities(sessions, tmp_path / "outbox", mailer)
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as entries:
        env.run(activities.send_letter, _send_input(RESIDENT, MEMBER))
    assert {e["event"] for e in entries} >= {"letter_stored", "letter_sent", "letter_emailed"}
    assert all(e.get("reference") == REFERENCE for e in entries)
    _no_personal_data(entries)


def _broken_connexus(tmp_path: Path) -> Path:
    """A templates folder whose connexus acknowledgement drops the response date and more."""
    root = tmp_path / "templates"
    (root / "connexus").mkdir(parents=True)
    (root / "default").symlink_to(letters_module.TEMPLATES_DIR / "default")
    for suffix in ("txt", "html"):
        (root / "connexus" / f"stage1_acknowledgement.{suffix}.j2").write_text(
            f'{{% extends "_layout.{suffix}.j2" %}}\n{{% block body %}}\nWe have your '
            f'complaint.\n{{% include "_ombudsman.{suffix}.j2" %}}\n{{% endblock %}}\n')
    return root


def test_send_letter_refuses_an_incomplete_letter(env: ActivityEnvironment,
                                                  sessions: Callable[[], Session],
                                                  tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A landlord override missing Code elements: nothing stored or written, labels only."""
    monkeypatch.setattr(letters_module, "TEMPLATES_DIR", _broken_connexus(tmp_path))
    outbox = tmp_path / "outbox"
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as entries, \
            pytest.raises(ApplicationError) as caught:
        env.run(LetterActivities(sessions, outbox).send_letter, _send_input())
    assert caught.value.type == "LetterIncomplete"
    assert caught.value.non_retryable is True
    message = caught.value.message
    assert message.startswith("stage1_acknowledgement letter from template set 'connexus' "
                              "lacks ")
    missing = message.split("from text and HTML: ")[1].split(", ")
    assert {"6.3 response due", "5.6 summary", "5.6 clarification",
            "5.10 agreed adjustment 1"} <= set(missing)
    assert "only:" not in message
    assert "recipient 1 name" not in message  # the layout still prints the header
    assert "\n" not in message  # the workflow passes on its first line
    for value in (*PERSONAL, "Monday 7 December 2026", "Sam Jones"):
        assert value is not None  # PERSONAL's emails and phone are optional fields, set here
        assert value not in message
    assert _count(sessions, LetterRow) == 0
    assert _count(sessions, DeliveryRow) == 0
    assert not outbox.exists()
    assert [e["event"] for e in entries if e["log_level"] == "error"] == ["letter_incomplete"]
    _no_personal_data(entries)


def test_message_ids_are_valid_and_deterministic() -> None:
    """Letter ids with ':' become valid Message-IDs, the same every time."""
    assert message_id_for(LETTER_ID) == f"<{REFERENCE}.stage1_acknowledgement.1@complaints>"
    assert message_id_for("a::b c") == "<a.b.c@complaints>"


# --- notifications --------------------------------------------------------------------


def _notify_input() -> NotifyInput:
    return NotifyInput(notification_id=f"{REFERENCE}:reminder:s1-ack", reference=REFERENCE,
                       kind=NotificationKind.REMINDER, recipient_role="handler",
                       recipient_id="staff-101", deadline_key="s1-ack",
                       due=dt.date(2026, 11, 27),
                       message="Stage 1 acknowledgement due Friday 27 November 2026")


def test_notify_is_sent_once(env: ActivityEnvironment, sessions: Callable[[], Session],
                             smtp: tuple[_Inbox, SmtpMailer], webhook: _Webhook) -> None:
    """Two calls make one row, one webhook POST and one email to the member of staff."""
    inbox, mailer = smtp
    activities = NotificationActivities(sessions, mailer, webhook.url, "connexus.example")
    env.run(activities.notify, _notify_input())
    env.run(activities.notify, _notify_input())
    assert _count(sessions, NotificationRow) == 1
    assert len(webhook.posts) == 1
    headers, payload = webhook.posts[0]
    assert headers["Idempotency-Key"] == f"{REFERENCE}:reminder:s1-ack"
    assert payload == {"notification_id": f"{REFERENCE}:reminder:s1-ack",
                       "reference": REFERENCE, "kind": "reminder",
                       "recipient_role": "handler", "recipient_id": "staff-101",
                       "deadline_key": "s1-ack", "due": "2026-11-27",
                       "message": "Stage 1 acknowledgement due Friday 27 November 2026"}
    assert [rcpts for rcpts, _ in inbox.messages] == [["staff-101@connexus.example"]]
    message = inbox.messages[0][1]
    assert message["Message-ID"] == f"<{REFERENCE}.reminder.s1-ack@complaints>"
    assert REFERENCE in message["Subject"]
    assert "27 November 2026" in message.get_content()


def test_notify_failed_webhook_records_nothing_and_retries(
        env: ActivityEnvironment, sessions: Callable[[], Session], webhook: _Webhook) -> None:
    """A 500 from the webhook raises a retryable error, records nothing; the retry succeeds."""
    activities = NotificationActivities(sessions, None, webhook.url)
    webhook.status = 500
    with pytest.raises(OSError):
        env.run(activities.notify, _notify_input())
    assert _count(sessions, NotificationRow) == 0
    webhook.status = 204
    env.run(activities.notify, _notify_input())
    assert _count(sessions, NotificationRow) == 1
    assert len(webhook.posts) == 1


def test_notify_logs_a_structured_event(env: ActivityEnvironment,
                                        sessions: Callable[[], Session]) -> None:
    """With no channel configured the notification is still logged and recorded."""
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as entries:
        env.run(NotificationActivities(sessions).notify, _notify_input())
    [event] = [e for e in entries if e["event"] == "staff_notified"]
    assert event["kind"] == "reminder"
    assert event["deadline_key"] == "s1-ack"
    assert event["recipient_role"] == "handler"
    assert event["reference"] == REFERENCE
    with sessions() as session:
        row = session.get(NotificationRow, f"{REFERENCE}:reminder:s1-ack")
    assert row is not None
    assert row.due == dt.date(2026, 11, 27)


# --- records --------------------------------------------------------------------------


def test_record_intake_stores_once(env: ActivityEnvironment,
                                   sessions: Callable[[], Session]) -> None:
    """The complaint, its parties and adjustments are stored once, however often called."""
    records = RecordActivities(sessions)
    env.run(records.record_intake, RecordIntakeInput(intake=_intake(), landlord="Connexus"))
    env.run(records.record_intake, RecordIntakeInput(intake=_intake(), landlord="Connexus"))
    with sessions() as session:
        complaint = session.get(ComplaintRow, REFERENCE)
        parties = session.exec(select(PartyRow).order_by(col(PartyRow.position))).all()
        adjustments = session.exec(select(AdjustmentRow)).all()
    assert complaint is not None
    assert (complaint.landlord, complaint.channel, complaint.state, complaint.stage) == (
        "Connexus", "phone", "received", 0)
    assert complaint.description == DESCRIPTION
    assert complaint.issue_occurred_on == dt.date(2026, 8, 3)
    assert complaint.outcomes_sought == "Repair the ceiling\nCompensation"
    assert [(p.position, p.role, p.name, p.email) for p in parties] == [
        (1, "resident", RESIDENT.name, RESIDENT.email),
        (2, "group_member", MEMBER.name, MEMBER.email)]
    assert parties[0].address == "Flat 4, Mill Court\nCorve Street\nSY8 1AB"
    assert [(a.description, a.disability_disclosed) for a in adjustments] == [(ADJUSTMENT, True)]


def test_record_intake_logs_no_personal_data(env: ActivityEnvironment,
                                             sessions: Callable[[], Session]) -> None:
    """The intake log names the reference and counts, never the people or the complaint."""
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as entries:
        env.run(RecordActivities(sessions).record_intake,
                RecordIntakeInput(intake=_intake(), landlord="Connexus"))
    [event] = [e for e in entries if e["event"] == "intake_recorded"]
    assert event["reference"] == REFERENCE
    assert event["parties"] == 2
    _no_personal_data(entries)


def test_record_snapshot_upserts_the_read_model(env: ActivityEnvironment,
                                                sessions: Callable[[], Session]) -> None:
    """A snapshot fills deadlines, remedies, actions and extensions; a later one updates them."""
    records = RecordActivities(sessions)
    env.run(records.record_intake, RecordIntakeInput(intake=_intake(), landlord="Connexus"))
    env.run(records.record_snapshot, _snapshot(AT))
    done = AT + dt.timedelta(days=30)
    env.run(records.record_snapshot, _snapshot(AT + dt.timedelta(days=31), state="closed",
                                               completed_at=done,
                                               deadline_status=DeadlineStatus.MET))
    with sessions() as session:
        complaint = session.get(ComplaintRow, REFERENCE)
        deadlines = {d.key: d for d in session.exec(select(DeadlineRow))}
        remedies = session.exec(select(RemedyRow).order_by(col(RemedyRow.position))).all()
        actions = session.exec(select(ActionRow)).all()
        extensions = session.exec(select(ExtensionRow)).all()
    assert complaint is not None
    assert (complaint.state, complaint.stage, complaint.handler_id) == ("closed", 1, "staff-101")
    assert complaint.updated_at == AT + dt.timedelta(days=31)
    assert set(deadlines) == {"s1-ack", "s1-response"}
    assert (deadlines["s1-ack"].status, deadlines["s1-ack"].met_at) == ("met", AT)
    assert deadlines["s1-response"].status == "pending"
    assert [(r.stage, r.position, r.kind, r.amount_pence) for r in remedies] == [
        (1, 1, "apology", None), (1, 2, "financial", 15050)]
    assert [(a.action_id, a.owner, a.completed_at) for a in actions] == [
        ("A1", "repairs-team", done)]
    assert [(e.extension_seq, e.working_days, e.reason) for e in extensions] == [
        (1, 5, "Awaiting a survey")]


def test_record_snapshot_ignores_an_older_snapshot(env: ActivityEnvironment,
                                                   sessions: Callable[[], Session]) -> None:
    """A snapshot older than the one applied does not roll the read model back."""
    records = RecordActivities(sessions)
    env.run(records.record_intake, RecordIntakeInput(intake=_intake(), landlord="Connexus"))
    env.run(records.record_snapshot, _snapshot(AT + dt.timedelta(hours=1), state="closed",
                                               deadline_status=DeadlineStatus.MET))
    env.run(records.record_snapshot, _snapshot(AT, state="stage1_responded"))
    with sessions() as session:
        complaint = session.get(ComplaintRow, REFERENCE)
        deadline = session.exec(select(DeadlineRow).where(DeadlineRow.key == "s1-ack")).one()
    assert complaint is not None
    assert complaint.state == "closed"
    assert deadline.status == "met"


def test_record_snapshot_before_intake_is_retryable(env: ActivityEnvironment,
                                                    sessions: Callable[[], Session]) -> None:
    """A snapshot for a complaint not yet stored fails so that Temporal retries it."""
    with pytest.raises(ApplicationError) as caught:
        env.run(RecordActivities(sessions).record_snapshot, _snapshot(AT))
    assert caught.value.type == "IntakeNotRecorded"
    assert caught.value.non_retryable is False
    assert _count(sessions, DeadlineRow) == 0


def test_record_audit_is_idempotent(env: ActivityEnvironment,
                                    sessions: Callable[[], Session]) -> None:
    """Repeated and overlapping batches insert each (reference, seq) once."""
    records = RecordActivities(sessions)

    def event(seq: int) -> AuditEvent:
        return AuditEvent(seq=seq, at=AT + dt.timedelta(minutes=seq), action="acknowledge",
                          by="staff-101", from_state="received", to_state="stage1_open",
                          accepted=seq != 2, detail=f"event {seq}")

    batch = AuditBatch(reference=REFERENCE, events=(event(1), event(2)))
    assert env.run(records.record_audit, batch) == 2
    assert env.run(records.record_audit, batch) == 0
    assert env.run(records.record_audit,
                   AuditBatch(reference=REFERENCE, events=(event(2), event(3)))) == 1
    with sessions() as session:
        rows = session.exec(select(AuditRow).order_by(col(AuditRow.seq))).all()
    assert [(r.seq, r.accepted, r.detail) for r in rows] == [
        (1, True, "event 1"), (2, False, "event 2"), (3, True, "event 3")]
    assert rows[0].at == AT + dt.timedelta(minutes=1)


def test_record_audit_writes_each_accepted_payment_once(
        env: ActivityEnvironment, sessions: Callable[[], Session]) -> None:
    """An accepted pay_remedy entry adds its payment row, once; a refused one adds none."""
    records = RecordActivities(sessions)
    detail = json.dumps({"trigger": "pay_remedy", "by": "mgr-7", "stage": 1, "remedy": 2,
                         "paid_on": "2026-12-21", "amount": "150.50", "method": None})

    def event(seq: int, accepted: bool) -> AuditEvent:
        return AuditEvent(seq=seq, at=AT + dt.timedelta(minutes=seq), action="pay_remedy",
                          by="mgr-7", from_state="closed", to_state="closed",
                          accepted=accepted, detail=detail)

    batch = AuditBatch(reference=REFERENCE, events=(event(1, True), event(2, False)))
    assert env.run(records.record_audit, batch) == 2
    assert env.run(records.record_audit, batch) == 0
    with sessions() as session:
        rows = session.exec(select(RemedyPaymentRow)).all()
    assert [(r.reference, r.seq, r.stage, r.position, r.paid_on, r.amount_pence)
            for r in rows] == [(REFERENCE, 1, 1, 2, dt.date(2026, 12, 21), 15_050)]


def test_record_ombudsman_details_once_and_as_given(env: ActivityEnvironment,
                                                    sessions: Callable[[], Session]) -> None:
    """The Ombudsman's details given with an extension are recorded once, field by field."""
    details = OmbudsmanDetails(email=None, email_new_cases_until=None)
    given = OmbudsmanDetailsGiven(record_id=f"{REFERENCE}:ombudsman:1", reference=REFERENCE,
                                  stage=1, extension_seq=1, letter_id=f"{REFERENCE}:extension:1",
                                  given_to=(RESIDENT.name, MEMBER.name), given_at=AT,
                                  details=details)
    records = RecordActivities(sessions)
    env.run(records.record_ombudsman_details, given)
    env.run(records.record_ombudsman_details, given)
    with sessions() as session:
        rows = session.exec(select(OmbudsmanDetailsRow)).all()
    assert len(rows) == 1
    row = rows[0]
    assert (row.name, row.address, row.phone, row.online_form) == (
        details.name, details.address, details.phone, details.online_form)
    assert row.email is None
    assert row.given_to == f"{RESIDENT.name}\n{MEMBER.name}"
    assert row.given_at == AT


# --- wiring ---------------------------------------------------------------------------


def test_build_activities_wires_every_activity(tmp_path: Path) -> None:
    """build_activities migrates the database and returns both workflow types' activities."""
    settings = Settings(data_dir=tmp_path / "data", database_url="", outbox_dir=None,
                        smtp_host=None, webhook_url=None, _env_file=None)  # type: ignore[call-arg]
    activities = build_activities(settings)
    names = sorted(getattr(a, "__temporal_activity_definition").name for a in activities)
    assert names == sorted(["open_case", "load_calendar", "record_case_event",
                            "load_policy", "plan_deadline", "send_letter", "notify",
                            "record_intake", "record_snapshot", "record_audit",
                            "record_ombudsman_details", "erase_expired"])
    assert (tmp_path / "data" / "complaints.db").is_file()


def test_mailer_from_settings() -> None:
    """SMTP settings give an SmtpMailer; no SMTP host gives no mailer."""
    configured = Mailer.from_settings(Settings(smtp_host="mail.example", smtp_port=2525,
                                               smtp_starttls=True, _env_file=None))  # type: ignore[call-arg]
    assert isinstance(configured, SmtpMailer)
    assert (configured.host, configured.port, configured.starttls) == ("mail.example", 2525,
                                                                      True)
    assert Mailer.from_settings(Settings(smtp_host=None, _env_file=None)) is None  # type: ignore[call-arg]


# --- letters written from the record (activities.letter_writing.write_letter) ---------------------

RECEIVED = dt.date(2026, 3, 2)  # a Monday; Connexus acknowledges in 5 working days: 9 March
STAGE1 = "staff-101"
STAGE2 = "staff-202"


def _book(received: dt.date = RECEIVED) -> tuple[CaseBook, Any, Policy]:
    """A Connexus case opened at 10:00 on the day it was received, with its clock."""
    from tests.cases import Clock
    from tests.conftest import make_intake

    policy = _policy()
    clock = Clock(london_time(received, dt.time(10)))
    book = CaseBook(make_intake(received), None, clock)
    book.opened(CaseContext(policy=policy, calendar=calendar_data(policy, 2025, 2032)))
    return book, clock, policy


def _accept(book: CaseBook, action: Any) -> CaseEvent:
    assert book.refusal(action) is None
    book.accept(action)
    return book.queue[-1]


def _written(book: CaseBook, event: CaseEvent, policy: Policy,
             adjustments: tuple[str, ...] = (ADJUSTMENT,)) -> Any:
    """The event's one letter as the recording activity writes it."""
    [spec] = event.letters
    return write_letter(spec, event, book.case, policy, (RESIDENT,), adjustments, DESCRIPTION)


def _acknowledge(book: CaseBook) -> CaseEvent:
    from tests.cases import DEFINITION as CASE_DEFINITION

    return _accept(book, Acknowledge(by=STAGE1, handler_id=STAGE1,
                                     definition=CASE_DEFINITION))


@pytest.mark.parametrize(("received", "acknowledged_on", "late_by"), [
    (RECEIVED, dt.date(2026, 3, 9), 0),    # the due day (Monday 9 March): on time
    (RECEIVED, dt.date(2026, 3, 12), 3),   # Tuesday 10, Wednesday 11, Thursday 12
    (RECEIVED, dt.date(2026, 3, 14), 4),   # a Saturday adds no working day to Friday's 4
    # Received Friday 6 March, due Friday 13 March: sent on the Saturday, a day late.
    (dt.date(2026, 3, 6), dt.date(2026, 3, 14), 1),
])
def test_stage1_acknowledgement_late_by_counts_working_days(
        received: dt.date, acknowledged_on: dt.date, late_by: int) -> None:
    """The acknowledgement says how many working days after its due date it went out."""
    book, clock, policy = _book(received)
    clock.at = london_time(acknowledged_on, dt.time(10))
    event = _acknowledge(book)
    letter = _written(book, event, policy)
    assert isinstance(letter, Stage1Acknowledgement)
    assert letter.late_by_working_days == late_by
    # Without the met deadline in the event, the policy's limit from receipt gives the same.
    again = _written(book, event.model_copy(update={"deadlines": ()}), policy)
    assert again.late_by_working_days == late_by
    text = render_letter(letter, "connexus").text
    assert (LATE_APOLOGY in text) is (late_by > 0)


def test_stage2_acknowledgement_late_by_counts_from_the_request() -> None:
    """A stage 2 acknowledgement sent after its due date apologises, counted in working days."""
    from tests.cases import DEFINITION as CASE_DEFINITION
    from tests.cases import respond_to, without_money

    book, clock, policy = _book()
    _acknowledge(book)
    clock.at = london_time(dt.date(2026, 3, 16), dt.time(10))
    _accept(book, without_money(respond_to(book.case, STAGE1)))
    _accept(book, RequestEscalation(by=STAGE1, requested_on=dt.date(2026, 3, 16)))
    clock.at = london_time(dt.date(2026, 3, 30), dt.time(10))  # due 23 March: 5 late
    event = _accept(book, AcknowledgeEscalation(by=STAGE2, handler_id=STAGE2,
                                                definition=CASE_DEFINITION))
    letter = _written(book, event, policy, adjustments=())
    assert isinstance(letter, Stage2Acknowledgement)
    assert letter.late_by_working_days == 5
    assert letter.large_print is False
    text = render_letter(letter, "connexus").text
    assert f"{LATE_APOLOGY} We should have sent it 5 working days earlier." in text


def test_stage1_response_gives_the_last_day_to_escalate() -> None:
    """With no actions outstanding the window runs from the letter: its last day is printed."""
    from tests.cases import respond_to, without_money

    book, clock, policy = _book()
    _acknowledge(book)
    clock.at = london_time(dt.date(2026, 3, 16), dt.time(10))
    event = _accept(book, without_money(respond_to(book.case, STAGE1)))
    window = next(d for d in event.deadlines if d.kind is DeadlineKind.ESCALATION_WINDOW)
    letter = _written(book, event, policy)
    assert isinstance(letter, Stage1Response)
    assert letter.escalation_deadline == window.due == dt.date(2026, 4, 16)
    again = _written(book, event.model_copy(update={"deadlines": ()}), policy)
    assert again.escalation_deadline == dt.date(2026, 4, 16)
    text = render_letter(letter, "connexus").text
    assert ("Please ask within 1 calendar month of the date of this letter, by Thursday "
            "16 April 2026 at the latest.") in text


def test_stage1_response_with_actions_keeps_the_window_in_words() -> None:
    """A Connexus window waiting on actions has no date yet; the money says how it is paid."""
    from tests.cases import respond_to

    book, clock, policy = _book()
    _acknowledge(book)
    clock.at = london_time(dt.date(2026, 3, 16), dt.time(10))
    event = _accept(book, respond_to(book.case, STAGE1))
    letter = _written(book, event, policy)
    assert isinstance(letter, Stage1Response)
    assert letter.escalation_deadline is None
    text = " ".join(render_letter(letter, "connexus").text.split())
    assert "Please ask within 1 calendar month after any actions are completed." in text
    assert ("Amount: £150.00. We will pay it by Friday 18 December 2026. "
            f"{REMEDY_PAYMENT}") in text


@pytest.mark.parametrize(("adjustments", "large"), [
    ((ADJUSTMENT,), True),
    (("Please send LARGE-PRINT copies",), True),
    (("Phone calls rather than letters", "Large  print"), True),
    (("Phone calls rather than letters",), False),
    ((), False),
])
def test_large_print_follows_the_agreed_adjustments(adjustments: tuple[str, ...],
                                                    large: bool) -> None:
    """An agreed adjustment mentioning large print makes the letter large print."""
    book, _, policy = _book()
    letter = _written(book, _acknowledge(book), policy, adjustments=adjustments)
    assert letter.large_print is large
    assert ('class="large-print"' in render_letter(letter, "connexus").html) is large
