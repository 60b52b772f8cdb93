"""The worker checks its database at start and while running; staff are told the real cause."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, SQLModel, select

from complaints import staff
from complaints.db import ensure_schema, make_engine
from complaints.dbcheck import (
    DatabaseProblem,
    check_at_start,
    check_now,
    repair_hint,
    running_cases_query,
)
from complaints.resync import Recorders, resync_case
from complaints.settings import Settings
from models.actions import ContactDirection, Extend, RecordContact
from models.case import Channel
from models.tables import AuditRow, ComplaintRow
from tests.cases import STAGE1_HANDLER
from tests.conftest import Stack, make_intake
from tests.db_loss import (
    ACKNOWLEDGE,
    COMPLAINTS,
    WORKER,
    do,
    run,
    start_v1,
    started,
    subprocess_env,
    temporal_address,
    v1_worker,
    view,
)
from tests.pg import create_database, pg_start, pg_stop, postgres_url  # noqa: F401

WORKER_EXIT_TIMEOUT_S = 60
CALLED = RecordContact(by=STAGE1_HANDLER, direction=ContactDirection.OUTBOUND,
                       channel=Channel.PHONE, summary="Called to agree a visit")


def _settings(stack: Stack, database: Path) -> Settings:
    return Settings(data_dir=database.parent, database_url=f"sqlite:///{database}",
                    temporal_address=temporal_address(stack),
                    temporal_task_queue=stack.task_queue, outbox_dir=database.parent / "out")


def _error_lines(stderr: str) -> list[dict[str, Any]]:
    """The worker's JSON log lines at level error."""
    lines = []
    for line in stderr.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") == "error":
            lines.append(entry)
    return lines


def _add_case(url: str) -> None:
    """Store one case (as its intake would) in the database at ``url``."""
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            session.add(ComplaintRow(reference="CMP-2026-000001", landlord="Landlord",
                                     policy_name="code-2024", channel="phone",
                                     category="general", received_on=dt.date(2026, 11, 23),
                                     description="A test case"))
            session.commit()
    finally:
        engine.dispose()


async def _running(stack: Stack, at_least: int) -> None:
    """Wait until visibility counts the stack's running cases (it lags a little)."""
    for _ in range(100):
        found = await stack.env.client.count_workflows(running_cases_query(stack.task_queue))
        if found.count >= at_least:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("visibility never counted the running case")


async def test_worker_refuses_to_start_on_a_lost_database(stack: Stack, tmp_path: Path) -> None:
    """An empty database while cases run: one error line with the cause and the fix, exit 3."""
    async with v1_worker(stack):
        handle = await start_v1(stack, make_intake())
        await started(handle)
        await do(handle, ACKNOWLEDGE)
    await _running(stack, 1)
    lost = tmp_path / "lost" / "complaints.db"

    result = await run([sys.executable, str(WORKER)], subprocess_env(stack, lost))
    assert result.returncode == 3, result.stderr
    [error] = _error_lines(result.stderr)
    assert error["error"] == (
        f"the complaints database {lost} has no complaints but Temporal has 1 running case "
        f"on task queue {stack.task_queue!r}: the database was lost or replaced; restore the "
        f"backup of {lost}, then run `complaints resync --all`; or run `complaints resync "
        "--all` to rebuild it from Temporal")
    assert "worker started" not in result.stderr

    # The fix it names works: after a resync the worker's checks pass.
    resynced = await run([str(COMPLAINTS), "resync", "--all"], subprocess_env(stack, lost))
    assert resynced.returncode == 0, resynced.stderr
    watch = await check_at_start(_settings(stack, lost), stack.env.client)
    assert watch.had_complaints


