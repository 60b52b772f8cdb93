"""Subject access: one person's cases as an archive with a readable index, and nobody else's.

Cases are seeded straight into a database (as in ``tests/test_retention.py``): one
resident's, with data in every table, and another resident's beside it.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError
from sqlmodel import Session, select

from complaints.identity import Identity
from complaints.subject_access import SubjectTerms, export, find_cases, terms_digest
from models.access import CaseViewRow
from models.tables import ComplaintRow, LetterRow, PartyRow, SubjectAccessRow
from tests.api_support import running_api
from tests.conftest import Stack
from tests.test_retention import ADDRESS, EMAIL, LESSONS, NAME, Place, seed_case, seed_learning

MINE = "CMP-2019-000001"
THEIRS = "CMP-2019-000002"
#: The other resident's distinctive strings: none may be in the first one's archive.
OTHER_MARKS = ("Barnaby", "Otterpool", "Quince Lane", "bo.other@example.invalid",
               "Gooseberry")
LEAD = Identity(staff_id="lead-1", display_name="Lead", team="Quality", roles=("lead",),
                via="cli")


def seed_other(session: Session, reference: str = THEIRS) -> None:
    """Another resident's case, with a letter."""
    session.add(ComplaintRow(reference=reference, landlord="Connexus", policy_name="connexus",
                             channel="email", category="repairs",
                             received_on=dt.date(2019, 3, 1),
                             description="Gooseberry bush blocking the path"))
    session.add(PartyRow(reference=reference, position=1, role="resident",
                         name="Barnaby Otterpool", address="4 Quince Lane\nLudlow",
                         email="bo.other@example.invalid", phone="01584 000111"))
    session.add(LetterRow(letter_id=f"{reference}:ack:1", reference=reference,
                          kind="stage1_acknowledgement", stage=1, seq=1,
                          subject=f"Your complaint {reference}",
                          text="Dear Barnaby Otterpool", html="<p>Dear Barnaby</p>",
                          sha256="2" * 64))
    session.commit()


@pytest.fixture
def place(tmp_path: Path) -> Place:
    """Two residents' cases in a fresh database."""
    made = Place(tmp_path)
    with made.sessions() as session:
        seed_case(session, made.root, made.outbox, MINE)
        seed_other(session)
    return made


