"""Stateful property test: random staff actions and time against a workflow and a model.

Hypothesis drives random sequences of staff actions (valid ones, ones the Code refuses,
malformed payloads as signals and as updates) and time advances against a real
``ComplaintWorkflow`` on the time-skipping dev server, and against :class:`CodeModel`, a
small reference model of the Complaint Handling Code written here from the domain brief
(which actions each state allows, the extension caps, 6.13's different handler...), not
from the workflow's transition table. After every step the invariants below must hold.

Hypothesis cannot run async rules, so the server, the worker and every call live on a
private event loop in a thread (:class:`Harness`); each rule hands it a coroutine with
``asyncio.run_coroutine_threadsafe`` and waits for the result.

Totals of what was tried are printed and written to ``.data/reliability/stateful.json``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from pydantic import ValidationError
from sqlmodel import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import TimeSkippingConfig, WorkflowEnvironment
from temporalio.worker import Worker

from activities import build_activities
from complaints.db import make_engine, session_factory
from complaints.policies import load_compliant_policy
from complaints.settings import Settings
from complaints.workdays import WorkingCalendar
from domain.lifecycle import CLOCKS, ComplaintState
from models.actions import (
    ACTION_BY_TRIGGER,
    Acknowledge,
    AcknowledgeEscalation,
    Action,
    AddIssue,
    Close,
    CompleteAction,
    ContactDirection,
    Decline,
    Extend,
    OmbudsmanOrderKind,
    RecordContact,
    ReferOmbudsman,
    RefuseEscalation,
    ReopenOnOrder,
    RequestEscalation,
    Respond,
    Withdraw,
)
from models.case import (
    Channel,
    Decision,
    ExclusionGround,
    OutstandingAction,
    PointFinding,
    Remedy,
    RemedyKind,
)
from models.events import ActionResult, CaseInput
from models.messages import CaseView, Deadline, DeadlineKind, DeadlineStatus
from models.policy import Policy
from models.tables import LetterRow, NotificationRow
from tests.cases import DEFINITION
from tests.conftest import SEARCH_KEYS, TEMPORAL_CLI, make_intake
from workflows.complaint import ComplaintWorkflow, london_date

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / ".data" / "reliability" / "stateful.json"

H1, H2, MANAGER = "staff-101", "staff-202", "staff-900"
OMBUDSMAN_PHONE = "0300 111 3000"
STAGE2_DEFINITION = DEFINITION.model_copy(update={
    "summary": "The stage 1 response did not put the leak right",
    "points": ("The roof still leaks after the stage 1 response",
               "The compensation offered was too low")})
#: Most virtual days one example may skip: short of the 366-day retention after closure.
MAX_DAYS = 300
#: Examples (cases) and steps per case; about two and a half minutes as set here.
EXAMPLES = int(os.environ.get("STATEFUL_EXAMPLES", "15"))
STEPS = int(os.environ.get("STATEFUL_STEPS", "35"))

# --- the reference model ------------------------------------------------------------

STAGE1_OPEN = ("stage1_investigating", "stage1_extended")
STAGE2_OPEN = ("stage2_reviewing", "stage2_extended")
_EVERYWHERE = {"record_contact"}
#: What each state allows, read from the domain brief (the Code's lifecycle in words).
ALLOWED: dict[str, set[str]] = {
    "received": {"acknowledge", "decline", "add_issue", "withdraw", "refer_ombudsman"},
    "declined": {"refer_ombudsman", "reopen_on_order"},
    "stage1_investigating": {"extend", "respond", "add_issue", "withdraw", "refer_ombudsman"},
    "stage1_extended": {"extend", "respond", "add_issue", "withdraw", "refer_ombudsman"},
    "stage1_responded": {"request_escalation", "add_issue", "complete_action", "withdraw",
                         "refer_ombudsman", "close"},
    "stage2_requested": {"refuse_escalation", "acknowledge_escalation", "add_issue",
                         "complete_action", "withdraw", "refer_ombudsman"},
    "stage2_reviewing": {"extend", "respond", "add_issue", "complete_action", "withdraw",
                         "refer_ombudsman"},
    "stage2_extended": {"extend", "respond", "add_issue", "complete_action", "withdraw",
                        "refer_ombudsman"},
    "stage2_responded": {"add_issue", "complete_action", "refer_ombudsman", "close"},
    "with_ombudsman": {"complete_action", "reopen_on_order", "close"},
    "closed": {"complete_action", "refer_ombudsman", "reopen_on_order"},
    "withdrawn": set(),
}
for _allowed in ALLOWED.values():
    _allowed |= _EVERYWHERE


def year_before(day: dt.date) -> dt.date:
    """The same day a year earlier (29 February falls back to the 28th)."""
    try:
        return day.replace(year=day.year - 1)
    except ValueError:
        return day.replace(year=day.year - 1, day=28)


@dataclass
class Clock:
    """What the model may know of the case at the moment an action is taken."""

    now: dt.datetime
    view: CaseView

    @property
    def today(self) -> dt.date:
        """The case's date in London."""
        return london_date(self.now)

    def latest(self, kind: DeadlineKind) -> Deadline | None:
        """The most recent deadline of ``kind`` (dates come from the calendar activity)."""
        return next((d for d in reversed(self.view.deadlines) if d.kind is kind), None)


