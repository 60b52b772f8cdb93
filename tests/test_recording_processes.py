"""The recording activities in helper processes: the same records, errors and recovery.

Real helper processes (``forkserver``) on a real SQLite database and outbox; the inputs
are a full two-stage case's, taken from a committed history as ``bench_recording.py`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select
from temporalio.client import WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import build_activities
from activities.recording_processes import RecordingProcesses
from benchmarks.bench_recording import DEFAULT_HISTORY, recorded_inputs, under
from complaints.db import make_engine, session_factory
from complaints.settings import Settings
from models.events import CaseEvent, OpenCaseInput
from models.tables import AuditRow, DeliveryRow, LetterRow

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def case_inputs() -> tuple[OpenCaseInput, list[CaseEvent]]:
    """The opening and events of the committed two-stage case."""
    history = WorkflowHistory.from_json("h", json.loads(DEFAULT_HISTORY.read_text()))
    return recorded_inputs(history)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A SQLite database and outbox in a temporary folder, no email."""
    return Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/c.db",
                    outbox_dir=tmp_path / "outbox", smtp_host=None, webhook_url=None)


@pytest.fixture
def helpers(settings: Settings) -> Iterator[RecordingProcesses]:
    """Two helper processes (the schema made first, as the worker does)."""
    build_activities(settings)
    with RecordingProcesses(settings, 2) as processes:
        yield processes


def _rows(settings: Settings, reference: str) -> tuple[int, int, int]:
    """A case's audit rows, letters and recorded deliveries."""
    with session_factory(make_engine(settings.effective_database_url()))() as session:
        deliveries = session.exec(select(DeliveryRow).where(
            col(DeliveryRow.letter_id).startswith(reference + ":"))).all()
        return _count(session, AuditRow, reference), _count(session, LetterRow, reference), \
            len(deliveries)


def _count(session: Session, table: type[AuditRow] | type[LetterRow], reference: str) -> int:
    return len(session.exec(select(table).where(table.reference == reference)).all())


async def _opened(helpers: RecordingProcesses, reference: str,
                  case_inputs: tuple[OpenCaseInput, list[CaseEvent]],
                  ) -> tuple[ActivityEnvironment, list[CaseEvent]]:
    """Open the case under ``reference`` through the helpers; return its events."""
    env = ActivityEnvironment()
    opened, events = under(reference, *case_inputs)
    await env.run(helpers.open_case, opened)
    return env, events


def test_a_case_recorded_in_helpers_matches_one_recorded_in_threads(
        settings: Settings, helpers: RecordingProcesses,
        case_inputs: tuple[OpenCaseInput, list[CaseEvent]]) -> None:
    """The same case recorded both ways gives the same letters, audit rows and deliveries."""
    env = ActivityEnvironment()
    in_threads = {a.__name__: a for a in build_activities(settings)}

    async def record_both() -> dict[str, Any]:
        results = {}
        for reference, open_case, record in (
                ("CMP-2026-000101", helpers.open_case, helpers.record_case_event),
                ("CMP-2026-000102", in_threads["open_case"], in_threads["record_case_event"])):
            opened, events = under(reference, *case_inputs)
            context = await _awaited(env.run(open_case, opened))
            recorded = [await _awaited(env.run(record, event)) for event in events]
            results[reference] = (context, [[(r.kind, r.stage, r.seq) for r in rec.letters]
                                            for rec in recorded])
        return results

    results = asyncio.run(record_both())
    helped, threaded = results["CMP-2026-000101"], results["CMP-2026-000102"]
    assert helped[0] == threaded[0]
    assert helped[1] == threaded[1]
    assert sum(len(letters) for letters in helped[1]) > 0
    assert _rows(settings, "CMP-2026-000101") == _rows(settings, "CMP-2026-000102")
    assert min(_rows(settings, "CMP-2026-000101")) > 0


async def _awaited(result: Any) -> Any:
    """The result of a sync activity, or of an async one awaited."""
    return await result if asyncio.iscoroutine(result) else result


def test_an_event_recorded_twice_in_helpers_is_recorded_once(
        settings: Settings, helpers: RecordingProcesses,
        case_inputs: tuple[OpenCaseInput, list[CaseEvent]]) -> None:
    """A retry of an event through the helpers writes nothing twice."""
    async def twice() -> tuple[Any, Any, tuple[int, int, int]]:
        env, events = await _opened(helpers, "CMP-2026-000103", case_inputs)
        first = await env.run(helpers.record_case_event, events[0])
        before = _rows(settings, "CMP-2026-000103")
        again = await env.run(helpers.record_case_event, events[0])
        return first, again, before

    first, again, before = asyncio.run(twice())
    assert again.letters == first.letters
    assert _rows(settings, "CMP-2026-000103") == before


