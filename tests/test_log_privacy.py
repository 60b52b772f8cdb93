"""No personal data in logs, metrics or error messages (issue 11 §5).

A case is lodged with one unique string (the *mark*) in every personal field, taken through
its whole lifecycle on the session's Temporal server and then sent bad input that carries
the mark: malformed, undecodable, unknown and oversized signals, updates and queries, and a
refusal from the SMTP server that quotes the resident's address. Everything logged meanwhile
is captured: the engine's own output as it ships (``configure_logging(json=True)`` at DEBUG,
so the Temporal SDK's debug lines are in), every standard-library record as a plain
``logging.Formatter`` in another handler would print it (exceptions included), and
whatever Temporal's core writes to the process's stderr. The mark must appear 0 times;
the same capture must hold lines for the case's reference, so the search could have found
it. The API's 422 problems and the CLI's error lines on bad input are searched the same way.

The engine exports no metrics (no Prometheus endpoint, no SDK metrics exporter), so there
are no metric labels to check. Histories, the server's database file and the fields
Temporal never encrypts are checked in ``tests/test_codec.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import logging
import smtplib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError
from temporalio.api.common.v1 import Payload
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import RawValue
from temporalio.contrib.pydantic import pydantic_data_converter

from activities import build_activities
from complaints.logs import configure_logging
from models.actions import (
    Acknowledge,
    Close,
    CompleteAction,
    ContactDirection,
    Extend,
    PayRemedy,
    RecordContact,
    Respond,
)
from models.case import (
    Channel,
    ComplaintDefinition,
    Decision,
    OutstandingAction,
    Party,
    PartyRole,
    PointFinding,
    Remedy,
    RemedyKind,
)
from models.events import ActionResult, PreviewAnswer
from models.messages import Intake
from tests.api_support import acknowledge_body, running_api
from tests.cases import STAGE1_HANDLER
from tests.conftest import Stack, make_intake
from tests.oidc_provider import free_port
from tests.test_cli_errors import one_error_line, run
from tests.test_workflow import do, started, view
from workflows.complaint import MAX_SIGNAL_BYTES


def _marked_intake(mark: str) -> Intake:
    """An intake with ``mark`` in every personal field, the category included."""
    return make_intake(
        parties=(Party(name=f"Name{mark}", address=(f"Street{mark}", f"Town{mark}"),
                       email=f"mail{mark}@example.invalid", phone=f"0700{mark}"),
                 Party(role=PartyRole.REPRESENTATIVE, name=f"Rep{mark}",
                       email=f"rep{mark}@example.invalid")),
        description=f"Complaint{mark} about damp",
        outcomes_sought=(f"Outcome{mark}",),
        adjustments=({"description": f"Wheelchair{mark}", "disability_disclosed": True},),
        category=f"Category{mark}")


def _definition(mark: str) -> ComplaintDefinition:
    """A complaint definition whose summary, points and outcomes carry ``mark``."""
    return ComplaintDefinition(summary=f"Damp{mark}", points=(f"Point{mark}",),
                               outcomes_sought=(f"Repair{mark}",),
                               responsible_for=(f"Roof{mark}",))


def _response(mark: str, today: dt.date) -> Respond:
    """A stage 1 response whose findings, remedies and action carry ``mark``."""
    return Respond(
        by=STAGE1_HANDLER, decision=Decision.PARTLY_UPHELD,
        findings=(PointFinding(point=f"Point{mark}", finding=f"Finding{mark}",
                               reason=f"Reason{mark}"),),
        remedies=(Remedy(kind=RemedyKind.APOLOGY, description=f"Sorry{mark}"),
                  Remedy(kind=RemedyKind.FINANCIAL, description=f"Carpet{mark}",
                         amount=Decimal("150.00"), due_by=today + dt.timedelta(days=20))),
        outstanding_actions=(OutstandingAction(action_id="A1", description=f"Tiles{mark}",
                                               due_by=today + dt.timedelta(days=40)),))


class _RefusesFirstRecipient:
    """An aiosmtpd handler refusing its first recipient as Postfix does, quoting the address."""

    def __init__(self) -> None:
        self.refused: list[str] = []
        self.accepted: list[str] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any,  # noqa: N802
                          address: str, rcpt_options: list[str]) -> str:
        """Refuse the first recipient with its address in the answer; take the rest."""
        if not self.refused:
            self.refused.append(address)
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        """Accept the message."""
        self.accepted.extend(envelope.rcpt_tos)
        return "250 2.0.0 Accepted"


class _Formatted(logging.Handler):
    """Keep every record as a plain ``logging.Formatter`` prints it (exceptions included)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Format and keep the record."""
        self.lines.append(self.format(record))


@pytest.fixture
def logged(capfd: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    """The engine's logging as shipped (JSON, DEBUG) for one test; all of it, so far."""
    root, transitions = logging.getLogger(), logging.getLogger("transitions")
    saved = (list(root.handlers), root.level, structlog.get_config(), transitions.level)
    configure_logging(json=True, level="DEBUG")
    # Cached loggers would outlive this test's configuration (and break capture_logs).
    structlog.configure(cache_logger_on_first_use=False)
    [shipped] = root.handlers
    assert isinstance(shipped, logging.StreamHandler)
    rendered = io.StringIO()
    shipped.setStream(rendered)  # what the engine writes to stderr, JSON lines
    formatted = _Formatted()  # what a handler added after the engine's would print
    root.addHandler(formatted)
    written: list[str] = []

    def everything() -> str:
        out, err = capfd.readouterr()  # Temporal's core writes to the process's stderr
        written.append(out + err)
        return "\n".join([rendered.getvalue(), *written, *formatted.lines])

    # The test's SMTP server (aiosmtpd) stands in for the landlord's: its debug log of
    # every line it receives is not the engine's.
    server_log = logging.getLogger("mail.log")
    server_log.propagate = False
    try:
        yield everything
    finally:
        server_log.propagate = True
        root.handlers[:], root.level = saved[0], saved[1]
        transitions.setLevel(saved[3])
        structlog.reset_defaults()
        structlog.configure(**saved[2])


