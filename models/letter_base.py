"""What every letter shares: the Code's fixed wording, formatting, kinds and ``LetterBase``.

The pure formatting helpers (``format_uk_date``, ``format_money``, ``DECISION_TEXT``...)
live here so that the templates' filters and ``required_elements()`` agree on wording;
the helpers that list the elements several letters print (the complaint definition,
responsibility, a late acknowledgement's apology, the Ombudsman's details) are here too.
:mod:`models.letters` re-exports every public name, the path callers import them by.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

from models.case import (
    ComplaintDefinition,
    Decision,
    Frozen,
    Label,
    Party,
    RemedyKind,
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

