"""A case's state stays bounded: floods of refused signals and hundreds of actions.

The case keeps counts and the last few refusals, not every refusal; what staff wrote goes
to the database, not into the workflow; continue-as-new carries the bounded state.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from sqlmodel import func, select
from temporalio import activity
from temporalio.api.enums.v1 import EventType

from complaints.resync_replay import LOCAL_ACTIVITY_MARKER
from complaints.updates import execute_update
from models.actions import ContactDirection, RecordContact
from models.case import Channel
from models.events import ActionResult, CaseEvent, Recorded
from models.tables import AuditRow
from tests.conftest import Stack, make_intake
from tests.test_workflow import started, task_failures, view
from workflows.complaint import REFUSALS_KEPT

pytestmark = pytest.mark.slow

REFUSED = 10_000
ACCEPTED = 500
MAX_STATE_BYTES = 1_000_000


#: Refusals a paced flood may have in flight when it goes on (see ``caught_up``).
CATCH_UP_SLACK = 200


async def caught_up(handle: Any, refused: int, seconds: float = 120.0) -> None:
    """Wait until the case has counted ``refused`` refusals (bounded: never hangs)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while (await view(handle)).refused_total < refused:
        assert asyncio.get_running_loop().time() < deadline, \
            f"the case did not count {refused} refusals within {seconds:.0f} s"
        await asyncio.sleep(0.2)


async def test_ten_thousand_refusals_and_five_hundred_actions_stay_bounded(
        stack: Stack) -> None:
    """10,000 refused signals and 500 accepted actions: queryable, carried state under 1 MB."""
    note = "x" * 2_300  # a refused signal of about 2,352 bytes, as measured in the issue
    async with stack.worker():
        handle = await stack.lodge(make_intake())
        await started(handle)
        # An integration gone wrong: 25 signals in flight at a time (a burst of thousands
        # delivered in one workflow task is the SDK's limit, see RELIABILITY.md), and it
        # lets the case catch up every 500: on a loaded machine the flood once ran ahead of
        # the workflow tasks until one burst was past what a replay can take (fixed by the
        # signalled-recording patch, see the next test; the bound stays to catch a regression).
        for first in range(0, REFUSED, 25):
            await asyncio.gather(*(
                handle.signal("close", {"by": "integration", "note": note})
                for _ in range(first, min(first + 25, REFUSED))))
            if (first + 25) % 500 == 0:
                await caught_up(handle, first + 25 - CATCH_UP_SLACK)
        for i in range(ACCEPTED):
            result = await handle.execute_update("record_contact", RecordContact(
                by="staff-101", direction=ContactDirection.OUTBOUND, channel=Channel.PHONE,
                summary=f"Call {i}: " + "y" * 2_000), result_type=ActionResult)
            assert result.state == "received"
        current = await view(handle)
        for _ in range(100):  # the last refusals reach the database shortly after
            if current.refused_total == REFUSED:
                break
            await asyncio.sleep(0.2)
            current = await view(handle)
        runs = [w async for w in stack.env.client.list_workflows(f"WorkflowId = '{handle.id}'")]
        history = await handle.fetch_history()
    assert current.refused_total == REFUSED
    assert current.case.contacts == ACCEPTED
    assert len(current.rejected) == REFUSALS_KEPT
    assert len(current.model_dump_json()) < MAX_STATE_BYTES
    # The case continued as new at least once, carrying its bounded state.
    assert len(runs) > 1
    started_event = history.events[0].workflow_execution_started_event_attributes
    carried = sum(len(p.data) for p in started_event.input.payloads)
    assert started_event.continued_execution_run_id
    assert carried < MAX_STATE_BYTES
    # Stored encrypted (complaints.codec): the engine's converter opens it.
    [opened] = await stack.env.client.data_converter.payload_codec.decode(  # type: ignore[union-attr]
        list(started_event.input.payloads)[:1])
    assert json.loads(opened.data)["carried"]["refused_total"] > 0
    assert task_failures(history) == 0
    assert not any(e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
                   for e in history.events)
    with stack.session() as session:
        accepted = session.exec(select(func.count()).select_from(AuditRow).where(
            AuditRow.reference == handle.id, AuditRow.action == "record_contact")).one()
        refused = session.exec(select(AuditRow.detail).where(
            AuditRow.reference == handle.id, AuditRow.action == "refused_signals")).all()
    assert accepted == ACCEPTED
    assert sum(int(detail.split()[0]) for detail in refused) == REFUSED


#: How long each recording takes in the slow-database test: long enough that, were a
#: workflow task held open while recording, more than the server's 100 buffered events
#: would arrive in it.
SLOW_RECORDING = 1.0


async def test_a_flood_while_recording_is_slow_never_holds_a_workflow_task_open(
        stack: Stack) -> None:
    """An unpaced flood while each recording takes a second: no task waits on a recording."""
    real = next(a for a in stack.activities if getattr(a, "__name__", "") == "record_case_event")

    # A stand-in for a slow (loaded) database: the real recording, a second late.
    @activity.defn(name="record_case_event")
    def slow_recording(event: CaseEvent) -> Recorded:
        time.sleep(SLOW_RECORDING)
        return real(event)  # type: ignore[no-any-return]

    stack.activities = [slow_recording if a is real else a for a in stack.activities]
    flood = 3_000
    async with stack.worker():
        handle = await stack.lodge(make_intake())
        await started(handle)
        for first in range(0, flood, 50):
            await asyncio.gather(*(handle.signal("close", {"by": "integration"})
                                   for _ in range(first, min(first + 50, flood))))
            if first == flood // 2:  # staff carry on in the middle of it
                # As the API and CLI send it: again while a failed task is retried.
                contact = await execute_update(handle, "record_contact", RecordContact(
                    by="staff-101", direction=ContactDirection.OUTBOUND,
                    channel=Channel.PHONE, summary="Called back"), result_type=ActionResult)
        await caught_up(handle, flood, seconds=180)
        history = await handle.fetch_history()
        for _ in range(100):  # the last batch reaches the database a moment after
            with stack.session() as session:
                refused = session.exec(select(AuditRow.detail).where(
                    AuditRow.reference == handle.id,
                    AuditRow.action == "refused_signals")).all()
            if sum(int(detail.split()[0]) for detail in refused) == flood:
                break
            await asyncio.sleep(0.2)
    assert contact.state == "received"
    assert sum(int(detail.split()[0]) for detail in refused) == flood
    # Recorded in ordinary activities while the signals came (the signalled-recording
    # patch), in batches: no local activity held a workflow task open behind it. Before
    # the patch every recording here was local, and the server failed 22 tasks for the
    # signals buffered behind them (FORCE_CLOSE_COMMAND), on a quiet machine. On a starved
    # one the worker itself can still be too slow for the flood now and then (a few
    # failed tasks, then it catches up: RELIABILITY.md), so failures are not counted.
    first_signal = next(e.event_id for e in history.events
                        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    local_after = [e for e in history.events if e.event_id > first_signal
                   and e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
                   and e.marker_recorded_event_attributes.marker_name == LOCAL_ACTIVITY_MARKER]
    assert not local_after
    scheduled = [e for e in history.events
                 if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
    assert 1 < len(scheduled) < flood // 10
