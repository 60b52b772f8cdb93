"""Importing historic complaints: a hand-worked imported year, on SQLite and PostgreSQL.

Connexus (England and Wales unless the row says): acknowledge within 5 working days (WD)
of receipt, stage 1 within 10 WD of the acknowledgement (+10 without a good reason), stage
2 acknowledged within 5 WD of the request and answered within 20 WD of that (+20). Bank
holidays in play: Good Friday 18 Apr and Easter Monday 21 Apr 2025, 5 and 26 May 2025;
Good Friday 3 Apr and Easter Monday 6 Apr 2026; in Scotland St Andrew's Day, observed Mon
1 Dec 2025. Every due date below is checked against the calendar in
``test_hand_worked_dates_follow_the_calendar``.

====  ==========  ======  =============================================================
ref   received    tenure  what happens (strict verdict of each response)
====  ==========  ======  =============================================================
M     2025-06-03  lcra    everything ON the day, extension agreed on the due day (within)
N     2025-07-07  lcra    acknowledged 2 WD late, answered in time (late)
O     2025-09-01  lcho    extension agreed the day AFTER the due date (late)
P     2025-10-06  lcra    15 WD extension beyond the cap, no good reason (late)
Q     2025-11-03  lcho    15 WD extension beyond the cap WITH a good reason (within)
X     2025-08-04  lcra    EXCLUDED 08-06 (legal proceedings): not in CH01
W     2025-08-11  lcho    acked 08-12, WITHDRAWN 08-20: in CH01, no response
E     2025-05-06  lcra    stage 1 in time; escalation asked 05-20, REFUSED 05-22
T     2025-04-07  lcho    stage 1 in time (£0 remedy); stage 2 in time, £250 remedy
U     2025-09-15  lcra    stage 1 in time; stage 2 acknowledged 1 WD late (late)
Y     2025-03-31  lcra    received 31 March 2025 (CH01 2024/25), answered 04-15 (CH02
                          2025/26, within)
A     2025-04-01  lcho    received 1 April 2025 (CH01 2025/26), answered 1 WD late
Z     2026-03-31  lcra    received 31 March 2026 (CH01 2025/26), answered 2026-04-16
                          (CH02 2026/27, within)
S     2025-11-24  lcho    Scotland: due 10 Dec (St Andrew's Day skipped), answered 10
                          Dec: within (England's calendar would make it 1 WD late)
K     2026-03-25  lcra    acknowledged 03-26, still open at the year's end
====  ==========  ======  =============================================================
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select, text

from activities.records import RecordActivities
from complaints.cli import cli
from complaints.db import make_engine, session_factory, upgrade
from complaints.imports import (
    COLUMNS,
    OPTIONAL,
    ImportRefused,
    import_complaints,
    known_policies,
)
from complaints.policies import load_compliant_policy
from complaints.reports import ReportOptions, build_report, parse_year
from complaints.reports.model import Report
from complaints.workdays import WorkingCalendar
from models.imports import ImportRunRow
from models.messages import Intake, Party, RecordIntakeInput
from models.policy import Nation
from models.tables import ComplaintRow, ResponseRow
from tests.pg import create_database, postgres_url  # noqa: F401
from tests.test_reports_strict import load as load_live
from tests.test_reports_strict import ref as live_ref

D = dt.date
POLICY = load_compliant_policy("connexus")
CALENDAR = WorkingCalendar.for_policy(POLICY)
Y24, Y25, Y26 = parse_year("2024/25"), parse_year("2025/26"), parse_year("2026/27")
TODAY = D(2026, 11, 1)
C = ComplaintRow.__table__.c  # type: ignore[attr-defined]
GOOD_REASON = "The resident asked us to wait for their expert's report"

#: The imported year: only the cells that are not empty. ``ack``/``resp``: stage 1.
ROWS: list[dict[str, str]] = [
    # M: ack due 4,5,6,9,10 -> Tue 10 Jun, acked ON it; due 10 WD after 10 Jun -> Tue 24
    #    Jun; extended 5 WD ON 24 Jun to 25,26,27,30,1 -> Tue 1 Jul; answered ON 1 Jul.
    {"reference": "OLD-M", "tenure": "lcra", "received_on": "2025-06-03",
     "stage1_acknowledged_on": "2025-06-10", "stage1_extension_agreed_on": "2025-06-24",
     "stage1_extension_working_days": "5", "stage1_responded_on": "2025-07-01",
     "stage1_decision": "upheld", "remedy_amount": "100"},
    # N: ack due 8,9,10,11,14 -> Mon 14 Jul; acked Wed 16 Jul: 2 WD late. Due 10 WD after
    #    16 Jul -> 30 Jul; answered 25 Jul.
    {"reference": "OLD-N", "tenure": "lcra", "received_on": "2025-07-07",
     "stage1_acknowledged_on": "2025-07-16", "stage1_responded_on": "2025-07-25",
     "stage1_decision": "not_upheld"},
    # O: ack due 8 Sep, acked 2 Sep; due 3..16 -> Tue 16 Sep; extended 5 WD on Wed 17 Sep
    #    (after the due date) to 23 Sep; answered 22 Sep: 4 WD after 16 Sep (17,18,19,22).
    {"reference": "OLD-O", "tenure": "lcho", "received_on": "2025-09-01",
     "stage1_acknowledged_on": "2025-09-02", "stage1_extension_agreed_on": "2025-09-17",
     "stage1_extension_working_days": "5", "stage1_responded_on": "2025-09-22",
     "stage1_decision": "upheld"},
    # P: acked 7 Oct; due Tue 21 Oct; extended 15 WD on 20 Oct (in time, beyond the 10 WD
    #    cap, no good reason) to 11 Nov; answered 10 Nov: 14 WD after 21 Oct.
    {"reference": "OLD-P", "tenure": "lcra", "received_on": "2025-10-06",
     "stage1_acknowledged_on": "2025-10-07", "stage1_extension_agreed_on": "2025-10-20",
     "stage1_extension_working_days": "15", "stage1_responded_on": "2025-11-10",
     "stage1_decision": "upheld"},
    # Q: acked 4 Nov; due 18 Nov; extended 15 WD with a good reason on 17 Nov to Tue 9
    #    Dec; answered 9 Dec.
    {"reference": "OLD-Q", "tenure": "lcho", "received_on": "2025-11-03",
     "stage1_acknowledged_on": "2025-11-04", "stage1_extension_agreed_on": "2025-11-17",
     "stage1_extension_working_days": "15", "stage1_extension_good_reason": GOOD_REASON,
     "stage1_responded_on": "2025-12-09", "stage1_decision": "partly_upheld"},
    # X: excluded 2 days after receipt.
    {"reference": "OLD-X", "tenure": "lcra", "received_on": "2025-08-04",
     "excluded_on": "2025-08-06", "exclusion_ground": "legal_proceedings"},
    # W: acked, then withdrawn before any response.
    {"reference": "OLD-W", "tenure": "lcho", "received_on": "2025-08-11",
     "stage1_acknowledged_on": "2025-08-12", "withdrawn_on": "2025-08-20"},
    # E: ack due 7,8,9,12,13 -> 13 May, acked 7 May; due 10 WD after 7 May -> 21 May,
    #    answered 14 May; escalation asked 20 May (ack due 28 May over the 26 May bank
    #    holiday), refused 22 May.
    {"reference": "OLD-E", "tenure": "lcra", "received_on": "2025-05-06",
     "stage1_acknowledged_on": "2025-05-07", "stage1_responded_on": "2025-05-14",
     "stage1_decision": "not_upheld", "stage2_requested_on": "2025-05-20",
     "escalation_refused_on": "2025-05-22", "exclusion_ground": "previously_considered"},
    # T: ack due 8..14 Apr, acked 8 Apr; due 10 WD after 8 Apr over Easter (9,10,11,14,
    #    15,16,17,22,23,24) -> 24 Apr; answered 17 Apr. Stage 2 asked 28 Apr: ack due 29,
    #    30,1,2,(5 May),6 -> 6 May, acked 30 Apr; due 20 WD after 30 Apr (5 and 26 May
    #    skipped) -> Fri 30 May; answered 29 May with £250.
    {"reference": "OLD-T", "tenure": "lcho", "received_on": "2025-04-07",
     "stage1_acknowledged_on": "2025-04-08", "stage1_responded_on": "2025-04-17",
     "stage1_decision": "partly_upheld", "stage2_requested_on": "2025-04-28",
     "stage2_acknowledged_on": "2025-04-30", "stage2_responded_on": "2025-05-29",
     "stage2_decision": "upheld", "remedy_amount": "250.00"},
    # U: ack due 22 Sep, acked 16 Sep; due 30 Sep, answered 26 Sep. Stage 2 asked 1 Oct:
    #    ack due 2,3,6,7,8 -> 8 Oct, acked 9 Oct (1 WD late); due 20 WD after 9 Oct -> 6
    #    Nov, answered ON 6 Nov.
    {"reference": "OLD-U", "tenure": "lcra", "received_on": "2025-09-15",
     "stage1_acknowledged_on": "2025-09-16", "stage1_responded_on": "2025-09-26",
     "stage1_decision": "not_upheld", "stage2_requested_on": "2025-10-01",
     "stage2_acknowledged_on": "2025-10-09", "stage2_responded_on": "2025-11-06",
     "stage2_decision": "partly_upheld"},
    # Y: received Mon 31 Mar 2025: ack due 1,2,3,4,7 -> 7 Apr, acked 1 Apr; due 10 WD
    #    after 1 Apr -> 15 Apr; answered ON 15 Apr.
    {"reference": "OLD-Y", "tenure": "lcra", "received_on": "2025-03-31",
     "stage1_acknowledged_on": "2025-04-01", "stage1_responded_on": "2025-04-15",
     "stage1_decision": "upheld"},
    # A: received Tue 1 Apr 2025: ack due 8 Apr, acked ON it; due 24 Apr (Easter), answered
    #    Fri 25 Apr: 1 WD late.
    {"reference": "OLD-A", "tenure": "lcho", "received_on": "2025-04-01",
     "stage1_acknowledged_on": "2025-04-08", "stage1_responded_on": "2025-04-25",
     "stage1_decision": "not_upheld"},
    # Z: received Tue 31 Mar 2026 and acked that day; due 10 WD after 31 Mar over Easter
    #    2026 (1,2,7,8,9,10,13,14,15,16) -> Thu 16 Apr; answered ON it.
    {"reference": "OLD-Z", "tenure": "lcra", "received_on": "2026-03-31",
     "stage1_acknowledged_on": "2026-03-31", "stage1_responded_on": "2026-04-16",
     "stage1_decision": "upheld"},
    # S (Scotland): acked 25 Nov; due 10 WD after 25 Nov = 26,27,28,(1 Dec St Andrew's Day
    #    observed),2,3,4,5,8,9,10 -> Wed 10 Dec; answered ON it. (England: 9 Dec.)
    {"reference": "OLD-S", "tenure": "lcho", "received_on": "2025-11-24",
     "stage1_acknowledged_on": "2025-11-25", "stage1_responded_on": "2025-12-10",
     "stage1_decision": "upheld", "nation": "scotland"},
    # K: ack due 26,27,30,31,1 -> 1 Apr 2026, acked 26 Mar; no response by 31 March.
    {"reference": "OLD-K", "tenure": "lcra", "received_on": "2026-03-25",
     "stage1_acknowledged_on": "2026-03-26", "category": "repairs"},
]


def csv_of(rows: list[dict[str, str]], columns: tuple[str, ...] = COLUMNS + OPTIONAL,
           landlord: str = "Connexus") -> bytes:
    """The rows as an import file (UTF-8 with a byte-order mark, as Excel saves it)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\r\n",
                            extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({"landlord": landlord, **row})
    return buffer.getvalue().encode("utf-8-sig")