@dataclass
class CodeModel:
    """A plain model of one complaint under the Code: the state and what it depends on."""

    policy: Policy
    received_on: dt.date
    issue_on: dt.date | None
    state: str = "received"
    stage1_handler: str | None = None
    stage2_handler: str | None = None
    points: dict[int, list[str]] = field(default_factory=lambda: {1: [], 2: []})
    extended: dict[int, int] = field(default_factory=lambda: {1: 0, 2: 0})
    good_reason: dict[int, bool] = field(default_factory=lambda: {1: False, 2: False})
    open_actions: list[str] = field(default_factory=list)
    all_actions: set[str] = field(default_factory=set)
    declined: bool = False
    acknowledged: bool = False
    escalation_refused: bool = False
    responded_on: dt.date | None = None

    @property
    def stage(self) -> int:
        """The stage of an open or answered stage (1 or 2)."""
        return 2 if self.state.startswith("stage2") else 1

    def cap(self, stage: int) -> int:
        """The policy's extension cap at ``stage`` (6.4, 6.15)."""
        limits = self.policy.limits
        return limits.stage1_extension_cap if stage == 1 else limits.stage2_extension_cap

    @staticmethod
    def same(a: str | None, b: str | None) -> bool:
        """Whether two staff ids are the same person."""
        return a is not None and b is not None and a.strip().casefold() == b.strip().casefold()

    def refusal(self, action: Action, clock: Clock) -> str | None:
        """Why the Code refuses ``action`` now (a short tag), or None if it is allowed."""
        trigger = action.trigger
        if trigger not in ALLOWED[self.state]:
            return "state"
        if isinstance(action, Decline):
            grounds = list(action.grounds)
            if ExclusionGround.OUTSIDE_ESCALATION_WINDOW in grounds:
                return "2.2 ground"
            if len(set(grounds)) != len(grounds):
                return "repeated ground"
            if ExclusionGround.OLDER_THAN_12_MONTHS in grounds:
                if action.discretion_considered is None:
                    return "2.3 discretion"
                if self.issue_on is not None and self.issue_on >= year_before(self.received_on):
                    return "2.3 within 12 months"
        if isinstance(action, RefuseEscalation):
            grounds = list(action.grounds)
            if len(set(grounds)) != len(grounds):
                return "repeated ground"
            if ExclusionGround.OLDER_THAN_12_MONTHS in grounds and \
                    action.discretion_considered is None:
                return "2.3 discretion"
        if isinstance(action, Extend):
            stage = self.stage
            if self.extended[stage] + action.working_days > self.cap(stage) and \
                    action.good_reason is None:
                return "over cap"
            kind = DeadlineKind.STAGE1_RESPONSE if stage == 1 else DeadlineKind.STAGE2_RESPONSE
            due = clock.latest(kind)
            if due is not None and due.ends_at <= clock.now:
                return "already overdue"
        if isinstance(action, Respond):
            expected = self.points[self.stage]
            answered = [f.point for f in action.findings]
            if sorted(answered) != sorted(expected):
                return "6.7 points"
            if self.stage == 2 and self.same(action.by, self.stage1_handler):
                return "6.13"
            if action.decision is not Decision.NOT_UPHELD and not action.remedies:
                return "7.1 remedy"
            if any(r.kind is RemedyKind.FINANCIAL and r.amount is None for r in action.remedies):
                return "7.3 amount"
            ids = [a.action_id for a in action.outstanding_actions]
            if len(set(ids)) != len(ids) or set(ids) & self.all_actions:
                return "action ids"
            if any(a.due_by > clock.today + timedelta(days=5 * 366)
                   for a in action.outstanding_actions):
                return "action horizon"
        if isinstance(action, RequestEscalation):
            if action.requested_on > clock.today:
                return "future request"
            if self.responded_on is not None and action.requested_on < self.responded_on:
                return "before response"
        if isinstance(action, AcknowledgeEscalation) and \
                self.same(action.handler_id, self.stage1_handler):
            return "6.13"
        if isinstance(action, CompleteAction) and action.action_id not in self.open_actions:
            return "no such action"
        if isinstance(action, Close) and self.open_actions:
            return "7.3 open actions"
        if isinstance(action, ReopenOnOrder):
            if action.order is OmbudsmanOrderKind.TAKE_ON_COMPLAINT:
                if not self.declined or self.acknowledged:
                    return "2.4 nothing to take on"
                if self.state not in ("declined", "with_ombudsman"):
                    return "2.4 state"
            else:
                if not self.escalation_refused:
                    return "5.11 nothing to escalate"
                if self.state not in ("closed", "with_ombudsman"):
                    return "5.11 state"
        return None

    def apply(self, action: Action, clock: Clock) -> None:
        """Take an allowed action."""
        if isinstance(action, Acknowledge):
            self.state, self.acknowledged = "stage1_investigating", True
            self.stage1_handler = action.handler_id
            self.points[1] = list(action.definition.points)
        elif isinstance(action, Decline):
            self.state, self.declined = "declined", True
        elif isinstance(action, Extend):
            stage = self.stage
            self.extended[stage] += action.working_days
            self.good_reason[stage] |= action.good_reason is not None
            self.state = f"stage{stage}_extended"
        elif isinstance(action, Respond):
            stage = self.stage
            self.state = f"stage{stage}_responded"
            ids = [a.action_id for a in action.outstanding_actions]
            self.open_actions += ids
            self.all_actions |= set(ids)
            if stage == 1:
                self.responded_on = clock.today
        elif isinstance(action, RequestEscalation):
            self.state = "stage2_requested"
        elif isinstance(action, RefuseEscalation):
            self.state, self.escalation_refused = "closed", True
        elif isinstance(action, AcknowledgeEscalation):
            self.state = "stage2_reviewing"
            self.stage2_handler = action.handler_id
            self.points[2] = list(action.definition.points)
        elif isinstance(action, AddIssue):
            if self.state in STAGE1_OPEN and action.related and \
                    not action.would_unreasonably_delay:
                self.points[1].append(action.description)
        elif isinstance(action, CompleteAction):
            self.open_actions.remove(action.action_id)
            window = clock.latest(DeadlineKind.ESCALATION_WINDOW)
            if self.state == "stage1_responded" and not self.open_actions and \
                    window is not None and window.ends_at <= clock.now:
                self.state = "closed"  # the window had lapsed: nothing keeps the case open
        elif isinstance(action, Withdraw):
            self.state = "withdrawn"
        elif isinstance(action, ReferOmbudsman):
            self.state = "with_ombudsman"
        elif isinstance(action, ReopenOnOrder):
            if action.order is OmbudsmanOrderKind.TAKE_ON_COMPLAINT:
                self.state = "received"
            else:
                self.state, self.escalation_refused = "stage2_requested", False
        elif isinstance(action, Close):
            self.state = "closed"

    def time_passed(self, clock: Clock) -> None:
        """What time alone does: the escalation window lapsing closes an idle case."""
        window = clock.latest(DeadlineKind.ESCALATION_WINDOW)
        if self.state == "stage1_responded" and not self.open_actions and window is not None \
                and window.status is not DeadlineStatus.MET and window.ends_at <= clock.now:
            self.state = "closed"


