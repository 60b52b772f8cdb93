"""Subject access: everything held about one resident, as one archive a person can read.

``complaints subject-access --name NAME [--email E] [--phone P] [--address LINE1] --out
FILE.zip --by STAFF`` and ``POST /api/v1/subject-access`` (:mod:`complaints.api.privacy`)
both call :func:`export`. A case is the person's when one of its parties matches:

- the email address, compared trimmed and without regard to case; or
- the phone number, compared by its digits (``+44 7700 900123`` is ``07700900123``); or
- the exact name *and* the first line of the address (spaces and case aside).

The archive holds, for each case: ``record.json`` (the complaint as received and as it
stands, its parties, the case file, deadlines, remedies, actions, responses, refusals,
the learning recorded on its responses, and who viewed it), the letters (``.txt``, and
``.pdf`` where one was stored), the documents on the case file, ``contact-notes.json``
(contacts recorded and any restriction on contact), ``triage.json``, ``adjustments.json``
and ``audit.json``; and at the top ``index.html`` and ``index.txt``: what is held, per
case, with links to the files.
Other people on the same case (a representative, a group) appear in its record: review
the archive before it is sent.

Each case exported is recorded as a viewing (``case_views``, what ``subject_access``), and
each export in ``subject_access_requests``: who, when, how many cases and files, and the
SHA-256 of the normalised search terms, never the terms themselves.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import io
import json
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlmodel import Session, SQLModel, col, select

from activities.letters import outbox_paths
from complaints.identity import Identity, record_view
from models.access import CaseViewRow
from models.learning import LearningRow, LearningTagRow
from models.service_requests import ServiceRequestRow
from models.tables import (
    ActionRow,
    AdjustmentRow,
    AuditRow,
    CaseRecordRow,
    ComplaintRow,
    DeadlineRow,
    DocumentRow,
    ExtensionRow,
    LetterRow,
    PartyRow,
    RefusalRow,
    RemedyRow,
    ResponseRow,
    RestrictionHistoryRow,
    RestrictionRow,
    SubjectAccessRow,
    TriageRow,
    utcnow,
)

__all__ = ["Export", "SubjectTerms", "export", "find_cases", "register", "terms_digest"]

#: What a subject access export is recorded as in ``case_views``.
VIEW_WHAT = "subject_access"


class SubjectTerms(BaseModel):
    """Who the request is about: a name, and an email, a phone or the first address line."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True, frozen=True)

    name: str = Field(min_length=1, max_length=200, description="The person's full name.")
    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=40)
    address: str | None = Field(default=None, max_length=200,
                                description="The first line of their address.")

    @model_validator(mode="after")
    def _something_to_match(self) -> SubjectTerms:
        if not any(_clean(v) for v in (self.email, self.phone, self.address)):
            raise ValueError("give an email, a phone number or the first line of the "
                             "address as well as the name: a name alone is not enough to "
                             "tell two people apart")
        return self


def _clean(text: str | None) -> str:
    return " ".join((text or "").split()).casefold()


def normal_phone(phone: str | None) -> str:
    """A phone number's digits, a UK ``+44``/``0044`` prefix written as the leading 0."""
    digits = re.sub(r"\D", "", phone or "")
    for prefix in ("0044", "44"):
        if digits.startswith(prefix) and len(digits) >= len(prefix) + 9:
            return "0" + digits[len(prefix):]
    return digits


def _normalised(terms: SubjectTerms) -> dict[str, str]:
    return {"name": _clean(terms.name), "email": _clean(terms.email),
            "phone": normal_phone(terms.phone), "address": _clean(terms.address)}


def terms_digest(terms: SubjectTerms) -> str:
    """The SHA-256 of the normalised terms (what the log keeps instead of them)."""
    return hashlib.sha256(json.dumps(_normalised(terms), sort_keys=True).encode()).hexdigest()


def _matches(party: PartyRow, wanted: dict[str, str]) -> bool:
    return _same_person(party.name, party.address, party.email, party.phone, wanted)