YEAR = csv_of(ROWS)


def run_import(engine: Engine, data: bytes, **options: Any) -> Any:
    """Import ``data`` as at :data:`TODAY` from the command line's door."""
    return import_complaints(engine, data, by="tester", via="cli", today=TODAY, **options)


def new_url(backend: str, tmp_path: Path, name: str) -> str:
    """A fresh, migrated database of ``backend``."""
    url = (f"sqlite:///{(tmp_path / f'{name}.db').as_posix()}" if backend == "sqlite"
           else create_database(f"{name}_{tmp_path.name[-8:].lower()}"))
    upgrade(url)
    return url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Engine]:
    """The imported year in a fresh database of each backend."""
    if request.param == "postgresql":
        request.getfixturevalue("postgres_url")
    made = make_engine(new_url(request.param, tmp_path_factory.mktemp("imp"), "imported"))
    run_import(made, YEAR)
    yield made
    made.dispose()


def report(engine: Engine, period: Any = Y25) -> Report:
    """The report for ``period`` as at its last day, 1,000 homes."""
    return build_report(engine, ReportOptions(period, POLICY, homes=1000, as_of=period.end))


def test_hand_worked_dates_follow_the_calendar() -> None:
    """The due dates worked out by hand above are the policy calendar's."""
    add = CALENDAR.add_working_days
    assert [add(D(2025, 6, 3), 5), add(D(2025, 6, 10), 10), add(D(2025, 6, 24), 5)] == [
        D(2025, 6, 10), D(2025, 6, 24), D(2025, 7, 1)]
    assert [add(D(2025, 7, 7), 5), add(D(2025, 7, 16), 10)] == [D(2025, 7, 14), D(2025, 7, 30)]
    assert [add(D(2025, 9, 2), 10), add(D(2025, 10, 7), 10), add(D(2025, 10, 21), 15),
            add(D(2025, 11, 4), 10), add(D(2025, 11, 18), 15)] == [
        D(2025, 9, 16), D(2025, 10, 21), D(2025, 11, 11), D(2025, 11, 18), D(2025, 12, 9)]
    assert [add(D(2025, 5, 7), 10), add(D(2025, 5, 20), 5), add(D(2025, 4, 8), 10),
            add(D(2025, 4, 28), 5), add(D(2025, 4, 30), 20)] == [
        D(2025, 5, 21), D(2025, 5, 28), D(2025, 4, 24), D(2025, 5, 6), D(2025, 5, 30)]
    assert [add(D(2025, 10, 1), 5), add(D(2025, 10, 9), 20), add(D(2025, 4, 1), 10),
            add(D(2026, 3, 31), 10)] == [D(2025, 10, 8), D(2025, 11, 6), D(2025, 4, 15),
                                         D(2026, 4, 16)]
    scotland = WorkingCalendar(Nation.SCOTLAND, POLICY.non_working_days())
    assert (scotland.add_working_days(D(2025, 11, 25), 10), add(D(2025, 11, 25), 10)) == (
        D(2025, 12, 10), D(2025, 12, 9))


