"""The database: engines, sessions and schema migrations (Alembic).

Used by activities and operator tools, never by workflow code. SQLite (the default, a
file in the data folder) and any SQLAlchemy URL work; SQLite is set up for a worker that
writes from several threads: write-ahead logging, a busy timeout, and write transactions
that take the write lock when they begin (``BEGIN IMMEDIATE``) so that two threads never
deadlock upgrading a read lock.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlmodel import Session

if TYPE_CHECKING:
    from models.tables import ReferenceRow

__all__ = [
    "MAX_SEQ",
    "MIGRATIONS_DIR",
    "ReferencesExhausted",
    "alembic_config",
    "allocate_reference",
    "allocate_row",
    "current_revision",
    "ensure_schema",
    "format_reference",
    "head_revision",
    "make_engine",
    "parse_reference",
    "record_reference",
    "reference_for_channel",
    "reserve_reference",
    "session_factory",
    "upgrade",
]

#: Where the Alembic environment and revisions live (shipped inside the package).
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: How long SQLite waits for another writer before failing, in milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 30_000

_SCHEMA_LOCK = threading.Lock()


def _is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def _sqlite_file(url: URL) -> Path | None:
    """Return the database file of a SQLite URL, or None for an in-memory database."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if url.query.get("mode") == "memory":
        return None
    return Path(database)


def database_file(url: str) -> Path | None:
    """Return the file of a SQLite database URL; None for another database or in memory."""
    parsed = make_url(url)
    return _sqlite_file(parsed) if _is_sqlite(parsed) else None


#: Helper threads SQLite's sorter may use (``PRAGMA threads``).
SQLITE_SORTER_THREADS = min(4, os.cpu_count() or 1)

def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    """Set the pragmas every SQLite connection needs and hand transactions to SQLAlchemy."""
    # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own implicit BEGIN is
    # deferred, and comes too late for DDL).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        # Large sorts (a report's GROUP BY over a year of complaints) may use helper
        # threads: a third faster on two cores; small transactions never start them.
        cursor.execute(f"PRAGMA threads = {SQLITE_SORTER_THREADS}")
    finally:
        cursor.close()


#: One gate per SQLite file for the writers of this process. SQLite makes a writer that
#: finds the file locked sleep and poll (1, 2, 5 ... 100 ms), so concurrent activities of one
#: worker would queue by sleeping; waiting on a lock instead hands the file over at once.
#: Other processes still meet SQLite's own busy timeout.
_GATES: dict[str, threading.Lock] = {}
SQLITE_GATE_TIMEOUT_S = 5.0
_GATES_LOCK = threading.Lock()


def _gate(connection: Any) -> threading.Lock:
    key = str(connection.engine.url.database)
    with _GATES_LOCK:
        return _GATES.setdefault(key, threading.Lock())


def _on_sqlite_begin(connection: Any) -> None:
    """Begin every transaction holding the write lock, so it never has to upgrade."""
    gate = _gate(connection)
    # Bounded, and well inside an activity's heartbeat: in normal running a transaction
    # takes milliseconds; when the file is held elsewhere (another process, an outage) the
    # writer goes on to SQLite's own busy timeout, as it would without the gate.
    if gate.acquire(timeout=SQLITE_GATE_TIMEOUT_S):
        connection.info["gate"] = gate
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        _on_sqlite_end(connection)
        raise


def _on_sqlite_end(connection: Any) -> None:
    """Open the gate for the next writer of this process (after commit or rollback)."""
    gate = connection.info.pop("gate", None)
    if gate is not None:
        gate.release()


def _on_sqlite_begin_read(connection: Any) -> None:
    """Begin a reader's transaction deferred, not ``BEGIN IMMEDIATE`` as writers do.

    A deferred transaction reads a snapshot (WAL): it neither waits for nor blocks the
    worker's writes.
    """
    connection.exec_driver_sql("BEGIN")


