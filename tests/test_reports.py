"""Compliance reports over a small hand-built year, on SQLite and on a real PostgreSQL.

The dataset is twelve Connexus complaints of 2025/26, written through
``RecordActivities`` exactly as the workflow's activities write them (intake, one snapshot
with the deadlines the workflow planned, letters, Ombudsman details). Every due date is
worked out by hand in the comments (and checked against the policy's calendar once, in
``test_hand_worked_dates_follow_the_policy_calendar``); every expected figure is counted
by hand from the table below.

Connexus: acknowledge within 5 working days (WD) of receipt, stage 1 within 10 WD of the
acknowledgement (+10 extension), stage 2 acknowledged within 5 WD of the request and
answered within 20 WD of that acknowledgement (+20). Bank holidays in play: Good Friday
18 Apr 2025, Easter Monday 21 Apr, 5 May, 26 May, 25 Aug 2025; Good Friday 3 Apr 2026,
Easter Monday 6 Apr 2026.

====  ==========  =====================================================================
case  received    what happens
====  ==========  =====================================================================
A     2025-06-03  acked 06-05; stage 1 due 06-19, answered ON the due date (upheld)
B     2025-08-06  acked 08-08; due Fri 08-22, answered Tue 08-26: ONE WD LATE, the
                  Monday 25 Aug being a bank holiday (not upheld)
C     2025-04-17  ack due 04-28 over Easter, acked 04-28 (on the day); answered 05-09
D     2025-08-22  ack due 09-01 (25 Aug skipped), acked 09-02: 1 WD late; due 09-16,
                  extended 10 WD to 09-30, answered 09-25 INSIDE the extension
E     2025-10-01  acked 10-03; due 10-17, extended 5 WD to 10-24, answered 10-28:
                  OUTSIDE the extension (2 WD late)
F     2026-03-26  acked 03-31; due 2026-04-16 (Easter 2026 skipped), answered 04-16:
                  received in 2025/26, answered in 2026/27
G     2025-07-07  acked 07-08, WITHDRAWN 07-15: no response
H     2025-11-03  DECLINED 11-05 (two grounds): excluded, no response
I     2025-05-12  stage 1 answered 05-21; stage 2 requested 06-02, acked 06-04, due
                  07-02, answered ON the due date; referred to the Ombudsman 09-10
J     2025-12-01  stage 1 answered 12-15; escalation requested 2026-01-20, REFUSED 01-22
K     2025-06-16  stage 1 answered 06-30; stage 2 requested 07-10, ack due 07-17, acked
                  07-18 (late); due 08-15, extended 20 WD to 09-15, answered 09-12
L     2026-03-16  never acknowledged: ack due 03-23, overdue at 31 March
====  ==========  =====================================================================
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from activities.records import RecordActivities
from complaints.db import make_engine, session_factory, upgrade
from complaints.policies import load_compliant_policy
from complaints.reports import Ch02Basis, Period, ReportOptions, build_report, parse_year
from complaints.reports.model import Report
from complaints.workdays import LONDON, WorkingCalendar, end_of_day_utc
from models.case import (
    ActionRecord,
    CaseFile,
    Channel,
    ComplaintDefinition,
    Decision,
    DecisionRecord,
    ExclusionGround,
    ExtensionRecord,
    OutstandingAction,
    Party,
    PointFinding,
    Remedy,
    RemedyKind,
    ResponseRecord,
)
from models.messages import (
    CaseSnapshot,
    Deadline,
    DeadlineKind,
    DeadlineStatus,
    Intake,
    OmbudsmanDetailsGiven,
    RecordIntakeInput,
)
from models.tables import ComplaintRow, LetterRow, RefusalRow, ResponseRow
from tests.pg import create_database, postgres_url  # noqa: F401

D = dt.date
POLICY = load_compliant_policy("connexus")
CALENDAR = WorkingCalendar.for_policy(POLICY)
YEAR = parse_year("2025/26")
AS_OF = D(2026, 3, 31)
DEFINITION = ComplaintDefinition(summary="The complaint", points=("The point",),
                                 outcomes_sought=("Put it right",))


def at(day: dt.date, hour: int = 11) -> dt.datetime:
    """``hour``:00 London time on ``day``, as an aware UTC instant."""
    return dt.datetime.combine(day, dt.time(hour), tzinfo=LONDON).astimezone(dt.UTC)


def ref(letter: str) -> str:
    """The reference of case ``letter`` (A -> CMP-2025-000001...)."""
    return f"CMP-2025-{ord(letter) - ord('A') + 1:06d}"


@dataclass
class Stage:
    """One stage of a hand-built case: clock start, due dates, response."""

    clock: dt.date
    due_base: dt.date
    responded: dt.date | None = None
    decision: Decision = Decision.NOT_UPHELD
    by: str = ""
    extensions: list[tuple[int, dt.date, dt.date]] = field(default_factory=list)
    remedies: tuple[Remedy, ...] = ()
    actions: tuple[tuple[OutstandingAction, dt.date | None], ...] = ()
    letter: bool = True


@dataclass
class Case:
    """A hand-built complaint: dates in, a snapshot out."""

    letter: str
    received: dt.date
    channel: Channel
    category: str
    ack_due: dt.date
    acked: dt.date | None = None
    handler: str | None = None
    stage1: Stage | None = None
    withdrawn: dt.date | None = None
    declined: tuple[dt.date, tuple[ExclusionGround, ...]] | None = None
    requested: dt.date | None = None
    ack2_due: dt.date | None = None
    acked2: dt.date | None = None
    reviewer: str | None = None
    refused: tuple[dt.date, tuple[ExclusionGround, ...]] | None = None
    stage2: Stage | None = None
    referred: dt.date | None = None
    exclusion_letter: bool = True
    refusal_letter: bool = True

    @property
    def reference(self) -> str:
        """The case's reference."""
        return ref(self.letter)