def test_a_domain_error_in_a_helper_comes_back_as_the_same_error(
        helpers: RecordingProcesses, case_inputs: tuple[OpenCaseInput, list[CaseEvent]]) -> None:
    """An event of a case never opened is refused with the in-thread error, retryable."""
    _, events = under("CMP-2026-000104", *case_inputs)
    with pytest.raises(ApplicationError) as refused:
        asyncio.run(ActivityEnvironment().run(helpers.record_case_event, events[0]))
    assert refused.value.type == "IntakeNotRecorded"
    assert not refused.value.non_retryable
    assert "not recorded yet" in refused.value.message


def test_a_helper_that_died_is_replaced_and_the_attempt_retried(
        settings: Settings, helpers: RecordingProcesses,
        case_inputs: tuple[OpenCaseInput, list[CaseEvent]]) -> None:
    """A killed helper fails the attempt retryable; the next attempt runs in a new helper."""
    async def killed_then_retried() -> tuple[ApplicationError, Any, list[int]]:
        env, events = await _opened(helpers, "CMP-2026-000105", case_inputs)
        await env.run(helpers.record_case_event, events[0])
        assert events[1].letters, "the second event (the acknowledgement) sends a letter"
        killed = helpers.pids()
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(ApplicationError) as lost:
            await env.run(helpers.record_case_event, events[1])
        return lost.value, await env.run(helpers.record_case_event, events[1]), killed

    lost, recorded, killed = asyncio.run(killed_then_retried())
    assert lost.type == "RecordingProcessLost"
    assert not lost.non_retryable
    assert recorded.letters
    assert _rows(settings, "CMP-2026-000105")[1] == len(recorded.letters)
    assert set(helpers.pids()) - set(killed), "the case's helper is a new process"


def test_a_cancelled_wait_leaves_the_recording_to_finish(
        settings: Settings, helpers: RecordingProcesses,
        case_inputs: tuple[OpenCaseInput, list[CaseEvent]]) -> None:
    """A cancelled attempt stops waiting only: the helper records it, and a retry finds it done."""
    reference = "CMP-2026-000107"

    async def cancelled_then_retried() -> tuple[Any, tuple[int, int, int], tuple[int, int, int]]:
        env, events = await _opened(helpers, reference, case_inputs)
        await env.run(helpers.record_case_event, events[0])
        before = _rows(settings, reference)
        attempt = asyncio.ensure_future(env.run(helpers.record_case_event, events[1]))
        await asyncio.sleep(0.05)  # sent to the helper, which takes longer to record a letter
        attempt.cancel()
        with pytest.raises(asyncio.CancelledError):
            await attempt
        deadline = time.monotonic() + 30
        while _rows(settings, reference) == before and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # the cancelled attempt's recording, finishing
        finished = _rows(settings, reference)
        return await env.run(helpers.record_case_event, events[1]), finished, before

    retried, finished, before = asyncio.run(cancelled_then_retried())
    assert finished[1] == before[1] + len(retried.letters) > before[1]
    assert _rows(settings, reference) == finished  # the retry wrote nothing again


#: A worker in miniature: helpers started, their process ids printed, then a long wait.
_WORKER = """
import sys, time
from pathlib import Path
from activities import build_activities
from activities.recording_processes import RecordingProcesses
from complaints.settings import Settings
folder = Path(sys.argv[1])
settings = Settings(data_dir=folder, database_url=f"sqlite:///{folder}/c.db",
                    outbox_dir=folder / "outbox", smtp_host=None, webhook_url=None)
build_activities(settings)
helpers = RecordingProcesses(settings, 2)
print(" ".join(str(pid) for pid in helpers.pids()), flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_helpers_end_when_their_worker_is_killed_alone(tmp_path: Path) -> None:
    """SIGKILL of the worker process alone (not its group) ends its helpers too."""
    worker = subprocess.Popen([sys.executable, "-c", _WORKER, str(tmp_path)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert worker.stdout is not None
        pids = [int(pid) for pid in worker.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(pid) for pid in pids)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
        deadline = time.monotonic() + 20
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in pids)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)


def test_a_helper_never_creates_a_missing_database(
        settings: Settings, case_inputs: tuple[OpenCaseInput, list[CaseEvent]]) -> None:
    """A helper started after the database file was deleted fails the attempt, creating nothing."""
    build_activities(settings)
    database = Path(settings.data_dir) / "c.db"
    assert database.exists()
    database.unlink()
    opened, _ = under("CMP-2026-000106", *case_inputs)
    with RecordingProcesses(settings, 1) as helpers, \
            pytest.raises(ApplicationError) as lost:
        asyncio.run(ActivityEnvironment().run(helpers.open_case, opened))
    assert lost.value.type == "RecordingProcessLost"
    assert not database.exists()
