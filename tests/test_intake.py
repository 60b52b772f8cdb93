"""Intake validation: malformed or hostile complaints are refused field by field, never crash.

Two layers are tested. Where a complaint enters the system (``Intake.model_validate``,
``complaints lodge``) the lodging rules refuse it with a message naming the field, and
nothing is created. Inside the workflow, which has no wall clock and must never fail, an
impossible receipt date is corrected against the case's own clock and an out-of-time
complaint is flagged for a manager's decision (Code 2.3), never declined by itself.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlmodel import select
from temporalio.client import WorkflowExecutionStatus

from activities import build_activities
from complaints.policies import POLICY_DIR
from models.actions import Acknowledge
from models.events import CaseInput
from models.messages import ComplaintInput, Intake, RecordIntakeInput
from models.tables import ComplaintRow, LetterRow, NotificationRow
from tests.cases import DEFINITION, STAGE1_HANDLER
from tests.conftest import Stack, make_intake
from tests.test_workflow import do, started, task_failures, view
from workflows.complaint import ComplaintWorkflow, london_date

TODAY = dt.date(2026, 11, 23)
COMPLAINTS = Path(sys.executable).parent / "complaints"


def intake_data(**overrides: Any) -> dict[str, Any]:
    """A valid intake as JSON-like data (what an API or a file would send)."""
    data: dict[str, Any] = {
        "reference": "CMP-2026-000321", "policy_name": "connexus", "channel": "email",
        "received_on": "2026-11-20", "issue_occurred_on": "2026-10-01",
        "parties": [{"name": "Jo Bloggs", "address": ["2 Test Row", "Ludlow"]}],
        "description": "The roof has leaked into the bedroom since August.",
        "outcomes_sought": ["Fix the roof"],
    }
    data.update(overrides)
    return data


def refused_fields(data: Any, today: dt.date = TODAY) -> set[str]:
    """Validate ``data`` as lodged on ``today``; return the top-level fields refused."""
    with pytest.raises(ValidationError) as caught:
        Intake.model_validate(data, context={"today": today})
    return {str(e["loc"][0]) if e["loc"] else "intake" for e in caught.value.errors()}


def test_a_valid_intake_is_accepted() -> None:
    """The baseline intake passes the lodging rules (so each refusal below is the change)."""
    intake = Intake.model_validate(intake_data(), context={"today": TODAY})
    assert intake.received_on == dt.date(2026, 11, 20)
    assert intake.parties[0].address == ("2 Test Row", "Ludlow")


def _without(field: str) -> dict[str, Any]:
    data = intake_data()
    del data[field]
    return data


PARTY = {"name": "Member"}

MALFORMED: list[tuple[str, Any, str]] = [
    ("missing parties", _without("parties"), "parties"),
    ("missing received date", _without("received_on"), "received_on"),
    ("missing description", _without("description"), "description"),
    ("missing channel", _without("channel"), "channel"),
    ("impossible date", intake_data(received_on="2026-02-30"), "received_on"),
    ("UK-style date", intake_data(received_on="23/11/2026"), "received_on"),
    ("future receipt", intake_data(received_on="2026-11-24"), "received_on"),
    ("receipt long ago", intake_data(received_on="1999-12-31",
                                     issue_occurred_on=None), "received_on"),
    ("timestamp as date", intake_data(received_on=86_400, issue_occurred_on=None),
     "received_on"),
    ("issue after receipt", intake_data(issue_occurred_on="2026-11-21"), "issue_occurred_on"),
    ("issue centuries ago", intake_data(issue_occurred_on="1850-01-01"), "issue_occurred_on"),
    ("oversized description", intake_data(description="x" * 20_001), "description"),
    ("blank description", intake_data(description="   "), "description"),
    ("NUL in description", intake_data(description="leak\x00 here"), "description"),
    ("escape in a name", intake_data(parties=[{"name": "Jo\x1b[31m"}]), "parties"),
    ("C1 control in description", intake_data(description="leak\x85here"), "description"),
    ("bidi override in a name", intake_data(parties=[{"name": "Jo \u202eevil"}]), "parties"),
    ("BOM in an outcome", intake_data(outcomes_sought=["\ufeffFix it"]), "outcomes_sought"),
    ("parties as text", intake_data(parties="Jo Bloggs"), "parties"),
    ("no parties", intake_data(parties=[]), "parties"),
    ("too many parties", intake_data(parties=[PARTY] * 51), "parties"),
    ("too many outcomes", intake_data(outcomes_sought=["Fix it"] * 21), "outcomes_sought"),
    ("too many adjustments", intake_data(adjustments=[{"description": "Large print"}] * 21),
     "adjustments"),
    ("address too long", intake_data(parties=[{"name": "Jo", "address": ["l"] * 11}]),
     "parties"),
    ("unknown channel", intake_data(channel="carrier-pigeon"), "channel"),
    ("policy as a path", intake_data(policy_name="../../etc/passwd.toml"), "policy_name"),
    ("bad reference", intake_data(reference="Jo Bloggs 42"), "reference"),
    ("unknown field", intake_data(national_insurance="QQ123456C"), "national_insurance"),
    ("too large overall", intake_data(outcomes_sought=["y" * 19_000] * 12), "intake"),
]


@pytest.mark.parametrize(("data", "field"), [(d, f) for _, d, f in MALFORMED],
                         ids=[name for name, _, _ in MALFORMED])
def test_malformed_intake_is_refused_naming_the_field(data: Any, field: str) -> None:
    """Each malformed or hostile intake is refused with an error located at its field."""
    assert field in refused_fields(data)


def test_every_error_of_a_bad_intake_is_reported_at_once() -> None:
    """Several faults give several field-level errors, not just the first."""
    data = intake_data(received_on="2027-01-01", channel="fax", description="",
                       parties=[PARTY] * 60)
    assert refused_fields(data) >= {"received_on", "channel", "description", "parties"}


def test_future_receipt_is_relative_to_the_day_it_is_lodged() -> None:
    """A receipt date is refused only while it is after "today" in London."""
    data = intake_data(received_on="2026-11-24", issue_occurred_on=None)
    assert refused_fields(data, today=dt.date(2026, 11, 23)) == {"received_on"}
    later = Intake.model_validate(data, context={"today": dt.date(2026, 11, 24)})
    assert later.received_on == dt.date(2026, 11, 24)


def test_wall_clock_is_used_when_no_today_is_given() -> None:
    """Without a context the lodging rules use today's London date from the wall clock."""
    tomorrow = london_date(dt.datetime.now(dt.UTC)) + timedelta(days=1)
    with pytest.raises(ValidationError, match="in the future"):
        Intake.model_validate(intake_data(received_on=tomorrow.isoformat(),
                                          issue_occurred_on=None))


