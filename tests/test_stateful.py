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
from decimal import Decimal
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
    AmendIntake,
    Assign,
    Close,
    CompleteAction,
    ComplyOrder,
    ContactDirection,
    Decline,
    DelayAction,
    Extend,
    OmbudsmanContact,
    OmbudsmanContactKind,
    OmbudsmanDetermination,
    OmbudsmanFinding,
    OmbudsmanOrderKind,
    OrderItem,
    PayRemedy,
    Reassign,
    ReassignRole,
    RecordContact,
    ReferOmbudsman,
    RefuseEscalation,
    ReopenOnOrder,
    RequestEscalation,
    Respond,
    Void,
    VoidReason,
    Withdraw,
)
from models.case import (
    Adjustment,
    Channel,
    Decision,
    ExclusionGround,
    OutstandingAction,
    Party,
    PartyRole,
    PointFinding,
    Remedy,
    RemedyKind,
)
from models.events import ActionResult, CaseInput
from models.messages import CaseView, Deadline, DeadlineKind, DeadlineStatus
from models.policy import Policy
from models.tables import LetterRow, NotificationRow
from tests.cases import DEFINITION
from tests.conftest import CONVERTER, SEARCH_KEYS, TEMPORAL_CLI, make_intake
from workflows.complaint import ComplaintWorkflow, london_date

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / ".data" / "reliability" / "stateful.json"

H1, H2, MANAGER = "staff-101", "staff-202", "staff-900"
#: Who agrees stage 1 extensions and who signs the stage 1 response: stage 1 people (6.13).
EXTENDER, RESPONDER = "staff-303", "staff-404"
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
#: Where outstanding actions and promised remedies are still followed through (7.3).
_TRACKED = {"delay_action", "pay_remedy"}
#: What each state allows, read from the domain brief (the Code's lifecycle in words),
#: casework revision 2, and revision 3's assigning (and claiming) of a case not yet
#: acknowledged; revision 3 otherwise changes only a late request's flag.
ALLOWED: dict[str, set[str]] = {
    "received": {"acknowledge", "decline", "add_issue", "withdraw", "refer_ombudsman",
                 "void", "reassign", "assign"},
    "declined": {"refer_ombudsman", "reopen_on_order"},
    "stage1_investigating": {"extend", "respond", "add_issue", "withdraw", "refer_ombudsman",
                             "decline", "void", "reassign"},
    "stage1_extended": {"extend", "respond", "add_issue", "withdraw", "refer_ombudsman",
                        "decline", "void", "reassign"},
    "stage1_responded": {"request_escalation", "add_issue", "complete_action", "withdraw",
                         "refer_ombudsman", "close", "reopen_on_order", "void", "reassign",
                         *_TRACKED},
    "stage2_requested": {"refuse_escalation", "acknowledge_escalation", "add_issue",
                         "complete_action", "withdraw", "refer_ombudsman", "void",
                         "reassign", "assign", *_TRACKED},
    "stage2_reviewing": {"extend", "respond", "add_issue", "complete_action", "withdraw",
                         "refer_ombudsman", "void", "reassign", *_TRACKED},
    "stage2_extended": {"extend", "respond", "add_issue", "complete_action", "withdraw",
                        "refer_ombudsman", "void", "reassign", *_TRACKED},
    "stage2_responded": {"add_issue", "complete_action", "refer_ombudsman", "close", "void",
                         "reassign", *_TRACKED},
    "with_ombudsman": {"complete_action", "reopen_on_order", "close", "reassign", *_TRACKED},
    "closed": {"complete_action", "refer_ombudsman", "reopen_on_order", "request_escalation",
               *_TRACKED},
    "withdrawn": set(),
    "voided": set(),
}
for _allowed in ALLOWED.values():
    _allowed |= _EVERYWHERE
#: The Ombudsman's enquiries and instructions come while the landlord's process runs (or
#: after it ended); its determinations and the compliance with its orders come any time
#: before the case is withdrawn or voided, with the Ombudsman included. None moves the state.
_OMBUDSMAN_CONTACT = {"received", *STAGE1_OPEN, "stage1_responded", "stage2_requested",
                      *STAGE2_OPEN, "stage2_responded", "declined", "closed"}
for _state, _allowed in ALLOWED.items():
    if _state in _OMBUDSMAN_CONTACT:
        _allowed.add("ombudsman_contact")
    if _state in _OMBUDSMAN_CONTACT | {"with_ombudsman"}:
        _allowed |= {"ombudsman_determination", "comply_order"}
    # Who the complaint is from and what they need may be corrected while it is live.
    if _state not in ("declined", "closed", "withdrawn", "voided"):
        _allowed.add("amend_intake")
#: The furthest ahead an action, a remedy or a revised date may be promised (7.3).
HORIZON = timedelta(days=5 * 366)
#: Most times one outstanding action may be reported delayed.
MAX_DELAYS = 20
#: Most contacts from the Ombudsman, and most orders (instructions included), on one case.
MAX_OMBUDSMAN_CONTACTS = 50
MAX_ORDERS = 50
#: The letters each accepted action sends (revision 2), by trigger; see
#: :meth:`CodeModel.letters` for those that depend on the stage or the role.
LETTERS: dict[str, tuple[str, ...]] = {
    "acknowledge": ("stage1_acknowledgement",), "decline": ("exclusion",),
    "extend": ("extension",), "acknowledge_escalation": ("stage2_acknowledgement",),
    "refuse_escalation": ("escalation_refusal",), "complete_action": ("action_update",),
    "delay_action": ("action_update",), "withdraw": ("withdrawal_confirmation",),
}


