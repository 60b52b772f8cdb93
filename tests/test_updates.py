"""A staff update waits through a workflow task the server is retrying, and only that.

The server's ``WorkflowNotReadyFailure`` (a case whose last workflow task failed) cannot be
produced on demand here: it takes a starved worker under a signal flood. So the handle is a
stand-in that refuses the way the server does (the same gRPC status and detail type).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from google.protobuf.any_pb2 import Any as AnyDetail
from temporalio.api.common.v1 import GrpcStatus
from temporalio.service import RPCError, RPCStatusCode

from complaints import updates


def refusal(status: RPCStatusCode, detail: str) -> RPCError:
    """An RPCError as the server sends it, with one detail of type ``detail``."""
    raw = GrpcStatus(code=int(status), message="refused", details=[AnyDetail(
        type_url=f"type.googleapis.com/temporal.api.errordetails.v1.{detail}")])
    return RPCError("refused", status, raw.SerializeToString())


class Handle:
    """Refuses with each of ``errors`` in turn, then answers ``"taken"``."""

    def __init__(self, *errors: RPCError) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def execute_update(self, name: str, arg: Any, **_: Any) -> str:
        """Count the attempt; refuse with the next error, or answer."""
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "taken"


@pytest.fixture(autouse=True)
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    """No real pause between attempts."""
    monkeypatch.setattr(updates, "FIRST_PAUSE_S", 0.0)


def test_an_update_is_sent_again_while_the_case_is_not_ready() -> None:
    """Two "not ready" refusals, then the update is taken on the third attempt."""
    not_ready = refusal(RPCStatusCode.FAILED_PRECONDITION, "WorkflowNotReadyFailure")
    handle = Handle(not_ready, not_ready)
    answer = asyncio.run(updates.execute_update(handle, "acknowledge", {}))  # type: ignore[arg-type]
    assert (answer, handle.calls) == ("taken", 3)


@pytest.mark.parametrize(("status", "detail"), [
    (RPCStatusCode.FAILED_PRECONDITION, "SomethingElseFailure"),
    (RPCStatusCode.NOT_FOUND, "NotFoundFailure"),
])
def test_any_other_refusal_is_raised_at_once(status: RPCStatusCode, detail: str) -> None:
    """A refusal that is not "not ready" reaches the caller after one attempt."""
    handle = Handle(refusal(status, detail))
    with pytest.raises(RPCError):
        asyncio.run(updates.execute_update(handle, "acknowledge", {}))  # type: ignore[arg-type]
    assert handle.calls == 1