def test_accepted_intakes_are_not_rechecked_inside_messages() -> None:
    """A workflow input or activity input carrying an intake skips the lodging rules.

    A running case decodes its input again on every replay: a lodging rule added later
    (or the passing of time) must never make an accepted case undecodable.
    """
    data = intake_data(received_on="2031-01-01", outcomes_sought=["Fix it"] * 30)
    assert refused_fields(data) == {"received_on", "outcomes_sought"}
    carried = ComplaintInput.model_validate({"intake": data})
    assert carried.intake.received_on == dt.date(2031, 1, 1)
    recorded = RecordIntakeInput.model_validate({"intake": data, "landlord": "Connexus"})
    assert len(recorded.intake.outcomes_sought) == 30
    with pytest.raises(ValidationError, match="channel"):
        ComplaintInput.model_validate({"intake": {**data, "channel": "fax"}})


# --- through the workflow: started without the lodging rules (an integration) -----------


async def notifications(stack: Stack, reference: str, kind: str,
                        expect: int = 1) -> list[NotificationRow]:
    """The case's notifications of ``kind``, waiting briefly for ``expect`` of them."""
    rows: list[NotificationRow] = []
    for _ in range(50):
        with stack.session() as session:
            rows = list(session.exec(select(NotificationRow).where(
                NotificationRow.reference == reference, NotificationRow.kind == kind)).all())
        if len(rows) >= expect:
            break
        await asyncio.sleep(0.1)
    return rows


