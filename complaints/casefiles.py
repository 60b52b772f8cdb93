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
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import hashlib
import io
import json
import logging
import os
import re
import secrets
import stat
import unicodedata
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from complaints.files import create_private_file, make_private_dir, tighten
from complaints.workdays import LONDON
from models.limits import HOSTILE, JOINERS, LIMITS, first_problem, hostile_character
from models.tables import (
    ComplaintRow,
    DocumentRow,
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

# Through the standard library, not structlog's default: the plain CLI configures no
# logging, and structlog unconfigured prints to stdout (into `--json` output). Under the
# worker and `complaints dev` (configure_logging) these are structured lines like the rest.
log = structlog.wrap_logger(logging.getLogger(__name__))

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
#: A document id: the first 16 hex digits of its SHA-256.
_DOCUMENT_ID_LENGTH = 16
_HEX = re.compile(r"[0-9a-f]+\Z")


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


def _not_in_future(day: dt.date | None, option: str, today: dt.date) -> None:
    if day is not None and day > today:
        raise CaseFileError(f"{option} {day.isoformat()} is in the future (today is "
                            f"{today.isoformat()}, London)")


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


def _choice(value: str, allowed: tuple[str, ...], option: str) -> str:
    if value not in allowed:
        raise CaseFileError(f"{option}: {value!r} is not one of {', '.join(allowed)}")
    return value


# --- documents: what is accepted ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FileType:
    """A document type accepted on a case file.

    Attributes:
        name: The name staff see (``pdf``, ``jpeg``...).
        media_type: The IANA media type recorded.
        extension: The extension it is stored with.
        extensions: The extensions accepted for it (lower case, with the dot).
    """

    name: str
    media_type: str
    extension: str
    extensions: tuple[str, ...]


#: Every type accepted, by name: the content must be of the type its extension names.
FILE_TYPES: dict[str, FileType] = {t.name: t for t in (
    FileType("pdf", "application/pdf", "pdf", (".pdf",)),
    FileType("png", "image/png", "png", (".png",)),
    FileType("jpeg", "image/jpeg", "jpg", (".jpg", ".jpeg")),
    FileType("gif", "image/gif", "gif", (".gif",)),
    FileType("webp", "image/webp", "webp", (".webp",)),
    FileType("txt", "text/plain", "txt", (".txt",)),
    FileType("eml", "message/rfc822", "eml", (".eml",)),
    FileType("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
             "docx", (".docx",)),
    FileType("odt", "application/vnd.oasis.opendocument.text", "odt", (".odt",)),
    FileType("csv", "text/csv", "csv", (".csv",)),
)}
_BY_EXTENSION = {ext: t for t in FILE_TYPES.values() for ext in t.extensions}

#: Executables, by their first bytes: refused whatever they are called.
_EXECUTABLES: tuple[tuple[bytes, str], ...] = (
    (b"\x7fELF", "ELF"), (b"\xfe\xed\xfa\xce", "Mach-O"),
    (b"\xfe\xed\xfa\xcf", "Mach-O"), (b"\xce\xfa\xed\xfe", "Mach-O"),
    (b"\xcf\xfa\xed\xfe", "Mach-O"), (b"\xca\xfe\xba\xbe", "Mach-O or Java class"),
    (b"\x00asm", "WebAssembly"), (b"#!", "script"),
)
_TEXT_CONTROLS = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f]")
#: The first line of an email: a header field (RFC 5322 field name, colon) or mbox "From ".
_EMAIL_START = re.compile(rb"(?:[!-9;-~]+:|From )")


def allowed_types_text() -> str:
    """The accepted types, for messages and help: ``pdf, png, jpeg, ...``."""
    return ", ".join(FILE_TYPES)


