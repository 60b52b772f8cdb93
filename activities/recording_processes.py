"""The case's recording activities run in helper processes beside the worker's own.

``open_case`` and ``record_case_event`` are the product's real work: the read model, audit,
letters rendered and checked, outbox files and emails, in Python. In the worker's own
threads they hold its interpreter lock, and the workflow tasks of every other case wait
for it: the benchmark measured the worker process at one core while the machine had
more. So the worker (``RECORDING_PROCESSES``, default 2) hands each recording to a helper
process and waits for it with the lock released.

- **One case, one helper.** A case always goes to the same helper (a CRC-32 of its
  reference), so its events are recorded one after another, and a retry meets the
  process memory of the attempt before it (``OnceEmailer``'s emails in flight).
- **The same code.** Each helper builds its own :class:`CaseworkActivities` from the
  worker's settings (its own engine, outbox and mailer) and runs the activity as the
  worker would; the inputs and results cross by pickle, without being validated again.
- **Failures.** An ``ApplicationError`` comes back as the same error (type, message,
  non-retryable). Any other exception comes back as a retryable ``ApplicationError`` of
  its class name and message, as Temporal would have reported it. A helper that died
  (killed, out of memory) is replaced, and the attempt fails retryable
  (``RecordingProcessLost``): Temporal runs it again, and the recording is idempotent.
- **Waiting.** The worker's thread beats for a regular activity while it waits (cases of
  the first workflow type). A cancellation stops the wait, not the helper: the recording
  runs to its end, and the retry, sent to the same helper, finds it done.

Helpers start with the worker and stop with it. A worker that is killed takes them with
it: each helper watches the worker's process and ends the moment it does.
``RECORDING_PROCESSES=0`` records in the worker's threads.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import select
import threading
import time
import zlib
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from types import TracebackType
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeats import heartbeat
from complaints.db import database_file
from complaints.settings import Settings
from models.events import CaseContext, CaseEvent, OpenCaseInput, Recorded

__all__ = ["WAIT_BEAT_SECONDS", "RecordingProcesses"]

#: How often the worker's waiting thread wakes to beat (``heartbeat`` beats only when due).
WAIT_BEAT_SECONDS = 5.0

#: The helper's own activities (one per helper process; see ``_start``).
_CASEWORK: Any = None


def _start(settings: Settings, policy_dir: Path | None, worker: int) -> None:
    """In a new helper: end with the worker, log as it does, build the activities."""
    global _CASEWORK
    from activities import build_casework
    from complaints.logs import configure_logging

    _end_with(worker)
    configure_logging(json=settings.log_json, level=settings.log_level)
    path = database_file(settings.effective_database_url())
    if path is not None and not path.exists():
        # Opening it would create an empty one. The worker's own check of its database
        # says what happened and stops it; until then each attempt fails, retryable.
        raise RuntimeError("the complaints database file is missing")
    _CASEWORK = build_casework(settings, policy_dir)


def _end_with(worker: int) -> None:
    """End this helper the moment the worker process ``worker`` ends, as a kill would.

    A helper's parent is the fork server, which outlives a worker killed alone as long as
    the helpers live. Without this, a helper would finish the recording it was running
    while the next worker retries it: two attempts of one email in two processes.
    """
    try:
        handle = os.pidfd_open(worker)  # Linux: readable once the process has ended
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):
        handle = None  # no pidfd here: look every second instead

    def watch() -> None:
        if handle is not None:
            select.select([handle], [], [])
        else:
            while _running(worker):
                time.sleep(1.0)
        os._exit(1)  # at once, as SIGKILL would: the next worker's retry takes it over

    threading.Thread(target=watch, name="end-with-worker", daemon=True).start()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _ready() -> None:
    """In a helper: nothing (submitted once to start it)."""


def _run(name: str, input: Any) -> tuple[Any, tuple[str, str, bool] | None]:
    """In a helper: run one recording; return its result, or its error as plain data."""
    try:
        return getattr(_CASEWORK, name)(input), None
    except ApplicationError as exc:
        return None, (exc.type or "ApplicationError", exc.message, exc.non_retryable)
    except Exception as exc:  # noqa: BLE001 - reported to Temporal as it would be in-thread
        return None, (type(exc).__name__, str(exc), False)


class RecordingProcesses:
    """The helper processes, and the two activities that send them the recordings."""

    def __init__(self, settings: Settings, count: int, policy_dir: Path | None = None) -> None:
        """Start ``count`` helpers (each builds its activities before its first recording).

        Args:
            settings: The worker's settings, for the helpers to build their activities.
            count: How many helper processes (at least 1).
            policy_dir: The worker's own policy folder, if any.

        """
        if count < 1:
            raise ValueError("at least one recording process")
        self._settings = settings
        self._policy_dir = policy_dir
        # forkserver, not fork: the worker has threads (and Temporal's core) to not copy.
        # The server imports the activities once; each helper starts from that import.
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["activities"])
        self._lock = threading.Lock()
        self._pools = [self._new_pool() for _ in range(count)]
        for pool in self._pools:
            pool.submit(_ready)  # start the helpers now, not on a case's first recording

    def _new_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        return concurrent.futures.ProcessPoolExecutor(
            1, mp_context=self._context, initializer=_start,
            initargs=(self._settings, self._policy_dir, os.getpid()))

    def __enter__(self) -> RecordingProcesses:
        """Use as a context: the helpers stop at its end."""
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        """Stop the helpers, once the recordings they are running are done."""
        self.close()

    def close(self) -> None:
        """Stop the helpers, once the recordings they are running are done."""
        with self._lock:
            for pool in self._pools:
                pool.shutdown(wait=True, cancel_futures=True)

    @activity.defn(name="open_case")
    def open_case(self, input: OpenCaseInput) -> CaseContext:
        """``CaseworkActivities.open_case``, in the case's helper."""
        result: CaseContext = self._call(input.intake.reference, "open_case", input)
        return result

    @activity.defn(name="record_case_event")
    def record_case_event(self, input: CaseEvent) -> Recorded:
        """``CaseworkActivities.record_case_event``, in the case's helper."""
        result: Recorded = self._call(input.reference, "record_case_event", input)
        return result

    def _call(self, reference: str, name: str, input: Any) -> Any:
        number = zlib.crc32(reference.encode("utf-8")) % len(self._pools)
        pool = self._pools[number]
        try:
            future = pool.submit(_run, name, input)
            while True:
                try:
                    result, error = future.result(timeout=WAIT_BEAT_SECONDS)
                    break
                except concurrent.futures.TimeoutError:
                    heartbeat(name)
        except BrokenProcessPool:
            self._replace(number, pool)
            raise ApplicationError("the recording process stopped; the recording is tried "
                                   "again", type="RecordingProcessLost") from None
        if error is not None:
            kind, message, non_retryable = error
            raise ApplicationError(message, type=kind, non_retryable=non_retryable)
        return result

    def _replace(self, number: int, broken: concurrent.futures.ProcessPoolExecutor) -> None:
        """Put a new helper in place of one that died (once, whoever noticed first)."""
        with self._lock:
            if self._pools[number] is broken:
                self._pools[number] = self._new_pool()
        broken.shutdown(wait=False, cancel_futures=True)