def late(year: Report) -> list[tuple[str, int, str]]:
    """The late list as (reference, stage, reason)."""
    return [(r.reference, r.stage, r.reason) for r in year.ch02_late]


def test_ch01_and_strict_ch02_of_the_imported_year(engine: Engine) -> None:
    """2025/26: CH01 13 and 2, strict CH02 7 of 11 and 1 of 2, late ones with reasons."""
    year = report(engine)
    # Logged: the 15 rows less Y (received 31 March 2025) = 14, all imported; X excluded;
    # W withdrawn. CH01(1) = 14 - X = 13. CH01(2): T and U (E's escalation refused).
    assert (year.complaints_logged, year.complaints_imported, year.complaints_excluded,
            year.complaints_withdrawn) == (14, 14, 1, 1)
    assert (year.ch01[0].received, year.ch01[1].received) == (13, 2)
    # Stage 1 responses in the year: M N O P Q E T U Y A S = 11 (Z answered in 2026/27).
    # Strict: M Q E T U Y S = 7 (N late ack, O late extension, P over the cap, A late).
    # Response only: also N and O = 9; base: N E T U Y S = 6.
    stage1, stage2 = year.ch02
    assert (stage1.responses, stage1.within_code, stage1.within_extension,
            stage1.within_base, stage1.headline_pct) == (11, 7, 9, 6, 63.6)
    # Stage 2: T within; U acknowledged 1 WD late.
    assert (stage2.responses, stage2.within_code, stage2.within_extension,
            stage2.headline_pct) == (2, 1, 2, 50.0)
    assert late(year) == [
        ("OLD-A", 1, "responded 1 working day after the due date"),
        ("OLD-N", 1, "acknowledged 2 working days late"),
        ("OLD-O", 1, "extension agreed after the due date; responded 4 working days after "
                     "the due date"),
        ("OLD-P", 1, "extension beyond the cap without a good reason; responded 14 working "
                     "days after the due date"),
        ("OLD-U", 2, "acknowledged 1 working day late")]