def _deadline(key: str, kind: DeadlineKind, stage: int, start: dt.date, due: dt.date,
              done: dt.date | None) -> Deadline:
    """A deadline as the workflow leaves it: met on time, or breached and met late."""
    if done is None:
        status = DeadlineStatus.PENDING
    else:
        status = DeadlineStatus.MET if done <= due else DeadlineStatus.BREACHED
    return Deadline(key=key, kind=kind, stage=stage, label=kind.value, provision="x",
                    start=start, due=due, ends_at=end_of_day_utc(due),
                    escalate_at=end_of_day_utc(due) + dt.timedelta(days=3), status=status,
                    met_at=at(done) if done else None,
                    breached_at=end_of_day_utc(due) if done and done > due else None)


def _stage_deadlines(stage: Stage, number: int) -> list[Deadline]:
    kind = DeadlineKind.STAGE1_RESPONSE if number == 1 else DeadlineKind.STAGE2_RESPONSE
    dues = [stage.due_base] + [new_due for _, _, new_due in stage.extensions]
    starts = [stage.clock] + dues[:-1]
    chain = [_deadline(f"{kind.value}#{i + 1}", kind, number, start, due, None)
             for i, (start, due) in enumerate(zip(starts, dues, strict=True))]
    for deadline in chain[:-1]:
        deadline.status = DeadlineStatus.EXTENDED
    last = chain[-1]
    if stage.responded is not None:
        chain[-1] = _deadline(last.key, kind, number, last.start, last.due, stage.responded)
    return chain


def _response(stage: Stage, number: int) -> ResponseRecord:
    assert stage.responded is not None
    return ResponseRecord(stage=number, decision=stage.decision,
                          findings=(PointFinding(point="The point", finding="Found",
                                                 reason="Because"),),
                          remedies=stage.remedies, by=stage.by, at=at(stage.responded))


def snapshot(case: Case) -> CaseSnapshot:
    """The case's last snapshot, with the deadlines the workflow would have planned."""
    deadlines: list[Deadline] = []
    ack_done = case.acked or (case.declined[0] if case.declined else None)
    deadlines.append(_deadline("stage1_acknowledgement#1", DeadlineKind.STAGE1_ACKNOWLEDGEMENT,
                               1, case.received, case.ack_due, ack_done))
    extensions: list[ExtensionRecord] = []
    responses: list[ResponseRecord] = []
    actions: list[ActionRecord] = []
    state, last = "received", case.received
    for number, stage in ((1, case.stage1), (2, case.stage2)):
        if number == 2 and case.requested is not None:
            assert case.ack2_due is not None
            deadlines.append(_deadline(
                "stage2_acknowledgement#1", DeadlineKind.STAGE2_ACKNOWLEDGEMENT, 2,
                case.requested, case.ack2_due, case.acked2 or (case.refused[0]
                                                               if case.refused else None)))
        if stage is None:
            continue
        state = f"stage{number}_investigating" if number == 1 else "stage2_reviewing"
        deadlines += _stage_deadlines(stage, number)
        for days, granted, _ in stage.extensions:
            extensions.append(ExtensionRecord(stage=number, working_days=days,
                                              reason=("Waiting for a damp survey" if number == 1
                                                      else "Contractor report awaited"),
                                              good_reason=None, by=stage.by, at=at(granted)))
        if stage.responded is not None:
            responses.append(_response(stage, number))
            actions += [ActionRecord(action=action, stage=number,
                                     completed_at=at(done) if done else None)
                        for action, done in stage.actions]
            state, last = f"stage{number}_responded", stage.responded
    if case.withdrawn:
        state, last = "withdrawn", case.withdrawn
    if case.declined:
        state, last = "declined", case.declined[0]
    if case.requested and case.stage2 is None:
        state, last = "stage2_requested", case.requested
    if case.refused:
        state, last = "closed", case.refused[0]
    if case.referred:
        state, last = "with_ombudsman", case.referred
    file = CaseFile(
        reference=case.reference, policy_name="connexus", state=state,
        received_on=case.received, channel=case.channel, category=case.category,
        stage1_handler=case.handler if case.acked else None,
        stage2_handler=case.reviewer if case.acked2 else None,
        stage1_definition=DEFINITION if case.acked else None,
        stage2_definition=DEFINITION if case.acked2 else None,
        extensions=extensions, responses=responses, actions=actions,
        declined=DecisionRecord(grounds=case.declined[1], explanation="Refused",
                                by=case.handler or "h-bob", at=at(case.declined[0]))
        if case.declined else None,
        escalation_refused=DecisionRecord(grounds=case.refused[1], explanation="Refused",
                                          by=case.handler or "h-bob", at=at(case.refused[0]))
        if case.refused else None,
        escalation_requested_on=case.requested,
        referred_to_ombudsman_at=at(case.referred) if case.referred else None)
    return CaseSnapshot(reference=case.reference, landlord="Connexus", policy_name="connexus",
                        state=state, stage=file.stage, handler_id=case.handler,
                        next_deadline=None, overdue=False, updated_at=at(last, 17),
                        case=file, deadlines=tuple(deadlines))


def _action(action_id: str, due: dt.date) -> OutstandingAction:
    return OutstandingAction(action_id=action_id, description="Fix it", due_by=due,
                             owner="repairs-team")


APOLOGY = Remedy(kind=RemedyKind.APOLOGY, description="We apologise")


def _money(pounds: str) -> Remedy:
    return Remedy(kind=RemedyKind.FINANCIAL, description="Compensation",
                  amount=Decimal(pounds))


