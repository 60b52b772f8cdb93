"""Letters written from a case's record: what ``record_case_event`` sends, ``preview`` shows.

A letter is written from the record: the case's own policy as it was loaded when the case
started, its parties, reasonable adjustments and description, the staff directory's
entries for the people it names, and the action as submitted; the event adds only the
dates the workflow worked out. :func:`write_letter` builds it; :func:`letter_sources`
reads what it needs in the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any, NamedTuple

from sqlalchemy import Connection, bindparam, select
from sqlmodel import Session
from temporalio.exceptions import ApplicationError

from activities.calendar import calendar_data
from activities.records import table_of
from complaints.directory import StaffContact, describe_staff_ids
from complaints.workdays import WorkingCalendar
from domain.deadlines import (
    RecordedCalendar,
    add_calendar_months,
    escalation_window_length,
    london_date,
)
from models.actions import ACTION_BY_TRIGGER, Action
from models.case import CaseFile, Party, PartyRole, PreferredChannel
from models.events import CaseEvent, LetterSpec
from models.letters import (
    ActionStatus,
    ActionUpdate,
    EscalationRefusal,
    Exclusion,
    Extension,
    FinalResponse,
    HandlerChanged,
    Letter,
    LetterKind,
    Stage1Acknowledgement,
    Stage1Response,
    Stage2Acknowledgement,
    WithdrawalConfirmation,
)
from models.messages import DeadlineKind, SendLetterInput
from models.policy import EscalationWindowStart, Policy
from models.tables import AdjustmentRow, ComplaintRow, PartyRow

__all__ = ["LetterSources", "case_parties", "letter_request", "letter_sources",
           "write_letter"]

_PARTY_ROWS = table_of(PartyRow)
_ADJUSTMENT_ROWS = table_of(AdjustmentRow)
_COMPLAINTS = table_of(ComplaintRow)
_PARTIES = select(
    _PARTY_ROWS.c.role, _PARTY_ROWS.c.name, _PARTY_ROWS.c.address, _PARTY_ROWS.c.email,
    _PARTY_ROWS.c.phone).where(_PARTY_ROWS.c.reference == bindparam("reference")).order_by(
    _PARTY_ROWS.c.position)
_ADJUSTMENTS = select(_ADJUSTMENT_ROWS.c.description).where(
    _ADJUSTMENT_ROWS.c.reference == bindparam("reference")).order_by(
    _ADJUSTMENT_ROWS.c.position)
_DESCRIPTION = select(_COMPLAINTS.c.description).where(
    _COMPLAINTS.c.reference == bindparam("reference"))


def case_parties(connection: Connection, reference: str) -> tuple[tuple[Party, ...],
                                                              tuple[str, ...], str]:
    """The case's parties, reasonable adjustments and complaint description."""
    parties = tuple(Party(role=PartyRole(r.role), name=r.name,
                          address=tuple(ln for ln in r.address.split("\n") if ln),
                          email=r.email, phone=r.phone)
                    for r in connection.execute(_PARTIES, {"reference": reference}))
    adjustments = tuple(connection.scalars(_ADJUSTMENTS, {"reference": reference}))
    description = connection.scalar(_DESCRIPTION, {"reference": reference})
    return parties, adjustments, description if description is not None else ""


class LetterSources(NamedTuple):
    """What a case's letters are written from besides the event: read from the database."""

    parties: tuple[Party, ...]
    adjustments: tuple[str, ...]
    description: str
    staff: dict[str, StaffContact]


def letter_sources(session: Session, event: CaseEvent, case: CaseFile) -> LetterSources:
    """The parties, adjustments, description and staff ``event``'s letters need (none: none).

    Read in the caller's transaction: ``apply`` reads them beside the record it writes,
    :func:`preview_letters` in a read that writes nothing.
    """
    if not event.letters:
        return LetterSources((), (), "", {})
    parties, adjustments, description = case_parties(session.connection(),
                                                                    event.reference)
    return LetterSources(parties, adjustments, description, _staff_named(session, event, case))


def _action(event: CaseEvent) -> Action:
    if event.action is None:
        raise ApplicationError("a letter needs the action it answers", type="LetterMismatch",
                               non_retryable=True)
    data = {k: v for k, v in event.action.items() if k != "trigger"}
    return ACTION_BY_TRIGGER[str(event.action["trigger"])].model_validate(data)


def _staff_named(session: Session, event: CaseEvent,
                 case: CaseFile) -> dict[str, StaffContact]:
    """The staff directory's entries for everyone a letter of ``event`` may name."""
    ids = {case.stage1_handler, case.stage2_handler}
    if event.action is not None:
        ids |= {event.action.get("handler_id"), event.action.get("to")}
    # One query for them all (describe_staff would run one per id).
    return describe_staff_ids(session, (i for i in ids if isinstance(i, str)))


