"""The database: engines, sessions and schema migrations (Alembic).

Used by activities and operator tools, never by workflow code. SQLite (the default, a
file in the data folder) and any SQLAlchemy URL work; SQLite is set up for a worker that
writes from several threads: write-ahead logging, a busy timeout, and write transactions
that take the write lock when they begin (``BEGIN IMMEDIATE``) so that two threads never
deadlock upgrading a read lock.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlmodel import Session

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "ensure_schema",
    "head_revision",
    "make_engine",
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
    finally:
        cursor.close()


def _on_sqlite_begin(connection: Any) -> None:
    """Begin every transaction holding the write lock, so it never has to upgrade."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url``.

    For SQLite the parent folder of the database file is created, connections may be
    used from any thread (``check_same_thread=False``), and every connection runs in WAL
    mode with a busy timeout.

    Args:
        url: A SQLAlchemy URL, e.g. ``sqlite:///.data/complaints.db``.
        **kwargs: Passed on to ``sqlalchemy.create_engine``.

    Returns:
        The engine.

    """
    parsed = make_url(url)
    if not _is_sqlite(parsed):
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(parsed, **kwargs)
    path = _sqlite_file(parsed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    connect_args = dict(kwargs.pop("connect_args", {}))
    connect_args.setdefault("check_same_thread", False)
    engine = create_engine(parsed, connect_args=connect_args, **kwargs)
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
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


def allocate_reference(engine: Engine, channel: str, channel_reference: str | None,
                       year: int) -> str:
    """The reference for a new complaint, or the one this channel id already has.

    References run ``CMP-YYYY-000001`` upwards within a year. Two staff lodging at once
    race on the unique constraints; the loser tries the next number.

    Args:
        engine: The complaints database.
        channel: How the complaint arrived.
        channel_reference: The channel's own id (email or call id), if any.
        year: The year the complaint was received.

    Returns:
        The reference, e.g. ``CMP-2026-000123``.

    """
    from sqlalchemy import func
    from sqlalchemy.exc import IntegrityError
    from sqlmodel import Session, select

    from models.tables import ReferenceRow

    for _ in range(50):
        with Session(engine) as session:
            if channel_reference is not None:
                existing = session.exec(select(ReferenceRow).where(
                    ReferenceRow.channel == channel,
                    ReferenceRow.channel_reference == channel_reference)).first()
                if existing is not None:
                    return existing.reference
            top = session.exec(select(func.max(ReferenceRow.seq)).where(
                ReferenceRow.year == year)).one()
            seq = (top or 0) + 1
            reference = f"CMP-{year:04d}-{seq:06d}"
            session.add(ReferenceRow(reference=reference, year=year, seq=seq, channel=channel,
                                     channel_reference=channel_reference))
            try:
                session.commit()
                return reference
            except IntegrityError:
                session.rollback()
    raise RuntimeError("could not allocate a complaint reference after 50 attempts")


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
