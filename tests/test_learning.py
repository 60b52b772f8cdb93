"""Learning from complaints (Code 8.1, 9): recording, refusals, the report, on hand-worked data.

The cases are those of ``tests/test_reports_strict.py`` (Connexus): stage 1 responses
issued M 1 Jul, N 25 Jul, O 22 Sep, P 10 Nov, Q 9 Dec 2025 (2025/26: 5 responses, 2
within the Code, CH01(1) 6); R 17 Apr, T 29 Apr 2026 and S 4 Jan 2027 (2026/27: 3
responses, 1 within, CH01(1) 2). Recorded on them:

====  ==========  ===============================  ===================================
case  responded   themes                           root causes
====  ==========  ===============================  ===================================
M     2025-07-01  repairs_delays, communication    contractor_performance
N     2025-07-25  communication                    poor_communication
P     2025-11-10  damp_and_mould                   process_not_followed
R     2026-04-17  repairs_delays                   contractor_performance, resourcing
T     2026-04-29  repairs_delays, staff_conduct    process_not_followed
S     2027-01-04  damp_and_mould                   contractor_performance
====  ==========  ===============================  ===================================

2026/27 by hand: 3 of 3 responses with learning; themes repairs_delays 2, damp_and_mould 1,
staff_conduct 1; root causes contractor_performance 2, process_not_followed 1, resourcing 1;
trend 2026-04 repairs_delays 2 + staff_conduct 1, 2027-01 damp_and_mould 1. A year earlier
(2025/26): 3 of 5; communication 2, damp_and_mould 1, repairs_delays 1.

Service changes (as at 31 Mar 2027): #1 done 20 Jun 2026; #2 due 28 Feb 2027, open, so
overdue; #3 due 30 Jun 2027, open; #4 done 1 Dec 2025 (the year before). Satisfaction:
30 of 40 (Apr-Jun 2026) and 42 of 60 (Jul-Sep 2026) = 72 of 100, 72.0%; 2025/26: 30 of
50, 60.0%. Determinations recorded: maladministration (Oct 2026), service failure (Feb
2027); one in 2025/26 and a refused one are not counted.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine
from sqlmodel import Session

from complaints import learning as ln
from complaints.cli import cli
from complaints.db import make_engine, session_factory
from complaints.reports import Period, ReportOptions, build_report, parse_year, render
from complaints.reports.learning import previous_period
from complaints.reports.model import Report
from models.tables import AuditRow
from tests.pg import postgres_url  # noqa: F401
from tests.test_reports import POLICY, at, ref
from tests.test_reports_strict import load, new_url

D = dt.date
Y25, Y26 = parse_year("2025/26"), parse_year("2026/27")
#: What each case's stage 1 response is filed under: (themes, root causes).
LEARNING = {
    "M": (("repairs_delays", "communication"), ("contractor_performance",)),
    "N": (("communication",), ("poor_communication",)),
    "P": (("damp_and_mould",), ("process_not_followed",)),
    "R": (("repairs_delays",), ("contractor_performance", "resourcing")),
    "T": (("repairs_delays", "staff_conduct"), ("process_not_followed",)),
    "S": (("damp_and_mould",), ("contractor_performance",)),
}
#: When the changes were recorded: before the as-of dates of the reports.
RECORDED = at(D(2026, 5, 1))


def learning_in(letter: str, lessons: str | None = "Check the contractor's dates") -> Any:
    """The learning of ``letter``'s stage 1 response."""
    themes, causes = LEARNING[letter]
    return ln.LearningIn(stage=1, themes=themes, root_causes=causes, lessons=lessons)


def change(session: Session, done_on: dt.date | None = None, **fields: Any) -> int:
    """Record a service change (recorded on :data:`RECORDED`), done on ``done_on``."""
    row = ln.add_change(session, ln.ChangeIn(**{"owner": "mgr-1", **fields}), "mgr-1")
    row.recorded_at = RECORDED
    session.add(row)
    session.commit()
    assert row.id is not None
    if done_on is not None:
        ln.complete_change(session, row.id, "mgr-1", done_on=done_on, today=D(2027, 6, 1))
    return row.id


