"""Reports under casework revision 2: voided cases are not counted, 6.13 checks all of stage 1."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest
from sqlmodel import Session

from activities.records import RecordActivities
from complaints.db import make_engine, session_factory, upgrade
from complaints.reports import ReportOptions, build_report
from complaints.reports.model import Report
from models.case import Channel, Decision, ExclusionGround
from models.tables import AuditRow
from tests.pg import create_database, postgres_url  # noqa: F401
from tests.test_reports import (
    APOLOGY,
    AS_OF,
    CASES,
    POLICY,
    YEAR,
    Case,
    Stage,
    _action,
    _money,
    at,
    record_case,
)

D = dt.date


def _load(url: str, cases: list[Case], voided: set[str]) -> None:
    """Write ``cases`` through the record activities; mark ``voided`` ones as voided."""
    upgrade(url)
    engine = make_engine(url)
    records = RecordActivities(session_factory(engine))
    for case in cases:
        record_case(records, case, state="voided" if case.letter in voided else None)
    engine.dispose()


def test_voided_cases_are_not_counted_and_stage_1_people_are_caught(tmp_path: Path) -> None:
    """A voided duplicate is not counted; a stage 1 responder answering stage 2 is listed."""
    # X: acknowledged by h-ann, answered at stage 1 by h-dan, who also answered stage 2.
    x = Case("M", D(2025, 6, 3), Channel.PHONE, "repairs", D(2025, 6, 10), D(2025, 6, 5),
             "h-ann", Stage(D(2025, 6, 5), D(2025, 6, 19), D(2025, 6, 12), Decision.NOT_UPHELD,
                            "h-dan"),
             requested=D(2025, 6, 16), ack2_due=D(2025, 6, 23), acked2=D(2025, 6, 17),
             reviewer="rev-9",
             stage2=Stage(D(2025, 6, 17), D(2025, 7, 15), D(2025, 7, 1), Decision.NOT_UPHELD,
                          "H-Dan"))
    # Y: a clean stage 2 by someone new; Z: a duplicate, voided.
    y = Case("N", D(2025, 6, 3), Channel.PHONE, "repairs", D(2025, 6, 10), D(2025, 6, 5),
             "h-ann", Stage(D(2025, 6, 5), D(2025, 6, 19), D(2025, 6, 12), Decision.NOT_UPHELD,
                            "h-ann"),
             requested=D(2025, 6, 16), ack2_due=D(2025, 6, 23), acked2=D(2025, 6, 17),
             reviewer="rev-9",
             stage2=Stage(D(2025, 6, 17), D(2025, 7, 15), D(2025, 7, 1), Decision.NOT_UPHELD,
                          "rev-9"))
    z = Case("O", D(2025, 6, 4), Channel.PHONE, "repairs", D(2025, 6, 11))
    url = f"sqlite:///{(tmp_path / 'c.db').as_posix()}"
    _load(url, [x, y, z], voided={"O"})
    engine = make_engine(url)
    with Session(engine) as session:
        session.add(AuditRow(reference=x.reference, seq=1, at=at(D(2025, 6, 5)),
                             action="acknowledge", by="h-ann", from_state="received",
                             to_state="stage1_investigating"))
        session.commit()
    report = build_report(engine, ReportOptions(YEAR, POLICY, homes=1000, as_of=AS_OF),
                          evidence=True)
    assert report.evidence is not None
    items = {i.provision: i for i in report.evidence}
    assert (items["6.13"].cases, items["6.13"].met) == (2, 1)
    assert [e.reference for e in items["6.13"].exceptions] == [x.reference]
    assert report.complaints_logged == 2  # M and N; O was voided
    assert "2 complaints logged" in items["5.12"].measure
    engine.dispose()


#: A voided duplicate with everything a counted case could have: acknowledged late, an
#: extension, a late stage 1 response with remedies (one financial) and an overdue action,
#: an escalation refused and a referral. Received 4 Jun 2025: ack due 11 Jun, acked
#: 13 Jun (late); stage 1 due 27 Jun, extended 5 WD to 4 Jul, answered 9 Jul (late).
VOIDED = Case("V", D(2025, 6, 4), Channel.PHONE, "repairs", D(2025, 6, 11), D(2025, 6, 13),
              "h-zed", Stage(D(2025, 6, 13), D(2025, 6, 27), D(2025, 7, 9), Decision.UPHELD,
                             "h-zed", extensions=[(5, D(2025, 6, 25), D(2025, 7, 4))],
                             remedies=(APOLOGY, _money("500.00")),
                             actions=((_action("V1", D(2025, 8, 1)), None),)),
              requested=D(2025, 7, 20), ack2_due=D(2025, 7, 25),
              refused=(D(2025, 7, 22), (ExclusionGround.OUTSIDE_ESCALATION_WINDOW,)),
              referred=D(2025, 9, 1))


def _year_report(url: str, cases: list[Case], voided: set[str]) -> Report:
    """The 2025/26 report (with the evidence pack) of ``cases`` in a fresh database."""
    _load(url, cases, voided)
    engine = make_engine(url)
    try:
        return build_report(engine, ReportOptions(YEAR, POLICY, homes=1000, as_of=AS_OF),
                            evidence=True)
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_voided_case_changes_no_figure(backend: str, tmp_path: Path,
                                         request: pytest.FixtureRequest) -> None:
    """A voided case's responses, extensions, remedies, actions and refusals count nowhere."""
    urls = []
    for name in ("without", "with"):
        if backend == "sqlite":
            urls.append(f"sqlite:///{(tmp_path / f'{name}.db').as_posix()}")
        else:
            request.getfixturevalue("postgres_url")
            urls.append(create_database(f"voided_{name}_{uuid.uuid4().hex[:8]}"))
    without = _year_report(urls[0], CASES, voided=set())
    with_voided = _year_report(urls[1], [*CASES, VOIDED], voided={"V"})
    assert without.remedies_total_pence > 0 and without.ch02[0].responses > 0  # not empty
    assert with_voided.model_dump() == without.model_dump()
