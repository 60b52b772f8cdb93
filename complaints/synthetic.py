"""A realistic synthetic reporting year, loaded straight into the complaints database.

For demonstrations and benchmarks: ``complaints synthetic --year 2025/26 --complaints N
--seed S`` writes N complaints received in the year, with their acknowledgements,
extensions (and the Ombudsman details given with them), responses, remedies (financial
ones paid, as ``pay-remedy`` records them in the audit trail), outstanding actions,
escalations, refusals, withdrawals, Ombudsman referrals and the orders of some
determinations (as deadlines), as the workflow's activities would have recorded them. The
same seed gives the same rows.

It bypasses Temporal and the workflow on purpose: running 200,000 workflows to fill a
reporting database would take hours, and the reports read only the database. The rows
are built with the policy's working calendar exactly as ``activities.records`` builds
them, so the reports cannot tell the difference. It does not write parties, notifications,
or audit entries and deadlines other than payments and orders, which no report reads;
letters are stored as one-line placeholders so that the records evidence (5.12) has
something to find. Payments and orders are drawn from a random stream of their own, so
adding them changed no other figure of a seed's year.

Synthetic references are ``SYN-<first year>-NNNNNN`` with channel reference
``synthetic:<seed>:<n>``, so they never collide with real ones and ``--replace`` deletes
only synthetic rows. The proportions are in :mod:`complaints.synthetic_rates` and the
rows are built by :mod:`complaints.synthetic_rows`; the loader returns what it generated
(:class:`SyntheticSummary`), which the tests check the reports against.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Engine, delete, func, select

from complaints.reports.period import Period
from complaints.synthetic_rates import BATCH, PREFIX
from complaints.synthetic_rows import TABLES, Builder, SyntheticSummary, received_dates, table_of
from models.policy import Policy
from models.tables import (
    ActionRow,
    AdjustmentRow,
    AuditRow,
    ComplaintRow,
    DeadlineRow,
    ExtensionRow,
    LetterRow,
    NotificationRow,
    OmbudsmanDetailsRow,
    PartyRow,
    RefusalRow,
    RemedyPaymentRow,
    RemedyRow,
    ResponseRow,
)

__all__ = ["PREFIX", "SyntheticError", "SyntheticSummary", "load_synthetic_year"]


class SyntheticError(Exception):
    """The synthetic year cannot be loaded (e.g. it is loaded already)."""


#: Tables cleared by ``--replace`` (everything keyed by reference), children first.
_CHILDREN: tuple[Any, ...] = (ResponseRow, RefusalRow, ExtensionRow, OmbudsmanDetailsRow,
                              RemedyRow, ActionRow, LetterRow, DeadlineRow, NotificationRow,
                              AuditRow, RemedyPaymentRow, PartyRow, AdjustmentRow)


def _existing(engine: Engine, pattern: str) -> int:
    complaints = table_of(ComplaintRow)
    with engine.connect() as db:
        return int(db.execute(select(func.count()).select_from(complaints)
                              .where(complaints.c.reference.like(pattern))).scalar_one())


def _delete(engine: Engine, pattern: str) -> None:
    """Delete the synthetic complaints matching ``pattern`` and every row about them."""
    with engine.begin() as db:
        for model in _CHILDREN:
            table = table_of(model)
            db.execute(delete(table).where(table.c.reference.like(pattern)))
        complaints = table_of(ComplaintRow)
        db.execute(delete(complaints).where(complaints.c.reference.like(pattern)))


def load_synthetic_year(engine: Engine, policy: Policy, period: Period, complaints: int, *,
                        seed: int = 1, as_of: dt.date | None = None, replace: bool = False,
                        progress: Callable[[str], None] | None = None) -> SyntheticSummary:
    """Generate a reproducible synthetic year of complaints and bulk-insert it.

    Args:
        engine: The complaints database, at the newest schema.
        policy: The landlord's policy (time limits, calendar, Ombudsman details).
        period: The year the complaints are received in.
        complaints: How many complaints.
        seed: The random seed: the same seed gives the same rows.
        as_of: Nothing happens after this date (default: today): complaints are received
            up to it, and later steps are left undone, so the cases stand as they would
            on that date.
        replace: Delete this year's synthetic complaints first (never real ones).
        progress: Called with a line of progress now and then.

    Returns:
        What was generated.

    Raises:
        SyntheticError: If this year's synthetic complaints are loaded already and
            ``replace`` is not set, or ``as_of`` is before the year.

    """
    started = time.perf_counter()
    say = progress or (lambda _line: None)
    pattern = f"{PREFIX}-{period.start.year}-%"
    existing = _existing(engine, pattern)
    if existing and not replace:
        raise SyntheticError(f"{existing:,} synthetic complaints of {period.label} are loaded "
                             "already: add --replace to load them again")
    if existing:
        say(f"deleting {existing:,} synthetic complaints of {period.label}")
        _delete(engine, pattern)
    as_of = as_of or dt.date.today()
    if as_of < period.start:
        raise SyntheticError(f"nothing can have happened in {period.label} by "
                             f"{as_of.isoformat()}: choose a later --as-of")
    builder = Builder(policy, period, seed, as_of, complaints)
    dates = received_dates(builder.rng, period, builder.calendar, complaints, as_of)
    written: dict[str, int] = dict.fromkeys(TABLES, 0)
    for first in range(0, complaints, BATCH):
        for offset, received in enumerate(dates[first:first + BATCH]):
            builder.complaint(first + offset + 1, received)
        _insert(engine, builder.take_rows(), written)
        done = min(first + BATCH, complaints)
        say(f"complaints {done:,}/{complaints:,} ({time.perf_counter() - started:.1f}s)")
    _analyze(engine)
    summary = builder.summary
    summary.rows = written
    summary.seconds = time.perf_counter() - started
    return summary


def _sqlite_datetime(value: dt.datetime) -> str:
    """UTCDateTime in SQLite: UTC, in SQLAlchemy's DATETIME storage format."""
    return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


