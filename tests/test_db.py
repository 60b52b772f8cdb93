"""The database layer: engines, sessions, Alembic migrations and the UTC datetime column."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import StatementError
from sqlmodel import SQLModel, select

import models.access  # noqa: F401  (the access tables)
import models.imports  # noqa: F401  (the import tables)
import models.learning  # noqa: F401  (the learning tables)
import models.service_requests  # noqa: F401  (the service request tables)
import models.tallies  # noqa: F401  (the report's tallies)
from complaints.db import (
    current_revision,
    ensure_schema,
    head_revision,
    make_engine,
    session_factory,
    upgrade,
)
from models.tables import AuditRow, ComplaintRow

ROOT = Path(__file__).resolve().parent.parent
TABLES = {"complaints", "parties", "adjustments", "letters", "deliveries", "extensions",
          "ombudsman_details", "notifications", "remedies", "remedy_payments", "actions",
          "deadlines",
          "audit_events", "references", "responses", "refusals", "notification_deliveries",
          "case_records", "case_documents", "contact_restrictions",
          "contact_restriction_history", "case_triage", "staff", "service_tokens",
          "case_views", "idempotency_keys", "webhook_deliveries", "erasure_runs",
          "erasures", "subject_access_requests", "service_requests",
          "import_runs", "imported_complaints",
          "complaint_service_requests", "response_learning", "response_learning_tags",
          "service_changes", "satisfaction_results", "response_tally",
          "missed_response_tally", "complaint_tally", "acknowledgement_tally", "remedy_tally",
          "payment_tally", "escalation_tally", "taken_on_tally",
          "late_acknowledgement_tally"}


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A SQLite URL in a folder that does not exist yet."""
    return f"sqlite:///{(tmp_path / 'nested' / 'data' / 'complaints.db').as_posix()}"


def _complaint(reference: str = "CMP-2026-000001") -> ComplaintRow:
    return ComplaintRow(reference=reference, landlord="Connexus", policy_name="connexus",
                        channel="phone", category="repairs", received_on=dt.date(2026, 11, 20),
                        description="A leaking roof")


def test_upgrade_creates_every_table(db_url: str) -> None:
    """Migrating a new database creates every table of models.tables and the version table."""
    upgrade(db_url)
    engine = make_engine(db_url)
    names = set(inspect(engine).get_table_names())
    engine.dispose()
    assert TABLES == set(SQLModel.metadata.tables) & TABLES
    assert names == TABLES | {"alembic_version"}


def test_migrated_schema_matches_the_models(db_url: str) -> None:
    """Alembic finds no difference between the migrated schema and the SQLModel tables."""
    upgrade(db_url)
    engine = make_engine(db_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, SQLModel.metadata)
    engine.dispose()
    assert diff == []


def test_upgrade_is_repeatable_and_keeps_data(db_url: str) -> None:
    """Upgrading twice leaves the database at head with its rows intact."""
    upgrade(db_url)
    engine = make_engine(db_url)
    with session_factory(engine)() as session:
        session.add(_complaint())
        session.commit()
    upgrade(db_url)
    ensure_schema(db_url)
    with session_factory(engine)() as session:
        rows = session.exec(select(ComplaintRow)).all()
    engine.dispose()
    assert current_revision(db_url) == head_revision() == "0020"
    assert [r.reference for r in rows] == ["CMP-2026-000001"]


def test_ensure_schema_migrates_a_new_database(db_url: str) -> None:
    """A database never migrated has no revision, and ensure_schema brings it to head."""
    assert current_revision(db_url) is None
    ensure_schema(db_url)
    assert current_revision(db_url) == head_revision()


def test_downgrade_and_upgrade_round_trip(db_url: str) -> None:
    """The initial revision drops every table on downgrade and recreates them on upgrade."""
    from alembic import command

    from complaints.db import alembic_config

    upgrade(db_url)
    command.downgrade(alembic_config(db_url), "base")
    engine = make_engine(db_url)
    after_downgrade = set(inspect(engine).get_table_names())
    engine.dispose()
    upgrade(db_url)
    engine = make_engine(db_url)
    after_upgrade = set(inspect(engine).get_table_names())
    engine.dispose()
    assert after_downgrade == {"alembic_version"}
    assert after_upgrade == TABLES | {"alembic_version"}