# --- building actions -------------------------------------------------------------------

_ids = iter(range(1, 10**9))


def finding(point: str) -> PointFinding:
    """A finding with a reason for one point."""
    return PointFinding(point=point, finding="Found so", reason="The repair log shows it")


def build(trigger: str, variant: str, model: CodeModel, clock: Clock) -> Action:
    """An action for ``trigger``: ``valid`` per the model, else a buildable faulty one."""
    today, stage = clock.today, model.stage
    handler = H2 if stage == 2 else H1
    if trigger == "acknowledge":
        return Acknowledge(by=H1, handler_id=H1, definition=DEFINITION)
    if trigger == "decline":
        grounds, discretion = {
            "valid": ((ExclusionGround.LEGAL_PROCEEDINGS,), None),
            "escalation_ground": ((ExclusionGround.OUTSIDE_ESCALATION_WINDOW,), None),
            "old_no_discretion": ((ExclusionGround.OLDER_THAN_12_MONTHS,), None),
            "old_with_discretion": ((ExclusionGround.OLDER_THAN_12_MONTHS,),
                                    "No reason the resident could not complain sooner"),
            "repeated": ((ExclusionGround.LEGAL_PROCEEDINGS,) * 2, None),
        }[variant]
        return Decline(by=MANAGER, grounds=grounds, discretion_considered=discretion,
                       explanation="A claim about the same repair was filed at court")
    if trigger == "refuse_escalation":
        grounds, discretion = {
            "valid": ((ExclusionGround.LEGAL_PROCEEDINGS,), None),
            "old_no_discretion": ((ExclusionGround.OLDER_THAN_12_MONTHS,), None),
            "old_with_discretion": ((ExclusionGround.OLDER_THAN_12_MONTHS,),
                                    "Considered; nothing explains the delay"),
            "repeated": ((ExclusionGround.LEGAL_PROCEEDINGS,) * 2, None),
        }[variant]
        return RefuseEscalation(by=MANAGER, grounds=grounds, discretion_considered=discretion,
                                explanation="A claim about the same matter was filed at court")
    if trigger == "extend":
        room = model.cap(stage) - model.extended[stage]
        if variant == "valid":
            days = min(max(room, 1), 3)
            return Extend(by=handler, working_days=days, reason="A survey is booked",
                          good_reason=None if room >= days else "The contractor went bust")
        return Extend(by=handler, working_days=min(max(room, 0) + 2, 60),
                      reason="Awaiting a specialist report",
                      good_reason="A specialist is needed" if variant == "over_cap_good" else None)
    if trigger == "respond":
        points = list(model.points[stage]) or list(DEFINITION.points)
        findings = [finding(p) for p in points]
        remedies: list[Remedy] = [Remedy(kind=RemedyKind.APOLOGY, description="We apologise")]
        new_id = f"A{next(_ids)}"
        due = today + timedelta(days=30)
        by, decision = handler, Decision.PARTLY_UPHELD
        if variant == "missing_point":
            findings = findings[1:]
        elif variant == "extra_point":
            findings.append(finding("Something the resident never raised"))
        elif variant == "duplicate_point":
            findings.append(findings[0])
        elif variant == "no_remedy":
            remedies, decision = [], Decision.UPHELD
        elif variant == "unpriced":
            remedies.append(Remedy(kind=RemedyKind.FINANCIAL, description="Compensation"))
        elif variant == "reused_id":
            new_id = sorted(model.all_actions)[0] if model.all_actions else new_id
        elif variant == "far_future":
            due = today + timedelta(days=6 * 366)
        elif variant == "stage1_handler":
            by = H1.upper()
        actions = [OutstandingAction(action_id=new_id, description="Replace roof tiles",
                                     due_by=due)]
        if variant == "reused_id" and not model.all_actions:
            actions.append(actions[0])
        if variant == "no_actions":
            actions = []
        return Respond(by=by, decision=decision, findings=tuple(findings),
                       remedies=tuple(remedies), outstanding_actions=tuple(actions))
    if trigger == "request_escalation":
        responded = model.responded_on or today
        requested = {"valid": today, "future": today + timedelta(days=3),
                     "before_response": responded - timedelta(days=1)}[variant]
        return RequestEscalation(by=MANAGER, requested_on=requested)
    if trigger == "acknowledge_escalation":
        reviewer = {"valid": H2, "stage1_handler": H1, "stage1_handler_case": H1.upper()}[variant]
        return AcknowledgeEscalation(by=reviewer, handler_id=reviewer,
                                     definition=STAGE2_DEFINITION)
    if trigger == "add_issue":
        related, delay = {"valid": (True, False), "unrelated": (False, False),
                          "delaying": (True, True)}[variant]
        return AddIssue(by=handler, description=f"Issue {next(_ids)}: the gutter leaks too",
                        related=related, would_unreasonably_delay=delay)
    if trigger == "record_contact":
        return RecordContact(by=handler, direction=ContactDirection.OUTBOUND,
                             channel=Channel.PHONE, summary="Called to agree a visit",
                             early_contact=variant == "early")
    if trigger == "complete_action":
        target = model.open_actions[0] if variant == "valid" and model.open_actions else "Z999"
        return CompleteAction(by=handler, action_id=target, note="Done")
    if trigger == "withdraw":
        return Withdraw(by=MANAGER)
    if trigger == "refer_ombudsman":
        return ReferOmbudsman(by=MANAGER, ombudsman_reference="HOS-123")
    if trigger == "reopen_on_order":
        order = (OmbudsmanOrderKind.TAKE_ON_COMPLAINT if variant == "take_on"
                 else OmbudsmanOrderKind.ESCALATE_TO_STAGE2)
        return ReopenOnOrder(by=MANAGER, order=order, details="Ombudsman order 2026/123")
    if trigger == "close":
        return Close(by=handler)
    raise AssertionError(trigger)