def test_the_year_boundary(engine: Engine) -> None:
    """Y counts in CH01 2024/25 and CH02 2025/26; Z in CH01 2025/26 and CH02 2026/27."""
    before, after = report(engine, Y24), report(engine, Y26)
    assert (before.ch01[0].received, before.ch02[0].responses) == (1, 0)
    assert (after.ch01[0].received, after.ch02[0].responses, after.ch02[0].within_code) == (
        0, 1, 1)


def test_tenures_refusals_remedies_and_states(engine: Engine) -> None:
    """Per tenure, refusals by ground, remedies, and the states the cases are left in."""
    year = report(engine)
    # CH01(1) LCRA: M N P E U K Z = 7 (X excluded); LCHO: O Q W T A S = 6. CH02(1) LCRA:
    # M N P E U Y, within M E U Y = 4 of 6; LCHO: O Q T A S, within Q T S = 3 of 5.
    assert [(t.tenure, t.ch01[0].received, t.ch02[0].responses, t.ch02[0].within_code)
            for t in year.tenures] == [("lcra", 7, 6, 4), ("lcho", 6, 5, 3)]
    assert {r.kind: (r.cases, r.by_ground) for r in year.refusals} == {
        "complaint": (1, {"legal_proceedings": 1}),
        "escalation": (1, {"previously_considered": 1})}
    # M's £100 with its stage 1 response, T's £250 with its stage 2 response.
    assert year.remedies_total_pence == 35000
    with engine.connect() as db:
        states = {str(r): str(s) for r, s in db.execute(select(C.reference, C.state))}
    assert (states["OLD-X"], states["OLD-W"], states["OLD-E"], states["OLD-T"],
            states["OLD-K"]) == ("declined", "withdrawn", "closed", "closed",
                                 "stage1_investigating")


