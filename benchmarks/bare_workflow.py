"""The baseline for ``bench_history.py``: a bare workflow taking the same validated updates.

Each of the nine staff actions of a full two-stage case is an update with a validator,
taking the product's own action model; the handler runs one activity that does nothing
and returns a small result. What the product costs above this is what its lifecycle,
deadlines, letters and records cost.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from models.actions import (
        Acknowledge,
        AcknowledgeEscalation,
        Action,
        Close,
        CompleteAction,
        Extend,
        RequestEscalation,
        Respond,
    )


class BareResult(BaseModel):
    """What a bare update returns."""

    seq: int


class BareInput(BaseModel):
    """The bare workflow's input (a reference only)."""

    reference: str


@activity.defn
def bare_record(seq: int) -> int:
    """The one activity per action: nothing to do."""
    return seq


@workflow.defn(name="BareComplaint")
class BareWorkflow:
    """Takes the nine updates of a full case; ends on close."""

    def __init__(self) -> None:
        self.seq = 0
        self.closed = False

    @workflow.run
    async def run(self, input: BareInput) -> int:
        """Wait until closed."""
        await workflow.wait_condition(lambda: self.closed)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.seq

    async def _act(self, action: Action) -> BareResult:
        self.seq += 1
        await workflow.execute_activity(bare_record, self.seq,
                                        start_to_close_timeout=timedelta(seconds=30))
        return BareResult(seq=self.seq)

    @staticmethod
    def _check(action: Action) -> None:
        if not action.by:
            raise ValueError("by is required")

    @workflow.update
    async def acknowledge(self, action: Acknowledge) -> BareResult:
        """Bare acknowledge."""
        return await self._act(action)

    @acknowledge.validator
    def _v1(self, action: Acknowledge) -> None:
        self._check(action)

    @workflow.update
    async def extend(self, action: Extend) -> BareResult:
        """Bare extend."""
        return await self._act(action)

    @extend.validator
    def _v2(self, action: Extend) -> None:
        self._check(action)

    @workflow.update
    async def respond(self, action: Respond) -> BareResult:
        """Bare respond."""
        return await self._act(action)

    @respond.validator
    def _v3(self, action: Respond) -> None:
        self._check(action)

    @workflow.update
    async def request_escalation(self, action: RequestEscalation) -> BareResult:
        """Bare request_escalation."""
        return await self._act(action)

    @request_escalation.validator
    def _v4(self, action: RequestEscalation) -> None:
        self._check(action)

    @workflow.update
    async def acknowledge_escalation(self, action: AcknowledgeEscalation) -> BareResult:
        """Bare acknowledge_escalation."""
        return await self._act(action)

    @acknowledge_escalation.validator
    def _v5(self, action: AcknowledgeEscalation) -> None:
        self._check(action)

    @workflow.update
    async def complete_action(self, action: CompleteAction) -> BareResult:
        """Bare complete_action."""
        return await self._act(action)

    @complete_action.validator
    def _v6(self, action: CompleteAction) -> None:
        self._check(action)

    @workflow.update
    async def close(self, action: Close) -> BareResult:
        """Bare close."""
        result = await self._act(action)
        self.closed = True
        return result

    @close.validator
    def _v7(self, action: Close) -> None:
        self._check(action)
