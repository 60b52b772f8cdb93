"""Alembic environment for the complaints database.

The URL comes from the configuration's ``sqlalchemy.url`` (set programmatically by
``complaints.db.upgrade``); when that is empty (``alembic upgrade head`` run by an operator
with the top-level ``alembic.ini``) from the ``DATABASE_URL`` environment variable, and
failing that the settings' default SQLite file. A caller may also hand over an open
connection in ``config.attributes["connection"]``.
"""

from __future__ import annotations

import os
from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

import models.access  # noqa: F401  (registers the access tables on SQLModel.metadata)
import models.imports  # noqa: F401  (registers the import tables)
import models.learning  # noqa: F401  (registers the learning tables)
import models.service_requests  # noqa: F401  (registers the service request tables)
import models.tables  # noqa: F401  (registers the tables on SQLModel.metadata)
import models.tallies  # noqa: F401  (registers the report's tallies)
from complaints.db import make_engine
from models.tables import UTCDateTime

config = context.config

if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = SQLModel.metadata


def _database_url() -> str:
    """Return the URL to migrate: the config's, else ``DATABASE_URL``, else the default."""
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    url = os.environ.get("DATABASE_URL", "")
    if url:
        return url
    from complaints.settings import Settings

    return Settings().effective_database_url()


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Render SQLModel's and our own column types as plain SQLAlchemy types."""
    if type_ == "type" and isinstance(obj, AutoString):
        return "sa.String()" if obj.length is None else f"sa.String(length={obj.length})"
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=_render_item,
        compare_type=True,
    )


def run_migrations_offline() -> None:
    """Emit the migration SQL without a database connection (``alembic upgrade --sql``)."""
    url = _database_url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.startswith("sqlite"),
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on a live connection."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(_database_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