def test_sqlite_and_postgresql_give_the_same_report(tmp_path: Path,
                                                    postgres_url: str) -> None:  # noqa: F811
    """The imported year's reports (three years) are identical on both databases."""
    reports = []
    for backend in ("sqlite", "postgresql"):
        made = make_engine(new_url(backend, tmp_path, "both"))
        run_import(made, YEAR)
        reports.append([report(made, y).model_dump() for y in (Y24, Y25, Y26)])
        made.dispose()
    assert reports[0] == reports[1]
    assert reports[0][1]["ch02"][0]["within_code"] == 7


def _live_measures(url: str, letters: str) -> dict[str, tuple[Any, ...]]:
    """What the report reads of each live response, by letter."""
    columns = ("clock_start", "due_base", "due_final", "extension_days",
               "extension_within_code", "working_days_taken", "acknowledged_on",
               "acknowledgement_due", "extensions_timely", "within_code", "late_reason")
    made = make_engine(url)
    with made.connect() as db:
        rows = db.execute(select(ResponseRow.__table__)).mappings().all()  # type: ignore[attr-defined]
    made.dispose()
    by_ref = {r["reference"]: tuple(r[c] for c in columns) for r in rows}
    return {letter: by_ref[reference] for letter in letters
            for reference in (live_ref(letter), f"OLD-{letter}") if reference in by_ref}


