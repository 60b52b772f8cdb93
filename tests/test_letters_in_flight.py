"""A letter accepted while another is being recorded gets its own number (and is sent).

Before ``IN_FLIGHT_LETTERS_PATCH`` a case numbered a new letter by the letters recorded and
those queued, not the one being recorded: a second action update accepted while the first
was being recorded took the same letter id, and the activity, finding that id stored,
sent nothing. Run on the real dev server with the real activities; the recording of the
first action is held (a gate around ``record_case_event``, the one stand-in here) until
the second action has been accepted. The case records in a local activity, so the second
update is delivered when the SDK heartbeats the held workflow task (after 8 s of its 10 s
timeout): a recording that slow is rare, but the numbering must hold then too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading

from sqlmodel import select
from temporalio import activity
from temporalio.client import WorkflowUpdateStage

from domain.lifecycle import IN_FLIGHT_LETTERS_PATCH
from models.actions import CompleteAction, DelayAction
from models.events import ActionResult, CaseEvent, Recorded
from models.tables import LetterRow
from tests.conftest import Stack, make_intake
from tests.test_workflow import drive, started, view
from tests.test_workflow_casework import takes_patch
from workflows.complaint import ComplaintState

S = ComplaintState


async def test_an_update_accepted_during_a_recording_gets_its_own_letter(stack: Stack) -> None:
    """A delay held in recording, a completion accepted meanwhile: two letters, both sent."""
    real = next(a for a in stack.activities
                if getattr(a, "__temporal_activity_definition").name == "record_case_event")
    entered, release = threading.Event(), threading.Event()

    @activity.defn(name="record_case_event")
    def gated(event: CaseEvent) -> Recorded:
        if event.action is not None and event.action.get("trigger") == "delay_action":
            entered.set()
            release.wait(30)
        result: Recorded = real(event)
        return result

    stack.activities = [gated if a is real else a for a in stack.activities]
    async with stack.worker():
        handle = await stack.lodge(make_intake())
        await started(handle)
        await drive(handle, S.STAGE1_RESPONDED)
        record = (await view(handle)).case.open_actions()[0]
        delay = DelayAction(by="staff-101", action_id=record.action.action_id,
                            revised_due=record.due_by + dt.timedelta(days=14),
                            reason="Parts are late")
        first = asyncio.create_task(handle.execute_update(
            delay.trigger, delay, result_type=ActionResult))
        assert await asyncio.to_thread(entered.wait, 30)
        complete = CompleteAction(by="staff-101", action_id=record.action.action_id)
        second = await handle.start_update(complete.trigger, complete,
                                           wait_for_stage=WorkflowUpdateStage.ACCEPTED,
                                           result_type=ActionResult)
        release.set()
        delayed, completed = await first, await second.result()
        history = await handle.fetch_history()
    assert takes_patch(history, IN_FLIGHT_LETTERS_PATCH)
    assert len(delayed.letters) == len(completed.letters) == 1
    assert delayed.letters != completed.letters
    with stack.session() as session:
        stored = session.exec(select(LetterRow.letter_id).where(
            LetterRow.reference == handle.id, LetterRow.kind == "action_update")).all()
    assert sorted(stored) == sorted([*delayed.letters, *completed.letters])
