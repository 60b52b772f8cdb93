"""Cases of the first workflow type refuse signals of any shape instead of failing a task.

The first type (``workflows.complaint_v1``, kept for the cases it started) took staff
actions as one named signal per trigger, each taking exactly one object: a signal with no
argument or several failed every workflow task from then on, and a value that was not an
object, or an unknown name, was dropped with nothing on the audit trail. Since
``SIGNAL_SHAPES_PATCH`` each is refused and recorded, like the ``Complaint`` type does.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from models.actions import ACTION_BY_TRIGGER
from tests.conftest import Stack, make_intake
from tests.db_loss import ACKNOWLEDGE, do, start_v1, started, v1_worker
from tests.test_workflow import task_failures
from workflows.complaint_v1 import SIGNAL_SHAPES_PATCH

#: Put in the payloads: it must never come out in the case or the worker's logs.
MARKER = "Zq7-v1-personal-data-marker"


async def test_a_first_type_case_refuses_every_signal_shape_and_carries_on(
        stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    """Several, no, non-object and unknown signals: refused on the audit, no failed task."""
    caplog.set_level(logging.DEBUG)
    shapes: list[tuple[str, list[Any]]] = [
        ("acknowledge", [{"by": "a"}, {"by": "b", "note": MARKER}]),
        ("close", []),
        ("respond", [MARKER]),
        ("extend", [[1, MARKER]]),
        ("acknowledge", [None]),
        (MARKER, [{"by": "staff-2"}]),
    ]
    async with v1_worker(stack):
        handle = await start_v1(stack, make_intake())
        await started(handle)
        for name, args in shapes:
            await handle.signal(name, args=args)
        # The case still answers and takes a valid action.
        current = await do(handle, ACKNOWLEDGE)
        history = await handle.fetch_history()
    assert task_failures(history) == 0
    assert current.state == "stage1_investigating"
    refused = [(e.action, e.detail) for e in current.case.audit if not e.accepted]
    assert refused == [
        ("acknowledge", "takes one JSON object, 2 arguments given"),
        ("close", "takes one JSON object, 0 arguments given"),
        ("respond", "takes a JSON object, not str"),
        ("extend", "takes a JSON object, not list"),
        ("acknowledge", "takes a JSON object, not NoneType"),
        ("unknown", "unknown action; signals are: " + ", ".join(ACTION_BY_TRIGGER)),
    ]
    assert [e.action for e in current.case.audit if e.accepted] == ["acknowledge"]
    assert SIGNAL_SHAPES_PATCH.encode() in b"".join(
        p.data for e in history.events if e.marker_recorded_event_attributes.details
        for p in e.marker_recorded_event_attributes.details["patch-data"].payloads)
    assert MARKER not in current.model_dump_json()
    assert MARKER not in caplog.text
