"""Checks that the complaints database is still the one the cases were recorded in.

Every case lives in Temporal; the database is what its activities wrote. Losing it (a
deleted SQLite file, an empty schema) or replacing it (a backup restored) does not stop
Temporal, so without these checks the worker carries on regardless: a deleted SQLite
file stays open and every write goes to a file nobody can read again, and a fresh empty
database makes every existing case stall on ``IntakeNotRecorded``. So:

- **At start** (:func:`check_at_start`) the database must be reachable, at the newest
  Alembic revision (it is upgraded when behind) and not *lost*: a database with no
  complaints while Temporal has running cases on the worker's task queue was lost or
  replaced, and the worker refuses to start, saying how to repair it.
- **While running** (:func:`watch_database`, every ``DATABASE_CHECK_SECONDS``): a SQLite
  file must still exist at its path and be the same file (device and inode) the worker
  opened, and every backend must still have its schema and, once it had complaints, some
  complaints. On a failure the worker logs one line and stops with a non-zero exit.
  Stopping beats carrying on: the activities would go on "succeeding" into a deleted
  inode or an emptied schema, so Temporal would never retry them and their records would
  be gone; once stopped, every activity waits in Temporal and is retried, in order, when
  a worker starts again on the repaired database. A PostgreSQL connection failure is an
  outage, not a loss: it is logged and the activities' retries ride it out.
- **Staff** waiting on a stalled case are told why (:func:`stall_cause`): the failing
  activity and its last error, with ``complaints resync REF`` when the intake is missing.

Messages name the database without its password and never carry personal data.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import click
import structlog
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, ProgrammingError, SQLAlchemyError
from temporalio.api.failure.v1 import Failure
from temporalio.client import Client

from complaints.db import (
    alembic_config,
    current_revision,
    database_file,
    ensure_schema,
    head_revision,
    make_engine,
)
from complaints.settings import Settings

__all__ = [
    "DatabaseProblem",
    "DatabaseWatch",
    "FileIdentity",
    "check_at_start",
    "check_now",
    "database_label",
    "repair_hint",
    "running_cases_query",
    "stall_cause",
    "watch_database",
]

log = structlog.get_logger(__name__)

#: The longest a single running check may take before it counts as an outage.
CHECK_TIMEOUT_S = 15.0
#: How long a staff command waits for Temporal to describe a stalled case.
DESCRIBE_TIMEOUT_S = 5.0
#: The first complaints of the workflows (synthetic rows, ``SYN-...``, do not count).
CASE_PREFIX = "CMP-"
#: Failure types whose first line is the database driver's own message (no row values:
#: SQLAlchemy puts the SQL and its parameters on the following lines).
_DATABASE_ERRORS = frozenset({"OperationalError", "IntegrityError", "ProgrammingError",
                              "DatabaseError", "InterfaceError", "DataError", "InternalError",
                              "NotSupportedError"})
#: The error types the engine's activities raise themselves, with messages written
#: without personal data (any other message may quote its input).
_OWN_ERRORS = frozenset({"IntakeNotRecorded", "LetterMismatch", "DeliveryInProgress",
                         "NoPolicy", "PolicyError", "PolicyRejected", "InvalidDeadline"})
#: What each activity does, for staff reading why a case is stuck.
_DOING = {"record_intake": "recording", "record_snapshot": "recording",
          "record_audit": "recording", "record_ombudsman_details": "recording",
          "send_letter": "sending a letter", "notify": "notifying staff",
          "load_policy": "loading the policy", "plan_deadline": "planning a deadline"}


class DatabaseProblem(click.ClickException):
    """The complaints database is missing, lost or replaced: one line, what and how to fix.

    A ``ClickException`` so that ``complaints dev`` (which runs the worker) prints it as
    its one ``Error:`` line; ``worker.py`` logs it and exits non-zero.
    """

    def __init__(self, message: str, *, logged: bool = False) -> None:
        """Keep the message and whether it was logged already (when it was detected)."""
        super().__init__(message)
        self.logged = logged


@dataclass(frozen=True)
class FileIdentity:
    """A SQLite database file as opened: its path, device and inode."""

    path: Path
    device: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> FileIdentity:
        """Stat ``path`` now."""
        st = path.stat()
        return cls(path, st.st_dev, st.st_ino)


@dataclass
class DatabaseWatch:
    """What the running checks compare with: the database as the worker started on it."""

    url: str
    label: str
    revision: str | None
    #: The SQLite file, or None for a server database (or an in-memory SQLite one).
    file: FileIdentity | None
    had_complaints: bool
    #: Whether it is a database server (PostgreSQL...), checked through a connection.
    server: bool = False


def database_label(url: str) -> str:
    """The database's URL for messages: the SQLite file path, else the URL sans password."""
    path = database_file(url)
    if path is not None:
        return str(path)
    return make_url(url).render_as_string(hide_password=True)


def repair_hint(label: str) -> str:
    """How to repair a lost or replaced database (the end of every loss message)."""
    return (f"restore the backup of {label}, then run `complaints resync --all`; or run "
            "`complaints resync --all` to rebuild it from Temporal")


