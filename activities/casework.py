"""The ``Complaint`` workflow's activities: open a case, and record each of its events.

``open_case`` runs once per case: it loads the policy (checked against the Code), reads the
calendar of the years the case may need and stores the intake. ``record_case_event`` runs
once per accepted action (and per batch of refusals, and per timer that did something): in
one transaction it merges the event's changes into the stored case file and deadlines,
appends the audit entries (an accepted action's entry holds the action as submitted) and
refreshes the read model the reports count, and stores the event's signed webhooks for
integrations (``complaints.webhooks``); then it writes and sends the event's letters,
records the Ombudsman's details given with an extension and tells staff. Each part is keyed
(``(reference, event seq)``, letter id, record id, notification id), so a retry or a worker
that died half-way repeats nothing that was done.

A letter is written from the record: the case's own policy as it was loaded when the case
started, its parties, and the action as submitted; the event adds only the dates the
workflow worked out.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import json
from collections.abc import Callable
from typing import Any, NamedTuple

import structlog
from sqlalchemy import Connection, bindparam, delete, insert, select, update
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.letters import LetterActivities, StoredLetter
from activities.notifications import NotificationActivities
from activities.payments import payment_rows
from activities.policy import PolicyActivities
from activities.records import RecordActivities, table_of
from complaints.directory import StaffContact, describe_staff
from complaints.letters import render_letter, resolve_template_set
from complaints.webhooks import record_webhook_events, webhook_events
from complaints.workdays import WorkingCalendar, non_working_weekdays
from domain.deadlines import (
    RecordedCalendar,
    add_calendar_months,
    escalation_window_length,
    london_date,
)
from models.actions import ACTION_BY_TRIGGER, Action, AmendIntake
from models.case import CaseFile, Party, PartyRole, PreferredChannel
from models.events import (
    CalendarData,
    CaseContext,
    CaseEvent,
    CaseState,
    LetterSpec,
    LoadCalendarInput,
    OpenCaseInput,
    Recorded,
)
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
    RenderedLetter,
    Stage1Acknowledgement,
    Stage1Response,
    Stage2Acknowledgement,
    WithdrawalConfirmation,
)
from models.messages import (
    CaseSnapshot,
    Deadline,
    DeadlineKind,
    Intake,
    LetterReceipt,
    LetterRecord,
    OmbudsmanDetailsGiven,
    RecordIntakeInput,
    SendLetterInput,
)
from models.policy import EscalationWindowStart, Policy
from models.tables import (
    AdjustmentRow,
    AuditRow,
    CaseRecordRow,
    ComplaintRow,
    PartyRow,
    RemedyPaymentRow,
)

__all__ = ["CaseworkActivities", "LetterSources", "calendar_data", "preview_letters"]

log = structlog.get_logger(__name__)

# The statements of every event, built once (SQLAlchemy caches their compiled form).
_CASE_RECORDS = table_of(CaseRecordRow)
_CASE_RECORD = select(
    _CASE_RECORDS.c.event_seq, _CASE_RECORDS.c.policy_json, _CASE_RECORDS.c.case_json,
    _CASE_RECORDS.c.deadlines_json).where(_CASE_RECORDS.c.reference == bindparam("reference"))
_UPDATE_CASE_RECORD = update(_CASE_RECORDS).where(
    _CASE_RECORDS.c.reference == bindparam("match_reference"))
_AUDIT = table_of(AuditRow)
_INSERT_PAYMENTS = insert(table_of(RemedyPaymentRow))
_AUDIT_STORED = select(_AUDIT.c.seq).where(
    _AUDIT.c.reference == bindparam("reference"),
    _AUDIT.c.seq.in_(bindparam("seqs", expanding=True)))
_INSERT_AUDIT = insert(_AUDIT)
_PARTY_ROWS = table_of(PartyRow)
_PARTIES = select(
    _PARTY_ROWS.c.role, _PARTY_ROWS.c.name, _PARTY_ROWS.c.address, _PARTY_ROWS.c.email,
    _PARTY_ROWS.c.phone).where(_PARTY_ROWS.c.reference == bindparam("reference")).order_by(
    _PARTY_ROWS.c.position)
_ADJUSTMENT_ROWS = table_of(AdjustmentRow)
_ADJUSTMENTS = select(_ADJUSTMENT_ROWS.c.description).where(
    _ADJUSTMENT_ROWS.c.reference == bindparam("reference")).order_by(
    _ADJUSTMENT_ROWS.c.position)
_COMPLAINTS = table_of(ComplaintRow)
_DESCRIPTION = select(_COMPLAINTS.c.description).where(
    _COMPLAINTS.c.reference == bindparam("reference"))


@functools.lru_cache(maxsize=256)
def _policy(policy_json: str) -> Policy:
    """The policy a case record stores, parsed once per distinct JSON.

    Every event of a case reads the same stored policy; a ``Policy`` is frozen, so one
    parsed instance serves them all. Keyed on the exact JSON: a different policy (or
    version of one) is a different key.
    """
    return Policy.model_validate_json(policy_json)


def calendar_data(policy: Policy, first_year: int, last_year: int) -> CalendarData:
    """The policy's working calendar for the given years, as a case records it."""
    calendar = WorkingCalendar.for_policy(policy)
    return CalendarData(nation=policy.nation.value, first_year=first_year, last_year=last_year,
                        closed=non_working_weekdays(calendar, first_year, last_year),
                        closures=tuple(sorted(d for d in policy.closure_days
                                              if first_year <= d.year <= last_year)))


