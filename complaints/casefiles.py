"""Case files: documents on a case, the unacceptable-behaviour register and triage.

Three records a landlord keeps beside the workflow, in the complaints database only (no
workflow history, no search attributes; the case's workflow never reads them):

- **Documents** (Code 5.12: inbound letters, emails, reports, photos, surveys). The file
  is stored under the data folder as ``documents/<reference>/<sha256>.<ext>``, ``0600``
  in ``0700`` folders, at most :data:`MAX_DOCUMENT_BYTES`, and only the types of
  :data:`FILE_TYPES`, recognised by their content as well as their extension. The same
  bytes are attached to a case once. A copy is handed out only after its SHA-256 is
  checked against the one recorded.
- **Restrictions on contact** (Code 3.6 and the Ombudsman's guidance on unacceptable
  behaviour): a restriction limits how a resident may contact the landlord, never the
  complaint, which carries on under the Code. Each has its reason, evidence, why it is
  proportionate, the contact route left open and a review date in the future at most
  :data:`REVIEW_MAX_MONTHS` months ahead; every addition and review is appended to its
  history (who, when, what).
- **Triage** (Code 5.10, 6.1): complexity, vulnerability and risk; every triage is kept
  and the latest recorded is the case's current one (:func:`current_triage`).

Every function raises :class:`CaseFileError` with one line to show staff. Log lines carry
the case reference and record ids only: never names, file names, notes or reasons.

The case files are split by concern: :mod:`complaints.casefile_checks` (limits, choices,
errors and input checks), :mod:`complaints.casefile_filetypes` (the types accepted, by
content) and :mod:`complaints.casefile_documents` (storing and reading documents); this
module holds the restrictions and triage, and re-exports every public name of the others.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from complaints.casefile_checks import (
    COMPLEXITY,
    DIRECTIONS,
    DOCUMENT_KINDS,
    MAX_DOCUMENT_BYTES,
    MAX_FILE_NAME,
    MAX_TEXT,
    REVIEW_MAX_MONTHS,
    REVIEW_OUTCOMES,
    RISK,
    VULNERABILITY,
    CaseFileError,
    DocumentDamaged,
    _choice,
    add_months,
    check_reference,
    check_staff_id,
    check_text,
    log,
    london_date,
    london_today,
    require_case,
)
from complaints.casefile_documents import (
    Attached,
    attach_document,
    document_id_for,
    document_path,
    documents_dir,
    export_document,
    find_document,
    list_documents,
    read_attachment,
    read_document,
    write_copy,
)
from complaints.casefile_filetypes import (
    FILE_TYPES,
    FileType,
    allowed_types_text,
    sanitise_file_name,
    sniff,
)
from models.tables import (
    RestrictionHistoryRow,
    RestrictionRow,
    TriageRow,
    utcnow,
)

__all__ = [
    "COMPLEXITY",
    "DIRECTIONS",
    "DOCUMENT_KINDS",
    "FILE_TYPES",
    "MAX_DOCUMENT_BYTES",
    "MAX_FILE_NAME",
    "MAX_TEXT",
    "REVIEW_MAX_MONTHS",
    "REVIEW_OUTCOMES",
    "RISK",
    "VULNERABILITY",
    "Attached",
    "CaseFileError",
    "DocumentDamaged",
    "FileType",
    "add_months",
    "add_restriction",
    "allowed_types_text",
    "attach_document",
    "check_reference",
    "current_triage",
    "document_id_for",
    "document_path",
    "documents_dir",
    "export_document",
    "find_document",
    "list_documents",
    "list_restrictions",
    "london_date",
    "london_today",
    "read_attachment",
    "read_document",
    "record_triage",
    "require_case",
    "restriction_history",
    "review_restriction",
    "sanitise_file_name",
    "sniff",
    "triage_history",
    "write_copy",
]


def _review_date(day: dt.date | None, option: str, today: dt.date,
                 needed: str = "") -> dt.date:
    """A review date: after today, at most :data:`REVIEW_MAX_MONTHS` months ahead."""
    if day is None:
        raise CaseFileError(f"{option} is needed{needed}: the date the restriction is "
                            f"reviewed next, at most {REVIEW_MAX_MONTHS} months ahead")
    latest = add_months(today, REVIEW_MAX_MONTHS)
    if day <= today:
        raise CaseFileError(f"{option} {day.isoformat()} is not in the future: give a date "
                            f"after {today.isoformat()} (London) and by {latest.isoformat()}")
    if day > latest:
        raise CaseFileError(f"{option} {day.isoformat()} is more than {REVIEW_MAX_MONTHS} "
                            f"months ahead: give a date by {latest.isoformat()} (a restriction "
                            f"is reviewed at least every {REVIEW_MAX_MONTHS} months)")
    return day



# --- restrictions on contact (3.6) -------------------------------------------------------


def _snapshot(row: RestrictionRow) -> str:
    fields = ("id", "reference", "status", "reason", "evidence", "proportionality",
              "contact_route", "review_on", "added_by")
    return json.dumps({f: _jsonable(getattr(row, f)) for f in fields}, ensure_ascii=False)


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date | dt.datetime) else value


def add_restriction(session: Session, reference: str, *, reason: str, evidence: str,
                    proportionality: str, contact_route: str, review_on: dt.date | None,
                    by: str, today: dt.date | None = None) -> RestrictionRow:
    """Record a restriction on how a resident may contact the landlord (Code 3.6).

    It restricts contact only: the complaint carries on under the Code.

    Args:
        session: A session on the complaints database.
        reference: The case.
        reason: The behaviour that led to it.
        evidence: What it rests on (dates, records, who saw it).
        proportionality: Why it is proportionate, and what was considered first
            (adjustments, vulnerability, 5.10).
        contact_route: How the resident may still contact the landlord.
        review_on: The review date: after today, at most :data:`REVIEW_MAX_MONTHS` months.
        by: The staff id deciding it.
        today: Today's London date (default: now).

    Returns:
        The restriction, its history started.

    Raises:
        CaseFileError: A field missing, blank or over its limit, a bad date, an unknown case.

    """
    today = today or london_today()
    by = check_staff_id(by)
    texts = {option: check_text(value, option) for option, value in (
        ("--reason", reason), ("--evidence", evidence),
        ("--proportionality", proportionality), ("--contact-route", contact_route))}
    review_on = _review_date(review_on, "--review-on", today)
    require_case(session, reference)
    now = utcnow()
    row = RestrictionRow(reference=reference, reason=str(texts["--reason"]),
                         evidence=str(texts["--evidence"]),
                         proportionality=str(texts["--proportionality"]),
                         contact_route=str(texts["--contact-route"]), review_on=review_on,
                         added_by=by, added_at=now, updated_at=now)
    session.add(row)
    session.flush()  # its id, for the history
    assert row.id is not None
    session.add(RestrictionHistoryRow(restriction_id=row.id, reference=reference,
                                      action="added", next_review_on=review_on, by=by, at=now,
                                      snapshot_json=_snapshot(row)))
    session.commit()
    log.bind(reference=reference).info("restriction_added", restriction_id=row.id)
    return row


def review_restriction(session: Session, reference: str, restriction_id: int, *,
                       outcome: str, note: str, next_review: dt.date | None, by: str,
                       today: dt.date | None = None) -> RestrictionRow:
    """Record a review of a restriction: ``continue``, ``lift`` or ``change`` it.

    ``continue`` and ``change`` need the next review date (after today, at most
    :data:`REVIEW_MAX_MONTHS` months ahead); ``lift`` ends the restriction and takes none.
    ``change`` records in its note what changed.

    Raises:
        CaseFileError: Bad input, an unknown case or restriction, one lifted already.

    """
    today = today or london_today()
    by = check_staff_id(by)
    _choice(outcome, REVIEW_OUTCOMES, "--outcome")
    text = str(check_text(note, "--note"))
    if outcome == "lift":
        if next_review is not None:
            raise CaseFileError("--next-review: not with --outcome lift (a lifted restriction "
                                "has no review)")
    else:
        next_review = _review_date(next_review, "--next-review", today,
                                   f" with --outcome {outcome}")
    require_case(session, reference)
    row = session.get(RestrictionRow, restriction_id)
    if row is None or row.reference != reference:
        raise CaseFileError(f"no restriction {restriction_id} on {reference}: "
                            "`complaints restriction list` lists them")
    if row.status != "active":
        when = london_date(row.lifted_at).isoformat() if row.lifted_at else "before"
        raise CaseFileError(f"restriction {restriction_id} on {reference} was lifted on "
                            f"{when}: add a new one if contact must be restricted again")
    now = utcnow()
    row.updated_at = now
    if outcome == "lift":
        row.status, row.review_on, row.lifted_at = "lifted", None, now
    else:
        row.review_on = next_review
    session.add(row)
    session.add(RestrictionHistoryRow(restriction_id=restriction_id, reference=reference,
                                      action="reviewed", outcome=outcome, note=text,
                                      next_review_on=next_review, by=by, at=now,
                                      snapshot_json=_snapshot(row)))
    session.commit()
    log.bind(reference=reference).info("restriction_reviewed", restriction_id=restriction_id)
    return row


def list_restrictions(session: Session, *, due: bool = False,
                      today: dt.date | None = None) -> list[RestrictionRow]:
    """The register: active restrictions by review date, then lifted ones.

    With ``due``, only the active ones whose review date is on or before ``today``
    (default: today in London).
    """
    query = select(RestrictionRow)
    if due:
        query = query.where(RestrictionRow.status == "active",
                            col(RestrictionRow.review_on) <= (today or london_today()))
    rows = list(session.exec(query.order_by(col(RestrictionRow.review_on),
                                            col(RestrictionRow.id))))
    return sorted(rows, key=lambda r: r.status != "active")  # stable: review order kept


def restriction_history(session: Session,
                        ids: Iterable[int]) -> dict[int, list[RestrictionHistoryRow]]:
    """The history of each restriction, oldest first."""
    wanted = list(ids)
    found: dict[int, list[RestrictionHistoryRow]] = {i: [] for i in wanted}
    for chunk in _chunks(wanted):
        for entry in session.exec(select(RestrictionHistoryRow).where(
                col(RestrictionHistoryRow.restriction_id).in_(chunk))
                .order_by(col(RestrictionHistoryRow.id))):
            found[entry.restriction_id].append(entry)
    return found


# --- triage (5.10, 6.1) ------------------------------------------------------------------


def record_triage(session: Session, reference: str, *, complexity: str, vulnerability: str,
                  risk: str, note: str | None, by: str) -> TriageRow:
    """Record a triage of a case; it becomes the case's current triage.

    Raises:
        CaseFileError: Bad input or an unknown case.

    """
    by = check_staff_id(by)
    _choice(complexity, COMPLEXITY, "--complexity")
    _choice(vulnerability, VULNERABILITY, "--vulnerability")
    _choice(risk, RISK, "--risk")
    text = check_text(note, "--note", required=False)
    require_case(session, reference)
    row = TriageRow(reference=reference, complexity=complexity, vulnerability=vulnerability,
                    risk=risk, note=text, by=by)
    session.add(row)
    session.commit()
    log.bind(reference=reference).info("triage_recorded", triage_id=row.id)
    return row


def triage_history(session: Session, reference: str) -> list[TriageRow]:
    """Every triage of a case, the current (latest recorded) first."""
    require_case(session, reference)
    return list(session.exec(select(TriageRow).where(TriageRow.reference == reference)
                             .order_by(col(TriageRow.id).desc())))


def current_triage(session: Session, references: Iterable[str]) -> dict[str, TriageRow]:
    """The current triage of each case that has one: the latest recorded (highest id).

    For the case list: one query per 500 references; cases never triaged are left out.

    Args:
        session: A session on the complaints database.
        references: The cases.

    Returns:
        Reference -> its current triage row.

    """
    found: dict[str, TriageRow] = {}
    for chunk in _chunks(list(dict.fromkeys(references))):
        latest = (select(func.max(TriageRow.id))
                  .where(col(TriageRow.reference).in_(chunk))
                  .group_by(col(TriageRow.reference)))
        for row in session.exec(select(TriageRow).where(col(TriageRow.id).in_(latest))):
            found[row.reference] = row
    return found


def _chunks(items: list[Any], size: int = 500) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
