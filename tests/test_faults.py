"""Fault tests: real processes killed, restarted and cut off; nothing lost, nothing twice.

Each test runs the product as production does (see ``tests/faults.py``): a Temporal dev
server subprocess with a persistent database file, the worker as ``python worker.py``
(a subprocess, so that ``SIGKILL`` is real), a SQLite or PostgreSQL database, an outbox
folder and a real SMTP server (aiosmtpd, in this process). Staff actions are sent the way
``complaints`` sends them: validated updates, here with fixed ids and generous patience,
so that an action sent while no worker is up simply waits.

After the faults every case is checked against its own workflow (``faults.verify``):
letters once in the database, once as .txt and .html in the outbox, once per recipient in
the SMTP server with one Message-ID; deliveries, notifications, audit trails (1..n) and
the read model equal to the query. The figures each test measured go to
``.data/reliability/<test>.json`` (quoted in RELIABILITY.md).

Run them with ``bash scripts/test.sh -m slow tests/test_faults.py`` (``FAULTS_SEED`` picks
the random kill moments; the default is fixed).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import random
import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select
from temporalio.client import Client
from temporalio.testing import TimeSkipper, TimeSkippingConfig

from activities.mail import message_id_for
from models.messages import CaseView, DeadlineStatus, Intake
from models.tables import DeadlineRow, NotificationRow
from tests.faults import (
    LETTERS_PER_LIFECYCLE,
    LIFECYCLE,
    RECIPIENTS,
    STAFF_DOMAIN,
    DriveStats,
    Received,
    SmtpSink,
    SqliteOutage,
    TemporalServer,
    WorkerProcess,
    _sessions,
    act,
    activity_retries,
    connect,
    drive,
    in_commit_window,
    intake,
    lodge,
    outbox_letters,
    query,
    verify,
    wait_recorded,
    worker_settings,
    write_figures,
)
from tests.pg import pg_start, pg_stop, postgres_url  # noqa: F401 - the fixture
from workflows.complaint import london_date

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("FAULTS_SEED", "20261123"))


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """A scratch folder for the server's file, the database and the outbox.

    In memory (``/dev/shm``) when there is one: the processes see the same files across
    kills and restarts (the page cache outlives them), without waiting on the disk for
    every fsync. The logs are copied to ``tmp_path`` at the end.
    """
    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(prefix="faults-", dir=shm)) if shm.is_dir() else tmp_path
    try:
        yield folder
    finally:
        if folder != tmp_path:
            for log in folder.glob("*.log"):
                shutil.copy(log, tmp_path / log.name)
            shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Rig:
    """One test's surroundings: server, worker, SMTP sink, database, outbox, client."""

    tmp: Path
    server: TemporalServer
    worker: WorkerProcess
    sink: SmtpSink
    database_url: str
    outbox: Path
    task_queue: str
    client: Client
    skipper: TimeSkipper

    @property
    def staff(self) -> Client:
        """The client staff actions go through (it stamps time skipping off, as tests do)."""
        return self.skipper.client


@contextlib.asynccontextmanager
async def rig(tmp: Path, *, database_url: str | None = None,
              commit_delay: float = 0.0) -> AsyncIterator[Rig]:
    """Start the server, the SMTP sink and the worker; stop them all at the end."""
    server = TemporalServer(tmp)
    sink = SmtpSink(commit_delay=commit_delay)
    database_url = database_url or f"sqlite:///{tmp / 'complaints.db'}"
    outbox = tmp / "outbox"
    task_queue = f"faults-{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(tmp, worker_settings(server, task_queue, database_url, outbox,
                                                tmp / "data", sink.port))
    try:
        sink.start()
        server.start()
        await server.ready()
        worker.start()
        await worker.ready()
        client = await connect(server.address)
        skipper = TimeSkipper(client, config=TimeSkippingConfig(enabled=False))
        yield Rig(tmp, server, worker, sink, database_url, outbox, task_queue, client,
                  skipper)
    finally:
        worker.stop()
        server.stop()
        sink.stop()


