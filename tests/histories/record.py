"""Record the histories replayed by ``tests/test_replay.py``.

Run ``.venv/bin/python -m tests.histories.record PREFIX [SCENARIO ...]`` after a
deliberate, patched change to the workflow to add histories named
``PREFIX_<scenario>.json`` (every scenario, or those named); it never
overwrites a file: the old histories stand for cases already running in production and are
never regenerated to make a replay pass. The unprefixed ones are of the first workflow
type (``ComplaintWorkflow``), ``complaint_*`` of the ``Complaint`` type. The prefix ``v1``
starts the first type instead, for its scenarios in ``V1_SCENARIOS``
(``python -m tests.histories.record v1 signals``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import TimeSkippingConfig, WorkflowEnvironment

from activities import build_activities
from complaints.settings import Settings
from models.actions import (
    Acknowledge,
    AcknowledgeEscalation,
    AmendIntake,
    Assign,
    Close,
    CompleteAction,
    ComplyOrder,
    Decline,
    DelayAction,
    OmbudsmanContact,
    OmbudsmanContactKind,
    OmbudsmanDetermination,
    OmbudsmanFinding,
    OmbudsmanOrderKind,
    OrderItem,
    PayRemedy,
    Reassign,
    ReassignRole,
    RefuseEscalation,
    ReopenOnOrder,
    RequestEscalation,
    Void,
    VoidReason,
    Withdraw,
)
from models.case import Adjustment, Channel, ExclusionGround, Party, PartyRole, RemedyKind
from models.events import ActionResult
from models.messages import CaseView, ComplaintInput
from tests.cases import DEFINITION, STAGE1_HANDLER, STAGE2_HANDLER, path_to, respond_to
from tests.conftest import SEARCH_KEYS, TEMPORAL_CLI, Stack, make_intake
from workflows.complaint import ComplaintState, london_date

HERE = Path(__file__).parent
S = ComplaintState
Scenario = Callable[[Stack, WorkflowHandle[Any, Any]], Awaitable[None]]


async def _view(handle: WorkflowHandle[Any, Any]) -> CaseView:
    return await handle.query("case_view", result_type=CaseView)


async def _do(handle: WorkflowHandle[Any, Any], action: Any) -> CaseView:
    await handle.execute_update(action.trigger, action, result_type=ActionResult)
    return await _view(handle)


async def both_stages(stack: Stack, handle: WorkflowHandle[Any, Any]) -> None:
    """Stage 1 with an extension, stage 2, actions completed, closed."""
    for build in path_to(S.STAGE1_EXTENDED):
        await _do(handle, build((await _view(handle)).case))
    view = await _do(handle, respond_to((await _view(handle)).case, STAGE1_HANDLER))
    await _do(handle, RequestEscalation(by="staff-900", requested_on=london_date(
        view.case.responses[-1].at)))
    for build in path_to(S.STAGE2_REVIEWING)[-1:]:
        await _do(handle, build((await _view(handle)).case))
    await _do(handle, respond_to((await _view(handle)).case, STAGE2_HANDLER, action_id="A2"))
    for action_id in ("A1", "A2"):
        await _do(handle, CompleteAction(by=STAGE2_HANDLER, action_id=action_id))
    await _pay_all(handle)
    await _do(handle, Close(by=STAGE2_HANDLER))


async def _pay_all(handle: WorkflowHandle[Any, Any]) -> None:
    """Record every financial remedy paid (casework revision 2 closes only then)."""
    view = await _view(handle)
    for stage, number in view.case.unpaid_remedies():
        await _do(handle, PayRemedy(by=STAGE2_HANDLER, stage=stage, remedy=number,
                                    amount="150.00", paid_on=london_date(
                                        view.case.responses[-1].at)))


async def declined(stack: Stack, handle: WorkflowHandle[Any, Any]) -> None:
    """Declined on a section 2 ground."""
    await _do(handle, Decline(by="staff-900", grounds=(ExclusionGround.LEGAL_PROCEEDINGS,),
                              explanation="A claim was filed at court"))


async def breached_then_withdrawn(stack: Stack, handle: WorkflowHandle[Any, Any]) -> None:
    """The acknowledgement deadline breached and escalated, then the resident withdrew."""
    await stack.env.fast_forward(handle, timedelta(days=14))
    await _do(handle, Withdraw(by="staff-900", reason="Resolved", confirmed_via=Channel.PHONE))


async def window_lapsed(stack: Stack, handle: WorkflowHandle[Any, Any]) -> None:
    """Stage 1 answered with no actions; the escalation window lapsed and closed it."""
    for build in path_to(S.STAGE1_INVESTIGATING):
        await _do(handle, build((await _view(handle)).case))
    response = _no_actions_or_money(respond_to((await _view(handle)).case, STAGE1_HANDLER))
    await _do(handle, response)
    await stack.env.fast_forward(handle, timedelta(days=40))


def _no_actions_or_money(response: Any) -> Any:
    """A response with no outstanding actions and no payment to make."""
    return response.model_copy(update={
        "outstanding_actions": (),
        "remedies": tuple(r for r in response.remedies if r.kind is not RemedyKind.FINANCIAL)})


async def late_escalation(stack: Stack, handle: WorkflowHandle[Any, Any]) -> None:
    """Closed when the window lapsed; a late request, refused on the window ground."""
    await window_lapsed(stack, handle)
    view = await _view(handle)
    assert view.case.closed_at is not None
    await _do(handle, RequestEscalation(by="staff-900", requested_on=london_date(
        view.case.closed_at) + timedelta(days=1)))
    await _do(handle, RefuseEscalation(by="staff-900",
                                       grounds=(ExclusionGround.OUTSIDE_ESCALATION_WINDOW,),
                                       explanation="Asked after the window had closed"))


async def order_overrides_late_escalation(stack: Stack,
                                          handle: WorkflowHandle[Any, Any]) -> None:
    """Refused as late, then escalated on the Ombudsman's order (revision 3), answered."""
    await late_escalation(stack, handle)
    await _do(handle, ReopenOnOrder(by="mgr-7", order=OmbudsmanOrderKind.ESCALATE_TO_STAGE2,
                                    details="HOS 202612345: escalate within 5 working days"))
    await _do(handle, AcknowledgeEscalation(by=STAGE2_HANDLER, handler_id=STAGE2_HANDLER,
                                            definition=DEFINITION))
    await _do(handle, _no_actions_or_money(respond_to((await _view(handle)).case,
                                                       STAGE2_HANDLER)))
    await _do(handle, Close(by=STAGE2_HANDLER))


