"""Recording an event: the record and its letters in one transaction (issue 8, section 7).

Run in Temporal's ActivityEnvironment against real SQLite. ``record_case_event`` writes
the audit, the read model and the event's letters in one write transaction, then writes
the outbox files and records their delivery in a second: two takings of the database's
write lock per event with a letter, where there were four. A letter whose template lacks
what the Code requires is refused without losing the record.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func
from sqlmodel import Session, select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import complaints.letters as letters_module
from activities import (
    CaseworkActivities,
    LetterActivities,
    NotificationActivities,
    PolicyActivities,
    RecordActivities,
)
from activities import heartbeats as beats
from activities.casework import _CASE_RECORD, _policy
from activities.letter_writing import letter_request, letter_sources, write_letter
from activities.letters import outbox_paths
from complaints.db import make_engine, session_factory, upgrade
from domain.casebook import CaseBook
from domain.deadlines import london_time
from models.actions import Acknowledge, ContactDirection, RecordContact
from models.case import CaseFile, Channel
from models.events import CaseEvent, OpenCaseInput
from models.tables import AuditRow, DeliveryRow, LetterRow
from tests.cases import DEFINITION, STAGE1_HANDLER, Clock
from tests.conftest import make_intake
from tests.test_activities import _broken_connexus


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """An engine on a migrated SQLite database that counts its write transactions."""
    url = f"sqlite:///{(tmp_path / 'db' / 'complaints.db').as_posix()}"
    upgrade(url)
    engine = make_engine(url)
    engine.info = {"begins": 0}  # type: ignore[attr-defined]

    @event.listens_for(engine, "begin")
    def _count(_connection: Any) -> None:
        engine.info["begins"] += 1  # type: ignore[attr-defined]

    yield engine
    engine.dispose()


def _acknowledged(engine: Engine, outbox: Path) -> tuple[CaseworkActivities, CaseEvent]:
    """Casework activities and the event acknowledging a new case, earlier ones recorded."""
    casework, _, acknowledgement = _acknowledged_book(engine, outbox)
    return casework, acknowledgement


def _acknowledged_book(engine: Engine,
                       outbox: Path) -> tuple[CaseworkActivities, CaseBook, CaseEvent]:
    """As :func:`_acknowledged`, with the case book that queued the acknowledgement."""
    sessions = session_factory(engine)
    casework = CaseworkActivities(sessions, PolicyActivities(), RecordActivities(sessions),
                                  LetterActivities(sessions, outbox),
                                  NotificationActivities(sessions))
    received = dt.date(2026, 3, 2)
    intake = make_intake(received)
    book = CaseBook(intake, None, Clock(london_time(received, dt.time(10))), casework=2)
    book.opened(ActivityEnvironment().run(casework.open_case, OpenCaseInput(
        intake=intake, first_year=2026, last_year=2032)))
    book.accept(Acknowledge(by=STAGE1_HANDLER, handler_id=STAGE1_HANDLER,
                            definition=DEFINITION))
    *before, acknowledgement = book.queue
    assert acknowledgement.letters and not any(e.letters for e in before)
    for earlier in before:
        ActivityEnvironment().run(casework.record_case_event, earlier)
    book.queue.clear()
    return casework, book, acknowledgement


def _count(engine: Engine, table: Any, reference: str) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(table).where(
            table.reference == reference)).one()


def test_an_event_with_a_letter_takes_the_write_lock_twice(engine: Engine,
                                                          tmp_path: Path) -> None:
    """The record and its letter are one transaction, the outbox delivery a second."""
    casework, acknowledgement = _acknowledged(engine, tmp_path / "outbox")
    before = engine.info["begins"]  # type: ignore[attr-defined]
    recorded = ActivityEnvironment().run(casework.record_case_event, acknowledgement)
    assert engine.info["begins"] - before == 2  # type: ignore[attr-defined]
    (letter,) = recorded.letters
    assert letter.delivered_to == ("outbox",)
    assert all(p.exists() for p in outbox_paths(tmp_path / "outbox",
                                                acknowledgement.reference, letter.letter_id))


def test_a_repeated_event_stores_and_delivers_nothing_again(engine: Engine,
                                                           tmp_path: Path) -> None:
    """Recording the same event twice leaves one letter, one delivery and one audit set."""
    casework, acknowledgement = _acknowledged(engine, tmp_path / "outbox")
    env = ActivityEnvironment()
    first = env.run(casework.record_case_event, acknowledgement)
    audit = _count(engine, AuditRow, acknowledgement.reference)
    second = env.run(casework.record_case_event, acknowledgement)
    assert second.letters[0].sha256 == first.letters[0].sha256
    assert _count(engine, LetterRow, acknowledgement.reference) == 1
    assert _count(engine, AuditRow, acknowledgement.reference) == audit
    with Session(engine) as session:
        deliveries = session.exec(select(DeliveryRow).where(
            DeliveryRow.letter_id == first.letters[0].letter_id)).all()
    assert [(d.channel, d.status) for d in deliveries] == [("outbox", "sent")]


def test_an_incomplete_letter_is_refused_and_the_record_kept(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A template lacking Code elements keeps the record, refuses the letter; mended, sends."""
    casework, acknowledgement = _acknowledged(engine, tmp_path / "outbox")
    proper = letters_module.TEMPLATES_DIR
    monkeypatch.setattr(letters_module, "TEMPLATES_DIR", _broken_connexus(tmp_path))
    with pytest.raises(ApplicationError) as caught:
        ActivityEnvironment().run(casework.record_case_event, acknowledgement)
    assert caught.value.type == "LetterIncomplete"
    assert caught.value.non_retryable is True
    assert acknowledgement.audit  # so that the count below says the record was kept
    assert _count(engine, AuditRow, acknowledgement.reference) == len(acknowledgement.audit)
    assert _count(engine, LetterRow, acknowledgement.reference) == 0
    assert not (tmp_path / "outbox").exists()
    monkeypatch.setattr(letters_module, "TEMPLATES_DIR", proper)
    recorded = ActivityEnvironment().run(casework.record_case_event, acknowledgement)
    assert [r.delivered_to for r in recorded.letters] == [("outbox",)]
    assert _count(engine, LetterRow, acknowledgement.reference) == 1


