"""Letters and documents survive a power loss once recorded: files and their names flushed.

A power loss cannot be caused here, so these tests watch the calls that make data durable
instead: ``os.fsync`` is wrapped (the real one still runs) to record what was flushed, in
order, with the moment a letter's delivery is recorded. A file's own ``fsync`` is not
enough: until its folder is flushed too, a power loss can take its new name away.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from activities.letters import LetterActivities, outbox_paths
from complaints.casefile_documents import attach_document, documents_dir
from complaints.db import make_engine, session_factory, upgrade
from complaints.files import write_private_files
from models.messages import SendLetterInput
from models.tables import ComplaintRow
from tests.test_casefiles import PDF
from tests.test_file_modes import REFERENCE, an_acknowledgement


def _flushes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Path]]:
    """Record each ``fsync`` as ``("folder" | "file", path)``, in order, and run it."""
    seen: list[tuple[str, Path]] = []
    real: Callable[[int], None] = os.fsync

    def fsync(fd: int) -> None:
        kind = "folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        seen.append((kind, Path(os.readlink(f"/proc/self/fd/{fd}"))))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names fds through /proc")
def test_a_letter_is_durable_before_its_delivery_is_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both letter files, their new case folder and the outbox are flushed before the record."""
    url = f"sqlite:///{(tmp_path / 'complaints.db').as_posix()}"
    upgrade(url)
    engine = make_engine(url)
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    letter = an_acknowledgement()
    letter_id = f"{REFERENCE}:stage1_acknowledgement:1:1"
    activities = LetterActivities(session_factory(engine), outbox)
    seen = _flushes(monkeypatch)
    record = activities._record_delivery

    def recorded(*args: object, **kwargs: object) -> None:
        seen.append(("recorded", Path()))
        record(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(activities, "_record_delivery", recorded)
    ActivityEnvironment().run(activities.send_letter, SendLetterInput(
        letter_id=letter_id, reference=REFERENCE, stage=1, seq=1, template_set="connexus",
        letter=letter))
    engine.dispose()
    text_path, html_path = outbox_paths(outbox, REFERENCE, letter_id)
    before = seen[:seen.index(("recorded", Path()))]
    folder = ("folder", text_path.parent.resolve())
    assert ("folder", outbox.resolve()) in before  # the new case folder's name
    assert folder in before
    # The folder is flushed after both files were renamed into it (their names).
    assert text_path.exists() and html_path.exists()
    files = [i for i, (kind, _) in enumerate(before) if kind == "file"]
    assert len(files) >= 2 and before.index(folder) > max(files)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names fds through /proc")
def test_a_rewritten_file_is_replaced_whole_and_its_name_flushed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rewriting flushes the folder again; a failed write leaves the old file and no litter."""
    folder = tmp_path / "case"
    write_private_files(folder, {"a.txt": "first", "b.bin": b"\x00\x01"})
    seen = _flushes(monkeypatch)
    write_private_files(folder, {"a.txt": "second"})
    assert seen[-1] == ("folder", folder.resolve())
    assert (folder / "a.txt").read_text() == "second"

    def failing(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(OSError):
        write_private_files(folder, {"a.txt": "third"})
    assert (folder / "a.txt").read_text() == "second"
    assert sorted(p.name for p in folder.iterdir()) == ["a.txt", "b.bin"]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names fds through /proc")
def test_an_attached_document_and_its_folders_are_flushed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A case's first document flushes the file, its folder, and the new folders' parents."""
    url = f"sqlite:///{(tmp_path / 'complaints.db').as_posix()}"
    upgrade(url)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    source = tmp_path / "evidence.pdf"
    source.write_bytes(PDF)
    engine = make_engine(url)
    with session_factory(engine)() as session:
        session.add(ComplaintRow(reference=REFERENCE, landlord="Connexus",
                                 policy_name="connexus", channel="phone", category="repairs",
                                 received_on=dt.date(2026, 11, 20), description="A leak"))
        session.commit()
        seen = _flushes(monkeypatch)
        attach_document(session, data_dir, REFERENCE, source, kind="photo",
                        direction="inbound", by="officer-1")
    engine.dispose()
    folder = documents_dir(data_dir, REFERENCE).resolve()
    folders = [path for kind, path in seen if kind == "folder"]
    assert [kind for kind, _ in seen].count("file") == 1
    assert folder in folders and folders[-1] == folder
    assert folder.parent in folders and data_dir.resolve() in folders
