"""The vocabulary of a complaint case, shared by the state machine, letters and workflow.

Everything here is a pydantic message: it crosses Temporal boundaries (update payloads,
query results, activity inputs), so it holds no behaviour beyond validation.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# The bounds of these two types are deliberately loose and must never be tightened: a
# running case decodes its input and every past action again on replay, so a type stricter
# than before would make an accepted case undecodable. The documented, stricter limits and
# the refusal of invisible characters are in ``models.limits``, applied where input enters.

#: Free text a person wrote: trimmed, non-empty, bounded, no control characters but newlines/tabs.
Text = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000,
                      pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"),
]
#: A short label (names, ids, categories).
Label = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200,
                      pattern=r"^[^\x00-\x1f\x7f]*$"),
]


class Frozen(BaseModel):
    """Base for immutable messages that reject unknown fields.

    A validation error never quotes the value it refused (``hide_input_in_errors``): the
    messages hold residents' personal data, and errors end up in logs and refusals.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


class Channel(StrEnum):
    """How a complaint reached the landlord (Code 3.1, 3.2: any channel is accepted)."""

    PHONE = "phone"
    EMAIL = "email"
    LETTER = "letter"
    WEB_FORM = "web_form"
    IN_PERSON = "in_person"
    SOCIAL_MEDIA = "social_media"
    OTHER = "other"


class PartyRole(StrEnum):
    """Who a party is to the complaint (3.6 representatives; group complaints)."""

    RESIDENT = "resident"
    REPRESENTATIVE = "representative"
    GROUP_MEMBER = "group_member"


class PreferredChannel(StrEnum):
    """How a person asked to receive letters (a reasonable adjustment, 5.10)."""

    POST = "post"  # on paper only: never emailed
    EMAIL = "email"  # by email, when an address is known (else on paper)


class Party(Frozen):
    """A person the landlord corresponds with about the complaint.

    ``preferred_channel`` (None: no preference, letters go every way available) is kept in
    the case file by position (:attr:`CaseFile.letter_channels`), not in the database's
    parties table; it was added later, so older intakes and histories decode as None.
    """

    role: PartyRole = PartyRole.RESIDENT
    name: Label
    address: tuple[Label, ...] = ()
    email: Label | None = None
    phone: Label | None = None
    preferred_channel: PreferredChannel | None = None


def letter_channels(parties: tuple[Party, ...]) -> tuple[PreferredChannel | None, ...]:
    """The parties' preferred channels by position; empty when nobody stated one."""
    channels = tuple(p.preferred_channel for p in parties)
    return channels if any(channels) else ()


class Decision(StrEnum):
    """The decision on a complaint at a stage (6.9c, 6.19c)."""

    UPHELD = "upheld"
    PARTLY_UPHELD = "partly_upheld"
    NOT_UPHELD = "not_upheld"


class ComplaintDefinition(Frozen):
    """The landlord's understanding of the complaint and the outcomes sought (5.6, 5.7)."""

    summary: Text
    points: tuple[Text, ...] = Field(min_length=1)
    outcomes_sought: tuple[Text, ...] = Field(min_length=1)
    responsible_for: tuple[Text, ...] = ()
    not_responsible_for: tuple[Text, ...] = ()


class PointFinding(Frozen):
    """The finding on one point of the definition, with the reason (6.7, 6.9d)."""

    point: Text
    finding: Text
    reason: Text


class RemedyKind(StrEnum):
    """Remedies of Code 7.1."""

    APOLOGY = "apology"
    ACKNOWLEDGEMENT = "acknowledgement"
    EXPLANATION = "explanation"
    ACTION = "action"
    DECISION_CHANGED = "decision_changed"
    RECORD_AMENDED = "record_amended"
    FINANCIAL = "financial"
    POLICY_CHANGE = "policy_change"


class Remedy(Frozen):
    """A remedy offered: what will happen and by when (7.1-7.3)."""

    kind: RemedyKind
    description: Text
    amount: Decimal | None = Field(default=None, ge=0, max_digits=12, decimal_places=2)
    due_by: dt.date | None = None


class OutstandingAction(Frozen):
    """An action still to do after a response (6.6, 6.17), tracked to completion."""

    action_id: Label
    description: Text
    due_by: dt.date
    owner: Label | None = None