def today() -> dt.date:
    """Today in London (the receipt date of the test cases)."""
    return london_date(dt.datetime.now(dt.UTC))


async def run_cases(r: Rig, intakes: list[Intake], concurrency: int, stats: DriveStats,
                    progress: list[int] | None = None, steps: Counter[str] | None = None,
                    hold: dict[str, asyncio.Event] | None = None) -> dict[str, CaseView]:
    """Take every case through the full lifecycle, ``concurrency`` at a time.

    ``progress[0]`` counts the updates answered and ``steps`` each step's; a case in
    ``hold`` is lodged at once and driven once its event is set.
    """
    gate = asyncio.Semaphore(concurrency)

    def tick(name: str) -> None:
        if progress is not None:
            progress[0] += 1
        if steps is not None:
            steps[name] += 1

    async def one(case: Intake) -> CaseView:
        if hold is not None and case.reference in hold:
            await lodge(r.staff, r.task_queue, case, stats)
            await hold[case.reference].wait()
        async with gate:
            return await drive(r.staff, r.task_queue, case, LIFECYCLE, stats, tick)

    views = await asyncio.gather(*(one(case) for case in intakes))
    return {v.reference: v for v in views}


async def check(r: Rig, intakes: list[Intake], expect_state: str | None,
                commit_window: list[tuple[str, str]] | None = None) -> tuple[
        dict[str, Any], list[str]]:
    """Wait for the records to catch up, then verify everything; return figures, problems."""
    assert r.worker.alive
    references = [i.reference for i in intakes]
    views = await wait_recorded(r.staff, references, r.database_url)
    result = verify(views, {i.reference: i for i in intakes}, r.database_url, r.outbox,
                    r.sink, expect_state=expect_state, commit_window=commit_window or ())
    result.figures["activity_retries"] = await activity_retries(r.staff, references)
    return result.figures, result.problems


# --- 1. the worker killed again and again ------------------------------------------------

CASES = int(os.environ.get("FAULTS_CASES", "100"))
CONCURRENCY = 50
KILLS = int(os.environ.get("FAULTS_KILLS", "5"))
#: Cases lodged and left waiting until their acknowledgement deadline is skipped past (a
#: breach: staff are told), then taken through the lifecycle like the others, late.
BREACH_CASES = 8
#: Which kill first skips the waiting cases past their deadline, then waits for a staff
#: notification in the middle of its SMTP conversation.
STAFF_KILL = 1
ACK_DEADLINE = "stage1_acknowledgement#1"


@dataclass
class Kill:
    """One SIGKILL of the worker and what was going on at that moment."""

    at_s: float
    aimed_at: str
    updates_done_pct: float
    cases_in_stage2: int
    cases_closed: int
    letters_in_smtp: int
    staff_emails_in_smtp: int
    outbox_letters: int
    emails_accepted: int
    in_commit_window: list[tuple[str, str]] = field(default_factory=list)
    down_s: float = 0.0


def kill_schedule(rng: random.Random, count: int) -> list[float]:
    """The share of all updates after which each kill comes: spread over the whole run."""
    return [min(0.97, (number + rng.uniform(0.35, 0.75)) / count) for number in range(count)]


async def skip_past_deadline(r: Rig, reference: str, key: str) -> None:
    """Fast-forward one case's clock a minute past its deadline ``key``."""
    handle = r.staff.get_workflow_handle(reference)
    view = await query(r.staff, reference)
    due = next(d for d in view.deadlines if d.key == key)
    gap = due.ends_at + dt.timedelta(minutes=1) - await r.skipper.get_current_time(handle)
    assert await r.skipper.fast_forward(handle, gap)