def test_heartbeats_go_out_only_as_often_as_the_timeout_needs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A 40 s heartbeat timeout beats once per 10 s of an attempt; no timeout, never."""
    now = [1000.0]
    monkeypatch.setattr(beats.time, "monotonic", lambda: now[0])
    sent: list[tuple[object, ...]] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: sent.append(details)

    def attempt(token: bytes, timeout: dt.timedelta | None, *steps: float) -> None:
        env.info = dataclasses.replace(env.info, task_token=token, heartbeat_timeout=timeout,
                                       started_time=dt.datetime.now(dt.UTC))

        def run() -> None:
            for step in steps:
                now[0] += step
                beats.heartbeat(step)

        env.run(run)

    attempt(b"first", dt.timedelta(seconds=40), 0.01, 0.01, 11.0, 2.0, 9.0)
    assert sent == [(11.0,), (9.0,)]
    attempt(b"second", dt.timedelta(seconds=40), 0.01)
    assert sent == [(11.0,), (9.0,)]
    attempt(b"third", None, 60.0)
    assert len(sent) == 2


def test_a_template_error_keeps_the_record_and_the_retry_sends(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A template that fails to render keeps the record; the activity's retry sends."""
    casework, acknowledgement = _acknowledged(engine, tmp_path / "outbox")
    proper = letters_module.TEMPLATES_DIR
    root = tmp_path / "broken"
    (root / "connexus").mkdir(parents=True)
    (root / "default").symlink_to(proper / "default")
    for suffix in ("txt", "html"):
        (root / "connexus" / f"stage1_acknowledgement.{suffix}.j2").write_text(
            "{% if %}\n")  # a syntax error: jinja2 raises, not the completeness check
    monkeypatch.setattr(letters_module, "TEMPLATES_DIR", root)
    with pytest.raises(Exception) as caught:
        ActivityEnvironment().run(casework.record_case_event, acknowledgement)
    assert not isinstance(caught.value, ApplicationError)
    assert _count(engine, AuditRow, acknowledgement.reference) == len(acknowledgement.audit)
    assert _count(engine, LetterRow, acknowledgement.reference) == 0
    monkeypatch.setattr(letters_module, "TEMPLATES_DIR", proper)
    recorded = ActivityEnvironment().run(casework.record_case_event, acknowledgement)
    assert [r.delivered_to for r in recorded.letters] == [("outbox",)]
    assert _count(engine, AuditRow, acknowledgement.reference) == len(acknowledgement.audit)


def test_an_acceptance_repeated_later_takes_its_time_and_sends_nothing_again(
        engine: Engine, tmp_path: Path) -> None:
    """An event recorded again at a later time (its workflow task lost) takes that time."""
    casework, acknowledgement = _acknowledged(engine, tmp_path / "outbox")
    env = ActivityEnvironment()
    first = env.run(casework.record_case_event, acknowledgement)
    # What the next worker records after a kill: the same acceptance, seconds later.
    later = acknowledgement.at + dt.timedelta(seconds=12)
    again = acknowledgement.model_copy(update={
        "at": later, "audit": tuple(e.model_copy(update={"at": later})
                                    for e in acknowledgement.audit)})
    second = env.run(casework.record_case_event, again)
    assert [r.letter_id for r in second.letters] == [r.letter_id for r in first.letters]
    assert _count(engine, LetterRow, acknowledgement.reference) == 1
    with Session(engine) as session:
        times = {r.at.replace(tzinfo=dt.UTC) for r in session.exec(select(AuditRow).where(
            AuditRow.reference == acknowledgement.reference,
            AuditRow.seq.in_([e.seq for e in acknowledgement.audit])))}  # type: ignore[attr-defined]
        deliveries = session.exec(select(DeliveryRow).where(
            DeliveryRow.letter_id == first.letters[0].letter_id)).all()
    assert times == {later}
    assert len(deliveries) == 1


