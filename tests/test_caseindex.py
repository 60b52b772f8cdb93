"""Case lists over the read model: filters, ordering, working days left, and the index."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlmodel import Session

from complaints.caseindex import CaseFilter, rag, search_cases
from complaints.db import make_engine, upgrade
from models.tables import ComplaintRow, StaffRow

UK = ZoneInfo("Europe/London")
TODAY = dt.date(2026, 11, 26)  # a Thursday


def _due(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(23, 59), UK)


@pytest.fixture
def session(tmp_path: Path) -> Session:
    """A migrated database with a few cases and two handlers in two teams."""
    url = f"sqlite:///{tmp_path / 'c.db'}"
    upgrade(url)
    db = Session(make_engine(url), expire_on_commit=False)
    for staff_id, team in (("hdl-1", "North"), ("hdl-2", "South")):
        db.add(StaffRow(staff_id=staff_id, staff_key=staff_id, display_name=staff_id,
                        job_title="Officer", team=team, email=f"{staff_id}@x.example",
                        roles="handler"))
    cases = [("CMP-2026-000001", "HDL-1", "stage1_investigating", TODAY + dt.timedelta(days=6),
              False),
             ("CMP-2026-000002", "hdl-1", "stage1_investigating", TODAY - dt.timedelta(days=1),
              True),
             ("CMP-2026-000003", "hdl-2", "stage2_investigating", TODAY + dt.timedelta(days=1),
              False),
             ("CMP-2026-000004", None, "received", TODAY + dt.timedelta(days=4), False),
             ("CMP-2026-000005", "hdl-1", "closed", None, False),
             ("CMP-2026-000006", None, "voided", None, False)]
    for reference, handler, state, due, overdue in cases:
        db.add(ComplaintRow(reference=reference, landlord="Connexus", policy_name="connexus",
                            channel="phone", category="repairs", received_on=TODAY,
                            description="text", state=state, handler_id=handler,
                            next_deadline=_due(due) if due else None, overdue=overdue))
    db.commit()
    return db


def refs(session: Session, **wanted: object) -> list[str]:
    """The references a filter lists, in order."""
    return [c.reference for c in search_cases(session, CaseFilter.model_validate(wanted),
                                              TODAY).items]


def test_a_handlers_cases_whatever_the_capitals_overdue_first(session: Session) -> None:
    """hdl-1 and HDL-1 are one person; the overdue case comes first; closed ones stay out."""
    assert refs(session, handler="hdl-1") == ["CMP-2026-000002", "CMP-2026-000001"]
    assert refs(session, handler="hdl-1", include_closed=True)[-1] == "CMP-2026-000005"


def test_team_unassigned_and_never_voided(session: Session) -> None:
    """A team's list follows the directory; unassigned has no handler; voided never shows."""
    assert refs(session, team="South") == ["CMP-2026-000003"]
    assert refs(session, unassigned=True) == ["CMP-2026-000004"]
    assert "CMP-2026-000006" not in refs(session, include_closed=True)


def test_due_within_counts_working_days(session: Session) -> None:
    """Due within 1 working day of a Thursday reaches Friday, not the Monday after."""
    assert refs(session, due_within=1) == ["CMP-2026-000002", "CMP-2026-000003"]
    assert "CMP-2026-000004" in refs(session, due_within=2)


def test_working_days_left_and_the_rag_mark(session: Session) -> None:
    """Working days left skip the weekend, and the mark follows them."""
    page = search_cases(session, CaseFilter(handler="hdl-1"), TODAY)
    by_ref = {c.reference: c for c in page.items}
    assert by_ref["CMP-2026-000001"].working_days_left == 4  # Thu to the next Wed
    assert by_ref["CMP-2026-000001"].rag == "amber"
    assert by_ref["CMP-2026-000002"].rag == "red"
    assert (rag(None, False), rag(9, False), rag(2, False)) == (None, "green", "red")


def test_the_inbox_query_uses_the_handler_index(session: Session) -> None:
    """SQLite plans the handler filter through ix_complaints_handler_lower, not a scan."""
    plan = session.connection().execute(text(
        "EXPLAIN QUERY PLAN SELECT reference FROM complaints "
        "WHERE lower(handler_id) = 'hdl-1'")).all()
    assert any("ix_complaints_handler_lower" in str(row) for row in plan), plan
