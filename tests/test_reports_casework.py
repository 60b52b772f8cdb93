"""Reports under casework revision 2: voided cases are not counted, 6.13 checks all of stage 1."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlmodel import Session

from activities.records import RecordActivities
from complaints.db import make_engine, session_factory, upgrade
from complaints.reports import ReportOptions, build_report
from models.case import Channel, Decision
from models.tables import AuditRow
from tests.test_reports import AS_OF, POLICY, YEAR, Case, Stage, at, record_case

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