async def claimed_and_assigned(stack: Stack, handle: WorkflowHandle[Any, Any]) -> None:
    """Claimed, assigned by a manager, answered; stage 2 assigned to a reviewer, closed."""
    await _do(handle, Assign(by="staff-404", to="staff-404"))
    await _do(handle, Assign(by="mgr-7", to=STAGE1_HANDLER, note="Workload"))
    await _do(handle, Acknowledge(by=STAGE1_HANDLER, handler_id=STAGE1_HANDLER,
                                  definition=DEFINITION))
    await _do(handle, _no_actions_or_money(respond_to((await _view(handle)).case,
                                                       STAGE1_HANDLER)))
    view = await _view(handle)
    await _do(handle, RequestEscalation(by="staff-900", requested_on=(
        london_date(view.case.responses[-1].at) if view.case.responses
        else view.case.received_on)))
    await _do(handle, Assign(by="mgr-7", to=STAGE2_HANDLER))
    await _do(handle, AcknowledgeEscalation(by=STAGE2_HANDLER, handler_id=STAGE2_HANDLER,
                                            definition=DEFINITION))
    await _do(handle, _no_actions_or_money(respond_to((await _view(handle)).case,
                                                       STAGE2_HANDLER)))
    await _do(handle, Close(by=STAGE2_HANDLER))


async def follow_through(stack: Stack, handle: WorkflowHandle[Any, Any]) -> None:
    """Handler reassigned, an action delayed then done, the payment made, closed."""
    for build in path_to(S.STAGE1_INVESTIGATING):
        await _do(handle, build((await _view(handle)).case))
    await _do(handle, Reassign(by="mgr-7", role=ReassignRole.HANDLER, to="staff-303",
                               reason="Leave"))
    view = await _do(handle, respond_to((await _view(handle)).case, "staff-303"))
    record = view.case.open_actions()[0]
    await _do(handle, DelayAction(by="staff-303", action_id=record.action.action_id,
                                  revised_due=record.due_by + timedelta(days=14),
                                  reason="Parts are late"))
    await _do(handle, CompleteAction(by="staff-303", action_id=record.action.action_id))
    await _pay_all(handle)
    await _do(handle, Close(by="staff-303"))