def raw_intake(**overrides: Any) -> Intake:
    """An intake built the way an integration might, skipping the lodging rules."""
    data = make_intake().model_dump(mode="json")
    data.update(overrides)
    return Intake.model_validate(data, context={"lodging": False})


async def test_future_receipt_started_directly_is_corrected_not_crashed(stack: Stack) -> None:
    """A case started with a future receipt date is timed from its first day; manager told."""
    async with stack.worker():
        lodged = london_date(dt.datetime.now(dt.UTC)) + timedelta(days=10)
        intake = raw_intake(received_on=lodged.isoformat(), issue_occurred_on=None)
        handle = await stack.env.client.start_workflow(
            ComplaintWorkflow.run, CaseInput(intake=intake), id=intake.reference,
            task_queue=stack.task_queue)
        current = await started(handle)
        note = current.case.audit[0]
        today = london_date(note.at)  # the case's own first day
        assert note.action == "intake_corrected" and note.by == "system"
        assert current.case.received_on == today < lodged
        assert current.case.received_on_as_lodged == lodged
        ack = next(d for d in current.deadlines if d.kind.value == "stage1_acknowledgement")
        assert ack.start == today
        current = await do(handle, Acknowledge(by=STAGE1_HANDLER, handler_id=STAGE1_HANDLER,
                                               definition=DEFINITION))
        assert [r.kind.value for r in current.letters] == ["stage1_acknowledgement"]
        assert task_failures(await handle.fetch_history()) == 0
    assert len(await notifications(stack, intake.reference, "intake_corrected")) == 1
    with stack.session() as session:
        row = session.get(ComplaintRow, intake.reference)
        assert row is not None and row.received_on == today


@pytest.mark.parametrize(("months_ago", "flagged"), [(25, True), (6, False)])
async def test_out_of_time_issue_is_flagged_for_a_decision_never_declined(
        stack: Stack, months_ago: int, flagged: bool) -> None:
    """An issue over 12 months old starts normally, flagged, with the manager asked (2.3)."""
    async with stack.worker():
        today = london_date(dt.datetime.now(dt.UTC))
        intake = make_intake(received_on=today,
                             issue_occurred_on=today - timedelta(days=months_ago * 31))
        handle = await stack.lodge(intake)
        current = await started(handle)
        assert current.case.out_of_time is flagged
        assert current.state == "received"
        current = await do(handle, Acknowledge(by=STAGE1_HANDLER, handler_id=STAGE1_HANDLER,
                                               definition=DEFINITION))
        assert current.state == "stage1_investigating"
        assert [r.kind.value for r in current.letters] == ["stage1_acknowledgement"]
        assert task_failures(await handle.fetch_history()) == 0
    asked = await notifications(stack, intake.reference, "exclusion_decision",
                                expect=1 if flagged else 0)
    assert len(asked) == (1 if flagged else 0)
    if flagged:
        assert "Code 2.3" in asked[0].message and asked[0].recipient_id == "mgr-7"
        assert intake.parties[0].name not in asked[0].message  # no personal data
    with stack.session() as session:
        letter = session.exec(select(LetterRow).where(
            LetterRow.reference == intake.reference)).one()
    assert "Jo Bloggs" in letter.text


