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
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar

from pydantic import Field, PositiveInt

from models.case import (
    Adjustment,
    Channel,
    ComplaintDefinition,
    Decision,
    ExclusionGround,
    Frozen,
    Label,
    OutstandingAction,
    Party,
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
    handler_id: Label = Field(
        description="Staff id of who handles stage 1: the resident's contact.")
    definition: ComplaintDefinition


class Decline(Action):
    """Refuse to accept a complaint, with reasons (2.1-2.5)."""

    trigger: ClassVar[str] = "decline"
    grounds: tuple[ExclusionGround, ...] = Field(
        min_length=1,
        description="The exclusion grounds of the landlord's policy (Code 2.1-2.5) that apply.")
    explanation: Text = Field(
        description="Why the complaint is not accepted, as the resident will read it.")
    discretion_considered: Text | None = Field(
        default=None,
        description=("How discretion to accept it anyway was considered (needed with the 12-month "
                     "ground)."))
    #: For the twelve-month ground (2.3): when the issue occurred, if the intake did not
    #: say, and when the resident became aware of it, if later.
    issue_occurred_on: dt.date | None = None
    aware_on: dt.date | None = None
    #: What the resident can do instead (the other route), told in the letter (2.4).
    instead: Text | None = Field(
        default=None,
        description="What the resident can do instead (the other route), told in the letter.")


class Extend(Action):
    """Extend the current stage's response time (6.4, 6.15)."""

    trigger: ClassVar[str] = "extend"
    working_days: PositiveInt = Field(
        le=60,
        description=("How many more working days: no more than 10 at stage 1 or 20 at "
                     "stage 2 without good reason (6.4, 6.15)."))
    reason: Text = Field(description="Why more time is needed, as the resident will read it.")
    good_reason: Text | None = Field(
        default=None,
        description="The good reason for going beyond the Code's extension limit, if so.")
    update_interval: Text | None = Field(
        default=None,
        description="How often the resident will hear from you meanwhile.")


class Respond(Action):
    """Issue the stage 1 response or the stage 2 final response (6.6-6.9, 6.17-6.19)."""

    trigger: ClassVar[str] = "respond"
    decision: Decision = Field(description="The decision on the complaint as a whole.")
    findings: tuple[PointFinding, ...] = Field(
        min_length=1,
        description="The finding on each point of the complaint's definition, with the reason.")
    remedies: tuple[Remedy, ...] = Field(
        default=(),
        description="What is put right: apologies, explanations, actions, payments.")
    outstanding_actions: tuple[OutstandingAction, ...] = Field(
        default=(),
        description="Actions still to do after the response, each with a date.")


class RequestEscalation(Action):
    """The resident asks for stage 2; no reason is required (6.12)."""

    trigger: ClassVar[str] = "request_escalation"
    requested_on: dt.date = Field(description="The day the resident asked for stage 2.")
    reason: Text | None = Field(
        default=None,
        description="Why they are unhappy, if they said (no reason is required, Code 6.12).")
    channel: Channel = Field(default=Channel.OTHER, description="How they asked.")


class RefuseEscalation(Action):
    """Refuse to escalate, only on a valid section 2 ground (5.11)."""

    trigger: ClassVar[str] = "refuse_escalation"
    grounds: tuple[ExclusionGround, ...] = Field(
        min_length=1,
        description="The exclusion grounds that apply (only these may refuse stage 2, Code 5.11).")
    explanation: Text = Field(description="Why stage 2 is refused, as the resident will read it.")
    #: Required with the twelve-month ground: how discretion to accept was considered (2.3).
    discretion_considered: Text | None = None


class AcknowledgeEscalation(Action):
    """Acknowledge, define and log a stage 2 request (6.11, 6.13)."""

    trigger: ClassVar[str] = "acknowledge_escalation"
    handler_id: Label = Field(
        description=("Staff id of the stage 2 reviewer: someone not involved at stage 1 (Code "
                     "6.13)."))
    definition: ComplaintDefinition


class AddIssue(Action):
    """A new issue raised while the complaint is open (6.8)."""

    trigger: ClassVar[str] = "add_issue"
    description: Text = Field(description="The new issue, in the resident's terms.")
    related: bool = Field(
        description="Whether it is related to the complaint (then it is added to this stage).")
    would_unreasonably_delay: bool = Field(
        default=False,
        description=("Whether adding it would unreasonably delay the response (then it is logged"
                     " as a new complaint)."))


class ContactDirection(StrEnum):
    """Which way a piece of correspondence went."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


class RecordContact(Action):
    """Record correspondence or a call with the resident or another party (5.12)."""

    trigger: ClassVar[str] = "record_contact"
    direction: ContactDirection = Field(description="Which way the contact went.")
    channel: Channel = Field(description="How it came or went.")
    summary: Text = Field(description="What was said or sent.")
    with_party: Label | None = Field(default=None, description="Who with, if not the resident.")
    early_contact: bool = Field(
        default=False,
        description="Tick when this is the early contact the landlord's policy promises.")


class CompleteAction(Action):
    """Mark an outstanding action or remedy complete (6.6, 7.3)."""

    trigger: ClassVar[str] = "complete_action"
    action_id: Label = Field(description="The id of the outstanding action or remedy done.")
    note: Text | None = Field(default=None, description="What was done.")


class Withdraw(Action):
    """The resident withdraws the complaint."""

    trigger: ClassVar[str] = "withdraw"
    note: Text | None = Field(default=None, description="A note for the file.")
    #: Why the resident withdrew, and how they confirmed it (required on new cases).
    reason: Text | None = Field(default=None, description="Why the resident withdrew.")
    confirmed_via: Channel | None = Field(
        default=None,
        description="How the resident confirmed the withdrawal.")


class ReferOmbudsman(Action):
    """The Housing Ombudsman has taken the complaint (the landlord stops resolving directly)."""

    trigger: ClassVar[str] = "refer_ombudsman"
    ombudsman_reference: Label | None = Field(
        default=None,
        description="The Ombudsman's case reference.")


class OmbudsmanOrderKind(StrEnum):
    """What the Ombudsman told the landlord to do."""

    TAKE_ON_COMPLAINT = "take_on_complaint"  # 2.4: the exclusion was not fairly applied
    ESCALATE_TO_STAGE2 = "escalate_to_stage2"  # 5.11: escalation refused without valid reason


class ReopenOnOrder(Action):
    """Reopen a case on the Ombudsman's order."""

    trigger: ClassVar[str] = "reopen_on_order"
    order: OmbudsmanOrderKind = Field(description="What the Ombudsman ordered.")
    details: Text = Field(description="The order as given.")


class Close(Action):
    """Close the case (every remedy and outstanding action followed through, 7.3)."""

    trigger: ClassVar[str] = "close"
    note: Text | None = Field(default=None, description="A note for the file.")


class DelayAction(Action):
    """Report an outstanding action delayed, with a revised date and why (6.6, 6.17, 7.3)."""

    trigger: ClassVar[str] = "delay_action"
    action_id: Label = Field(description="The id of the outstanding action that is late.")
    revised_due: dt.date = Field(description="The new date it will be done by.")
    reason: Text = Field(description="Why it is delayed, as the resident will read it.")


class PayRemedy(Action):
    """Record a financial remedy paid: which one, how much and when (7.1-7.3)."""

    trigger: ClassVar[str] = "pay_remedy"
    #: The response's stage and the remedy's number in it (1 = the first listed).
    stage: int = Field(ge=1, le=2)
    remedy: PositiveInt = Field(le=100)
    paid_on: dt.date = Field(description="The day it was paid.")
    amount: Decimal = Field(
        ge=0, max_digits=12, decimal_places=2,
        description="The amount paid, in pounds (for example 150.00).")
    method: Label | None = Field(
        default=None,
        description="How it was paid (bank transfer, rent account credit, cheque).")


class VoidReason(StrEnum):
    """Why a case is voided: it is not a complaint to count."""

    DUPLICATE = "duplicate"  # the same complaint lodged twice
    MERGED = "merged"  # the same matter as another case, handled there
    CREATED_IN_ERROR = "created_in_error"  # not a complaint (a test, a wrong entry)


class Void(Action):
    """Void a duplicate or a case created in error: not an exclusion, no letter, not counted."""

    trigger: ClassVar[str] = "void"
    reason: VoidReason = Field(description="Why the case is not a complaint to count.")
    explanation: Text = Field(
        description="What happened, for the file (no letter goes to the resident).")
    #: The case that carries on (required for a duplicate or a merge).
    duplicate_of: Label | None = Field(
        default=None,
        description="The case that carries on (needed for a duplicate or a merge).")


class ReassignRole(StrEnum):
    """Whose responsibility moves."""

    HANDLER = "handler"  # the current stage's handler: the resident's contact
    MANAGER = "manager"  # the manager told of reminders and breaches


class Reassign(Action):
    """Move the current stage's handler, or the case's manager, to another member of staff."""

    trigger: ClassVar[str] = "reassign"
    role: ReassignRole = Field(
        description=("Whose responsibility moves: the handler (the resident's contact) or the "
                     "manager."))
    to: Label = Field(description="Staff id of who takes it on.")
    reason: Text = Field(description="Why, for the file.")


class Assign(Action):
    """Give a complaint (or stage 2 request) not yet acknowledged to a handler.

    Claiming is assigning to oneself. The person assigned acknowledges it, naming the
    handler; until then the case shows in their list (a user task's assignee).
    """

    trigger: ClassVar[str] = "assign"
    to: Label = Field(description="Staff id of who takes the case on (yourself, to claim it).")
    note: Text | None = Field(default=None, description="Why, for the file (optional).")


class OmbudsmanContactKind(StrEnum):
    """Contact from the Ombudsman while the landlord's own process carries on."""

    ENQUIRY = "enquiry"  # dispute support asks about the complaint
    INSTRUCTION = "instruction"  # told to do something (e.g. respond) by a date


class OmbudsmanContact(Action):
    """The Ombudsman contacted the landlord about a live complaint; its clocks carry on.

    An instruction is tracked like an order, with its own due date, until complied with.
    A formal investigation is ``refer_ombudsman`` instead.
    """

    trigger: ClassVar[str] = "ombudsman_contact"
    kind: OmbudsmanContactKind = Field(description="An enquiry, or an instruction with a date.")
    details: Text = Field(description="What the Ombudsman said or asked.")
    ombudsman_reference: Label | None = Field(
        default=None,
        description="The Ombudsman's case reference.")
    respond_by: dt.date | None = Field(
        default=None,
        description="The date the Ombudsman gave, for an instruction.")


class OmbudsmanFinding(StrEnum):
    """The Ombudsman's determination on a complaint (or on its handling)."""

    NO_MALADMINISTRATION = "no_maladministration"
    SERVICE_FAILURE = "service_failure"
    MALADMINISTRATION = "maladministration"
    SEVERE_MALADMINISTRATION = "severe_maladministration"
    COMPLAINT_HANDLING_FAILURE = "complaint_handling_failure"
    RESOLVED = "reasonable_redress"


class OrderItem(Frozen):
    """One thing the Ombudsman ordered, by when."""

    order_id: Label
    description: Text
    due_by: dt.date


class OmbudsmanDetermination(Action):
    """Record the Ombudsman's determination and its orders, each tracked to completion."""

    trigger: ClassVar[str] = "ombudsman_determination"
    finding: OmbudsmanFinding = Field(description="The Ombudsman's finding.")
    details: Text = Field(description="The determination as given.")
    ombudsman_reference: Label | None = Field(
        default=None,
        description="The Ombudsman's case reference.")
    orders: tuple[OrderItem, ...] = Field(
        default=(), max_length=20,
        description="Each order made, with its date: tracked to completion.")


class ComplyOrder(Action):
    """Record compliance with an Ombudsman order or instruction, with the evidence."""

    trigger: ClassVar[str] = "comply_order"
    order_id: Label = Field(description="The id of the order or instruction complied with.")
    evidence: Text = Field(description="The evidence of compliance.")


class AmendIntake(Action):
    """Correct or add to who the complaint is from and what they need (3.6, 5.10, 5.12).

    The parties and adjustments given replace the recorded ones (letters go to the new
    parties from then on); fields left out stay as they are. Only the database keeps them:
    the case's own state records that they changed, and when adjustments are next reviewed.
    """

    trigger: ClassVar[str] = "amend_intake"
    reason: Text = Field(description="Why the intake is corrected, for the file.")
    parties: tuple[Party, ...] | None = Field(default=None, min_length=1, max_length=20)
    #: How the resident authorised a representative (a signed form, a call on a date).
    representative_authority: Text | None = None
    adjustments: tuple[Adjustment, ...] | None = Field(default=None, max_length=20)
    #: When the adjustments are to be reviewed with the resident (a reminder comes first).
    adjustments_review_on: dt.date | None = None


ALL_ACTIONS: tuple[type[Action], ...] = (
    Acknowledge, Decline, Extend, Respond, RequestEscalation, RefuseEscalation,
    AcknowledgeEscalation, AddIssue, RecordContact, CompleteAction, Withdraw,
    ReferOmbudsman, ReopenOnOrder, Close, DelayAction, PayRemedy, Void, Reassign,
    OmbudsmanContact, OmbudsmanDetermination, ComplyOrder, AmendIntake, Assign,
)
ACTION_BY_TRIGGER: dict[str, type[Action]] = {a.trigger: a for a in ALL_ACTIONS}
