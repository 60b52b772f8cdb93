"""The named casework commands end to end, as operators script them, on a `complaints dev`."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_cli_dev import Dev, assert_one_line_error, clean_env, free_port, london_today

pytestmark = pytest.mark.slow


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[Dev]:
    """A `complaints dev` of this test's own (no demo case), killed afterwards."""
    data_dir = tmp_path / "data"
    port, ui_port = free_port(), free_port()
    env = clean_env(DATA_DIR=str(data_dir), TEMPORAL_ADDRESS=f"127.0.0.1:{port}",
                    UI_PORT=str(ui_port), LOG_JSON="true")
    stack = Dev(data_dir, env, port, ui_port)
    try:
        stack.start("--no-demo")
        yield stack
    finally:
        stack.kill()


def ok(dev: Dev, *args: str) -> str:
    """Run a command that must succeed; its output."""
    result = dev.cli(*args)
    assert result.returncode == 0, (args, result.stderr)
    return result.stdout


def status(dev: Dev, ref: str) -> dict[str, Any]:
    """`complaints status --json` as data."""
    return json.loads(ok(dev, "status", ref, "--json"))  # type: ignore[no-any-return]


def lodge(dev: Dev, channel_reference: str) -> str:
    """Lodge a Connexus complaint received today; its reference."""
    return ok(dev, "lodge", "--channel", "email", "--channel-reference", channel_reference,
              "--received", london_today(), "--resident", "Sam Example",
              "--address", "3 Demo Street", "--description", "Mould in the bedroom",
              "--outcome", "Treat the mould", "--policy", "connexus",
              "--manager", "mgr-1").strip()


def test_casework_commands_from_contact_to_closure(dev: Dev) -> None:
    """Early contact, a delay, a payment, an Ombudsman instruction and order, then closing."""
    ref = lodge(dev, "msg-1")
    ok(dev, "acknowledge", ref, "--by", "h-1", "--summary", "Mould not treated",
       "--point", "Mould reported in September was not treated", "--outcome", "Treat it")
    ok(dev, "early-contact", ref, "--by", "h-1", "--channel", "phone",
       "--summary", "Called to book a survey", "--with", "Sam Example")
    early = [d for d in status(dev, ref)["deadlines"]
             if d["kind"] == "early_contact"]
    assert [d["status"] for d in early] == ["met"]
    ok(dev, "record-contact", ref, "--by", "h-1", "--direction", "inbound",
       "--channel", "email", "--summary", "Photos of the mould sent")
    ok(dev, "add-issue", ref, "--by", "h-1", "--description", "The extractor fan is broken")
    ok(dev, "ombudsman-contact", ref, "--by", "mgr-1", "--kind", "instruction",
       "--details", "Issue the stage 1 response", "--respond-by",
       (dt.date.fromisoformat(london_today()) + dt.timedelta(days=14)).isoformat())
    due = (dt.date.fromisoformat(london_today()) + dt.timedelta(days=30)).isoformat()
    ok(dev, "respond", ref, "--by", "h-1", "--decision", "upheld",
       "--finding", "Mould reported in September was not treated::Found so::The log shows it",
       "--finding", "The extractor fan is broken::Found so::The survey shows it",
       "--remedy", f"financial::Compensation::150.00::{due}",
       "--action", f"A1::Treat the mould::{due}")
    later = (dt.date.fromisoformat(due) + dt.timedelta(days=14)).isoformat()
    ok(dev, "delay-action", ref, "A1", "--by", "h-1", "--revised-due", later,
       "--reason", "The specialist is booked later")
    refused = dev.cli("close", ref, "--by", "h-1")
    assert_one_line_error(refused, 1, "Error: refused:", "A1")
    ok(dev, "complete-action", ref, "A1", "--by", "h-1")
    assert_one_line_error(dev.cli("close", ref, "--by", "h-1"), 1, "instruction-1")
    ok(dev, "comply-order", ref, "instruction-1", "--by", "mgr-1",
       "--evidence", "Stage 1 response sent")
    assert_one_line_error(dev.cli("close", ref, "--by", "h-1"), 1, "pay_remedy")
    ok(dev, "pay-remedy", ref, "--by", "h-1", "--stage", "1", "--remedy", "1",
       "--amount", "150.00", "--paid-on", london_today())
    assert "closed" in ok(dev, "close", ref, "--by", "h-1")
    letters = ok(dev, "letters", ref)
    assert ":action_update:" in letters and ":stage1_response:" in letters


def test_reassign_void_and_merge(dev: Dev) -> None:
    """A new handler is introduced by letter; a duplicate is voided, another merged, silently."""
    first, second, third = lodge(dev, "m-1"), lodge(dev, "m-2"), lodge(dev, "m-3")
    ok(dev, "acknowledge", first, "--by", "h-1", "--summary", "Mould",
       "--point", "Mould", "--outcome", "Treat it")
    ok(dev, "reassign", first, "--by", "mgr-1", "--role", "handler", "--to", "h-2",
       "--reason", "h-1 is on leave")
    assert status(dev, first)["handlers"] == {"stage1": "h-2"}
    assert ":handler_changed:" in ok(dev, "letters", first)
    ok(dev, "void", second, "--by", "mgr-1", "--reason", "duplicate",
       "--explanation", "Lodged twice", "--duplicate-of", first)
    ok(dev, "merge", third, "--into", first, "--by", "mgr-1",
       "--explanation", "The same mould, reported by the partner")
    for ref in (second, third):
        voided = status(dev, ref)
        assert voided["state"] == "voided" and voided["letters"] == []
    assert_one_line_error(dev.cli("merge", first, "--into", first, "--by", "mgr-1",
                                  "--explanation", "x"), 1, "itself")
    ok(dev, "add-representative", first, "--by", "mgr-1", "--name", "Ann Example",
       "--address", "9 Other Road", "--authority", "Signed form received today")
    review_on = (dt.date.fromisoformat(london_today()) + dt.timedelta(days=90)).isoformat()
    ok(dev, "adjustments", first, "--by", "mgr-1", "--adjustment", "Large print letters",
       "--review-on", review_on, "--reason", "Agreed on the phone")
    reviews = [d for d in status(dev, first)["deadlines"]
               if d["kind"] == "review"]
    assert [(d["due"], d["status"]) for d in reviews] == [(review_on, "pending")]
    refused = dev.cli("add-representative", first, "--by", "mgr-1", "--name", "X",
                      "--authority", "")
    assert refused.returncode != 0
    ok(dev, "triage", first, "--complexity", "high", "--vulnerability", "some",
       "--risk", "medium", "--by", "mgr-1")
    listed = {r["reference"]: r for r in json.loads(ok(dev, "list", "--json"))}
    assert listed[first]["triage"] == {"complexity": "high", "vulnerability": "some",
                                       "risk": "medium"}
    assert listed[second]["triage"] is None
