"""No input of any shape fails a workflow task: signals and updates fuzzed on a real server.

Every signal and update name the workflow has, and names it does not, are sent random JSON
values as zero, one or several arguments (null, lists, strings, numbers, objects of the
right and wrong shapes, oversized). Afterwards the case's history must hold no failed
workflow task, the case must still answer and take a valid action, and neither the worker's
logs nor what the case keeps of the refusals may hold anything the payloads said.
"""

from __future__ import annotations

import json
import logging
import random
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from domain.lifecycle import TRIGGERS
from models.actions import Acknowledge
from models.events import ActionResult
from tests.cases import DEFINITION, STAGE1_HANDLER
from tests.conftest import Stack, make_intake
from tests.test_workflow import started, task_failures, view
from workflows.complaint import REFUSALS_KEPT

#: Put in the payloads' fields (``by`` aside: who claims to act is kept, shortened): it
#: must never come out of the case or the logs.
MARKER = "Zq7-personal-data-marker"
NAMES = [*TRIGGERS, "refresh_calendar", "no_such_action", "", "case_view", "x" * 300]


def random_json(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value, the marker somewhere in most of them."""
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([0, -1, 2**63, 3.5, True, False])
    if kind == 2:
        return rng.choice([MARKER, "", "a" * rng.randrange(1, 50), f"{MARKER}\u202e\u200b"])
    if kind == 3:
        return rng.choice(["2026-11-23", "not-a-date", "upheld", "phone"])
    if kind == 4:
        return {"by": rng.choice([5, None, "staff-1", "", "x" * 500, "\u202e"])}
    if kind == 5:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 6:
        keys = ["by", "handler_id", "definition", "decision", "findings", "working_days",
                "reason", MARKER, "requested_on", "grounds", "explanation", "action_id"]
        return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randrange(5))}
    return {"by": "staff-2", "summary": MARKER * rng.randrange(1, 4000)}  # up to ~100 KB


def shapes(rng: random.Random) -> list[list[Any]]:
    """Argument lists: none, one, or several random values."""
    count = rng.choice([0, 1, 1, 1, 2, 3])
    return [[random_json(rng) for _ in range(count)]]


async def test_fuzzed_signals_and_updates_never_fail_a_workflow_task(
        stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    """Random shapes to every handler: no failed task; the case answers and acts; no leak."""
    rng = random.Random(20261126)
    caplog.set_level(logging.DEBUG)
    sent_signals = 0
    async with stack.worker():
        handle = await stack.lodge(make_intake())
        await started(handle)
        for _ in range(6):
            for name in NAMES:
                for args in shapes(rng):
                    try:
                        await handle.signal(name, args=args)
                        sent_signals += 1
                    except RPCError:
                        pass  # e.g. an empty name: refused by the server, never delivered
                    try:
                        await handle.execute_update(name, args=args,
                                                    result_type=ActionResult)
                    except (WorkflowUpdateFailedError, RPCError):
                        pass  # rejected: what must happen to a malformed update
        # An oversized signal (over the server's 2 MB limit) is refused by the server.
        with pytest.raises(RPCError):
            await handle.signal("acknowledge", {"by": MARKER * 150_000})
        current = await view(handle)
        # The case still takes a valid action.
        result = await handle.execute_update(
            "acknowledge", Acknowledge(by=STAGE1_HANDLER, handler_id=STAGE1_HANDLER,
                                       definition=DEFINITION), result_type=ActionResult)
        assert result.state == "stage1_investigating"
        after = await view(handle)
        history = await handle.fetch_history()
    assert task_failures(history) == 0
    signals_in_history = sum(1 for e in history.events
                             if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    assert signals_in_history == sent_signals > 100
    # Every signal was refused or taken; the case kept only the last few refusals.
    assert after.refused_total >= signals_in_history - 1
    assert len(after.rejected) == REFUSALS_KEPT
    kept = json.dumps([r.model_dump(mode="json") for r in after.rejected + current.rejected])
    assert MARKER not in kept
    assert MARKER not in caplog.text
    assert "Zq7" not in after.model_dump_json()