def _on_sqlite_connect_read(dbapi_connection: Any, _record: Any) -> None:
    """A reader's connection refuses writes, so a write through it fails loudly at once."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA query_only = ON")
    finally:
        cursor.close()


def make_engine(url: str, *, read_only: bool = False, **kwargs: Any) -> Engine:
    """Create an engine for ``url``.

    For SQLite the database file is created ``0600`` (its folders ``0700``) whatever the
    umask, an existing one readable by others is made private (see
    ``complaints.files``), connections may be used from any thread
    (``check_same_thread=False``), and every connection runs in WAL mode with a busy
    timeout.

    A ``read_only`` engine is for the web app's and API's reads: on SQLite its
    transactions begin deferred (a snapshot; they never hold or wait for the write lock
    the worker needs) and its connections refuse writes; elsewhere it is a normal engine.

    Args:
        url: A SQLAlchemy URL, e.g. ``sqlite:///.data/complaints.db``.
        read_only: Make a readers' engine (see above).
        **kwargs: Passed on to ``sqlalchemy.create_engine``.

    Returns:
        The engine.

    """
    parsed = make_url(url)
    if not _is_sqlite(parsed):
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(parsed, **kwargs)
    path = _sqlite_file(parsed)
    if path is not None and parsed.query.get("mode") != "ro":
        from complaints.files import private_sqlite_database

        private_sqlite_database(path)
    connect_args = dict(kwargs.pop("connect_args", {}))
    connect_args.setdefault("check_same_thread", False)
    engine = create_engine(parsed, connect_args=connect_args, **kwargs)
    event.listen(engine, "connect", _on_sqlite_connect)
    if read_only:
        event.listen(engine, "connect", _on_sqlite_connect_read)
        event.listen(engine, "begin", _on_sqlite_begin_read)
        return engine
    event.listen(engine, "begin", _on_sqlite_begin)
    event.listen(engine, "commit", _on_sqlite_end)
    event.listen(engine, "rollback", _on_sqlite_end)
    return engine


def session_factory(engine: Engine) -> Callable[[], Session]:
    """Return a callable that opens a new session on ``engine``.

    Sessions do not expire objects on commit, so rows stay readable after the
    transaction that loaded them.

    Args:
        engine: The engine sessions connect with.

    Returns:
        A zero-argument callable returning a new ``sqlmodel.Session``; use it as a context
        manager.

    """
    return functools.partial(Session, engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    """Build the Alembic configuration for ``url`` without any ini file.

    Args:
        url: The database URL to migrate.

    Returns:
        A configuration whose ``script_location`` is the packaged migrations.

    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # The ini-style options interpolate "%": escape it (passwords are often URL-encoded).
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str | None:
    """Return the newest migration revision shipped."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return script.get_current_head()


def current_revision(url: str) -> str | None:
    """Return the revision the database at ``url`` is at, None if never migrated.

    Args:
        url: The database URL.

    Returns:
        The current Alembic revision.

    """
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Run the Alembic migrations on the database at ``url`` up to ``revision``.

    Running it again when the database is already there does nothing.

    Args:
        url: The database URL.
        revision: The target revision.

    """
    with _SCHEMA_LOCK:
        command.upgrade(alembic_config(url), revision)


def ensure_schema(url: str) -> None:
    """Bring the database at ``url`` to the newest schema, if it is not there already.

    Args:
        url: The database URL.

    """
    if current_revision(url) != head_revision():
        upgrade(url)


#: The largest sequence number a reference can carry (``CMP-YYYY-NNNNNN``).
MAX_SEQ = 999_999


class ReferencesExhausted(RuntimeError):
    """Every reference number of a year is taken."""


def format_reference(year: int, seq: int) -> str:
    """``CMP-YYYY-NNNNNN`` for a year and a sequence number."""
    return f"CMP-{year:04d}-{seq:06d}"


def parse_reference(reference: str) -> tuple[int, int]:
    """The (year, sequence number) of a ``CMP-YYYY-NNNNNN`` reference.

    Raises:
        ValueError: If ``reference`` does not have that form.

    """
    prefix, year, seq = reference.split("-") if reference.count("-") == 2 else ("", "", "")
    if prefix != "CMP" or len(year) != 4 or len(seq) != 6 or not (year + seq).isdigit():
        raise ValueError(f"{reference!r} is not of the form CMP-YYYY-NNNNNN")
    return int(year), int(seq)


def reference_for_channel(engine: Engine, channel: str,
                          channel_reference: str) -> ReferenceRow | None:
    """The reference row already handed out for a channel's own id, if any."""
    from sqlmodel import select

    from models.tables import ReferenceRow

    with session_factory(engine)() as session:
        return session.exec(select(ReferenceRow).where(
            ReferenceRow.channel == channel,
            ReferenceRow.channel_reference == channel_reference)).first()


def _next_seq(session: Session, year: int, at_least: int, skip: Collection[int]) -> int:
    """The next free number: past the year's highest, or the lowest gap once that is full."""
    from sqlalchemy import func
    from sqlmodel import select

    from models.tables import ReferenceRow

    top = session.exec(select(func.max(ReferenceRow.seq)).where(
        ReferenceRow.year == year)).one()
    seq = max((top or 0) + 1, at_least, 1)
    while seq in skip:
        seq += 1
    if seq <= MAX_SEQ:
        return seq
    # An explicit reference near the top of the range pushed the sequence off the end:
    # fall back to the lowest number nobody has (rare, so a scan is fine).
    taken = set(session.exec(select(ReferenceRow.seq).where(ReferenceRow.year == year)).all())
    taken.update(skip)
    for candidate in range(1, MAX_SEQ + 1):
        if candidate not in taken:
            return candidate
    raise ReferencesExhausted(f"every reference of {year} is taken")


