"""Which documents a case file accepts: their types, recognised by content, and names.

:data:`FILE_TYPES` lists the types accepted; :func:`sniff` checks that a file's content
is of the type its extension names (and refuses executables whatever they are called);
:func:`sanitise_file_name` makes a file name fit to keep and show.
:mod:`complaints.casefiles` re-exports every public name.
"""

from __future__ import annotations

import dataclasses
import io
import re
import unicodedata
import zipfile
from pathlib import Path

from complaints.casefile_checks import MAX_FILE_NAME, CaseFileError
from models.limits import HOSTILE, JOINERS


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