class CaseworkActivities:
    """Open cases and record their events (see the module docstring)."""

    def __init__(self, session_factory: Callable[[], Session], policies: PolicyActivities,
                 records: RecordActivities, letters: LetterActivities,
                 notifications: NotificationActivities, *,
                 integration_webhook_url: str | None = None) -> None:
        """Wire the activity to the database and the other side effects it runs.

        Args:
            session_factory: Opens a database session.
            policies: Loads policies by name.
            records: Writes the intake, the read model and the Ombudsman-details records.
            letters: Renders, stores and delivers letters exactly once.
            notifications: Tells staff exactly once.
            integration_webhook_url: Where integrations' signed webhooks go; when set,
                each event's webhooks (``complaints.webhooks``) are stored in the event's
                transaction for the worker's dispatcher to send. None: none are stored.

        """
        self.session_factory = session_factory
        self.policies = policies
        self.records = records
        self.letters = letters
        self.notifications = notifications
        self.integration_webhook_url = integration_webhook_url

    @activity.defn
    def open_case(self, input: OpenCaseInput) -> CaseContext:
        """Load the case's policy and calendar, and store its intake (idempotent).

        Raises:
            ApplicationError: Non-retryable (``PolicyRejected``, ``PolicyError``) when the
                policy is missing or looser than the Code.

        """
        intake = input.intake
        with structlog.contextvars.bound_contextvars(reference=intake.reference):
            policy = self.policies.read(intake.policy_name)
            try:
                calendar = calendar_data(policy, input.first_year, input.last_year)
            except ValueError as exc:
                raise ApplicationError(str(exc), type="CalendarError",
                                       non_retryable=True) from None
            self.records.record_intake(RecordIntakeInput(intake=intake,
                                                         landlord=policy.landlord))
            with self.session_factory() as session:
                if session.get(CaseRecordRow, intake.reference) is None:
                    session.add(CaseRecordRow(reference=intake.reference,
                                              policy_json=policy.model_dump_json()))
                    session.commit()
            log.info("case_opened", policy=policy.name, years=len(calendar.closed))
            return CaseContext(policy=policy, calendar=calendar)

    def restore_opened(self, input: OpenCaseInput, context: CaseContext | None) -> None:
        """Store what ``open_case`` stored, with the policy the case loaded then (resync).

        Without ``context`` (the activity never completed) nothing is stored: the case
        opens when its workflow runs again.
        """
        if context is None:
            return
        self.records.record_intake(RecordIntakeInput(intake=input.intake,
                                                     landlord=context.policy.landlord))
        with self.session_factory() as session:
            if session.get(CaseRecordRow, input.intake.reference) is None:
                session.add(CaseRecordRow(reference=input.intake.reference,
                                          policy_json=context.policy.model_dump_json()))
                session.commit()

    def restore_carried(self, intake: Intake, state: CaseState) -> None:
        """Store the case record a continued run carries, when its older runs are gone."""
        self.records.record_intake(RecordIntakeInput(intake=intake,
                                                     landlord=state.context.policy.landlord))
        with self.session_factory() as session:
            if session.get(CaseRecordRow, intake.reference) is None:
                session.add(CaseRecordRow(
                    reference=intake.reference, event_seq=state.events,
                    policy_json=state.context.policy.model_dump_json(),
                    case_json=state.case.model_dump_json(exclude={"audit"}),
                    deadlines_json=json.dumps([d.model_dump(mode="json")
                                               for d in state.deadlines])))
                session.commit()

    @activity.defn
    def load_calendar(self, input: LoadCalendarInput) -> CalendarData:
        """Read a policy's calendar for more years (a case open for years)."""
        policy = self.policies.read(input.policy_name)
        return calendar_data(policy, input.first_year, input.last_year)

    @activity.defn
    def record_case_event(self, input: CaseEvent) -> Recorded:
        """Record one event of a case and send its letters and notices, exactly once.

        Raises:
            ApplicationError: Retryable, of type ``IntakeNotRecorded``, when the case was
                never opened in this database (see ``complaints resync``).

        """
        return self.apply(input, deliver=True)

    def apply(self, event: CaseEvent, *, deliver: bool,
              recorded: Recorded | None = None) -> Recorded:
        """Record ``event``; with ``deliver`` False, store letters without sending anything.

        ``complaints resync`` applies a case's events again from its history with
        ``deliver=False`` (and ``recorded``, what the activity returned then, so that the
        deliveries made are recorded as made): whatever is missing is stored, nothing
        reaches a resident or a member of staff twice.
        """
        with structlog.contextvars.bound_contextvars(reference=event.reference):
            refused: Exception | None = None
            stored: list[tuple[LetterSpec, SendLetterInput, StoredLetter,
                               dict[tuple[str, str], str]]] = []
            with self.session_factory() as session:
                # One transaction: the record and, when sending, its letters, so that a
                # recording takes the database's write lock once for what it decides.
                connection = session.connection()
                case, policy, fresh = self._apply_record(session, connection, event)
                sources = _letter_sources(session, event, case)
                requests = [(spec, _request(spec, event, _letter(
                    spec, event, case, policy, *sources), policy)) for spec in event.letters]
                for spec, request in requests if deliver else ():
                    try:
                        rendered = self.letters.render_checked(request)
                    except Exception as exc:  # noqa: BLE001 - raised again after the commit
                        # The record and the letters before it are kept; this one and those
                        # after it wait: refused (a person must mend the template), or tried
                        # again with the activity (the record is then applied already).
                        refused = exc
                        break
                    stored.append((spec, request, *self.letters.store_on(
                        connection, request, rendered)))
                if fresh or stored:
                    session.commit()
            letters = [self._deliver(spec, event, request, row, deliveries)
                       for spec, request, row, deliveries in stored]
            if not deliver:
                letters = [self._restore(spec, event, request, recorded)
                           for spec, request in requests]
            for spec, _ in requests[:len(letters)]:
                if event.ombudsman_details and spec.kind is LetterKind.EXTENSION:
                    self._record_ombudsman(spec, event, case, policy, sources.parties)
            if refused is not None:
                raise refused
            if deliver:
                for notice in event.notifications:
                    self.notifications.notify(notice)
            log.info("event_recorded", event_seq=event.seq, applied=fresh,
                     audit=[e.seq for e in event.audit], letters=len(letters),
                     notifications=len(event.notifications) if deliver else 0)
            return Recorded(letters=tuple(letters))

    # -- the record, in one transaction ---------------------------------------------------

    def _apply_record(self, session: Session, connection: Connection,
                      event: CaseEvent) -> tuple[CaseFile, Policy, bool]:
        """Merge ``event`` into the stored case record, unless it was applied before.

        Core statements on the session's connection: the ORM's per-row objects cost more
        than the work (see ``activities.records.Upsert``).

        Returns:
            The case file after the event, the case's policy, and whether the event was
            applied now (the caller commits).

        Raises:
            ApplicationError: Retryable, of type ``IntakeNotRecorded``, when the case was
                never opened in this database.

        """
        row = connection.execute(_CASE_RECORD, {"reference": event.reference}).first()
        if row is None:
            raise ApplicationError("the intake of this complaint is not recorded yet",
                                   type="IntakeNotRecorded")
        policy = _policy(row.policy_json)
        if event.seq <= row.event_seq:
            return CaseFile.model_validate_json(row.case_json), policy, False
        case = CaseFile.model_validate({**json.loads(row.case_json), **event.changes})
        deadlines = {d["key"]: d for d in json.loads(row.deadlines_json)}
        deadlines.update({d.key: d.model_dump(mode="json") for d in event.deadlines})
        connection.execute(_UPDATE_CASE_RECORD, {
            "match_reference": event.reference, "case_json": case.model_dump_json(),
            "deadlines_json": json.dumps(list(deadlines.values())), "event_seq": event.seq,
            "updated_at": event.at})
        self._audit(connection, event)
        if event.action is not None and event.action.get("trigger") == "amend_intake":
            self._amend_intake(connection, event)
        if self.integration_webhook_url is not None:
            # In this transaction: the webhooks are stored if and only if the event is, so
            # a retry or a worker killed half-way neither loses nor duplicates one.
            record_webhook_events(connection, self.integration_webhook_url, webhook_events(
                event, case, first=row.event_seq == 0))
        header = event.header
        self.records.apply_snapshot(session, CaseSnapshot(
            reference=event.reference, landlord=header.landlord,
            policy_name=header.policy_name, state=header.state, stage=header.stage,
            handler_id=header.handler_id, next_deadline=header.next_deadline,
            overdue=header.overdue, updated_at=event.at, case=case,
            deadlines=tuple(Deadline.model_validate(d) for d in deadlines.values())),
            changed=set(event.changes), deadlines=event.deadlines)
        return case, policy, True

    @staticmethod
    def _audit(connection: Connection, event: CaseEvent) -> None:
        """Append the event's audit entries not stored yet (by seq), in one insert."""
        if not event.audit:
            return
        stored = set(connection.scalars(_AUDIT_STORED, {
            "reference": event.reference, "seqs": [e.seq for e in event.audit]}))
        rows = []
        for entry in event.audit:
            if entry.seq in stored:
                continue
            detail = entry.detail
            if entry.accepted and event.action is not None and entry.by != "system" \
                    and entry.action == event.action.get("trigger"):
                # The full record of what staff submitted (5.12); the workflow keeps none.
                detail = json.dumps(event.action, sort_keys=True)
            rows.append({
                "reference": event.reference, "seq": entry.seq, "at": entry.at,
                "action": entry.action, "by": entry.by, "from_state": entry.from_state,
                "to_state": entry.to_state, "accepted": entry.accepted, "detail": detail})
        if rows:
            connection.execute(_INSERT_AUDIT, rows)
            payments = payment_rows(event.reference, rows)
            if payments:
                connection.execute(_INSERT_PAYMENTS, payments)

    @staticmethod
    def _amend_intake(connection: Connection, event: CaseEvent) -> None:
        """Replace the recorded parties and/or adjustments with the amendment's (3.6, 5.10).

        In the event's own transaction, so a retried event replaces them again with the
        same rows; what they were before is in the audit trail (the previous amendment or
        the intake).
        """
        assert event.action is not None
        amend = AmendIntake.model_validate(
            {k: v for k, v in event.action.items() if k != "trigger"})
        reference, today = event.reference, london_date(event.at)
        if amend.parties is not None:
            connection.execute(delete(_PARTY_ROWS).where(
                _PARTY_ROWS.c.reference == reference))
            connection.execute(insert(_PARTY_ROWS), [
                {"reference": reference, "position": i, "role": p.role.value, "name": p.name,
                 "address": "\n".join(p.address), "email": p.email, "phone": p.phone}
                for i, p in enumerate(amend.parties, 1)])
        if amend.adjustments is not None:
            connection.execute(delete(_ADJUSTMENT_ROWS).where(
                _ADJUSTMENT_ROWS.c.reference == reference))
            if amend.adjustments:
                connection.execute(insert(_ADJUSTMENT_ROWS), [
                    {"reference": reference, "position": i, "description": a.description,
                     "disability_disclosed": a.disability_disclosed, "recorded_on": today,
                     "reviewed_on": today}
                    for i, a in enumerate(amend.adjustments, 1)])

    @staticmethod
    def _parties(connection: Connection, reference: str) -> tuple[tuple[Party, ...],
                                                                  tuple[str, ...], str]:
        """The case's parties, reasonable adjustments and complaint description."""
        parties = tuple(Party(role=PartyRole(r.role), name=r.name,
                              address=tuple(ln for ln in r.address.split("\n") if ln),
                              email=r.email, phone=r.phone)
                        for r in connection.execute(_PARTIES, {"reference": reference}))
        adjustments = tuple(connection.scalars(_ADJUSTMENTS, {"reference": reference}))
        description = connection.scalar(_DESCRIPTION, {"reference": reference})
        return parties, adjustments, description if description is not None else ""

    # -- letters and records after the transaction ----------------------------------------

    def _deliver(self, spec: LetterSpec, event: CaseEvent, request: SendLetterInput,
                 row: StoredLetter, deliveries: dict[tuple[str, str], str]) -> LetterRecord:
        receipt = self.letters.deliver(request, row, deliveries)
        return LetterRecord(letter_id=spec.letter_id, kind=spec.kind, stage=spec.stage,
                            seq=spec.seq, subject=receipt.subject, sent_at=event.at,
                            delivered_to=receipt.delivered_to, sha256=receipt.sha256)

    def _restore(self, spec: LetterSpec, event: CaseEvent, request: SendLetterInput,
                 recorded: Recorded | None) -> LetterRecord:
        sent = next((r for r in (recorded.letters if recorded else ())
                     if r.letter_id == spec.letter_id), None)
        row = self.letters.restore_letter(
            request, receipt=LetterReceipt(letter_id=sent.letter_id, subject=sent.subject,
                                           delivered_to=sent.delivered_to, sha256=sent.sha256)
            if sent else None, stored_at=event.at, delivered_at=event.at)
        return LetterRecord(letter_id=spec.letter_id, kind=spec.kind, stage=spec.stage,
                            seq=spec.seq, subject=row.subject, sent_at=event.at,
                            delivered_to=sent.delivered_to if sent else (), sha256=row.sha256)

    def _record_ombudsman(self, spec: LetterSpec, event: CaseEvent, case: CaseFile,
                          policy: Policy, parties: tuple[Party, ...]) -> None:
        """Code 6.5 / 6.16: which Ombudsman details went to whom, in which letter."""
        number = sum(1 for e in case.extensions if e.stage == spec.stage and e.at <= event.at)
        self.records.record_ombudsman_details(OmbudsmanDetailsGiven(
            record_id=f"{event.reference}:ombudsman:{spec.stage}:{number}",
            reference=event.reference, stage=spec.stage, extension_seq=number,
            letter_id=spec.letter_id, given_to=tuple(p.name for p in parties),
            given_at=event.at, details=policy.ombudsman))