async def _refused_total(handle: WorkflowHandle[Any, Any], more_than: int) -> int:
    """Wait until the case has counted more than ``more_than`` refused signals."""
    for _ in range(100):
        total = (await view(handle)).refused_total
        if total > more_than:
            return total
        await asyncio.sleep(0.1)
    raise AssertionError("the signal was never refused")


async def _bad_input(stack: Stack, handle: WorkflowHandle[Any, Any], mark: str) -> None:
    """Send the case malformed, undecodable, unknown and oversized messages carrying ``mark``."""
    # Another client with no payload codec: what an outside program (or `temporal`) sends.
    plain = Client(stack.env.client.service_client, namespace=stack.env.client.namespace,
                   data_converter=pydantic_data_converter)
    outsider = plain.get_workflow_handle(handle.id)
    not_json = RawValue(Payload(metadata={"encoding": b"json/plain"},
                                data=f'{{"by": "x", "reason": "Unclosed{mark}'.encode()))
    refused = (await view(handle)).refused_total
    malformed = {"by": STAGE1_HANDLER, "working_days": f"many{mark}", "reason": f"Why{mark}",
                 "note": f"Note{mark}"}
    for signal in (lambda: handle.signal("extend", malformed),
                   lambda: outsider.signal("extend", not_json),
                   lambda: handle.signal("no_such_action", {"note": f"Note{mark}"}),
                   lambda: handle.signal("extend", {"by": STAGE1_HANDLER, "working_days": 5,
                                                    "reason": mark * (MAX_SIGNAL_BYTES // 8)})):
        await signal()
        refused = await _refused_total(handle, refused)
    for update in (lambda: handle.execute_update("extend", malformed, result_type=ActionResult),
                   lambda: outsider.execute_update("extend", not_json),
                   *(lambda times=times: handle.execute_update(  # over the limit, the type
                       "extend", {"by": STAGE1_HANDLER, "working_days": 5,
                                  "reason": mark * times}, result_type=ActionResult)
                     for times in (1_000, 2_000))):
        with pytest.raises(WorkflowUpdateFailedError):
            await update()
    answer = await handle.query("preview", {"trigger": "extend", "action": malformed},
                                result_type=PreviewAnswer)
    assert answer.refusal is not None and mark not in answer.refusal
    with pytest.raises(WorkflowQueryFailedError):
        await outsider.query("preview", not_json)


async def test_a_whole_case_and_bad_input_log_no_personal_string(
        stack: Stack, logged: Callable[[], str]) -> None:
    """A marked case's lifecycle, bad input and an SMTP refusal: the mark is logged 0 times."""
    mark = uuid.uuid4().hex[:12].upper()
    smtp = _RefusesFirstRecipient()
    port = free_port()
    controller = Controller(smtp, hostname="127.0.0.1", port=port)
    controller.start()
    settings = stack.settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port})
    stack = replace(stack, settings=settings, activities=build_activities(settings))
    try:
        async with stack.worker():
            handle = await stack.lodge(_marked_intake(mark))
            await started(handle)
            await do(handle, Acknowledge(by=STAGE1_HANDLER, handler_id=STAGE1_HANDLER,
                                         definition=_definition(mark)))
            await do(handle, RecordContact(by=STAGE1_HANDLER, direction=ContactDirection.INBOUND,
                                           channel=Channel.PHONE, summary=f"Call{mark}",
                                           with_party=f"Rep{mark}"))
            await do(handle, Extend(by=STAGE1_HANDLER, working_days=5, reason=f"Survey{mark}"))
            today = dt.date.today()
            await do(handle, _response(mark, today))
            await _bad_input(stack, handle, mark)
            await do(handle, CompleteAction(by=STAGE1_HANDLER, action_id="A1",
                                            note=f"Done{mark}"))
            await do(handle, PayRemedy(by=STAGE1_HANDLER, stage=1, remedy=2,
                                       amount=Decimal("150.00"), paid_on=today))
            closed = await do(handle, Close(by=STAGE1_HANDLER))
    finally:
        controller.stop()
    assert closed.state == "closed"
    assert smtp.refused and smtp.refused[0] in smtp.accepted  # refused once, then delivered
    text = logged()
    # The capture holds this case's lines, the SDK's debug lines and the failed send.
    assert f'"reference": "{handle.id}"' in text
    for expected in ("intake_recorded", "signal refused", "Completing activity as failed",
                     "Update raised failure"):
        assert expected in text, expected
    assert text.count(mark) == 0 and text.count(mark.lower()) == 0


def test_an_exception_is_logged_as_where_and_what_never_its_text(
        logged: Callable[[], str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A database error, an SMTP refusal and any other exception: traceback and type, no text."""
    # uvicorn's loggers as `complaints serve` leaves them (log_config=None): an earlier test
    # may have run uvicorn with its own logging config, which stops them propagating.
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        for attribute, value in (("propagate", True), ("disabled", False), ("handlers", []),
                                 ("level", logging.NOTSET)):
            monkeypatch.setattr(uvicorn_logger, attribute, value)
    mark = uuid.uuid4().hex[:12].upper()
    engine = create_engine("sqlite://")
    with engine.connect() as connection:
        connection.execute(text("CREATE TABLE parties (name TEXT UNIQUE)"))
        connection.execute(text("INSERT INTO parties VALUES (:name)"), {"name": f"Name{mark}"})
        with pytest.raises(IntegrityError) as duplicate:
            connection.execute(text("INSERT INTO parties VALUES (:name)"),
                               {"name": f"Name{mark}"})
    assert mark in str(duplicate.value)  # the text would have named the resident
    refused = smtplib.SMTPRecipientsRefused(
        {f"mail{mark}@example.invalid": (550, f"5.1.1 <mail{mark}@example.invalid>".encode())})
    for error in (duplicate.value, refused):
        try:
            raise error
        except (IntegrityError, OSError):
            logging.getLogger("temporalio.activity").warning("Completing activity as failed",
                                                             exc_info=True)
    try:
        raise KeyError(f"Name{mark}")
    except KeyError:
        structlog.get_logger("activities.letters").error("letter_failed", exc_info=True)
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    output = logged()
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert [line["event"] for line in lines] == ["Completing activity as failed"] * 2 + [
        "letter_failed", "Exception in ASGI application"]
    assert all(line["exception"].startswith("Traceback (most recent call last):\n  File ")
               for line in lines)
    assert "sqlalchemy.exc.IntegrityError: sqlite3.IntegrityError SQLITE_CONSTRAINT_UNIQUE;" \
        in lines[0]["exception"]
    assert "smtplib.SMTPRecipientsRefused: recipients refused: 1, SMTP reply 550" \
        in lines[1]["exception"]
    assert lines[2]["exception"].endswith("KeyError: (text withheld: it may quote personal data)")
    assert output.count(mark) == 0


# -- what the API and the CLI answer to bad input ------------------------------------------


async def test_api_and_cli_errors_on_bad_input_quote_no_personal_string(
        stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """422 problems and CLI error lines name the fields at fault, never the values given."""
    mark = uuid.uuid4().hex[:12].upper()
    good = _marked_intake(mark).model_dump(mode="json", exclude={"reference"})
    good["received_on"] = dt.date.today().isoformat()
    party = good["parties"][0]
    bad_intakes = [
        {**good, "parties": [{**party, "name": f"Name{mark}\u202e"}]},  # a bidi override
        {**good, "parties": [{**party, "email": f"mail{mark}\x07"}]},  # a control character
        {**good, "description": f"Complaint{mark}" * 3_000},  # too long
        {**good, "category": f"Category{mark}" * 20},  # too long for a label
        {**good, "parties": [{**party, "phone": [f"0700{mark}"]}]},  # not a string
        {**good, "outcomes_sought": f"Outcome{mark}"},  # not a list
        {**good, "adjustments": [{"description": f"Wheelchair{mark}",
                                  "disability_disclosed": f"yes{mark}"}]},
        {**good, "received_on": f"2026-01-01{mark}"},
    ]
    answers: list[str] = []
    async with running_api(stack) as api:
        for number, body in enumerate(bad_intakes):
            response = await api.http.post("/api/v1/complaints", json=body, headers={
                **api.auth("hdl-1"), "Idempotency-Key": f"bad-{number}"})
            assert response.status_code == 422, response.text
            answers.append(response.text)
        response = await api.http.post(
            "/api/v1/complaints", content=f'{{"description": "Unclosed{mark}',
            headers={**api.auth("hdl-1"), "Idempotency-Key": "bad-json",
                     "content-type": "application/json"})
        assert response.status_code == 422, response.text
        answers.append(response.text)
        reference = await api.lodge()
        bad_acknowledgement = acknowledge_body()
        bad_acknowledgement["definition"] = {**bad_acknowledgement["definition"],
                                             "points": f"Point{mark}"}
        for trigger, body in (("acknowledge", bad_acknowledgement),
                              ("extend", {"working_days": f"five{mark}",
                                          "reason": f"Survey{mark}"}),
                              ("record_contact", {"direction": f"sideways{mark}",
                                                  "channel": "phone",
                                                  "summary": f"Call{mark}\u200b"})):
            response = await api.act(reference, trigger, body, "hdl-1")
            assert response.status_code == 422, response.text
            answers.append(response.text)
    assert all(json.loads(a)["status"] == 422 and json.loads(a)["detail"] for a in answers)

    # The CLI, before it reaches Temporal (which it could not: the address is unreachable).
    capsys.readouterr()  # the worker's lines so far
    monkeypatch.setenv("COMPLAINTS_ENV_FILE", str(tmp_path / "absent.env"))
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:9")
    monkeypatch.delenv("COMPLAINTS_DEBUG", raising=False)
    monkeypatch.delenv("API_URL", raising=False)
    lines = []
    for number, body in enumerate(bad_intakes):
        path = tmp_path / f"intake-{number}.json"
        path.write_text(json.dumps(body), encoding="utf-8")
        lines.append(one_error_line(run(monkeypatch, capsys, "lodge", "--file", str(path))))
    lines.append(one_error_line(run(
        monkeypatch, capsys, "lodge", "--resident", f"Name{mark}\u202e", "--description",
        f"Complaint{mark}", "--email", f"mail{mark}")))
    for trigger, body in (("extend", {"by": STAGE1_HANDLER, "working_days": f"five{mark}",
                                      "reason": f"Survey{mark}"}),
                          ("record_contact", {"by": STAGE1_HANDLER, "direction": "inbound",
                                              "channel": "phone",
                                              "summary": f"Call{mark}\u200b"})):
        lines.append(one_error_line(run(monkeypatch, capsys, "act", "CMP-2026-000001",
                                        trigger, "--json", json.dumps(body))))
    assert not [a for a in answers + lines if mark in a or mark.lower() in a]
