"""Messages of the ``Complaint`` workflow type: its input, its recording activity, its results.

The workflow keeps what it needs to decide (states, dates, ids, counts); what a case *says*
(letter text, the full audit detail, every staff action as submitted) goes to the database
through one recording activity per accepted action, :class:`CaseEvent`. An event carries
only what changed: the fields of the case file that changed, the deadlines that changed and
the letters to send, so a case's history grows by what happened, not by the case's size.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from models.case import AuditEvent, CaseFile, Frozen, Label
from models.letters import LetterKind
from models.messages import (
    Deadline,
    Intake,
    LetterRecord,
    NotifyInput,
    Reference,
    _accepted_intake,
)
from models.policy import Policy


class CalendarData(Frozen):
    """A case's working calendar, recorded in its history when it starts.

    Attributes:
        nation: Whose bank holidays these are.
        first_year: First year covered (every non-working weekday of it is listed).
        last_year: Last year covered.
        closed: Non-working weekdays: bank holidays (substitute days included) and the
            policy's one-off bank holidays. Cases recorded before closure days stopped
            counting (casework revision 2) have the closure days here too.
        closures: The landlord's closure days in those years: they do not count against
            a Code timescale; a due date in or just after one is warned about.
    """

    nation: str
    first_year: int
    last_year: int
    closed: tuple[dt.date, ...]
    closures: tuple[dt.date, ...] = ()


class CaseContext(Frozen):
    """What a case reads once, at its start: its policy and its calendar."""

    policy: Policy
    calendar: CalendarData


class OpenCaseInput(Frozen):
    """Load the case's policy and calendar and store its intake (idempotent by reference)."""

    intake: Intake
    first_year: int
    last_year: int

    _intake = field_validator("intake", mode="wrap")(_accepted_intake)


class RefreshCalendar(Frozen):
    """Read the case's calendar again: a proclaimed bank holiday, a new closure day.

    Deadlines already planned keep their dates (residents were told them); deadlines
    planned afterwards count working days on the refreshed calendar.
    """

    by: Label


class LoadCalendarInput(Frozen):
    """Read a policy's calendar again for the given years (a refresh, or later years)."""

    policy_name: str
    first_year: int
    last_year: int


class LetterSpec(Frozen):
    """A letter the workflow decided to send; the activity writes it from the record.

    The letter's wording comes from the case as recorded (definitions, findings, parties,
    the case's policy), so the event names only what the record does not hold: the dates
    the workflow worked out.
    """

    letter_id: str
    kind: LetterKind
    stage: int
    seq: int
    due: dt.date | None = None
    previous_due: dt.date | None = None


class ReadHeader(Frozen):
    """The case's row in the read model and what operators filter on."""

    landlord: str
    policy_name: str
    state: str
    stage: int
    handler_id: str | None
    next_deadline: dt.datetime | None
    overdue: bool


class CaseEvent(Frozen):
    """One recording: an accepted action, a batch of refusals, or what a timer did.

    Idempotent on ``(reference, seq)``: the case file, deadlines, audit and read model are
    written in one transaction once; the letters and notifications are keyed by their ids
    and sent once.

    Attributes:
        reference: The case.
        seq: The audit sequence number of the last entry in ``audit``.
        at: Workflow time of the event.
        audit: The audit entries this event adds (each with its own ``seq``).
        action: The staff action as submitted (its JSON), for the record.
        changes: Top-level fields of the case file whose value changed, as JSON.
        deadlines: Deadlines planned or changed since the previous event.
        header: The read model's row after the event.
        letters: Letters to send.
        notifications: Staff to tell.
        ombudsman_details: Record that the Ombudsman's details went with the extension
            letter of this event (6.5, 6.16).
    """

    reference: Reference
    seq: int
    at: dt.datetime
    audit: tuple[AuditEvent, ...] = ()
    action: dict[str, Any] | None = None
    changes: dict[str, Any] = Field(default_factory=dict)
    deadlines: tuple[Deadline, ...] = ()
    header: ReadHeader
    letters: tuple[LetterSpec, ...] = ()
    notifications: tuple[NotifyInput, ...] = ()
    ombudsman_details: bool = False


class Recorded(Frozen):
    """What the recording activity did: the letters it sent."""

    letters: tuple[LetterRecord, ...] = ()


class ActionResult(Frozen):
    """What a staff action's update returns: small; query ``case_view`` for the rest."""

    reference: str
    seq: int
    state: str
    stage: int
    next_deadline: str | None = None
    overdue: bool = False
    letters: tuple[str, ...] = ()


class Refusal(Frozen):
    """A refused signal, kept short (never the payload: it may hold personal data)."""

    at: dt.datetime
    name: str
    by: str
    reason: str


class PreviewInput(Frozen):
    """The ``preview`` query's question: what would this action do, if taken now?

    Attributes:
        trigger: The action's trigger (``acknowledge``, ``respond``, ...).
        action: The action as its update would receive it (``by`` included), as JSON.
        at: When to decide as of: the caller's clock (an action taken now is applied at
            about now). A query sees the case's time as of its last workflow task, which
            for a quiet case is days old and would date the letter then. Never earlier
            than the case's own time; None: the case's time.
    """

    trigger: str
    action: dict[str, Any]
    at: AwareDatetime | None = None


class PreviewAnswer(Frozen):
    """The ``preview`` query's answer: the refusal, or what the action would record.

    Nothing in it was recorded or sent: it comes from a copy of the case.

    Attributes:
        refusal: Why the case would refuse the action now (then nothing else is given).
        event: The event the action would record, with the letters it would send.
        case: The case file as it would be after the action (what letters are written
            from).
    """

    refusal: str | None = None
    event: CaseEvent | None = None
    case: CaseFile | None = None


class CaseState(BaseModel):
    """What a case carries across continue-as-new: bounded, whatever happened before."""

    model_config = ConfigDict(extra="forbid")

    context: CaseContext
    case: CaseFile
    deadlines: list[Deadline]
    letters: list[LetterRecord]
    audit_seq: int
    #: Events recorded so far: numbering carries on, so the database (which applies an
    #: event once by its number) never mistakes a new event for one it has.
    events: int
    refused_total: int = 0
    recent: list[AuditEvent] = Field(default_factory=list)
    refusals: list[Refusal] = Field(default_factory=list)
    #: Refusals counted but not recorded yet (the last of ``refusals`` are theirs).
    pending_refused: int = 0


class CaseInput(Frozen):
    """The ``Complaint`` workflow's single argument: the intake, and state when continued."""

    intake: Intake
    carried: CaseState | None = None

    _intake = field_validator("intake", mode="wrap")(_accepted_intake)
