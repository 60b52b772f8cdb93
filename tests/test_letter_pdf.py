"""Letters as sent: accessible PDFs printed once and kept, incomplete letters stopped.

The PDF (PDF/UA-1, WeasyPrint) is stored with the letter and written to the outbox beside
the text and HTML; a retry never prints a delivered letter again. End to end on the
``Complaint`` workflow: a case's letters carry their PDFs, and a landlord override that
drops what the Code requires stops the letter and tells the case's manager.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import re
import stat
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import Session, select
from temporalio.testing import ActivityEnvironment

import activities.letters as letter_activities
import complaints.letters as letters_module
from activities.letters import LetterActivities, outbox_paths, outbox_pdf_path
from complaints.db import make_engine, session_factory, upgrade
from complaints.letters import render_letter, render_pdf
from models.actions import Acknowledge, Extend
from models.case import Adjustment
from models.letters import Letter, LetterKind
from models.messages import SendLetterInput
from models.tables import DeliveryRow, LetterRow, NotificationRow
from tests.cases import DEFINITION, STAGE1_HANDLER
from tests.conftest import Stack, make_intake
from tests.test_letters import make_letter
from tests.test_workflow import do, started

REFERENCE = "CMP-2026-000123"
LETTER_ID = f"{REFERENCE}:stage1_response:1:1"


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[Callable[[], Session]]:
    """A session factory on a migrated SQLite database in a temporary folder."""
    url = f"sqlite:///{(tmp_path / 'db' / 'complaints.db').as_posix()}"
    upgrade(url)
    engine = make_engine(url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def printed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count the PDFs the letter activity prints (each call's letter subject)."""
    calls: list[str] = []

    def counting(rendered: Any) -> bytes:
        calls.append(rendered.subject)
        return render_pdf(rendered)

    monkeypatch.setattr(letter_activities, "render_pdf", counting)
    return calls


def _input(letter: Letter | None = None, template_set: str = "connexus") -> SendLetterInput:
    """A large-print letter: printed when sent (others are printed when first asked for)."""
    return SendLetterInput(letter_id=LETTER_ID, reference=REFERENCE, stage=1, seq=1,
                           template_set=template_set,
                           letter=letter or make_letter(LetterKind.STAGE1_RESPONSE,
                                                        large_print=True))


def _pdf_content(pdf: bytes) -> bytes:
    """The PDF's bytes with every Flate stream inflated (object streams, page content)."""
    parts = [pdf]
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            parts.append(zlib.decompress(match.group(1)))
        except zlib.error:
            continue
    return b"\n".join(parts)


def _base_font_size(pdf: bytes) -> float:
    """The font size most of the PDF's text is set in (in the PDF's own text units)."""
    sizes = collections.Counter(re.findall(rb"/\w+ ([\d.]+) Tf", _pdf_content(pdf)))
    return float(sizes.most_common(1)[0][0])


def _row(sessions: Callable[[], Session]) -> LetterRow:
    with sessions() as session:
        row = session.get(LetterRow, LETTER_ID)
    assert row is not None
    return row


# --- the PDF itself ----------------------------------------------------------------------


def test_pdf_is_a_tagged_pdf_ua_document_titled_with_the_subject() -> None:
    """The PDF is PDF/UA-1: tagged, titled with the subject (shown as title), in en-GB."""
    letter = make_letter(LetterKind.STAGE1_RESPONSE)
    rendered = render_letter(letter, "connexus")
    pdf = render_pdf(rendered)
    content = _pdf_content(pdf)
    assert pdf.startswith(b"%PDF-")
    assert f"/Title ({letter.subject()})".encode() in content
    assert b"/Lang (en-GB)" in content
    assert b"/MarkInfo <</Marked true" in content
    assert b"/StructTreeRoot" in content
    assert b"/DisplayDocTitle true" in content
    assert b'pdfuaid:part="1"' in content