async def kill_repeatedly(r: Rig, rng: random.Random, kills: list[Kill], total: int,
                          progress: list[int], steps: Counter[str],
                          hold: dict[str, asyncio.Event], started: float) -> None:
    """SIGKILL the worker ``KILLS`` times as the updates progress, restarting it each time.

    Kill ``STAFF_KILL`` first starts skipping the held cases past their acknowledgement
    deadline (the server moves their clocks as the worker handles their timers), then
    waits for a staff notice to be in the middle of its SMTP conversation; the others
    alternate between waiting for a letter there and no wait at all. Once the breaches
    are recorded (and emailed) the held cases are released.
    """
    releaser: asyncio.Task[int] | None = None
    skipping: asyncio.Future[list[None]] | None = None
    for number, share in enumerate(kill_schedule(rng, KILLS)):
        while progress[0] < share * total:
            await asyncio.sleep(0.05)
        aimed_at = "staff email" if number == STAFF_KILL else \
            "letter email" if number % 2 == 0 else "any moment"
        if number == STAFF_KILL:
            skipping = asyncio.gather(*(skip_past_deadline(r, ref, ACK_DEADLINE)
                                        for ref in hold))
        waiting = {"staff email": lambda: r.sink.staff_in_data,
                   "letter email": lambda: r.sink.in_data}.get(aimed_at)
        if waiting is not None:
            give_up = time.monotonic() + 60
            while waiting() == 0 and time.monotonic() < give_up:
                await asyncio.sleep(0.002)
        in_smtp, staff_in_smtp = r.sink.in_data, r.sink.staff_in_data
        r.worker.kill()
        at = time.monotonic()
        # The worker is dead: emails the server accepted that it had not noted yet were in
        # SMTP's commit window (see RELIABILITY.md); earlier kills' are counted there.
        seen = {pair for k in kills for pair in k.in_commit_window}
        window = [(m.message_id, m.rcpt) for m in in_commit_window(
            r.database_url, r.outbox, r.sink.snapshot())]
        kill = Kill(at_s=round(at - started, 2), aimed_at=aimed_at,
                    updates_done_pct=round(100 * progress[0] / total, 1),
                    cases_in_stage2=steps["request_escalation"] - steps["close"],
                    cases_closed=steps["close"], letters_in_smtp=in_smtp - staff_in_smtp,
                    staff_emails_in_smtp=staff_in_smtp, outbox_letters=outbox_letters(r.outbox),
                    emails_accepted=len(r.sink.snapshot()),
                    in_commit_window=[pair for pair in window if pair not in seen])
        await asyncio.sleep(rng.uniform(0.2, 2.0))
        r.worker.start()
        await r.worker.ready()
        kill.down_s = round(time.monotonic() - at, 2)
        kills.append(kill)
        if skipping is not None and releaser is None:
            releaser = asyncio.create_task(release_after_breaches(r, hold, skipping))
    if releaser is not None:
        await releaser


async def release_after_breaches(r: Rig, hold: dict[str, asyncio.Event],
                                 skipping: asyncio.Future[list[None]]) -> int:
    """Wait for the held cases' breach notices (recorded and emailed), then release them."""
    try:
        await skipping
        return await wait_for_breaches(r, list(hold), ACK_DEADLINE, timeout=240)
    finally:
        for event in hold.values():
            event.set()


