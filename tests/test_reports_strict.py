"""Strict CH02, per-landlord reporting and fixed published years, on hand-worked data.

Connexus: acknowledge within 5 working days (WD) of receipt, stage 1 within 10 WD of the
acknowledgement, extensions up to 10 WD without a good reason. Bank holidays in play:
25 Aug 2025; Good Friday 3 Apr and Easter Monday 6 Apr 2026; Christmas 25 Dec 2026,
Boxing Day (observed) Mon 28 Dec 2026, New Year's Day 1 Jan 2027. Connexus declares
29-31 Dec 2026 closure days: they never lengthen a Code timescale.

====  ==========  =====================================================================
case  received    what happens (strict verdict)
====  ==========  =====================================================================
M     2025-06-03  everything ON the day: acked on the ack due date, extended ON the due
                  date, answered ON the extended date (within)
N     2025-07-07  acknowledged 2 WD late, answered in time (late: acknowledgement)
O     2025-09-01  extension agreed the day AFTER the due date, answered inside it (late)
P     2025-10-06  15 WD extension, beyond the 10 WD cap, no good reason (late)
Q     2025-11-03  15 WD extension beyond the cap WITH a good reason, answered on its
                  extended date (within)
R     2026-03-24  acked 31 Mar; answered 17 Apr 2026, 1 WD late: CH01 2025/26, CH02
                  2026/27
S     2026-12-14  due Thu 31 Dec 2026 (closure days not skipped), answered Mon 4 Jan
                  2027: 1 WD late (2026/27)
T     2026-03-02  DECLINED 4 Mar 2026; taken on by the Ombudsman's order 15 Apr 2026,
                  acked 16 Apr, answered 29 Apr in time: CH01 and CH02 in 2026/27
====  ==========  =====================================================================
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from activities.records import RecordActivities
from complaints.db import make_engine, session_factory, upgrade
from complaints.reports import Ch02Basis, ReportOptions, build_report, parse_year
from complaints.reports.model import Report
from models.case import Channel, Decision, ExclusionGround, ExtensionRecord
from models.messages import (
    CaseSnapshot,
    DeadlineKind,
    Intake,
    Party,
    RecordIntakeInput,
)
from tests.pg import create_database, postgres_url  # noqa: F401
from tests.test_reports import (
    CALENDAR,
    POLICY,
    Case,
    Stage,
    _deadline,
    _stage_deadlines,
    at,
    ref,
    snapshot,
)

D = dt.date
Y25 = parse_year("2025/26")
Y26 = parse_year("2026/27")
GOOD_REASON = "The resident asked us to wait for their expert's report"

CASES: list[Case] = [
    # M: ack due 4,5,6,9,10 -> Tue 10 Jun; acked ON 10 Jun. Due 10 WD after 10 Jun =
    #    11,12,13,16,17,18,19,20,23,24 -> Tue 24 Jun; extended 5 WD ON 24 Jun (the due
    #    day: before the deadline passes) to 25,26,27,30,1 -> Tue 1 Jul; answered ON 1 Jul.
    Case("M", D(2025, 6, 3), Channel.PHONE, "repairs", D(2025, 6, 10), D(2025, 6, 10),
         "h-ann", Stage(D(2025, 6, 10), D(2025, 6, 24), D(2025, 7, 1), Decision.UPHELD,
                        "h-ann", extensions=[(5, D(2025, 6, 24), D(2025, 7, 1))])),
    # N: ack due 8,9,10,11,14 -> Mon 14 Jul; acked Wed 16 Jul: 2 WD late (15, 16). Due 10
    #    WD after 16 Jul = 17,18,21,22,23,24,25,28,29,30 -> 30 Jul; answered 25 Jul.
    Case("N", D(2025, 7, 7), Channel.EMAIL, "repairs", D(2025, 7, 14), D(2025, 7, 16),
         "h-bob", Stage(D(2025, 7, 16), D(2025, 7, 30), D(2025, 7, 25), Decision.NOT_UPHELD,
                        "h-bob")),
    # O: ack due 2,3,4,5,8 -> 8 Sep; acked 2 Sep. Due 3,4,5,8,9,10,11,12,15,16 -> Tue 16
    #    Sep; extended 5 WD on Wed 17 Sep (after the due date) to 17,18,19,22,23 -> 23 Sep;
    #    answered Mon 22 Sep: 4 WD after the 16 Sep due date (17, 18, 19, 22).
    Case("O", D(2025, 9, 1), Channel.PHONE, "repairs", D(2025, 9, 8), D(2025, 9, 2),
         "h-cat", Stage(D(2025, 9, 2), D(2025, 9, 16), D(2025, 9, 22), Decision.UPHELD,
                        "h-cat", extensions=[(5, D(2025, 9, 17), D(2025, 9, 23))])),
    # P: ack due 7,8,9,10,13 -> 13 Oct; acked 7 Oct. Due 8,9,10,13,14,15,16,17,20,21 ->
    #    Tue 21 Oct; extended 15 WD on 20 Oct (in time, but beyond the 10 WD cap with no
    #    good reason) to 22,23,24,27,28,29,30,31,3,4,5,6,7,10,11 -> 11 Nov; answered 10
    #    Nov: 14 WD after 21 Oct (22,23,24,27,28,29,30,31,3,4,5,6,7,10).
    Case("P", D(2025, 10, 6), Channel.PHONE, "damp_and_mould", D(2025, 10, 13),
         D(2025, 10, 7), "h-ann", Stage(D(2025, 10, 7), D(2025, 10, 21), D(2025, 11, 10),
                                        Decision.UPHELD, "h-ann",
                                        extensions=[(15, D(2025, 10, 20),
                                                     D(2025, 11, 11))])),
    # Q: ack due 4,5,6,7,10 -> 10 Nov; acked 4 Nov. Due 5,6,7,10,11,12,13,14,17,18 -> 18
    #    Nov; extended 15 WD with a good reason on 17 Nov to 19,20,21,24,25,26,27,28,1,2,3,
    #    4,5,8,9 -> Tue 9 Dec; answered 9 Dec (the good reason is added in ``shot``).
    Case("Q", D(2025, 11, 3), Channel.WEB_FORM, "damp_and_mould", D(2025, 11, 10),
         D(2025, 11, 4), "h-bob", Stage(D(2025, 11, 4), D(2025, 11, 18), D(2025, 12, 9),
                                        Decision.PARTLY_UPHELD, "h-bob",
                                        extensions=[(15, D(2025, 11, 17),
                                                     D(2025, 12, 9))])),
    # R: received Tue 24 Mar 2026; ack due 25,26,27,30,31 -> 31 Mar, acked that day. Due
    #    10 WD after 31 Mar = 1,2,(3, 6 Easter),7,8,9,10,13,14,15,16 -> Thu 16 Apr;
    #    answered Fri 17 Apr: 1 WD late, in 2026/27.
    Case("R", D(2026, 3, 24), Channel.PHONE, "repairs", D(2026, 3, 31), D(2026, 3, 31),
         "h-cat", Stage(D(2026, 3, 31), D(2026, 4, 16), D(2026, 4, 17), Decision.UPHELD,
                        "h-cat")),
    # S: received Mon 14 Dec 2026; ack due 15,16,17,18,21 -> 21 Dec; acked 15 Dec. Due 10
    #    WD after 15 Dec = 16,17,18,21,22,23,24,(25, 28 bank holidays),29,30,31 -> Thu 31
    #    Dec (the closure days 29-31 Dec count as working days); answered Mon 4 Jan 2027
    #    (1 Jan a bank holiday): 1 WD late.
    Case("S", D(2026, 12, 14), Channel.EMAIL, "repairs", D(2026, 12, 21), D(2026, 12, 15),
         "h-ann", Stage(D(2026, 12, 15), D(2026, 12, 31), D(2027, 1, 4), Decision.UPHELD,
                        "h-ann")),
    # T: received Mon 2 Mar 2026, ack due 3,4,5,6,9 -> 9 Mar; declined Wed 4 Mar. The
    #    take-on by order (``taken_on``) follows in 2026/27.
    Case("T", D(2026, 3, 2), Channel.PHONE, "asb", D(2026, 3, 9), handler="h-bob",
         declined=(D(2026, 3, 4), (ExclusionGround.LEGAL_PROCEEDINGS,))),
]
BY_LETTER = {c.letter: c for c in CASES}
#: Each case's tenure as lodged; R's was not recorded.
TENURE = {"M": "lcra", "N": "lcra", "O": "lcho", "P": "lcra", "Q": "lcho", "R": None,
          "S": "lcra", "T": "lcho"}
#: T taken on by order Wed 15 Apr 2026: new ack due 16,17,20,21,22 -> 22 Apr, acked 16
#: Apr; due 10 WD after 16 Apr = 17,20,21,22,23,24,27,28,29,30 -> 30 Apr; answered 29 Apr.
TAKEN_ON, T_ACKED, T_ACK_DUE, T_DUE, T_ANSWERED = (
    D(2026, 4, 15), D(2026, 4, 16), D(2026, 4, 22), D(2026, 4, 30), D(2026, 4, 29))


def shot(case: Case, policy_name: str = "connexus") -> CaseSnapshot:
    """The case's last snapshot under ``policy_name`` (Q's extension with a good reason)."""
    made = snapshot(case)
    file = made.case
    if case.letter == "Q":
        file = file.model_copy(update={"extensions": [
            ExtensionRecord(**{**e.model_dump(), "good_reason": GOOD_REASON})
            for e in file.extensions]})
    file = file.model_copy(update={"policy_name": policy_name})
    return made.model_copy(update={"policy_name": policy_name, "case": file})


def taken_on() -> CaseSnapshot:
    """T after the order: a new acknowledgement clock from the order, acked, answered."""
    case = BY_LETTER["T"]
    before = shot(case)
    stage = Stage(T_ACKED, T_DUE, T_ANSWERED, Decision.NOT_UPHELD, "h-bob")
    answered = snapshot(Case("T", case.received, case.channel, case.category, T_ACK_DUE,
                             T_ACKED, "h-bob", stage))
    deadlines = (*before.deadlines,
                 _deadline("stage1_acknowledgement#2", DeadlineKind.STAGE1_ACKNOWLEDGEMENT,
                           1, TAKEN_ON, T_ACK_DUE, T_ACKED),
                 *_stage_deadlines(stage, 1))
    file = answered.case.model_copy(update={"declined": before.case.declined})
    return answered.model_copy(update={"case": file, "deadlines": deadlines,
                                       "updated_at": at(T_ANSWERED, 18)})


def record(records: RecordActivities, made: CaseSnapshot, received: dt.date) -> None:
    """Write a case's intake (once) and its snapshot."""
    # Not the lodging rules: S is received after "today" (a back-office load of data).
    intake = Intake.model_validate(
        {"reference": made.reference, "policy_name": made.policy_name,
         "channel": made.case.channel, "received_on": received,
         "category": made.case.category, "parties": (Party(name="R"),),
         "description": "A complaint", "tenure": TENURE[_letter(made.reference)]},
        context={"lodging": False})
    records.record_intake(RecordIntakeInput(landlord="Connexus", intake=intake))
    records.record_snapshot(made)