def _magic(data: bytes) -> str | None:
    """The binary type ``data`` starts like, by its magic bytes; None for others."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith(b"PK\x03\x04"):
        return "zip"
    return None


def _is_text(data: bytes) -> bool:
    """Plain text in any common encoding: UTF-16 with its BOM, else no control bytes."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            decoded = data.decode("utf-16")
        except UnicodeDecodeError:
            return False
        return not _TEXT_CONTROLS.search(decoded.encode("utf-8"))
    return not _TEXT_CONTROLS.search(data)


def _zip_member(archive: zipfile.ZipFile, name: str, limit: int = 1 << 20) -> bytes:
    """The first ``limit`` bytes of one member (never the whole of a zip bomb)."""
    with archive.open(name) as member:
        return member.read(limit)


def _office_problem(data: bytes, kind: str) -> str | None:
    """Why ``data`` is not a macro-free document of ``kind`` (docx or odt), or None."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            if kind == "docx":
                if "[Content_Types].xml" not in names or "word/document.xml" not in names:
                    return "its content is not a Word document (.docx)"
                types = _zip_member(archive, "[Content_Types].xml")
                if (b"macroEnabled" in types
                        or any(n.lower().endswith("vbaproject.bin") for n in names)):
                    return "it is a Word document with macros: save it as .docx or .pdf"
                if b"wordprocessingml.document.main+xml" not in types:
                    return "its content is not a Word document (.docx)"
                return None
            if (not names or names[0] != "mimetype" or "content.xml" not in names
                    or _zip_member(archive, "mimetype", 200).strip()
                    != FILE_TYPES["odt"].media_type.encode()):
                return "its content is not an OpenDocument text (.odt)"
            if any(n.startswith(("Basic/", "Scripts/")) for n in names):
                return "it is an OpenDocument text with macros: save it without them or as .pdf"
            return None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, OSError, EOFError,
            NotImplementedError, RuntimeError, ValueError):
        return f"its content is not a valid .{kind} file"


def sniff(data: bytes, file_name: str) -> FileType:
    """The accepted type of a document, from its content and its file name's extension.

    Args:
        data: The file's bytes.
        file_name: Its name (the extension counts, in any case).

    Returns:
        The type: the extension names it and the content is of that type.

    Raises:
        CaseFileError: For an executable (whatever its name), an extension not accepted,
            or content that is not what the extension says; one line naming what is
            allowed.

    """
    allowed = f"allowed: {allowed_types_text()} (checked by content as well as extension)"
    shown = sanitise_file_name(file_name)
    executable = next((what for magic, what in _EXECUTABLES if data.startswith(magic)), None)
    if executable is None and data.startswith(b"MZ") and b"\x00" in data[:1024]:
        executable = "Windows or DOS"  # "MZ" and binary: a text may start "MZ" too
    if executable is not None:
        raise CaseFileError(f"{shown}: refused, it is an executable ({executable}), not a "
                            f"document; {allowed}")
    suffix = Path(shown).suffix.lower()
    wanted = _BY_EXTENSION.get(suffix)
    if wanted is None:
        what = f"'{suffix}' files are" if suffix else "a file without an extension is"
        raise CaseFileError(f"{shown}: refused, {what} not accepted; {allowed}")
    found = _magic(data)
    problem: str | None = None
    if wanted.name in ("pdf", "png", "jpeg", "gif", "webp"):
        if found != wanted.name:
            problem = f"its content is not a {wanted.name.upper()} file"
    elif wanted.name in ("docx", "odt"):
        problem = (_office_problem(data, wanted.name) if found == "zip"
                   else f"its content is not a .{wanted.name} file")
    elif found is not None or not _is_text(data):
        problem = "its content is not plain text"
    elif wanted.name == "eml" and not _EMAIL_START.match(data.lstrip(b"\xef\xbb\xbf\r\n")):
        problem = "its content does not start like an email (a header line such as 'From:')"
    if problem is None:
        return wanted
    if found in ("pdf", "png", "jpeg", "gif", "webp") and found != wanted.name:
        problem += f" but a {found.upper()} (rename it .{FILE_TYPES[found].extension})"
    raise CaseFileError(f"{shown}: refused, {problem}; {allowed}")


def sanitise_file_name(name: str) -> str:
    """A file name fit to keep and show: its last part, printable, bounded, not hidden.

    Folders, control, invisible and bidirectional characters, characters that are not
    allowed in Windows names, and undecodable bytes are dropped or replaced by ``_``;
    the name is cut to :data:`MAX_FILE_NAME` characters keeping its extension.
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFC", base)
    cleaned = "".join(
        "_" if (c in HOSTILE or c in JOINERS or c in ':*?"<>|'
                or unicodedata.category(c)[0] == "C") else c for c in base)
    cleaned = " ".join(cleaned.split()).lstrip(". ") or "document"
    if len(cleaned) > MAX_FILE_NAME:
        stem, dot, suffix = cleaned.rpartition(".")
        if dot and 0 < len(suffix) <= 10:
            cleaned = stem[:MAX_FILE_NAME - len(suffix) - 1] + "." + suffix
        else:
            cleaned = cleaned[:MAX_FILE_NAME]
    return cleaned