VARIANTS: dict[str, list[str]] = {
    "acknowledge": ["valid"],
    "decline": ["valid", "escalation_ground", "old_no_discretion", "old_with_discretion",
                "repeated"],
    "extend": ["valid", "over_cap", "over_cap_good"],
    "respond": ["valid", "no_actions", "missing_point", "extra_point", "duplicate_point",
                "no_remedy", "unpriced", "reused_id", "far_future", "stage1_handler"],
    "request_escalation": ["valid", "future", "before_response"],
    "refuse_escalation": ["valid", "old_no_discretion", "old_with_discretion", "repeated"],
    "acknowledge_escalation": ["valid", "stage1_handler", "stage1_handler_case"],
    "add_issue": ["valid", "unrelated", "delaying"],
    "record_contact": ["valid", "early"],
    "complete_action": ["valid", "unknown"],
    "withdraw": ["valid"],
    "refer_ombudsman": ["valid"],
    "reopen_on_order": ["take_on", "escalate"],
    "close": ["valid"],
}
assert set(VARIANTS) == set(ACTION_BY_TRIGGER)

#: The order in which valid actions are offered: the lifecycle's main path first.
MAIN_PATH = ["acknowledge", "respond", "request_escalation", "acknowledge_escalation",
             "complete_action", "close", "reopen_on_order", "extend"]