def _letter(reference: str) -> str:
    """The letter of a case's reference (CMP-2025-000013 -> M)."""
    return chr(ord("A") + int(reference[-6:]) - 1)


def load(url: str, *, policy_of: Callable[[Case], str] = lambda c: "connexus",
         take_on: bool = True) -> RecordActivities:
    """Write the hand-worked cases (T taken on unless told) into a new database."""
    upgrade(url)
    records = RecordActivities(session_factory(make_engine(url)))
    for case in CASES:
        record(records, shot(case, policy_of(case)), case.received)
    if take_on:
        records.record_snapshot(taken_on())
    return records


def new_url(engine_name: str, tmp_path: Path, name: str) -> str:
    """A fresh database of the backend ``engine_name``."""
    if engine_name == "sqlite":
        return f"sqlite:///{(tmp_path / f'{name}.db').as_posix()}"
    return create_database(f"{name}_{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Engine]:
    """The hand-worked cases in a fresh database of each backend."""
    if request.param == "postgresql":
        request.getfixturevalue("postgres_url")
    url = new_url(request.param, tmp_path_factory.mktemp("strict"), "strict")
    load(url)
    made = make_engine(url)
    yield made
    made.dispose()


def report(engine: Engine, period: Any = Y25, **options: Any) -> Report:
    """The report for ``period`` as at its last day, 1,000 homes."""
    options.setdefault("homes", 1000)
    options.setdefault("as_of", period.end)
    return build_report(engine, ReportOptions(period, POLICY, **options))


def late(year: Report) -> list[tuple[str, int, str]]:
    """The late list as (reference, stage, reason)."""
    return [(r.reference, r.stage, r.reason) for r in year.ch02_late]


def test_hand_worked_dates_follow_the_code_calendar() -> None:
    """Every due date worked out by hand is what the calendar gives (closures not skipped)."""
    for case in CASES:
        assert CALENDAR.add_working_days(case.received, 5) == case.ack_due, case.letter
        stage = case.stage1
        if stage is None:
            continue
        assert CALENDAR.add_working_days(stage.clock, 10) == stage.due_base, case.letter
        due = stage.due_base
        for days, _, new_due in stage.extensions:
            assert CALENDAR.add_working_days(due, days) == new_due, case.letter
            due = new_due
    assert CALENDAR.add_working_days(TAKEN_ON, 5) == T_ACK_DUE
    assert CALENDAR.add_working_days(T_ACKED, 10) == T_DUE
    assert D(2026, 12, 30) in POLICY.closure_days


def test_strict_ch02_2025_26(engine: Engine) -> None:
    """Stage 1 in 2025/26: M and Q within of M, N, O, P, Q (40%); response only 4 of 5."""
    year = report(engine)
    stage1 = year.ch02[0]
    # Strict: M (all on the day), Q (beyond the cap with a good reason) = 2 of 5.
    # Response only: M, N, O (inside an extension agreed late), Q = 4; P is beyond the
    # cap without a good reason. Base: only N answered by its base due date.
    assert (stage1.responses, stage1.within_code, stage1.within_extension,
            stage1.within_base) == (5, 2, 4, 1)
    assert (stage1.headline_pct, stage1.pct_within_code, stage1.pct_within_extension) == (
        40.0, 40.0, 80.0)
    assert year.ch02_basis is Ch02Basis.STRICT
    assert late(year) == [
        (ref("N"), 1, "acknowledged 2 working days late"),
        (ref("O"), 1, "extension agreed after the due date; responded 4 working days after "
                      "the due date"),
        (ref("P"), 1, "extension beyond the cap without a good reason; responded 14 working "
                      "days after the due date")]
    assert year.ch02_late_total == 3


def test_year_boundary_closure_days_and_take_on_2026_27(engine: Engine) -> None:
    """2026/27: R 1 WD late, S 1 WD late over the closure, T in time: 1 of 3 within."""
    year = report(engine, Y26)
    stage1 = year.ch02[0]
    assert (stage1.responses, stage1.within_code, stage1.headline_pct) == (3, 1, 33.3)
    assert late(year) == [(ref("R"), 1, "responded 1 working day after the due date"),
                          (ref("S"), 1, "responded 1 working day after the due date")]
    # CH01 2026/27: S received in December; T taken on by order on 15 April.
    assert (year.ch01[0].received, year.complaints_logged, year.complaints_excluded) == (
        2, 1, 0)


def test_ch01_2025_26_counts_a_declined_complaint_as_refused(engine: Engine) -> None:
    """2025/26: M..R and T logged (7), T refused on receipt: CH01 6, though later taken on."""
    year = report(engine)
    assert (year.complaints_logged, year.complaints_excluded, year.ch01[0].received) == (
        7, 1, 6)
    assert year.policies == ["connexus"]


def test_a_published_year_does_not_change(tmp_path: Path, engine: Engine) -> None:
    """Report 2025/26, take T on by order in 2026/27, report 2025/26 again: identical."""
    url = new_url(engine.dialect.name, tmp_path, "fixed")
    records = load(url, take_on=False)
    made = make_engine(url)
    try:
        before = report(made).model_dump()
        next_before = report(made, Y26)
        records.record_snapshot(taken_on())
        after = report(made).model_dump()
        next_after = report(made, Y26)
    finally:
        made.dispose()
    assert after == before
    assert before["ch01"][0]["received"] == 6
    # 2026/27 gains T: in CH01 on the day taken on, in CH02 when answered.
    assert (next_before.ch01[0].received, next_before.ch02[0].responses) == (1, 2)
    assert (next_after.ch01[0].received, next_after.ch02[0].responses,
            next_after.ch02[0].within_code) == (2, 3, 1)


def test_two_policy_files_for_one_landlord(tmp_path: Path, engine: Engine) -> None:
    """Half the cases handled under a second policy file: CH01 and CH02 unchanged."""
    url = new_url(engine.dialect.name, tmp_path, "two")
    moved = {"M", "O", "Q", "S"}
    load(url, policy_of=lambda c: "connexus-2026" if c.letter in moved else "connexus")
    made = make_engine(url)
    try:
        split = [report(made), report(made, Y26)]
    finally:
        made.dispose()
    whole = [report(engine), report(engine, Y26)]
    for one, other in zip(split, whole, strict=True):
        assert (one.ch01, one.ch02, one.ch02_late, one.tenures) == (
            other.ch01, other.ch02, other.ch02_late, other.tenures)
    assert split[0].policies == ["connexus", "connexus-2026"]
    assert split[0].ch01[0].received == 6


def test_the_same_figures_on_sqlite_and_postgresql(tmp_path: Path,
                                                   postgres_url: str) -> None:  # noqa: F811
    """Built into both databases, both years' reports are identical."""
    reports = []
    for url in (new_url("sqlite", tmp_path, "both"), new_url("postgresql", tmp_path, "both")):
        load(url)
        made = make_engine(url)
        reports.append([report(made).model_dump(), report(made, Y26).model_dump()])
        made.dispose()
    assert reports[0] == reports[1]
    assert reports[0][0]["ch02"][0]["within_code"] == 2


def tenures(year: Report) -> list[tuple[Any, ...]]:
    """Per tenure: homes, CH01(1), its rate, CH02(1) responses, within, headline."""
    return [(t.tenure, t.homes, t.ch01[0].received, t.ch01[0].per_1000_homes,
             t.ch02[0].responses, t.ch02[0].within_code, t.ch02[0].headline_pct)
            for t in year.tenures]


def test_ch01_and_ch02_per_tenure(engine: Engine) -> None:
    """LCRA and LCHO separately (homes as at 31 March from the policy), plus not recorded."""
    # 2025/26, homes 9,800 LCRA and 1,200 LCHO ([homes.2025] in connexus.toml).
    # CH01(1): LCRA M N P = 3 (3000 / 9800 = 0.31); LCHO O Q = 2 (T refused; 2000 / 1200 =
    # 1.67); R not recorded = 1. CH02(1): LCRA M N P, M within = 1 of 3; LCHO O Q, Q within
    # = 1 of 2; R answered next year.
    assert tenures(report(engine)) == [
        ("lcra", 9800, 3, 0.31, 3, 1, 33.3), ("lcho", 1200, 2, 1.67, 2, 1, 50.0),
        ("not recorded", None, 1, None, 0, 0, None)]
    # 2026/27, no homes given for the year. CH01(1): S (LCRA), T taken on (LCHO). CH02(1):
    # S late; T within; R (not recorded) late.
    assert tenures(report(engine, Y26)) == [
        ("lcra", None, 1, None, 1, 0, 0.0), ("lcho", None, 1, None, 1, 1, 100.0),
        ("not recorded", None, 0, None, 1, 0, 0.0)]


def test_homes_default_to_the_tenures_added_up() -> None:
    """Without --homes, CH01's homes are LCRA + LCHO of the year, else homes_owned."""
    assert ReportOptions(Y25, POLICY).homes == 9800 + 1200
    assert POLICY.homes_in(2026) is None
    assert ReportOptions(Y26, POLICY).homes == POLICY.homes_owned