def test_revision_0017_fills_the_payments_from_the_audit_trail(db_url: str) -> None:
    """Upgrading a database at 0016 makes one payment row per readable accepted payment."""
    upgrade(db_url, "0016")
    engine = make_engine(db_url)
    paid = json.dumps({"trigger": "pay_remedy", "stage": 2, "remedy": 1,
                       "paid_on": "2026-01-09", "amount": "75.25"})
    with engine.begin() as db:
        db.execute(text(
            "INSERT INTO audit_events (reference, seq, at, action, by, from_state, "
            "to_state, accepted, detail) VALUES (:r, :seq, :at, :action, 'mgr-7', 'closed', "
            "'closed', :accepted, :detail)"), [
                {"r": "CMP-2026-000001", "seq": 1, "at": "2026-01-09 10:00:00",
                 "action": "pay_remedy", "accepted": True, "detail": paid},
                {"r": "CMP-2026-000001", "seq": 2, "at": "2026-01-09 10:00:00",
                 "action": "pay_remedy", "accepted": False, "detail": paid},
                {"r": "CMP-2026-000002", "seq": 1, "at": "2026-01-09 10:00:00",
                 "action": "pay_remedy", "accepted": True, "detail": "Paid by cheque"},
                {"r": "CMP-2026-000003", "seq": 1, "at": "2026-01-09 10:00:00",
                 "action": "acknowledge", "accepted": True, "detail": paid}])
    engine.dispose()
    upgrade(db_url)
    engine = make_engine(db_url)
    with engine.connect() as db:
        rows = db.execute(text("SELECT reference, seq, stage, position, paid_on, "
                               "amount_pence FROM remedy_payments")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("CMP-2026-000001", 1, 2, 1, "2026-01-09", 7525)]


def test_make_engine_creates_folder_and_sets_pragmas(db_url: str, tmp_path: Path) -> None:
    """A SQLite engine creates its folder and runs every connection in WAL with a timeout."""
    engine = make_engine(db_url)
    with engine.connect() as connection:
        journal = connection.execute(text("PRAGMA journal_mode")).scalar()
        timeout = connection.execute(text("PRAGMA busy_timeout")).scalar()
    engine.dispose()
    assert (tmp_path / "nested" / "data").is_dir()
    assert journal == "wal"
    assert timeout == 30_000


def test_datetimes_are_stored_as_utc(db_url: str) -> None:
    """An aware London time is stored and read back as the same instant in UTC."""
    upgrade(db_url)
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    london = dt.datetime(2026, 7, 1, 12, 0, tzinfo=ZoneInfo("Europe/London"))
    with sessions() as session:
        session.add(AuditRow(reference="CMP-2026-000001", seq=1, at=london, action="log",
                             by="staff-1", from_state="received", to_state="received"))
        session.commit()
    with engine.connect() as connection:
        raw = connection.execute(text("SELECT at FROM audit_events")).scalar()
    with sessions() as session:
        row = session.exec(select(AuditRow)).one()
    engine.dispose()
    assert str(raw).startswith("2026-07-01 11:00:00")
    assert row.at == london
    assert row.at.tzinfo == dt.UTC


def test_naive_datetimes_are_refused(db_url: str) -> None:
    """Storing a naive datetime fails instead of guessing its time zone."""
    upgrade(db_url)
    engine = make_engine(db_url)
    with session_factory(engine)() as session:
        session.add(AuditRow(reference="CMP-2026-000001", seq=1, at=dt.datetime(2026, 7, 1),
                             action="log", by="staff-1", from_state="a", to_state="b"))
        with pytest.raises(StatementError, match="naive"):
            session.commit()
    engine.dispose()


def test_sessions_keep_rows_readable_after_commit(db_url: str) -> None:
    """Rows stay loaded after commit (expire_on_commit is off), even after the session closes."""
    upgrade(db_url)
    engine = make_engine(db_url)
    with session_factory(engine)() as session:
        row = _complaint()
        session.add(row)
        session.commit()
    engine.dispose()
    assert row.reference == "CMP-2026-000001"
    assert row.landlord == "Connexus"


def test_concurrent_writers_do_not_fail(db_url: str) -> None:
    """Threads that read then write in one transaction all succeed on one SQLite file."""
    upgrade(db_url)
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for seq in range(n * 20, n * 20 + 20):
                with sessions() as session:
                    count = len(session.exec(select(AuditRow.id)).all())
                    session.add(AuditRow(reference="CMP-2026-000001", seq=seq,
                                         at=dt.datetime.now(dt.UTC), action="log",
                                         by="t", from_state="a", to_state="b",
                                         detail=str(count)))
                    session.commit()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with sessions() as session:
        stored = len(session.exec(select(AuditRow.id)).all())
    engine.dispose()
    assert errors == []
    assert stored == 120


def test_alembic_command_line_uses_database_url(tmp_path: Path) -> None:
    """``alembic upgrade head`` with the top-level alembic.ini migrates DATABASE_URL."""
    url = f"sqlite:///{(tmp_path / 'ops.db').as_posix()}"
    env = dict(os.environ, DATABASE_URL=url)
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "upgrade", "head"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert current_revision(url) == head_revision()


def test_references_run_per_year_and_repeat_for_the_same_channel_id(db_url: str) -> None:
    """References count up within a year; the same channel id gets the same reference."""
    from complaints.db import allocate_reference, make_engine

    upgrade(db_url)
    engine = make_engine(db_url)
    first = allocate_reference(engine, "email", "msg-1", 2026)
    second = allocate_reference(engine, "phone", None, 2026)
    again = allocate_reference(engine, "email", "msg-1", 2026)
    other_year = allocate_reference(engine, "phone", None, 2027)
    assert (first, second, again, other_year) == (
        "CMP-2026-000001", "CMP-2026-000002", "CMP-2026-000001", "CMP-2027-000001")