async def test_worker_stops_when_its_database_file_is_deleted(stack: Stack,
                                                              tmp_path: Path) -> None:
    """Deleting the SQLite file under a running worker stops it with the one-line cause."""
    database = tmp_path / "data" / "complaints.db"
    env = subprocess_env(stack, database, DATABASE_CHECK_SECONDS="0.2")
    process = subprocess.Popen([sys.executable, str(WORKER)], stderr=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, text=True, env=env)
    lines: list[str] = []
    up = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if "worker started" in line:
                up.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert await asyncio.to_thread(up.wait, 60), "".join(lines)
        database.unlink()
        code = await asyncio.to_thread(process.wait, WORKER_EXIT_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    await asyncio.to_thread(reader.join, 5)
    assert code == 3, "".join(lines)
    [error] = _error_lines("".join(lines))
    assert error["event"] == "database_lost"
    assert error["error"] == (
        f"worker stopped: the complaints database {database} file was deleted while the "
        f"worker was running; {repair_hint(str(database))}")


async def test_running_checks_see_a_replaced_emptied_or_dropped_database(
        stack: Stack, tmp_path: Path) -> None:
    """The running check tells a healthy file from a replaced, emptied or table-less one."""
    database = tmp_path / "complaints.db"
    url = f"sqlite:///{database}"
    ensure_schema(url)
    _add_case(url)
    watch = await check_at_start(_settings(stack, database), stack.env.client)
    assert watch.had_complaints and check_now(watch) is None

    copy = tmp_path / "copy.db"
    shutil.copyfile(database, copy)
    os.replace(copy, database)
    replaced = check_now(watch)
    assert replaced is not None and "was replaced by another file" in replaced

    watch = await check_at_start(_settings(stack, database), stack.env.client)
    with sqlite3.connect(database) as connection:
        connection.execute("DELETE FROM complaints")
    emptied = check_now(watch)
    assert emptied is not None and "had complaints and now has none" in emptied

    with sqlite3.connect(database) as connection:
        connection.execute("DROP TABLE complaints")
    dropped = check_now(watch)
    assert dropped is not None and "has lost its tables" in dropped
    assert dropped.endswith(repair_hint(str(database)))


async def test_postgresql_outage_is_not_a_loss_but_lost_tables_are(
        stack: Stack, postgres_url: str) -> None:  # noqa: F811 - the fixture
    """PostgreSQL down is an outage the worker rides out; its tables gone is a loss."""
    url = create_database(f"dbcheck_{uuid.uuid4().hex[:8]}")
    settings = Settings(database_url=url, temporal_address=temporal_address(stack),
                        temporal_task_queue=stack.task_queue)
    watch = await check_at_start(settings, stack.env.client)  # creates the schema
    _add_case(url)
    engine = make_engine(url, pool_size=1)
    try:
        assert check_now(watch, engine) is None
        pg_stop()
        try:
            assert check_now(watch, engine) is None  # unreachable: not a loss
        finally:
            pg_start()
        assert check_now(watch, engine) is None and watch.had_complaints
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE complaints CASCADE")
        lost = check_now(watch, engine)
    finally:
        engine.dispose()
    assert lost is not None and "has lost its tables" in lost
    assert "postgres@127.0.0.1" in lost and "complaints resync --all" in lost


async def test_start_check_refuses_a_schema_newer_than_the_code(stack: Stack,
                                                               tmp_path: Path) -> None:
    """A database migrated by a newer engine is refused, naming both revisions."""
    database = tmp_path / "complaints.db"
    ensure_schema(f"sqlite:///{database}")
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(DatabaseProblem, match="schema revision 9999, which this worker does "
                                              "not know"):
        await check_at_start(_settings(stack, database), stack.env.client)


async def test_staff_told_the_real_cause_of_a_stalled_case(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """A case stalled on a replaced database names the failing record and `resync` mends it."""
    monkeypatch.setenv("TEMPORAL_ADDRESS", temporal_address(stack))
    monkeypatch.setattr(staff, "ANSWER_TIMEOUT", dt.timedelta(seconds=4))
    intake = make_intake()
    reference = intake.reference
    engine = make_engine(stack.settings.effective_database_url())
    async with v1_worker(stack):
        handle = await start_v1(stack, intake)
        await started(handle)
        await do(handle, ACKNOWLEDGE)
        # The update returns before the snapshot after it is written: let that finish.
        await _recorded_state(engine, reference, "stage1_investigating")
        # The database is replaced by one that never had this case.
        with engine.begin() as connection:
            for table in SQLModel.metadata.sorted_tables:
                if "reference" in table.c:
                    connection.execute(table.delete().where(table.c.reference == reference))
        # The next action is taken (its letter goes out) but its snapshot cannot be
        # recorded; the case waits on that record, so the action after it stalls.
        await staff.act(reference, Extend(by=STAGE1_HANDLER, working_days=5,
                                          reason="A surveyor must inspect the roof"))
        with pytest.raises(staff.NoAnswer) as refused:
            await staff.act(reference, CALLED)
        assert refused.value.message == (
            f"{reference}: recording is failing: IntakeNotRecorded: the intake of this "
            "complaint is not recorded yet - the database may have been replaced: run "
            f"`complaints resync {reference}`")

        result = await resync_case(stack.env.client, Recorders.for_engine(
            engine, stack.settings.effective_outbox()), engine, reference)
        assert result.error is None, result.error
        # The retrying record goes through now, and the stalled action's after it.
        await _recorded_state(engine, reference, "stage1_extended")
        deadline = time.monotonic() + 60
        while CALLED.trigger not in _audited(engine, reference):
            assert time.monotonic() < deadline, "the stalled action was never recorded"
            await asyncio.sleep(0.25)
        assert (await view(handle)).state == "stage1_extended"
    engine.dispose()


def _audited(engine: Engine, reference: str) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(select(AuditRow.action).where(
            AuditRow.reference == reference)).scalars())


async def _recorded_state(engine: Engine, reference: str, state: str) -> None:
    """Wait until the database holds the case in ``state``."""
    deadline = time.monotonic() + 60
    while True:
        with engine.connect() as connection:
            found = connection.execute(select(ComplaintRow.state).where(
                ComplaintRow.reference == reference)).scalar_one_or_none()
        if found == state:
            return
        assert time.monotonic() < deadline, f"the case is recorded as {found}, not {state}"
        await asyncio.sleep(0.25)