def allocate_row(engine: Engine, channel: str, channel_reference: str | None, year: int,
                 fingerprint: str | None = None, *, at_least: int = 1,
                 skip: Collection[int] = ()) -> ReferenceRow:
    """Hand out the next reference of ``year``, or return the row this channel id already has.

    References run ``CMP-YYYY-000001`` upwards within a year, past the highest number in
    the table (explicit references included, so the sequence never runs into one). Two
    lodgings at once race on the unique constraints; the loser tries again. The caller
    compares the returned row's fingerprint with its own: a row found for the channel id
    may belong to a different intake.

    Args:
        engine: The complaints database.
        channel: How the complaint arrived.
        channel_reference: The channel's own id (email or call id), if any.
        year: The year the complaint was received.
        fingerprint: The intake's fingerprint, stored with a new row.
        at_least: The lowest number to hand out (to move past numbers Temporal has).
        skip: Numbers known to be taken elsewhere (Temporal), never handed out.

    Returns:
        The new row, or the existing row for ``channel_reference``.

    Raises:
        ReferencesExhausted: If the year has no number left.
        RuntimeError: If the races never end (50 attempts).

    """
    from sqlalchemy.exc import IntegrityError

    from models.tables import ReferenceRow

    for _ in range(50):
        if channel_reference is not None:
            existing = reference_for_channel(engine, channel, channel_reference)
            if existing is not None:
                return existing
        with session_factory(engine)() as session:
            seq = _next_seq(session, year, at_least, skip)
            row = ReferenceRow(reference=format_reference(year, seq), year=year, seq=seq,
                               channel=channel, channel_reference=channel_reference,
                               fingerprint=fingerprint)
            session.add(row)
            try:
                session.commit()
                return row
            except IntegrityError:
                session.rollback()
    raise RuntimeError("could not allocate a complaint reference after 50 attempts")


def allocate_reference(engine: Engine, channel: str, channel_reference: str | None,
                       year: int) -> str:
    """The reference for a new complaint, or the one this channel id already has.

    Kept for callers that only need the string; see :func:`allocate_row`.

    Args:
        engine: The complaints database.
        channel: How the complaint arrived.
        channel_reference: The channel's own id (email or call id), if any.
        year: The year the complaint was received.

    Returns:
        The reference, e.g. ``CMP-2026-000123``.

    """
    return allocate_row(engine, channel, channel_reference, year).reference


def reserve_reference(engine: Engine, reference: str, channel: str,
                      channel_reference: str | None, fingerprint: str) -> ReferenceRow:
    """Record an explicit reference for an intake, or return the row that holds it already.

    Args:
        engine: The complaints database.
        reference: The reference asked for (``CMP-YYYY-NNNNNN``).
        channel: How the complaint arrived.
        channel_reference: The channel's own id, if any.
        fingerprint: The intake's fingerprint.

    Returns:
        The new row; or the existing row with this reference, or with this channel id
        (the caller compares references and fingerprints).

    """
    from sqlalchemy.exc import IntegrityError

    from models.tables import ReferenceRow

    year, seq = parse_reference(reference)
    for _ in range(50):
        with session_factory(engine)() as session:
            existing = session.get(ReferenceRow, reference)
            if existing is not None:
                return existing
            row = ReferenceRow(reference=reference, year=year, seq=seq, channel=channel,
                               channel_reference=channel_reference, fingerprint=fingerprint)
            session.add(row)
            try:
                session.commit()
                return row
            except IntegrityError:
                session.rollback()
        if channel_reference is not None:
            by_channel = reference_for_channel(engine, channel, channel_reference)
            if by_channel is not None:
                return by_channel
    raise RuntimeError(f"could not record {reference} after 50 attempts")


def record_reference(engine: Engine, reference: str, channel: str,
                     channel_reference: str | None, fingerprint: str | None) -> None:
    """Make the row for ``reference`` say what Temporal holds under it (upsert).

    Used when Temporal already has a case under a reference this database handed out to
    another intake (a deleted or restored database): the row is corrected, and the next
    allocation moves past it. If the case's channel id is held by another row, this row
    is dropped instead.

    Args:
        engine: The complaints database.
        reference: The existing case's reference.
        channel: Its channel.
        channel_reference: Its channel id, if any.
        fingerprint: Its intake's fingerprint, if known.

    """
    from sqlalchemy.exc import IntegrityError

    from models.tables import ReferenceRow

    year, seq = parse_reference(reference)
    with session_factory(engine)() as session:
        row = session.get(ReferenceRow, reference) or ReferenceRow(
            reference=reference, year=year, seq=seq, channel=channel)
        row.channel, row.channel_reference, row.fingerprint = (
            channel, channel_reference, fingerprint)
        session.add(row)
        try:
            session.commit()
            return
        except IntegrityError:
            session.rollback()
    with session_factory(engine)() as session:
        stale = session.get(ReferenceRow, reference)
        if stale is not None:
            session.delete(stale)
            session.commit()


def letter_text(url: str, letter_id: str) -> str | None:
    """The stored plain text of a letter, or None when it is not stored (yet)."""
    from sqlmodel import Session

    from models.tables import LetterRow

    engine = make_engine(url)
    try:
        with Session(engine) as session:
            row = session.get(LetterRow, letter_id)
            return row.text if row else None
    finally:
        engine.dispose()