def _same_person(name: str, address: str | None, email: str | None, phone: str | None,
                 wanted: dict[str, str]) -> bool:
    """The same email, or phone, or name and first address line, as ``wanted``."""
    if wanted["email"] and _clean(email) == wanted["email"]:
        return True
    if len(wanted["phone"]) >= 6 and normal_phone(phone) == wanted["phone"]:
        return True
    first_line = address.split("\n", 1)[0] if address else ""
    return bool(wanted["address"]) and _clean(name) == wanted["name"] \
        and _clean(first_line) == wanted["address"]


def find_service_requests(session: Session, terms: SubjectTerms) -> list[ServiceRequestRow]:
    """The service requests the person made (Code 1.4), oldest first."""
    wanted = _normalised(terms)
    return [row for row in session.exec(select(ServiceRequestRow).order_by(
        col(ServiceRequestRow.id))).all()
        if _same_person(row.resident_name, row.resident_address, row.resident_email,
                        row.resident_phone, wanted)]


def find_cases(session: Session, terms: SubjectTerms) -> list[str]:
    """The references of every case where the person is a party, oldest first."""
    wanted = _normalised(terms)
    found = {party.reference for party in session.exec(select(PartyRow)).all()
             if _matches(party, wanted)}
    return sorted(found)


@dataclass
class Export:
    """An archive made: its bytes, the cases it holds and how many files."""

    data: bytes
    references: list[str]
    files: int
    missing: list[str] = field(default_factory=list)


def _plain(row: SQLModel) -> dict[str, Any]:
    data: dict[str, Any] = row.model_dump(mode="json")
    return data


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str).encode()