CASES: list[Case] = [
    # A: ack due 5 WD after Tue 3 Jun = 4,5,6,9,10 -> Tue 10 Jun; acked Thu 5 Jun.
    #    Stage 1 due 10 WD after 5 Jun = 6,9,10,11,12,13,16,17,18,19 -> Thu 19 Jun;
    #    answered Thu 19 Jun: exactly on the due date (10 WD taken).
    Case("A", D(2025, 6, 3), Channel.PHONE, "repairs", D(2025, 6, 10), D(2025, 6, 5),
         "h-ann", Stage(D(2025, 6, 5), D(2025, 6, 19), D(2025, 6, 19), Decision.UPHELD,
                        "h-ann", remedies=(APOLOGY, _money("100.00")))),
    # B: ack due 7,8,11,12,13 -> Wed 13 Aug; acked Fri 8 Aug. Due 10 WD after 8 Aug =
    #    11,12,13,14,15,18,19,20,21,22 -> Fri 22 Aug. Answered Tue 26 Aug: Mon 25 Aug is
    #    the summer bank holiday, so 1 WD late (11 WD taken), though 4 calendar days.
    Case("B", D(2025, 8, 6), Channel.EMAIL, "repairs", D(2025, 8, 13), D(2025, 8, 8),
         "h-bob", Stage(D(2025, 8, 8), D(2025, 8, 22), D(2025, 8, 26), Decision.NOT_UPHELD,
                        "h-bob", letter=False)),
    # C: received Thu 17 Apr; ack due 5 WD skipping Good Friday and Easter Monday =
    #    22,23,24,25,28 -> Mon 28 Apr; acked that day (on time). Due 10 WD after 28 Apr =
    #    29,30,1,2,(5 May bank holiday),6,7,8,9,12,13 -> 13 May; answered Fri 9 May
    #    (29,30,1,2,6,7,8,9 = 8 WD).
    Case("C", D(2025, 4, 17), Channel.PHONE, "damp_and_mould", D(2025, 4, 28),
         D(2025, 4, 28), "h-ann", Stage(D(2025, 4, 28), D(2025, 5, 13), D(2025, 5, 9),
                                        Decision.PARTLY_UPHELD, "h-ann", remedies=(APOLOGY,))),
    # D: received Fri 22 Aug; ack due 26,27,28,29,1 Sep -> Mon 1 Sep (25 Aug skipped);
    #    acked Tue 2 Sep: 1 WD late. Due 10 WD after 2 Sep = 3,4,5,8,9,10,11,12,15,16 ->
    #    16 Sep; extended 10 WD on 12 Sep to 17,18,19,22,23,24,25,26,29,30 -> 30 Sep;
    #    answered Thu 25 Sep: inside the extension (10 + 7 = 17 WD taken).
    Case("D", D(2025, 8, 22), Channel.WEB_FORM, "repairs", D(2025, 9, 1), D(2025, 9, 2),
         "h-cat", Stage(D(2025, 9, 2), D(2025, 9, 16), D(2025, 9, 25),
                        Decision.PARTLY_UPHELD, "h-cat",
                        extensions=[(10, D(2025, 9, 12), D(2025, 9, 30))],
                        remedies=(APOLOGY, Remedy(kind=RemedyKind.ACTION,
                                                  description="Treat the damp")),
                        actions=((_action("D1", D(2025, 10, 31)), D(2025, 10, 20)),))),
    # E: ack due 2,3,6,7,8 -> 8 Oct; acked Fri 3 Oct. Due 10 WD after 3 Oct =
    #    6,7,8,9,10,13,14,15,16,17 -> 17 Oct; extended 5 WD on 15 Oct to 20,21,22,23,24 ->
    #    24 Oct; answered Tue 28 Oct: outside the extension (2 WD late; 10+5+2 = 17 WD).
    Case("E", D(2025, 10, 1), Channel.PHONE, "repairs", D(2025, 10, 8), D(2025, 10, 3),
         "h-bob", Stage(D(2025, 10, 3), D(2025, 10, 17), D(2025, 10, 28), Decision.UPHELD,
                        "h-bob", extensions=[(5, D(2025, 10, 15), D(2025, 10, 24))],
                        remedies=(APOLOGY, _money("250.50"),
                                  Remedy(kind=RemedyKind.ACTION, description="Repair")),
                        actions=((_action("E1", D(2025, 11, 28)), None),))),
    # F: received Thu 26 Mar 2026; ack due 27,30,31,1,2 -> 2 Apr; acked Tue 31 Mar. Due
    #    10 WD after 31 Mar = 1,2,(3 Good Friday),(6 Easter Monday),7,8,9,10,13,14,15,16 ->
    #    Thu 16 Apr 2026; answered that day: in CH01 for 2025/26, in CH02 for 2026/27.
    Case("F", D(2026, 3, 26), Channel.EMAIL, "customer_service", D(2026, 4, 2),
         D(2026, 3, 31), "h-cat", Stage(D(2026, 3, 31), D(2026, 4, 16), D(2026, 4, 16),
                                        Decision.UPHELD, "h-cat", remedies=(APOLOGY,))),
    # G: ack due 8,9,10,11,14 -> 14 Jul; acked 8 Jul; withdrawn 15 Jul: no response.
    Case("G", D(2025, 7, 7), Channel.LETTER, "asb", D(2025, 7, 14), D(2025, 7, 8), "h-ann",
         Stage(D(2025, 7, 8), D(2025, 7, 22)), withdrawn=D(2025, 7, 15)),
    # H: ack due 4,5,6,7,10 -> 10 Nov; declined 5 Nov on two grounds: no response.
    Case("H", D(2025, 11, 3), Channel.EMAIL, "asb", D(2025, 11, 10), handler="h-bob",
         declined=(D(2025, 11, 5), (ExclusionGround.OLDER_THAN_12_MONTHS,
                                    ExclusionGround.PREVIOUSLY_CONSIDERED))),
    # I: ack due 13,14,15,16,19 -> 19 May; acked 14 May. Due 10 WD after 14 May =
    #    15,16,19,20,21,22,23,(26 May),27,28,29 -> 29 May; answered 21 May (5 WD).
    #    Stage 2 requested Mon 2 Jun: ack due 3,4,5,6,9 -> 9 Jun; acked 4 Jun by rev-1.
    #    Due 20 WD after 4 Jun = 5,6,9..13,16..20,23..27,30,1,2 -> Wed 2 Jul; answered on
    #    that day (20 WD). Referred to the Ombudsman 10 Sep.
    Case("I", D(2025, 5, 12), Channel.PHONE, "repairs", D(2025, 5, 19), D(2025, 5, 14),
         "h-bob", Stage(D(2025, 5, 14), D(2025, 5, 29), D(2025, 5, 21), Decision.NOT_UPHELD,
                        "h-bob"),
         requested=D(2025, 6, 2), ack2_due=D(2025, 6, 9), acked2=D(2025, 6, 4),
         reviewer="rev-1",
         stage2=Stage(D(2025, 6, 4), D(2025, 7, 2), D(2025, 7, 2), Decision.PARTLY_UPHELD,
                      "rev-1", remedies=(APOLOGY,)),
         referred=D(2025, 9, 10)),
    # J: ack due 2,3,4,5,8 -> 8 Dec; acked 2 Dec. Due 3,4,5,8,9,10,11,12,15,16 -> 16 Dec;
    #    answered 15 Dec (9 WD). Escalation requested 20 Jan 2026 (ack due 21,22,23,26,27
    #    -> 27 Jan), refused 22 Jan: outside the escalation window. No refusal letter.
    Case("J", D(2025, 12, 1), Channel.WEB_FORM, "customer_service", D(2025, 12, 8),
         D(2025, 12, 2), "h-cat", Stage(D(2025, 12, 2), D(2025, 12, 16), D(2025, 12, 15),
                                        Decision.NOT_UPHELD, "h-cat"),
         requested=D(2026, 1, 20), ack2_due=D(2026, 1, 27),
         refused=(D(2026, 1, 22), (ExclusionGround.OUTSIDE_ESCALATION_WINDOW,)),
         refusal_letter=False),
    # K: ack due 17,18,19,20,23 -> 23 Jun; acked 17 Jun. Due 18,19,20,23,24,25,26,27,30,1
    #    -> 1 Jul; answered 30 Jun (9 WD). Stage 2 requested Thu 10 Jul: ack due
    #    11,14,15,16,17 -> 17 Jul; acked Fri 18 Jul by rev-2 (1 WD late). Due 20 WD after
    #    18 Jul = 21..25,28..31,1,4..8,11..15 -> Fri 15 Aug; extended 20 WD on 12 Aug to
    #    18..22,(25 Aug),26..29,1..5,8..12,15 -> Mon 15 Sep; answered Fri 12 Sep: inside
    #    the extension (20 + 19 = 39 WD).
    Case("K", D(2025, 6, 16), Channel.PHONE, "damp_and_mould", D(2025, 6, 23),
         D(2025, 6, 17), "h-ann", Stage(D(2025, 6, 17), D(2025, 7, 1), D(2025, 6, 30),
                                        Decision.UPHELD, "h-ann", remedies=(APOLOGY,)),
         requested=D(2025, 7, 10), ack2_due=D(2025, 7, 17), acked2=D(2025, 7, 18),
         reviewer="rev-2",
         stage2=Stage(D(2025, 7, 18), D(2025, 8, 15), D(2025, 9, 12), Decision.UPHELD,
                      "rev-2", extensions=[(20, D(2025, 8, 12), D(2025, 9, 15))],
                      remedies=(_money("75.00"),))),
    # L: received Mon 16 Mar 2026; ack due 17,18,19,20,23 -> 23 Mar; not acknowledged.
    Case("L", D(2026, 3, 16), Channel.PHONE, "repairs", D(2026, 3, 23)),
]
BY_LETTER = {c.letter: c for c in CASES}


