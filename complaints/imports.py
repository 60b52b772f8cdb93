"""Importing historic complaints: ``complaints import FILE.csv`` and ``POST /api/v1/imports``.

A landlord that moves to the engine mid-year must still report the whole year: its old
system's complaints come in as a CSV file, one row per complaint (:data:`COLUMNS`, then
any of :data:`OPTIONAL`; the README's "Importing historic complaints" is the reference).
Each row becomes the rows the report reads, built as a live case would have left them
(:mod:`complaints.import_rows`), marked ``imported``; no workflow is started and nothing
is sent to anyone. The file holds no personal data, and nothing of a row's values is
logged or quoted in an error (only line numbers, column names and references).

The rules:

- The file is UTF-8 (a byte-order mark is fine) with a header row; columns may come in
  any order; an unknown or missing column refuses the file, naming it.
- Dates are ``YYYY-MM-DD``, none after today; an empty cell means "not applicable".
- Every problem is reported as ``line N, field F: what; how to fix`` and, if there is
  one, **nothing** is imported: the whole file is one transaction.
- Idempotent on ``reference``: a row imported before and unchanged is left alone; a row
  changed since replaces what the earlier import wrote for that reference (the complaint
  row is updated in place; its responses, extensions, refusals and remedies are written
  again). A reference of a live complaint (one the engine handles) is refused, and so
  are the engine's own forms (``CMP-...``, ``SYN-...``), which lodging hands out.
- Each import that writes anything is recorded in ``import_runs`` (who, through which
  door, when, the file's SHA-256, the counts); ``imported_complaints`` keeps the run and
  the row's SHA-256 per reference. A dry run checks everything and writes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from activities.records import table_of
from complaints.import_csv import (
    COLUMNS,
    MAX_PROBLEMS,
    OPTIONAL,
    RESERVED,
    ImportRefused,
    RowProblem,
    known_policies,
    read_rows,
)
from complaints.import_rows import BuiltRows, ImportRow, build_rows, calendar_for
from complaints.workdays import LONDON, WorkingCalendar
from models.imports import ImportedComplaintRow, ImportRunRow
from models.policy import Nation, Policy
from models.tables import ComplaintRow, ExtensionRow, RefusalRow, RemedyRow, ResponseRow

__all__ = ["COLUMNS", "OPTIONAL", "ImportRefused", "ImportSummary", "RowProblem",
           "import_complaints", "known_policies", "read_rows"]

#: Progress is reported every this many complaints built.
PROGRESS_EVERY = 1000
#: References looked up / deleted per statement.
_CHUNK = 500


@dataclass
class ImportSummary:
    """What an import did (or, dry, would do)."""

    rows: int
    imported: int
    replaced: int
    unchanged: int
    dry_run: bool
    file_sha256: str
    run_id: int | None = None

    def line(self) -> str:
        """The one-line summary the command prints."""
        if self.dry_run:
            return (f"dry run: {self.rows} rows would import {self.imported}, replace "
                    f"{self.replaced} and leave {self.unchanged} unchanged; nothing was "
                    "written")
        run = f" (import run {self.run_id})" if self.run_id is not None else ""
        return (f"{self.rows} rows: {self.imported} imported, {self.replaced} replaced, "
                f"{self.unchanged} unchanged{run}")



# -- writing ------------------------------------------------------------------------------

_COMPLAINTS = table_of(ComplaintRow)
_IMPORTED = table_of(ImportedComplaintRow)
_RUNS = table_of(ImportRunRow)
#: The child tables an import writes, by :class:`BuiltRows` attribute.
_CHILDREN = {"responses": table_of(ResponseRow), "extensions": table_of(ExtensionRow),
             "refusals": table_of(RefusalRow), "remedies": table_of(RemedyRow)}
#: A replaced complaint's row, its SET clause derived from the parameters.
_UPDATE_COMPLAINT = update(_COMPLAINTS).where(
    _COMPLAINTS.c.reference == bindparam("match_reference"))
_UPDATE_IMPORTED = update(_IMPORTED).where(_IMPORTED.c.reference == bindparam("match_reference"))


@dataclass(frozen=True)
class _Stored:
    """A reference already in the database: imported or live, and its row's hash."""

    imported: bool
    sha256: str | None


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


def _stored(db: Connection, references: Sequence[str]) -> dict[str, _Stored]:
    c, i = _COMPLAINTS.c, _IMPORTED.c
    found: dict[str, _Stored] = {}
    for chunk in _chunks(references):
        query = (select(c.reference, c.imported, i.row_sha256)
                 .select_from(_COMPLAINTS.outerjoin(_IMPORTED, i.reference == c.reference))
                 .where(c.reference.in_(chunk)))
        for reference, imported, sha in db.execute(query):
            found[str(reference)] = _Stored(bool(imported), sha)
    return found


def _clashes(rows: Sequence[ImportRow], stored: dict[str, _Stored]) -> list[RowProblem]:
    """References an import may not write: a live complaint's, or the engine's own form."""
    problems = []
    for row in rows:
        found = stored.get(row.reference)
        if found is not None and not found.imported:
            problems.append(RowProblem(row.line, "reference", f"{row.reference} is a complaint "
                                       "the engine handles (lodged, not imported): an import "
                                       "never overwrites it; leave the row out, or give "
                                       "the old system's reference"))
        elif found is None and row.reference.upper().startswith(RESERVED):
            problems.append(RowProblem(row.line, "reference", "CMP- and SYN- references are "
                                       "the engine's own (lodged and synthetic complaints): "
                                       "keep the old system's reference, e.g. prefix it "
                                       "OLD-"))
    return problems[:MAX_PROBLEMS]