def _detail(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _rows(session: Session, model: Any, reference: str, order: Any) -> list[Any]:
    return list(session.exec(select(model).where(model.reference == reference)
                             .order_by(order)).all())


def _learning(session: Session, reference: str) -> list[dict[str, Any]]:
    """The learning recorded on the case's responses: lessons may name the person."""
    found = []
    for row in _rows(session, LearningRow, reference, LearningRow.stage):
        tags = session.exec(select(LearningTagRow).where(
            LearningTagRow.learning_id == row.id).order_by(col(LearningTagRow.value))).all()
        found.append({**_plain(row),
                      "themes": [t.value for t in tags if t.kind == "theme"],
                      "root_causes": [t.value for t in tags if t.kind == "root_cause"]})
    return found


class _Archive:
    """The zip being written, and the index of what went in."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        self.zip = zipfile.ZipFile(self.buffer, "w", zipfile.ZIP_DEFLATED)
        self.files = 0

    def add(self, path: str, data: bytes) -> str:
        self.zip.writestr(path, data)
        self.files += 1
        return path

    def close(self) -> bytes:
        self.zip.close()
        return self.buffer.getvalue()


def _case(archive: _Archive, session: Session, data_dir: Path,
          reference: str) -> tuple[list[tuple[str, str]], list[str]]:
    """Write one case's files; the index entries (label, path) and what was missing."""
    from complaints.casefiles import CaseFileError, read_document, sanitise_file_name

    base = f"cases/{reference}"
    complaint = session.get(ComplaintRow, reference)
    record = session.get(CaseRecordRow, reference)
    entries: list[tuple[str, str]] = []
    missing: list[str] = []
    audit = _rows(session, AuditRow, reference, AuditRow.seq)
    record_json = {
        "complaint": _plain(complaint) if complaint else None,
        "parties": [_plain(p) for p in _rows(session, PartyRow, reference, PartyRow.position)],
        "case_file": json.loads(record.case_json) if record else None,
        "deadlines": [_plain(d) for d in _rows(session, DeadlineRow, reference, DeadlineRow.due)],
        "responses": [_plain(r) for r in _rows(session, ResponseRow, reference, ResponseRow.seq)],
        "extensions": [_plain(e) for e in _rows(session, ExtensionRow, reference,
                                                ExtensionRow.extension_seq)],
        "remedies": [_plain(r) for r in _rows(session, RemedyRow, reference, RemedyRow.id)],
        "actions": [_plain(a) for a in _rows(session, ActionRow, reference, ActionRow.id)],
        "refusals": [_plain(r) for r in _rows(session, RefusalRow, reference, RefusalRow.id)],
        "learning": _learning(session, reference),
        "viewed_by": [_plain(v) for v in session.exec(select(CaseViewRow).where(
            CaseViewRow.reference == reference).order_by(col(CaseViewRow.viewed_at))).all()],
    }
    entries.append(("The case record (JSON)", archive.add(f"{base}/record.json",
                                                          _json(record_json))))
    for letter in _rows(session, LetterRow, reference, LetterRow.created_at):
        stem = outbox_paths(Path("."), reference, letter.letter_id)[0].stem
        label = f"Letter: {letter.subject} ({letter.kind.replace('_', ' ')}, " \
                f"{letter.created_at:%d %B %Y})"
        entries.append((label, archive.add(f"{base}/letters/{stem}.txt",
                                           letter.text.encode())))
        if letter.pdf:
            entries.append((f"{label}, PDF", archive.add(f"{base}/letters/{stem}.pdf",
                                                         letter.pdf)))
    for document in _rows(session, DocumentRow, reference, DocumentRow.id):
        label = f"Document: {document.file_name} ({document.kind}, {document.direction})"
        try:
            _row, data = read_document(session, data_dir, reference, document.document_id)
        except CaseFileError:
            missing.append(f"{reference} document {document.document_id}")
            entries.append((f"{label}: the stored copy is missing", ""))
            continue
        name = f"{document.document_id}-{sanitise_file_name(document.file_name)}"
        entries.append((label, archive.add(f"{base}/documents/{name}", data)))
    contacts = {
        "contacts": [{"at": a.at.isoformat(), "by": a.by, "record": _detail(a.detail)}
                     for a in audit if a.action == "record_contact" and a.accepted],
        "restrictions": [_plain(r) for r in _rows(session, RestrictionRow, reference,
                                                  RestrictionRow.id)],
        "restriction_history": [_plain(h) for h in _rows(session, RestrictionHistoryRow,
                                                         reference, RestrictionHistoryRow.id)],
    }
    entries.append(("Contact notes and any restriction on contact",
                    archive.add(f"{base}/contact-notes.json", _json(contacts))))
    entries.append(("Triage (complexity, vulnerability, risk)", archive.add(
        f"{base}/triage.json", _json([_plain(t) for t in _rows(session, TriageRow, reference,
                                                                TriageRow.id)]))))
    entries.append(("Reasonable adjustments", archive.add(
        f"{base}/adjustments.json", _json([_plain(a) for a in _rows(
            session, AdjustmentRow, reference, AdjustmentRow.position)]))))
    entries.append(("The audit trail: every action on the case", archive.add(
        f"{base}/audit.json", _json([{**_plain(a), "detail": _detail(a.detail)}
                                     for a in audit]))))
    return entries, missing


def _index(cases: list[tuple[str, ComplaintRow | None, list[tuple[str, str]]]],
           generated: dt.datetime, landlord: str,
           requests: Sequence[tuple[str, str]] = ()) -> tuple[str, str]:
    """``index.txt`` and ``index.html``: what is held, per case, with links."""
    when = f"{generated:%d %B %Y}"
    intro = (f"Personal data held by {landlord} about you, as of {when}. "
             f"{len(cases)} complaint case(s) name you. Each case's files are listed below; "
             "the record of each case is JSON, a structured text any editor opens.")
    text = [f"Subject access: {landlord}", "", intro, ""]
    parts = [f"<h1>Subject access: {html.escape(landlord)}</h1>",
             f"<p>{html.escape(intro)}</p>"]
    if not cases:
        text.append("No complaint case names you.")
        parts.append("<p>No complaint case names you.</p>")
    for reference, complaint, entries in cases:
        summary = (f"received {complaint.received_on:%d %B %Y}, "
                   f"{complaint.state.replace('_', ' ')}") if complaint else ""
        text += [f"Case {reference} ({summary})"]
        parts.append(f"<h2>Case {html.escape(reference)}</h2><p>{html.escape(summary)}</p><ul>")
        for label, path in entries:
            text.append(f"  - {label}" + (f": {path}" if path else ""))
            link = f'<a href="{html.escape(path)}">{html.escape(label)}</a>' if path \
                else html.escape(label)
            parts.append(f"<li>{link}</li>")
        parts.append("</ul>")
        text.append("")
    if requests:
        text += ["Service requests (not complaints)"]
        parts.append("<h2>Service requests (not complaints)</h2><ul>")
        for label, path in requests:
            text.append(f"  - {label}: {path}")
            parts.append(f'<li><a href="{html.escape(path)}">{html.escape(label)}</a></li>')
        parts.append("</ul>")
        text.append("")
    page = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>Your personal data</title></head><body>" + "".join(parts)
            + "</body></html>")
    return "\n".join(text) + "\n", page


