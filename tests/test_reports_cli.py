"""The ``complaints report``, ``evidence`` and ``synthetic`` commands and the four formats."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from complaints.cli import cli
from complaints.db import make_engine
from complaints.policies import load_compliant_policy
from complaints.reports import Report, ReportOptions, build_report, parse_year
from complaints.reports.period import Period

POLICY = load_compliant_policy("connexus")
ARGS = ["--year", "2025/26", "--as-of", "2026-10-31"]


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database holding 600 synthetic complaints of 2025/26, loaded by the command."""
    path = tmp_path_factory.mktemp("cli") / "c.db"
    database = f"sqlite:///{path.as_posix()}"
    result = CliRunner().invoke(cli, ["synthetic", "--year", "2025/26", "--complaints", "600",
                                      "--seed", "9", "--as-of", "2026-10-31",
                                      "--database-url", database])
    assert result.exit_code == 0, result.output
    return database


@pytest.fixture(scope="module")
def expected(url: str) -> Report:
    """The same report built in Python, to compare the command's output with."""
    engine = make_engine(url)
    report = build_report(engine, ReportOptions(parse_year("2025/26"), POLICY,
                                                as_of=dt.date(2026, 10, 31)), evidence=True)
    engine.dispose()
    return report


def run(*args: str) -> tuple[int, str, str]:
    """Run ``complaints`` with ``args``; exit code, stdout, stderr."""
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_synthetic_reports_its_progress_and_refuses_a_second_load(url: str) -> None:
    """The loader prints progress to stderr; loading the same year again needs --replace."""
    code, out, err = run("synthetic", "--year", "2025/26", "--complaints", "600",
                         "--database-url", url)
    assert code == 1
    assert "600 synthetic complaints of 2025/26 are loaded already" in err
    code, out, err = run("synthetic", "--year", "2025/26", "--complaints", "600", "--seed",
                         "9", "--as-of", "2026-10-31", "--replace", "--database-url", url)
    assert code == 0, err
    assert "complaints 600/600" in err
    assert out.startswith("loaded 600 synthetic complaints of 2025/26")


def test_markdown_report_on_stdout(url: str, expected: Report) -> None:
    """The Markdown report carries the TSM table with the figures the SQL worked out."""
    code, out, _ = run("report", *ARGS, "--database-url", url)
    c1, c2 = expected.ch02
    assert code == 0
    assert out.startswith("# Complaints performance report: Connexus, 2025/26")
    assert (f"| CH01 complaints received | {expected.ch01[0].received:,} | "
            f"{expected.ch01[1].received:,} |") in out
    assert (f"| CH02 within the base response timescale (comparison) | "
            f"{c1.pct_within_base:.1f}% ({c1.within_base:,} of {c1.responses:,}) |") in out
    assert (f"| **CH02 reported (strict, within Code timescales)** | "
            f"**{c1.headline_pct:.1f}%** |") in out
    assert c1.headline_pct == c1.pct_within_code
    assert "## Method" in out and "<svg" not in out


def test_html_report_is_one_self_contained_page_with_charts(url: str, tmp_path: Path) -> None:
    """--out x.html writes HTML with four inline SVG charts and nothing loaded from outside."""
    target = tmp_path / "out" / "report.html"
    code, out, err = run("report", *ARGS, "--database-url", url, "--out", str(target))
    page = target.read_text()
    assert code == 0 and out == ""
    assert "wrote" in err and "html" in err
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 4
    # The on-time chart plots the published (strict) CH02 beside the response-only rate.
    assert "Stage 1 (CH02, strict)" in page and "Stage 2 (response only)" in page
    assert re.search(r"""(src|href)=["']?https?:""", page) is None
    assert "<table>" in page and "Tenant Satisfaction Measures" in page


def test_json_report_is_the_report(url: str, expected: Report) -> None:
    """--format json prints the whole report, equal to the one built in Python."""
    code, out, _ = run("report", *ARGS, "--database-url", url, "--format", "json",
                       "--evidence")
    assert code == 0
    assert Report.model_validate(json.loads(out)) == expected


def test_csv_report_has_one_row_per_figure(url: str, expected: Report, tmp_path: Path) -> None:
    """--out x.csv writes CSV rows (section, item, measure, value) for every figure."""
    target = tmp_path / "report.csv"
    code, _, _ = run("report", *ARGS, "--database-url", url, "--out", str(target))
    rows = list(csv.reader(io.StringIO(target.read_text())))
    assert code == 0
    assert rows[0] == ["section", "item", "measure", "value"]
    assert ["ch02", "1", "within_extension", str(expected.ch02[0].within_extension)] in rows
    assert ["report", "", "complaints_logged", "600"] in rows
    assert ["ch01", "2", "received", str(expected.ch01[1].received)] in rows


def test_evidence_pack_command(url: str, expected: Report) -> None:
    """``complaints evidence`` prints the pack: one section per provision."""
    code, out, _ = run("evidence", *ARGS, "--database-url", url, "--exceptions", "3")
    assert expected.evidence is not None
    assert code == 0
    assert out.startswith("# Self-assessment evidence: Connexus, 2025/26")
    assert out.count("\n## ") == len(expected.evidence)
    late = next(i for i in expected.evidence if i.provision == "6.3")
    assert f"| 6.3 | Stage 1 response | {late.cases:,} | {late.met:,} |" in out


def test_homes_and_base_timescale_options(url: str, expected: Report) -> None:
    """--homes changes CH01 per 1,000 homes; --ch02 base makes the base figure the headline."""
    code, out, _ = run("report", *ARGS, "--database-url", url, "--homes", "2000",
                       "--ch02", "base", "--format", "json")
    data = json.loads(out)
    assert code == 0
    assert data["ch01"][0]["per_1000_homes"] == round(expected.ch01[0].received / 2, 2)
    assert data["ch02"][0]["headline_pct"] == expected.ch02[0].pct_within_base


def test_a_from_to_period(url: str) -> None:
    """--from/--to reports any period; its months are the report's months."""
    code, out, _ = run("report", "--from", "2025-10-01", "--to", "2025-12-31",
                       "--as-of", "2026-10-31", "--database-url", url, "--format", "json")
    data = json.loads(out)
    engine = make_engine(url)
    quarter = build_report(engine, ReportOptions(Period(dt.date(2025, 10, 1),
                                                        dt.date(2025, 12, 31)), POLICY,
                                                 as_of=dt.date(2026, 10, 31)))
    engine.dispose()
    assert code == 0
    assert [m["month"] for m in data["monthly"]] == ["2025-10", "2025-11", "2025-12"]
    assert data["ch01"][0]["received"] == quarter.ch01[0].received


@pytest.mark.parametrize(("args", "message"), [
    (["--year", "2025"], "is not a reporting year"),
    (["--year", "2025/27"], "the second year must follow the first"),
    (["--year", "2025/26", "--from", "2025-04-01"], "either --year or --from and --to"),
    (["--from", "2025-04-01"], "give the period"),
    (["--from", "2025-05-01", "--to", "2025-04-01"], "ends (2025-04-01) before it starts"),
])
def test_bad_periods_are_one_line_errors(url: str, args: list[str], message: str) -> None:
    """A malformed or missing period is refused with a one-line message, exit 2."""
    code, _, err = run("report", *args, "--database-url", url)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_an_empty_database_asks_for_data_or_a_policy(tmp_path: Path) -> None:
    """With no complaints and no --policy the command says what to do."""
    code, _, err = run("report", *ARGS, "--database-url",
                       f"sqlite:///{(tmp_path / 'empty.db').as_posix()}")
    assert code == 1
    assert "holds no complaints" in err and "--policy" in err