class LetterSources(NamedTuple):
    """What a case's letters are written from besides the event: read from the database."""

    parties: tuple[Party, ...]
    adjustments: tuple[str, ...]
    description: str
    staff: dict[str, StaffContact]


def _letter_sources(session: Session, event: CaseEvent, case: CaseFile) -> LetterSources:
    """The parties, adjustments, description and staff ``event``'s letters need (none: none).

    Read in the caller's transaction: ``apply`` reads them beside the record it writes,
    :func:`preview_letters` in a read that writes nothing.
    """
    if not event.letters:
        return LetterSources((), (), "", {})
    parties, adjustments, description = CaseworkActivities._parties(session.connection(),
                                                                    event.reference)
    return LetterSources(parties, adjustments, description, _staff_named(session, event, case))


def preview_letters(session: Session, event: CaseEvent, case: CaseFile) -> list[RenderedLetter]:
    """Render the letters ``event`` would send, as they would be sent, storing nothing.

    The workflow's ``preview`` query gives the event and the case file after it; the
    letters are written as :meth:`CaseworkActivities.apply` writes them (the case's
    stored policy and template set, its parties, adjustments, description and the staff
    directory), in a read only: no letter row, outbox file, email, notification or
    webhook. The caller's session is rolled back, so nothing could be committed.

    Args:
        session: A session on the complaints database (a reading one will do).
        event: The event the action would record.
        case: The case file as it would be after the action.

    Returns:
        One rendered letter per ``event.letters``, in the same order.

    Raises:
        LookupError: The case is not recorded in this database yet.

    """
    try:
        row = session.connection().execute(_CASE_RECORD, {"reference": event.reference}).first()
        if row is None:
            raise LookupError("the case is not recorded in this database yet: try again in "
                              "a moment")
        policy = _policy(row.policy_json)
        sources = _letter_sources(session, event, case)
    finally:
        session.rollback()
    template_set = resolve_template_set(policy.name)  # as LetterActivities.send_letter does
    return [render_letter(_letter(spec, event, case, policy, *sources), template_set)
            for spec in event.letters]


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
    found = {}
    for staff_id in ids:
        if isinstance(staff_id, str) and (contact := describe_staff(session, staff_id)):
            found[staff_id] = contact
    return found


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


def _request(spec: LetterSpec, event: CaseEvent, letter: Letter,
             policy: Policy) -> SendLetterInput:
    """What sends the letter ``spec`` names: its id, case, stage and the case's templates."""
    return SendLetterInput(letter_id=spec.letter_id, reference=event.reference,
                           stage=spec.stage, seq=spec.seq, template_set=policy.name,
                           letter=letter)


def _letter(spec: LetterSpec, event: CaseEvent, case: CaseFile, policy: Policy,
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