def months_before(day: dt.date, months: int) -> dt.date:
    """The same day ``months`` months earlier (clamped to the month's last day)."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    last = (dt.date(year + (month + 1) // 12, (month + 1) % 12 + 1, 1) - timedelta(days=1)).day
    return dt.date(year, month + 1, min(day.day, last))


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

    def window_lapsed(self) -> bool:
        """Whether the escalation window ran and ended without a request."""
        window = self.latest(DeadlineKind.ESCALATION_WINDOW)
        return window is not None and window.status is not DeadlineStatus.MET and \
            window.ends_at <= self.now


@dataclass
class CodeModel:
    """A plain model of one complaint under the Code: the state and what it depends on."""

    policy: Policy
    reference: str
    received_on: dt.date
    issue_on: dt.date | None
    #: Whether this case's valid responses promise a (dated) financial remedy.
    money: bool = False
    state: str = "received"
    stage1_handler: str | None = None
    stage2_handler: str | None = None
    #: Everyone who acknowledged, handled, extended or answered stage 1 (6.13), casefolded.
    stage1_people: set[str] = field(default_factory=set)
    stage2_defined: bool = False
    manager: str | None = None
    #: Who the case is assigned to before it is acknowledged (revision 3).
    assignee: str | None = None
    points: dict[int, list[str]] = field(default_factory=lambda: {1: [], 2: []})
    extended: dict[int, int] = field(default_factory=lambda: {1: 0, 2: 0})
    good_reason: dict[int, bool] = field(default_factory=lambda: {1: False, 2: False})
    open_actions: list[str] = field(default_factory=list)
    all_actions: set[str] = field(default_factory=set)
    #: Each action's current due date (the last revised one) and how often it was delayed.
    action_due: dict[str, dt.date] = field(default_factory=dict)
    delays: Counter[str] = field(default_factory=Counter)
    #: Each stage's response remedies, as whether each one is financial; and those paid.
    remedies: dict[int, list[bool]] = field(default_factory=dict)
    paid: set[tuple[int, int]] = field(default_factory=set)
    declined: bool = False
    acknowledged: bool = False
    escalation_refused: bool = False
    escalation_late: bool = False
    responded_on: dt.date | None = None
    #: Contacts from the Ombudsman accepted (enquiries and instructions: they number the
    #: instructions); every order or instruction by id with its due date, and those open.
    ombudsman_contacts: int = 0
    order_due: dict[str, dt.date] = field(default_factory=dict)
    open_orders: list[str] = field(default_factory=list)
    #: The escalation windows whose lapse was seen (it happens once, when the timer fires).
    lapses_seen: set[str] = field(default_factory=set)

    @property
    def stage(self) -> int:
        """The stage of an open or answered stage (1 or 2)."""
        return 2 if self.state.startswith("stage2") else 1

    @property
    def unpaid(self) -> list[tuple[int, int]]:
        """Financial remedies promised in a response and not yet paid (stage, number)."""
        return [(stage, n) for stage, kinds in sorted(self.remedies.items())
                for n, financial in enumerate(kinds, 1)
                if financial and (stage, n) not in self.paid]

    @property
    def handler(self) -> str | None:
        """The current handler: stage 2's once stage 2 is acknowledged, else stage 1's."""
        return self.stage2_handler if self.stage2_defined else self.stage1_handler

    def cap(self, stage: int) -> int:
        """The policy's extension cap at ``stage`` (6.4, 6.15)."""
        limits = self.policy.limits
        return limits.stage1_extension_cap if stage == 1 else limits.stage2_extension_cap

    @staticmethod
    def same(a: str | None, b: str | None) -> bool:
        """Whether two staff ids are the same person."""
        return a is not None and b is not None and a.strip().casefold() == b.strip().casefold()

    def at_stage1(self, who: str | None) -> bool:
        """Whether ``who`` acknowledged, handled, extended or answered stage 1 (6.13)."""
        return who is not None and who.strip().casefold() in self.stage1_people

    def _involve(self, who: str) -> None:
        self.stage1_people.add(who.strip().casefold())

    def _followed_through(self) -> bool:
        """Nothing open and nothing unpaid: what keeps an answered case open is done."""
        return not self.open_actions and not self.unpaid

    def _may_close_itself(self, clock: Clock) -> bool:
        """Whether a lapsed window lets an answered stage 1 close with nothing to follow.

        An open Ombudsman order or instruction keeps it open whatever else is done.
        """
        return self.state == "stage1_responded" and self._followed_through() and \
            not self.open_orders and clock.window_lapsed()

    def refusal(self, action: Action, clock: Clock) -> str | None:
        """Why the Code refuses ``action`` now (a short tag), or None if it is allowed."""
        trigger = action.trigger
        today = clock.today
        if trigger not in ALLOWED[self.state]:
            return "state"
        if isinstance(action, Decline):
            grounds = list(action.grounds)
            if ExclusionGround.OUTSIDE_ESCALATION_WINDOW in grounds:
                return "2.2 ground"
            if len(set(grounds)) != len(grounds):
                return "repeated ground"
            if ExclusionGround.OLDER_THAN_12_MONTHS in grounds:
                if self.state != "received":
                    return "2.2 twelve-month ground known at acknowledgement"
                if action.discretion_considered is None:
                    return "2.3 discretion"
                occurred = self.issue_on or action.issue_occurred_on
                if occurred is None:
                    return "2.3 no date"
                limit = months_before(self.received_on, self.policy.exclusion_window_months)
                if occurred >= limit:
                    return "2.3 within the window"
                if action.aware_on is not None and action.aware_on >= limit:
                    return "2.3 aware within the window"
        if isinstance(action, RefuseEscalation):
            grounds = list(action.grounds)
            if len(set(grounds)) != len(grounds):
                return "repeated ground"
            if ExclusionGround.OUTSIDE_ESCALATION_WINDOW in grounds and \
                    not self.escalation_late:
                return "5.11 request within the window"
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
            if self.stage == 2 and self.at_stage1(action.by):
                return "6.13"
            if action.decision is not Decision.NOT_UPHELD and not action.remedies:
                return "7.1 remedy"
            financial = [r for r in action.remedies if r.kind is RemedyKind.FINANCIAL]
            if any(r.amount is None for r in financial):
                return "7.3 amount"
            if any(r.due_by is None for r in financial):
                return "7.3 payment date"
            if any(r.due_by is not None and r.due_by > today + HORIZON
                   for r in action.remedies):
                return "remedy horizon"
            ids = [a.action_id for a in action.outstanding_actions]
            if len(set(ids)) != len(ids) or set(ids) & self.all_actions:
                return "action ids"
            if any(a.due_by > today + HORIZON for a in action.outstanding_actions):
                return "action horizon"
        if isinstance(action, RequestEscalation):
            if self.state == "closed" and (self.responded_on is None or self.stage2_defined
                                           or self.escalation_refused):
                return "5.11 closed: nothing to escalate"
            if action.requested_on > today:
                return "future request"
            if self.responded_on is not None and action.requested_on < self.responded_on:
                return "before response"
        if isinstance(action, AcknowledgeEscalation) and (
                self.at_stage1(action.handler_id) or self.at_stage1(action.by)):
            return "6.13"
        if isinstance(action, CompleteAction) and action.action_id not in self.open_actions:
            return "no such action"
        if isinstance(action, DelayAction):
            if action.action_id not in self.open_actions:
                return "no such action"
            if action.revised_due <= self.action_due[action.action_id]:
                return "not later than now due"
            if action.revised_due <= today:
                return "not after today"
            if action.revised_due > today + HORIZON:
                return "action horizon"
            if self.delays[action.action_id] >= MAX_DELAYS:
                return "too many delays"
        if isinstance(action, PayRemedy):
            kinds = self.remedies.get(action.stage)
            if kinds is None:
                return "no response at that stage"
            if action.remedy > len(kinds):
                return "no such remedy"
            if not kinds[action.remedy - 1]:
                return "not financial"
            if (action.stage, action.remedy) in self.paid:
                return "already paid"
            if action.paid_on > today:
                return "paid in the future"
        if isinstance(action, Close):
            if self.open_actions:
                return "7.3 open actions"
            if self.open_orders:
                return "open Ombudsman orders"
            if self.unpaid:
                return "7.3 unpaid remedy"
        if isinstance(action, AmendIntake):
            if action.parties is None and action.adjustments is None and \
                    action.adjustments_review_on is None:
                return "nothing to amend"
            if action.parties is not None and not any(
                    p.role is PartyRole.RESIDENT for p in action.parties):
                return "no resident"
        if isinstance(action, OmbudsmanContact):
            if action.kind is OmbudsmanContactKind.INSTRUCTION and action.respond_by is None:
                return "instruction without respond_by"
            if action.respond_by is not None and \
                    not today <= action.respond_by <= today + HORIZON:
                return "respond_by out of range"
            if self.ombudsman_contacts >= MAX_OMBUDSMAN_CONTACTS:
                return "too many Ombudsman contacts"
        if isinstance(action, OmbudsmanDetermination):
            ids = [o.order_id for o in action.orders]
            if len(set(ids)) != len(ids) or set(ids) & set(self.order_due):
                return "order ids"
            if any(o.due_by > today + HORIZON for o in action.orders):
                return "order horizon"
            if len(self.order_due) + len(ids) > MAX_ORDERS:
                return "too many orders"
        if isinstance(action, ComplyOrder) and action.order_id not in self.open_orders:
            return "no such open order"
        if isinstance(action, Withdraw) and (action.reason is None
                                             or action.confirmed_via is None):
            return "5.12 reason and confirmation"
        if isinstance(action, Void):
            if action.reason is not VoidReason.CREATED_IN_ERROR and not action.duplicate_of:
                return "void: which case carries on"
            if action.duplicate_of == self.reference:
                return "void: itself"
        if isinstance(action, Assign):
            if self.assignee is not None and self.same(action.to, self.assignee):
                return "already assigned"
            if self.state == "stage2_requested" and self.at_stage1(action.to):
                return "6.13"
        if isinstance(action, Reassign):
            if action.role is ReassignRole.MANAGER:
                if self.same(action.to, self.manager):
                    return "already the manager"
            else:
                if self.handler is None:
                    return "no handler yet"
                if self.same(action.to, self.handler):
                    return "already the handler"
                if self.stage2_defined and self.at_stage1(action.to):
                    return "6.13"
        if isinstance(action, ReopenOnOrder):
            if action.order is OmbudsmanOrderKind.TAKE_ON_COMPLAINT:
                if not self.declined or self.acknowledged:
                    return "2.4 nothing to take on"
                if self.state not in ("declined", "with_ombudsman"):
                    return "2.4 state"
            else:
                if self.responded_on is None or self.stage2_defined:
                    return "5.11 nothing to escalate"
                if self.state not in ("stage1_responded", "closed", "with_ombudsman"):
                    return "5.11 state"
        return None

    def letters(self, action: Action) -> list[str]:
        """The kinds of letter an allowed ``action`` sends, taken now."""
        if isinstance(action, Respond):
            return ["stage1_response" if self.stage == 1 else "final_response"]
        if isinstance(action, Reassign):
            return ["handler_changed"] if action.role is ReassignRole.HANDLER else []
        return list(LETTERS.get(action.trigger, ()))

    def apply(self, action: Action, clock: Clock) -> None:
        """Take an allowed action."""
        if isinstance(action, Assign):
            self.assignee = action.to
        elif isinstance(action, Acknowledge):
            self.assignee = None
            self.state, self.acknowledged = "stage1_investigating", True
            self.stage1_handler = action.handler_id
            self._involve(action.by)
            self._involve(action.handler_id)
            self.points[1] = list(action.definition.points)
        elif isinstance(action, Decline):
            self.state, self.declined = "declined", True
            if self.issue_on is None:  # the case's issue date from now on (2.3)
                self.issue_on = action.issue_occurred_on
        elif isinstance(action, Extend):
            stage = self.stage
            self.extended[stage] += action.working_days
            self.good_reason[stage] |= action.good_reason is not None
            self.state = f"stage{stage}_extended"
            if stage == 1:
                self._involve(action.by)
        elif isinstance(action, Respond):
            stage = self.stage
            self.state = f"stage{stage}_responded"
            ids = [a.action_id for a in action.outstanding_actions]
            self.open_actions += ids
            self.all_actions |= set(ids)
            self.action_due |= {a.action_id: a.due_by for a in action.outstanding_actions}
            self.remedies[stage] = [r.kind is RemedyKind.FINANCIAL for r in action.remedies]
            if stage == 1:
                self.responded_on = clock.today
                self._involve(action.by)
        elif isinstance(action, RequestEscalation):
            self.state = "stage2_requested"
            window = clock.latest(DeadlineKind.ESCALATION_WINDOW)
            if window is not None and action.requested_on > window.due:
                self.escalation_late = True
        elif isinstance(action, RefuseEscalation):
            self.state, self.escalation_refused = "closed", True
        elif isinstance(action, AcknowledgeEscalation):
            self.state, self.stage2_defined = "stage2_reviewing", True
            self.stage2_handler = action.handler_id
            self.assignee = None
            self.points[2] = list(action.definition.points)
        elif isinstance(action, AddIssue):
            if self.state in STAGE1_OPEN and action.related and \
                    not action.would_unreasonably_delay:
                self.points[1].append(action.description)
        elif isinstance(action, CompleteAction):
            self.open_actions.remove(action.action_id)
            self._close_if_lapsed(clock)
        elif isinstance(action, DelayAction):
            self.action_due[action.action_id] = action.revised_due
            self.delays[action.action_id] += 1
        elif isinstance(action, PayRemedy):
            self.paid.add((action.stage, action.remedy))
            self._close_if_lapsed(clock)
        elif isinstance(action, Withdraw):
            self.state = "withdrawn"
        elif isinstance(action, Void):
            self.state = "voided"
        elif isinstance(action, Reassign):
            if action.role is ReassignRole.MANAGER:
                self.manager = action.to
            elif self.stage2_defined:
                self.stage2_handler = action.to
            else:
                self.stage1_handler = action.to  # the one replaced stays a stage 1 person
                self._involve(action.to)
        elif isinstance(action, ReferOmbudsman):
            self.state = "with_ombudsman"
        elif isinstance(action, ReopenOnOrder):
            if action.order is OmbudsmanOrderKind.TAKE_ON_COMPLAINT:
                self.state = "received"
            else:
                self.state, self.escalation_refused = "stage2_requested", False
                self.escalation_late = False  # the order overrides lateness (revision 3)
        elif isinstance(action, Close):
            self.state = "closed"
        elif isinstance(action, OmbudsmanContact):
            self.ombudsman_contacts += 1
            if action.kind is OmbudsmanContactKind.INSTRUCTION:
                assert action.respond_by is not None
                self._order(f"instruction-{self.ombudsman_contacts}", action.respond_by)
        elif isinstance(action, OmbudsmanDetermination):
            for order in action.orders:
                self._order(order.order_id, order.due_by)
        elif isinstance(action, ComplyOrder):
            self.open_orders.remove(action.order_id)  # never closes the case by itself

    def _order(self, order_id: str, due: dt.date) -> None:
        self.order_due[order_id] = due
        self.open_orders.append(order_id)

    def _close_if_lapsed(self, clock: Clock) -> None:
        """After stage 1 with the window lapsed, the last thing followed through closes it."""
        if self._may_close_itself(clock):
            self.state = "closed"  # the window had lapsed: nothing keeps the case open

    def time_passed(self, clock: Clock) -> None:
        """What time alone does: the escalation window lapsing closes an idle case.

        The lapse happens once; an order open then keeps the case open after it.
        """
        window = clock.latest(DeadlineKind.ESCALATION_WINDOW)
        if window is None or not clock.window_lapsed() or window.key in self.lapses_seen:
            return
        self.lapses_seen.add(window.key)
        if self._may_close_itself(clock):
            self.state = "closed"