def test_an_imported_case_is_measured_as_the_live_one(tmp_path: Path) -> None:
    """M-Q recorded live by the workflow's activities and imported: the same responses."""
    live, imported = new_url("sqlite", tmp_path, "live"), new_url("sqlite", tmp_path, "imp")
    load_live(live)
    made = make_engine(imported)
    run_import(made, YEAR)
    made.dispose()
    expected, got = _live_measures(live, "MNOPQ"), _live_measures(imported, "MNOPQ")
    assert len(expected) == 5
    assert got == expected


def test_importing_again_changes_nothing_and_a_changed_row_replaces(tmp_path: Path) -> None:
    """The same file again: nothing written, same report; N corrected: N replaced."""
    made = make_engine(new_url("sqlite", tmp_path, "again"))
    first = run_import(made, YEAR)
    before = report(made).model_dump()
    again = run_import(made, YEAR)
    assert (first.imported, again.imported, again.replaced, again.unchanged, again.run_id) == (
        15, 0, 0, 15, None)
    assert report(made).model_dump() == before
    # N acknowledged on 14 Jul (its due date) after all: within, and still one response.
    fixed = [{**r, "stage1_acknowledged_on": "2025-07-14"} if r["reference"] == "OLD-N"
             else r for r in ROWS]
    third = run_import(made, csv_of(fixed))
    after = report(made)
    with made.connect() as db:
        responses = db.execute(select(func.count()).select_from(ResponseRow.__table__)  # type: ignore[attr-defined]
                               .where(text("reference = 'OLD-N'"))).scalar_one()
        runs = db.execute(select(func.count()).select_from(ImportRunRow.__table__)).scalar_one()  # type: ignore[attr-defined]
    made.dispose()
    assert (third.imported, third.replaced, third.unchanged) == (0, 1, 14)
    assert (after.ch02[0].within_code, responses, runs) == (8, 1, 2)


def _refusal(engine: Engine, data: bytes) -> ImportRefused:
    with pytest.raises(ImportRefused) as caught:
        run_import(engine, data)
    return caught.value


def _count(engine: Engine) -> int:
    with engine.connect() as db:
        return int(db.execute(select(func.count()).select_from(
            ComplaintRow.__table__)).scalar_one())  # type: ignore[attr-defined]


def test_a_bad_row_refuses_the_whole_file(tmp_path: Path) -> None:
    """One bad date on line 4: refused with its line and field; nothing imported."""
    made = make_engine(new_url("sqlite", tmp_path, "bad"))
    rows = [*ROWS[:2], {**ROWS[2], "stage1_responded_on": "2025-09-31"}, *ROWS[3:]]
    refused = _refusal(made, csv_of(rows))
    assert str(refused.problems[0]) == (
        "line 4, field stage1_responded_on: not a date: write it as YYYY-MM-DD (e.g. "
        "2025-04-01), or leave it empty when it does not apply")
    assert str(refused).endswith("; nothing was imported")
    assert _count(made) == 0
    made.dispose()


@pytest.mark.parametrize(("row", "field", "words"), [
    ({"stage1_responded_on": "2025-06-01"}, "stage1_responded_on", "is before stage1_ack"),
    ({"tenure": "council"}, "tenure", "must be one of lcra, lcho, other"),
    ({"stage1_decision": "maybe"}, "stage1_decision", "must be one of upheld"),
    ({"stage1_extension_working_days": ""}, "stage1_extension_working_days", "required with"),
    ({"excluded_on": "2025-06-05", "exclusion_ground": "legal_proceedings"},
     "stage1_acknowledged_on", "an excluded complaint goes no further"),
    ({"received_on": "2027-01-04"}, "received_on", "is after today"),
])
def test_each_rule_names_its_line_and_field(tmp_path: Path, row: dict[str, str], field: str,
                                            words: str) -> None:
    """A broken rule is reported on the row's line (2) with the column at fault."""
    made = make_engine(new_url("sqlite", tmp_path, "rule"))
    refused = _refusal(made, csv_of([{**ROWS[0], **row}]))
    made.dispose()
    first = refused.problems[0]
    assert (first.line, first.field) == (2, field)
    assert words in first.message