def _read_limited(path: Path, what: str) -> bytes:
    """The bytes of a regular file, refusing one over :data:`MAX_DOCUMENT_BYTES`."""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise CaseFileError(f"{what} is a folder: give the path of a file")
        if not stat.S_ISREG(info.st_mode):
            raise CaseFileError(f"{what} is not a regular file")
        if info.st_size > MAX_DOCUMENT_BYTES:
            raise CaseFileError(_too_large(what, info.st_size))
        with path.open("rb") as handle:
            data = handle.read(MAX_DOCUMENT_BYTES + 1)
    except FileNotFoundError:
        raise CaseFileError(f"no such file: {what}") from None
    except PermissionError:
        raise CaseFileError(f"cannot read {what}: permission denied") from None
    except OSError as exc:
        raise CaseFileError(f"cannot read {what}: "
                            f"{exc.strerror or type(exc).__name__}") from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise CaseFileError(_too_large(what, len(data)))
    return data


def read_attachment(path: Path) -> bytes:
    """The bytes of a file to attach: a regular, non-empty file within the size limit.

    The CLI's remote mode reads a file with this before sending it, so that it is refused
    on the staff member's machine as it would be by :func:`attach_document`.

    Raises:
        CaseFileError: Missing, unreadable, a folder, empty or over the limit.

    """
    data = _read_limited(path, str(path))
    if not data:
        raise CaseFileError(f"{path} is empty: nothing to attach")
    return data


def _too_large(what: str, size: int) -> str:
    return (f"{what} is {size:,} bytes, over the {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB "
            f"limit ({MAX_DOCUMENT_BYTES:,} bytes): compress or split it")


# --- documents: storing and reading ------------------------------------------------------


def documents_dir(data_dir: Path, reference: str) -> Path:
    """The folder a case's documents are kept in: ``<data_dir>/documents/<reference>``."""
    return data_dir / "documents" / check_reference(reference)


def document_id_for(sha256: str) -> str:
    """The id staff see for a document: the first 16 hex digits of its SHA-256."""
    return sha256[:_DOCUMENT_ID_LENGTH]


def document_path(data_dir: Path, row: DocumentRow) -> Path:
    """Where a document's bytes are kept."""
    return documents_dir(data_dir, row.reference) / row.stored_name


def _store(folder: Path, name: str, data: bytes) -> None:
    """Write ``data`` to ``folder/name`` (``0600``) whole or not at all, folders ``0700``."""
    make_private_dir(folder)
    for made in (folder.parent, folder):
        tighten(made)  # made by an earlier version, or by hand, with group access
    temporary = folder / f".{name}.{secrets.token_hex(6)}.tmp"
    create_private_file(temporary)
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, folder / name)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _intact(path: Path, row: DocumentRow) -> bool:
    """Whether the file at ``path`` holds exactly the bytes recorded for ``row``."""
    try:
        if path.stat().st_size != row.size_bytes:
            return False
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return False
    return digest.hexdigest() == row.sha256


