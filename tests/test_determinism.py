"""Determinism guard: a bank holiday added to a policy never moves a recorded deadline.

Design (see ``domain.deadlines``): a case records its calendar once, when it starts, and
plans every deadline from it in workflow code, so replaying the case or restarting every
worker reproduces each date exactly. A new case counts on the calendar as it is then; a
running case keeps its own until it is asked to read it again (``refresh_calendar``): then
deadlines planned afterwards use the new calendar, and those planned before keep theirs.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.worker import Replayer

from activities import build_activities
from complaints.policies import POLICY_DIR, load_compliant_policy
from complaints.workdays import WorkingCalendar
from models.actions import Acknowledge, Extend
from models.events import ActionResult, RefreshCalendar
from models.messages import CaseView, Deadline
from tests.cases import DEFINITION, STAGE1_HANDLER
from tests.conftest import CONVERTER, Stack, make_intake
from tests.test_workflow import do, started, task_failures, view
from workflows.complaint import ComplaintWorkflow


def response_deadline(current: CaseView, key: str = "stage1_response#1") -> Deadline:
    """The case's deadline with ``key``."""
    return next(d for d in current.deadlines if d.key == key)


async def acknowledge(handle: WorkflowHandle[Any, Any]) -> CaseView:
    """Acknowledge a started case with a valid definition."""
    await started(handle)
    return await do(handle, Acknowledge(by=STAGE1_HANDLER, handler_id=STAGE1_HANDLER,
                                        definition=DEFINITION))


def add_one_off_holidays(policy_file: Path, *days: dt.date) -> None:
    """Declare one-off bank holidays in a policy file (as a landlord would when proclaimed)."""
    listed = ", ".join(d.isoformat() for d in days)
    text = policy_file.read_text(encoding="utf-8")
    policy_file.write_text(text.replace("\n[limits]", f"one_off_bank_holidays = [{listed}]\n"
                                        "\n[limits]", 1), encoding="utf-8")


async def test_new_bank_holiday_changes_new_deadlines_not_recorded_ones(
        stack: Stack, tmp_path: Path) -> None:
    """A new holiday moves new deadlines (a new case, a later extension), never recorded ones."""
    policies = tmp_path / "policies"
    policies.mkdir()
    policy_file = policies / "connexus.toml"
    policy_file.write_text((POLICY_DIR / "connexus.toml").read_text(encoding="utf-8"),
                           encoding="utf-8")

    def activities() -> list[Any]:
        return build_activities(stack.settings, policy_dir=policies)

    old_calendar = WorkingCalendar.for_policy(load_compliant_policy(policy_file))
    stack.activities = activities()
    async with stack.worker():
        running = await stack.lodge(make_intake())
        before = await acknowledge(running)
    recorded = response_deadline(before)
    assert recorded.due == old_calendar.add_working_days(recorded.start, 10)

    # Proclaimed after the acknowledgement: one holiday inside the running case's stage 1
    # window, one inside the window an extension from its due date will cover.
    in_window = old_calendar.add_working_days(recorded.start, 3)
    in_first_extension = old_calendar.add_working_days(recorded.due, 2)
    in_extension = old_calendar.add_working_days(recorded.due, 7)
    add_one_off_holidays(policy_file, in_window, in_first_extension, in_extension)
    new_calendar = WorkingCalendar.for_policy(load_compliant_policy(policy_file))
    assert new_calendar.add_working_days(recorded.start, 10) > recorded.due

    stack.activities = activities()  # a restarted worker: it replays the running case
    async with stack.worker():
        after = await view(running)
        assert after.deadlines == before.deadlines
        assert response_deadline(after).due == recorded.due

        fresh = await acknowledge(await stack.lodge(make_intake()))
        planned = response_deadline(fresh)
        assert planned.due == new_calendar.add_working_days(planned.start, 10)
        assert planned.due > old_calendar.add_working_days(planned.start, 10)

        extended = await do(running, Extend(by=STAGE1_HANDLER, working_days=5,
                                            reason="A surveyor must inspect the roof"))
        # The running case still counts on the calendar it recorded when it started.
        later = response_deadline(extended, "stage1_response#2")
        assert later.start == recorded.due
        assert later.due == old_calendar.add_working_days(recorded.due, 5)
        assert later.due < new_calendar.add_working_days(recorded.due, 5)
        # Asked to read its calendar again, it plans the next deadline with the new one.
        await running.execute_update("refresh_calendar", RefreshCalendar(by="ops-1"),
                                     result_type=ActionResult)
        again = await do(running, Extend(by=STAGE1_HANDLER, working_days=5,
                                         reason="The surveyor needs a second visit"))
        last = response_deadline(again, "stage1_response#3")
        assert last.due == new_calendar.add_working_days(later.due, 5)
        assert last.due > old_calendar.add_working_days(later.due, 5)
        assert response_deadline(again).due == recorded.due  # still as recorded
        assert response_deadline(again, "stage1_response#2").due == later.due
        history = await running.fetch_history()
    assert task_failures(history) == 0

    replayer = Replayer(workflows=[ComplaintWorkflow], data_converter=CONVERTER)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None

