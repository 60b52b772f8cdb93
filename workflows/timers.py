"""How a case sleeps until its next wake time: one durable timer per wake time.

Workflow code (deterministic: ``workflow.now()`` and ``workflow.sleep`` only). Before
:data:`domain.lifecycle.REVISION_8_PATCH` the main loop waited with ``wait_condition(...,
timeout=...)``, which starts a timer for each wait and cancels it when an action arrives:
a ``TimerStarted`` and a ``TimerCanceled`` event (and a timer task on the server) for every
action, even when the next wake time had not moved. Cases started under the patch keep one
timer while their wake time stays the same; cases started before wait as they did.
"""

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow

__all__ = ["WakeTimer"]


def _sleep_for(wake_at: datetime) -> timedelta:
    # At least a second: a zero timeout would spin without letting time pass.
    return max(wake_at - workflow.now(), timedelta(seconds=1))


class WakeTimer:
    """The case's timer: kept across waits (revision 8), or one per wait (before it)."""

    def __init__(self, *, keep: bool) -> None:
        """Start with no timer.

        Args:
            keep: Whether the timer is kept while the wake time stays the same (cases
                started under :data:`domain.lifecycle.REVISION_8_PATCH`).

        """
        self._keep = keep
        self._task: asyncio.Task[None] | None = None
        self._at: datetime | None = None

    async def wait(self, wake_at: datetime | None, ready: Callable[[], bool]) -> bool:
        """Wait until ``ready()`` or ``wake_at`` (None: no wake time).

        Returns:
            Whether the wake time came (then the next wait starts a new timer).

        """
        if not self._keep:
            try:
                await workflow.wait_condition(
                    ready, timeout=None if wake_at is None else _sleep_for(wake_at))
            except TimeoutError:
                return True
            return False
        if wake_at != self._at:
            self.cancel()
            self._at = wake_at
            if wake_at is not None:
                self._task = asyncio.create_task(workflow.sleep(_sleep_for(wake_at)))
        task = self._task
        await workflow.wait_condition(lambda: ready() or (task is not None and task.done()))
        if task is None or not task.done():
            return False
        self._task = self._at = None
        return True

    def cancel(self) -> None:
        """Cancel a kept timer still pending (a ``CancelTimer`` command), and forget it."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = self._at = None
