"""Reading a file of historic complaints: the CSV format, and every check on it.

The format and its rules are :mod:`complaints.imports`'s (and the README's "Importing
historic complaints"); this module reads a file into checked :class:`ImportRow` values or
refuses it with every problem found (:class:`ImportRefused`), each as ``line N, field F:
what; how to fix``. Nothing of a cell's value is quoted in a problem (only line numbers,
column names and, for duplicates, the reference).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal

from complaints.import_rows import ImportRow, StageDates
from complaints.policies import PolicyError, load_compliant_policy, shipped_policy_names
from models.case import Decision, ExclusionGround
from models.policy import Nation, Policy

__all__ = ["COLUMNS", "MAX_PROBLEMS", "OPTIONAL", "RESERVED", "ImportRefused", "RowProblem",
           "known_policies", "read_rows"]

#: The columns every file has (in any order).
COLUMNS: tuple[str, ...] = (
    "reference", "landlord", "tenure", "received_on", "excluded_on", "exclusion_ground",
    "withdrawn_on", "stage1_acknowledged_on", "stage1_responded_on",
    "stage1_extension_agreed_on", "stage1_extension_working_days",
    "stage1_extension_good_reason", "stage1_decision", "stage2_requested_on",
    "escalation_refused_on", "stage2_acknowledged_on", "stage2_responded_on",
    "stage2_extension_agreed_on", "stage2_extension_working_days",
    "stage2_extension_good_reason", "stage2_decision")
#: The columns a file may add.
OPTIONAL: tuple[str, ...] = ("category", "remedy_amount", "nation")
TENURES = ("lcra", "lcho", "other")
#: Changes when rows are built differently, so that every row is written again.
FORMAT_VERSION = "1"
#: Problems listed at most (the first is the error line).
MAX_PROBLEMS = 100
#: References a file may use: the old system's own, in a form URLs and paths can carry.
REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}\Z")
#: The engine's own references (lodged, synthetic): never imported.
RESERVED = ("CMP-", "SYN-")
CATEGORY_MAX, GOOD_REASON_MAX, EXTENSION_MAX_DAYS = 100, 1000, 100
#: No date before this is taken (a mistyped year; the working calendar needs a bound).
EARLIEST = dt.date(2000, 1, 1)
#: The category of a complaint whose file gives none.
NO_CATEGORY = "not recorded"
_AMOUNT = re.compile(r"[0-9]{1,9}(\.[0-9]{1,2})?\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class RowProblem:
    """One thing wrong with a file: where (line, column) and what to do about it."""

    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = [f"line {self.line}"] if self.line is not None else []
        where += [f"field {self.field}"] if self.field else []
        return f"{', '.join(where)}: {self.message}" if where else self.message


class ImportRefused(Exception):
    """The file cannot be imported; nothing was. ``problems`` lists everything found."""

    def __init__(self, problems: Sequence[RowProblem]) -> None:
        self.problems = list(problems)
        super().__init__(self.line())

    def line(self, more: str = "") -> str:
        """The error in one line: the first problem, and how many more there are."""
        rest = len(self.problems) - 1
        tail = f" ({rest} more problem{'s' if rest != 1 else ''}{more})" if rest > 0 else ""
        return f"{self.problems[0]}; nothing was imported{tail}"


def _landlord_key(name: str) -> str:
    return " ".join(name.split()).casefold()


def known_policies(names: Iterable[str] | None = None) -> dict[str, Policy]:
    """The landlords a file may name, each with its policy.

    Args:
        names: Policy names or files (default: every shipped policy that meets the Code).
            Of two for one landlord, the first (by name when shipped) is used.

    Returns:
        The policy by landlord (compared ignoring case and repeated spaces).

    Raises:
        PolicyError: A policy named explicitly cannot be loaded or breaks the Code.

    """
    found: dict[str, Policy] = {}
    for name in (names if names is not None else shipped_policy_names()):
        try:
            policy = load_compliant_policy(name)
        except PolicyError:
            if names is not None:
                raise
            continue
        found.setdefault(_landlord_key(policy.landlord), policy)
    return found


class _Cells:
    """One record's cells by column, and the problems found reading them."""

    def __init__(self, line: int, cells: dict[str, str], today: dt.date,
                 problems: list[RowProblem]) -> None:
        self.line, self.cells, self.today, self.problems = line, cells, today, problems
        self.bad: set[str] = set()

    def fail(self, name: str, message: str) -> None:
        """Record a problem with column ``name``."""
        self.bad.add(name)
        self.problems.append(RowProblem(self.line, name, message))

    def text(self, name: str) -> str | None:
        """The cell, None when empty (or the column is absent)."""
        return self.cells.get(name) or None

    def date(self, name: str) -> dt.date | None:
        """A ``YYYY-MM-DD`` date from 2000 to today."""
        value = self.text(name)
        if value is None:
            return None
        try:
            if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
                raise ValueError(value)
            day = dt.date.fromisoformat(value)
        except ValueError:
            self.fail(name, "not a date: write it as YYYY-MM-DD (e.g. 2025-04-01), or "
                            "leave it empty when it does not apply")
            return None
        if day < EARLIEST:
            self.fail(name, f"is before {EARLIEST.year}: check the year")
            return None
        if day > self.today:
            self.fail(name, "is after today: a historic complaint's dates have all passed; "
                            "correct the date")
            return None
        return day

    def choice(self, name: str, allowed: Sequence[str]) -> str | None:
        """One of ``allowed`` (any case), lower-cased."""
        value = self.text(name)
        if value is None:
            return None
        if value.lower() not in allowed:
            self.fail(name, f"must be one of {', '.join(allowed)} (or empty)")
            return None
        return value.lower()

    def count(self, name: str, top: int) -> int | None:
        """A whole number of working days from 1 to ``top``."""
        value = self.text(name)
        if value is None:
            return None
        if not re.fullmatch(r"[0-9]{1,4}", value) or not 1 <= int(value) <= top:
            self.fail(name, f"must be a whole number of working days from 1 to {top}")
            return None
        return int(value)

    def free_text(self, name: str, limit: int) -> str | None:
        """One line of at most ``limit`` characters."""
        value = self.text(name)
        if value is not None and (len(value) > limit or _CONTROL.search(value)):
            self.fail(name, f"must be one line of at most {limit} characters")
            return None
        return value

    def pence(self, name: str) -> int | None:
        """An amount in pounds, as pence (None for none or zero)."""
        value = self.text(name)
        if value is None:
            return None
        plain = value.removeprefix("£").replace(",", "")
        if not _AMOUNT.match(plain):
            self.fail(name, "must be an amount in pounds, e.g. 150 or 150.00 (or empty)")
            return None
        return int(Decimal(plain) * 100) or None


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportRefused([RowProblem(None, None, "the file is not UTF-8 text: save it "
                                                    "as CSV UTF-8 and import it again")]) \
            from None


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """Each record with the line it starts on (blank lines skipped)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    while True:
        line = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error:
            raise ImportRefused([RowProblem(line, None, "the CSV cannot be read here (a "
                                                        "quote not closed?): quote cells "
                                                        "holding commas or quotes, and "
                                                        "double quotes inside them")]) \
                from None
        if any(cell.strip() for cell in record):
            yield line, record


def _header(record: list[str]) -> list[str]:
    names = [cell.strip().lower() for cell in record]
    while names and not names[-1]:  # spreadsheets may save empty trailing columns
        names.pop()
    problems = []
    unknown = [n for n in names if n not in COLUMNS and n not in OPTIONAL]
    if unknown:
        problems.append(RowProblem(1, None, f"unknown columns {', '.join(unknown)}: remove "
                                            "or rename them; the columns are "
                                            f"{', '.join(COLUMNS + OPTIONAL)}"))
    missing = [n for n in COLUMNS if n not in names]
    if missing:
        problems.append(RowProblem(1, None, f"missing columns {', '.join(missing)}: add "
                                            "them to the header (cells may be empty)"))
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        problems.append(RowProblem(1, None, f"columns given twice: {', '.join(twice)}: keep "
                                            "one of each"))
    if problems:
        raise ImportRefused(problems)
    return names


#: ``(later, earlier)``: a date that cannot come before another of the same row.
ORDER: tuple[tuple[str, str], ...] = (
    ("excluded_on", "received_on"), ("withdrawn_on", "received_on"),
    ("stage1_acknowledged_on", "received_on"),
    ("stage1_extension_agreed_on", "stage1_acknowledged_on"),
    ("stage1_responded_on", "stage1_acknowledged_on"),
    ("stage1_responded_on", "stage1_extension_agreed_on"),
    ("stage2_requested_on", "stage1_responded_on"),
    ("escalation_refused_on", "stage2_requested_on"),
    ("stage2_acknowledged_on", "stage2_requested_on"),
    ("stage2_extension_agreed_on", "stage2_acknowledged_on"),
    ("stage2_responded_on", "stage2_acknowledged_on"),
    ("stage2_responded_on", "stage2_extension_agreed_on"),
)
#: ``(column, needs)``: a column that means nothing without another.
NEEDS: tuple[tuple[str, str], ...] = (
    ("stage1_extension_agreed_on", "stage1_acknowledged_on"),
    ("stage1_responded_on", "stage1_acknowledged_on"),
    ("stage2_requested_on", "stage1_responded_on"),
    ("escalation_refused_on", "stage2_requested_on"),
    ("stage2_acknowledged_on", "stage2_requested_on"),
    ("stage2_extension_agreed_on", "stage2_acknowledged_on"),
    ("stage2_responded_on", "stage2_acknowledged_on"),
    ("remedy_amount", "stage1_responded_on"),
)
_DATES = tuple(c for c in COLUMNS if c.endswith("_on"))
_STAGE_COLUMNS = tuple(c for c in COLUMNS if c.startswith(("stage1_", "stage2_")))
_AFTER_REFUSAL = tuple(c for c in COLUMNS if c.startswith("stage2_") and c != "stage2_requested_on")


def _stage(cells: _Cells, n: int, dates: dict[str, dt.date | None]) -> StageDates:
    prefix = f"stage{n}_"
    days = cells.count(f"{prefix}extension_working_days", EXTENSION_MAX_DAYS)
    decision = cells.choice(f"{prefix}decision", [d.value for d in Decision])
    agreed, responded = dates[f"{prefix}extension_agreed_on"], dates[f"{prefix}responded_on"]
    good = cells.free_text(f"{prefix}extension_good_reason", GOOD_REASON_MAX)
    pairs = ((f"{prefix}extension_agreed_on", f"{prefix}extension_working_days"),
             (f"{prefix}extension_working_days", f"{prefix}extension_agreed_on"))
    for given, wanted in pairs:
        if cells.text(given) and not cells.text(wanted) and wanted not in cells.bad:
            cells.fail(wanted, f"required with {given}: an extension has the day it was "
                               "agreed and its length in working days")
    if good and not cells.text(f"{prefix}extension_agreed_on"):
        cells.fail(f"{prefix}extension_good_reason",
                   f"given without an extension: fill in {prefix}extension_agreed_on and "
                   f"{prefix}extension_working_days, or leave it empty")
    if cells.text(f"{prefix}responded_on") and not cells.text(f"{prefix}decision"):
        cells.fail(f"{prefix}decision", f"required with {prefix}responded_on: upheld, "
                                        "partly_upheld or not_upheld")
    if cells.text(f"{prefix}decision") and not cells.text(f"{prefix}responded_on"):
        cells.fail(f"{prefix}decision", f"given without {prefix}responded_on: a decision "
                                        "comes with the response; add its date")
    return StageDates(acknowledged_on=dates[f"{prefix}acknowledged_on"],
                      responded_on=responded, extension_agreed_on=agreed,
                      extension_working_days=days, extension_good_reason=good,
                      decision=Decision(decision) if decision else None)


def _course(cells: _Cells, dates: dict[str, dt.date | None]) -> None:
    """The rules between columns: what needs what, what excludes what, dates in order."""
    given = {name for name in COLUMNS + OPTIONAL if cells.text(name)}
    for column, needs in NEEDS:
        if column in given and needs not in given:
            cells.fail(column, f"needs {needs}: fill it in, or leave {column} empty")
    excluded = "excluded_on" in given
    if excluded:
        for column in ("withdrawn_on", *_STAGE_COLUMNS, "escalation_refused_on",
                       "remedy_amount"):
            if column in given:
                cells.fail(column, "an excluded complaint goes no further: leave it empty, "
                                   "or clear excluded_on")
    if "escalation_refused_on" in given:
        for column in _AFTER_REFUSAL:
            if column in given:
                cells.fail(column, "the escalation was refused (escalation_refused_on): "
                                   "leave it empty, or clear escalation_refused_on")
    if "withdrawn_on" in given and not excluded:
        for column in ("stage2_responded_on", "escalation_refused_on"):
            if column in given:
                cells.fail("withdrawn_on", f"a complaint cannot be withdrawn once finished "
                                           f"({column}): clear one of the two")
    for later, earlier in ORDER:
        late, early = dates.get(later), dates.get(earlier)
        if late is not None and early is not None and late < early:
            cells.fail(later, f"is before {earlier}: a complaint's dates follow its course; "
                              "correct whichever is wrong")
    withdrawn = dates.get("withdrawn_on")
    if withdrawn is not None and "withdrawn_on" not in cells.bad:
        after = [name for name in _DATES
                 if (day := dates.get(name)) is not None and day > withdrawn]
        if after:
            cells.fail("withdrawn_on", f"is before {after[0]}: nothing happens to a "
                                       "complaint after it is withdrawn; correct the date")


def _ground(cells: _Cells, excluded: bool, refused: bool) -> str | None:
    ground = cells.text("exclusion_ground")
    if ground is None:
        if excluded:
            cells.fail("exclusion_ground", "required with excluded_on: one of "
                       + ", ".join(g.value for g in ExclusionGround
                                   if g is not ExclusionGround.OUTSIDE_ESCALATION_WINDOW))
        return None
    allowed = [g.value for g in ExclusionGround
               if refused or g is not ExclusionGround.OUTSIDE_ESCALATION_WINDOW]
    if not excluded and not refused:
        cells.fail("exclusion_ground", "given without excluded_on or escalation_refused_on: "
                                       "add the date of the refusal, or leave it empty")
    elif ground.lower() not in allowed:
        cells.fail("exclusion_ground", f"must be one of {', '.join(allowed)}")
    else:
        return ground.lower()
    return None


def _row(cells: _Cells, policies: dict[str, Policy]) -> ImportRow | None:
    """One record read and checked; None when anything is wrong (``cells.problems``)."""
    before = len(cells.problems)
    reference = cells.text("reference")
    if reference is None:
        cells.fail("reference", "required: the complaint's reference in the old system")
    elif not REFERENCE.match(reference):
        cells.fail("reference", "must be 1-32 letters, digits, dots, hyphens or underscores, "
                                "starting with a letter or digit")
    landlord = cells.text("landlord")
    policy = policies.get(_landlord_key(landlord or ""))
    if landlord is None:
        cells.fail("landlord", "required: the landlord's name, as its policy gives it")
    elif policy is None:
        names = ", ".join(sorted(p.landlord for p in policies.values())) or "none"
        cells.fail("landlord", f"no policy is known for this landlord: use one of {names}, "
                               "or add the landlord's policy first")
    tenure = cells.choice("tenure", TENURES)
    nation_text = cells.choice("nation", [n.value for n in Nation])
    category = cells.free_text("category", CATEGORY_MAX)
    dates = {name: cells.date(name) for name in _DATES}
    if cells.text("received_on") is None:
        cells.fail("received_on", "required: the day the complaint was received")
    stage1, stage2 = _stage(cells, 1, dates), _stage(cells, 2, dates)
    ground = _ground(cells, bool(cells.text("excluded_on")),
                     bool(cells.text("escalation_refused_on")))
    remedy = cells.pence("remedy_amount")
    _course(cells, dates)
    if len(cells.problems) > before or policy is None or dates["received_on"] is None \
            or reference is None:
        return None
    nation = Nation(nation_text) if nation_text else policy.nation
    normalised = {"format": FORMAT_VERSION, "policy": policy.name, "nation": nation.value,
                  "tenure": tenure, "category": category or NO_CATEGORY,
                  "ground": ground, "remedy": remedy,
                  **{k: v.isoformat() if v else None for k, v in dates.items()},
                  **{f"stage{n}_{k}": str(v) if v is not None else None
                     for n, s in ((1, stage1), (2, stage2))
                     for k, v in (("days", s.extension_working_days),
                                  ("good", s.extension_good_reason),
                                  ("decision", s.decision and s.decision.value))}}
    digest = hashlib.sha256(json.dumps(normalised, sort_keys=True).encode()).hexdigest()
    return ImportRow(
        line=cells.line, reference=reference, policy=policy, nation=nation, tenure=tenure,
        category=category or NO_CATEGORY, received_on=dates["received_on"],
        excluded_on=dates["excluded_on"], exclusion_ground=ground,
        withdrawn_on=dates["withdrawn_on"], stage1=stage1,
        stage2_requested_on=dates["stage2_requested_on"],
        escalation_refused_on=dates["escalation_refused_on"], stage2=stage2,
        remedy_pence=remedy, sha256=digest)


def read_rows(data: bytes | str, policies: dict[str, Policy], today: dt.date) -> list[ImportRow]:
    """Read and check a whole file: every row, or every problem found.

    Args:
        data: The file (bytes: UTF-8, a byte-order mark allowed).
        policies: The landlords the file may name (:func:`known_policies`).
        today: No date may be after it.

    Returns:
        The rows, in file order.

    Raises:
        ImportRefused: Anything is wrong (up to :data:`MAX_PROBLEMS` problems listed).

    """
    records = _records(_decode(data))
    first = next(records, None)
    if first is None:
        raise ImportRefused([RowProblem(None, None, "the file is empty: give a header row "
                                                    "and one row per complaint")])
    names = _header(first[1])
    problems: list[RowProblem] = []
    rows: list[ImportRow] = []
    seen: dict[str, int] = {}
    for line, record in records:
        if len(problems) >= MAX_PROBLEMS:
            break
        if len(record) > len(names) and not any(c.strip() for c in record[len(names):]):
            record = record[:len(names)]
        if len(record) != len(names):
            problems.append(RowProblem(line, None, f"{len(record)} cells where the header "
                                                   f"has {len(names)}: quote cells holding "
                                                   "commas, and give every column"))
            continue
        cells = _Cells(line, {n: c.strip() for n, c in zip(names, record, strict=True)},
                       today, problems)
        row = _row(cells, policies)
        reference = cells.text("reference")
        if reference is not None and reference in seen:
            cells.fail("reference", f"already on line {seen[reference]}: one row per "
                                    "complaint; merge the two")
            continue
        if reference is not None:
            seen[reference] = line
        if row is not None:
            rows.append(row)
    if not problems and not rows:
        problems.append(RowProblem(None, None, "the file has a header but no complaints: "
                                               "add one row per complaint"))
    if problems:
        raise ImportRefused(problems[:MAX_PROBLEMS])
    return rows
