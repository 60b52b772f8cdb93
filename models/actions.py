"""Staff actions on a case: one pydantic model per state-machine trigger.

Each model is the single argument of a Temporal update and signal of the same name
(``ComplaintWorkflow.acknowledge`` takes an :class:`Acknowledge`). ``by`` names the member
of staff (an id, never a resident) and is recorded in the audit trail.

The field types are what replay can always decode; the documented limits on every text and
list, and the refusal of invisible characters, are checked by ``models.limits.problems``
where an action enters (the CLI, the workflow's update validators and signal handler).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import ClassVar

from pydantic import Field, PositiveInt

from models.case import (
    Channel,
    ComplaintDefinition,
    Decision,
    ExclusionGround,
    Frozen,
    Label,
    OutstandingAction,
    PointFinding,
    Remedy,
    Text,
)


class Action(Frozen):
    """Base of every staff action.

    Attributes:
        by: Staff id of whoever takes the action.
    """

    trigger: ClassVar[str]
    by: Label


class Acknowledge(Action):
    """Acknowledge, define and log a stage 1 complaint (5.6, 5.7, 6.2)."""

    trigger: ClassVar[str] = "acknowledge"
    handler_id: Label
    definition: ComplaintDefinition


class Decline(Action):
    """Refuse to accept a complaint, with reasons (2.1-2.5)."""

    trigger: ClassVar[str] = "decline"
    grounds: tuple[ExclusionGround, ...] = Field(min_length=1)
    explanation: Text
    discretion_considered: Text | None = None


class Extend(Action):
    """Extend the current stage's response time (6.4, 6.15)."""

    trigger: ClassVar[str] = "extend"
    working_days: PositiveInt = Field(le=60)
    reason: Text
    good_reason: Text | None = None
    update_interval: Text | None = None


class Respond(Action):
    """Issue the stage 1 response or the stage 2 final response (6.6-6.9, 6.17-6.19)."""

    trigger: ClassVar[str] = "respond"
    decision: Decision
    findings: tuple[PointFinding, ...] = Field(min_length=1)
    remedies: tuple[Remedy, ...] = ()
    outstanding_actions: tuple[OutstandingAction, ...] = ()


class RequestEscalation(Action):
    """The resident asks for stage 2; no reason is required (6.12)."""

    trigger: ClassVar[str] = "request_escalation"
    requested_on: dt.date
    reason: Text | None = None
    channel: Channel = Channel.OTHER


class RefuseEscalation(Action):
    """Refuse to escalate, only on a valid section 2 ground (5.11)."""

    trigger: ClassVar[str] = "refuse_escalation"
    grounds: tuple[ExclusionGround, ...] = Field(min_length=1)
    explanation: Text
    #: Required with the twelve-month ground: how discretion to accept was considered (2.3).
    discretion_considered: Text | None = None


class AcknowledgeEscalation(Action):
    """Acknowledge, define and log a stage 2 request (6.11, 6.13)."""

    trigger: ClassVar[str] = "acknowledge_escalation"
    handler_id: Label
    definition: ComplaintDefinition


class AddIssue(Action):
    """A new issue raised while the complaint is open (6.8)."""

    trigger: ClassVar[str] = "add_issue"
    description: Text
    related: bool
    would_unreasonably_delay: bool = False


class ContactDirection(StrEnum):
    """Which way a piece of correspondence went."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


class RecordContact(Action):
    """Record correspondence or a call with the resident or another party (5.12)."""

    trigger: ClassVar[str] = "record_contact"
    direction: ContactDirection
    channel: Channel
    summary: Text
    with_party: Label | None = None
    early_contact: bool = False


class CompleteAction(Action):
    """Mark an outstanding action or remedy complete (6.6, 7.3)."""

    trigger: ClassVar[str] = "complete_action"
    action_id: Label
    note: Text | None = None


class Withdraw(Action):
    """The resident withdraws the complaint."""

    trigger: ClassVar[str] = "withdraw"
    note: Text | None = None


class ReferOmbudsman(Action):
    """The Housing Ombudsman has taken the complaint (the landlord stops resolving directly)."""

    trigger: ClassVar[str] = "refer_ombudsman"
    ombudsman_reference: Label | None = None


class OmbudsmanOrderKind(StrEnum):
    """What the Ombudsman told the landlord to do."""

    TAKE_ON_COMPLAINT = "take_on_complaint"  # 2.4: the exclusion was not fairly applied
    ESCALATE_TO_STAGE2 = "escalate_to_stage2"  # 5.11: escalation refused without valid reason


class ReopenOnOrder(Action):
    """Reopen a case on the Ombudsman's order."""

    trigger: ClassVar[str] = "reopen_on_order"
    order: OmbudsmanOrderKind
    details: Text


class Close(Action):
    """Close the case (every remedy and outstanding action followed through, 7.3)."""

    trigger: ClassVar[str] = "close"
    note: Text | None = None


ALL_ACTIONS: tuple[type[Action], ...] = (
    Acknowledge, Decline, Extend, Respond, RequestEscalation, RefuseEscalation,
    AcknowledgeEscalation, AddIssue, RecordContact, CompleteAction, Withdraw,
    ReferOmbudsman, ReopenOnOrder, Close,
)
ACTION_BY_TRIGGER: dict[str, type[Action]] = {a.trigger: a for a in ALL_ACTIONS}
