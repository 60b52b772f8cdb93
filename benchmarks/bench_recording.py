"""What recording one case event costs: ``record_case_event`` alone, without Temporal.

``python benchmarks/bench_recording.py [--events 300] [--history PATH | --live]``

Replays the ``record_case_event`` inputs of a full two-stage complaint (acknowledge,
extend, respond, request and acknowledge stage 2, respond, complete two actions, close:
ten events) through the activity, as the worker runs it: the activities come from
``build_activities`` on a temporary SQLite database and outbox (no SMTP, no webhook), and
each call goes through ``temporalio.testing.ActivityEnvironment``. Every round opens a new
case with ``open_case`` under a fresh reference (the events' reference, letter ids and
notification ids rewritten to it), so each event does the full work of a first attempt.

The events come from a real case's history: by default the committed
``tests/histories/complaint_both_stages.json`` (no server, and independent of the workflow
code as it stands); ``--live`` runs one case through the ``Complaint`` workflow on a local
dev server first (as ``bench_history.py`` does) and uses its history, replayed to get the
inputs of the recording local activities a new case runs (``complaints.resync_replay``).

Prints the wall time per event (mean, p50, p99) and the CPU time per event (mean), after
one warm-up round that is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Run as a plain script from anywhere: make the project importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.api.enums.v1 import EventType  # noqa: E402
from temporalio.client import WorkflowHistory  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import ActivityEnvironment  # noqa: E402

from activities import build_activities  # noqa: E402
from complaints.logs import configure_logging  # noqa: E402
from complaints.resync import DECODE_CONTEXT  # noqa: E402
from complaints.resync_replay import has_local_activities, replayed  # noqa: E402
from complaints.settings import Settings  # noqa: E402
from models.events import CaseEvent, OpenCaseInput  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
#: The committed history of a full two-stage ``Complaint`` case.
DEFAULT_HISTORY = ROOT / "tests" / "histories" / "complaint_both_stages.json"


def recorded_inputs(history: WorkflowHistory) -> tuple[OpenCaseInput, list[CaseEvent]]:
    """The ``open_case`` input and every ``record_case_event`` input of one history.

    Args:
        history: A ``Complaint`` workflow's history.

    Returns:
        The case's opening and its events, in the order the workflow scheduled them.

    Raises:
        ValueError: If the history has no ``open_case`` or no ``record_case_event``.

    """
    opened: OpenCaseInput | None = None
    events: list[CaseEvent] = []
    converter = pydantic_data_converter.payload_converter
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        attributes = event.activity_task_scheduled_event_attributes
        name = attributes.activity_type.name
        if name not in ("open_case", "record_case_event"):
            continue
        value = converter.from_payloads(list(attributes.input.payloads))[0]
        if name == "open_case":
            opened = OpenCaseInput.model_validate(value, context=DECODE_CONTEXT)
        else:
            events.append(CaseEvent.model_validate(value, context=DECODE_CONTEXT))
    if has_local_activities(history):  # a new case's: their inputs are not in history
        for call in asyncio.run(replayed(pydantic_data_converter, history)):
            if call.activity_type == "open_case":
                opened = call.input
            elif call.activity_type == "record_case_event":
                events.append(call.input)
    if opened is None or not events:
        raise ValueError("the history has no open_case and record_case_event activities")
    return opened, events


def under(reference: str, opened: OpenCaseInput,
          events: list[CaseEvent]) -> tuple[OpenCaseInput, list[CaseEvent]]:
    """The same opening and events under another reference (ids derived from it too)."""
    old = opened.intake.reference

    def moved(model: Any) -> Any:
        text = model.model_dump_json().replace(old, reference)
        return type(model).model_validate_json(text, context=DECODE_CONTEXT)

    return moved(opened), [moved(e) for e in events]


async def live_history() -> WorkflowHistory:
    """Run one full two-stage case on a local dev server and return its history."""
    import concurrent.futures

    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

    # Imported here: only --live needs the workflow code.
    from benchmarks.bench_history import CLI, run_case
    from workflows.complaint import (
        SA_HANDLER,
        SA_LANDLORD,
        SA_NEXT_DEADLINE,
        SA_OVERDUE,
        SA_STAGE,
        SA_STATE,
        ComplaintWorkflow,
    )

    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(CLI), data_converter=pydantic_data_converter,
        search_attributes=[SA_STATE, SA_STAGE, SA_NEXT_DEADLINE, SA_LANDLORD, SA_HANDLER,
                           SA_OVERDUE])
    try:
        with tempfile.TemporaryDirectory() as tmp:
            task_queue = f"bench-{uuid.uuid4().hex[:8]}"
            with concurrent.futures.ThreadPoolExecutor(4) as executor:
                worker = Worker(env.client, task_queue=task_queue,
                                workflows=[ComplaintWorkflow],
                                activities=build_activities(_settings(Path(tmp))),
                                activity_executor=executor)
                async with worker:
                    handle = await run_case(env.client, task_queue, True, [])
                    return await handle.fetch_history()
    finally:
        await env.shutdown()


def _settings(folder: Path) -> Settings:
    """Settings for a throwaway SQLite database and outbox in ``folder`` (no email)."""
    return Settings(data_dir=folder, database_url=f"sqlite:///{folder}/c.db",
                    outbox_dir=folder / "outbox", smtp_host=None, webhook_url=None)


def _activity(activities: list[Callable[..., Any]], name: str) -> Callable[..., Any]:
    return next(a for a in activities if getattr(a, "__name__", "") == name)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 1)) - 1))]


def run(history: WorkflowHistory, total_events: int) -> None:
    """Replay the history's events under fresh references and print the timings."""
    opened, events = recorded_inputs(history)
    rounds = max(1, -(-total_events // len(events)))
    env = ActivityEnvironment()
    walls: list[float] = []
    cpus: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        activities = build_activities(_settings(Path(tmp)))
        open_case = _activity(activities, "open_case")
        record = _activity(activities, "record_case_event")
        # Round 0 warms up (imports, templates, the database file) and is not counted.
        for number in range(rounds + 1):
            reference = f"CMP-2026-{number + 1:06d}"
            case_opened, case_events = under(reference, opened, events)
            env.run(open_case, case_opened)
            for event in case_events:
                wall, cpu = time.perf_counter(), time.process_time()
                env.run(record, event)
                if number:
                    walls.append(time.perf_counter() - wall)
                    cpus.append(time.process_time() - cpu)
    print(f"{len(walls)} events ({rounds} cases of {len(events)} events), "
          f"one warm-up case not counted\n")
    print("| per recorded event | ms |")
    print("|---|---:|")
    print(f"| wall mean | {statistics.mean(walls) * 1e3:.2f} |")
    print(f"| wall p50 | {percentile(walls, 0.5) * 1e3:.2f} |")
    print(f"| wall p99 | {percentile(walls, 0.99) * 1e3:.2f} |")
    print(f"| CPU mean | {statistics.mean(cpus) * 1e3:.2f} |")


def main() -> None:
    """Parse the arguments, get the history and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300,
                        help="events to time (rounded up to whole cases)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--history", type=Path, default=DEFAULT_HISTORY,
                        help="a Complaint history as JSON (default: %(default)s)")
    source.add_argument("--live", action="store_true",
                        help="record a fresh case on a local dev server first")
    args = parser.parse_args()
    # As bench_history.py: the activities' info lines would cost and clutter.
    configure_logging(level="WARNING")
    if args.live:
        history = asyncio.run(live_history())
    else:
        history = WorkflowHistory.from_json("bench", json.loads(args.history.read_text()))
    run(history, args.events)


if __name__ == "__main__":
    main()
