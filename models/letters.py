"""What each letter to a resident must contain under the Complaint Handling Code 2024.

One pydantic content model per letter kind. A model holds the facts a letter states and
refuses to be built when a fact the Code requires is missing or inconsistent (an extension
over the cap with no good reason, a response that leaves a point of the complaint
definition unanswered, ...). ``required_elements()`` lists, per Code provision, the exact
strings a rendered letter must contain; ``complaints.letters.render_letter`` turns a model
into text and HTML.

The pure formatting helpers (``format_uk_date``, ``format_money``, ``DECISION_TEXT``...)
live here so that the templates' filters and ``required_elements()`` agree on wording.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Annotated, ClassVar, Literal, Self

from pydantic import Field, NonNegativeInt, PositiveInt, StringConstraints, model_validator

from models.case import (
    EXCLUSION_GROUND_TEXT,
    ComplaintDefinition,
    Decision,
    ExclusionGround,
    Frozen,
    Label,
    OutstandingAction,
    Party,
    PointFinding,
    Remedy,
    RemedyKind,
    Text,
)
from models.policy import (
    EscalationWindow,
    EscalationWindowStart,
    EscalationWindowUnit,
    OmbudsmanDetails,
)

#: A complaint reference such as ``CMP-2026-000123``: letters, digits, ``-``, ``_``, ``/``.
Reference = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=50,
                      pattern=r"^[A-Za-z0-9][A-Za-z0-9/_-]*$"),
]

#: The Code's extension caps in working days: 6.4 (stage 1) and 6.15 (stage 2).
CODE_EXTENSION_CAP: dict[int, int] = {1: 10, 2: 20}

#: How long after the final response a resident may refer to the Ombudsman (004).
OMBUDSMAN_REFERRAL_MONTHS = 12

# Fixed wording every default template prints; ``required_elements()`` checks for it.
ALTERNATIVE_FORMATS = "This letter is available in other formats on request"
REASONABLE_ADJUSTMENTS = "reasonable adjustments"
CLARIFICATION = "If we have misunderstood anything, please tell us"
NO_REASONS_NEEDED = "You do not have to give us your reasons"
CONTACT_OMBUDSMAN_NOW = "You can contact the Ombudsman now"
NO_OUTSTANDING_ACTIONS = "There are no outstanding actions."
NO_REMEDY = "We are not offering a remedy"
ALL_OUR_RESPONSIBILITY = "We are responsible for all the points above."
#: How a financial remedy is paid, unless the letter is given the landlord's own words.
REMEDY_PAYMENT = ("It will be paid to you by bank transfer or as a credit to your rent "
                  "account; we will contact you to arrange it.")
#: The apology an acknowledgement sent after its due date opens with.
LATE_APOLOGY = "We are sorry that this letter is late."

DECISION_TEXT: dict[Decision, str] = {
    Decision.UPHELD: "Upheld",
    Decision.PARTLY_UPHELD: "Partly upheld",
    Decision.NOT_UPHELD: "Not upheld",
}

REMEDY_KIND_TEXT: dict[RemedyKind, str] = {
    RemedyKind.APOLOGY: "Apology",
    RemedyKind.ACKNOWLEDGEMENT: "Acknowledging what went wrong",
    RemedyKind.EXPLANATION: "Explanation",
    RemedyKind.ACTION: "Action",
    RemedyKind.DECISION_CHANGED: "Decision changed",
    RemedyKind.RECORD_AMENDED: "Record amended",
    RemedyKind.FINANCIAL: "Financial remedy",
    RemedyKind.POLICY_CHANGE: "Change to our policy or practice",
}

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")


def format_uk_date(day: dt.date) -> str:
    """Format a date the way UK letters write it, independent of the process locale.

    Args:
        day: The date (a datetime is formatted by its date part).

    Returns:
        For example ``"Monday 5 January 2026"``.

    """
    return f"{_WEEKDAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]} {day.year}"


def format_money(amount: Decimal | int | float | str) -> str:
    """Format an amount in pounds sterling, rounded half-up to pence.

    Args:
        amount: The amount in GBP.

    Returns:
        For example ``"£1,250.00"`` (negative amounts as ``"-£5.00"``).

    """
    value = Decimal(str(amount)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    sign = "-" if value < 0 else ""
    return f"{sign}£{abs(value):,.2f}"


def plural(count: int, noun: str) -> str:
    """Write ``count noun`` with a plural ``s`` when needed (``"1 working day"``).

    Args:
        count: How many.
        noun: The singular noun phrase.

    Returns:
        The count and the noun, pluralised by a trailing ``s`` unless ``count`` is 1.

    """
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


_WINDOW_UNIT_NOUN: dict[EscalationWindowUnit, str] = {
    EscalationWindowUnit.WORKING_DAYS: "working day",
    EscalationWindowUnit.CALENDAR_DAYS: "calendar day",
    EscalationWindowUnit.CALENDAR_MONTHS: "calendar month",
}


def describe_escalation_window(window: EscalationWindow, *, has_actions: bool) -> str:
    """Describe in plain words how long the resident has to ask for stage 2.

    Args:
        window: The landlord's escalation window.
        has_actions: Whether the stage 1 response leaves outstanding actions. A window
            that runs from completion of actions runs from the response when there are none.

    Returns:
        For example ``"within 1 calendar month after any actions are completed"``.

    """
    span = plural(window.length, _WINDOW_UNIT_NOUN[window.unit])
    if window.runs_from is EscalationWindowStart.ACTIONS_COMPLETED and has_actions:
        return f"within {span} after any actions are completed"
    return f"within {span} of the date of this letter"


class LetterKind(StrEnum):
    """The letters the engine sends to residents."""

    STAGE1_ACKNOWLEDGEMENT = "stage1_acknowledgement"
    STAGE2_ACKNOWLEDGEMENT = "stage2_acknowledgement"
    EXTENSION = "extension"
    STAGE1_RESPONSE = "stage1_response"
    FINAL_RESPONSE = "final_response"
    EXCLUSION = "exclusion"
    ESCALATION_REFUSAL = "escalation_refusal"
    ACTION_UPDATE = "action_update"
    WITHDRAWAL_CONFIRMATION = "withdrawal_confirmation"
    HANDLER_CHANGED = "handler_changed"


class ActionStatus(StrEnum):
    """Progress of an outstanding action reported in an update (6.6, 6.17)."""

    COMPLETED = "completed"
    DELAYED = "delayed"
    IN_PROGRESS = "in_progress"


ACTION_STATUS_TEXT: dict[ActionStatus, str] = {
    ActionStatus.COMPLETED: "This action has now been completed.",
    ActionStatus.DELAYED: "This action has been delayed.",
    ActionStatus.IN_PROGRESS: "This action is in progress.",
}


class RenderedLetter(Frozen):
    """A letter rendered for sending.

    Attributes:
        subject: Email subject / HTML title.
        text: The plain-text letter.
        html: The HTML letter (a complete document).

    """

    subject: str
    text: str
    html: str


def ombudsman_email_note(ombudsman: OmbudsmanDetails, on: dt.date) -> str | None:
    """Say when the Ombudsman stops (or stopped) taking new cases by email, as of ``on``.

    The tense follows the letter's date: before the cut-off the change is to come, from
    the cut-off day on it has happened.

    Args:
        ombudsman: The Ombudsman's details.
        on: The letter's date.

    Returns:
        The sentence (without a full stop) for a letter dated ``on``; None when the
        details give no email address or no cut-off.

    """
    until = ombudsman.email_new_cases_until
    if ombudsman.email is None or until is None:
        return None
    if on < until:
        return (f"from {format_uk_date(until)} the Ombudsman will no longer accept new "
                "case enquiries by email")
    return (f"The Ombudsman stopped accepting new case enquiries by email on "
            f"{format_uk_date(until)}, so please use the online form, phone or post")


def _ombudsman_elements(provision: str, ombudsman: OmbudsmanDetails,
                        on: dt.date) -> dict[str, str]:
    """List the Ombudsman contact details a letter dated ``on`` must print."""
    elements = {
        f"{provision} ombudsman name": ombudsman.name,
        f"{provision} ombudsman online form": ombudsman.online_form,
        f"{provision} ombudsman phone": ombudsman.phone,
        f"{provision} ombudsman address": ombudsman.address,
    }
    if ombudsman.email is not None and ombudsman.email_takes_new_cases(on):
        elements[f"{provision} ombudsman email"] = ombudsman.email
    note = ombudsman_email_note(ombudsman, on)
    if note is not None:
        elements[f"{provision} ombudsman email note"] = note
    return elements


def _definition_elements(provision: str, definition: ComplaintDefinition) -> dict[str, str]:
    """List the parts of a complaint definition a letter must print (5.6, 6.9b, 6.19b)."""
    elements = {f"{provision} summary": definition.summary}
    for i, point in enumerate(definition.points, 1):
        elements[f"{provision} point {i}"] = point
    for i, outcome in enumerate(definition.outcomes_sought, 1):
        elements[f"{provision} outcome sought {i}"] = outcome
    return elements


def _responsibility_elements(definition: ComplaintDefinition) -> dict[str, str]:
    """List what the landlord is and is not responsible for (5.7)."""
    elements: dict[str, str] = {}
    for i, item in enumerate(definition.responsible_for, 1):
        elements[f"5.7 responsible for {i}"] = item
    for i, item in enumerate(definition.not_responsible_for, 1):
        elements[f"5.7 not responsible for {i}"] = item
    if not definition.not_responsible_for:
        elements["5.7 responsibility"] = ALL_OUR_RESPONSIBILITY
    return elements


def late_by_text(working_days: int) -> str:
    """Say how late an acknowledgement is (``"2 working days"``)."""
    return plural(working_days, "working day")


def _late_elements(provision: str, late_by: int) -> dict[str, str]:
    """The apology a late acknowledgement must print, and by how much it is late."""
    if late_by <= 0:
        return {}
    return {f"{provision} late apology": LATE_APOLOGY,
            f"{provision} late by": late_by_text(late_by)}


class LetterBase(Frozen):
    """What every letter carries.

    Attributes:
        kind: The letter kind (the discriminator of ``Letter``).
        reference: The complaint reference, e.g. ``CMP-2026-000123``.
        landlord: The landlord's name.
        landlord_contact: How to contact the landlord (may be empty).
        recipients: Everyone the letter is addressed to: the resident, a representative
            (3.6), or every named member of a group complaint.
        letter_date: The date printed on the letter.
        signed_by: Who signs the letter (name and role).
        ombudsman: The Ombudsman's contact details (3.7: available throughout).
        large_print: Lay the letter out in large print (an agreed reasonable adjustment,
            5.10): a base font of at least 16pt in the HTML and the PDF.

    """

    kind: LetterKind
    reference: Reference
    landlord: Label
    landlord_contact: str = Field(default="", max_length=1_000)
    recipients: tuple[Party, ...] = Field(min_length=1)
    letter_date: dt.date
    signed_by: Label
    ombudsman: OmbudsmanDetails
    large_print: bool = False

    def ombudsman_provision(self) -> str:
        """Return the provision under which this letter gives the Ombudsman's details."""
        return "3.7"

    def ombudsman_email_note(self) -> str | None:
        """Return the note on the Ombudsman's email, in the tense of the letter's date."""
        return ombudsman_email_note(self.ombudsman, self.letter_date)

    def subject(self) -> str:
        """Return the subject line (email subject and HTML title)."""
        return f"Your complaint {self.reference}"

    def required_elements(self) -> dict[str, str]:
        """List the strings the rendered letter must contain, keyed by the Code provision.

        Returns:
            Provision label -> exact text that must appear in the rendered letter.

        """
        elements = {
            "header landlord": self.landlord,
            "header reference": self.reference,
            "header date": format_uk_date(self.letter_date),
            "footer signed by": self.signed_by,
            "footer other formats": ALTERNATIVE_FORMATS,
        }
        if self.landlord_contact:
            elements["footer landlord contact"] = self.landlord_contact
        for i, party in enumerate(self.recipients, 1):
            elements[f"recipient {i} name"] = party.name
            for j, line in enumerate(party.address, 1):
                elements[f"recipient {i} address line {j}"] = line
        elements.update(_ombudsman_elements(self.ombudsman_provision(), self.ombudsman,
                                            self.letter_date))
        return elements


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


