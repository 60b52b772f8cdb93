"""The letters outside the stages' main steps: refusals, action updates and notices.

Refusals to accept a complaint (2.4) or to escalate it (5.11), updates on an outstanding
action (6.6, 6.17, 7.3), the confirmation of a withdrawal (5.12) and the notice of a new
handler (5.9). :mod:`models.letters` re-exports them and puts them in the ``Letter`` union.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, Self

from pydantic import Field, model_validator

from models.case import (
    EXCLUSION_GROUND_TEXT,
    ExclusionGround,
    Label,
    OutstandingAction,
    Text,
)
from models.letter_base import (
    ACTION_STATUS_TEXT,
    ActionStatus,
    LetterBase,
    LetterKind,
    format_uk_date,
)


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