async def test_missing_policy_waits_and_recovers(stack: Stack, tmp_path: Path) -> None:
    """A case whose policy cannot be loaded waits (manager told) and starts once it exists."""
    policies = tmp_path / "policies"
    policies.mkdir()
    stack.activities = build_activities(stack.settings, policy_dir=policies)
    intake = raw_intake(policy_name="landlord-x")
    async with stack.worker():
        handle = await stack.env.client.start_workflow(
            ComplaintWorkflow.run, CaseInput(intake=intake), id=intake.reference,
            task_queue=stack.task_queue)
        told = await notifications(stack, intake.reference, "policy_unavailable")
        assert len(told) == 1 and "landlord-x" in told[0].message
        assert (await view(handle)).deadlines == []
        description = await handle.describe()
        assert description.status is WorkflowExecutionStatus.RUNNING
        text = (POLICY_DIR / "code-2024.toml").read_text(encoding="utf-8")
        (policies / "landlord-x.toml").write_text(
            text.replace('name = "code-2024"', 'name = "landlord-x"'), encoding="utf-8")
        assert await stack.env.fast_forward(handle, timedelta(days=1, minutes=1))
        current = await started(handle)
        assert current.deadlines[0].kind.value == "stage1_acknowledgement"
        assert current.policy_name == "landlord-x"
        assert task_failures(await handle.fetch_history()) == 0


# --- through `complaints lodge`, as staff use it -----------------------------------------


def lodge(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``complaints lodge`` with its data in ``tmp_path`` and no Temporal reachable."""
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data"),
           "TEMPORAL_ADDRESS": "127.0.0.1:9", "LOG_JSON": "true"}
    env.pop("DATABASE_URL", None)
    return subprocess.run([str(COMPLAINTS), "lodge", *args], capture_output=True, text=True,
                          timeout=60, env=env, cwd=tmp_path)


def rows(tmp_path: Path, table: str) -> int:
    """How many rows ``table`` of the CLI's database holds (0 when there is no database)."""
    path = tmp_path / "data" / "complaints.db"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        return int(db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])


def assert_one_line_refusal(result: subprocess.CompletedProcess[str], field: str) -> None:
    """The command failed with a single error line naming ``field``, no traceback."""
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert field in lines[0] and "Traceback" not in result.stderr
    assert "cannot reach Temporal" not in lines[0]  # refused before any start was tried


def test_lodge_refuses_a_future_receipt_date(tmp_path: Path) -> None:
    """`complaints lodge` with a receipt date after today exits non-zero naming the field."""
    future = (london_date(dt.datetime.now(dt.UTC)) + timedelta(days=3)).isoformat()
    result = lodge(tmp_path, "--reference", "CMP-2026-000777", "--channel", "phone",
                   "--received", future, "--resident", "Sam Example",
                   "--description", "Mould in the bedroom")
    assert_one_line_refusal(result, "received_on")
    assert rows(tmp_path, "complaints") == 0


def test_lodge_refuses_a_file_with_too_many_parties(tmp_path: Path) -> None:
    """A JSON intake with 51 parties and a control character is refused field by field."""
    data = intake_data(parties=[{"name": f"Member {i}"} for i in range(51)],
                       description="Leak\x07 in the roof")
    del data["reference"]
    (tmp_path / "intake.json").write_text(json.dumps(data), encoding="utf-8")
    result = lodge(tmp_path, "--file", str(tmp_path / "intake.json"),
                   "--reference", "CMP-2026-000778")
    assert_one_line_refusal(result, "parties")
    assert "description" in result.stderr
    assert rows(tmp_path, "complaints") == 0


def test_lodge_without_reference_allocates_nothing_for_a_refused_intake(
        tmp_path: Path) -> None:
    """A refused intake lodged without --reference must not consume a reference number."""
    future = (london_date(dt.datetime.now(dt.UTC)) + timedelta(days=3)).isoformat()
    result = lodge(tmp_path, "--channel", "phone", "--received", future,
                   "--resident", "Sam Example", "--description", "Mould in the bedroom")
    assert_one_line_refusal(result, "received_on")
    assert rows(tmp_path, "references") == 0


def test_lodge_file_with_an_impossible_date_is_one_line(tmp_path: Path) -> None:
    """A JSON intake whose receipt date does not exist is refused in one line."""
    data = intake_data(received_on="2026-13-45")
    del data["reference"]
    (tmp_path / "intake.json").write_text(json.dumps(data), encoding="utf-8")
    assert_one_line_refusal(lodge(tmp_path, "--file", str(tmp_path / "intake.json")),
                            "received_on")