class _RefusalBase(LetterBase):
    """Shared by refusals to accept (2.4) and to escalate (5.11) a complaint.

    Attributes:
        grounds: The section 2 grounds relied on.
        explanation: Why the matter is not suitable, for this complaint (2.1, 2.5).
        discretion_considered: For the twelve-month ground, how discretion to accept it
            anyway was considered (2.3); required with that ground.

    """

    grounds: tuple[ExclusionGround, ...] = Field(min_length=1)
    explanation: Text
    discretion_considered: Text | None = None

    def ombudsman_provision(self) -> str:
        """Return 2.4: the right to take a refusal to the Ombudsman."""
        return "2.4"

    @model_validator(mode="after")
    def _discretion_for_late_complaints(self) -> Self:
        if (ExclusionGround.OLDER_THAN_12_MONTHS in self.grounds
                and self.discretion_considered is None):
            raise ValueError("2.3: say how discretion to accept a complaint older than "
                             "twelve months was considered")
        if len(set(self.grounds)) != len(self.grounds):
            raise ValueError("grounds must not repeat")
        return self

    def ground_texts(self) -> list[str]:
        """Return the grounds in plain words."""
        return [EXCLUSION_GROUND_TEXT[g] for g in self.grounds]

    def right_to_ombudsman(self) -> str:
        """Return the sentence giving the right to take the decision to the Ombudsman (2.4)."""
        return f"You have the right to take this decision to the {self.ombudsman.name}"

    def required_elements(self) -> dict[str, str]:
        """List the strings the rendered letter must contain, keyed by the Code provision."""
        elements = super().required_elements()
        for i, text in enumerate(self.ground_texts(), 1):
            elements[f"{self.ombudsman_provision()} ground {i}"] = text
        elements[f"{self.ombudsman_provision()} explanation"] = self.explanation
        if self.discretion_considered is not None:
            elements["2.3 discretion considered"] = self.discretion_considered
        elements[f"{self.ombudsman_provision()} right to ombudsman"] = self.right_to_ombudsman()
        return elements