def determination(session: Session, letter: str, seq: int, on: dt.date, finding: str,
                  accepted: bool = True) -> None:
    """An audit entry of a determination, as the recording activity writes it."""
    session.add(AuditRow(reference=ref(letter), seq=seq, at=at(on), by="mgr-1",
                         action="ombudsman_determination", from_state="closed",
                         to_state="closed", accepted=accepted,
                         detail=json.dumps({"finding": finding, "trigger":
                                            "ombudsman_determination"})))
    session.commit()


def record_everything(url: str) -> None:
    """Load the hand-worked cases and record the learning, changes and satisfaction."""
    load(url)
    engine = make_engine(url)
    with session_factory(engine)() as session:
        # M is first filed under "other", then recorded again: the second replaces it.
        ln.record_learning(session, ref("M"), ln.LearningIn(
            stage=1, themes=("other",), root_causes=("third_party",)), "hdl-1")
        for letter in LEARNING:
            ln.record_learning(session, ref(letter), learning_in(letter), "hdl-1")
        change(session, D(2026, 6, 20), reference=ref("R"), theme="repairs_delays",
               description="Contractor dates checked weekly", due_on=D(2026, 6, 30))
        change(session, theme="damp_and_mould", description="Damp surveys within 10 days",
               due_on=D(2027, 2, 28), owner="lead-1")
        change(session, reference=ref("S"), description="Response letter template rewritten",
               due_on=D(2027, 6, 30))
        change(session, D(2025, 12, 1), description="Repairs line open on Saturdays",
               due_on=D(2025, 12, 31))
        for start, end, surveyed, satisfied in ((D(2026, 4, 1), D(2026, 6, 30), 40, 30),
                                                (D(2026, 7, 1), D(2026, 9, 30), 60, 42),
                                                (D(2025, 4, 1), D(2026, 3, 31), 50, 30)):
            ln.record_satisfaction(session, ln.SatisfactionIn(
                period_start=start, period_end=end, surveyed=surveyed, satisfied=satisfied,
                source="Transactional survey"), "mgr-1")
        determination(session, "R", 901, D(2026, 10, 1), "maladministration")
        determination(session, "S", 902, D(2027, 2, 1), "service_failure")
        determination(session, "T", 903, D(2027, 2, 2), "severe_maladministration",
                      accepted=False)
        determination(session, "M", 904, D(2025, 10, 1), "maladministration")
    engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Engine]:
    """The hand-worked data in a fresh database of each backend."""
    if request.param == "postgresql":
        request.getfixturevalue("postgres_url")
    url = new_url(request.param, tmp_path_factory.mktemp("learning"), "learning")
    record_everything(url)
    made = make_engine(url)
    yield made
    made.dispose()


def report(engine: Engine, period: Period = Y26, **options: Any) -> Report:
    """The report for ``period`` as at its last day, 1,000 homes."""
    options.setdefault("as_of", period.end)
    return build_report(engine, ReportOptions(period, POLICY, homes=1000, **options))


def pairs(items: list[Any]) -> list[tuple[str, int]]:
    """(name, count) of tag counts."""
    return [(i.name, i.count) for i in items]


def test_themes_and_root_causes_of_the_year(engine: Engine) -> None:
    """2026/27: R, S and T filed; themes and root causes counted most first."""
    figures = report(engine).learning
    assert figures is not None
    assert figures.responses_with_learning == 3
    assert pairs(figures.themes) == [("repairs_delays", 2), ("damp_and_mould", 1),
                                     ("staff_conduct", 1)]
    assert pairs(figures.root_causes) == [("contractor_performance", 2),
                                          ("process_not_followed", 1), ("resourcing", 1)]