def record_case(records: RecordActivities, case: Case, *, state: str | None = None) -> None:
    """Write a hand-built case's intake and last snapshot (``state`` overrides the state)."""
    records.record_intake(RecordIntakeInput(landlord="Connexus", intake=Intake(
        reference=case.reference, policy_name="connexus", channel=case.channel,
        received_on=case.received, category=case.category,
        parties=(Party(name=f"Resident {case.letter}"),),
        description=f"Complaint {case.letter}")))
    shot = snapshot(case)
    if state is not None:
        shot = shot.model_copy(update={"state": state,
                                       "case": shot.case.model_copy(update={"state": state})})
    records.record_snapshot(shot)


def load(url: str) -> None:
    """Write the hand-built year through the record activities, plus letters."""
    upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    records = RecordActivities(sessions)
    for case in CASES:
        record_case(records, case)
        for number, stage in ((1, case.stage1), (2, case.stage2)):
            if stage is None:
                continue
            for seq, (_, granted, _) in enumerate(stage.extensions, 1):
                if case.letter == "E":
                    continue  # E's extension letter left no record of the details (6.5).
                records.record_ombudsman_details(OmbudsmanDetailsGiven(
                    record_id=f"{case.reference}:ombudsman:{number}:{seq}",
                    reference=case.reference, stage=number, extension_seq=seq,
                    letter_id=f"{case.reference}:extension:{number}:{seq}",
                    given_to=(f"Resident {case.letter}",), given_at=at(granted),
                    details=POLICY.ombudsman))
    with sessions() as session:
        for case in CASES:
            kinds = []
            for number, stage in ((1, case.stage1), (2, case.stage2)):
                if stage is not None and stage.responded and stage.letter:
                    kinds.append(("stage1_response" if number == 1 else "final_response",
                                  number, stage.responded))
            if case.declined and case.exclusion_letter:
                kinds.append(("exclusion", 1, case.declined[0]))
            if case.refused and case.refusal_letter:
                kinds.append(("escalation_refusal", 2, case.refused[0]))
            for kind, number, day in kinds:
                session.add(LetterRow(letter_id=f"{case.reference}:{kind}:{number}:1",
                                      reference=case.reference, kind=kind, stage=number,
                                      seq=1, subject=kind, text="text", html="<p>text</p>",
                                      sha256="0" * 64, created_at=at(day)))
        session.commit()
    engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Engine]:
    """The hand-built year in a fresh database of each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{(tmp_path_factory.mktemp('reports') / 'c.db').as_posix()}"
    else:
        request.getfixturevalue("postgres_url")
        url = create_database(f"reports_{uuid.uuid4().hex[:8]}")
    load(url)
    made = make_engine(url)
    yield made
    made.dispose()


def report(engine: Engine, period: Period = YEAR, **options: Any) -> Report:
    """The report for ``period`` as at 31 March 2026 (unless told), 1,000 homes."""
    options.setdefault("homes", 1000)
    options.setdefault("as_of", AS_OF)
    return build_report(engine, ReportOptions(period, POLICY, **options), evidence=True)


@pytest.fixture(scope="module")
def year(engine: Engine) -> Report:
    """The 2025/26 report with the evidence pack."""
    return report(engine)


# -- the data as written -------------------------------------------------------------------


def test_hand_worked_dates_follow_the_policy_calendar() -> None:
    """Every due date worked out by hand above is what the policy's calendar gives."""
    limits = POLICY.limits
    for case in CASES:
        assert CALENDAR.add_working_days(case.received, limits.stage1_acknowledgement) \
            == case.ack_due, case.letter
        if case.requested is not None:
            assert CALENDAR.add_working_days(case.requested, limits.stage2_acknowledgement) \
                == case.ack2_due, case.letter
        for stage, limit in ((case.stage1, limits.stage1_response),
                             (case.stage2, limits.stage2_response)):
            if stage is None:
                continue
            assert CALENDAR.add_working_days(stage.clock, limit) == stage.due_base, case.letter
            due = stage.due_base
            for days, _, new_due in stage.extensions:
                due = CALENDAR.add_working_days(due, days)
                assert due == new_due, case.letter