class Exclusion(_RefusalBase):
    """Refusal to accept a complaint, with reasons and the right to the Ombudsman (2.4).

    Attributes:
        received_on: When the complaint was received.
        complaint_summary: What the resident complained about, in brief.
        other_route: Where the matter will be dealt with instead, if anywhere (e.g. the
            anti-social behaviour policy).

    """

    kind: Literal[LetterKind.EXCLUSION] = LetterKind.EXCLUSION
    received_on: dt.date
    complaint_summary: Text
    other_route: Text | None = None

    @model_validator(mode="after")
    def _dates_in_order(self) -> Self:
        if self.received_on > self.letter_date:
            raise ValueError("received_on must not be after letter_date")
        return self

    def subject(self) -> str:
        """Return the subject line."""
        return f"Your complaint {self.reference}: why we cannot accept it"

    def required_elements(self) -> dict[str, str]:
        """List the strings the rendered letter must contain, keyed by the Code provision."""
        elements = super().required_elements()
        elements["2.4 received on"] = format_uk_date(self.received_on)
        elements["2.4 complaint"] = self.complaint_summary
        if self.other_route is not None:
            elements["2.4 other route"] = self.other_route
        return elements


class EscalationRefusal(_RefusalBase):
    """Refusal to escalate a complaint to stage 2 on section 2 grounds (5.11).

    Attributes:
        escalation_requested_on: When the resident asked for stage 2.

    """

    kind: Literal[LetterKind.ESCALATION_REFUSAL] = LetterKind.ESCALATION_REFUSAL
    escalation_requested_on: dt.date

    def ombudsman_provision(self) -> str:
        """Return 5.11: a refusal to escalate must meet section 2."""
        return "5.11"

    @model_validator(mode="after")
    def _dates_in_order(self) -> Self:
        if self.escalation_requested_on > self.letter_date:
            raise ValueError("escalation_requested_on must not be after letter_date")
        return self

    def subject(self) -> str:
        """Return the subject line."""
        return f"Your complaint {self.reference}: your request for a stage 2 review"

    def required_elements(self) -> dict[str, str]:
        """List the strings the rendered letter must contain, keyed by the Code provision."""
        elements = super().required_elements()
        elements["5.11 requested on"] = format_uk_date(self.escalation_requested_on)
        return elements