def test_trend_by_month_of_the_response(engine: Engine) -> None:
    """April 2026 holds R and T's themes, January 2027 S's."""
    figures = report(engine).learning
    assert figures is not None
    assert [(t.month, t.name, t.count) for t in figures.trend] == [
        ("2026-04", "repairs_delays", 2), ("2026-04", "staff_conduct", 1),
        ("2027-01", "damp_and_mould", 1)]


def test_recording_again_replaces_the_learning(engine: Engine) -> None:
    """M's first filing ("other", "third_party") is gone; its revision is 2."""
    previous = report(engine).learning.previous  # type: ignore[union-attr]
    assert previous is not None
    assert "other" not in {t.name for t in previous.themes}
    with Session(engine) as session:
        (view,) = ln.show_learning(session, ref("M"))
    assert (view.revision, view.themes, view.root_causes) == (
        2, ["communication", "repairs_delays"], ["contractor_performance"])


def test_year_on_year_is_the_earlier_year_by_the_same_rules(engine: Engine) -> None:
    """The previous figures are 2025/26's: CH01 6, CH02 2 of 5, its themes, 60% satisfied."""
    figures = report(engine).learning
    assert figures is not None and figures.previous is not None
    p = figures.previous
    assert (p.label, p.period_start, p.period_end) == ("2025/26", D(2025, 4, 1),
                                                       D(2026, 3, 31))
    assert (p.stage1_received, p.stage1_responses, p.stage1_within_code,
            p.stage1_pct_within_code) == (6, 5, 2, 40.0)
    # The report was given 1,000 homes: the earlier year is measured against the same.
    assert (p.homes, p.stage1_per_1000_homes) == (1000, 6.0)
    assert p.responses_with_learning == 3
    assert pairs(p.themes) == [("communication", 2), ("damp_and_mould", 1),
                               ("repairs_delays", 1)]
    assert (p.surveyed, p.satisfied, p.pct_satisfied) == (50, 30, 60.0)
    earlier = report(engine, Y25, as_of=D(2026, 3, 31))
    assert (p.stage1_received, p.stage2_received) == (earlier.ch01[0].received,
                                                      earlier.ch01[1].received)
    assert p.stage1_pct_within_code == earlier.ch02[0].pct_within_code


def test_service_changes_done_and_open(engine: Engine) -> None:
    """Done in 2026/27: #1; open at 31 March 2027: #2 (overdue) and #3."""
    figures = report(engine).learning
    assert figures is not None
    assert [(c.description, c.done_on) for c in figures.changes_done] == [
        ("Contractor dates checked weekly", D(2026, 6, 20))]
    assert [(c.owner, c.due_on, c.overdue) for c in figures.changes_open] == [
        ("lead-1", D(2027, 2, 28), True), ("mgr-1", D(2027, 6, 30), False)]
    assert (figures.changes_done_total, figures.changes_open_total,
            figures.changes_overdue_total) == (1, 2, 1)
    before = report(engine, Y25).learning
    assert before is not None
    assert [c.description for c in before.changes_done] == ["Repairs line open on Saturdays"]


def test_satisfaction_adds_up_the_periods_within(engine: Engine) -> None:
    """2026/27: 72 of 100 (72.0%); the first quarter alone: 30 of 40 (75.0%)."""
    figures = report(engine).learning
    assert figures is not None
    assert (figures.surveyed, figures.satisfied, figures.pct_satisfied) == (100, 72, 72.0)
    assert [s.pct_satisfied for s in figures.satisfaction] == [75.0, 70.0]
    quarter = report(engine, Period(D(2026, 4, 1), D(2026, 6, 30))).learning
    assert quarter is not None
    assert (quarter.surveyed, quarter.satisfied, quarter.pct_satisfied) == (40, 30, 75.0)