def test_the_same_letter_prints_the_same_bytes() -> None:
    """Printing is deterministic, so a PDF's SHA-256 identifies the letter it prints."""
    rendered = render_letter(make_letter(LetterKind.EXTENSION))
    assert render_pdf(rendered) == render_pdf(rendered)


def test_large_print_pdf_sets_the_text_at_16pt_or_more() -> None:
    """A large-print letter's body text is 16pt where a standard one's is 12pt."""
    standard = _base_font_size(render_pdf(render_letter(make_letter(LetterKind.EXTENSION))))
    large = _base_font_size(render_pdf(render_letter(
        make_letter(LetterKind.EXTENSION, large_print=True))))
    assert large / standard == pytest.approx(16 / 12, rel=0.01)


def test_pdf_fetches_nothing_from_outside(tmp_path: Path) -> None:
    """An image or stylesheet named in a letter's HTML is not fetched into the PDF."""
    from PIL import Image

    style = tmp_path / "big.css"
    style.write_text("html, body, p, li { font-size: 40px !important }")
    picture = tmp_path / "dot.png"
    Image.new("RGB", (8, 8), "red").save(picture)
    rendered = render_letter(make_letter(LetterKind.EXTENSION))
    html = rendered.html.replace("</head>", f'<link rel="stylesheet" href="file://{style}">'
                                            "</head>").replace(
        "<main>", f'<main><img src="file://{picture}" alt="a dot">')
    plain = render_pdf(rendered)
    with_links = render_pdf(rendered.model_copy(update={"html": html}))
    assert b"/Subtype /Image" not in _pdf_content(with_links)
    assert _base_font_size(with_links) == _base_font_size(plain)


# --- kept with the letter, written to the outbox ----------------------------------------