# --- building actions -------------------------------------------------------------------

_ids = iter(range(1, 10**9))
COMPENSATION = Decimal("150.00")
#: The case another is a duplicate of (any reference but the case's own).
OTHER_CASE = "CMP-2026-999999"
NEW_MANAGER = "staff-901"


def finding(point: str) -> PointFinding:
    """A finding with a reason for one point."""
    return PointFinding(point=point, finding="Found so", reason="The repair log shows it")


def build(trigger: str, variant: str, model: CodeModel, clock: Clock) -> Action:
    """An action for ``trigger``: ``valid`` per the model, else a buildable faulty one."""
    today, stage = clock.today, model.stage
    handler = model.handler or (H2 if stage == 2 else H1)
    if trigger == "acknowledge":
        return Acknowledge(by=H1, handler_id=H1, definition=DEFINITION)
    if trigger == "decline":
        old, legal = ExclusionGround.OLDER_THAN_12_MONTHS, ExclusionGround.LEGAL_PROCEEDINGS
        long_ago = model.received_on - timedelta(days=800)
        discretion = "No reason the resident could not complain sooner"
        grounds, considered, occurred, aware = {
            "valid": ((legal,), None, None, None),
            "escalation_ground": ((ExclusionGround.OUTSIDE_ESCALATION_WINDOW,), None, None,
                                  None),
            "old_no_discretion": ((old,), None, long_ago, None),
            "old_with_discretion": ((old,), discretion, long_ago, None),
            "old_without_date": ((old,), discretion, None, None),
            "old_aware_recently": ((old,), discretion, long_ago, today - timedelta(days=30)),
            "after_ack": ((legal, old), discretion, long_ago, long_ago),
            "repeated": ((legal,) * 2, None, None, None),
        }[variant]
        return Decline(by=MANAGER, grounds=grounds, discretion_considered=considered,
                       issue_occurred_on=occurred, aware_on=aware,
                       explanation="A claim about the same repair was filed at court")
    if trigger == "refuse_escalation":
        grounds, considered = {
            "valid": ((ExclusionGround.LEGAL_PROCEEDINGS,), None),
            "old_no_discretion": ((ExclusionGround.OLDER_THAN_12_MONTHS,), None),
            "old_with_discretion": ((ExclusionGround.OLDER_THAN_12_MONTHS,),
                                    "Considered; nothing explains the delay"),
            "window_ground": ((ExclusionGround.OUTSIDE_ESCALATION_WINDOW,), None),
            "repeated": ((ExclusionGround.LEGAL_PROCEEDINGS,) * 2, None),
        }[variant]
        return RefuseEscalation(by=MANAGER, grounds=grounds, discretion_considered=considered,
                                explanation="A claim about the same matter was filed at court")
    if trigger == "extend":
        room = model.cap(stage) - model.extended[stage]
        extender = EXTENDER if stage == 1 else handler
        if variant == "valid":
            days = min(max(room, 1), 3)
            return Extend(by=extender, working_days=days, reason="A survey is booked",
                          good_reason=None if room >= days else "The contractor went bust")
        return Extend(by=extender, working_days=min(max(room, 0) + 2, 60),
                      reason="Awaiting a specialist report",
                      good_reason="A specialist is needed" if variant == "over_cap_good" else None)
    if trigger == "respond":
        points = list(model.points[stage]) or list(DEFINITION.points)
        findings = [finding(p) for p in points]
        remedies: list[Remedy] = [Remedy(kind=RemedyKind.APOLOGY, description="We apologise")]
        money = Remedy(kind=RemedyKind.FINANCIAL, description="Compensation for the damage",
                       amount=COMPENSATION, due_by=today + timedelta(days=28))
        if variant == "financial" or model.money:
            remedies.append(money)
        new_id = f"A{next(_ids)}"
        due = today + timedelta(days=30)
        by, decision = RESPONDER if stage == 1 else handler, Decision.PARTLY_UPHELD
        if variant == "missing_point":
            findings = findings[1:]
        elif variant == "extra_point":
            findings.append(finding("Something the resident never raised"))
        elif variant == "duplicate_point":
            findings.append(findings[0])
        elif variant == "no_remedy":
            remedies, decision = [], Decision.UPHELD
        elif variant == "unpriced":
            remedies.append(money.model_copy(update={"amount": None}))
        elif variant == "financial_undated":
            remedies.append(money.model_copy(update={"due_by": None}))
        elif variant == "remedy_far_future":
            remedies.append(money.model_copy(update={"due_by": today + timedelta(days=6 * 366)}))
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
        by, reviewer = {"valid": (H2, H2), "stage1_handler": (H1, H1),
                        "stage1_handler_case": (H1.upper(), H1.upper()),
                        "stage1_acknowledger": (H1, H2), "stage1_extender": (H2, EXTENDER),
                        "stage1_responder": (RESPONDER.upper(), H2)}[variant]
        return AcknowledgeEscalation(by=by, handler_id=reviewer, definition=STAGE2_DEFINITION)
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
    if trigger == "delay_action":
        target = model.open_actions[0] if model.open_actions and variant != "unknown" \
            else "Z999"
        now_due = model.action_due.get(target, today)
        revised = {"valid": max(now_due, today) + timedelta(days=14),
                   "unknown": today + timedelta(days=14), "not_later": now_due,
                   "far_future": today + timedelta(days=6 * 366)}[variant]
        return DelayAction(by=handler, action_id=target, revised_due=revised,
                           reason="The contractor cannot get the tiles until then")
    if trigger == "pay_remedy":
        unpaid = model.unpaid
        paying: tuple[int, int] = unpaid[0] if unpaid else \
            (stage if stage in model.remedies else 1, 1)
        paid_on = today
        if variant == "not_financial":
            # Every response built here lists the apology first.
            paying = (paying[0], 1)
        elif variant == "already_paid":
            paying = min(model.paid) if model.paid else \
                (paying[0], len(model.remedies.get(paying[0], [])) + 1)
        elif variant == "future":
            paid_on = today + timedelta(days=3)
        return PayRemedy(by=MANAGER, stage=paying[0], remedy=paying[1], paid_on=paid_on,
                         amount=COMPENSATION, method="bank transfer")
    if trigger == "void":
        reason, duplicate_of = {
            "valid": (VoidReason.CREATED_IN_ERROR, None),
            "duplicate": (VoidReason.DUPLICATE, OTHER_CASE),
            "duplicate_without_ref": (VoidReason.DUPLICATE, None),
            "merged_into_itself": (VoidReason.MERGED, model.reference),
        }[variant]
        return Void(by=MANAGER, reason=reason, duplicate_of=duplicate_of,
                    explanation="Lodged twice from the same phone call")
    if trigger == "assign":
        to = {"valid": f"staff-{next(_ids) + 2000}", "to_stage1_person": H1,
              "again": model.assignee or f"staff-{next(_ids) + 2000}"}[variant]
        return Assign(by=MANAGER, to=to, note="Workload")
    if trigger == "reassign":
        role, to = {"valid": (ReassignRole.HANDLER, f"staff-{next(_ids) + 1000}"),
                    "to_stage1_person": (ReassignRole.HANDLER, H1),
                    "to_stage1_extender": (ReassignRole.HANDLER, EXTENDER.upper()),
                    "manager": (ReassignRole.MANAGER, NEW_MANAGER)}[variant]
        return Reassign(by=MANAGER, role=role, to=to, reason="Workload rebalanced")
    if trigger == "withdraw":
        if variant == "bare":
            return Withdraw(by=MANAGER)
        return Withdraw(by=MANAGER, reason="The repair was done; the resident is content",
                        confirmed_via=Channel.PHONE)
    if trigger == "refer_ombudsman":
        return ReferOmbudsman(by=MANAGER, ombudsman_reference="HOS-123")
    if trigger == "reopen_on_order":
        order = (OmbudsmanOrderKind.TAKE_ON_COMPLAINT if variant == "take_on"
                 else OmbudsmanOrderKind.ESCALATE_TO_STAGE2)
        return ReopenOnOrder(by=MANAGER, order=order, details="Ombudsman order 2026/123")
    if trigger == "close":
        return Close(by=handler)
    if trigger == "amend_intake":
        adjustments = (Adjustment(description="Large print letters"),)
        if variant == "nothing":
            return AmendIntake(by=MANAGER, reason="Checked the record")
        if variant == "no_resident":
            return AmendIntake(by=MANAGER, reason="Sister acts", parties=(Party(
                role=PartyRole.REPRESENTATIVE, name="Ann Example"),),
                representative_authority="Signed form")
        return AmendIntake(by=MANAGER, reason="Agreed on the phone", adjustments=adjustments)
    if trigger == "ombudsman_contact":
        kind = OmbudsmanContactKind.ENQUIRY if variant == "enquiry" else \
            OmbudsmanContactKind.INSTRUCTION
        respond_by = today + timedelta(days=14) if variant == "instruction" else None
        return OmbudsmanContact(by=MANAGER, kind=kind, ombudsman_reference="HOS-123",
                                details="Dispute support asked for the complaint file",
                                respond_by=respond_by)
    if trigger == "ombudsman_determination":
        order_id = f"order-{next(_ids)}"
        if variant == "reused_id" and model.order_due:
            order_id = sorted(model.order_due)[0]
        orders = [OrderItem(order_id=order_id, due_by=today + timedelta(days=28),
                            description="Pay 200 pounds for the time and trouble")]
        if variant == "reused_id" and not model.order_due:
            orders.append(orders[0])  # nothing to reuse yet: the same id twice
        return OmbudsmanDetermination(by=MANAGER, finding=OmbudsmanFinding.MALADMINISTRATION,
                                      details="The repair took too long",
                                      ombudsman_reference="HOS-123", orders=tuple(orders))
    if trigger == "comply_order":
        target = model.open_orders[0] if variant == "valid" and model.open_orders \
            else "order-unknown"
        return ComplyOrder(by=MANAGER, order_id=target, evidence="Bank transfer 2026/77")
    raise AssertionError(trigger)