@dataclasses.dataclass(frozen=True)
class Attached:
    """What :func:`attach_document` did.

    Attributes:
        row: The document's row (the existing one when already attached).
        created: Whether a new row was stored (False: the same bytes were on the case).
        restored: Whether the stored copy was missing or damaged and written again.
    """

    row: DocumentRow
    created: bool
    restored: bool = False


def attach_document(session: Session, data_dir: Path, reference: str, path: Path, *,
                    kind: str, direction: str, received_on: dt.date | None = None,
                    by: str | None = None, note: str | None = None,
                    today: dt.date | None = None) -> Attached:
    """Store a document on a case and record it; the same bytes a second time are kept once.

    Args:
        session: A session on the complaints database.
        data_dir: The data folder (``Settings().data_dir``).
        reference: The case; its complaint must be in the database.
        path: The file to attach.
        kind: One of :data:`DOCUMENT_KINDS`.
        direction: ``inbound`` or ``outbound``.
        received_on: The day it was received (or sent); not in the future.
        by: The staff id of who attaches it.
        note: A note about it.
        today: Today's London date (default: now).

    Returns:
        The row and whether it is new.

    Raises:
        CaseFileError: Bad input, an unknown case, or a file refused (size, type).

    """
    today = today or london_today()
    _choice(kind, DOCUMENT_KINDS, "--kind")
    _choice(direction, DIRECTIONS, "--direction")
    _not_in_future(received_on, "--received-on", today)
    added_by = check_staff_id(by) if by is not None else None
    note = check_text(note, "--note", required=False)
    require_case(session, reference)
    data = read_attachment(path)
    file_name = sanitise_file_name(os.fsdecode(path.name))
    file_type = sniff(data, os.fsdecode(path.name))
    sha256 = hashlib.sha256(data).hexdigest()
    bound = log.bind(reference=reference)
    folder = documents_dir(data_dir, reference)

    existing = _by_sha(session, reference, sha256)
    if existing is not None:
        restored = not _intact(folder / existing.stored_name, existing)
        if restored:
            _store(folder, existing.stored_name, data)
        bound.info("document_already_attached", document_id=existing.document_id,
                   restored=restored)
        return Attached(existing, created=False, restored=restored)

    stored_name = f"{sha256}.{file_type.extension}"
    _store(folder, stored_name, data)  # the file first: a row never names a missing file
    row = DocumentRow(reference=reference, document_id=document_id_for(sha256),
                      sha256=sha256, file_name=file_name, stored_name=stored_name,
                      media_type=file_type.media_type, size_bytes=len(data), kind=kind,
                      direction=direction, received_on=received_on, added_by=added_by,
                      note=note)
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()  # attached at the same moment by someone else, or an id clash
        existing = _by_sha(session, reference, sha256)
        if existing is None:
            raise CaseFileError(f"another document on {reference} has the id "
                                f"{row.document_id}: this one cannot be attached") from None
        return Attached(existing, created=False)
    bound.info("document_attached", document_id=row.document_id)
    return Attached(row, created=True)


def _by_sha(session: Session, reference: str, sha256: str) -> DocumentRow | None:
    return session.exec(select(DocumentRow).where(
        DocumentRow.reference == reference, DocumentRow.sha256 == sha256)).first()


def list_documents(session: Session, reference: str) -> list[DocumentRow]:
    """The documents on a case, in the order they were added."""
    require_case(session, reference)
    return list(session.exec(select(DocumentRow).where(DocumentRow.reference == reference)
                             .order_by(col(DocumentRow.added_at), col(DocumentRow.id))))