def test_header_landlord_and_duplicates_are_refused(tmp_path: Path) -> None:
    """Unknown and missing columns, an unknown landlord and a duplicate reference."""
    made = make_engine(new_url("sqlite", tmp_path, "head"))
    columns = tuple(c for c in COLUMNS if c != "withdrawn_on") + ("colour",)
    header = _refusal(made, csv_of(ROWS[:1], columns=columns))
    assert [str(p) for p in header.problems] == [
        f"line 1: unknown columns colour: remove or rename them; the columns are "
        f"{', '.join(COLUMNS + OPTIONAL)}",
        "line 1: missing columns withdrawn_on: add them to the header (cells may be empty)"]
    landlord = _refusal(made, csv_of(ROWS[:1], landlord="Acme Homes"))
    assert (landlord.problems[0].field, landlord.problems[0].line) == ("landlord", 2)
    duplicate = _refusal(made, csv_of([ROWS[0], ROWS[1], ROWS[0]]))
    assert str(duplicate.problems[0]) == (
        "line 4, field reference: already on line 2: one row per complaint; merge the two")
    assert _count(made) == 0
    made.dispose()


def test_a_live_reference_is_never_overwritten(tmp_path: Path) -> None:
    """A row with a live complaint's reference is refused; so is an unused CMP- one."""
    url = new_url("sqlite", tmp_path, "clash")
    records = RecordActivities(session_factory(make_engine(url)))
    intake = Intake.model_validate(
        {"reference": "CMP-2025-000001", "policy_name": "connexus", "channel": "phone",
         "received_on": D(2025, 6, 3), "category": "repairs", "parties": (Party(name="R"),),
         "description": "A complaint"}, context={"lodging": False})
    records.record_intake(RecordIntakeInput(landlord="Connexus", intake=intake))
    made = make_engine(url)
    rows = [ROWS[1], {**ROWS[0], "reference": "CMP-2025-000001"},
            {**ROWS[2], "reference": "cmp-2025-000002"}]
    refused = _refusal(made, csv_of(rows))
    assert [(p.line, p.field) for p in refused.problems] == [(3, "reference"), (4, "reference")]
    assert "is a complaint the engine handles" in refused.problems[0].message
    assert "CMP- and SYN- references are the engine's own" in refused.problems[1].message
    with made.connect() as db:
        stored = db.execute(select(C.reference, C.imported)).all()
    made.dispose()
    assert [tuple(r) for r in stored] == [("CMP-2025-000001", False)]


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    """A dry run counts what would be imported and leaves the database as it was."""
    made = make_engine(new_url("sqlite", tmp_path, "dry"))
    summary = run_import(made, YEAR, dry_run=True)
    assert (summary.imported, summary.dry_run, _count(made)) == (15, True, 0)
    made.dispose()


def test_spreadsheet_quirks_are_read_and_other_encodings_refused(tmp_path: Path) -> None:
    """Trailing empty columns and blank lines are read; a Windows-1252 file is refused."""
    made = make_engine(new_url("sqlite", tmp_path, "quirks"))
    lines = YEAR.decode("utf-8-sig").split("\r\n")
    padded = "\r\n".join(f"{line},," if line else line for line in lines[:3]) + "\r\n\r\n"
    summary = run_import(made, padded.encode())
    assert (summary.rows, summary.imported) == (2, 2)
    refused = _refusal(made, padded.replace("lcra", "lcra £").encode("cp1252"))
    assert str(refused) == ("the file is not UTF-8 text: save it as CSV UTF-8 and import it "
                            "again; nothing was imported")
    made.dispose()