def _build(rows: Sequence[ImportRow], now: dt.datetime,
           say: Callable[[str], None]) -> list[BuiltRows]:
    calendars: dict[tuple[str, Nation], WorkingCalendar] = {}
    built = []
    for n, row in enumerate(rows, 1):
        built.append(build_rows(row, calendar_for(row.policy, row.nation, calendars), now))
        if n % PROGRESS_EVERY == 0:
            say(f"built {n:,} of {len(rows):,} complaints")
    return built


def _write(db: Connection, new: Sequence[BuiltRows], changed: Sequence[BuiltRows],
           hashes: dict[str, str], run: dict[str, Any]) -> int:
    """Write the run, the new and replaced complaints and their rows; the run's id."""
    run_id = int(db.execute(insert(_RUNS).values(**run)).inserted_primary_key[0])  # type: ignore[index]
    replaced = [b.complaint["reference"] for b in changed]
    for chunk in _chunks(replaced):
        for table in _CHILDREN.values():
            db.execute(delete(table).where(table.c.reference.in_(chunk)))
    if new:
        db.execute(insert(_COMPLAINTS), [b.complaint for b in new])
        db.execute(insert(_IMPORTED), [{"reference": b.complaint["reference"], "run_id": run_id,
                                        "row_sha256": hashes[b.complaint["reference"]]}
                                       for b in new])
    if changed:
        kept = ("reference", "created_at")
        db.execute(_UPDATE_COMPLAINT, [
            {"match_reference": b.complaint["reference"],
             **{k: v for k, v in b.complaint.items() if k not in kept}} for b in changed])
        for b in changed:
            reference = b.complaint["reference"]
            values = {"run_id": run_id, "row_sha256": hashes[reference]}
            if not db.execute(_UPDATE_IMPORTED, {"match_reference": reference, **values}
                              ).rowcount:
                db.execute(insert(_IMPORTED).values(reference=reference, **values))
    for name, table in _CHILDREN.items():
        rows = [r for b in (*new, *changed) for r in getattr(b, name)]
        if rows:
            db.execute(insert(table), rows)
    return run_id


def import_complaints(engine: Engine, data: bytes | str, *, by: str, via: str,
                      dry_run: bool = False, policies: dict[str, Policy] | None = None,
                      today: dt.date | None = None, now: dt.datetime | None = None,
                      progress: Callable[[str], None] | None = None) -> ImportSummary:
    """Import a file of historic complaints, all of it or nothing.

    Args:
        engine: The complaints database, at the newest schema.
        data: The CSV file (bytes: UTF-8).
        by: Who imports (a staff id, or what the command line was given).
        via: ``cli`` or ``api``.
        dry_run: Check everything and say what would change; write nothing.
        policies: The landlords the file may name (default: :func:`known_policies`).
        today: No date may be after it (default: today in London).
        now: When the import runs (default: now).
        progress: Called with a line of progress now and then (large files).

    Returns:
        What was imported, replaced and left unchanged.

    Raises:
        ImportRefused: The file, or one of its rows, cannot be imported; nothing was.

    """
    report = progress or (lambda _line: None)
    raw = data if isinstance(data, bytes) else data.encode()
    digest = hashlib.sha256(raw).hexdigest()
    rows = read_rows(data, known_policies() if policies is None else policies,
                     today or dt.datetime.now(LONDON).date())
    # Progress only for large files: a small one is done before it would help.
    say = report if len(rows) >= PROGRESS_EVERY else (lambda _line: None)
    say(f"read {len(rows):,} complaints")
    now = now or dt.datetime.now(dt.UTC)
    try:
        with engine.begin() as db:
            stored = _stored(db, [r.reference for r in rows])
            problems = _clashes(rows, stored)
            if problems:
                raise ImportRefused(problems)
            new = [r for r in rows if r.reference not in stored]
            changed = [r for r in rows
                       if r.reference in stored and stored[r.reference].sha256 != r.sha256]
            summary = ImportSummary(rows=len(rows), imported=len(new), replaced=len(changed),
                                    unchanged=len(rows) - len(new) - len(changed),
                                    dry_run=dry_run, file_sha256=digest)
            built_new, built_changed = _build(new, now, say), _build(changed, now, say)
            if dry_run or not (new or changed):
                return summary
            run = {"by": by[:64], "via": via, "started_at": now, "file_sha256": digest,
                   "row_count": summary.rows, "imported": summary.imported,
                   "replaced": summary.replaced, "unchanged": summary.unchanged}
            summary.run_id = _write(db, built_new, built_changed,
                                    {r.reference: r.sha256 for r in rows}, run)
    except IntegrityError:
        raise ImportRefused([RowProblem(None, None, "another import or a lodging wrote the "
                                                    "same references meanwhile: import "
                                                    "the file again")]) from None
    say(f"written: {summary.line()}")
    return summary