class ActionUpdate(LetterBase):
    """An update on an outstanding action after a response (6.6, 6.17, 7.3).

    Attributes:
        action: The action promised in the response.
        status: Completed, delayed or in progress.
        revised_due: The new date; required when delayed, not allowed once completed.
        note: What happened; required when delayed (why, 7.3).

    """

    kind: Literal[LetterKind.ACTION_UPDATE] = LetterKind.ACTION_UPDATE
    action: OutstandingAction
    status: ActionStatus
    revised_due: dt.date | None = None
    note: Text | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.status is ActionStatus.DELAYED:
            if self.revised_due is None or self.revised_due <= self.action.due_by:
                raise ValueError("a delayed action needs a revised_due after its due_by")
            if self.note is None:
                raise ValueError("a delayed action needs a note saying why")
        if self.status is ActionStatus.COMPLETED and self.revised_due is not None:
            raise ValueError("a completed action has no revised_due")
        return self

    def subject(self) -> str:
        """Return the subject line."""
        return f"Your complaint {self.reference}: an update on what we agreed to do"

    def required_elements(self) -> dict[str, str]:
        """List the strings the rendered letter must contain, keyed by the Code provision."""
        elements = super().required_elements()
        elements["6.6 action"] = self.action.description
        elements["6.6 original due"] = format_uk_date(self.action.due_by)
        elements["6.6 status"] = ACTION_STATUS_TEXT[self.status]
        if self.revised_due is not None:
            elements["7.3 revised due"] = format_uk_date(self.revised_due)
        if self.note is not None:
            elements["6.6 note"] = self.note
        return elements