class ExclusionGround(StrEnum):
    """Reasons a complaint may be refused or an escalation refused (Code section 2, 5.11).

    The first three are the Code's own examples (2.2); the rest are grounds landlords
    commonly add (the Connexus page), each still decided on its merits (2.5).
    """

    OLDER_THAN_12_MONTHS = "older_than_12_months"
    LEGAL_PROCEEDINGS = "legal_proceedings"
    PREVIOUSLY_CONSIDERED = "previously_considered"
    OTHER_POLICY = "other_policy"
    CRIMINAL_MATTER = "criminal_matter"
    NOT_LANDLORD_RESPONSIBILITY = "not_landlord_responsibility"
    OUTSIDE_ESCALATION_WINDOW = "outside_escalation_window"


EXCLUSION_GROUND_TEXT: dict[ExclusionGround, str] = {
    ExclusionGround.OLDER_THAN_12_MONTHS:
        "the issue occurred, or you became aware of it, more than twelve months ago",
    ExclusionGround.LEGAL_PROCEEDINGS:
        "legal proceedings have started (a claim has been filed at court)",
    ExclusionGround.PREVIOUSLY_CONSIDERED:
        "the matter has already been considered under our complaints policy",
    ExclusionGround.OTHER_POLICY:
        "the matter is best dealt with under a different policy",
    ExclusionGround.CRIMINAL_MATTER:
        "it concerns an allegation of criminal wrongdoing for the police or courts",
    ExclusionGround.NOT_LANDLORD_RESPONSIBILITY:
        "the matter is not within our responsibility",
    ExclusionGround.OUTSIDE_ESCALATION_WINDOW:
        "the request came after the period for escalation set out in our complaints policy",
}

#: Grounds that may justify refusing a complaint outright (Code 2.2 and landlords' own).
DECLINE_GROUNDS = frozenset(ExclusionGround) - {ExclusionGround.OUTSIDE_ESCALATION_WINDOW}


class Adjustment(Frozen):
    """A reasonable adjustment agreed or a vulnerability disclosed (5.10)."""

    description: Text
    disability_disclosed: bool = False


class ExtensionRecord(Frozen):
    """An extension granted at a stage (6.4, 6.15)."""

    stage: int
    working_days: int
    reason: str
    good_reason: str | None
    by: str
    at: dt.datetime


class ResponseRecord(Frozen):
    """A stage response as issued (6.9, 6.19)."""

    stage: int
    decision: Decision
    findings: tuple[PointFinding, ...]
    remedies: tuple[Remedy, ...]
    by: str
    at: dt.datetime


class ActionDelay(Frozen):
    """An outstanding action reported delayed: the revised date and why."""

    revised_due: dt.date
    reason: str
    by: str
    at: dt.datetime


class PaymentRecord(Frozen):
    """A financial remedy paid."""

    stage: int
    remedy: int
    amount: Decimal
    paid_on: dt.date
    method: str | None = None
    by: str
    at: dt.datetime


class WithdrawalRecord(Frozen):
    """The resident's withdrawal: why, and how they confirmed it."""

    reason: str | None
    confirmed_via: str | None
    by: str
    at: dt.datetime


class OrderRecord(Frozen):
    """An Ombudsman order or instruction, tracked until complied with."""

    order_id: str
    source: str  # "instruction" or the determination's finding
    description: str
    due_by: dt.date
    at: dt.datetime
    complied_at: dt.datetime | None = None


class VoidRecord(Frozen):
    """Why a case was voided, and the case that carries on."""

    reason: str
    explanation: str
    duplicate_of: str | None
    by: str
    at: dt.datetime


class ActionRecord(Frozen):
    """An outstanding action and, once done, when it was completed."""

    action: OutstandingAction
    stage: int
    completed_at: dt.datetime | None = None
    delays: tuple[ActionDelay, ...] = ()

    @property
    def due_by(self) -> dt.date:
        """The date the action is now due: the last revised date, or the one promised."""
        return self.delays[-1].revised_due if self.delays else self.action.due_by


class IssueRecord(Frozen):
    """An issue raised during the complaint and where it went (6.8)."""

    description: str
    folded_into_stage1: bool
    at: dt.datetime


class DecisionRecord(Frozen):
    """A refusal (of the complaint or of escalation) and its grounds (2.4, 5.11)."""

    grounds: tuple[ExclusionGround, ...]
    explanation: str
    discretion_considered: str | None = None
    by: str
    at: dt.datetime


class AuditEvent(Frozen):
    """One entry of the append-only audit trail."""

    seq: int
    at: dt.datetime
    action: str
    by: str
    from_state: str
    to_state: str
    accepted: bool = True
    detail: str = ""