def test_determinations_recorded_in_the_period_by_finding(engine: Engine) -> None:
    """R's and S's determinations count; the refused one and 2025/26's do not."""
    figures = report(engine).learning
    assert figures is not None
    assert pairs(figures.determinations) == [("maladministration", 1),
                                             ("service_failure", 1)]


def test_the_same_figures_on_sqlite_and_postgresql(tmp_path: Path,
                                                    postgres_url: str) -> None:  # noqa: F811
    """Built into both databases, the learning figures are identical."""
    figures = []
    for name in ("sqlite", "postgresql"):
        url = new_url(name, tmp_path, f"both_{uuid.uuid4().hex[:6]}")
        record_everything(url)
        made = make_engine(url)
        figures.append(report(made).learning)
        made.dispose()
    assert figures[0] == figures[1]
    assert figures[0] is not None and figures[0].responses_with_learning == 3


def test_the_rendered_report_has_the_sections_and_charts(engine: Engine) -> None:
    """Markdown has every section; HTML draws both learning charts; CSV carries the counts."""
    year = report(engine)
    markdown = render(year, "md")
    for heading in ("## Learning from complaints (Code 8.1, 9)", "## Year on year",
                    "## What changed as a result", "## Ombudsman determinations and orders",
                    "## Customer satisfaction with complaint handling",
                    "## Governing body's response"):
        assert heading in markdown, heading
    assert "| Repairs delays | 2 | 1 |" in markdown
    assert "| CH01 stage 1 complaints received | 2 | 6 | -4 |" in markdown
    assert "2027-02-28 **overdue**" in markdown
    assert "| **All** | **100** | **72** | **72.0%** |" in markdown
    assert "To be completed by the governing body" in markdown
    page = render(year, "html")
    assert 'aria-label="Responses by theme: 2026/27 beside 2025/26"' in page
    assert 'aria-label="Responses by theme, per month of the response"' in page
    assert page.count("<svg") >= 6
    assert "learning.themes,repairs_delays,count,2" in render(year, "csv")


def test_previous_period_of_a_leap_day() -> None:
    """A period ending 29 February 2028 compares with one ending 28 February 2027."""
    earlier = previous_period(Period(D(2027, 12, 1), D(2028, 2, 29)))
    assert (earlier.start, earlier.end) == (D(2026, 12, 1), D(2027, 2, 28))


# --- refusals ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The hand-worked data in a SQLite file of the module's own."""
    url = new_url("sqlite", tmp_path_factory.mktemp("refusals"), "refusals")
    record_everything(url)
    return url


@pytest.fixture
def session(sqlite_url: str) -> Iterator[Session]:
    """A session on it."""
    made = make_engine(sqlite_url)
    with session_factory(made)() as opened:
        yield opened
    made.dispose()


def test_a_theme_outside_the_vocabulary_is_refused_with_the_allowed(session: Session) -> None:
    """'leaky_roof' is not Connexus's: refused, naming the themes allowed."""
    with pytest.raises(ln.LearningError) as refused:
        ln.record_learning(session, ref("R"), ln.LearningIn(
            stage=1, themes=("leaky_roof",), root_causes=("resourcing",)), "hdl-1")
    assert refused.value.status == 422
    assert refused.value.detail.startswith("theme 'leaky_roof' is not in the landlord's "
                                           "vocabulary (policy connexus, [learning]): use one "
                                           "of repairs_delays, damp_and_mould,")
    with pytest.raises(ln.LearningError, match="root cause 'bad_luck'"):
        ln.record_learning(session, ref("R"), ln.LearningIn(
            stage=1, themes=("other",), root_causes=("bad_luck",)), "hdl-1")


def test_a_stage_with_no_response_is_refused(session: Session) -> None:
    """M has no stage 2 response; an unknown reference is not found."""
    with pytest.raises(ln.LearningError) as refused:
        ln.record_learning(session, ref("M"), ln.LearningIn(
            stage=2, themes=("other",), root_causes=("resourcing",)), "hdl-1")
    assert (refused.value.status, refused.value.detail) == (
        409, f"{ref('M')} has no stage 2 response: learning is recorded against a response "
             "issued (stage 1 only)")
    with pytest.raises(ln.LearningError) as missing:
        ln.show_learning(session, "CMP-2099-000001")
    assert missing.value.status == 404