def members(data: bytes) -> dict[str, bytes]:
    """The archive's files by name."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_archive_holds_the_persons_cases_with_an_index(place: Place) -> None:
    """Every kind of record is there, the index links to each, and it is all recorded."""
    terms = SubjectTerms(name=NAME, email=EMAIL.upper())
    with place.sessions() as session:
        made = export(session, place.root, terms, LEAD, "cli")
    files = members(made.data)
    case = f"cases/{MINE}"
    expected = {"index.html", "index.txt", f"{case}/record.json",
                f"{case}/contact-notes.json", f"{case}/triage.json",
                f"{case}/adjustments.json", f"{case}/audit.json"}
    assert made.references == [MINE] and expected <= set(files)
    letters = sorted(n for n in files if n.startswith(f"{case}/letters/"))
    assert [Path(n).suffix for n in letters] == [".pdf", ".txt"]
    documents = [n for n in files if n.startswith(f"{case}/documents/")]
    assert len(documents) == 1 and b"xylophone-shaped patch" in files[documents[0]]
    assert made.files == len(files)
    index = files["index.html"].decode()
    for name in sorted(set(files) - {"index.html", "index.txt"}):
        assert f'href="{name}"' in index
    assert NAME.encode() in files[f"{case}/record.json"]
    assert b"Called Zephyrine Quillfeather" in files[f"{case}/contact-notes.json"]
    assert b"sight loss" in files[f"{case}/triage.json"]
    assert f"Case {MINE}" in files["index.txt"].decode()
    everything = b"\n".join(files.values()).decode("utf-8", "replace")
    assert [m for m in OTHER_MARKS if m in everything] == []
    with place.sessions() as session:
        views = session.exec(select(CaseViewRow)).all()
        logged = session.exec(select(SubjectAccessRow)).one()
    assert [(v.reference, v.staff_id, v.what, v.via) for v in views] == [
        (MINE, "lead-1", "subject_access", "cli")]
    assert (logged.cases, logged.files, logged.staff_id) == (1, made.files, "lead-1")
    assert logged.terms_sha256 == terms_digest(terms)
    assert "quillfeather" not in place.dump().split("subject_access_requests", 1)[1].lower()


def test_archive_holds_the_learning_recorded_on_the_persons_case(place: Place) -> None:
    """The case record carries its learning: the lessons (they may name them) and the tags."""
    with place.sessions() as session:
        seed_learning(session, MINE)
        made = export(session, place.root, SubjectTerms(name=NAME, email=EMAIL), LEAD, "cli")
    record = json.loads(members(made.data)[f"cases/{MINE}/record.json"])
    assert [(r["reference"], r["stage"], r["lessons"], r["themes"], r["root_causes"])
            for r in record["learning"]] == [
        (MINE, 1, LESSONS, ["damp_and_mould"], ["missed_appointment"])]


def test_matching_by_phone_or_name_and_address(place: Place) -> None:
    """A UK number in international form, or the name with the first address line, match."""
    with place.sessions() as session:
        by_phone = find_cases(session, SubjectTerms(name="anyone", phone="+44 7700 900517"))
        by_address = find_cases(session, SubjectTerms(name=NAME.upper(),
                                                      address=f"  {ADDRESS.lower()} "))
        wrong_name = find_cases(session, SubjectTerms(name="Someone Else", address=ADDRESS))
        nobody = find_cases(session, SubjectTerms(name=NAME, email="nobody@example.invalid"))
    assert (by_phone, by_address, wrong_name, nobody) == ([MINE], [MINE], [], [])


def test_a_name_alone_is_refused() -> None:
    """Two people share names: a name needs an email, a phone or an address with it."""
    with pytest.raises(ValidationError, match="a name alone is not enough"):
        SubjectTerms(name=NAME)


def test_no_match_still_answers_with_an_index(place: Place) -> None:
    """Nobody found: the archive says that no case names them, and nothing else."""
    with place.sessions() as session:
        made = export(session, place.root, SubjectTerms(name="X Y", email="x@example.invalid"),
                      LEAD, "cli")
    files = members(made.data)
    assert set(files) == {"index.html", "index.txt"}
    assert "No complaint case names you." in files["index.txt"].decode()


def test_cli_writes_the_archive(place: Place, monkeypatch: pytest.MonkeyPatch) -> None:
    """`complaints subject-access` writes a private zip and says how many cases it holds."""
    from complaints.cli import cli

    monkeypatch.setenv("COMPLAINTS_ENV_FILE", str(place.root / "absent.env"))
    monkeypatch.setenv("DATA_DIR", str(place.root))
    monkeypatch.setenv("DATABASE_URL", place.url)
    out = place.root / "sar.zip"
    args = ["subject-access", "--name", NAME, "--email", EMAIL, "--out", str(out),
            "--by", "lead-1"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "1 case(s)" in result.output and MINE in result.output
    assert out.stat().st_mode & 0o077 == 0 and "index.html" in members(out.read_bytes())
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 1 and "exists already" in again.stderr
    alone = CliRunner().invoke(cli, ["subject-access", "--name", NAME, "--out",
                                     str(place.root / "x.zip"), "--by", "lead-1"])
    assert alone.exit_code == 1 and "a name alone is not enough" in alone.stderr


async def test_api_exports_for_a_lead_and_refuses_a_handler(stack: Stack) -> None:
    """POST /subject-access: a zip for the lead, 403 for a handler, and 405 for a GET."""
    async with running_api(stack) as api:
        with api.context.session() as session:
            seed_case(session, stack.settings.data_dir, stack.settings.effective_outbox(),
                      MINE)
            seed_other(session)
        body = {"name": NAME, "email": EMAIL}
        refused = await api.http.post("/api/v1/subject-access", json=body,
                                      headers=api.auth("hdl-1"))
        got = await api.http.post("/api/v1/subject-access", json=body,
                                  headers=api.auth("lead-1"))
        as_query = await api.http.get("/api/v1/subject-access", params=body,
                                      headers=api.auth("lead-1"))
        alone = await api.http.post("/api/v1/subject-access", json={"name": NAME},
                                    headers=api.auth("lead-1"))
    assert refused.status_code == 403 and "subject access" in refused.json()["detail"]
    assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
    assert got.headers["x-cases"] == "1" and f"cases/{MINE}/record.json" in members(
        got.content)
    assert as_query.status_code == 405
    assert alone.status_code == 422 and NAME not in alone.text


async def test_api_erasure_refused_then_allowed(stack: Stack) -> None:
    """POST /complaints/REF/erasure: 403 for a handler, 409 on an open case, 200 when closed."""
    async with running_api(stack) as api:
        with api.context.session() as session:
            seed_case(session, stack.settings.data_dir, stack.settings.effective_outbox(),
                      MINE)
            seed_case(session, stack.settings.data_dir, stack.settings.effective_outbox(),
                      "CMP-2019-000003", closed=False)
        body = {"reason": "Letter of 3 May 2026"}
        handler = await api.http.post(f"/api/v1/complaints/{MINE}/erasure", json=body,
                                      headers=api.auth("hdl-1"))
        still_open = await api.http.post("/api/v1/complaints/CMP-2019-000003/erasure",
                                         json=body, headers=api.auth("lead-1"))
        unknown = await api.http.post("/api/v1/complaints/CMP-2019-000009/erasure",
                                      json=body, headers=api.auth("adm-1"))
        done = await api.http.post(f"/api/v1/complaints/{MINE}/erasure", json=body,
                                   headers=api.auth("adm-1"))
        with api.context.session() as session:
            party = session.exec(select(PartyRow).where(PartyRow.reference == MINE)).one()
    assert handler.status_code == 403 and "erase" in handler.json()["detail"]
    assert still_open.status_code == 409
    assert "still open" in still_open.json()["detail"]
    assert still_open.headers["content-type"] == "application/problem+json"
    assert unknown.status_code == 404
    assert done.status_code == 200 and done.json()["letters"] == 1
    assert party.name == "[erased]"


def test_archive_holds_the_persons_service_requests(place: Place) -> None:
    """A service request the person made is exported and indexed; another's is not."""
    from models.service_requests import ServiceRequestRow

    with place.sessions() as session:
        for number, (name, email, text) in enumerate(
                [(NAME, EMAIL, "Dripping tap in the kitchen"),
                 ("Barnaby Otterpool", "bo.other@example.invalid", "Gooseberry hedge")], 1):
            session.add(ServiceRequestRow(
                id=f"SR-2019-{number:06d}", year=2019, seq=number, channel="phone",
                category="repairs", received_on=dt.date(2019, 2, number),
                target_date=dt.date(2019, 3, 1), resident_name=name, resident_email=email,
                description=text, logged_by="hdl-1"))
        session.commit()
        made = export(session, place.root, SubjectTerms(name=NAME, email=EMAIL), LEAD, "cli")
    files = members(made.data)
    assert b"Dripping tap" in files["service-requests/SR-2019-000001.json"]
    assert "service-requests/SR-2019-000002.json" not in files
    assert 'href="service-requests/SR-2019-000001.json"' in files["index.html"].decode()
    assert "Service request SR-2019-000001" in files["index.txt"].decode()
    everything = b"\n".join(files.values()).decode("utf-8", "replace")
    assert "Gooseberry" not in everything
