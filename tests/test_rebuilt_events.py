"""An event built again after Temporal refused its workflow task: the record takes it.

A case records its events in local activities, inside the workflow task. When Temporal
refuses to complete that task after the activity stored the event (a continue-as-new
while signals arrive, a killed worker), the next attempt replays the case with what
arrived meanwhile and builds the same event again, with more in it. A flood of refused
signals once left 1,025 of 10,000 uncounted in the audit trail this way.

Here a workflow interceptor (test code, not the product's) fails the workflow task right
after the recording of a refusal batch, until the test has sent more signals: the same
refusal, deterministically, on the real dev server, worker and database.

A case now records in ordinary activities while signals arrive (``SIGNALS_SETTLE``, the
signalled-recording patch), so this cannot happen to its refusals; runs that recorded
refusals locally before the patch keep doing so, and events recorded when no signal came
lately are still recorded locally. The test sets the settling time to zero, so that the
case records its refusals locally as those cases do.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select
from temporalio import workflow
from temporalio.worker import (
    Interceptor,
    StartLocalActivityInput,
    WorkflowOutboundInterceptor,
)

from complaints.resync_replay import outbound_interceptor
from models.events import CaseEvent
from models.tables import AuditRow
from tests.conftest import Stack, make_intake
from tests.test_workflow import started, view

FIRST, THEN = 5, 7


def _refusing(until: int, refused: list[int]) -> Interceptor:
    """Fail each workflow task that recorded a batch of fewer than ``until`` refusals.

    Each refused batch's count is appended to ``refused``.
    """

    class Outbound(WorkflowOutboundInterceptor):
        def start_local_activity(
                self, input: StartLocalActivityInput) -> workflow.ActivityHandle[Any]:
            handle = self.next.start_local_activity(input)
            event = input.args[0] if input.activity == "record_case_event" else None
            counts = [_count(e.detail) for e in event.audit
                      if e.action == "refused_signals"] if isinstance(event, CaseEvent) else []
            if not counts or counts[0] >= until:
                return handle

            async def refuse() -> Any:
                await handle  # the event is stored ...
                refused.append(counts[0])
                # ... and the task fails: not a FailureError, so the SDK fails the task
                # (not the workflow), and Temporal tries it again from history.
                raise RuntimeError("test: this workflow task is refused")

            return asyncio.ensure_future(refuse())  # type: ignore[return-value]

    return outbound_interceptor(Outbound)


def _count(detail: str) -> int:
    """The number of refusals an audit entry of a batch counts."""
    return int(detail.split()[0])


async def test_a_refusal_batch_built_again_with_more_signals_is_recorded_in_full(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch stored, its task refused, rebuilt with more signals: the trail counts all."""
    # Read by the workflow module as the sandbox imports it for the case (passed through).
    monkeypatch.setattr("domain.lifecycle.SIGNALS_SETTLE", timedelta(0))
    refused: list[int] = []
    async with stack.worker([_refusing(FIRST + THEN, refused)]):
        handle = await stack.lodge(make_intake())
        await started(handle)
        for _ in range(FIRST):
            await handle.signal("close", {"by": "integration", "note": "n"})
        for _ in range(200):  # the first batch is stored, and its task refused
            if refused:
                break
            await asyncio.sleep(0.05)
        assert refused, "the interceptor never refused a task"
        # Every task is refused until a batch counts them all: the same event, rebuilt.
        for _ in range(THEN):
            await handle.signal("close", {"by": "integration", "note": "n"})
        stored: list[int] = []
        for _ in range(100):  # until the workflow and the trail have taken every signal
            current = await view(handle)
            with stack.session() as session:
                stored = [_count(d) for d in session.exec(select(AuditRow.detail).where(
                    AuditRow.reference == handle.id, AuditRow.action == "refused_signals"))]
            if current.refused_total == sum(stored) == FIRST + THEN:
                break
            await asyncio.sleep(0.1)
    assert current.refused_total == FIRST + THEN
    assert min(refused) < FIRST + THEN
    # One batch, as the workflow built it in the task that completed: not an earlier
    # attempt's smaller count in its place, nor beside it.
    assert stored == [FIRST + THEN]