#: Ways to break a payload so that it can never validate.
CORRUPTIONS = ["drop_by", "unknown_field", "by_number", "by_too_long", "by_control_char",
               "field_wrong_type", "random_keys", "not_an_object"]


def corrupt(payload: dict[str, Any], how: str, noise: dict[str, Any]) -> Any:
    """``payload`` broken in the way ``how`` names."""
    broken = dict(payload)
    if how == "drop_by":
        broken.pop("by")
    elif how == "unknown_field":
        broken["national_insurance_number"] = "QQ123456C"
    elif how == "by_number":
        broken["by"] = 12345
    elif how == "by_too_long":
        broken["by"] = "x" * 201
    elif how == "by_control_char":
        broken["by"] = "staff\x00101"
    elif how == "field_wrong_type":
        other = next((k for k in broken if k != "by"), None)
        broken[other or "by"] = {"nested": ["not", "this"]}
    elif how == "random_keys":
        broken = {k: v for k, v in noise.items() if k != "by"}
    elif how == "not_an_object":
        return ["by", payload.get("by")]
    return broken


# --- the harness: server, worker and database on a private event loop -------------------


class Harness:
    """A time-skipping dev server, a worker and a database, driven from synchronous code."""

    def __init__(self, data_dir: Path) -> None:
        """Start the loop thread, then the server and the worker inside that loop."""
        self.settings = Settings(data_dir=data_dir,
                                 database_url=f"sqlite:///{data_dir / 'stateful.db'}",
                                 outbox_dir=data_dir / "outbox", smtp_host=None,
                                 webhook_url=None)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="temporal-loop",
                                       daemon=True)
        self.thread.start()
        self.task_queue = f"stateful-{uuid.uuid4()}"
        self.sessions = session_factory(make_engine(self.settings.effective_database_url()))
        self.run(self._start(), timeout=180)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run ``coro`` on the harness loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        self.env = await WorkflowEnvironment.start_time_skipping_v2(
            ts_config=TimeSkippingConfig(enabled=False),
            dev_server_existing_path=str(TEMPORAL_CLI),
            dev_server_extra_args=["--dynamic-config-value",
                                   "frontend.WorkflowTimeSkippingEnabled=true"],
            data_converter=pydantic_data_converter, search_attributes=SEARCH_KEYS)
        self.worker = Worker(self.env.client, task_queue=self.task_queue,
                             workflows=[ComplaintWorkflow],
                             activities=build_activities(self.settings),
                             activity_executor=concurrent.futures.ThreadPoolExecutor(8))
        self.worker_task = asyncio.ensure_future(self.worker.run())

    async def _stop(self) -> None:
        await self.worker.shutdown()
        await self.env.shutdown()

    def close(self) -> None:
        """Stop the worker, the server and the loop."""
        try:
            self.run(self._stop(), timeout=60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


HARNESS: Harness | None = None
COUNTS: Counter[str] = Counter()
STATES: Counter[str] = Counter()


def harness() -> Harness:
    """The harness of the running test."""
    assert HARNESS is not None
    return HARNESS


# --- the state machine ------------------------------------------------------------------

NOISE = st.dictionaries(st.text(min_size=1, max_size=8),
                        st.one_of(st.none(), st.booleans(), st.integers(),
                                  st.text(max_size=12), st.lists(st.integers(), max_size=3)),
                        max_size=4)


class ComplaintCase(RuleBasedStateMachine):
    """One complaint: a workflow and the reference model, moved in step."""

    def __init__(self) -> None:
        """Nothing runs until :meth:`lodge`."""
        super().__init__()
        self.h = harness()
        self.handle: WorkflowHandle[Any, Any] | None = None
        self.model: CodeModel | None = None
        self.clock: Clock | None = None
        self.days = 0

    # -- plumbing ----------------------------------------------------------------------

    def _view(self) -> CaseView:
        assert self.handle is not None
        return self.h.run(self.handle.query("case_view", result_type=CaseView))

    def _refresh(self) -> Clock:
        assert self.handle is not None
        now = self.h.run(self.h.env.get_current_time(self.handle))
        self.clock = Clock(now=now, view=self._view())
        return self.clock

    def _update(self, trigger: str, payload: Any) -> tuple[CaseView | None, str | None]:
        """Send an update; return the case after it, or the refusal's reason."""
        assert self.handle is not None
        try:
            self.h.run(self.handle.execute_update(trigger, payload,
                                                  result_type=ActionResult))
            return self._view(), None
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            reason = cause.message if isinstance(cause, ApplicationError) else str(cause)
            return None, reason or ""

    def _barrier(self) -> None:
        """Send a contact record as an update: it returns once all earlier work is done."""
        assert self.model is not None
        clock = self._refresh()
        action = build("record_contact", "valid", self.model, clock)
        view, reason = self._update("record_contact", action)
        assert reason is None, f"record_contact refused: {reason}"
        self.model.apply(action, clock)
        COUNTS["barrier updates"] += 1
        assert view is not None

    @staticmethod
    def _snapshot(view: CaseView) -> str:
        return json.dumps([view.case.model_dump(mode="json"),
                           [d.model_dump(mode="json") for d in view.deadlines],
                           [r.model_dump(mode="json") for r in view.letters]], sort_keys=True)

    # -- rules ---------------------------------------------------------------------------

    @initialize(policy=st.sampled_from(["connexus", "code-2024"]),
                issue=st.sampled_from(["none", "recent", "old"]))
    def lodge(self, policy: str, issue: str) -> None:
        """Lodge a new complaint and wait for it to start."""
        today = london_date(dt.datetime.now(dt.UTC))
        issue_on = {"none": None, "recent": today - timedelta(days=60),
                    "old": today - timedelta(days=800)}[issue]
        intake = make_intake(received_on=today, issue_occurred_on=issue_on,
                             policy_name=policy)
        self.handle = self.h.run(self.h.env.client.start_workflow(
            ComplaintWorkflow.run, CaseInput(intake=intake), id=intake.reference,
            task_queue=self.h.task_queue))
        for _ in range(100):
            if self._view().deadlines:
                break
            time.sleep(0.05)
        self.model = CodeModel(policy=load_compliant_policy(policy), received_on=today,
                               issue_on=issue_on)
        self._refresh()
        COUNTS["cases"] += 1

    @rule(data=st.data())
    def valid_action(self, data: st.DataObject) -> None:
        """Take an action the model says is allowed, as an update."""
        assert self.model is not None
        clock = self._refresh()
        candidates = []
        for trigger in sorted(ALLOWED[self.model.state]):
            action = build(trigger, "valid" if "valid" in VARIANTS[trigger]
                           else VARIANTS[trigger][0], self.model, clock)
            if self.model.refusal(action, clock) is None:
                candidates.append(action)
        # Contact records are always allowed: keep them for when nothing else is. The
        # candidates are listed main path first (Hypothesis favours early elements), so
        # that walks reach stage 2 instead of ending in a withdrawal or a referral at once.
        moving = sorted((a for a in candidates if a.trigger != "record_contact"),
                        key=lambda a: (MAIN_PATH.index(a.trigger) if a.trigger in MAIN_PATH
                                       else len(MAIN_PATH), a.trigger))
        action = data.draw(st.sampled_from(moving), label="action") if moving else \
            build("record_contact", "valid", self.model, clock)
        self._act(action, "update")

    @precondition(lambda self: self.model is not None
                  and self.model.state in STAGE1_OPEN + STAGE2_OPEN)
    @rule(variant=st.sampled_from(VARIANTS["extend"]))
    def extension(self, variant: str) -> None:
        """Extend an open stage (within the cap, over it, or over it with a good reason)."""
        assert self.model is not None
        self._act(build("extend", variant, self.model, self._refresh()), "update")

    @rule(data=st.data())
    def another_valid_action(self, data: st.DataObject) -> None:
        """As :meth:`valid_action`: a second rule doubles its weight, so cases go deeper."""
        self.valid_action(data)

    @rule(trigger=st.sampled_from(sorted(VARIANTS)), data=st.data())
    def any_action(self, trigger: str, data: st.DataObject) -> None:
        """Take any action, valid or faulty, in any state, as an update."""
        assert self.model is not None
        variant = data.draw(st.sampled_from(VARIANTS[trigger]), label="variant")
        self._act(build(trigger, variant, self.model, self._refresh()), "update")

    @rule(trigger=st.sampled_from(sorted(VARIANTS)), data=st.data())
    def signalled_action(self, trigger: str, data: st.DataObject) -> None:
        """Send any buildable action as a signal of raw JSON (how integrations send it)."""
        assert self.model is not None
        variant = data.draw(st.sampled_from(VARIANTS[trigger]), label="variant")
        self._act(build(trigger, variant, self.model, self._refresh()), "signal")

    @rule(trigger=st.sampled_from(sorted(VARIANTS)), how=st.sampled_from(CORRUPTIONS),
          noise=NOISE, as_signal=st.booleans())
    def malformed(self, trigger: str, how: str, noise: dict[str, Any], as_signal: bool) -> None:
        """Send a payload that can never validate, as a signal or as an update."""
        assert self.model is not None and self.handle is not None
        clock = self._refresh()
        valid = build(trigger, VARIANTS[trigger][0], self.model, clock).model_dump(mode="json")
        payload = corrupt(valid, how, noise)
        with pytest.raises(ValidationError):
            ACTION_BY_TRIGGER[trigger].model_validate(payload)
        before = clock.view
        if as_signal:
            self.h.run(self.handle.signal(trigger, payload))
            self._barrier()
            after = self._view()
            # Counted, the last few kept: whatever its shape, a signal is never dropped.
            assert after.refused_total == before.refused_total + 1
            assert after.rejected[-1].action == trigger, after.rejected
            if isinstance(payload, dict):
                assert after.rejected[-1].detail.startswith("malformed: ")
                COUNTS["signals malformed (recorded)"] += 1
            else:
                assert after.rejected[-1].detail.startswith("takes a JSON object")
                COUNTS["signals not an object (recorded)"] += 1
            assert after.state == before.state
        else:
            view, reason = self._update(trigger, payload)
            assert view is None and reason, f"malformed {trigger} update was accepted"
            assert self._snapshot(self._view()) == self._snapshot(before)
            COUNTS["updates malformed (refused)"] += 1
        COUNTS[f"tried {trigger}"] += 1

    @precondition(lambda self: self.days < MAX_DAYS)
    @rule(days=st.sampled_from([1, 2, 3, 5, 8, 12, 20, 31, 40]))
    def time_passes(self, days: int) -> None:
        """Skip the case's clock forward, then let its timers fire."""
        assert self.handle is not None and self.model is not None
        days = min(days, MAX_DAYS - self.days)
        assert self.h.run(self.h.env.fast_forward(self.handle, timedelta(days=days)))
        self.days += days
        clock = self._settle()
        self.model.time_passed(clock)
        COUNTS["time advances"] += 1
        COUNTS["days advanced"] += days

    def _settle(self) -> Clock:
        """Wait until every timer due by now has fired (pending deadlines all in the future)."""
        clock = self._refresh()
        for _ in range(100):
            if not _overdue_timers(clock):
                break
            time.sleep(0.05)
            clock = self._refresh()
        return clock

    def _act(self, action: Action, how: str) -> None:
        """Send ``action``; check the outcome against the model's prediction."""
        assert self.model is not None and self.handle is not None
        clock = self._refresh()
        expected = self.model.refusal(action, clock)
        before = clock.view
        trigger = action.trigger
        COUNTS[f"tried {trigger}"] += 1
        if how == "update":
            view, reason = self._update(trigger, action)
            if expected is None:
                assert reason is None, (f"{trigger} refused but the model allows it: "
                                        f"{reason}\n{action!r}")
                COUNTS["updates accepted"] += 1
            else:
                assert view is None, (f"{trigger} accepted but the model refuses it "
                                      f"({expected})\n{action!r}")
                assert reason, "a refused update must say why"
                after = self._view()
                assert self._snapshot(after) == self._snapshot(before), \
                    f"refused {trigger} changed the case"
                COUNTS["updates refused"] += 1
        else:
            self.h.run(self.handle.signal(trigger, action.model_dump(mode="json")))
            self._barrier_after_signal(trigger, expected, before)
        if expected is None:
            self.model.apply(action, clock)
            if how == "signal":
                self.model.apply(build("record_contact", "valid", self.model, clock), clock)

    def _barrier_after_signal(self, trigger: str, expected: str | None,
                              before: CaseView) -> None:
        """Wait for a signal to be handled; check it was accepted or recorded as refused."""
        assert self.handle is not None
        view, reason = self._update("record_contact", build(
            "record_contact", "valid", self.model, self._refresh()))  # type: ignore[arg-type]
        assert reason is None and view is not None
        COUNTS["barrier updates"] += 1
        # The case keeps its most recent audit entries: the signal's is among them.
        last = max((e.seq for e in before.case.audit), default=0)
        events = [e for e in view.case.audit if e.seq > last]
        mine = [e for e in events if e.action == trigger and e.by != "system"] \
            if trigger != "record_contact" else events[:1]
        if expected is None:
            assert len(mine) == 1, f"signal {trigger} left {events}"
            assert mine[0].accepted, f"signal {trigger} refused: {mine[0].detail}"
            COUNTS["signals accepted"] += 1
        else:
            assert mine == [], f"signal {trigger} accepted but the model refuses it " \
                f"({expected})"
            assert view.refused_total == before.refused_total + 1
            assert view.rejected[-1].action == trigger and view.rejected[-1].detail
            COUNTS["signals refused (recorded)"] += 1

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def the_case_holds_to_the_code(self) -> None:
        """Every invariant of the Code and of the engine, checked against the live case."""
        if self.handle is None or self.model is None:
            return
        clock = self._refresh()
        view, case = clock.view, clock.view.case
        COUNTS["invariant checks"] += 1
        STATES[view.state] += 1
        history = self.h.run(self.handle.fetch_history())
        bad = {EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
               EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED}
        failed = [e for e in history.events if e.event_type in bad]
        assert not failed, f"workflow task or execution failed: {failed[0]}"
        assert view.state == self.model.state, \
            f"workflow is {view.state!r}, the model says {self.model.state!r}"
        assert not CodeModel.same(case.stage1_handler, case.stage2_handler), "6.13"
        breached = {d.key for d in view.deadlines if d.status is DeadlineStatus.BREACHED}
        for _ in range(60):  # a breach notice is written just after the deadline is marked
            with self.h.sessions() as session:
                letters = session.exec(select(LetterRow).where(
                    LetterRow.reference == view.reference,
                    LetterRow.kind == "extension")).all()
                breaches = {n.deadline_key for n in session.exec(select(NotificationRow).where(
                    NotificationRow.reference == view.reference,
                    NotificationRow.kind == "breach")).all()}
            if breached <= breaches:
                break
            time.sleep(0.05)
        assert len(letters) == len(case.extensions), "an extension without its letter (6.5)"
        for letter in letters:
            assert OMBUDSMAN_PHONE in letter.text, f"{letter.letter_id} lacks the Ombudsman"
        self._deadlines_within_the_code(view)
        for d in view.deadlines:
            if d.status is DeadlineStatus.BREACHED:
                assert d.key in breaches, f"{d.key} breached but nobody was told"
            elif d.status is DeadlineStatus.PENDING:
                # Not yet due (_overdue_timers, below, finds one past due), and of a clock
                # the state runs: no pending deadline of a stage the case has left.
                assert d.kind in CLOCKS[ComplaintState(view.state)], \
                    f"{d.key} pending in {view.state}"
            elif d.status is DeadlineStatus.LAPSED:
                assert d.kind is DeadlineKind.ESCALATION_WINDOW, f"{d.key} lapsed"
            elif d.status is DeadlineStatus.MET:
                assert d.met_at is not None
            else:
                assert d.status in (DeadlineStatus.EXTENDED, DeadlineStatus.CANCELLED)
        assert not _overdue_timers(clock), "a timer due by now has not fired"

    def _deadlines_within_the_code(self, view: CaseView) -> None:
        """No response deadline later than its base plus the cap, unless a good reason."""
        assert self.model is not None
        policy = self.model.policy
        calendar = WorkingCalendar.for_policy(policy)
        good = {e.stage for e in view.case.extensions if e.good_reason is not None}
        limits = policy.limits
        for stage, kind, days in ((1, DeadlineKind.STAGE1_RESPONSE, limits.stage1_response),
                                  (2, DeadlineKind.STAGE2_RESPONSE, limits.stage2_response)):
            base: Deadline | None = None
            previous: Deadline | None = None
            for d in (d for d in view.deadlines if d.kind is kind):
                extension = previous is not None and \
                    previous.status is DeadlineStatus.EXTENDED and d.start == previous.due
                if not extension:
                    base = d
                    assert d.due <= calendar.add_working_days(d.start, days), \
                        f"{d.key} due {d.due} is later than {days} working days allow"
                elif stage not in good:
                    assert base is not None
                    allowed = calendar.add_working_days(base.due, self.model.cap(stage))
                    assert d.due <= allowed, f"{d.key} due {d.due} beyond the cap ({allowed})"
                previous = d

    def teardown(self) -> None:
        """Stop the case's workflow (its timers would otherwise wait forever)."""
        if self.handle is not None:
            self.h.run(self.handle.terminate(reason="stateful example finished"))


def _overdue_timers(clock: Clock) -> list[str]:
    """Deadlines whose timer should have fired by now but whose effect is not visible."""
    late = []
    running = CLOCKS[ComplaintState(clock.view.state)]
    for d in clock.view.deadlines:
        if d.met_at is not None or d.kind not in running:
            continue  # a stage the case has left: its clocks stopped
        if d.status is DeadlineStatus.PENDING and d.ends_at <= clock.now:
            late.append(d.key)
        elif d.status is DeadlineStatus.BREACHED and not d.lead_notified and \
                d.kind is not DeadlineKind.ESCALATION_WINDOW and d.escalate_at <= clock.now:
            late.append(d.key)
    return late


@pytest.mark.slow
def test_random_staff_actions_and_time_keep_the_case_within_the_code(
        tmp_path: Path) -> None:
    """Random actions, malformed payloads and time never break the Code or the engine."""
    global HARNESS
    COUNTS.clear()
    STATES.clear()
    started = time.monotonic()
    HARNESS = Harness(tmp_path)
    try:
        run_state_machine_as_test(ComplaintCase, settings=settings(
            max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, database=None,
            suppress_health_check=list(HealthCheck), print_blob=True))
    finally:
        HARNESS.close()
        HARNESS = None
        elapsed = time.monotonic() - started
        tried = {k.removeprefix("tried "): v for k, v in sorted(COUNTS.items())
                 if k.startswith("tried ")}
        totals = {k: v for k, v in sorted(COUNTS.items()) if not k.startswith("tried ")}
        report = {"test": "tests/test_stateful.py", "runtime_seconds": round(elapsed, 1),
                  "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                  "totals": totals, "actions_by_trigger": tried,
                  "states_seen_after_steps": dict(sorted(STATES.items())),
                  "actions_tried": sum(tried.values())}
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(json.dumps(report, indent=2))
    assert COUNTS["updates accepted"] > 0 and COUNTS["updates refused"] > 0
    assert COUNTS["updates malformed (refused)"] > 0 and COUNTS["time advances"] > 0
