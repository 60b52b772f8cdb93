"""Staff updates sent to a case, waited for through a workflow task the server is retrying.

When a case's last workflow task failed (under a signal flood on a starved worker, the
server fails a task that more than 100 signals arrived behind: RELIABILITY.md), the server
refuses every update at once with ``WorkflowNotReadyFailure`` until a retried task
completes, usually within a second or two. That is not the member of staff's problem, so
the update is sent again after a short pause until it is taken; the caller's own timeout
(``asyncio.wait_for``) bounds the wait. Any other refusal is raised at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

#: The first pause before sending again, doubled each time up to ``MAX_PAUSE_S``.
FIRST_PAUSE_S = 0.1
MAX_PAUSE_S = 2.0


def not_ready(exc: RPCError) -> bool:
    """Whether the server refused because the case's last workflow task failed."""
    return exc.status == RPCStatusCode.FAILED_PRECONDITION and any(
        detail.type_url.endswith("WorkflowNotReadyFailure")
        for detail in exc.grpc_status.details)


async def execute_update(handle: WorkflowHandle[Any, Any], name: str, arg: Any, *,
                         rpc_timeout: dt.timedelta | None = None,
                         result_type: type | None = None) -> Any:
    """``handle.execute_update(name, arg)``, sent again while the case is not ready."""
    pause = FIRST_PAUSE_S
    while True:
        try:
            return await handle.execute_update(name, arg, rpc_timeout=rpc_timeout,
                                               result_type=result_type)
        except RPCError as exc:
            if not not_ready(exc):
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, MAX_PAUSE_S)
