"""The recording local activities of a run, got back by replaying its history.

A case that started under ``LOCAL_RECORDING_PATCH`` (``workflows.complaint``) runs
``open_case`` and ``record_case_event`` as *local* activities. Their history keeps only a
``MarkerRecorded`` event (``core_local_activity``) with each one's **result**, never its
input, so :mod:`complaints.resync` cannot read the inputs from ``ActivityTaskScheduled``
events as it does for ordinary activities.

The workflow code is deterministic: replaying the history with it (``Replayer``, no
server) makes the very ``execute_local_activity`` calls it made, with the same inputs,
and resolves them from the markers. A workflow interceptor notes each call whose type is
in :data:`complaints.resync.RECORDINGS` (its input, the workflow time it was started) and
its result once its handle resolves. A history made by other code does not replay:
:class:`ReplayFailed` says so in one line.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter

from complaints.resync import DECODE_CONTEXT, RECORDINGS, Scheduled, _first_line

if TYPE_CHECKING:
    from temporalio.worker import (
        Interceptor,
        StartLocalActivityInput,
        WorkflowInboundInterceptor,
        WorkflowInterceptorClassInput,
        WorkflowOutboundInterceptor,
    )

__all__ = ["LOCAL_ACTIVITY_MARKER", "ReplayFailed", "has_local_activities",
           "outbound_interceptor", "replayed"]

#: The marker name the SDK's core records for each local activity (its result).
LOCAL_ACTIVITY_MARKER = "core_local_activity"
#: In a replay failure's text: the failure's message, and its application error type.
_MESSAGE = re.compile(r'message: "((?:[^"\\]|\\.)*)"')
_TYPE = re.compile(r'r#type: "([^"]+)"')


class ReplayFailed(RuntimeError):
    """A history does not replay with this worker's workflow code (its text is one line)."""


@dataclass
class _Call:
    """One recording local activity as the replayed workflow started it."""

    activity_type: str
    arg: Any
    started_at: dt.datetime
    completed_at: dt.datetime | None = None
    result: Any = None


def has_local_activities(history: WorkflowHistory) -> bool:
    """Whether the run recorded any local activity (a ``core_local_activity`` marker)."""
    return any(
        event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and event.marker_recorded_event_attributes.marker_name == LOCAL_ACTIVITY_MARKER
        for event in history.events)


def _workflows() -> list[type]:
    """The workflow classes a worker registers (each history replays under its own type)."""
    # Imported here: `complaints.resync` is loaded for every command; the workflows only
    # for a replay.
    from worker import WORKFLOWS

    return list(WORKFLOWS)


def _interceptor(calls: list[_Call]) -> Interceptor:
    """A worker interceptor that appends every recording local activity to ``calls``.

    It runs inside the workflow sandbox; ``calls`` is this process's own list, and the
    models the workflow passes are the real classes (imported passed through).
    """
    from temporalio.worker import WorkflowOutboundInterceptor

    class Outbound(WorkflowOutboundInterceptor):
        def start_local_activity(
                self, input: StartLocalActivityInput) -> workflow.ActivityHandle[Any]:
            handle = self.next.start_local_activity(input)
            if input.activity in RECORDINGS and input.args:
                arg = input.args[0]
                # A copy: the workflow may change its object after the call, but the
                # activity got it as it was then (serialised).
                call = _Call(input.activity,
                             arg.model_copy(deep=True) if isinstance(arg, BaseModel) else arg,
                             workflow.now())
                calls.append(call)
                handle.add_done_callback(_on_done(call))
            return handle

    return outbound_interceptor(Outbound)


def outbound_interceptor(outbound: type[WorkflowOutboundInterceptor]) -> Interceptor:
    """A worker interceptor that puts ``outbound`` before every workflow's outbound calls.

    Args:
        outbound: Constructed with the next interceptor, once per workflow run.

    """
    from temporalio.worker import Interceptor, WorkflowInboundInterceptor

    class Inbound(WorkflowInboundInterceptor):
        def init(self, next_outbound: WorkflowOutboundInterceptor) -> None:
            super().init(outbound(next_outbound))

    class Wrapping(Interceptor):
        def workflow_interceptor_class(
                self, input: WorkflowInterceptorClassInput,
        ) -> type[WorkflowInboundInterceptor] | None:
            return Inbound

    return Wrapping()


def _on_done(call: _Call) -> Callable[[Any], None]:
    """The handle's done callback: the result, or None when it failed or was cancelled."""

    def done(handle: Any) -> None:
        if handle.cancelled() or handle.exception() is not None:
            return
        call.result = handle.result()
        call.completed_at = workflow.now()

    return done


def _as_model(value: Any, model: type[BaseModel] | None) -> Any:
    """``value`` as an instance of ``model`` (validated as resync decodes payloads)."""
    if model is None or value is None or isinstance(value, model):
        return value
    data = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    return model.model_validate(data, context=DECODE_CONTEXT)


def _reason(failure: Exception, history: WorkflowHistory) -> str:
    """Why a replay failed, short and without payloads.

    The failure's text is the SDK core's debug print of the task failure: its
    ``message`` (e.g. ``[TMPRL1100] Nondeterminism error: ...``, which names events, not
    data), unless that is encrypted by the engine's failure converter (an exception the
    workflow code raised: its message may quote a payload), when only its type is given.
    """
    text = str(failure)
    message = _MESSAGE.search(text)
    if message is not None and message.group(1) != "Encoded failure":
        reason = message.group(1)
    elif (kind := _TYPE.search(text)) is not None:
        name = history.events[0].workflow_execution_started_event_attributes.workflow_type.name
        reason = (f"this worker does not run workflow type {name!r}"
                  if kind.group(1) == "NotFoundError" else f"the workflow raised {kind.group(1)}")
    else:
        reason = _first_line(failure)
    return reason if len(reason) <= 160 else reason[:157] + "..."


async def replayed(data_converter: DataConverter, history: WorkflowHistory) -> list[Scheduled]:
    """The recording local activities of one run, in the order the workflow started them.

    Args:
        data_converter: The converter the workflows ran with (the client's), which
            decodes the markers' results.
        history: The run's history.

    Returns:
        One :class:`Scheduled` per call: its input, the workflow time it was started
        (``scheduled_at``) and resolved (``completed_at``), and its result (None when it
        failed or had not completed when the history ends).

    Raises:
        ReplayFailed: The history does not replay with this code (non-determinism, or a
            workflow type this worker does not run).

    """
    from temporalio.worker import Replayer

    calls: list[_Call] = []
    # An executor of our own, shut down after: the Replayer's default is never shut down.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        replayer = Replayer(workflows=_workflows(), data_converter=data_converter,
                            interceptors=[_interceptor(calls)],
                            workflow_task_executor=executor)
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    if result.replay_failure is not None:
        raise ReplayFailed(
            f"its history does not replay with this worker's code "
            f"({_reason(result.replay_failure, history)}): run resync with the version "
            "that ran it")
    scheduled: list[Scheduled] = []
    for call in calls:
        recording = RECORDINGS[call.activity_type]
        scheduled.append(Scheduled(
            activity_type=call.activity_type,
            input=_as_model(call.arg, recording.model),
            scheduled_at=call.started_at, started_at=call.started_at,
            completed_at=call.completed_at,
            result=_as_model(call.result, recording.result_model)))
    return scheduled
