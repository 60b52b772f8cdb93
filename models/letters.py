"""What each letter to a resident must contain under the Complaint Handling Code 2024.

One pydantic content model per letter kind. A model holds the facts a letter states and
refuses to be built when a fact the Code requires is missing or inconsistent (an extension
over the cap with no good reason, a response that leaves a point of the complaint
definition unanswered, ...). ``required_elements()`` lists, per Code provision, the exact
strings a rendered letter must contain; ``complaints.letters.render_letter`` turns a model
into text and HTML.

The letter content models are split by kind: this module holds the acknowledgements, the
extension and the two stage responses, with the ``Letter`` union and ``LETTER_TYPES``;
:mod:`models.letter_base` the fixed wording, the formatting helpers and ``LetterBase``;
:mod:`models.letter_notices` the refusals, action updates and other notices. Every public
name of those two is re-exported here, so callers import every letter name from here.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar, Literal, Self

from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from models.case import (
    ComplaintDefinition,
    Decision,
    Label,
    OutstandingAction,
    PointFinding,
    Remedy,
    RemedyKind,
    Text,
)
from models.letter_base import (
    ACTION_STATUS_TEXT,
    ALL_OUR_RESPONSIBILITY,
    ALTERNATIVE_FORMATS,
    CLARIFICATION,
    CODE_EXTENSION_CAP,
    CONTACT_OMBUDSMAN_NOW,
    DECISION_TEXT,
    LATE_APOLOGY,
    NO_OUTSTANDING_ACTIONS,
    NO_REASONS_NEEDED,
    NO_REMEDY,
    OMBUDSMAN_REFERRAL_MONTHS,
    REASONABLE_ADJUSTMENTS,
    REMEDY_KIND_TEXT,
    REMEDY_PAYMENT,
    ActionStatus,
    LetterBase,
    LetterKind,
    Reference,
    RenderedLetter,
    _definition_elements,
    _late_elements,
    _responsibility_elements,
    describe_escalation_window,
    format_money,
    format_uk_date,
    late_by_text,
    ombudsman_email_note,
    plural,
)
from models.letter_notices import (
    ActionUpdate,
    EscalationRefusal,
    Exclusion,
    HandlerChanged,
    WithdrawalConfirmation,
)
from models.policy import EscalationWindow, EscalationWindowStart

__all__ = [
    "ACTION_STATUS_TEXT",
    "ALL_OUR_RESPONSIBILITY",
    "ALTERNATIVE_FORMATS",
    "CLARIFICATION",
    "CODE_EXTENSION_CAP",
    "CONTACT_OMBUDSMAN_NOW",
    "DECISION_TEXT",
    "LATE_APOLOGY",
    "LETTER_TYPES",
    "NO_OUTSTANDING_ACTIONS",
    "NO_REASONS_NEEDED",
    "NO_REMEDY",
    "OMBUDSMAN_REFERRAL_MONTHS",
    "REASONABLE_ADJUSTMENTS",
    "REMEDY_KIND_TEXT",
    "REMEDY_PAYMENT",
    "ActionStatus",
    "ActionUpdate",
    "EscalationRefusal",
    "Exclusion",
    "Extension",
    "FinalResponse",
    "HandlerChanged",
    "Letter",
    "LetterBase",
    "LetterKind",
    "Reference",
    "RenderedLetter",
    "Stage1Acknowledgement",
    "Stage1Response",
    "Stage2Acknowledgement",
    "WithdrawalConfirmation",
    "describe_escalation_window",
    "format_money",
    "format_uk_date",
    "late_by_text",
    "ombudsman_email_note",
    "plural",
]


class Stage1Acknowledgement(LetterBase):
    """Stage 1 acknowledgement (6.2): the complaint definition, what happens next.

    Attributes:
        definition: The complaint definition and outcomes sought (5.6) and what is and
            is not the landlord's responsibility (5.7).
        received_on: When the complaint was received.
        response_due: When the stage 1 response is due (6.3).
        handler: Who is handling the complaint.
        adjustments: Reasonable adjustments already agreed, confirmed back (5.10).
        late_by_working_days: How many working days after its due date (6.2) the
            acknowledgement is sent; above 0 the letter apologises for the delay.

    """

    kind: Literal[LetterKind.STAGE1_ACKNOWLEDGEMENT] = LetterKind.STAGE1_ACKNOWLEDGEMENT
    definition: ComplaintDefinition
    received_on: dt.date
    response_due: dt.date
    handler: Label
    adjustments: tuple[Text, ...] = ()
    late_by_working_days: NonNegativeInt = 0

    @model_validator(mode="after")
    def _dates_in_order(self) -> Self:
        if not self.received_on <= self.letter_date <= self.response_due:
            raise ValueError("expected received_on <= letter_date <= response_due")
        return self

    def subject(self) -> str:
        """Return the subject line."""
        return f"Your complaint {self.reference}: we have received it"

    def required_elements(self) -> dict[str, str]:
        """List the strings the rendered letter must contain, keyed by the Code provision."""
        elements = super().required_elements()
        elements["6.2 stage"] = "stage 1"
        elements["6.2 received on"] = format_uk_date(self.received_on)
        elements.update(_definition_elements("5.6", self.definition))
        elements["5.6 clarification"] = CLARIFICATION
        elements.update(_responsibility_elements(self.definition))
        elements["6.3 response due"] = format_uk_date(self.response_due)
        elements["handler"] = self.handler
        elements["5.10 reasonable adjustments"] = REASONABLE_ADJUSTMENTS
        for i, adjustment in enumerate(self.adjustments, 1):
            elements[f"5.10 agreed adjustment {i}"] = adjustment
        elements.update(_late_elements("6.2", self.late_by_working_days))
        return elements


class Stage2Acknowledgement(LetterBase):
    """Stage 2 acknowledgement (6.11): the stage 2 definition; no reasons needed (6.12).

    Attributes:
        definition: The stage 2 complaint definition (5.6, 5.7).
        escalation_requested_on: When the resident asked for stage 2.
        response_due: When the final response is due (6.14).
        reviewer: Who reviews the complaint at stage 2.
        stage1_handler: Who handled stage 1, if known; must differ from ``reviewer`` (6.13).
        adjustments: Reasonable adjustments already agreed, confirmed back (5.10).
        late_by_working_days: How many working days after its due date (6.11) the
            acknowledgement is sent; above 0 the letter apologises for the delay.

    """

    kind: Literal[LetterKind.STAGE2_ACKNOWLEDGEMENT] = LetterKind.STAGE2_ACKNOWLEDGEMENT
    definition: ComplaintDefinition
    escalation_requested_on: dt.date
    response_due: dt.date
    reviewer: Label
    stage1_handler: Label | None = None
    adjustments: tuple[Text, ...] = ()
    late_by_working_days: NonNegativeInt = 0

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.escalation_requested_on <= self.letter_date <= self.response_due:
            raise ValueError(
                "expected escalation_requested_on <= letter_date <= response_due")
        if self.stage1_handler is not None and (
                self.stage1_handler.casefold() == self.reviewer.casefold()):
            raise ValueError("6.13: the stage 2 reviewer must not be the stage 1 handler")
        return self

    def subject(self) -> str:
        """Return the subject line."""
        return f"Your complaint {self.reference}: your request for a stage 2 review"

    def required_elements(self) -> dict[str, str]:
        """List the strings the rendered letter must contain, keyed by the Code provision."""
        elements = super().required_elements()
        elements["6.11 stage"] = "stage 2"
        elements["6.11 requested on"] = format_uk_date(self.escalation_requested_on)
        elements.update(_definition_elements("5.6", self.definition))
        elements["5.6 clarification"] = CLARIFICATION
        elements.update(_responsibility_elements(self.definition))
        elements["6.12 no reasons needed"] = NO_REASONS_NEEDED
        elements["6.14 response due"] = format_uk_date(self.response_due)
        elements["6.13 reviewer"] = self.reviewer
        elements["5.10 reasonable adjustments"] = REASONABLE_ADJUSTMENTS
        for i, adjustment in enumerate(self.adjustments, 1):
            elements[f"5.10 agreed adjustment {i}"] = adjustment
        elements.update(_late_elements("6.11", self.late_by_working_days))
        return elements


class Extension(LetterBase):
    """Notice that a response will take longer (6.4/6.15), with Ombudsman details (6.5/6.16).

    Attributes:
        stage: The stage being extended.
        reason: Why more time is needed (clearly explained, 6.4/6.15).
        previous_due: The response date the resident was given before.
        new_due: The new response date.
        working_days: Length of this extension in working days.
        extended_so_far: Working days this stage was already extended by earlier notices.
        cap: The landlord's cap in working days; the Code's (10 or 20) when not given.
        good_reason: Why the extension goes beyond the cap; required when it does.
        update_interval: How often the resident will be updated, as agreed (5.9).

    """

    kind: Literal[LetterKind.EXTENSION] = LetterKind.EXTENSION
    stage: Literal[1, 2]
    reason: Text
    previous_due: dt.date
    new_due: dt.date
    working_days: PositiveInt
    extended_so_far: NonNegativeInt = 0
    cap: PositiveInt | None = None
    good_reason: Text | None = None
    update_interval: Text | None = None

    @property
    def effective_cap(self) -> int:
        """Return the cap that applies: the landlord's, else the Code's for the stage."""
        return self.cap if self.cap is not None else CODE_EXTENSION_CAP[self.stage]

    @property
    def over_cap(self) -> bool:
        """Tell whether the total extension at this stage goes beyond the cap."""
        return self.extended_so_far + self.working_days > self.effective_cap

    def ombudsman_provision(self) -> str:
        """Return 6.5 at stage 1, 6.16 at stage 2."""
        return "6.5" if self.stage == 1 else "6.16"

    @property
    def extension_provision(self) -> str:
        """Return 6.4 at stage 1, 6.15 at stage 2."""
        return "6.4" if self.stage == 1 else "6.15"

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        code_cap = CODE_EXTENSION_CAP[self.stage]
        if self.cap is not None and self.cap > code_cap:
            raise ValueError(f"{self.extension_provision}: cap {self.cap} is looser than "
                             f"the Code's {code_cap} working days")
        if self.new_due <= self.previous_due:
            raise ValueError("new_due must be after previous_due")
        if (self.new_due - self.previous_due).days < self.working_days:
            raise ValueError("working_days exceeds the calendar days between the due dates")
        if self.new_due < self.letter_date:
            raise ValueError("new_due must not be before letter_date")
        if self.over_cap and self.good_reason is None:
            raise ValueError(
                f"{self.extension_provision}: an extension beyond {self.effective_cap} "
                "working days needs a good reason, explained to the resident")
        return self

    def subject(self) -> str:
        """Return the subject line."""
        return (f"Your complaint {self.reference}: we need more time for our "
                f"stage {self.stage} response")

    def required_elements(self) -> dict[str, str]:
        """List the strings the rendered letter must contain, keyed by the Code provision."""
        p = self.extension_provision
        elements = super().required_elements()
        elements[f"{p} stage"] = f"stage {self.stage}"
        elements[f"{p} reason"] = self.reason
        elements[f"{p} previous due"] = format_uk_date(self.previous_due)
        elements[f"{p} new due"] = format_uk_date(self.new_due)
        elements[f"{p} length"] = plural(self.working_days, "working day")
        if self.good_reason is not None:
            elements[f"{p} good reason"] = self.good_reason
        if self.update_interval is not None:
            elements["5.9 update interval"] = self.update_interval
        return elements


class _ResponseBase(LetterBase):
    """The (a)-(f) elements shared by stage 1 (6.9) and final (6.19) responses.

    Attributes:
        definition: The complaint definition (b).
        decision: The decision on the complaint (c).
        findings: One finding with reasons per point of the definition (d, 6.7/6.18).
        remedies: What will be done to put things right and by when (e, 7.1-7.3).
        outstanding_actions: Actions still to do, tracked after the response (f, 6.6/6.17).
        remedy_payment: How a financial remedy is paid (7.3), printed after its amount and
            date; the default says bank transfer or rent account credit, arranged with
            the resident.

    """

    definition: ComplaintDefinition
    decision: Decision
    findings: tuple[PointFinding, ...] = Field(min_length=1)
    remedies: tuple[Remedy, ...] = ()
    outstanding_actions: tuple[OutstandingAction, ...] = ()
    remedy_payment: Text = REMEDY_PAYMENT

    stage_number: ClassVar[int] = 1
    provision: ClassVar[str] = "6.9"

    @model_validator(mode="after")
    def _answers_every_point(self) -> Self:
        points = list(self.definition.points)
        answered = [f.point for f in self.findings]
        missing = [p for p in points if p not in answered]
        if missing:
            raise ValueError(f"{self.provision}(d): no finding for point(s): {missing}")
        extra = [a for a in answered if a not in points]
        if extra:
            raise ValueError(f"{self.provision}(d): finding(s) for point(s) not in the "
                             f"complaint definition: {extra}")
        if len(answered) != len(set(answered)):
            raise ValueError(f"{self.provision}(d): more than one finding for a point")
        if self.decision is not Decision.NOT_UPHELD and not self.remedies:
            raise ValueError("7.1: an upheld or partly upheld complaint needs a remedy")
        for remedy in self.remedies:
            if remedy.kind is RemedyKind.FINANCIAL and remedy.amount is None:
                raise ValueError("7.3: a financial remedy must state the amount")
        return self

    def required_elements(self) -> dict[str, str]:
        """List the strings the rendered letter must contain, keyed by the Code provision."""
        p = self.provision
        elements = super().required_elements()
        elements[f"{p}(a) stage"] = self.stage_sentence()
        elements.update(_definition_elements(f"{p}(b)", self.definition))
        elements[f"{p}(c) decision"] = DECISION_TEXT[self.decision]
        for i, f in enumerate(self.findings, 1):
            elements[f"{p}(d) finding {i}"] = f.finding
            elements[f"{p}(d) reason {i}"] = f.reason
        for i, r in enumerate(self.remedies, 1):
            elements[f"{p}(e) remedy {i}"] = r.description
            if r.amount is not None:
                elements[f"{p}(e) remedy {i} amount"] = format_money(r.amount)
            if r.due_by is not None:
                elements[f"{p}(e) remedy {i} by"] = format_uk_date(r.due_by)
            if r.kind is RemedyKind.FINANCIAL:
                elements[f"{p}(e) remedy {i} payment"] = self.remedy_payment
        if not self.remedies:
            elements[f"{p}(e) remedy"] = NO_REMEDY
        for i, a in enumerate(self.outstanding_actions, 1):
            elements[f"{p}(f) action {i}"] = a.description
            elements[f"{p}(f) action {i} by"] = format_uk_date(a.due_by)
        if not self.outstanding_actions:
            elements[f"{p}(f) actions"] = NO_OUTSTANDING_ACTIONS
        return elements

    def stage_sentence(self) -> str:
        """Return the sentence naming the stage (a)."""
        return f"This is our stage {self.stage_number} response"


class Stage1Response(_ResponseBase):
    """The stage 1 response (6.9 a-g); (g) is how to escalate to stage 2.

    Attributes:
        stage: Always 1 (6.9a).
        escalation_window: How long the resident has to ask for stage 2 (the policy's).
        how_to_escalate: How to ask for stage 2; when ``None`` the letter says to contact
            the landlord in any way, quoting the reference.
        escalation_deadline: The last day to ask, when the window runs from this letter
            (the date the workflow's escalation window falls due); None when it runs
            from actions not yet completed, or is not known.

    """

    kind: Literal[LetterKind.STAGE1_RESPONSE] = LetterKind.STAGE1_RESPONSE
    stage: Literal[1] = 1
    escalation_window: EscalationWindow
    how_to_escalate: Text | None = None
    escalation_deadline: dt.date | None = None

    stage_number: ClassVar[int] = 1
    provision: ClassVar[str] = "6.9"

    @model_validator(mode="after")
    def _deadline_only_from_the_response(self) -> Self:
        if self.escalation_deadline is None:
            return self
        if self.escalation_deadline < self.letter_date:
            raise ValueError("escalation_deadline must not be before letter_date")
        if self.window_runs_from_actions():
            raise ValueError("6.9(g): a window that runs from the completion of actions "
                             "has no date yet")
        return self

    def window_runs_from_actions(self) -> bool:
        """Tell whether the window starts only when the outstanding actions are done."""
        return (self.escalation_window.runs_from is EscalationWindowStart.ACTIONS_COMPLETED
                and bool(self.outstanding_actions))

    def escalation_window_text(self) -> str:
        """Describe the escalation window in plain words (6.9g)."""
        return describe_escalation_window(self.escalation_window,
                                          has_actions=bool(self.outstanding_actions))

    def subject(self) -> str:
        """Return the subject line."""
        return f"Your complaint {self.reference}: our stage 1 response"

    def required_elements(self) -> dict[str, str]:
        """List the strings the rendered letter must contain, keyed by the Code provision."""
        elements = super().required_elements()
        elements["6.9(g) escalation window"] = self.escalation_window_text()
        if self.escalation_deadline is not None:
            elements["6.9(g) escalation deadline"] = format_uk_date(self.escalation_deadline)
        elements["6.9(g) no reasons needed"] = NO_REASONS_NEEDED
        if self.how_to_escalate is not None:
            elements["6.9(g) how to escalate"] = self.how_to_escalate
        return elements


class FinalResponse(_ResponseBase):
    """The stage 2 final response (6.19 a-g); (g) is how to refer to the Ombudsman.

    Attributes:
        stage: Always 2 (6.19a).

    """

    kind: Literal[LetterKind.FINAL_RESPONSE] = LetterKind.FINAL_RESPONSE
    stage: Literal[2] = 2

    stage_number: ClassVar[int] = 2
    provision: ClassVar[str] = "6.19"

    def ombudsman_provision(self) -> str:
        """Return 6.19(g): the final response gives the Ombudsman's details as element (g)."""
        return "6.19(g)"

    def stage_sentence(self) -> str:
        """Return the sentence naming the stage (a)."""
        return "This is our stage 2 final response"

    def subject(self) -> str:
        """Return the subject line."""
        return f"Your complaint {self.reference}: our stage 2 final response"

    def required_elements(self) -> dict[str, str]:
        """List the strings the rendered letter must contain, keyed by the Code provision."""
        elements = super().required_elements()
        elements["6.19(g) time limit"] = (
            f"within {OMBUDSMAN_REFERRAL_MONTHS} months of this final response")
        elements["6.19(g) contact now"] = CONTACT_OMBUDSMAN_NOW
        return elements



Letter = Annotated[
    Stage1Acknowledgement
    | Stage2Acknowledgement
    | Extension
    | Stage1Response
    | FinalResponse
    | Exclusion
    | EscalationRefusal
    | ActionUpdate
    | WithdrawalConfirmation
    | HandlerChanged,
    Field(discriminator="kind"),
]
"""Any letter; parse with ``pydantic.TypeAdapter(Letter)``."""

LETTER_TYPES: dict[LetterKind, type[LetterBase]] = {
    LetterKind.STAGE1_ACKNOWLEDGEMENT: Stage1Acknowledgement,
    LetterKind.STAGE2_ACKNOWLEDGEMENT: Stage2Acknowledgement,
    LetterKind.EXTENSION: Extension,
    LetterKind.STAGE1_RESPONSE: Stage1Response,
    LetterKind.FINAL_RESPONSE: FinalResponse,
    LetterKind.EXCLUSION: Exclusion,
    LetterKind.ESCALATION_REFUSAL: EscalationRefusal,
    LetterKind.WITHDRAWAL_CONFIRMATION: WithdrawalConfirmation,
    LetterKind.HANDLER_CHANGED: HandlerChanged,
    LetterKind.ACTION_UPDATE: ActionUpdate,
}