def running_cases_query(task_queue: str) -> str:
    """The visibility query for the running cases this deployment's workers serve."""
    queue = task_queue.replace("'", "")
    return (f"WorkflowId STARTS_WITH '{CASE_PREFIX}' AND ExecutionStatus = 'Running' "
            f"AND TaskQueue = '{queue}'")


def _first_line(exc: BaseException) -> str:
    text_ = str(exc).strip()
    first = text_.splitlines()[0] if text_ else type(exc).__name__
    return first if len(first) <= 200 else first[:197] + "..."


#: Whether the database holds any case (stops at the first: cheap on any table size).
_ANY_CASE = "SELECT 1 FROM complaints WHERE reference LIKE '" + CASE_PREFIX + "%' LIMIT 1"


def _has_cases(engine: Engine) -> bool:
    with engine.connect() as connection:
        return connection.execute(text(_ANY_CASE)).first() is not None


def _prepare(url: str, label: str) -> tuple[str | None, bool]:
    """Reach the database, bring it to the newest schema; its revision and whether it has cases."""
    head = head_revision()
    try:
        current = current_revision(url)
    except (SQLAlchemyError, OSError) as exc:
        raise DatabaseProblem(
            f"cannot reach the complaints database {label} ({_first_line(exc)}): check "
            "DATABASE_URL / DATA_DIR and that the database server is up") from None
    if current is not None and current != head:
        from alembic.script import ScriptDirectory

        known = {r.revision for r in ScriptDirectory.from_config(
            alembic_config(url)).walk_revisions()}
        if current not in known:
            raise DatabaseProblem(
                f"the complaints database {label} is at schema revision {current}, which this "
                f"worker does not know (its newest is {head}): run the newer version of the "
                "engine, or restore a backup made by this one")
    try:
        ensure_schema(url)
    except Exception as exc:  # noqa: BLE001 - any migration failure is one line
        raise DatabaseProblem(f"cannot bring the complaints database {label} to schema "
                              f"revision {head} ({_first_line(exc)}): run `complaints db "
                              "upgrade` to see why") from None
    engine = make_engine(url)
    try:
        return head, _has_cases(engine)
    except SQLAlchemyError as exc:
        raise DatabaseProblem(f"cannot read the complaints database {label} "
                              f"({_first_line(exc)}): check it, or {repair_hint(label)}") from None
    finally:
        engine.dispose()


async def check_at_start(settings: Settings, client: Client) -> DatabaseWatch:
    """Check the database before the worker starts; return what to watch while it runs.

    Args:
        settings: The worker's settings (database URL, task queue).
        client: The Temporal client (to count the running cases).

    Returns:
        The database as the worker starts on it.

    Raises:
        DatabaseProblem: Unreachable, a schema newer than this code, a failed migration,
            or lost: no complaints while Temporal has running cases.

    """
    url = settings.effective_database_url()
    label = database_label(url)
    revision, has_cases = await asyncio.to_thread(_prepare, url, label)
    if not has_cases:
        query = running_cases_query(settings.temporal_task_queue)
        try:
            running = (await client.count_workflows(
                query, rpc_timeout=dt.timedelta(seconds=CHECK_TIMEOUT_S))).count
        except Exception as exc:  # noqa: BLE001 - visibility is advisory here
            log.warning("database_loss_check_skipped", error=_first_line(exc))
            running = 0
        if running:
            raise DatabaseProblem(
                f"the complaints database {label} has no complaints but Temporal has "
                f"{running} running case{'s' if running != 1 else ''} on task queue "
                f"{settings.temporal_task_queue!r}: the database was lost or replaced; "
                f"{repair_hint(label)}")
    sqlite = make_url(url).get_backend_name() == "sqlite"
    path = database_file(url)
    identity = FileIdentity.of(path) if path is not None else None
    return DatabaseWatch(url=url, label=label, revision=revision, file=identity,
                         had_complaints=has_cases, server=not sqlite)


def _sqlite_state(path: Path) -> tuple[str | None, bool]:
    """Read the revision and whether there are cases from the file at ``path`` itself.

    Opened ``mode=rw``: a file that is not there is never created.

    A fresh connection on purpose: the worker's pooled connections keep the file they
    opened, even once it is deleted or replaced, and would see nothing wrong.
    """
    connection = sqlite3.connect(f"file:{quote(str(path))}?mode=rw", uri=True, timeout=5.0)
    try:
        revision = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        has_cases = connection.execute(_ANY_CASE).fetchone() is not None
        return (revision[0] if revision else None), has_cases
    finally:
        connection.close()


def _lost(watch: DatabaseWatch, what: str) -> str:
    return (f"worker stopped: the complaints database {watch.label} {what}; "
            f"{repair_hint(watch.label)}")


