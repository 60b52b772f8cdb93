"""What the case files check staff input against: limits, choices, dates and errors.

The limits and choices of :mod:`complaints.casefiles` (document size and kinds, triage
levels, review outcomes...), the one-line :class:`CaseFileError`, London dates, and the
checks every case-file function runs on what staff typed (staff id, free text, the case
reference and that the case is in this database). :mod:`complaints.casefiles`
re-exports every public name.
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
import re
import unicodedata

import structlog
from pydantic import BaseModel
from sqlmodel import Session

from complaints.workdays import LONDON
from models.limits import LIMITS, first_problem, hostile_character
from models.tables import ComplaintRow

# Through the standard library, not structlog's default: the plain CLI configures no
# logging, and structlog unconfigured prints to stdout (into `--json` output). Under the
# worker and `complaints dev` (configure_logging) these are structured lines like the rest.
# Every case-file module logs under the one name ``complaints.casefiles``.
log = structlog.wrap_logger(logging.getLogger("complaints.casefiles"))

#: The largest document accepted: 25 MiB, above a phone photo or a scanned survey report,
#: below what a database backup and a quick hash check should carry per file.
MAX_DOCUMENT_BYTES = 25 * 1024 * 1024
#: Notes, reasons, evidence, proportionality and contact routes: the ``text`` limit of
#: ``models.limits`` (about four pages).
MAX_TEXT = LIMITS["text"].value
#: A document's original file name as kept (sanitised): the ``label`` limit.
MAX_FILE_NAME = LIMITS["label"].value
#: A restriction is reviewed at least this often: its review date is at most this many
#: calendar months ahead (our choice; the Code asks for restrictions to be reviewed,
#: the Ombudsman's guidance for regular reviews, neither names a period).
REVIEW_MAX_MONTHS = 6

DOCUMENT_KINDS = ("letter", "email", "report", "photo", "survey", "other")
DIRECTIONS = ("inbound", "outbound")
COMPLEXITY = ("low", "medium", "high")
VULNERABILITY = ("none", "some", "high")
RISK = ("low", "medium", "high")
REVIEW_OUTCOMES = ("continue", "lift", "change")

#: Case references as they may appear in a path (``CMP-YYYY-NNNNNN``, ``SYN-...``).
_REFERENCE = re.compile(r"[A-Z][A-Z0-9]{1,9}-\d{4}-\d{6}\Z")


class CaseFileError(ValueError):
    """A refusal with one line to show staff (what is wrong, how to put it right)."""


class DocumentDamaged(CaseFileError):
    """A stored document is missing, or its bytes no longer match the recorded SHA-256."""


def london_today() -> dt.date:
    """Today's date in Europe/London."""
    return dt.datetime.now(LONDON).date()


def london_date(instant: dt.datetime) -> dt.date:
    """The Europe/London date of an aware instant."""
    return instant.astimezone(LONDON).date()


def add_months(start: dt.date, months: int) -> dt.date:
    """``start`` plus ``months`` calendar months, clamped to the end of a shorter month."""
    year, month = divmod(start.year * 12 + start.month - 1 + months, 12)
    return dt.date(year, month + 1, min(start.day, calendar.monthrange(year, month + 1)[1]))


# --- checks ------------------------------------------------------------------------------


class _StaffId(BaseModel):
    """One staff id, checked by ``models.limits`` as every staff id field is."""

    by: str


def check_staff_id(value: str, option: str = "--by") -> str:
    """``value`` as a staff id in NFKC form, or a :class:`CaseFileError` naming ``option``.

    Refused as in staff actions (``models.limits``): invisible, bidirectional and control
    characters, anything but visible characters and plain spaces, over the label limit.
    """
    normal = unicodedata.normalize("NFKC", value).strip()
    if not normal:
        raise CaseFileError(f"{option}: give your staff id")
    problem = first_problem(_StaffId(by=normal))
    if problem is not None:
        raise CaseFileError(f"{option}: {problem.removeprefix('by: ')}")
    return normal


def check_text(value: str | None, option: str, *, required: bool = True,
               limit: int = MAX_TEXT) -> str | None:
    """``value`` stripped, or a :class:`CaseFileError` naming ``option`` (never the text).

    Args:
        value: The text as given.
        option: The option it came from, for the message.
        required: Whether a missing or blank value is refused.
        limit: The most characters allowed.

    Returns:
        The text without surrounding white space; None when not required and not given.

    """
    text = (value or "").strip()
    if not text:
        if required:
            raise CaseFileError(f"{option}: required, and may not be blank")
        return None
    if len(text) > limit:
        raise CaseFileError(f"{option}: {len(text):,} characters, at most {limit:,}")
    bad = hostile_character(text)
    if bad is not None:
        raise CaseFileError(f"{option}: contains the character {bad}; type it again rather "
                            "than pasting it")
    return text


def check_reference(reference: str) -> str:
    """``reference`` if it has a case reference's form (it names a folder), else refuse."""
    if not _REFERENCE.match(reference):
        raise CaseFileError(f"{reference!r} is not a case reference: write it as "
                            "CMP-YYYY-NNNNNN")
    return reference


def require_case(session: Session, reference: str) -> ComplaintRow:
    """The complaint ``reference``, or a :class:`CaseFileError` when this database lacks it."""
    check_reference(reference)
    row = session.get(ComplaintRow, reference)
    if row is None:
        raise CaseFileError(
            f"no complaint {reference} in this database: check the reference with "
            "`complaints list`, and DATA_DIR / DATABASE_URL (a case just lodged appears "
            "once the worker has recorded it)")
    return row



def _choice(value: str, allowed: tuple[str, ...], option: str) -> str:
    if value not in allowed:
        raise CaseFileError(f"{option}: {value!r} is not one of {', '.join(allowed)}")
    return value

