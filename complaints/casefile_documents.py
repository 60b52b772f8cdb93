"""Documents on a case file (Code 5.12): attaching, listing, reading and exporting them.

The file is stored under the data folder as ``documents/<reference>/<sha256>.<ext>``,
``0600`` in ``0700`` folders, written whole or not at all; its row
(:class:`models.tables.DocumentRow`) says what it is. The same bytes are attached to a
case once, and a copy is handed out only after its SHA-256 is checked against the one
recorded. :mod:`complaints.casefiles` re-exports every public name.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import re
import stat
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from complaints.casefile_checks import (
    DIRECTIONS,
    DOCUMENT_KINDS,
    MAX_DOCUMENT_BYTES,
    CaseFileError,
    DocumentDamaged,
    _choice,
    check_reference,
    check_staff_id,
    check_text,
    log,
    london_today,
    require_case,
)
from complaints.casefile_filetypes import sanitise_file_name, sniff
from complaints.files import create_private_file, make_private_dir, tighten, write_private_files
from models.tables import DocumentRow

#: A document id: the first 16 hex digits of its SHA-256.
_DOCUMENT_ID_LENGTH = 16
_HEX = re.compile(r"[0-9a-f]+\Z")


def _not_in_future(day: dt.date | None, option: str, today: dt.date) -> None:
    if day is not None and day > today:
        raise CaseFileError(f"{option} {day.isoformat()} is in the future (today is "
                            f"{today.isoformat()}, London)")



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
    """Write ``data`` to ``folder/name`` (``0600``) whole or not at all and durably."""
    make_private_dir(folder, durable=True)
    for made in (folder.parent, folder):
        tighten(made)  # made by an earlier version, or by hand, with group access
    write_private_files(folder, {name: data})


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