def export(session: Session, data_dir: Path, terms: SubjectTerms, who: Identity, via: str,
           *, now: dt.datetime | None = None) -> Export:
    """Find the person's cases, write the archive, and record the viewings and the export.

    Args:
        session: A writing session on the complaints database.
        data_dir: The data folder (its ``documents/``).
        terms: Who the request is about.
        who: The member of staff making the export.
        via: ``cli`` or ``api``.
        now: The time the index gives (default: now).

    Returns:
        The archive and what it holds.

    """
    generated = now or utcnow()
    references = find_cases(session, terms)
    archive = _Archive()
    cases = []
    missing: list[str] = []
    landlords: set[str] = set()
    for reference in references:
        entries, lost = _case(archive, session, data_dir, reference)
        complaint = session.get(ComplaintRow, reference)
        if complaint is not None:
            landlords.add(complaint.landlord)
        cases.append((reference, complaint, entries))
        missing += lost
    requests = [(f"Service request {row.id} ({row.category}, received "
                 f"{row.received_on:%d %B %Y})",
                 archive.add(f"service-requests/{row.id}.json", _json(_plain(row))))
                for row in find_service_requests(session, terms)]
    text, page = _index(cases, generated, ", ".join(sorted(landlords)) or "the landlord",
                        requests)
    archive.add("index.txt", text.encode())
    archive.add("index.html", page.encode())
    data = archive.close()
    session.rollback()  # the reads are done: the records below are their own writes
    for reference in references:
        record_view(session, who, reference, VIEW_WHAT, via)
    session.add(SubjectAccessRow(staff_id=who.staff_id, via=via, requested_at=generated,
                                 cases=len(references), files=archive.files,
                                 terms_sha256=terms_digest(terms)))
    session.commit()
    return Export(data=data, references=references, files=archive.files, missing=missing)


def _lines(items: Iterable[str]) -> str:
    return ", ".join(items)


def register(cli: click.Group) -> None:
    """Add ``subject-access`` to ``cli``."""

    @cli.command("subject-access")
    @click.option("--name", required=True, help="The person's full name.")
    @click.option("--email", default=None, help="Their email address.")
    @click.option("--phone", default=None, help="Their phone number.")
    @click.option("--address", default=None, help="The first line of their address.")
    @click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
                  help="The archive to write (a new .zip file, made readable by you only).")
    @click.option("--by", required=True, help="Your staff id (recorded).")
    def subject_access(name: str, email: str | None, phone: str | None, address: str | None,
                       out: Path, by: str) -> None:
        """Export everything held about one person (every case naming them) as one zip.

        A case is theirs when a party has the same email or phone number, or the same
        name and first line of address. Each case exported is recorded as viewed by you.
        """
        from pydantic import ValidationError

        from complaints.casefiles import CaseFileError, check_staff_id, write_copy
        from complaints.casefiles_cli import command_session
        from complaints.settings import Settings

        try:
            terms = SubjectTerms(name=name, email=email, phone=phone, address=address)
        except ValidationError as exc:
            raise click.ClickException(str(exc.errors()[0]["msg"]).removeprefix(
                "Value error, ")) from None
        if out.exists():
            raise click.ClickException(f"{out} exists already: give a new file's path")
        with command_session(CaseFileError) as session:
            staff = check_staff_id(by)
            who = Identity(staff_id=staff, display_name=staff, team="", roles=(), via="cli")
            made = export(session, Settings().data_dir, terms, who, "cli")
            write_copy(made.data, out, out.name)
        click.echo(f"{out}: {len(made.references)} case(s), {made.files} files"
                   + (f" ({_lines(made.references)})" if made.references else ""))
        if made.missing:
            click.echo("warning: stored copies missing (restore them from a backup): "
                       + _lines(made.missing), err=True)