VARIANTS: dict[str, list[str]] = {
    "acknowledge": ["valid"],
    "decline": ["valid", "escalation_ground", "old_no_discretion", "old_with_discretion",
                "old_without_date", "old_aware_recently", "after_ack", "repeated"],
    "extend": ["valid", "over_cap", "over_cap_good"],
    "respond": ["valid", "financial", "no_actions", "missing_point", "extra_point",
                "duplicate_point", "no_remedy", "unpriced", "financial_undated",
                "remedy_far_future", "reused_id", "far_future", "stage1_handler"],
    "request_escalation": ["valid", "future", "before_response"],
    "refuse_escalation": ["valid", "old_no_discretion", "old_with_discretion",
                          "window_ground", "repeated"],
    "acknowledge_escalation": ["valid", "stage1_handler", "stage1_handler_case",
                               "stage1_acknowledger", "stage1_extender", "stage1_responder"],
    "add_issue": ["valid", "unrelated", "delaying"],
    "record_contact": ["valid", "early"],
    "complete_action": ["valid", "unknown"],
    "delay_action": ["valid", "unknown", "not_later", "far_future"],
    "pay_remedy": ["valid", "not_financial", "already_paid", "future"],
    "void": ["valid", "duplicate", "duplicate_without_ref", "merged_into_itself"],
    "reassign": ["valid", "to_stage1_person", "to_stage1_extender", "manager"],
    "assign": ["valid", "to_stage1_person", "again"],
    "withdraw": ["valid", "bare"],
    "refer_ombudsman": ["valid"],
    "reopen_on_order": ["take_on", "escalate"],
    "close": ["valid"],
    "ombudsman_contact": ["enquiry", "instruction", "instruction_without_date"],
    "ombudsman_determination": ["valid", "reused_id"],
    "comply_order": ["valid", "unknown"],
    "amend_intake": ["valid", "nothing", "no_resident"],
}
assert set(VARIANTS) == set(ACTION_BY_TRIGGER), \
    f"triggers the model and models.actions disagree on: " \
    f"{sorted(set(VARIANTS) ^ set(ACTION_BY_TRIGGER))}"

