"""`complaints resync`: a restored or lost database rebuilt from Temporal, with no gap."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from activities.letters import LetterActivities
from complaints.db import make_engine
from complaints.lodging import intake_fingerprint
from complaints.resync import Recorders, resync_case
from models.actions import Extend
from models.tables import AuditRow
from tests.cases import STAGE1_HANDLER, respond_to
from tests.conftest import Stack, make_intake
from tests.db_loss import (
    ACKNOWLEDGE,
    COMPLAINTS,
    backup_sqlite,
    do,
    outbox_state,
    records,
    run,
    settled,
    start_v1,
    started,
    subprocess_env,
    times,
    v1_worker,
    view,
)

#: Resync does not replay staff notifications (they were sent; replaying could repeat).
NOT_REBUILT = {"notifications"}


def _database(stack: Stack) -> Path:
    return Path(stack.settings.effective_database_url().removeprefix("sqlite:///"))


def _no_delivery(*_args: Any, **_kwargs: Any) -> None:
    raise AssertionError("resync tried to deliver a letter")


async def test_restore_then_resync_leaves_no_gap(stack: Stack, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A restored backup lacks later records; resync restores them exactly, delivering nothing."""
    intake = make_intake()
    reference = intake.reference
    backup = tmp_path / "backup.db"
    async with v1_worker(stack):
        handle = await start_v1(stack, intake)
        await started(handle)
        await do(handle, ACKNOWLEDGE)
        backup_sqlite(_database(stack), backup)
        await do(handle, Extend(by=STAGE1_HANDLER, working_days=5,
                                reason="A surveyor must inspect the roof"))
        await do(handle, respond_to((await view(handle)).case, STAGE1_HANDLER))
        await settled(stack, handle)
    live = make_engine(stack.settings.effective_database_url())
    before, when = records(live, reference), times(live, reference)
    live.dispose()
    outbox = stack.settings.effective_outbox()
    files = outbox_state(outbox)
    assert before["letters"] and before["deliveries"] and before["ombudsman_details"]

    # The backup restored (in a file of its own: this process still has the live one open).
    engine = make_engine(f"sqlite:///{backup}")
    restored = records(engine, reference)
    lost = {t: len(before[t]) - len(restored[t]) for t in before if t not in NOT_REBUILT}
    assert lost["audit_events"] > 0 and lost["letters"] > 0 and lost["deadlines"] > 0
    assert restored["complaints"] != before["complaints"]  # the case row is behind

    monkeypatch.setattr(LetterActivities, "_deliver_to_outbox", _no_delivery)
    monkeypatch.setattr(LetterActivities, "_deliver_by_email", _no_delivery)
    recorders = Recorders.for_engine(engine, outbox)
    first = await resync_case(stack.env.client, recorders, engine, reference)
    assert first.error is None, first.error
    after = records(engine, reference)

    # The references row comes back from the workflow's input, fingerprint included.
    [(ref, year, seq, channel, channel_reference, fingerprint)] = after.pop("references")
    before.pop("references")
    assert (ref, year, seq) == (reference, int(reference[4:8]), int(reference[9:]))
    assert (channel, channel_reference) == (intake.channel.value, intake.channel_reference)
    assert fingerprint == intake_fingerprint(intake)
    for table in NOT_REBUILT:
        before.pop(table), after.pop(table)
    assert after == before
    with engine.connect() as connection:
        seqs = sorted(connection.execute(select(AuditRow.seq).where(
            AuditRow.reference == reference)).scalars())
    assert seqs == list(range(1, len(seqs) + 1))  # no gap
    assert {t: first.restored[t] for t in lost if lost[t]} == {t: n for t, n in lost.items() if n}
    assert outbox_state(outbox) == files  # no letter written again
    # Storing and delivering happened within the activity: its events' times, to the second.
    restored_when = times(engine, reference)
    assert restored_when.keys() == when.keys()
    assert all(abs(restored_when[k] - when[k]) < dt.timedelta(seconds=2) for k in when)

    second = await resync_case(stack.env.client, recorders, engine, reference)
    assert second.error is None and not +second.restored
    assert {t: v for t, v in records(engine, reference).items()
            if t not in NOT_REBUILT | {"references"}} == after
    engine.dispose()


