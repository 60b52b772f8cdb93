"""The synthetic year: reproducible, what it says it generated, and never over real rows."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from complaints.db import make_engine, upgrade
from complaints.policies import load_compliant_policy
from complaints.reports import ReportOptions, build_report, parse_year
from complaints.synthetic import SyntheticError, SyntheticSummary, load_synthetic_year
from models.tables import ComplaintRow, ResponseRow
from tests.pg import create_database, postgres_url  # noqa: F401

POLICY = load_compliant_policy("connexus")
YEAR = parse_year("2025/26")
AS_OF = dt.date(2026, 11, 1)


def _engine(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Engine:
    if backend == "sqlite":
        url = f"sqlite:///{(tmp_path / f'{uuid.uuid4().hex[:6]}.db').as_posix()}"
    else:
        request.getfixturevalue("postgres_url")
        url = create_database(f"syn_{uuid.uuid4().hex[:8]}")
    upgrade(url)
    return make_engine(url)


def _load(engine: Engine, n: int, seed: int, **kwargs: object) -> SyntheticSummary:
    return load_synthetic_year(engine, POLICY, YEAR, n, seed=seed, as_of=AS_OF,
                               **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_report_finds_what_the_generator_made(backend: str, tmp_path: Path,
                                                  request: pytest.FixtureRequest) -> None:
    """CH01, CH02, extensions, refusals, referrals, payments and orders equal its tallies."""
    engine = _engine(backend, tmp_path, request)
    summary = _load(engine, 1500, seed=11)
    report = build_report(engine, ReportOptions(YEAR, POLICY, as_of=AS_OF))
    engine.dispose()
    assert summary.complaints == report.complaints_logged == 1500
    assert report.ch01[0].received == summary.complaints - summary.excluded
    assert report.ch01[1].received == summary.stage2_received
    assert report.complaints_withdrawn == summary.withdrawn
    for stage in (1, 2):
        truth, ch02 = summary.stages[stage], report.ch02[stage - 1]
        assert (ch02.responses, ch02.within_base, ch02.within_extension) == (
            truth.responses, truth.within_base, truth.within_extension)
        assert report.stages[stage - 1].extended == truth.extended
    acks = report.acknowledgements[0]
    assert acks.acknowledged - acks.within_limit == summary.acknowledged_late
    refused = {r.kind: r.cases for r in report.refusals}
    assert refused["escalation"] == summary.escalations_refused
    assert report.ombudsman.referred == summary.referred
    payments, orders = report.remedy_payments, report.ombudsman_orders
    assert (payments.offered, payments.paid, payments.paid_late) == (
        summary.financial_offered, summary.financial_paid, summary.financial_paid_late)
    assert payments.unpaid_no_date == 0 and payments.paid > 0
    assert (orders.made, orders.complied_on_time) == (summary.orders, summary.orders_on_time)
    # The proportions are those documented: about 3% refused, about 10% late at stage 1.
    assert 0.01 < summary.excluded / 1500 < 0.06
    assert 0.75 < summary.stages[1].within_base / summary.stages[1].responses < 0.95


def test_the_same_seed_loads_the_same_year(tmp_path: Path,
                                           request: pytest.FixtureRequest) -> None:
    """Two loads with one seed give identical reports; another seed gives another year."""
    reports = []
    for seed in (5, 5, 6):
        engine = _engine("sqlite", tmp_path, request)
        _load(engine, 300, seed=seed)
        reports.append(build_report(engine, ReportOptions(YEAR, POLICY, as_of=AS_OF),
                                    evidence=True).model_dump())
        engine.dispose()
    assert reports[0] == reports[1]
    assert reports[0] != reports[2]


def test_loading_again_needs_replace_and_spares_real_complaints(
        tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """A second load is refused without replace; replace swaps only synthetic rows."""
    engine = _engine("sqlite", tmp_path, request)
    with Session(engine) as session:
        session.add(ComplaintRow(reference="CMP-2025-000001", landlord="Connexus",
                                 policy_name="connexus", channel="phone", category="repairs",
                                 received_on=dt.date(2025, 5, 1), description="Real"))
        session.commit()
    first = _load(engine, 200, seed=3)
    with pytest.raises(SyntheticError, match="add --replace"):
        _load(engine, 200, seed=3)
    second = _load(engine, 150, seed=4, replace=True)
    with Session(engine) as session:
        complaints = session.exec(select(func.count()).select_from(ComplaintRow)).one()
        real = session.get(ComplaintRow, "CMP-2025-000001")
        responses = session.exec(select(func.count()).select_from(ResponseRow)).one()
    engine.dispose()
    assert (first.complaints, second.complaints, complaints) == (200, 150, 151)
    assert real is not None and real.description == "Real"
    assert responses == second.rows["responses"]


def test_nothing_happens_after_the_as_of_date(tmp_path: Path,
                                              request: pytest.FixtureRequest) -> None:
    """Loaded as at 15 January 2026, nothing is received or answered later."""
    engine = _engine("sqlite", tmp_path, request)
    load_synthetic_year(engine, POLICY, YEAR, 400, seed=2, as_of=dt.date(2026, 1, 15))
    with Session(engine) as session:
        latest = session.exec(select(func.max(ResponseRow.responded_on))).one()
        received = session.exec(select(func.max(ComplaintRow.received_on))).one()
        open_cases = session.exec(select(func.count()).select_from(ComplaintRow).where(
            ComplaintRow.state == "received")).one()
    engine.dispose()
    assert latest is not None and latest <= dt.date(2026, 1, 15)
    assert received is not None and received <= dt.date(2026, 1, 15)
    assert open_cases > 0  # the last few days' complaints still await acknowledgement


def test_sqlite_and_postgresql_hold_the_same_synthetic_year(
        tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """One seed loaded by each bulk path reads back identically, row and report."""
    loaded = []
    for backend in ("sqlite", "postgresql"):
        engine = _engine(backend, tmp_path, request)
        _load(engine, 300, seed=8)
        with Session(engine) as session:
            rows = session.exec(select(ComplaintRow).order_by(ComplaintRow.reference)).all()
            responses = session.exec(select(ResponseRow).order_by(
                ResponseRow.reference, col(ResponseRow.stage))).all()
            complaints = [r.model_dump() for r in rows]
            answered = [r.model_dump(exclude={"id"}) for r in responses]
        report = build_report(engine, ReportOptions(YEAR, POLICY, as_of=AS_OF), evidence=True)
        engine.dispose()
        loaded.append((complaints, answered, report.model_dump()))
    (c1, r1, report1), (c2, r2, report2) = loaded
    assert c1 == c2 and r1 == r2 and report1 == report2
    assert c1[0]["created_at"].tzinfo == dt.UTC
    assert len(c1) == 300
