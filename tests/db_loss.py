"""Helpers for the database loss and resync tests (tests/test_resync.py, test_dbcheck.py).

The cases are started as the first workflow type (``ComplaintWorkflow``, whose recording
activities are the ones ``complaints.resync`` knows today), by its type name, which never
changes: cases of that type keep running under it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import SQLModel, col, select
from temporalio.client import WorkflowHandle
from temporalio.worker import Worker

from complaints.db import make_engine
from models.actions import Acknowledge, Action
from models.messages import CaseView, ComplaintInput, Intake
from models.tables import DeliveryRow, LetterRow
from tests.cases import DEFINITION, STAGE1_HANDLER
from tests.conftest import RUN_PAYLOAD_KEYS, Stack

#: The first workflow type's name (kept by ``workflows.complaint_v1`` for its cases).
V1_TYPE = "ComplaintWorkflow"
#: The installed ``complaints`` command and the worker script.
COMPLAINTS = Path(sys.executable).parent / "complaints"
WORKER = Path(__file__).resolve().parent.parent / "worker.py"
#: Columns that differ between two databases holding the same records: row ids, and the
#: wall-clock times a row was inserted or a delivery made (resync restores the latter
#: from the history's event times, to the second: see ``times``).
VOLATILE = {"id", "created_at", "delivered_at"}

ACKNOWLEDGE = Acknowledge(by=STAGE1_HANDLER, handler_id=STAGE1_HANDLER, definition=DEFINITION)


def v1_worker(stack: Stack) -> Worker:
    """A worker running only the first workflow type, with the stack's real activities."""
    from workflows.complaint_v1 import ComplaintWorkflowV1

    return Worker(stack.env.client, task_queue=stack.task_queue,
                  workflows=[ComplaintWorkflowV1], activities=stack.activities,
                  activity_executor=ThreadPoolExecutor(8))


async def start_v1(stack: Stack, intake: Intake) -> WorkflowHandle[Any, Any]:
    """Start a case of the first workflow type on the stack's task queue."""
    return await stack.env.client.start_workflow(
        V1_TYPE, ComplaintInput(intake=intake), id=intake.reference,
        task_queue=stack.task_queue, result_type=CaseView)


async def view(handle: WorkflowHandle[Any, Any]) -> CaseView:
    """The case as its query returns it."""
    return await handle.query("case_view", result_type=CaseView)


async def started(handle: WorkflowHandle[Any, Any]) -> CaseView:
    """Wait until the case has recorded its intake and planned its first deadline."""
    for _ in range(150):
        current = await view(handle)
        if current.deadlines:
            return current
        await asyncio.sleep(0.1)
    raise AssertionError("the case never started")


async def do(handle: WorkflowHandle[Any, Any], action: Action) -> CaseView:
    """Send a staff action as a validated update (it returns once its records are written)."""
    return await handle.execute_update(action.trigger, action, result_type=CaseView)


async def settled(stack: Stack, handle: WorkflowHandle[Any, Any]) -> CaseView:
    """Wait until every record of the case is written (an update returns before its snapshot)."""
    from sqlalchemy import func

    from models.tables import AuditRow, ComplaintRow

    engine = make_engine(stack.settings.effective_database_url())
    try:
        for _ in range(300):
            current = await view(handle)
            pending = (await handle.describe()).raw_description.pending_activities
            with engine.connect() as connection:
                state = connection.execute(select(ComplaintRow.state).where(
                    ComplaintRow.reference == handle.id)).scalar_one_or_none()
                audited = connection.execute(select(func.count()).select_from(AuditRow).where(
                    AuditRow.reference == handle.id)).scalar_one()
            if not pending and state == current.state and audited == len(current.case.audit):
                return current
            await asyncio.sleep(0.1)
    finally:
        engine.dispose()
    raise AssertionError("the case's records were never all written")


def temporal_address(stack: Stack) -> str:
    """host:port of the session's Temporal server, for subprocesses."""
    return stack.env.client.service_client.config.target_host


def records(engine: Engine, reference: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row a case has in every table, without ids and insertion times, sorted."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            if "reference" in table.c:
                where = table.c.reference == reference
            elif table.name == DeliveryRow.__tablename__:
                where = table.c.letter_id.in_(select(LetterRow.letter_id).where(
                    LetterRow.reference == reference))
            else:
                continue
            columns = [c for c in table.c if c.name not in VOLATILE]
            rows = connection.execute(select(*columns).where(where)).all()
            found[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return found


def times(engine: Engine, reference: str) -> dict[str, dt.datetime]:
    """When each letter of a case was stored and each delivery made, by key."""
    found: dict[str, dt.datetime] = {}
    with engine.connect() as connection:
        for letter_id, at in connection.execute(select(
                LetterRow.letter_id, LetterRow.created_at).where(
                LetterRow.reference == reference)):
            found[letter_id] = at
        for letter_id, channel, at in connection.execute(select(
                DeliveryRow.letter_id, DeliveryRow.channel, DeliveryRow.delivered_at).where(
                col(DeliveryRow.letter_id).in_(
                    select(LetterRow.letter_id).where(LetterRow.reference == reference)))):
            found[f"{letter_id}/{channel}"] = at
    return found


def backup_sqlite(source: Path, target: Path) -> None:
    """Copy a live SQLite database consistently (WAL included), as `sqlite3 .backup` does."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def outbox_state(outbox: Path) -> dict[str, int]:
    """Every outbox file and its modification time in nanoseconds."""
    return {str(p.relative_to(outbox)): p.stat().st_mtime_ns
            for p in sorted(outbox.rglob("*")) if p.is_file()}


def subprocess_env(stack: Stack, database: Path, **extra: str) -> dict[str, str]:
    """The environment for a ``complaints`` or worker process on the stack's server."""
    from complaints.settings import Settings

    ours = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in ours}
    env.update(TEMPORAL_ADDRESS=temporal_address(stack),
               TEMPORAL_TASK_QUEUE=stack.task_queue,
               DATA_DIR=str(database.parent), DATABASE_URL=f"sqlite:///{database}",
               OUTBOX_DIR=str(stack.settings.effective_outbox()), LOG_JSON="true",
               PAYLOAD_KEYS=RUN_PAYLOAD_KEYS,  # the session server's payloads
               # No deployment env file (a developer's could add SMTP to the worker).
               COMPLAINTS_ENV_FILE=str(database.parent / "absent.env"), **extra)
    return env


async def run(args: list[str], env: dict[str, str],
              timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Run a command without blocking the event loop (the Temporal test server's)."""
    return await asyncio.to_thread(subprocess.run, args, capture_output=True, text=True,
                                   env=env, timeout=timeout, check=False)