def test_satisfaction_refuses_overlaps_and_impossible_counts(session: Session) -> None:
    """An overlapping period and more satisfied than surveyed are refused; the same replaces."""
    overlap = ln.SatisfactionIn(period_start=D(2026, 6, 1), period_end=D(2026, 7, 31),
                                surveyed=10, satisfied=5)
    with pytest.raises(ln.LearningError, match="overlap this period") as refused:
        ln.record_satisfaction(session, overlap, "mgr-1")
    assert refused.value.status == 409
    with pytest.raises(ln.LearningError, match="at most the number surveyed"):
        ln.record_satisfaction(session, ln.SatisfactionIn(
            period_start=D(2026, 10, 1), period_end=D(2026, 12, 31), surveyed=10,
            satisfied=11), "mgr-1")
    again = ln.record_satisfaction(session, ln.SatisfactionIn(
        period_start=D(2026, 10, 1), period_end=D(2026, 12, 31), surveyed=20, satisfied=15),
        "mgr-1")
    replaced = ln.record_satisfaction(session, ln.SatisfactionIn(
        period_start=D(2026, 10, 1), period_end=D(2026, 12, 31), surveyed=25, satisfied=20),
        "mgr-1")
    assert (replaced.id, replaced.surveyed) == (again.id, 25)


def test_a_change_is_done_once_and_never_in_the_future(session: Session) -> None:
    """Done tomorrow is refused; done again on another day is refused."""
    row = ln.add_change(session, ln.ChangeIn(description="New repairs triage",
                                             owner="mgr-1", due_on=D(2027, 1, 31)), "mgr-1")
    assert row.id is not None and row.landlord == "Connexus"
    today = D(2026, 12, 1)
    with pytest.raises(ln.LearningError, match="is after today"):
        ln.complete_change(session, row.id, "mgr-1", done_on=D(2026, 12, 2), today=today)
    ln.complete_change(session, row.id, "mgr-1", done_on=today, today=today)
    with pytest.raises(ln.LearningError, match="done on 2026-12-01 already"):
        ln.complete_change(session, row.id, "mgr-1", done_on=D(2026, 11, 30), today=today)


# --- the command line ----------------------------------------------------------------