def _named(staff_id: str, staff: dict[str, StaffContact]) -> str:
    """A member of staff as a resident reads them: name and job title, else their id."""
    contact = staff.get(staff_id)
    return f"{contact.display_name}, {contact.job_title}" if contact else staff_id


def _reach(staff_id: str, staff: dict[str, StaffContact]) -> str | None:
    """How a resident reaches a member of staff, if the directory says."""
    contact = staff.get(staff_id)
    if contact is None:
        return None
    return ", ".join(x for x in (contact.email, contact.phone) if x) or None


def letter_request(spec: LetterSpec, event: CaseEvent, letter: Letter,
             policy: Policy) -> SendLetterInput:
    """What sends the letter ``spec`` names: its id, case, stage and the case's templates."""
    return SendLetterInput(letter_id=spec.letter_id, reference=event.reference,
                           stage=spec.stage, seq=spec.seq, template_set=policy.name,
                           letter=letter)


def write_letter(spec: LetterSpec, event: CaseEvent, case: CaseFile, policy: Policy,
            parties: tuple[Party, ...], adjustments: tuple[str, ...],
            description: str, staff: dict[str, StaffContact] | None = None) -> Letter:
    """Write the letter ``spec`` names from the record and the action it answers.

    Staff are named from the staff directory (``staff``) where it knows them.
    """
    staff = staff or {}
    action: Any = _action(event)
    today = london_date(event.at)
    base: dict[str, Any] = {
        "reference": event.reference, "landlord": policy.landlord,
        "landlord_contact": policy.landlord_contact,
        "recipients": _with_channels(parties, case.letter_channels),
        "letter_date": today, "signed_by": f"{policy.landlord} complaints team",
        "ombudsman": policy.ombudsman, "large_print": _large_print(adjustments)}
    kind = spec.kind
    if kind is LetterKind.STAGE1_ACKNOWLEDGEMENT:
        return Stage1Acknowledgement(
            **base, definition=action.definition, received_on=case.received_on,
            response_due=spec.due, handler=_named(action.handler_id, staff),
            adjustments=adjustments,
            late_by_working_days=_late_by(
                event, policy, DeadlineKind.STAGE1_ACKNOWLEDGEMENT, today,
                start=case.received_on, limit=policy.limits.stage1_acknowledgement))
    if kind is LetterKind.EXCLUSION:
        return Exclusion(**base, grounds=action.grounds, explanation=action.explanation,
                         discretion_considered=action.discretion_considered,
                         received_on=case.received_on, complaint_summary=description[:500],
                         other_route=getattr(action, "instead", None))
    if kind is LetterKind.EXTENSION:
        before = sum(e.working_days for e in case.extensions
                     if e.stage == spec.stage and e.at < event.at)
        return Extension(
            **base, stage=1 if spec.stage == 1 else 2, reason=action.reason,
            previous_due=spec.previous_due, new_due=spec.due, working_days=action.working_days,
            extended_so_far=before, cap=policy.extension_cap(spec.stage),
            good_reason=action.good_reason, update_interval=action.update_interval)
    if kind in (LetterKind.STAGE1_RESPONSE, LetterKind.FINAL_RESPONSE):
        definition = case.stage1_definition if spec.stage == 1 else case.stage2_definition
        assert definition is not None
        if spec.stage == 1:
            # Issues folded in (6.8) are answered as points of the definition.
            folded = tuple(i.description for i in case.issues
                           if i.folded_into_stage1 and i.at <= event.at)
            definition = definition.model_copy(update={"points": definition.points + folded})
        outstanding = tuple(action.outstanding_actions)
        if spec.stage == 2:
            # Actions promised at stage 1 and still open are listed too (6.17, 6.19(f)).
            outstanding = tuple(
                a.action.model_copy(update={"due_by": a.due_by}) for a in case.actions
                if a.stage == 1 and (a.completed_at is None or a.completed_at > event.at)
            ) + outstanding
        common = {"definition": definition, "decision": action.decision,
                  "findings": action.findings, "remedies": action.remedies,
                  "outstanding_actions": outstanding}
        if spec.stage == 1:
            return Stage1Response(**base, **common, escalation_window=policy.escalation_window,
                                  escalation_deadline=_escalation_deadline(
                                      event, policy, today, has_actions=bool(outstanding)))
        return FinalResponse(**base, **common)
    if kind is LetterKind.STAGE2_ACKNOWLEDGEMENT:
        requested_on = case.escalation_requested_on or today
        return Stage2Acknowledgement(
            **base, definition=action.definition, escalation_requested_on=requested_on,
            response_due=spec.due, reviewer=_named(action.handler_id, staff),
            stage1_handler=_named(case.stage1_handler, staff) if case.stage1_handler else None,
            adjustments=adjustments,
            late_by_working_days=_late_by(
                event, policy, DeadlineKind.STAGE2_ACKNOWLEDGEMENT, today,
                start=requested_on, limit=policy.limits.stage2_acknowledgement))
    if kind is LetterKind.ESCALATION_REFUSAL:
        return EscalationRefusal(
            **base, grounds=action.grounds, explanation=action.explanation,
            discretion_considered=action.discretion_considered,
            escalation_requested_on=case.escalation_requested_on or today)
    if kind is LetterKind.ACTION_UPDATE:
        record = next(a for a in case.actions if a.action.action_id == action.action_id)
        if event.action and event.action.get("trigger") == "delay_action":
            # The date the resident was last given, and the new one with the reason.
            given = [d for d in record.delays if d.at < event.at]
            promised = given[-1].revised_due if given else record.action.due_by
            return ActionUpdate(**base, action=record.action.model_copy(
                update={"due_by": promised}), status=ActionStatus.DELAYED,
                revised_due=action.revised_due, note=action.reason)
        return ActionUpdate(**base, action=record.action, status=ActionStatus.COMPLETED,
                            note=action.note)
    if kind is LetterKind.WITHDRAWAL_CONFIRMATION:
        channel = action.confirmed_via.value.replace("_", " ") if action.confirmed_via \
            else "us"
        return WithdrawalConfirmation(**base, withdrawn_on=today, reason=action.reason,
                                      confirmed_via=f"by {channel}")
    if kind is LetterKind.HANDLER_CHANGED:
        return HandlerChanged(**base, stage=1 if spec.stage == 1 else 2,
                              handler=_named(action.to, staff),
                              handler_contact=_reach(action.to, staff))
    raise ApplicationError(f"no letter of kind {kind.value}", type="LetterMismatch",
                           non_retryable=True)