async def test_resync_command_rebuilds_a_lost_database(stack: Stack, tmp_path: Path) -> None:
    """`complaints resync --all` fills an empty database, says what it restored, then nothing."""
    intake = make_intake()
    async with v1_worker(stack):
        handle = await start_v1(stack, intake)
        await started(handle)
        await do(handle, ACKNOWLEDGE)
        current = await settled(stack, handle)
    empty = tmp_path / "lost" / "complaints.db"
    env = subprocess_env(stack, empty)

    first = await run([str(COMPLAINTS), "resync", "--all"], env)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.strip().splitlines()
    assert lines[0].startswith(f"{intake.reference}: restored ")
    assert f"audit_events +{len(current.case.audit)}" in lines[0]
    assert f"letters +{len(current.letters)}" in lines[0] and "complaints +1" in lines[0]
    assert lines[-1].startswith("resync: 1 case; restored ")
    engine = make_engine(f"sqlite:///{empty}")
    assert len(records(engine, intake.reference)["audit_events"]) == len(current.case.audit)
    engine.dispose()

    again = await run([str(COMPLAINTS), "resync", intake.reference], env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().splitlines() == [f"{intake.reference}: nothing missing",
                                                 "resync: 1 case; nothing missing"]


@pytest.mark.parametrize(("args", "needle"), [
    ((), "give one case reference or --all"),
    (("CMP-2026-1",), "is not a case reference"),
    (("CMP-1999-999999",), "CMP-1999-999999: FAILED: not found in Temporal"),
])
async def test_resync_errors_are_one_line(stack: Stack, tmp_path: Path, args: tuple[str, ...],
                                          needle: str) -> None:
    """A bad or unknown reference is one error line on stderr and a non-zero exit."""
    result = await run([str(COMPLAINTS), "resync", *args],
                       subprocess_env(stack, tmp_path / "c.db"))
    assert result.returncode != 0
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and needle in errors[0], result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("signalled", [False, True], ids=["updates", "signalled"])
async def test_restore_then_resync_for_the_complaint_type(stack: Stack, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          signalled: bool) -> None:
    """A `Complaint` case (signalled too: both kinds of recording), resynced with no gap."""
    from complaints.resync_replay import has_local_activities
    from tests.test_resync_replay import scheduled_types
    from tests.test_workflow import do as act
    from tests.test_workflow import started as begun

    intake = make_intake()
    reference = intake.reference
    backup = tmp_path / "backup.db"
    async with stack.worker():
        handle = await stack.lodge(intake)
        await begun(handle)
        if signalled:  # refused (nothing to close yet); the case records in ordinary activities
            await handle.signal("close", {"by": "integration"})
        await act(handle, ACKNOWLEDGE)
        backup_sqlite(_database(stack), backup)
        await act(handle, Extend(by=STAGE1_HANDLER, working_days=5,
                                 reason="A surveyor must inspect the roof"))
        last = await act(handle, respond_to((await view(handle)).case, STAGE1_HANDLER))
    # A new case records through local activities (only the replay restores their events)
    # unless it was signalled a moment ago: then through ordinary ones, kept in history.
    history = await handle.fetch_history()
    assert ("record_case_event" in scheduled_types(history)) == signalled
    assert has_local_activities(history)  # open_case, before any signal
    # An update returns once its event is recorded: nothing is left to write.
    live = make_engine(stack.settings.effective_database_url())
    before = records(live, reference)
    live.dispose()
    assert len(before["audit_events"]) == max(e.seq for e in last.case.audit)
    outbox = stack.settings.effective_outbox()
    files = outbox_state(outbox)
    engine = make_engine(f"sqlite:///{backup}")
    lost = {t: len(before[t]) - len(v) for t, v in records(engine, reference).items()}
    assert lost["audit_events"] > 0 and lost["letters"] > 0 and lost["deadlines"] > 0
    monkeypatch.setattr(LetterActivities, "_deliver_to_outbox", _no_delivery)
    monkeypatch.setattr(LetterActivities, "_deliver_by_email", _no_delivery)
    recorders = Recorders.for_engine(engine, outbox)
    first = await resync_case(stack.env.client, recorders, engine, reference)
    assert first.error is None, first.error
    after = records(engine, reference)
    for table in NOT_REBUILT | {"references"}:
        before.pop(table), after.pop(table)
    assert after == before
    assert outbox_state(outbox) == files
    second = await resync_case(stack.env.client, recorders, engine, reference)
    assert second.error is None and not +second.restored
    engine.dispose()


async def test_resync_leaves_an_erased_case_alone(stack: Stack, tmp_path: Path) -> None:
    """A case erased on purpose is skipped: its history in Temporal writes nothing back."""
    from models.tables import ErasureRow
    from tests.test_workflow import do as act
    from tests.test_workflow import started as begun

    intake = make_intake()
    backup = tmp_path / "backup.db"
    async with stack.worker():
        handle = await stack.lodge(intake)
        await begun(handle)
        backup_sqlite(_database(stack), backup)
        await act(handle, ACKNOWLEDGE)
    engine = make_engine(f"sqlite:///{backup}")
    recorders = Recorders.for_engine(engine, stack.settings.effective_outbox())
    with recorders.sessions() as session:
        session.add(ErasureRow(reference=intake.reference, reason="request"))
        session.commit()
    before = records(engine, intake.reference)
    result = await resync_case(stack.env.client, recorders, engine, intake.reference)
    assert result.error is None and not +result.restored
    assert result.notes == ["skipped: its personal data was erased (request)"]
    assert records(engine, intake.reference) == before
    engine.dispose()