#: The order in which valid actions are offered: the lifecycle's main path first (an open
#: Ombudsman order is complied with before anything else, so that orders are followed
#: through within a walk).
MAIN_PATH = ["comply_order", "acknowledge", "respond", "pay_remedy", "request_escalation",
             "acknowledge_escalation", "complete_action", "close", "reopen_on_order", "extend",
             "delay_action"]

#: Valid actions that end a case or hand it over (offered less often by valid_action).
ENDING = {"withdraw", "void", "decline", "refer_ombudsman"}
#: Valid actions allowed almost everywhere that do not move the case: offered as rarely,
#: or they crowd out the main path (an Ombudsman contact has two valid forms).
ASIDE = {"ombudsman_contact", "ombudsman_determination", "amend_intake"}

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
            data_converter=CONVERTER, search_attributes=SEARCH_KEYS)
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
        #: The letters the last accepted update sent (their ids).
        self.letters_sent: tuple[str, ...] = ()

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
        self.letters_sent = ()
        try:
            result = self.h.run(self.handle.execute_update(trigger, payload,
                                                           result_type=ActionResult))
            self.letters_sent = result.letters
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
                issue=st.sampled_from(["none", "recent", "old"]), money=st.booleans())
    def lodge(self, policy: str, issue: str, money: bool) -> None:
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
        self.model = CodeModel(policy=load_compliant_policy(policy),
                               reference=intake.reference, received_on=today,
                               issue_on=issue_on, money=money)
        self._refresh()
        COUNTS["cases"] += 1

    @rule(data=st.data())
    def valid_action(self, data: st.DataObject) -> None:
        """Take an action the model says is allowed, as an update."""
        assert self.model is not None
        clock = self._refresh()
        candidates = []
        for trigger in sorted(ALLOWED[self.model.state]):
            # An order to reopen has no "valid" form: either may be the one that applies.
            for variant in ["valid"] if "valid" in VARIANTS[trigger] else VARIANTS[trigger]:
                action = build(trigger, variant, self.model, clock)
                if self.model.refusal(action, clock) is None:
                    candidates.append(action)
        # Contact records are always allowed: keep them for when nothing else is. The
        # candidates are listed main path first (Hypothesis favours early elements), so
        # that walks reach stage 2 instead of ending in a withdrawal or a referral at once.
        moving = sorted((a for a in candidates if a.trigger != "record_contact"),
                        key=lambda a: (MAIN_PATH.index(a.trigger) if a.trigger in MAIN_PATH
                                       else len(MAIN_PATH), a.trigger))
        # Ending the case (withdrawn, voided, declined, with the Ombudsman), or news from the
        # Ombudsman, is offered one time in four when there is a way on, so that walks
        # reach payments and stage 2.
        going_on = [a for a in moving if a.trigger not in ENDING | ASIDE]
        if going_on and data.draw(st.integers(0, 3), label="may end") != 0:
            moving = going_on
        if data.draw(st.booleans(), label="main path"):
            moving = moving[:1]  # half the time the next step of the main path
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
        lapses = len(self.model.lapses_seen)
        self.model.time_passed(clock)
        if len(self.model.lapses_seen) > lapses and self.model.state == "stage1_responded":
            COUNTS["windows lapsed, the case kept open"] += 1
            if self.model.open_orders:
                COUNTS["windows lapsed, an Ombudsman order kept the case open"] += 1
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
                # Letter ids are "<reference>:<kind>:<stage>:<seq>".
                sent = sorted(i.split(":")[-3] for i in self.letters_sent)
                wanted = sorted(self.model.letters(action))
                assert sent == wanted, f"{trigger} sent letters {sent}, the model {wanted}"
                COUNTS["updates accepted"] += 1
                COUNTS[f"accepted {trigger}"] += 1
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
            late = self.model.escalation_late
            self.model.apply(action, clock)
            if isinstance(action, RequestEscalation) and self.model.escalation_late \
                    and not late:
                self._told_of_late_request(action)
            if how == "signal":
                self.model.apply(build("record_contact", "valid", self.model, clock), clock)

    def _told_of_late_request(self, action: RequestEscalation) -> None:
        """A late stage 2 request is put to the manager to decide (5.11)."""
        assert self.handle is not None and self.clock is not None
        for _ in range(60):
            with self.h.sessions() as session:
                told = session.exec(select(NotificationRow).where(
                    NotificationRow.reference == self.clock.view.reference,
                    NotificationRow.kind == "late_escalation")).all()
            if told:
                break
            time.sleep(0.05)
        assert told, f"a late stage 2 request ({action.requested_on}) without its notice"
        COUNTS["late stage 2 requests"] += 1

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
            COUNTS[f"accepted {trigger}"] += 1
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
        assert case.escalation_late == self.model.escalation_late, "late stage 2 request"
        assert sorted(a.action.action_id for a in case.open_actions()) == \
            sorted(self.model.open_actions), "open actions"
        assert case.unpaid_remedies() == self.model.unpaid, "unpaid remedies"
        self._orders_tracked(view)
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

    def _orders_tracked(self, view: CaseView) -> None:
        """Each Ombudsman order or instruction is open until complied with, and a deadline.

        Its deadline ("order:<id>", due by its own date) is met by compliance (one breached
        first stays marked breached) and, if still pending, cancelled by withdrawing or voiding
        the case; otherwise it runs (pending or breached).
        """
        assert self.model is not None
        model = self.model
        assert view.case.ombudsman_contacts == model.ombudsman_contacts, "Ombudsman contacts"
        assert sorted(o.order_id for o in view.case.open_orders()) == \
            sorted(model.open_orders), "open Ombudsman orders"
        assert sorted(o.order_id for o in view.case.orders) == sorted(model.order_due), \
            "Ombudsman orders"
        deadlines = {d.key: d for d in view.deadlines if d.kind is DeadlineKind.OMBUDSMAN}
        assert sorted(deadlines) == sorted(f"order:{i}" for i in model.order_due), \
            f"Ombudsman deadlines {sorted(deadlines)}"
        for order_id, due in model.order_due.items():
            d = deadlines[f"order:{order_id}"]
            assert d.due == due, f"{d.key} due {d.due}, ordered by {due}"
            if order_id not in model.open_orders:
                assert d.met_at is not None and d.status in (
                    DeadlineStatus.MET, DeadlineStatus.BREACHED), \
                    f"{d.key} complied with, {d.status}"
                continue
            assert d.met_at is None, f"{d.key} met but not complied with"
            if view.state in ("withdrawn", "voided"):
                assert d.status in (DeadlineStatus.CANCELLED, DeadlineStatus.BREACHED), \
                    f"{d.key} {d.status} in a case {view.state}"
            else:
                assert d.status in (DeadlineStatus.PENDING, DeadlineStatus.BREACHED), \
                    f"{d.key} open but {d.status}"
        COUNTS["Ombudsman orders checked"] += len(model.order_due)

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
        accepted = {k.removeprefix("accepted "): v for k, v in sorted(COUNTS.items())
                    if k.startswith("accepted ")}
        totals = {k: v for k, v in sorted(COUNTS.items())
                  if not k.startswith(("tried ", "accepted "))}
        report = {"test": "tests/test_stateful.py", "runtime_seconds": round(elapsed, 1),
                  "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                  "totals": totals, "actions_by_trigger": tried,
                  "accepted_by_trigger": accepted,
                  "states_seen_after_steps": dict(sorted(STATES.items())),
                  "actions_tried": sum(tried.values())}
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(json.dumps(report, indent=2))
    assert COUNTS["updates accepted"] > 0 and COUNTS["updates refused"] > 0
    assert COUNTS["updates malformed (refused)"] > 0 and COUNTS["time advances"] > 0
