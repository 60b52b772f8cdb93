"""Determinism: saved histories of finished cases replay with the current workflow code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from worker import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_there_are_histories_of_finished_cases() -> None:
    """The committed histories of both types cover both stages, declines, withdrawals, lapses."""
    names = {p.stem for p in HISTORIES}
    scenarios = {"both_stages", "declined", "breached_then_withdrawn", "window_lapsed"}
    assert scenarios <= names  # the first workflow type, ComplaintWorkflow
    assert {f"complaint_{n}" for n in scenarios | {"refused_then_breached"}} <= names
    for path in HISTORIES:
        events = json.loads(path.read_text(encoding="utf-8"))["events"]
        assert events[-1]["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED", path.name


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path) -> None:
    """Replaying a finished case with today's code raises no non-determinism error."""
    history = WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))
    # The worker's own list: each history replays with the type it was recorded under.
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