def test_records_measure_each_response(engine: Engine) -> None:
    """The activity stores each response with its clock, due dates and working days taken."""
    with Session(engine) as session:
        rows = {(r.reference, r.stage): r for r in session.exec(select(ResponseRow))}
    letters = {c.reference: c.letter for c in CASES}
    measured = {(letters[k[0]], k[1]): (r.clock_start, r.due_base, r.due_final,
                                        r.responded_on, r.extension_days, r.working_days_taken)
                for k, r in rows.items()}
    assert measured[("A", 1)] == (D(2025, 6, 5), D(2025, 6, 19), D(2025, 6, 19),
                                  D(2025, 6, 19), 0, 10)  # A: on the due date
    assert measured[("B", 1)] == (D(2025, 8, 8), D(2025, 8, 22), D(2025, 8, 22),
                                  D(2025, 8, 26), 0, 11)  # B: 1 WD late over 25 Aug
    assert measured[("D", 1)] == (D(2025, 9, 2), D(2025, 9, 16), D(2025, 9, 30),
                                  D(2025, 9, 25), 10, 17)  # D: inside the extension
    assert measured[("E", 1)] == (D(2025, 10, 3), D(2025, 10, 17), D(2025, 10, 24),
                                  D(2025, 10, 28), 5, 17)  # E: outside it
    assert measured[("I", 2)] == (D(2025, 6, 4), D(2025, 7, 2), D(2025, 7, 2),
                                  D(2025, 7, 2), 0, 20)  # I stage 2: on the due date
    # 12 cases: G (withdrawn), H (declined) and L (unacknowledged) have no response;
    # the other nine answered stage 1, and I and K stage 2: 11 responses.
    assert len(rows) == 11
    assert {r[0] for r in rows} == {c.reference for c in CASES} - {
        ref("G"), ref("H"), ref("L")}
    assert all(r.extension_within_code for r in rows.values())


def test_records_keep_the_reporting_columns(engine: Engine) -> None:
    """Acknowledgement dates, refusals, withdrawal and referral land on the complaint row."""
    with Session(engine) as session:
        rows = {r.reference: r for r in session.exec(select(ComplaintRow))}
        refusals = sorted((r.reference, r.kind, r.ground, r.decided_on)
                          for r in session.exec(select(RefusalRow)))
    d, h, i, j, g, l_ = (rows[ref(x)] for x in "DHIJGL")
    assert (d.acknowledged_on, d.acknowledgement_due) == (D(2025, 9, 2), D(2025, 9, 1))
    assert (h.excluded, h.acknowledged_on, h.declined_at) == (True, None, at(D(2025, 11, 5)))
    assert (i.escalation_requested_on, i.stage2_acknowledged_on, i.stage2_handler) == (
        D(2025, 6, 2), D(2025, 6, 4), "rev-1")
    assert i.referred_to_ombudsman_at == at(D(2025, 9, 10))
    assert (j.escalation_refused, j.stage2_acknowledged_on) == (True, None)
    assert g.withdrawn_at == at(D(2025, 7, 15), 17)
    assert (l_.acknowledged_on, l_.acknowledgement_due) == (None, D(2026, 3, 23))
    assert refusals == [
        (ref("H"), "complaint", "older_than_12_months", D(2025, 11, 5)),
        (ref("H"), "complaint", "previously_considered", D(2025, 11, 5)),
        (ref("J"), "escalation", "outside_escalation_window", D(2026, 1, 22)),
    ]


# -- the Tenant Satisfaction Measures ------------------------------------------------------