def test_with_a_reader_letters_are_rendered_outside_the_write_transaction(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given a read-only session, the letter is rendered before the write lock, unchanged."""
    casework, acknowledgement = _acknowledged(engine, tmp_path / "outbox")
    reader = make_engine(str(engine.url), read_only=True)
    casework.read_sessions = session_factory(reader)
    writing = {"open": False}
    event.listen(engine, "begin", lambda _c: writing.update(open=True))
    event.listen(engine, "commit", lambda _c: writing.update(open=False))
    event.listen(engine, "rollback", lambda _c: writing.update(open=False))
    inside: list[bool] = []
    render = casework.letters.render_checked

    def noted(request: Any) -> Any:
        inside.append(writing["open"])
        return render(request)

    monkeypatch.setattr(casework.letters, "render_checked", noted)
    before = engine.info["begins"]  # type: ignore[attr-defined]
    recorded = ActivityEnvironment().run(casework.record_case_event, acknowledgement)
    assert inside == [False]
    assert engine.info["begins"] - before == 2  # type: ignore[attr-defined]
    (letter,) = recorded.letters
    # The same letter as one rendered in the transaction (the path without a reader).
    request = ActivityEnvironment().run(
        casework.letters.render_checked, _request_of(casework, acknowledgement))
    assert letter.sha256 == _sha(request.text)
    reader.dispose()


def _request_of(casework: CaseworkActivities, acknowledgement: CaseEvent) -> Any:
    """The acknowledgement letter's request, written from the record as stored now."""
    with casework.session_factory() as session:
        row = session.connection().execute(
            _CASE_RECORD, {"reference": acknowledgement.reference}).one()
        case = CaseFile.model_validate_json(row.case_json)
        policy = _policy(row.policy_json)
        sources = letter_sources(session, acknowledgement, case)
    (spec,) = acknowledgement.letters
    return letter_request(spec, acknowledgement, write_letter(
        spec, acknowledgement, case, policy, *sources), policy)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _trail(engine: Engine, reference: str, after: int) -> list[tuple[str, str]]:
    """The case's audit entries after seq ``after``: action and a refusal batch's count."""
    with Session(engine) as session:
        rows = session.exec(select(AuditRow).where(
            AuditRow.reference == reference, AuditRow.seq > after).order_by(
            AuditRow.seq)).all()  # type: ignore[arg-type]
    return [(r.action, r.detail.split(" ")[0] if r.action == "refused_signals" else "")
            for r in rows]


def _refused(book: CaseBook, count: int) -> None:
    for _ in range(count):
        book.refuse("close", "integration", "the case is not resolved yet")


def _contact(book: CaseBook) -> None:
    book.accept(RecordContact(by=STAGE1_HANDLER, direction=ContactDirection.OUTBOUND,
                              channel=Channel.PHONE, summary="Called about the repair."))


@pytest.mark.parametrize(("first", "then", "expected"), [
    # The signals that arrived while the first attempt's task was failing join its batch.
    ([25], [1050], [("refused_signals", "1050")]),
    # The retried task holds an update the first did not: the contact comes first.
    ([25], [30, "contact"], [("record_contact", ""), ("refused_signals", "30")]),
    # ... and the other way round: the first attempt's extra entry is no one's.
    ([30, "contact"], [25], [("refused_signals", "25")]),
])
def test_an_event_built_again_after_a_lost_workflow_task_replaces_its_earlier_version(
        engine: Engine, tmp_path: Path, first: list[Any], then: list[Any],
        expected: list[tuple[str, str]]) -> None:
    """The latest event recorded again with other entries leaves only the later version."""
    casework, book, acknowledgement = _acknowledged_book(engine, tmp_path / "outbox")
    env = ActivityEnvironment()
    env.run(casework.record_case_event, acknowledgement)
    last = max(e.seq for e in acknowledgement.audit)
    events = []
    for steps in (first, then):
        # Each attempt starts from the state the history holds: the acknowledgement.
        attempt = copy.deepcopy(book)
        for step in steps:
            if step == "contact":
                _contact(attempt)
            else:
                _refused(attempt, step)
        if not attempt.queue:  # an action queues its own event, refusals the main loop
            attempt.queue_event()
        (event,) = attempt.queue
        events.append(event)
        env.run(casework.record_case_event, event)
    assert events[0].seq == events[1].seq
    assert _trail(engine, acknowledgement.reference, last) == expected
    # The record is the later version's case file and deadlines, the workflow's own.
    with Session(engine) as session:
        row = session.connection().execute(
            _CASE_RECORD, {"reference": acknowledgement.reference}).one()
    assert CaseFile.model_validate_json(row.case_json).model_dump(exclude={"audit"}) \
        == attempt.case.model_dump(exclude={"audit"})
    assert json.loads(row.deadlines_json) == [d.model_dump(mode="json")
                                              for d in attempt.deadlines]