@pytest.fixture
def cli_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The hand-worked cases (no learning) in a database the CLI finds by its settings."""
    data = tmp_path / "data"
    data.mkdir()
    url = f"sqlite:///{(data / 'complaints.db').as_posix()}"
    monkeypatch.setenv("COMPLAINTS_ENV_FILE", str(tmp_path / "absent.env"))
    monkeypatch.setenv("DATA_DIR", str(data))
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("API_URL", raising=False)
    load(url)
    return url


def test_the_commands_record_show_and_list(cli_url: str) -> None:
    """The commands learning record/show, changes add/done/list, satisfaction record work."""
    run = CliRunner().invoke
    recorded = run(cli, ["learning", "record", ref("R"), "--stage", "1", "--theme",
                         "repairs_delays", "--root-cause", "resourcing", "--lesson",
                         "Book the contractor first", "--by", "hdl-1"])
    assert recorded.exit_code == 0, recorded.output
    assert recorded.output.strip() == (f"{ref('R')} stage 1: themes repairs_delays; root "
                                       "causes resourcing (revision 1)")
    shown = json.loads(run(cli, ["learning", "show", ref("R"), "--json"]).output)
    assert shown[0]["lessons"] == "Book the contractor first"
    refused = run(cli, ["learning", "record", ref("R"), "--stage", "2", "--theme", "other",
                        "--root-cause", "resourcing", "--by", "hdl-1"])
    assert refused.exit_code == 1 and "has no stage 2 response" in refused.output
    added = run(cli, ["changes", "add", "--description", "Contractor booked on the call",
                      "--owner", "mgr-1", "--due", "2026-01-31", "--reference", ref("R"),
                      "--theme", "repairs_delays", "--by", "mgr-1"])
    assert added.exit_code == 0, added.output
    listed = json.loads(run(cli, ["changes", "list", "--overdue", "--json"]).output)
    assert [(c["id"], c["overdue"]) for c in listed] == [(int(added.output), True)]
    done = run(cli, ["changes", "done", added.output.strip(), "--on", "2026-02-02",
                     "--by", "mgr-1"])
    assert done.exit_code == 0 and "done 2026-02-02" in done.output
    survey = run(cli, ["satisfaction", "record", "--start", "2026-04-01", "--end",
                       "2026-06-30", "--surveyed", "40", "--satisfied", "30", "--by", "mgr-1"])
    assert survey.output.strip() == ("Connexus 2026-04-01 to 2026-06-30: 30 of 40 satisfied "
                                     "(75.0%)")


# --- the API ---------------------------------------------------------------------------


def test_the_api_records_and_refuses_by_role(cli_url: str) -> None:
    """Managers record learning and changes, admins satisfaction; others get 403."""
    import asyncio

    from complaints.api.app import create_app, make_context
    from complaints.settings import Settings
    from tests.api_support import seed_staff

    context = make_context(Settings())
    tokens = seed_staff(context)

    async def calls() -> dict[str, httpx.Response]:
        transport = httpx.ASGITransport(app=create_app(context=context))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            def auth(who: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {tokens[who]}"}

            body = {"themes": ["repairs_delays"], "root_causes": ["resourcing"]}
            path = f"/api/v1/complaints/{ref('R')}/learning/1"
            change = {"description": "Contractor booked on the call", "owner": "mgr-1",
                      "due_on": "2027-01-31"}
            survey = {"period_start": "2026-04-01", "period_end": "2026-06-30",
                      "surveyed": 40, "satisfied": 30}
            return {
                "viewer": await http.put(path, json=body, headers=auth("view-1")),
                "manager": await http.put(path, json=body, headers=auth("mgr-1")),
                "unknown": await http.put(path, json={**body, "themes": ["leaky_roof"]},
                                          headers=auth("mgr-1")),
                "read": await http.get(f"/api/v1/complaints/{ref('R')}/learning",
                                       headers=auth("view-1")),
                "handler_change": await http.post("/api/v1/service-changes", json=change,
                                                  headers=auth("hdl-1")),
                "manager_change": await http.post("/api/v1/service-changes", json=change,
                                                  headers=auth("mgr-1")),
                "handler_survey": await http.put("/api/v1/satisfaction", json=survey,
                                                 headers=auth("hdl-1")),
                "admin_survey": await http.put("/api/v1/satisfaction", json=survey,
                                               headers=auth("adm-1")),
            }

    try:
        got = asyncio.run(calls())
    finally:
        context.engine.dispose()
        context.reader.dispose()
    assert got["viewer"].status_code == 403
    assert got["viewer"].headers["content-type"] == "application/problem+json"
    assert "may not record what a response taught" in got["viewer"].json()["detail"]
    assert got["manager"].status_code == 200, got["manager"].text
    assert got["manager"].json()["themes"] == ["repairs_delays"]
    assert got["unknown"].status_code == 422
    assert "use one of repairs_delays" in got["unknown"].json()["detail"]
    assert [v["stage"] for v in got["read"].json()] == [1]
    assert got["handler_change"].status_code == 403
    assert got["manager_change"].status_code == 201
    assert got["manager_change"].json()["landlord"] == "Connexus"
    assert got["handler_survey"].status_code == 403
    assert (got["admin_survey"].status_code, got["admin_survey"].json()["pct_satisfied"]) == (
        200, 75.0)