def test_ch01_counts_stage1_and_stage2_complaints_received_per_1000_homes(year: Report,
                                                                         engine: Engine) -> None:
    """CH01: 11 stage 1 complaints (12 received less H refused), 2 stage 2 (J refused)."""
    # Received in 2025/26: A..L = 12; H excluded -> 11 (G withdrawn still counts).
    # Stage 2 requested in the year: I (2 Jun), K (10 Jul), J (20 Jan, refused) -> 2.
    assert [(c.stage, c.received, c.per_1000_homes) for c in year.ch01] == [
        (1, 11, 11.0), (2, 2, 2.0)]
    assert (year.complaints_logged, year.complaints_excluded,
            year.complaints_withdrawn) == (12, 1, 1)
    # With the policy's 11,000 homes: 11 * 1000 / 11000 = 1.0; 2 * 1000 / 11000 = 0.18.
    default = report(engine, homes=None)
    assert [(c.homes, c.per_1000_homes) for c in default.ch01] == [(11000, 1.0),
                                                                   (11000, 0.18)]


def test_ch02_shows_both_treatments_of_extensions(year: Report) -> None:
    """CH02 stage 1: 5/8 within the base timescale, 6/8 with extension; stage 2: 1/2, 2/2."""
    # Stage 1 responses issued in 2025/26: A, B, C, D, E, I, J, K = 8 (F's is in April
    # 2026; G withdrawn and H declined issue none).
    # Within base: A (on the day), C, I, J, K = 5. B is 1 WD late, D and E after 16/17 Oct.
    # With extension: those 5 + D (inside its extension) = 6; E is outside its extension.
    # Stage 2: I on its due date (both); K inside its 20 WD extension (with extension only).
    stage1, stage2 = year.ch02
    assert (stage1.responses, stage1.within_base, stage1.within_extension) == (8, 5, 6)
    assert (stage1.pct_within_base, stage1.pct_within_extension) == (62.5, 75.0)
    assert (stage2.responses, stage2.within_base, stage2.within_extension) == (2, 1, 2)
    assert (stage2.pct_within_base, stage2.pct_within_extension) == (50.0, 100.0)
    # Strict (the headline): the whole chain. Stage 1: A, C, I, J, K = 5 (B and E late,
    # D acknowledged 1 WD late though answered inside its extension). Stage 2: I only
    # (K acknowledged 1 WD late though answered inside its extension).
    assert (stage1.within_code, stage2.within_code) == (5, 1)
    assert (stage1.headline_pct, stage2.headline_pct) == (62.5, 50.0)
    assert year.ch02_basis is Ch02Basis.STRICT
    assert [(r.reference, r.stage, r.reason) for r in year.ch02_late] == [
        (ref("B"), 1, "responded 1 working day after the due date"),
        (ref("D"), 1, "acknowledged 1 working day late"),
        (ref("E"), 1, "responded 2 working days after the due date"),
        (ref("K"), 2, "acknowledged 1 working day late")]


def test_ch02_headline_can_be_the_base_timescale(engine: Engine) -> None:
    """With the base treatment selected, the headline CH02 is 5/8 and 1/2."""
    base = report(engine, basis=Ch02Basis.BASE)
    assert [c.headline_pct for c in base.ch02] == [62.5, 50.0]


def test_ch02_headline_can_be_the_response_only_figure(engine: Engine) -> None:
    """With the response-only treatment selected, the headline CH02 is 6/8 and 2/2."""
    ext = report(engine, basis=Ch02Basis.WITH_EXTENSION)
    assert [c.headline_pct for c in ext.ch02] == [75.0, 100.0]


def test_a_complaint_answered_next_year_counts_in_ch02_next_year(engine: Engine) -> None:
    """F (received March 2026) is a 2026/27 response: on its due date, 1 of 1 on time."""
    next_year = report(engine, parse_year("2026/27"), as_of=D(2026, 4, 30))
    stage1 = next_year.ch02[0]
    assert (next_year.ch01[0].received, next_year.complaints_logged) == (0, 0)
    assert (stage1.responses, stage1.within_base, stage1.within_extension) == (1, 1, 1)
    assert [(r.kind, r.offered) for r in next_year.remedies] == [("apology", 1)]
    # One response of 10 WD (1,2,7,8,9,10,13,14,15,16 April): median and p90 are both 10.
    figures = next_year.stages[0]
    assert (figures.median_working_days, figures.p90_working_days) == (10.0, 10)


def test_a_quarter_counts_only_its_own_days(engine: Engine) -> None:
    """April-June 2025: C, I, A, K received; C, I, A, K answered, all on time; I escalated."""
    quarter = report(engine, Period(D(2025, 4, 1), D(2025, 6, 30)))
    assert [c.received for c in quarter.ch01] == [4, 1]
    assert [(c.responses, c.within_base) for c in quarter.ch02] == [(4, 4), (0, 0)]
    # Working days I 5, C 8, K 9, A 10: median (8 + 9) / 2 = 8.5, p90 the ceil(3.6) = 4th.
    assert (quarter.stages[0].median_working_days, quarter.stages[0].p90_working_days) == (
        8.5, 10)
    assert quarter.stages[1].median_working_days is None
    assert [m.month for m in quarter.monthly] == ["2025-04", "2025-05", "2025-06"]


# -- the annual report's other figures -----------------------------------------------------