async def ombudsman_and_amendments(stack: Stack, handle: WorkflowHandle[Any, Any]) -> None:
    """A representative added, an Ombudsman instruction and order complied with, closed."""
    for build in path_to(S.STAGE1_INVESTIGATING):
        await _do(handle, build((await _view(handle)).case))
    today = london_date((await _view(handle)).case.audit[-1].at)
    await _do(handle, AmendIntake(
        by="mgr-7", reason="Sister acts", representative_authority="Signed form",
        parties=(Party(name="Jo Bloggs"), Party(role=PartyRole.REPRESENTATIVE, name="Ann")),
        adjustments=(Adjustment(description="Large print letters"),),
        adjustments_review_on=today + timedelta(days=60)))
    await _do(handle, OmbudsmanContact(by="mgr-7", kind=OmbudsmanContactKind.INSTRUCTION,
                                       details="Respond within 5 days",
                                       respond_by=today + timedelta(days=7)))
    await _do(handle, _no_actions_or_money(respond_to((await _view(handle)).case,
                                                       STAGE1_HANDLER)))
    await _do(handle, ComplyOrder(by="mgr-7", order_id="instruction-1", evidence="Sent"))
    await _do(handle, OmbudsmanDetermination(
        by="mgr-7", finding=OmbudsmanFinding.COMPLAINT_HANDLING_FAILURE, details="Late",
        orders=(OrderItem(order_id="O1", description="Pay £50",
                          due_by=today + timedelta(days=28)),)))
    await _do(handle, ComplyOrder(by="mgr-7", order_id="O1", evidence="Paid"))
    await stack.env.fast_forward(handle, timedelta(days=40))


async def voided(stack: Stack, handle: WorkflowHandle[Any, Any]) -> None:
    """A duplicate, voided: no letter, no clocks."""
    await _do(handle, Void(by="mgr-7", reason=VoidReason.DUPLICATE,
                           explanation="Lodged twice", duplicate_of="CMP-2026-000001"))


async def refused_then_breached(stack: Stack, handle: WorkflowHandle[Any, Any]) -> None:
    """Malformed and refused signals, a breach and the lead told, then declined."""
    await handle.signal("respond", {"by": "integration", "decision": "maybe"})
    await handle.signal("acknowledge", {"by": "a"}, )
    await handle.signal("no_such_action", [1, 2, 3])
    await stack.env.fast_forward(handle, timedelta(days=14))
    await _do(handle, Decline(by="staff-900", grounds=(ExclusionGround.LEGAL_PROCEEDINGS,),
                              explanation="A claim was filed at court"))


async def signals(stack: Stack, handle: WorkflowHandle[Any, Any]) -> None:
    """First type: signals its named handlers took or dropped, then withdrawn.

    A string where an object belongs and an unknown name, alone in their workflow task (so
    that refusing them would be a new command: a replay without the patch would fail),
    then accepted, refused and malformed actions: shapes that never failed a workflow task,
    so a history of the code before ``SIGNAL_SHAPES_PATCH`` holds them all.
    """
    await handle.signal("acknowledge", "not an object")
    await handle.signal("no_such_action", [1, 2, 3])
    await _taken(handle)
    await handle.signal("acknowledge", Acknowledge(by=STAGE1_HANDLER, handler_id=STAGE1_HANDLER,
                                                   definition=DEFINITION))
    await handle.signal("close", {"by": "staff-900"})
    await handle.signal("respond", {"by": "integration", "decision": "maybe"})
    await _taken(handle)
    # The first type's updates answer with its own view: the result is not read.
    await handle.execute_update("withdraw", Withdraw(by="staff-900", reason="Resolved",
                                                     confirmed_via=Channel.PHONE))


async def signal_shapes(stack: Stack, handle: WorkflowHandle[Any, Any]) -> None:
    """First type, after ``SIGNAL_SHAPES_PATCH``: the shapes that failed a task, ``signals``."""
    await handle.signal("acknowledge", args=[{"by": "a"}, {"by": "b"}])
    await handle.signal("close", args=[])
    await _taken(handle)
    await signals(stack, handle)


