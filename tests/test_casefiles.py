"""Case files: documents on a case, the unacceptable-behaviour register and triage.

The commands run in-process through click's ``CliRunner`` against a database and a data
folder of the test's own (``DATA_DIR`` / ``DATABASE_URL``); none of them needs Temporal.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlmodel import Session, select

from complaints import casefiles
from complaints.cli import cli
from complaints.db import make_engine, session_factory, upgrade
from domain.deadlines import add_calendar_months
from models.tables import ComplaintRow, DocumentRow, RestrictionHistoryRow

REFERENCE = "CMP-2026-000101"
OTHER = "CMP-2026-000102"
UNKNOWN = "CMP-2026-000999"
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n"
ALLOWED = "allowed: pdf, png, jpeg, gif, webp, txt, eml, docx, odt, csv"
RESTRICTION = ["--reason", "Repeated abusive calls to the repairs line",
               "--evidence", "Call records of 3, 5 and 9 November; two staff statements",
               "--proportionality", "Email stays open; adjustments were considered first",
               "--contact-route", "Email to the named case officer only"]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data folder and migrated database of the test's own, holding two complaints."""
    data = tmp_path / "data"
    url = f"sqlite:///{(data / 'complaints.db').as_posix()}"
    monkeypatch.setenv("COMPLAINTS_ENV_FILE", str(tmp_path / "absent.env"))
    monkeypatch.setenv("DATA_DIR", str(data))
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("COMPLAINTS_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    upgrade(url)
    engine = make_engine(url)
    with session_factory(engine)() as session:
        for reference in (REFERENCE, OTHER):
            session.add(ComplaintRow(reference=reference, landlord="Connexus",
                                     policy_name="connexus", channel="phone",
                                     category="repairs", received_on=dt.date(2026, 11, 20),
                                     description="Mould in the bedroom"))
        session.commit()
    engine.dispose()
    return data


@pytest.fixture
def session(data_dir: Path) -> Iterator[Session]:
    """A session on the test's database."""
    engine = make_engine(f"sqlite:///{(data_dir / 'complaints.db').as_posix()}")
    with session_factory(engine)() as opened:
        yield opened
    engine.dispose()


def run(*args: str) -> Result:
    """Run ``complaints ARGS`` in-process."""
    return CliRunner().invoke(cli, list(args))


def refused(result: Result, *needles: str) -> str:
    """The run failed (exit 1) with one ``Error:`` line holding every needle."""
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def write(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` and return it."""
    path.write_bytes(data)
    return path


def attach(path: Path, *extra: str, reference: str = REFERENCE) -> Result:
    """Attach ``path`` to a case as an inbound letter."""
    return run("attach", reference, str(path), "--kind", "letter", "--direction", "inbound",
               *extra)


def listed(reference: str = REFERENCE) -> list[dict[str, Any]]:
    """The documents of a case as ``complaints documents --json`` prints them."""
    result = run("documents", reference, "--json")
    assert result.exit_code == 0, result.output
    loaded: list[dict[str, Any]] = json.loads(result.stdout)
    return loaded


def stored_files(data_dir: Path, reference: str = REFERENCE) -> list[Path]:
    """The files kept in a case's documents folder."""
    folder = data_dir / "documents" / reference
    return sorted(folder.iterdir()) if folder.exists() else []


def mode(path: Path) -> int:
    """The permission bits of ``path``."""
    return stat.S_IMODE(path.lstat().st_mode)


def docx(*, macros: bool = False) -> bytes:
    """A minimal Word document (optionally with a macro project)."""
    buffer = io.BytesIO()
    main = ("application/vnd.ms-word.document.macroEnabled.main+xml" if macros else
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml")
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml",
                         f'<Types><Override PartName="/word/document.xml" ContentType="{main}"/>'
                         "</Types>")
        archive.writestr("word/document.xml", "<w:document/>")
        if macros:
            archive.writestr("word/vbaProject.bin", b"\x00" * 16)
    return buffer.getvalue()


# --- documents -----------------------------------------------------------------------------


def test_attach_list_and_export_round_trip(data_dir: Path, tmp_path: Path) -> None:
    """A PDF attached is listed with its SHA-256 and written back out byte for byte."""
    source = write(tmp_path / "Letter from resident.pdf", PDF)
    result = attach(source, "--received-on", "2026-11-21", "--by", "mgr-1", "--note",
                    "Posted to the area office")
    assert result.exit_code == 0, result.output
    sha = hashlib.sha256(PDF).hexdigest()
    [doc] = listed()
    assert doc["sha256"] == sha and doc["document_id"] == sha[:16]
    assert (doc["file_name"], doc["media_type"], doc["size_bytes"]) == (
        "Letter from resident.pdf", "application/pdf", len(PDF))
    assert (doc["kind"], doc["direction"], doc["received_on"], doc["added_by"]) == (
        "letter", "inbound", "2026-11-21", "mgr-1")
    assert stored_files(data_dir) == [data_dir / "documents" / REFERENCE / f"{sha}.pdf"]
    text = run("documents", REFERENCE)
    assert sha[:16] in text.stdout and text.stdout.rstrip().endswith("1 document")

    out = tmp_path / "copy.pdf"
    exported = run("document", REFERENCE, sha[:16], "--out", str(out))
    assert exported.exit_code == 0, exported.output
    assert "SHA-256 checked" in exported.stdout
    assert out.read_bytes() == PDF
    # An existing file is never overwritten.
    refused(run("document", REFERENCE, sha[:16], "--out", str(out)), "exists already")


def test_the_same_bytes_attached_twice_are_kept_once(data_dir: Path, tmp_path: Path) -> None:
    """Attaching the same bytes to the same case again says so and stores nothing more."""
    assert attach(write(tmp_path / "a.pdf", PDF), "--by", "mgr-1").exit_code == 0
    again = attach(write(tmp_path / "renamed.pdf", PDF), "--by", "mgr-2")
    assert again.exit_code == 0, again.output
    assert "already attached as" in again.stdout and "not stored twice" in again.stdout
    assert [d["file_name"] for d in listed()] == ["a.pdf"]
    assert len(stored_files(data_dir)) == 1
    # The same bytes on another case are that case's own document.
    assert attach(tmp_path / "a.pdf", reference=OTHER).exit_code == 0
    assert len(listed(OTHER)) == 1


def test_document_files_and_folders_are_private(data_dir: Path, tmp_path: Path) -> None:
    """Under a permissive umask the stored file and the export are 0600, folders 0700."""
    old = os.umask(0o022)
    try:
        assert attach(write(tmp_path / "a.pdf", PDF)).exit_code == 0
        out = tmp_path / "out.pdf"
        assert run("document", REFERENCE, listed()[0]["document_id"], "--out",
                   str(out)).exit_code == 0
    finally:
        os.umask(old)
    [stored] = stored_files(data_dir)
    assert mode(stored) == 0o600
    assert mode(stored.parent) == 0o700 and mode(stored.parent.parent) == 0o700
    assert mode(out) == 0o600


def test_a_document_over_the_size_limit_is_refused(data_dir: Path, tmp_path: Path) -> None:
    """One byte over 25 MiB is refused naming the limit; exactly 25 MiB is accepted."""
    assert casefiles.MAX_DOCUMENT_BYTES == 25 * 1024 * 1024
    big = tmp_path / "survey.pdf"
    with big.open("wb") as handle:
        handle.write(PDF)
        handle.truncate(casefiles.MAX_DOCUMENT_BYTES + 1)  # sparse: nothing much on disk
    refused(attach(big), "over the 25 MiB limit", "26,214,401 bytes")
    assert listed() == [] and stored_files(data_dir) == []
    with big.open("r+b") as handle:
        handle.truncate(casefiles.MAX_DOCUMENT_BYTES)
    assert attach(big).exit_code == 0
    assert listed()[0]["size_bytes"] == casefiles.MAX_DOCUMENT_BYTES


@pytest.mark.parametrize(("name", "content", "why"), [
    ("report.pdf", b"\x7fELF\x02\x01\x01" + b"\x00" * 64, "executable (ELF)"),
    ("tool", b"\x7fELF\x02\x01\x01" + b"\x00" * 64, "executable (ELF)"),
    ("setup.exe", b"MZ\x90\x00\x03" + b"\x00" * 64, "executable (Windows or DOS)"),
    ("photo.pdf", b"\x89PNG\r\n\x1a\n" + b"\x00" * 32, "not a PDF file but a PNG"),
    ("notes.txt", b"plain words\x00\x01\x02 and binary", "not plain text"),
    ("survey.xlsx", PDF, "'.xlsx' files are not accepted"),
    ("letter.docx", docx(macros=True), "Word document with macros"),
    ("mail.eml", b"just some words\n", "does not start like an email"),
], ids=["elf-as-pdf", "elf-no-extension", "exe", "png-as-pdf", "binary-txt", "xlsx",
        "docm-as-docx", "eml-without-headers"])
def test_disallowed_types_are_refused(data_dir: Path, tmp_path: Path, name: str,
                                      content: bytes, why: str) -> None:
    """Executables, unlisted extensions and content unlike its extension are refused."""
    refused(attach(write(tmp_path / name, content)), why, ALLOWED)
    assert listed() == [] and stored_files(data_dir) == []


@pytest.mark.parametrize(("name", "content", "media_type"), [
    ("photo.JPG", b"\xff\xd8\xff\xe0\x00\x10JFIF" + b"\x00" * 16, "image/jpeg"),
    ("scan.webp", b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 8, "image/webp"),
    ("repairs.csv", b"job,date\nmould wash,2026-11-02\n", "text/csv"),
    ("complaint.eml", b"From: resident@example.invalid\r\nSubject: Mould\r\n\r\nHello\r\n",
     "message/rfc822"),
    ("response.docx", docx(), "application/vnd.openxmlformats-officedocument"
     ".wordprocessingml.document"),
], ids=["jpeg", "webp", "csv", "eml", "docx"])
def test_allowed_types_are_recognised(data_dir: Path, tmp_path: Path, name: str,
                                      content: bytes, media_type: str) -> None:
    """Each accepted type is recorded with its media type, whatever the extension's case."""
    result = attach(write(tmp_path / name, content))
    assert result.exit_code == 0, result.output
    assert listed()[0]["media_type"] == media_type


def test_a_file_name_is_sanitised_and_bounded() -> None:
    """Folders, bidirectional controls and over-long names never reach the record."""
    assert casefiles.sanitise_file_name("../../etc/passwd") == "passwd"
    assert casefiles.sanitise_file_name("invoice\u202egpj.exe") == "invoice_gpj.exe"
    long = casefiles.sanitise_file_name("x" * 500 + ".pdf")
    assert len(long) == casefiles.MAX_FILE_NAME and long.endswith(".pdf")
    assert casefiles.sanitise_file_name(".hidden") == "hidden"


def test_an_unknown_case_is_refused(data_dir: Path, tmp_path: Path) -> None:
    """Every command on a reference the database lacks is one line naming it."""
    source = write(tmp_path / "a.pdf", PDF)
    expected = f"no complaint {UNKNOWN} in this database:"
    refused(attach(source, reference=UNKNOWN), expected)
    refused(run("documents", UNKNOWN), expected)
    refused(run("restriction", "add", UNKNOWN, *RESTRICTION, "--review-on",
                str(casefiles.london_today() + dt.timedelta(days=30)), "--by", "mgr-1"),
            expected)
    refused(run("triage", UNKNOWN, "--complexity", "low", "--vulnerability", "none",
                "--risk", "low", "--by", "mgr-1"), expected)
    refused(attach(source, reference="../etc"), "is not a case reference")
    assert not (data_dir / "documents" / UNKNOWN).exists()


def test_a_tampered_stored_copy_is_detected_on_export(data_dir: Path, tmp_path: Path) -> None:
    """A stored file changed or removed is reported and nothing is written out."""
    assert attach(write(tmp_path / "a.pdf", PDF)).exit_code == 0
    document_id = str(listed()[0]["document_id"])
    [stored] = stored_files(data_dir)
    stored.write_bytes(PDF.replace(b"Catalog", b"Catalug"))  # same size, other bytes
    out = tmp_path / "copy.pdf"
    refused(run("document", REFERENCE, document_id, "--out", str(out)),
            "does not match its recorded SHA-256", "nothing was written")
    assert not out.exists()
    stored.unlink()
    refused(run("document", REFERENCE, document_id, "--out", str(out)), "is missing")
    # Attaching the original again puts the good copy back.
    again = attach(tmp_path / "a.pdf")
    assert "written again" in again.stdout
    assert run("document", REFERENCE, document_id, "--out", str(out)).exit_code == 0
    assert out.read_bytes() == PDF


def test_invisible_characters_in_a_staff_id_are_refused(data_dir: Path, tmp_path: Path) -> None:
    """A staff id with a zero-width space or a right-to-left override is refused."""
    source = write(tmp_path / "a.pdf", PDF)
    refused(attach(source, "--by", "mgr-1\u200b"), "--by: contains the invisible character "
            "U+200B")
    refused(run("triage", REFERENCE, "--complexity", "low", "--vulnerability", "none",
                "--risk", "low", "--by", "mgr\u202e1"), "--by:", "U+202E")
    assert listed() == []


# --- restrictions ------------------------------------------------------------------------


def test_restriction_add_review_and_list_due(data_dir: Path, session: Session) -> None:
    """Add, review and lift a restriction, each in its history; --due lists only reviews due."""
    today = casefiles.london_today()
    added = run("restriction", "add", REFERENCE, *RESTRICTION, "--review-on",
                str(today + dt.timedelta(days=30)), "--by", "mgr-1")
    assert added.exit_code == 0, added.output
    assert "the complaint carries on under the Code" in added.stdout
    # One recorded earlier whose review date has now come (today is passed as then).
    due = casefiles.add_restriction(
        session, OTHER, reason="Threats", evidence="Statement", proportionality="Minimal",
        contact_route="Letters only", review_on=today, by="mgr-2",
        today=today - dt.timedelta(days=40))

    listed_due = json.loads(run("restriction", "list", "--due", "--json").stdout)
    assert [r["id"] for r in listed_due] == [due.id]
    assert [r["reference"] for r in json.loads(
        run("restriction", "list", "--json").stdout)] == [OTHER, REFERENCE]

    refused(run("restriction", "review", OTHER, str(due.id), "--outcome", "continue",
                "--note", "Still needed", "--by", "mgr-3"),
            "--next-review is needed with --outcome continue")
    next_review = str(today + dt.timedelta(days=60))
    reviewed = run("restriction", "review", OTHER, str(due.id), "--outcome", "continue",
                   "--note", "Still needed", "--next-review", next_review, "--by", "mgr-3")
    assert reviewed.exit_code == 0, reviewed.output
    assert json.loads(run("restriction", "list", "--due", "--json").stdout) == []

    refused(run("restriction", "review", OTHER, str(due.id), "--outcome", "lift", "--note",
                "Better", "--next-review", next_review, "--by", "mgr-3"),
            "not with --outcome lift")
    assert run("restriction", "review", OTHER, str(due.id), "--outcome", "lift", "--note",
               "Behaviour improved", "--by", "mgr-4").exit_code == 0
    refused(run("restriction", "review", OTHER, str(due.id), "--outcome", "continue",
                "--note", "x", "--next-review", next_review, "--by", "mgr-4"), "was lifted")
    refused(run("restriction", "review", REFERENCE, str(due.id), "--outcome", "lift",
                "--note", "x", "--by", "mgr-4"), f"no restriction {due.id} on {REFERENCE}")

    register = json.loads(run("restriction", "list", "--json").stdout)
    assert [r["status"] for r in register] == ["active", "lifted"]  # lifted ones last
    [entry] = [r for r in register if r["id"] == due.id]
    assert entry["status"] == "lifted" and entry["review_on"] is None
    assert [(h["action"], h["outcome"], h["by"]) for h in entry["history"]] == [
        ("added", None, "mgr-2"), ("reviewed", "continue", "mgr-3"),
        ("reviewed", "lift", "mgr-4")]
    assert entry["history"][1]["next_review_on"] == next_review
    assert entry["history"][1]["snapshot"]["review_on"] == next_review
    rows = session.exec(select(RestrictionHistoryRow)).all()
    assert len(rows) == 4 and all(r.at is not None for r in rows)


def test_restriction_fields_are_required_and_bounded(data_dir: Path) -> None:
    """Review dates must be in the future and within 6 months; texts non-blank and bounded."""
    today = casefiles.london_today()
    latest = add_calendar_months(today, casefiles.REVIEW_MAX_MONTHS)

    def add(*args: str, review: dt.date = today + dt.timedelta(days=7)) -> Result:
        return run("restriction", "add", REFERENCE, *RESTRICTION, *args, "--review-on",
                   str(review), "--by", "mgr-1")

    refused(add(review=today), "is not in the future")
    refused(add(review=latest + dt.timedelta(days=1)), "more than 6 months ahead",
            f"by {latest}")
    refused(add("--reason", "   "), "--reason: required, and may not be blank")
    refused(add("--evidence", "x" * (casefiles.MAX_TEXT + 1)),
            "--evidence: 10,001 characters, at most 10,000")
    refused(add("--contact-route", "email\u202eonly"), "--contact-route", "U+202E")
    assert json.loads(run("restriction", "list", "--json").stdout) == []
    assert add(review=latest).exit_code == 0  # exactly 6 months ahead is allowed
    missing = run("restriction", "add", REFERENCE, "--reason", "x", "--by", "mgr-1",
                  "--review-on", str(latest))
    assert missing.exit_code == 2 and "Missing option '--evidence'" in missing.stderr


def test_restriction_help_says_the_complaint_carries_on() -> None:
    """The register's help says the complaint carries on and states the 6-month rule."""
    for args in (["restriction", "--help"], ["restriction", "add", "--help"],
                 ["restriction", "review", "--help"]):
        text = " ".join(run(*args).stdout.split())
        assert "the complaint carries on under the Code" in text, args
    assert "at most 6 months ahead" in " ".join(run("restriction", "add", "--help")
                                                .stdout.split())


# --- triage ------------------------------------------------------------------------------


def test_triage_is_kept_and_the_latest_is_current(data_dir: Path, session: Session) -> None:
    """Every triage is kept, the latest wins, and current_triage returns it per case."""
    first = run("triage", REFERENCE, "--complexity", "high", "--vulnerability", "some",
                "--risk", "medium", "--note", "Asthma in the household", "--by", "mgr-1")
    assert first.exit_code == 0, first.output
    second = run("triage", REFERENCE, "--complexity", "low", "--vulnerability", "high",
                 "--risk", "high", "--by", "mgr-2")
    assert second.exit_code == 0, second.output
    shown = run("triage-show", REFERENCE).stdout.splitlines()
    assert shown[0].startswith(f"{REFERENCE}: current: complexity low, vulnerability high, "
                               "risk high (by mgr-2")
    assert "earlier: complexity high, vulnerability some, risk medium" in shown[-1]
    assert "not triaged yet" in run("triage-show", OTHER).stdout

    current = casefiles.current_triage(session, [REFERENCE, OTHER, UNKNOWN])
    assert set(current) == {REFERENCE}
    assert (current[REFERENCE].complexity, current[REFERENCE].vulnerability,
            current[REFERENCE].risk, current[REFERENCE].by) == ("low", "high", "high", "mgr-2")
    assert len(casefiles.triage_history(session, REFERENCE)) == 2
    bad = run("triage", REFERENCE, "--complexity", "extreme", "--vulnerability", "none",
              "--risk", "low", "--by", "mgr-1")
    assert bad.exit_code == 2 and "'extreme' is not one of" in bad.stderr
    assert len(casefiles.triage_history(session, REFERENCE)) == 2


def test_document_rows_are_unique_per_case_and_hash(session: Session, tmp_path: Path,
                                                    data_dir: Path) -> None:
    """The function API returns the existing row for the same bytes, never a second row."""
    source = write(tmp_path / "a.txt", b"Notes of the visit on 2 November\n")
    first = casefiles.attach_document(session, data_dir, REFERENCE, source, kind="report",
                                      direction="outbound", by="mgr-1")
    second = casefiles.attach_document(session, data_dir, REFERENCE, source, kind="other",
                                       direction="inbound")
    assert first.created and not second.created and second.row.id == first.row.id
    assert len(session.exec(select(DocumentRow)).all()) == 1