def check_now(watch: DatabaseWatch, engine: Engine | None = None) -> str | None:
    """Check the database once; return the problem (one line) or None when all is well.

    Args:
        watch: The database as the worker started on it.
        engine: For a server database, the engine to query (pooled, pre-pinged).

    Returns:
        Why the worker must stop, or None. Outages (PostgreSQL unreachable, SQLite busy)
        are logged and return None: they are not losses, and retries ride them out.

    """
    if watch.file is not None:
        path = watch.file.path
        try:
            now = FileIdentity.of(path)
        except FileNotFoundError:
            return _lost(watch, "file was deleted while the worker was running")
        except OSError as exc:
            log.warning("database_check_failed", error=_first_line(exc))
            return None
        if (now.device, now.inode) != (watch.file.device, watch.file.inode):
            return (f"worker stopped: the complaints database file {watch.label} was replaced "
                    "by another file while the worker was running (restored from a "
                    "backup?); start the worker again to use it and run `complaints resync "
                    "--all` to fill in what the backup lacks")
        try:
            revision, has_cases = _sqlite_state(path)
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return _lost(watch, f"has lost its tables ({_first_line(exc)})")
            log.warning("database_check_failed", error=_first_line(exc))
            return None
        except sqlite3.DatabaseError as exc:  # "file is not a database": overwritten
            return _lost(watch, f"is no longer a database ({_first_line(exc)})")
    elif watch.server and engine is not None:
        try:
            with engine.connect() as connection:
                row = connection.execute(
                    text("SELECT version_num FROM alembic_version")).fetchone()
                revision = row[0] if row else None
            has_cases = _has_cases(engine)
        except ProgrammingError as exc:  # e.g. UndefinedTable: the schema is gone
            return _lost(watch, f"has lost its tables ({_first_line(exc)})")
        except DBAPIError as exc:
            log.warning("database_unreachable", error=_first_line(exc))
            return None
    else:
        return None  # an in-memory SQLite database: nothing outlives the process to check
    if revision is None:
        return _lost(watch, "has lost its schema version (alembic_version is empty)")
    if watch.had_complaints and not has_cases:
        return _lost(watch, "had complaints and now has none")
    watch.had_complaints = watch.had_complaints or has_cases
    return None


async def watch_database(watch: DatabaseWatch, every: float) -> str:
    """Check the database every ``every`` seconds until something is wrong; return what.

    Args:
        watch: The database as the worker started on it.
        every: Seconds between checks.

    Returns:
        The problem, one line (the caller logs it and stops the worker).

    """
    engine = make_engine(watch.url, pool_size=1) if watch.server else None
    try:
        while True:
            await asyncio.sleep(every)
            try:
                problem = await asyncio.wait_for(asyncio.to_thread(check_now, watch, engine),
                                                 CHECK_TIMEOUT_S)
            except TimeoutError:
                log.warning("database_check_timed_out", seconds=CHECK_TIMEOUT_S)
                continue
            except Exception as exc:  # noqa: BLE001 - a check that cannot run is no verdict
                log.warning("database_check_failed", error=_first_line(exc))
                continue
            if problem is not None:
                return problem
    finally:
        if engine is not None:
            engine.dispose()


# --- telling staff why a case does not answer ----------------------------------------


async def _failure_message(client: Client, failure: Failure) -> str:
    """A failure's message, decrypted.

    The engine's converter moves it into the encoded attributes (``complaints.codec``),
    leaving Temporal only "Encoded failure".
    """
    copy = Failure()
    copy.CopyFrom(failure)  # decode_failure decodes in place
    try:
        error = await client.data_converter.decode_failure(copy)
    except Exception:  # noqa: BLE001 - a key this process lacks: say what Temporal says
        return failure.message
    return str(getattr(error, "message", None) or error)


async def stall_cause(client: Client, reference: str) -> str | None:
    """Why a case is not answering, when Temporal knows: an activity failing, and its error.

    Args:
        client: The Temporal client.
        reference: The case (its workflow id).

    Returns:
        One line for staff (``CMP-...: recording is failing: IntakeNotRecorded: ... run
        `complaints resync CMP-...```), or None when no activity is failing (or Temporal
        cannot say in time).

    """
    try:
        description = await asyncio.wait_for(
            client.get_workflow_handle(reference).describe(
                rpc_timeout=dt.timedelta(seconds=DESCRIBE_TIMEOUT_S)),
            DESCRIBE_TIMEOUT_S)
    except Exception:  # noqa: BLE001 - a diagnosis must never replace the real error
        return None
    for pending in description.raw_description.pending_activities:
        if not pending.HasField("last_failure"):
            continue
        failure = pending.last_failure
        kind = failure.application_failure_info.type if failure.HasField(
            "application_failure_info") else ""
        name = pending.activity_type.name
        doing = _DOING.get(name, f"activity {name}")
        first = ((await _failure_message(client, failure)).strip().splitlines() or [""])[0][:200]
        # Only our own activities' messages and the database driver's first line are
        # shown: any other error may quote its input, which can hold personal data.
        shown = (f"{kind}: {first}" if first and kind in _DATABASE_ERRORS | _OWN_ERRORS
                 else kind or "error")
        if kind == "IntakeNotRecorded":
            hint = (" - the database may have been replaced: run "
                    f"`complaints resync {reference}`")
        elif kind in _DATABASE_ERRORS:
            hint = " - check the worker's database (the worker's log says more)"
        else:
            hint = " - the worker's log says more"
        return f"{reference}: {doing} is failing: {shown}{hint}"
    return None