async def _taken(handle: WorkflowHandle[Any, Any]) -> None:
    """Wait until a workflow task completed after the last signal in the history."""
    for _ in range(200):
        events = [e.event_type for e in (await handle.fetch_history()).events]
        last_signal = max(i for i, e in enumerate(events)
                          if e == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
        if EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in events[last_signal:]:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the signals were never taken")


V1_SCENARIOS: dict[str, tuple[str, Scenario]] = {
    "signals": ("connexus", signals),
    "signal_shapes": ("connexus", signal_shapes),
}

SCENARIOS: dict[str, tuple[str, Scenario]] = {
    "both_stages": ("connexus", both_stages),
    "declined": ("code-2024", declined),
    "breached_then_withdrawn": ("connexus", breached_then_withdrawn),
    "window_lapsed": ("code-2024", window_lapsed),
    "refused_then_breached": ("connexus", refused_then_breached),
    "late_escalation": ("code-2024", late_escalation),
    "follow_through": ("connexus", follow_through),
    "voided": ("code-2024", voided),
    "ombudsman_and_amendments": ("code-2024", ombudsman_and_amendments),
    "order_overrides_late_escalation": ("code-2024", order_overrides_late_escalation),
    "claimed_and_assigned": ("code-2024", claimed_and_assigned),
}


#: The prefix whose histories are of the first workflow type (``V1_SCENARIOS``).
FIRST_TYPE_PREFIX = "v1"


def scenarios_for(prefix: str) -> dict[str, tuple[str, Scenario]]:
    """The scenarios a prefix records: the first type's for ``v1``, else the current type's."""
    return V1_SCENARIOS if prefix == FIRST_TYPE_PREFIX else SCENARIOS


async def main(prefix: str, names: list[str] | None = None) -> None:
    """Run each scenario (or those in ``names``) and save its history as ``PREFIX_<name>.json``."""
    env = await WorkflowEnvironment.start_time_skipping_v2(
        ts_config=TimeSkippingConfig(enabled=False), dev_server_existing_path=str(TEMPORAL_CLI),
        dev_server_extra_args=["--dynamic-config-value",
                               "frontend.WorkflowTimeSkippingEnabled=true"],
        data_converter=pydantic_data_converter, search_attributes=SEARCH_KEYS)
    first_type = prefix == FIRST_TYPE_PREFIX
    async with env:
        for name, (policy, scenario) in scenarios_for(prefix).items():
            if names and name not in names:
                continue
            with tempfile.TemporaryDirectory() as tmp:
                settings = Settings(data_dir=Path(tmp), outbox_dir=Path(tmp) / "outbox",
                                    database_url=f"sqlite:///{tmp}/c.db")
                stack = Stack(env, f"tq-{uuid.uuid4()}", settings, build_activities(settings))
                async with stack.worker():
                    intake = make_intake(policy_name=policy)
                    handle = await (stack.env.client.start_workflow(
                        "ComplaintWorkflow", ComplaintInput(intake=intake), id=intake.reference,
                        task_queue=stack.task_queue, result_type=CaseView)
                        if first_type else stack.lodge(intake))
                    while not (await _view(handle)).deadlines:
                        await asyncio.sleep(0.1)
                    await scenario(stack, handle)
                    # Past the 12-month retention window, so the workflow completes.
                    await env.fast_forward(handle, timedelta(days=400))
                    result = await handle.result()
                    history = await handle.fetch_history()
            path = HERE / f"{prefix}_{name}.json"
            if path.exists():
                print(f"{path.name} exists: kept as it is")
                continue
            path.write_text(history.to_json(), encoding="utf-8")
            print(f"{name}: {result.state}, {len(history.events)} events -> {path.name}"
                  f" ({dt.date.today().isoformat()})")


if __name__ == "__main__":
    if len(sys.argv) < 2 or not set(sys.argv[2:]) <= set(scenarios_for(sys.argv[1])):
        sys.exit("usage: python -m tests.histories.record PREFIX [SCENARIO ...] (e.g. "
                 f"complaint_r3, or v1); scenarios: {', '.join(SCENARIOS)}; for v1: "
                 f"{', '.join(V1_SCENARIOS)}")
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