class CaseFile(BaseModel):
    """Everything the state machine knows about one complaint.

    The workflow holds one of these, the state machine mutates it, the query returns it.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    reference: str
    policy_name: str
    state: str = "received"
    received_on: dt.date
    issue_occurred_on: dt.date | None = None
    #: The issue is older than the policy's exclusion window before receipt (Code 2.3): the
    #: case runs normally and a manager decides whether to accept it (never auto-declined).
    out_of_time: bool = False
    #: The receipt date as lodged, when it was after the day the case started and was
    #: corrected to that day (an impossible future date from an integration).
    received_on_as_lodged: dt.date | None = None
    channel: Channel = Channel.OTHER
    category: str = "general"
    stage1_handler: str | None = None
    stage2_handler: str | None = None
    stage1_definition: ComplaintDefinition | None = None
    stage2_definition: ComplaintDefinition | None = None
    extensions: list[ExtensionRecord] = Field(default_factory=list)
    responses: list[ResponseRecord] = Field(default_factory=list)
    actions: list[ActionRecord] = Field(default_factory=list)
    issues: list[IssueRecord] = Field(default_factory=list)
    declined: DecisionRecord | None = None
    escalation_refused: DecisionRecord | None = None
    escalation_requested_on: dt.date | None = None
    referred_to_ombudsman_at: dt.datetime | None = None
    ombudsman_orders: list[str] = Field(default_factory=list)
    contacts: int = 0
    early_contact_at: dt.datetime | None = None
    closed_at: dt.datetime | None = None
    #: Who acknowledged stage 1 (with the handler, extenders and responders, the people
    #: who may not consider stage 2, 6.13).
    stage1_acknowledged_by: str | None = None
    #: Stage 1 handlers replaced by a reassignment (still stage 1 people, 6.13).
    former_stage1_handlers: list[str] = Field(default_factory=list)
    #: The manager after a reassignment (None: the intake's).
    manager_id: str | None = None
    #: Who a complaint or stage 2 request not yet acknowledged is assigned to (claimed
    #: by, or given to by a manager); cleared when it is acknowledged.
    assignee: str | None = None
    reassignments: int = 0
    #: A stage 2 request made after the escalation window had ended (5.11, 6.10).
    escalation_late: bool = False
    payments: list[PaymentRecord] = Field(default_factory=list)
    #: Ombudsman enquiries and instructions while the process runs, and determinations.
    ombudsman_contacts: int = 0
    #: Corrections of the intake (who, what they need), recorded in the database.
    amendments: int = 0
    representative_authority_recorded: bool = False
    #: Each party's preferred channel for letters, by position in the parties recorded
    #: (intake, then the last amendment of the parties); empty: no preference stated.
    letter_channels: tuple[PreferredChannel | None, ...] = ()
    determinations: list[str] = Field(default_factory=list)
    orders: list[OrderRecord] = Field(default_factory=list)
    withdrawal: WithdrawalRecord | None = None
    voided: VoidRecord | None = None
    audit: list[AuditEvent] = Field(default_factory=list)

    @property
    def stage(self) -> int:
        """The Code stage the case is at: 0 before acceptance, 1 or 2 after."""
        if self.state in ("received", "declined"):
            return 0
        if self.stage2_definition is not None or self.state.startswith("stage2"):
            return 2
        return 1

    def extension_days(self, stage: int) -> int:
        """Working days of extension granted so far at ``stage``."""
        return sum(e.working_days for e in self.extensions if e.stage == stage)

    def open_actions(self) -> list[ActionRecord]:
        """Outstanding actions not yet completed."""
        return [a for a in self.actions if a.completed_at is None]

    def open_orders(self) -> list[OrderRecord]:
        """Ombudsman orders and instructions not yet complied with."""
        return [o for o in self.orders if o.complied_at is None]

    def stage1_people(self) -> set[str]:
        """Everyone who acknowledged, handled, extended or answered stage 1 (6.13)."""
        people = {self.stage1_handler, self.stage1_acknowledged_by,
                  *self.former_stage1_handlers}
        people |= {e.by for e in self.extensions if e.stage == 1}
        people |= {r.by for r in self.responses if r.stage == 1}
        return {p for p in people if p}

    def unpaid_remedies(self) -> list[tuple[int, int]]:
        """Financial remedies promised and not yet paid, as (stage, number in the response)."""
        paid = {(p.stage, p.remedy) for p in self.payments}
        return [(r.stage, n) for r in self.responses for n, remedy in enumerate(r.remedies, 1)
                if remedy.kind == "financial" and (r.stage, n) not in paid]