#: How SQLAlchemy stores each Python type in SQLite (``models.tables`` column types).
_SQLITE: dict[type, Callable[[Any], Any]] = {
    dt.datetime: _sqlite_datetime, dt.date: dt.date.isoformat, bool: int}


def _sqlite_value(value: Any) -> Any:
    """A value as SQLAlchemy stores it in SQLite."""
    convert = _SQLITE.get(type(value))
    return value if convert is None else convert(value)


def _analyze(engine: Engine) -> None:
    """Refresh the planner's statistics after a bulk load (PostgreSQL: and vacuum)."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as db:
            for table in TABLES.values():
                db.exec_driver_sql(f'VACUUM ANALYZE "{table.name}"')
        return
    with engine.begin() as db:
        db.exec_driver_sql("ANALYZE")


def _insert(engine: Engine, rows: dict[str, list[dict[str, Any]]],
            written: dict[str, int]) -> None:
    """Insert one batch, parents first, in one transaction.

    Bulk paths by dialect: PostgreSQL (psycopg) gets ``COPY ... FROM STDIN``, SQLite a
    driver-level ``executemany`` of values in the form SQLAlchemy itself stores; any
    other database SQLAlchemy's ``executemany``.
    """
    backend = engine.dialect.name
    with engine.begin() as db:
        for name, table in TABLES.items():
            batch: Sequence[dict[str, Any]] = rows[name]
            if not batch:
                continue
            columns = list(batch[0])
            quoted = ", ".join(f'"{c}"' for c in columns)
            if backend == "postgresql" and engine.dialect.driver == "psycopg":
                cursor = db.connection.driver_connection.cursor()  # type: ignore[union-attr]
                with cursor.copy(f'COPY "{table.name}" ({quoted}) FROM STDIN') as copy:
                    for row in batch:
                        copy.write_row([row[c] for c in columns])
            elif backend == "sqlite":
                marks = ", ".join("?" for _ in columns)
                db.exec_driver_sql(
                    f'INSERT INTO "{table.name}" ({quoted}) VALUES ({marks})',
                    [tuple(_sqlite_value(row[c]) for c in columns) for row in batch])
            else:
                db.execute(table.insert(), list(batch))
            written[name] += len(batch)
