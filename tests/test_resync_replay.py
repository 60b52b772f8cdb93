"""Resync of cases that record through local activities: their inputs come from a replay."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowHistory

from complaints.db import ensure_schema, make_engine
from complaints.resync import Recorders, resync_case
from complaints.resync_replay import (
    LOCAL_ACTIVITY_MARKER,
    ReplayFailed,
    has_local_activities,
    replayed,
)
from models.actions import Extend
from models.events import CaseContext, CaseEvent, OpenCaseInput, Recorded
from models.tables import LetterRow
from tests.cases import STAGE1_HANDLER
from tests.conftest import Stack, make_intake
from tests.db_loss import ACKNOWLEDGE, records

#: The ``Complaint`` type's recording activities, local on a new case.
LOCAL = {"open_case", "record_case_event"}


def scheduled_types(history: WorkflowHistory) -> set[str]:
    """The types of the ordinary activities a history scheduled."""
    return {e.activity_task_scheduled_event_attributes.activity_type.name
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED}


async def _new_case(stack: Stack) -> WorkflowHandle[Any, Any]:
    """A new ``Complaint`` case, acknowledged and extended (two letters), at rest."""
    from tests.test_workflow import do, started

    async with stack.worker():
        handle = await stack.lodge(make_intake())
        await started(handle)
        await do(handle, ACKNOWLEDGE)
        await do(handle, Extend(by=STAGE1_HANDLER, working_days=5,
                                reason="A surveyor must inspect the roof"))
    return handle


async def test_a_new_case_records_locally_and_the_replay_gives_every_input(
        stack: Stack) -> None:
    """No recording activity is scheduled; the replay yields each input and result in order."""
    handle = await _new_case(stack)
    history = await handle.fetch_history()
    assert not scheduled_types(history) & LOCAL  # history holds no input of theirs
    assert has_local_activities(history)

    calls = await replayed(stack.env.client.data_converter, history)
    assert [c.activity_type for c in calls] == ["open_case"] + ["record_case_event"] * (
        len(calls) - 1)
    opened, events = calls[0], calls[1:]
    assert isinstance(opened.input, OpenCaseInput) and isinstance(opened.result, CaseContext)
    assert opened.input.intake.reference == handle.id
    assert all(isinstance(c.input, CaseEvent) and isinstance(c.result, Recorded)
               for c in events)
    assert [c.input.seq for c in events] == sorted({c.input.seq for c in events})
    times = [c.scheduled_at for c in calls]
    assert times == sorted(times)
    assert all(c.completed_at is not None and c.completed_at >= c.scheduled_at for c in calls)
    # The results are the markers' own: the letters each recording sent.
    with stack.session() as session:
        stored = set(session.exec(select(LetterRow.letter_id).where(
            LetterRow.reference == handle.id)))
    assert {r.letter_id for c in events for r in c.result.letters} == stored
    assert len(stored) == 2


async def test_a_history_other_code_made_is_one_error_line(
        stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that does not replay fails its case with one line; the reference still returns."""
    from workflows.complaint_v1 import ComplaintWorkflowV1

    handle = await _new_case(stack)
    url = f"sqlite:///{tmp_path / 'lost.db'}"
    ensure_schema(url)
    engine = make_engine(url)
    recorders = Recorders.for_engine(engine, stack.settings.effective_outbox())
    # A worker that does not run the ``Complaint`` type: the history cannot replay.
    monkeypatch.setattr("complaints.resync_replay._workflows", lambda: [ComplaintWorkflowV1])
    result = await resync_case(stack.env.client, recorders, engine, handle.id)
    assert result.error == ("its history does not replay with this worker's code (this "
                            "worker does not run workflow type 'Complaint'): run resync "
                            "with the version that ran it")
    assert result.applied == 0 and dict(+result.restored) == {"references": 1}
    assert not records(engine, handle.id)["audit_events"]
    engine.dispose()


async def test_a_doctored_history_is_reported_as_non_determinism(stack: Stack) -> None:
    """A history missing a local activity's marker raises ReplayFailed naming the event."""
    history = copy.deepcopy(await (await _new_case(stack)).fetch_history())
    marker = next(e.marker_recorded_event_attributes for e in history.events
                  if e.marker_recorded_event_attributes.marker_name == LOCAL_ACTIVITY_MARKER)
    marker.marker_name = "not_a_local_activity"
    with pytest.raises(ReplayFailed) as failed:
        await replayed(stack.env.client.data_converter, history)
    text = str(failed.value)
    assert "Nondeterminism error" in text and "MarkerRecorded" in text
    assert "\n" not in text and text.endswith("run resync with the version that ran it")