def test_the_landlord_is_matched_ignoring_case(tmp_path: Path) -> None:
    """A row's landlord is the policy's whatever its case; the policy's spelling is kept."""
    assert known_policies()["connexus"].name == "connexus"
    made = make_engine(new_url("sqlite", tmp_path, "case"))
    run_import(made, csv_of(ROWS[:1], landlord="CONNEXUS"))
    with made.connect() as db:
        stored = db.execute(select(C.landlord, C.policy_name, C.imported)).one()
    made.dispose()
    assert tuple(stored) == ("Connexus", "connexus", True)


def test_cli_imports_and_exits_non_zero_on_a_bad_file(tmp_path: Path) -> None:
    """``complaints import``: one summary line; a bad file is one Error line, exit 1."""
    url = new_url("sqlite", tmp_path, "cli")
    good, bad = tmp_path / "year.csv", tmp_path / "bad.csv"
    good.write_bytes(YEAR)
    bad.write_bytes(csv_of([{**ROWS[0], "stage1_decision": ""}]))
    runner = CliRunner()
    done = runner.invoke(cli, ["import", str(good), "--database-url", url, "--by", "adm-1"])
    assert done.exit_code == 0, done.output
    assert done.output == "15 rows: 15 imported, 0 replaced, 0 unchanged (import run 1)\n"
    refused = runner.invoke(cli, ["import", str(bad), "--database-url", url])
    assert refused.exit_code == 1
    assert refused.output == (
        "Error: line 2, field stage1_decision: required with stage1_responded_on: upheld, "
        "partly_upheld or not_upheld; nothing was imported\n")


@pytest.fixture
async def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
              ) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """The API on a database of the test's own, with the staff and their tokens."""
    from complaints.api.app import create_app, make_context
    from complaints.settings import Settings
    from tests.api_support import seed_staff

    data = tmp_path / "data"
    monkeypatch.setenv("COMPLAINTS_ENV_FILE", str(tmp_path / "absent.env"))
    monkeypatch.setenv("DATA_DIR", str(data))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{(data / 'complaints.db').as_posix()}")
    context = make_context(Settings())
    tokens = seed_staff(context)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(
                context=context)), base_url="http://api") as client:
            yield client, {staff: f"Bearer {token}" for staff, token in tokens.items()}
    finally:
        context.engine.dispose()
        context.reader.dispose()


async def test_api_imports_for_an_admin_only(
        api: tuple[httpx.AsyncClient, dict[str, str]]) -> None:
    """POST /imports: 201 for an admin, 403 for a handler, 422 with line and field."""
    client, auth = api
    csv_type = {"Content-Type": "text/csv"}
    denied = await client.post("/api/v1/imports", content=YEAR,
                               headers={**csv_type, "Authorization": auth["hdl-1"]})
    assert denied.status_code == 403
    assert "may not import historic complaints" in denied.json()["detail"]
    bad = await client.post("/api/v1/imports", content=csv_of([{**ROWS[0], "tenure": "x"}]),
                            headers={**csv_type, "Authorization": auth["adm-1"]})
    assert bad.status_code == 422
    assert bad.json()["errors"] == [{"line": 2, "field": "tenure",
                                     "detail": "must be one of lcra, lcho, other (or empty)"}]
    wrong_type = await client.post("/api/v1/imports", content=YEAR,
                                   headers={"Content-Type": "application/json",
                                            "Authorization": auth["adm-1"]})
    assert wrong_type.status_code == 415
    done = await client.post("/api/v1/imports", content=YEAR,
                             headers={**csv_type, "Authorization": auth["adm-1"]})
    assert done.status_code == 201, done.text
    assert (done.json()["imported"], done.json()["rows"]) == (15, 15)
    again = await client.post("/api/v1/imports?dry_run=true", content=YEAR,
                              headers={**csv_type, "Authorization": auth["adm-1"]})
    assert (again.status_code, again.json()["unchanged"]) == (200, 15)