def find_document(session: Session, reference: str, document_id: str) -> DocumentRow:
    """A case's document by its id (or its full SHA-256), or a one-line refusal."""
    require_case(session, reference)
    wanted = document_id.strip().lower()
    row = None
    if _HEX.match(wanted) and len(wanted) in (_DOCUMENT_ID_LENGTH, 64):
        column = DocumentRow.document_id if len(wanted) == _DOCUMENT_ID_LENGTH \
            else DocumentRow.sha256
        row = session.exec(select(DocumentRow).where(
            DocumentRow.reference == reference, column == wanted)).first()
    if row is None:
        raise CaseFileError(f"no document {document_id!r} on {reference}: "
                            f"`complaints documents {reference}` lists them")
    return row


def read_document(session: Session, data_dir: Path, reference: str,
                  document_id: str) -> tuple[DocumentRow, bytes]:
    """A stored document's row and bytes, after checking them against its SHA-256.

    Args:
        session: A session on the complaints database.
        data_dir: The data folder.
        reference: The case.
        document_id: The document's id (or full SHA-256).

    Raises:
        DocumentDamaged: The stored copy is missing or its bytes do not match (the message
            names the stored file: for operators, not for remote callers).
        CaseFileError: Unknown case or document.

    """
    row = find_document(session, reference, document_id)
    stored = document_path(data_dir, row)
    bound = log.bind(reference=reference)
    try:
        data = _read_limited(stored, str(stored))
    except CaseFileError:
        bound.info("document_missing", document_id=row.document_id)
        raise DocumentDamaged(f"the stored copy of document {row.document_id} on {reference} "
                              f"is missing or unreadable ({stored}): restore the documents "
                              "folder from a backup; nothing was written") from None
    if len(data) != row.size_bytes or hashlib.sha256(data).hexdigest() != row.sha256:
        bound.info("document_damaged", document_id=row.document_id)
        raise DocumentDamaged(f"the stored copy of document {row.document_id} on {reference} "
                              f"does not match its recorded SHA-256 (tampered with or "
                              f"damaged: {stored}): restore it from a backup; nothing was "
                              "written")
    return row, data


def write_copy(data: bytes, out: Path, file_name: str) -> Path:
    """Write ``data`` to a new file ``out`` (``0600``), or into the folder ``out``.

    Args:
        data: The bytes to write.
        out: A new file's path, or an existing folder (the copy is named ``file_name``
            there, sanitised). An existing file is never overwritten.
        file_name: The document's name, for a folder.

    Returns:
        The path written.

    Raises:
        CaseFileError: The file exists, its folder does not, or it cannot be written.

    """
    target = out / sanitise_file_name(file_name) if out.is_dir() else out
    try:
        if not create_private_file(target):
            raise CaseFileError(f"{target} exists already: give a new file's path")
        try:
            fd = os.open(target, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
    except FileNotFoundError:
        raise CaseFileError(f"cannot write {target}: its folder does not exist") from None
    except OSError as exc:
        raise CaseFileError(f"cannot write {target}: "
                            f"{exc.strerror or type(exc).__name__}") from None
    return target


def export_document(session: Session, data_dir: Path, reference: str, document_id: str,
                    out: Path) -> tuple[DocumentRow, Path]:
    """Write a copy of a stored document to ``out``, after checking its SHA-256.

    Args:
        session: A session on the complaints database.
        data_dir: The data folder.
        reference: The case.
        document_id: The document's id (or full SHA-256).
        out: A new file's path, or an existing folder (the copy takes the document's
            original name there). An existing file is never overwritten.

    Returns:
        The document's row and the path written (``0600``).

    Raises:
        DocumentDamaged: The stored copy is missing or its bytes do not match; nothing
            is written.
        CaseFileError: Unknown case or document, or ``out`` cannot be written.

    """
    row, data = read_document(session, data_dir, reference, document_id)
    target = write_copy(data, out, row.file_name)
    log.bind(reference=reference).info("document_exported", document_id=row.document_id)
    return row, target


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
