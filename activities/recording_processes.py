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
- **Waiting.** The two activities are ``async``: the worker's event loop writes each
  recording to the helper's socket and reads the result back, with no thread between.
  Through ``ProcessPoolExecutor``, as until 2026-11-28, each recording crossed an activity
  thread, the pool's feeder and manager threads and two wake-ups of the loop: those
  threads took about 20 ms of the worker's CPU a case, and the loop now spends about 10
  ms doing their work itself (``benchmarks/bench_history.py``). The wait beats for a regular
  activity (cases of the first workflow type). A cancellation stops the wait, not the
  helper: the recording runs to its end, and the retry, sent to the same helper, finds it
  done. Its late result is dropped.

Helpers start with the worker and stop with it. Each is a ``forkserver`` process joined
to the worker by a socket pair. The frames are ``multiprocessing.connection``'s: a 4-byte
big-endian length and a pickle, ``(number, name, input)`` one way and ``(number, result,
error)`` back. A worker that is killed takes them with it: each helper watches the
worker's process and ends the moment it does. ``RECORDING_PROCESSES=0`` records in the
worker's threads.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import pickle
import select
import socket
import struct
import threading
import time
import zlib
from multiprocessing.connection import Connection
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


def _serve(channel: socket.socket, settings: Settings, policy_dir: Path | None,
           worker: int) -> None:
    """A helper's life: build the activities, then run each recording sent, in order.

    Ends when the worker closes its end of the socket, or with the worker (``_end_with``).
    A failure to start (a missing database) ends the helper: the worker fails the
    recordings it sent as lost, retryable.
    """
    _start(settings, policy_dir, worker)
    connection = Connection(channel.detach())
    while True:
        try:
            number, name, input = pickle.loads(connection.recv_bytes())
        except EOFError:
            return  # the worker is closing: every recording sent has been run
        result, error = _run(name, input)
        try:
            reply = pickle.dumps((number, result, error), pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - as the pool reported a result it could not send
            reply = pickle.dumps((number, None, (type(exc).__name__, str(exc), False)))
        try:
            connection.send_bytes(reply)
        except OSError:
            return  # the worker stopped waiting (closed): nobody to answer


def _run(name: str, input: Any) -> tuple[Any, tuple[str, str, bool] | None]:
    """In a helper: run one recording; return its result, or its error as plain data."""
    try:
        return getattr(_CASEWORK, name)(input), None
    except ApplicationError as exc:
        return None, (exc.type or "ApplicationError", exc.message, exc.non_retryable)
    except Exception as exc:  # noqa: BLE001 - reported to Temporal as it would be in-thread
        return None, (type(exc).__name__, str(exc), False)


class _Lost(Exception):
    """The helper a recording was sent to ended before answering."""


#: A frame's header, as ``multiprocessing.connection.Connection`` writes and reads it.
_HEADER = struct.Struct("!i")


class _Helper(asyncio.Protocol):
    """One helper process and the worker's end of its socket, read on the event loop.

    Bound to the first event loop that sends it a recording (the worker's own).
    """

    def __init__(self, context: Any, settings: Settings, policy_dir: Path | None) -> None:
        ours, theirs = socket.socketpair()
        self.process = context.Process(target=_serve, name="recording",
                                       args=(theirs, settings, policy_dir, os.getpid()),
                                       daemon=True)
        self.process.start()
        theirs.close()
        self._socket = ours
        self._numbers = itertools.count()
        self._waiting: dict[int, asyncio.Future[tuple[Any, Any]]] = {}
        self._received = bytearray()
        self._transport: asyncio.Transport | None = None
        self._connecting: asyncio.Future[Any] | None = None
        self.lost = False

    async def call(self, name: str, input: Any) -> asyncio.Future[tuple[Any, Any]]:
        """Send one recording; return the future of its ``(result, error)``.

        Raises:
            _Lost: The helper has ended.

        """
        loop = asyncio.get_running_loop()
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(
                loop.create_connection(lambda: self, sock=self._socket))
        try:
            await asyncio.shield(self._connecting)
        except OSError:
            raise _Lost from None  # its socket is unusable: a new helper takes its place
        if self.lost or self._transport is None:
            raise _Lost
        number = next(self._numbers)
        answer: asyncio.Future[tuple[Any, Any]] = loop.create_future()
        self._waiting[number] = answer
        data = pickle.dumps((number, name, input), pickle.HIGHEST_PROTOCOL)
        # The transport buffers and keeps frames whole and in order: never a blocking write.
        self._transport.write(_HEADER.pack(len(data)) + data)
        return answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """The worker's end is read on the loop from now on."""
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        """Answer each recording whose whole reply has arrived."""
        self._received += data
        while len(self._received) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._received)
            end = _HEADER.size + size
            if len(self._received) < end:
                return
            number, result, error = pickle.loads(self._received[_HEADER.size:end])
            del self._received[:end]
            answer = self._waiting.pop(number, None)
            if answer is not None and not answer.done():  # done: its wait was cancelled
                answer.set_result((result, error))

    def connection_lost(self, exc: Exception | None) -> None:
        """The helper ended (killed, or failed to start): its recordings are lost."""
        self.lost = True
        for answer in self._waiting.values():
            if not answer.done():
                answer.set_exception(_Lost())
        self._waiting.clear()

    def close(self, timeout: float) -> None:
        """Tell the helper no more recordings come; wait for it to finish those sent."""
        self.lost = True
        try:
            self._socket.shutdown(socket.SHUT_WR)  # works whatever loop the transport is on
        except OSError:
            pass  # already closed: the helper has ended
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout)
        try:
            if self._transport is not None:
                self._transport.close()
                return
        except RuntimeError:
            pass  # its event loop is closed already (a test's): close the socket itself
        self._socket.close()


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
        self._helpers = [self._new_helper() for _ in range(count)]

    def _new_helper(self) -> _Helper:
        return _Helper(self._context, self._settings, self._policy_dir)

    def pids(self) -> list[int]:
        """The helpers' process ids, in order (for operators and tests)."""
        return [helper.process.pid for helper in self._helpers]

    def __enter__(self) -> RecordingProcesses:
        """Use as a context: the helpers stop at its end."""
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        """Stop the helpers, once the recordings they are running are done."""
        self.close()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the helpers, once the recordings sent to them are done."""
        for helper in self._helpers:
            helper.close(timeout)

    @activity.defn(name="open_case")
    async def open_case(self, input: OpenCaseInput) -> CaseContext:
        """``CaseworkActivities.open_case``, in the case's helper."""
        result: CaseContext = await self._call(input.intake.reference, "open_case", input)
        return result

    @activity.defn(name="record_case_event")
    async def record_case_event(self, input: CaseEvent) -> Recorded:
        """``CaseworkActivities.record_case_event``, in the case's helper."""
        result: Recorded = await self._call(input.reference, "record_case_event", input)
        return result

    async def _call(self, reference: str, name: str, input: Any) -> Any:
        number = zlib.crc32(reference.encode("utf-8")) % len(self._helpers)
        helper = self._helpers[number]
        try:
            answer = await helper.call(name, input)
            try:
                # ``wait`` leaves the answer pending at each beat's timeout.
                while not (await asyncio.wait({answer}, timeout=WAIT_BEAT_SECONDS))[0]:
                    heartbeat(name)
            except asyncio.CancelledError:
                answer.cancel()  # the wait ends; the helper finishes, its answer is dropped
                raise
            result, error = answer.result()
        except _Lost:
            self._replace(number, helper)
            raise ApplicationError("the recording process stopped; the recording is tried "
                                   "again", type="RecordingProcessLost") from None
        if error is not None:
            kind, message, non_retryable = error
            raise ApplicationError(message, type=kind, non_retryable=non_retryable)
        return result

    def _replace(self, number: int, lost: _Helper) -> None:
        """Put a new helper in place of one that ended (once, whoever noticed first)."""
        if self._helpers[number] is lost:
            self._helpers[number] = self._new_helper()
            lost.close(timeout=1.0)
