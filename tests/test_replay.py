"""Determinism: saved histories of finished cases replay with the current workflow code."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.conftest import CONVERTER
from tests.test_dev_server import restarts_for_the_same_time
from worker import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_there_are_histories_of_finished_cases() -> None:
    """The committed histories of both types cover both stages, declines, withdrawals, lapses."""
    names = {p.stem for p in HISTORIES}
    scenarios = {"both_stages", "declined", "breached_then_withdrawn", "window_lapsed"}
    assert scenarios <= names  # the first workflow type, ComplaintWorkflow
    assert {f"complaint_{n}" for n in scenarios | {"refused_then_breached"}} <= names
    # Casework revision 2 (behind CASEWORK_PATCH): late escalations, follow-through, voids.
    assert {f"complaint_r2_{n}" for n in scenarios | {
        "late_escalation", "follow_through", "voided", "ombudsman_and_amendments"}} <= names
    # Casework revision 3 (behind CASEWORK_3_PATCH): an order to escalate overrides lateness;
    # cases are claimed and assigned before acknowledgement.
    assert {"complaint_r3_order_overrides_late_escalation",
            "complaint_r3_claimed_and_assigned"} <= names
    for path in HISTORIES:
        events = json.loads(path.read_text(encoding="utf-8"))["events"]
        assert events[-1]["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED", path.name


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path) -> None:
    """Replaying a finished case with today's code raises no non-determinism error."""
    history = WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))
    # The worker's own list: each history replays with the type it was recorded under.
    replayer = Replayer(workflows=WORKFLOWS, data_converter=CONVERTER)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


def test_only_revision_2_histories_carry_its_patch_marker() -> None:
    """Cases recorded before casework revision 2 have no marker, so they replay the old rules."""
    from domain.lifecycle import CASEWORK_PATCH

    for path in HISTORIES:
        marked = CASEWORK_PATCH in patch_ids(path)
        assert marked == path.stem.startswith(("complaint_r2_", "complaint_r3_",
                                               "complaint_r4_", "complaint_r5_")), path.name


def test_only_revision_3_histories_carry_its_patch_marker() -> None:
    """Revision 2 histories lack revision 3's marker, so they replay revision 2's decisions."""
    from domain.lifecycle import CASEWORK_3_PATCH

    for path in HISTORIES:
        marked = CASEWORK_3_PATCH in patch_ids(path)
        assert marked == path.stem.startswith(("complaint_r3_", "complaint_r4_",
                                               "complaint_r5_")), path.name


def test_only_r4_histories_count_the_letters_being_recorded() -> None:
    """Histories recorded before the in-flight letters patch lack its marker: unchanged."""
    from domain.lifecycle import IN_FLIGHT_LETTERS_PATCH

    for path in HISTORIES:
        marked = IN_FLIGHT_LETTERS_PATCH in patch_ids(path)
        assert marked == path.stem.startswith(("complaint_r4_", "complaint_r5_")), path.name


def test_only_r5_histories_record_locally() -> None:
    """Histories recorded before the local-recording patch keep ordinary activities."""
    from domain.lifecycle import (
        LOCAL_RECORDING_PATCH,
        REVISION_6_PATCH,
        REVISION_8_PATCH,
        SIGNALLED_RECORDING_PATCH,
    )

    for path in HISTORIES:
        events = json.loads(path.read_text(encoding="utf-8"))["events"]
        ids = patch_ids(path)
        marked = bool({LOCAL_RECORDING_PATCH, REVISION_6_PATCH, REVISION_8_PATCH} & ids)
        assert marked == path.stem.startswith(
            ("complaint_r5_", "complaint_r6_", "complaint_r7_", "complaint_r8_")), path.name
        scheduled = {e["activityTaskScheduledEventAttributes"]["activityType"]["name"]
                     for e in events if "activityTaskScheduledEventAttributes" in e}
        signalled = any("workflowExecutionSignaledEventAttributes" in e for e in events)
        if not marked:
            assert bool(scheduled & {"open_case", "record_case_event"}) == \
                path.stem.startswith("complaint_"), path.name
        elif SIGNALLED_RECORDING_PATCH in ids or (REVISION_8_PATCH in ids and signalled):
            # Recorded in ordinary activities while signals were arriving, else locally.
            assert scheduled & {"open_case", "record_case_event"} == {"record_case_event"}
        else:  # marked histories run their recordings as local activities
            assert not scheduled & {"open_case", "record_case_event"}, path.name