async def test_worker_sigkilled_mid_delivery_loses_and_duplicates_nothing(
        workdir: Path) -> None:
    """100 cases through both stages and 8 breaches while the worker is SIGKILLed 5 times."""
    rng = random.Random(SEED)
    started = time.monotonic()
    async with rig(workdir, commit_delay=0.02) as r:
        intakes = [intake(n, today()) for n in range(1, CASES + 1)]
        hold = {case.reference: asyncio.Event() for case in intakes[:BREACH_CASES]}
        stats = DriveStats()
        kills: list[Kill] = []
        progress, steps = [0], Counter[str]()
        total = CASES * len(LIFECYCLE)
        run = asyncio.create_task(run_cases(r, intakes, CONCURRENCY, stats, progress, steps,
                                            hold))
        killer = asyncio.create_task(kill_repeatedly(r, rng, kills, total, progress, steps,
                                                     hold, started))
        try:
            done, _ = await asyncio.wait({run, killer}, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            await killer
            await run
        finally:
            for task in (killer, run):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        window = [pair for k in kills for pair in k.in_commit_window]
        figures, problems = await check(r, intakes, "closed", window)
        retries = figures["activity_retries"]
        breach_ids = {message_id_for(f"{ref}:breach:{ACK_DEADLINE}") for ref in hold}
        breach_emails = Counter(m.message_id for m in r.sink.snapshot()
                                if m.message_id in breach_ids)
        figures = {
            "seed": SEED, "cases": CASES, "concurrency": CONCURRENCY,
            "breach_cases": BREACH_CASES, "kills": len(kills),
            "kills_with_letters_in_smtp": sum(1 for k in kills if k.letters_in_smtp),
            "kills_with_staff_email_in_smtp": sum(1 for k in kills if k.staff_emails_in_smtp),
            "kills_with_cases_in_stage2": sum(1 for k in kills if k.cases_in_stage2),
            "kills_with_cases_closed": sum(1 for k in kills if k.cases_closed),
            "emails_in_commit_window_at_kills": len(window),
            "record_case_event_attempts_cut_by_kills": retries["after_timeout"].get(
                "record_case_event", 0),
            "breach_notice_emails": sum(breach_emails.values()),
            "updates": stats.updates, "update_resends": stats.update_retries,
            **figures, "kill_log": [asdict(k) for k in kills],
            "resent_after_a_kill": figures["deliveries"].get("resent", 0),
            "unconfirmed_after_a_kill": figures["deliveries"].get("unconfirmed", 0),
            "seconds": round(time.monotonic() - started, 1),
        }
        write_figures("worker_kills", figures)
        assert problems == []
        assert len(kills) >= KILLS
        assert figures["letters"] == CASES * LETTERS_PER_LIFECYCLE
        # Exactly once, bar an email caught in SMTP's commit window by a kill (counted,
        # and allowed by verify() only then: a crash in the microseconds between the
        # final "." and the marker).
        assert figures["unique_message_ids"] == CASES * LETTERS_PER_LIFECYCLE
        resident_window = [w for w in window if not w[1].endswith("@" + STAFF_DOMAIN)]
        assert figures["emails_received"] == CASES * LETTERS_PER_LIFECYCLE * RECIPIENTS \
            + len(resident_window)
        assert figures["losses"] == 0
        # Each held case breached (and was reminded) and its manager was emailed the
        # acknowledgement breach notice once; every other notice once too (verify()).
        assert figures["notifications"].get("breach", 0) >= BREACH_CASES
        assert figures["staff_emails"] == sum(figures["notifications"].values()) + sum(
            1 for w in window if w[1].endswith("@" + STAFF_DOMAIN))
        assert set(breach_emails) == breach_ids
        assert sum(breach_emails.values()) == BREACH_CASES + sum(
            1 for w in window if w[0] in breach_ids)
        assert figures["staff_duplicates_outside_commit_window"] == 0
        # The kills were spread over the run: in stage 2, while cases closed, mid-SMTP.
        assert kills[-1].updates_done_pct >= 75, "no kill came late in the run"
        assert figures["kills_with_cases_in_stage2"] >= 1
        assert figures["kills_with_cases_closed"] >= 1
        assert figures["kills_with_letters_in_smtp"] >= 1, "no kill landed mid-delivery"
        assert figures["kills_with_staff_email_in_smtp"] >= 1, "no kill landed mid-notice"
        assert figures["record_case_event_attempts_cut_by_kills"] >= 1


# --- 2. the Temporal server restarted mid-batch --------------------------------------------

RESTART_CASES = 14
WAITING_CASES = 5  # left in `received` to breach their acknowledgement deadline


async def test_server_restart_mid_batch_resumes_cases_and_timers(workdir: Path) -> None:
    """SIGTERM the dev server mid-batch and start it again on the same file and port."""
    started = time.monotonic()
    async with rig(workdir) as r:
        intakes = [intake(n, today()) for n in range(1, RESTART_CASES + 1)]
        waiting, moving = intakes[:WAITING_CASES], intakes[WAITING_CASES:]
        stats = DriveStats()
        for case in waiting:
            await lodge(r.staff, r.task_queue, case, stats)
        progress = [0]
        run = asyncio.create_task(run_cases(r, moving, len(moving), stats, progress))
        target = len(moving) * len(LIFECYCLE) * 2 // 5
        while progress[0] < target and not run.done():
            await asyncio.sleep(0.05)
        assert not run.done(), "the batch finished before the restart"
        updates_before = progress[0]
        down_at = time.monotonic()
        r.server.stop()  # SIGTERM: the server shuts down as an operator would stop it
        await asyncio.sleep(2)
        r.server.start()
        await r.server.ready()
        outage = time.monotonic() - down_at
        views = await run
        assert {v.state for v in views.values()} == {"closed"}

        # The timers survived: skip each waiting case past its acknowledgement deadline.
        async def breach(case: Intake) -> None:
            handle = r.staff.get_workflow_handle(case.reference)
            view = await query(r.staff, case.reference)
            due = next(d for d in view.deadlines if d.key == "stage1_acknowledgement#1")
            gap = due.ends_at + dt.timedelta(minutes=1) - await r.skipper.get_current_time(
                handle)
            assert await r.skipper.fast_forward(handle, gap)

        await asyncio.gather(*(breach(case) for case in waiting))
        breached = await wait_for_breaches(r, [c.reference for c in waiting],
                                           "stage1_acknowledgement#1")
        # And the cases still take actions: acknowledge them, late.
        for case in waiting:
            view = await act(r.staff.get_workflow_handle(case.reference),
                             LIFECYCLE[0][1](None), f"{case.reference}/late-ack", stats)
            ack = next(d for d in view.deadlines if d.key == "stage1_acknowledgement#1")
            assert view.state == "stage1_investigating"
            assert ack.status is DeadlineStatus.BREACHED and ack.met_at is not None
        figures, problems = await check(r, intakes, None)
        figures = {"cases": RESTART_CASES, "restarts": 1, "server_down_s": round(outage, 1),
                   "updates_before_restart": updates_before, "updates": stats.updates,
                   "update_resends": stats.update_retries,
                   "rpc_errors": dict(stats.rpc_errors),
                   "timers_fired_after_restart": breached, **figures,
                   "seconds": round(time.monotonic() - started, 1)}
        write_figures("server_restart", figures)
        assert problems == []
        assert figures["cases_in_state"] == {"closed": RESTART_CASES - WAITING_CASES,
                                             "stage1_investigating": WAITING_CASES}
        assert breached == WAITING_CASES


async def wait_for_breaches(r: Rig, references: list[str], key: str,
                            timeout: float = 120) -> int:
    """Wait until each case's deadline ``key`` is breached in the database.

    The manager's breach notice must be recorded and emailed too. Returns how many.
    """
    sessions = _sessions(r.database_url)
    give_up = time.monotonic() + timeout
    while True:
        with sessions() as session:
            notices = {n.reference for n in session.exec(select(NotificationRow).where(
                NotificationRow.kind == "breach", NotificationRow.deadline_key == key))}
            statuses = {d.reference for d in session.exec(select(DeadlineRow).where(
                DeadlineRow.key == key, DeadlineRow.status == "breached"))}
        done = [ref for ref in references if ref in notices and ref in statuses]
        if len(done) == len(references):
            emailed = {m.message_id for m in r.sink.snapshot()}
            assert all(message_id_for(f"{ref}:breach:{key}") in emailed for ref in references)
            return len(done)
        if time.monotonic() > give_up:
            raise AssertionError(f"breaches recorded for {done} of {references}")
        await asyncio.sleep(0.3)


# --- 3. the database unavailable mid-batch -------------------------------------------------

OUTAGE_CASES = 12
#: Longer than SQLite's busy timeout (30 s), so that transactions fail, not just wait.
SQLITE_OUTAGE_S = 35.0
POSTGRES_OUTAGE_S = 12.0
#: The outage starts the moment the SMTP server accepts this email, before it answers:
#: the worker then has to record a delivery the server has accepted, with no database.
OUTAGE_AT_EMAIL = 30


async def run_with_outage(r: Rig, intakes: list[Intake], begin: Any, end: Any,
                          name: str, started: float) -> None:
    """Run the batch through a database outage.

    ``begin()`` (blocking) starts the outage when the SMTP server accepts email number
    ``OUTAGE_AT_EMAIL``, before it answers; ``end()`` (blocking) ends it.
    """
    outage: dict[str, Any] = {}
    accepted = [0]
    begun = threading.Event()

    async def on_accept(message: Received) -> None:
        accepted[0] += 1
        if accepted[0] == OUTAGE_AT_EMAIL:
            outage["email"] = f"{message.message_id} {message.rcpt}"
            outage["began"] = time.monotonic()
            try:
                await asyncio.to_thread(begin)
            finally:
                begun.set()

    async def end_outage() -> None:
        await asyncio.to_thread(begun.wait)
        if "began" not in outage:
            return  # released without an outage (the batch failed first)
        try:
            await asyncio.to_thread(end)
        finally:
            outage["ended"] = time.monotonic()

    r.sink.on_accept = on_accept
    stats = DriveStats()
    ender = asyncio.create_task(end_outage())
    try:
        views = await run_cases(r, intakes, len(intakes), stats)
        assert begun.is_set(), "the batch ended before the outage began"
        await ender
    finally:
        if not ender.done():
            begun.set()  # let the waiting thread go (it ends an outage that began)
            await ender
    assert {v.state for v in views.values()} == {"closed"}
    figures, problems = await check(r, intakes, "closed")
    figures = {"cases": len(intakes), "outage_s": round(outage["ended"] - outage["began"], 1),
               "outage_began_at_accepted_email": OUTAGE_AT_EMAIL,
               "record_retries_in_worker": r.worker.count("record_retrying"),
               "updates": stats.updates, "update_resends": stats.update_retries, **figures,
               "seconds": round(time.monotonic() - started, 1)}
    write_figures(name, figures)
    assert problems == []
    assert figures["deliveries"] == {"sent": len(intakes) * LETTERS_PER_LIFECYCLE
                                     * (1 + RECIPIENTS)}, "an email was sent twice"
    # The outage made recording fail, and recording was retried: in the worker (the
    # write that records an accepted email retries in place while its attempt has time
    # left) or by Temporal (any other write, or that one once its attempt's time is up).
    # Which of the two happens depends on where each case was when the lock was taken.
    retried_by_temporal = sum(figures["activity_retries"]["retried"].values())
    assert figures["record_retries_in_worker"] + retried_by_temporal >= 1, \
        "the outage made no write fail"


async def test_sqlite_locked_for_longer_than_its_busy_timeout(workdir: Path) -> None:
    """Hold SQLite's write lock for 35 s from the moment the server accepts an email."""
    started = time.monotonic()
    async with rig(workdir) as r:
        outage = SqliteOutage(workdir / "complaints.db", SQLITE_OUTAGE_S)
        intakes = [intake(n, today()) for n in range(1, OUTAGE_CASES + 1)]
        await run_with_outage(r, intakes, outage.start, outage.join, "sqlite_outage", started)


async def test_postgresql_stopped_and_restarted(
        workdir: Path, postgres_url: str) -> None:  # noqa: F811 - the fixture
    """Stop PostgreSQL for 12 s from the moment the server accepts an email."""
    started = time.monotonic()
    database_url = fresh_database(postgres_url, f"faults_{uuid.uuid4().hex[:8]}")

    def end() -> None:
        time.sleep(POSTGRES_OUTAGE_S)
        pg_start()

    try:
        async with rig(workdir, database_url=database_url) as r:
            intakes = [intake(n, today()) for n in range(1, OUTAGE_CASES + 1)]
            await run_with_outage(r, intakes, pg_stop, end, "postgresql_outage", started)
    finally:
        with contextlib.suppress(Exception):
            pg_start()  # whatever happened, leave the session's server running


def fresh_database(url: str, name: str) -> str:
    """Create database ``name`` on the server of ``url``; return its URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    with psycopg.connect(host=parsed.host, port=parsed.port, user=parsed.username,
                         dbname="postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return parsed.set(database=name).render_as_string(hide_password=False)


# --- 4. the SMTP server refusing, then gone ------------------------------------------------

SMTP_CASES = 12
SMTP_REFUSING_S = 8.0
SMTP_DOWN_S = 8.0


async def test_smtp_refusing_then_down_then_an_answer_lost(workdir: Path) -> None:
    """451 to every recipient for 8 s, then connection refused for 8 s; then one answer lost.

    Letters are retried and each arrives once. The lost answer (the server committed the
    message and the connection dropped before its "250") is not followed by a second
    copy: the whole message had been handed over, so the delivery is recorded
    ``unconfirmed`` and not sent again.
    """
    started = time.monotonic()
    async with rig(workdir) as r:
        intakes = [intake(n, today()) for n in range(1, SMTP_CASES + 1)]
        stats = DriveStats()
        timeline: dict[str, float] = {}

        async def faults() -> None:
            while len(r.sink.snapshot()) < 20:
                await asyncio.sleep(0.02)
            timeline["refusing"] = time.monotonic()
            r.sink.refusing = True
            await asyncio.sleep(SMTP_REFUSING_S)
            r.sink.stop()
            r.sink.refusing = False
            timeline["down"] = time.monotonic()
            await asyncio.sleep(SMTP_DOWN_S)
            r.sink.start()
            timeline["back"] = time.monotonic()
            while len(r.sink.snapshot()) < 100:
                await asyncio.sleep(0.02)
            r.sink.lose_answers = 1

        injector = asyncio.create_task(faults())
        try:
            await run_cases(r, intakes, len(intakes), stats)
            await injector
        finally:
            injector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await injector
            if not r.sink.running:
                r.sink.start()
        lost = [(m.message_id, m.rcpt) for m in r.sink.answers_lost]
        figures, problems = await check(r, intakes, "closed")
        figures = {"cases": SMTP_CASES,
                   "refusing_s": round(timeline["down"] - timeline["refusing"], 1),
                   "down_s": round(timeline["back"] - timeline["down"], 1),
                   "refusals_451": r.sink.refusals, "answers_lost": len(lost),
                   "updates": stats.updates, **figures,
                   "seconds": round(time.monotonic() - started, 1)}
        write_figures("smtp_outage", figures)
        assert problems == []
        assert figures["refusals_451"] >= 1
        assert figures["activity_retries"]["retried"].get("record_case_event", 0) >= 1
        # The lost answer: not sent again, recorded "unconfirmed"; it arrived once. It falls
        # on whichever email is sent next: a letter's, or a staff notice's (the closure
        # warnings go out between letters), both sent by the same claim-and-marker protocol.
        assert len(lost) == 1
        assert figures["deliveries"].get("unconfirmed", 0) \
            + figures["notification_deliveries"].get("unconfirmed", 0) == 1
        assert figures["duplicates"] == 0 and figures["losses"] == 0
        assert figures["staff_email_duplicates"] == 0
        assert figures["unique_message_ids"] == SMTP_CASES * LETTERS_PER_LIFECYCLE