#: The words in an agreed adjustment that ask for letters in large print (5.10).
LARGE_PRINT = "large print"


def _with_channels(parties: tuple[Party, ...],
                   channels: tuple[PreferredChannel | None, ...]) -> tuple[Party, ...]:
    """The recorded parties with the channel each prefers for letters.

    The database's parties table has no column for it: the case file keeps the channels
    by position, from the intake or the amendment that recorded these parties.
    """
    if not channels:
        return parties
    return tuple(party.model_copy(update={"preferred_channel": channel})
                 if channel is not None else party
                 for party, channel in itertools.zip_longest(parties, channels[:len(parties)]))


def _large_print(adjustments: tuple[str, ...]) -> bool:
    """Whether an agreed reasonable adjustment asks for large print."""
    return any(LARGE_PRINT in " ".join(a.casefold().replace("-", " ").split())
               for a in adjustments)


def _late_by(event: CaseEvent, policy: Policy, kind: DeadlineKind, today: dt.date, *,
             start: dt.date, limit: int) -> int:
    """How many working days after its due date an acknowledgement goes out (0: on time).

    The due date is the acknowledgement deadline the workflow met with this event (the
    latest of that kind: a case reopened on the Ombudsman's order has a new one); without
    it, ``limit`` working days from ``start``, as the workflow plans it. A letter sent on
    a non-working day after the due date is one working day late.
    """
    calendar = WorkingCalendar.for_policy(policy)
    met = [d for d in event.deadlines if d.kind is kind]
    try:
        due = met[-1].due if met else calendar.add_working_days(start, limit)
        if today <= due:
            return 0
        return max(1, calendar.working_days_between(due, today))
    except ValueError:  # a date outside the calendar's years: say nothing rather than guess
        return 0


def _escalation_deadline(event: CaseEvent, policy: Policy, today: dt.date, *,
                         has_actions: bool) -> dt.date | None:
    """The last day to ask for stage 2, when the window runs from this stage 1 response.

    The escalation window the workflow planned with this event, when it did; otherwise
    the policy's window counted from ``today`` as the workflow counts it. None when the
    window runs from actions still to be completed, or cannot be worked out.
    """
    window = policy.escalation_window
    if window.runs_from is EscalationWindowStart.ACTIONS_COMPLETED and has_actions:
        return None
    planned = [d for d in event.deadlines
               if d.kind is DeadlineKind.ESCALATION_WINDOW and d.stage == 1 and d.start == today]
    if planned:
        return planned[-1].due
    length = escalation_window_length(policy)
    if "calendar_months" in length:
        return add_calendar_months(today, length["calendar_months"])
    if "calendar_days" in length:
        return today + dt.timedelta(days=length["calendar_days"])
    try:
        calendar = RecordedCalendar(calendar_data(policy, today.year, today.year + 1))
        return calendar.add_working_days(today, length["working_days"])
    except ValueError:  # outside the recorded years (OutsideCalendar): keep the words
        return None