def _store_without_delivering(sessions: Callable[[], Session], outbox: Path,
                              input: SendLetterInput, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run send_letter until the letter is stored, then fail as a crash would."""
    activities = LetterActivities(sessions, outbox)

    def crash(*args: Any) -> str:
        raise OSError("disk unplugged")

    with monkeypatch.context() as patch:
        patch.setattr(activities, "_deliver_to_outbox", crash)
        with pytest.raises(OSError):
            ActivityEnvironment().run(activities.send_letter, input)


def test_pdf_is_stored_with_the_letter_and_written_to_the_outbox(
        sessions: Callable[[], Session], tmp_path: Path) -> None:
    """The PDF and its SHA-256 are on the letter's row; the outbox has it as a 0600 file."""
    outbox = tmp_path / "outbox"
    ActivityEnvironment().run(LetterActivities(sessions, outbox).send_letter, _input())
    row = _row(sessions)
    assert row.pdf is not None and row.pdf.startswith(b"%PDF-")
    assert row.pdf_sha256 == hashlib.sha256(row.pdf).hexdigest()
    assert row.pdf == render_pdf(render_letter(make_letter(LetterKind.STAGE1_RESPONSE,
                                                           large_print=True), "connexus"))
    text_path, html_path = outbox_paths(outbox, REFERENCE, LETTER_ID)
    pdf_path = outbox_pdf_path(outbox, REFERENCE, LETTER_ID)
    assert pdf_path == text_path.with_suffix(".pdf") and pdf_path.parent == html_path.parent
    assert pdf_path.read_bytes() == row.pdf
    assert stat.S_IMODE(pdf_path.stat().st_mode) == 0o600
    assert sorted(p.name for p in pdf_path.parent.iterdir()) == sorted(
        [text_path.name, html_path.name, pdf_path.name])


def test_a_retry_never_prints_a_delivered_letter_again(
        sessions: Callable[[], Session], tmp_path: Path, printed: list[str]) -> None:
    """Once delivered, a letter is not printed again, even when the templates changed."""
    activities = LetterActivities(sessions, tmp_path / "outbox")
    env = ActivityEnvironment()
    first = env.run(activities.send_letter, _input())
    stored = _row(sessions)
    second = env.run(activities.send_letter, _input())
    third = env.run(activities.send_letter, _input(template_set="default"))
    assert len(printed) == 1
    assert first == second == third
    after = _row(sessions)
    assert (after.pdf, after.pdf_sha256, after.html) == (stored.pdf, stored.pdf_sha256,
                                                        stored.html)


def test_a_retry_after_storing_writes_the_stored_pdf_without_printing(
        sessions: Callable[[], Session], tmp_path: Path, printed: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash between storing and the outbox: the retry writes the stored PDF, unprinted."""
    outbox = tmp_path / "outbox"
    _store_without_delivering(sessions, outbox, _input(), monkeypatch)
    assert len(printed) == 1 and not outbox_pdf_path(outbox, REFERENCE, LETTER_ID).exists()
    ActivityEnvironment().run(LetterActivities(sessions, outbox).send_letter, _input())
    assert len(printed) == 1
    assert outbox_pdf_path(outbox, REFERENCE, LETTER_ID).read_bytes() == _row(sessions).pdf


def test_an_undelivered_letter_that_changed_is_printed_again(
        sessions: Callable[[], Session], tmp_path: Path, printed: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A stored, never delivered letter that renders differently now is printed again."""
    _store_without_delivering(sessions, tmp_path / "outbox", _input(), monkeypatch)
    before = _row(sessions)
    ActivityEnvironment().run(LetterActivities(sessions, tmp_path / "outbox").send_letter,
                              _input(template_set="default"))
    after = _row(sessions)
    assert len(printed) == 2
    assert after.sha256 != before.sha256 and after.pdf_sha256 != before.pdf_sha256
    assert after.pdf == render_pdf(render_letter(make_letter(LetterKind.STAGE1_RESPONSE,
                                                             large_print=True)))


def test_a_letter_stored_before_pdfs_is_printed_only_if_not_delivered(
        sessions: Callable[[], Session], tmp_path: Path, printed: list[str]) -> None:
    """A row from before revision 0009 gets its PDF when sent; a delivered one never does."""
    activities = LetterActivities(sessions, tmp_path / "outbox")
    env = ActivityEnvironment()
    env.run(activities.send_letter, _input())
    with sessions() as session:  # as an older version left it: delivered, no PDF
        session.execute(update(LetterRow).values(pdf=None, pdf_sha256=None))
        session.commit()
    env.run(activities.send_letter, _input())
    assert _row(sessions).pdf is None and len(printed) == 1
    with sessions() as session:  # stored, not delivered yet
        for delivery in session.exec(select(DeliveryRow)).all():
            session.delete(delivery)
        session.commit()
    env.run(activities.send_letter, _input())
    row = _row(sessions)
    assert len(printed) == 2
    assert row.pdf is not None and row.pdf_sha256 == hashlib.sha256(row.pdf).hexdigest()
    assert outbox_pdf_path(tmp_path / "outbox", REFERENCE, LETTER_ID).read_bytes() == row.pdf


# --- end to end, on the Complaint workflow ---------------------------------------------------


def test_an_ordinary_letter_is_printed_when_first_asked_for_and_kept(
        sessions: Callable[[], Session], tmp_path: Path, printed: list[str]) -> None:
    """Without a large-print adjustment nothing is printed on sending; asking prints it once."""
    outbox = tmp_path / "outbox"
    activities = LetterActivities(sessions, outbox)
    ordinary = _input(make_letter(LetterKind.STAGE1_RESPONSE))
    ActivityEnvironment().run(activities.send_letter, ordinary)
    assert printed == [] and _row(sessions).pdf is None
    assert not outbox_pdf_path(outbox, REFERENCE, LETTER_ID).exists()
    first = activities.print_letter(LETTER_ID)
    again = activities.print_letter(LETTER_ID)
    assert len(printed) == 1 and first.pdf == again.pdf == _row(sessions).pdf
    assert first.pdf is not None and first.pdf.startswith(b"%PDF-")
    assert first.sha256 == _row(sessions).sha256  # the letter itself is unchanged
    with pytest.raises(LookupError):
        activities.print_letter("CMP-2026-999999:stage1_response:1:1")


async def test_a_large_print_case_has_its_letters_printed_and_posted(stack: Stack) -> None:
    """With a large-print adjustment each letter is stored with its PDF and put in the outbox."""
    intake = make_intake(adjustments=(Adjustment(description="Large print letters"),))
    async with stack.worker():
        handle = await stack.lodge(intake)
        await started(handle)
        await do(handle, Acknowledge(by=STAGE1_HANDLER, handler_id=STAGE1_HANDLER,
                                     definition=DEFINITION))
        current = await do(handle, Extend(by=STAGE1_HANDLER, working_days=5,
                                          reason="A roofer must inspect"))
    assert [r.kind.value for r in current.letters] == ["stage1_acknowledgement", "extension"]
    outbox = stack.settings.effective_outbox()
    with stack.session() as session:
        for record in current.letters:
            row = session.get(LetterRow, record.letter_id)
            assert row is not None and row.pdf is not None
            assert row.pdf.startswith(b"%PDF-")
            assert row.pdf_sha256 == hashlib.sha256(row.pdf).hexdigest()
            assert f"/Title ({row.subject})".encode() in _pdf_content(row.pdf)
            path = outbox_pdf_path(outbox, handle.id, record.letter_id)
            assert path.read_bytes() == row.pdf


def _broken_connexus(tmp_path: Path) -> Path:
    """Templates whose connexus acknowledgement leaves out the definition and the dates."""
    root = tmp_path / "templates"
    (root / "connexus").mkdir(parents=True)
    (root / "default").symlink_to(letters_module.TEMPLATES_DIR / "default")
    for suffix in ("txt", "html"):
        (root / "connexus" / f"stage1_acknowledgement.{suffix}.j2").write_text(
            f'{{% extends "_layout.{suffix}.j2" %}}\n{{% block body %}}\nWe have your '
            f'complaint.\n{{% include "_ombudsman.{suffix}.j2" %}}\n{{% endblock %}}\n')
    return root


async def test_an_incomplete_letter_reaches_the_manager_not_the_resident(
        stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken override stops the letter; the manager is told which provisions, no values."""
    monkeypatch.setattr(letters_module, "TEMPLATES_DIR", _broken_connexus(tmp_path))
    intake = make_intake()
    async with stack.worker():
        handle = await stack.lodge(intake)
        await started(handle)
        current = await do(handle, Acknowledge(by=STAGE1_HANDLER, handler_id=STAGE1_HANDLER,
                                               definition=DEFINITION))
        assert current.state == "stage1_investigating"  # the case itself moved on
        notices: list[NotificationRow] = []
        for _ in range(100):
            with stack.session() as session:
                notices = list(session.exec(select(NotificationRow).where(
                    NotificationRow.reference == handle.id,
                    NotificationRow.kind == "action_refused")).all())
            if notices:
                break
            await asyncio.sleep(0.1)
    [notice] = notices
    assert notice.recipient_id == intake.manager_id
    assert "LetterIncomplete: stage1_acknowledgement letter from template set 'connexus'" \
        in notice.message
    for label in ("6.2 stage", "5.6 summary", "5.6 point 1", "6.3 response due", "handler"):
        assert label in notice.message
    response_due = next(d.due for d in current.deadlines if d.key == "stage1_response#1")
    party = intake.parties[0]
    for value in (party.name, *party.address, intake.description, DEFINITION.summary,
                  *DEFINITION.points, f"{response_due:%-d %B %Y}", STAGE1_HANDLER):
        assert value not in notice.message
    with stack.session() as session:
        assert session.exec(select(LetterRow).where(LetterRow.reference == handle.id)).all() \
            == []
    assert not (stack.settings.effective_outbox() / handle.id).exists()