class WithdrawalConfirmation(LetterBase):
    """Confirms that the resident withdrew the complaint, and how they told us (5.12).

    Attributes:
        withdrawn_on: The day the withdrawal was recorded.
        confirmed_via: How the resident confirmed it, in words (``by phone``).
        reason: The resident's reason, if they gave one.

    """

    kind: Literal[LetterKind.WITHDRAWAL_CONFIRMATION] = LetterKind.WITHDRAWAL_CONFIRMATION
    withdrawn_on: dt.date
    confirmed_via: Label
    reason: Text | None = None

    def subject(self) -> str:
        """Return the subject line."""
        return f"Your complaint {self.reference}: you have withdrawn it"

    def required_elements(self) -> dict[str, str]:
        """List the strings the rendered letter must contain, keyed by the Code provision."""
        elements = super().required_elements()
        elements["5.12 withdrawn on"] = format_uk_date(self.withdrawn_on)
        elements["5.12 confirmed via"] = self.confirmed_via
        if self.reason is not None:
            elements["5.12 reason"] = self.reason
        return elements


class HandlerChanged(LetterBase):
    """Tells the resident who now handles the complaint and how to reach them (5.9).

    Attributes:
        stage: The stage being handled.
        handler: Who handles it now (a name, or the staff id until the directory has one).
        handler_contact: How to reach them, when known.

    """

    kind: Literal[LetterKind.HANDLER_CHANGED] = LetterKind.HANDLER_CHANGED
    stage: Literal[1, 2]
    handler: Label
    handler_contact: Text | None = None

    def subject(self) -> str:
        """Return the subject line."""
        return f"Your complaint {self.reference}: a new contact for your complaint"

    def required_elements(self) -> dict[str, str]:
        """List the strings the rendered letter must contain, keyed by the Code provision."""
        elements = super().required_elements()
        elements["5.9 handler"] = self.handler
        if self.handler_contact is not None:
            elements["5.9 handler contact"] = self.handler_contact
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