def test_r6_histories_carry_one_patch_marker() -> None:
    """A case started from revision 6 on records one patch marker, standing for the four."""
    from domain.lifecycle import REVISION_6_COVERS, REVISION_6_PATCH, SIGNALLED_RECORDING_PATCH

    revision_6 = [path for path in HISTORIES
                  if path.stem.startswith(("complaint_r6_", "complaint_r7_"))]
    assert revision_6
    for path in HISTORIES:
        ids = patch_ids(path)
        assert (REVISION_6_PATCH in ids) == (path in revision_6), path.name
        if path in revision_6:
            assert ids - {SIGNALLED_RECORDING_PATCH} == {REVISION_6_PATCH}, path.name
        elif path.stem.startswith("complaint_r5_"):
            assert ids == set(REVISION_6_COVERS), path.name


def test_only_signalled_r7_histories_take_the_signalled_recording_patch() -> None:
    """The patch is asked for lazily: only a case that records while signals arrive has it."""
    from domain.lifecycle import SIGNALLED_RECORDING_PATCH

    revision_7 = [path for path in HISTORIES if path.stem.startswith("complaint_r7_")]
    assert len(revision_7) >= 2
    for path in HISTORIES:
        events = json.loads(path.read_text(encoding="utf-8"))["events"]
        signalled = any("workflowExecutionSignaledEventAttributes" in e for e in events)
        assert (SIGNALLED_RECORDING_PATCH in patch_ids(path)) == (
            path in revision_7 and signalled), path.name
    assert any(SIGNALLED_RECORDING_PATCH in patch_ids(path) for path in revision_7)


def test_r8_histories_carry_one_marker_and_keep_their_timer() -> None:
    """From revision 8 a case records one marker and restarts its timer only for a new time."""
    from domain.lifecycle import REVISION_8_PATCH

    revision_8 = [path for path in HISTORIES if path.stem.startswith("complaint_r8_")]
    assert len(revision_8) >= 3
    for path in HISTORIES:
        ids = patch_ids(path)
        assert (REVISION_8_PATCH in ids) == (path in revision_8), path.name
        if path in revision_8:
            assert ids == {REVISION_8_PATCH}, path.name  # signalled ones included
            assert timers_restarted_for_the_same_time(path) == 0, path.name
    # Before it, an action that left the wake time alone still cancelled and restarted it.
    assert timers_restarted_for_the_same_time(
        next(p for p in HISTORIES if p.stem == "complaint_r7_both_stages")) >= 5


def timers_restarted_for_the_same_time(path: Path) -> int:
    """How often a saved history cancelled a timer only to start one for the same time."""
    history = WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))
    return restarts_for_the_same_time(list(history.events))


def patch_ids(path: Path) -> set[str]:
    """The ids of the patch markers recorded in a saved history."""
    ids = set()
    for event in json.loads(path.read_text(encoding="utf-8"))["events"]:
        marker = event.get("markerRecordedEventAttributes", {})
        if marker.get("markerName") == "core_patch":
            for payload in marker["details"]["patch-data"]["payloads"]:
                ids.add(json.loads(base64.b64decode(payload["data"]))["id"])
    return ids


def test_only_the_first_types_signal_shapes_history_carries_its_marker() -> None:
    """A first-type case signalled before ``SIGNAL_SHAPES_PATCH`` replays without refusing."""
    from workflows.complaint_v1 import SIGNAL_SHAPES_PATCH

    assert {"v1_signals", "v1_signal_shapes"} <= {p.stem for p in HISTORIES}
    for path in HISTORIES:
        marked = SIGNAL_SHAPES_PATCH in patch_ids(path)
        assert marked == (path.stem == "v1_signal_shapes"), path.name