def test_stage_figures_time_taken_extensions_and_outcomes(year: Report) -> None:
    """Working days, extensions and decisions of the 8 + 2 responses, worked by hand."""
    stage1, stage2 = year.stages
    # Stage 1 working days: I 5, C 8, J 9, K 9, A 10, B 11, D 17, E 17 (sorted).
    # Median of 8: (9 + 10) / 2 = 9.5; 90th percentile: the ceil(7.2) = 8th = 17;
    # mean 86 / 8 = 10.75 -> 10.8; longest 17.
    assert (stage1.median_working_days, stage1.p90_working_days, stage1.mean_working_days,
            stage1.max_working_days) == (9.5, 17, 10.8, 17)
    # Extended: D, E = 2 of 8; D met its new date; B and E were late against theirs.
    assert (stage1.extended, stage1.pct_extended, stage1.extended_within_new_date,
            stage1.late_against_final_due) == (2, 25.0, 1, 2)
    # Decisions: upheld A, E, K; partly C, D; not upheld B, I, J.
    assert (stage1.upheld, stage1.partly_upheld, stage1.not_upheld) == (3, 2, 3)
    assert (stage1.pct_upheld, stage1.pct_partly_upheld, stage1.pct_not_upheld) == (
        37.5, 25.0, 37.5)
    # Stage 2: I 20 WD, K 39 WD: median 29.5, 90th percentile the 2nd = 39, mean 29.5.
    assert (stage2.median_working_days, stage2.p90_working_days, stage2.mean_working_days,
            stage2.max_working_days) == (29.5, 39, 29.5, 39)
    assert (stage2.extended, stage2.upheld, stage2.partly_upheld, stage2.not_upheld) == (
        1, 1, 1, 0)


def test_acknowledgements_within_the_limit(year: Report) -> None:
    """Stage 1: 9 of 10 acknowledged in time (D late), L overdue; stage 2: 1 of 2 (K late)."""
    # Stage 1: 11 not excluded, L never acknowledged -> 10 acknowledged, D 1 WD late.
    # L's acknowledgement was due 23 Mar and is outstanding on 31 Mar.
    assert [(a.stage, a.acknowledged, a.within_limit, a.pct_within_limit,
             a.unacknowledged_overdue) for a in year.acknowledgements] == [
        (1, 10, 9, 90.0, 1), (2, 2, 1, 50.0, 0)]


def test_resolution_at_stage1_and_stage2(year: Report) -> None:
    """5 stage 1 responses not escalated (8 less I, J, K), 2 stage 2: 71.4% / 28.6%."""
    resolution = year.resolution
    assert (resolution.resolved_stage1, resolution.resolved_stage2,
            resolution.escalated_after_stage1) == (5, 2, 3)
    assert (resolution.pct_stage1, resolution.pct_stage2) == (71.4, 28.6)


def test_volumes_by_channel_and_category(year: Report) -> None:
    """Twelve complaints by channel and category, with the refused and the escalated."""
    # Phone A C E I K L = 6 (I, K escalated); email B F H = 3 (H refused); web form D J
    # = 2 (J escalated); letter G = 1.
    assert [(v.name, v.received, v.excluded, v.escalated) for v in year.channels] == [
        ("phone", 6, 0, 2), ("email", 3, 1, 0), ("web_form", 2, 0, 1), ("letter", 1, 0, 0)]
    # Repairs A B D E I L = 6; damp C K; asb G H; customer service F J (2 each, by name).
    assert [(v.name, v.received, v.excluded, v.escalated) for v in year.categories] == [
        ("repairs", 6, 0, 1), ("asb", 2, 1, 0), ("customer_service", 2, 0, 1),
        ("damp_and_mould", 2, 0, 1)]


def test_monthly_series(year: Report) -> None:
    """Each month's complaints and responses fall in the month of their own date."""
    months = {m.month: m for m in year.monthly}
    assert len(months) == 12
    received = [months[m].stage1_received for m in sorted(months)]
    # Apr C; May I; Jun A K; Jul G; Aug B D; Sep -; Oct E; Nov H refused; Dec J; Jan -;
    # Feb -; Mar F L.
    assert received == [1, 1, 2, 1, 2, 0, 1, 0, 1, 0, 0, 2]
    assert (months["2025-06"].stage2_received, months["2025-07"].stage2_received,
            months["2026-01"].stage2_received) == (1, 1, 0)
    # May: C and I on time; Aug: B late; Sep: D late on base, on time with extension.
    may, august, september = months["2025-05"], months["2025-08"], months["2025-09"]
    assert (may.stage1_responses, may.stage1_within_base, may.stage1_within_extension) == (
        2, 2, 2)
    assert (august.stage1_responses, august.stage1_within_extension) == (1, 0)
    assert (september.stage1_responses, september.stage1_within_base,
            september.stage1_within_extension, september.stage2_responses,
            september.stage2_within_base, september.stage2_within_extension) == (
        1, 0, 1, 1, 0, 1)


def test_refusals_by_reason(year: Report) -> None:
    """H refused on two grounds, J's escalation refused: counted by case and by ground."""
    refusals = {r.kind: r for r in year.refusals}
    assert (refusals["complaint"].cases, refusals["complaint"].by_ground) == (
        1, {"older_than_12_months": 1, "previously_considered": 1})
    assert (refusals["escalation"].cases, refusals["escalation"].by_ground) == (
        1, {"outside_escalation_window": 1})


def test_extension_reasons(year: Report) -> None:
    """D and E's stage 1 extensions share a reason; K's stage 2 extension has its own."""
    assert [(r.stage, r.reason, r.extensions) for r in year.extension_reasons] == [
        (1, "Waiting for a damp survey", 2), (2, "Contractor report awaited", 1)]


def test_remedies_and_their_value(year: Report) -> None:
    """Apologies A C D E I K, money A £100 + E £250.50 + K £75 = £425.50, actions D E."""
    assert [(r.kind, r.offered, r.amount_pence) for r in year.remedies] == [
        ("apology", 6, 0), ("financial", 3, 42550), ("action", 2, 0)]
    assert (year.remedies_total_pence, year.responses_with_financial_remedy) == (42550, 3)


def test_outstanding_actions_overdue(year: Report) -> None:
    """D's action was done on time; E's (due 28 Nov) is still open on 31 March."""
    actions = year.actions
    assert (actions.due_in_period, actions.completed_by_due_date,
            actions.overdue_at_as_of) == (2, 1, 1)
    assert [(a.reference, a.action_id, a.due_by) for a in actions.overdue] == [
        (ref("E"), "E1", D(2025, 11, 28))]


def test_referrals_to_the_ombudsman(year: Report) -> None:
    """I was referred in September 2025."""
    assert (year.ombudsman.referred, year.ombudsman.references) == (1, [ref("I")])


def test_breaches_by_handler_and_team(year: Report) -> None:
    """h-bob answered B and E late, h-cat acknowledged D late, rev-2 acknowledged K late."""
    assert [(b.name, b.stage1_acknowledgements, b.stage1_responses,
             b.stage2_acknowledgements, b.stage2_responses, b.total)
            for b in year.breaches_by_handler] == [
        ("h-bob", 0, 2, 0, 0, 2), ("h-cat", 1, 0, 0, 0, 1), ("rev-2", 0, 0, 1, 0, 1)]
    assert [(b.name, b.total) for b in year.breaches_by_team] == [
        ("repairs", 3), ("damp_and_mould", 1)]


# -- the evidence pack ---------------------------------------------------------------------


def test_evidence_pack_counts_and_lists_exceptions(year: Report) -> None:
    """Each provision's cases, met and exceptions (with references) match the dataset."""
    assert year.evidence is not None
    items = {i.provision: i for i in year.evidence}
    summary = {p: (i.cases, i.met, i.exceptions_total) for p, i in items.items()}
    assert summary == {
        "2.1-2.5": (1, 1, 0),  # H, with its exclusion letter
        "5.12": (10, 9, 1),  # 8 + 2 responses; B's letter missing
        "5.11 / 8.1(b)": (1, 0, 1),  # J, no refusal letter
        "6.2": (11, 9, 2),  # 10 acknowledged (D late) + L overdue
        "6.3": (8, 6, 2),  # B and E late
        "6.4": (2, 2, 0),  # D 10 WD, E 5 WD: within the 10 WD cap
        "6.5": (2, 1, 1),  # E's extension has no record of the details
        "6.11": (2, 1, 1),  # K acknowledged late
        "6.13": (2, 2, 0),  # rev-1 and rev-2 did not handle stage 1
        "6.14": (2, 2, 0),  # I on the day, K inside its extension
        "6.15": (1, 1, 0),
        "6.16": (1, 1, 0),
        "6.6 / 7.3": (2, 1, 1),  # E's action still open
    }
    listed = {p: [(e.reference, e.detail) for e in i.exceptions] for p, i in items.items()}
    assert listed["5.12"] == [(ref("B"), "stage 1 response of 2025-08-26 has no letter on "
                                         "record")]
    assert listed["6.2"] == [
        (ref("D"), "received 2025-08-22, due 2025-09-01, acknowledged 2025-09-02 "
                   "(6 working days)"),
        (ref("L"), "received 2026-03-16, due 2026-03-23, not acknowledged by 2026-03-31")]
    assert listed["6.3"] == [
        (ref("B"), "clock from 2025-08-08, due 2025-08-22, responded 2025-08-26 after 11 "
                   "working days"),
        (ref("E"), "clock from 2025-10-03, due 2025-10-17 (extended 5 working days to "
                   "2025-10-24), responded 2025-10-28 after 17 working days")]
    assert [r for r, _ in listed["6.5"]] == [ref("E")]
    assert [r for r, _ in listed["6.11"]] == [ref("K")]
    assert [r for r, _ in listed["5.11 / 8.1(b)"]] == [ref("J")]
    assert listed["6.6 / 7.3"] == [(ref("E"), "action E1 due 2025-11-28, not completed by "
                                              "2026-03-31")]


def test_exception_lists_are_limited_but_counted(engine: Engine) -> None:
    """With one exception listed per item, the totals still count all of them."""
    short = report(engine, exceptions=1)
    assert short.evidence is not None
    item = next(i for i in short.evidence if i.provision == "6.3")
    assert (item.exceptions_total, [e.reference for e in item.exceptions]) == (2, [ref("B")])


def test_the_same_report_on_sqlite_and_postgresql(tmp_path: Path,
                                                  postgres_url: str) -> None:  # noqa: F811
    """Built into both databases, the reports (evidence included) are identical."""
    urls = [f"sqlite:///{(tmp_path / 'both.db').as_posix()}",
            create_database(f"both_{uuid.uuid4().hex[:8]}")]
    reports = []
    for url in urls:
        load(url)
        made = make_engine(url)
        reports.append(report(made).model_dump())
        made.dispose()
    assert reports[0] == reports[1]
    assert reports[0]["ch02"][0]["within_extension"] == 6


def test_other_landlords_complaints_are_left_out(engine: Engine, year: Report,
                                                 tmp_path: Path) -> None:
    """Another policy's complaint, response, refusal and remedy change none of the figures."""
    if engine.dialect.name == "sqlite":
        url = f"sqlite:///{(tmp_path / 'two.db').as_posix()}"
    else:
        url = create_database(f"two_{uuid.uuid4().hex[:8]}")
    load(url)
    other = Case("Z", D(2025, 6, 3), Channel.PHONE, "repairs", D(2025, 6, 10), D(2025, 6, 5),
                 "h-zed", Stage(D(2025, 6, 5), D(2025, 6, 19), D(2025, 6, 30),
                                Decision.UPHELD, "h-zed", remedies=(_money("999.00"),)),
                 requested=D(2025, 7, 1), ack2_due=D(2025, 7, 8),
                 refused=(D(2025, 7, 2), (ExclusionGround.LEGAL_PROCEEDINGS,)))
    made = make_engine(url)
    records = RecordActivities(session_factory(made))
    records.record_intake(RecordIntakeInput(landlord="Other", intake=Intake(
        reference=other.reference, policy_name="code-2024", channel=other.channel,
        received_on=other.received, category="repairs", parties=(Party(name="Z"),),
        description="Another landlord's complaint")))
    records.record_snapshot(snapshot(other).model_copy(update={"policy_name": "code-2024",
                                                               "landlord": "Other"}))
    mixed = report(made)
    made.dispose()
    assert mixed.model_dump() == year.model_dump()
