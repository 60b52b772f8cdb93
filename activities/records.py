"""Keeping the records (Code 5.12) and the read model of every case in the database.

Every method is idempotent, so Temporal may retry it freely: the intake is stored once
per reference, snapshots are applied only when newer than what is stored, audit events
and Ombudsman-details records are inserted once by their keys.

A snapshot also writes what the compliance reports count (``complaints.reports``): the
acknowledgement dates, one ``ResponseRow`` per stage response measured against its base
and final due dates with the policy's working calendar, and one ``RefusalRow`` per ground
of a refused complaint or escalation.
Responses are measured in :mod:`activities.measures`; child rows are written in bulk by
:class:`activities.upsert.Upsert`. Their public names are importable from here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Sequence
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import Connection, bindparam, insert, update
from sqlalchemy import select as select_columns
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.measures import (
    RESPONSE_KIND,
    ResponseMeasure,
    last_met,
    latest,
    london_date,
    measure_responses,
    policy_and_calendar,
)
from activities.payments import payment_rows
from activities.upsert import Upsert, table_of
from models.case import CaseFile
from models.messages import (
    AuditBatch,
    CaseSnapshot,
    Deadline,
    DeadlineKind,
    OmbudsmanDetailsGiven,
    RecordIntakeInput,
)
from models.tables import (
    ActionRow,
    AdjustmentRow,
    AuditRow,
    ComplaintRow,
    DeadlineRow,
    ExtensionRow,
    OmbudsmanDetailsRow,
    PartyRow,
    RefusalRow,
    RemedyPaymentRow,
    RemedyRow,
    ResponseRow,
)

__all__ = ["RecordActivities", "ResponseMeasure", "Upsert", "london_date", "measure_responses",
           "table_of"]

log = structlog.get_logger(__name__)

#: Joins multi-line values (an address, outcomes sought) into one text column.
LINE_SEPARATOR = "\n"


def _pence(amount: object) -> int | None:
    """Convert an amount in pounds (a ``Decimal`` with pence) to whole pence."""
    if amount is None:
        return None
    return int((Decimal(str(amount)) * 100).to_integral_value())


_COMPLAINTS = table_of(ComplaintRow)
#: What a snapshot needs of the stored complaint before it writes it.
_COMPLAINT_STATE = select_columns(_COMPLAINTS.c.snapshot_at, _COMPLAINTS.c.withdrawn_at).where(
    _COMPLAINTS.c.reference == bindparam("reference"))
#: The complaint's row, its SET clause derived from the parameters.
_UPDATE_COMPLAINT = update(_COMPLAINTS).where(
    _COMPLAINTS.c.reference == bindparam("match_reference"))

_OMBUDSMAN = table_of(OmbudsmanDetailsRow)
_OMBUDSMAN_STORED = select_columns(_OMBUDSMAN.c.record_id).where(
    _OMBUDSMAN.c.record_id == bindparam("record_id"))
_INSERT_OMBUDSMAN = insert(_OMBUDSMAN)

_DEADLINES = Upsert(DeadlineRow, ("key",), (
    "kind", "stage", "label", "provision", "start", "due", "ends_at", "status", "met_at",
    "breached_at"))
_EXTENSIONS = Upsert(ExtensionRow, ("extension_seq",), (
    "stage_seq", "stage", "working_days", "reason", "good_reason", "granted_by",
    "granted_at"))
_RESPONSES = Upsert(ResponseRow, ("stage", "seq"), (
    "decision", "responded_at", "responded_on", "by", "clock_start", "due_base", "due_final",
    "extension_days", "extension_within_code", "working_days_taken", "acknowledged_on",
    "acknowledgement_due", "extensions_timely", "within_code", "late_reason"))
_REFUSALS = Upsert(RefusalRow, ("kind", "ground"), ("decided_at", "decided_on", "by"))
_REMEDIES = Upsert(RemedyRow, ("stage", "position"), (
    "kind", "description", "amount_pence", "due_by", "decision", "offered_by", "offered_at"))
_ACTIONS = Upsert(ActionRow, ("action_id",), (
    "stage", "description", "due_by", "owner", "completed_at", "completed_on"))


class RecordActivities:
    """Write complaints, their parties, snapshots, audit trails and Ombudsman details."""

    def __init__(self, session_factory: Callable[[], Session]) -> None:
        """Configure the database.

        Args:
            session_factory: Opens a database session.

        """
        self.session_factory = session_factory

    @activity.defn
    def record_intake(self, input: RecordIntakeInput) -> None:
        """Store a complaint as received, with its parties and reasonable adjustments.

        Idempotent by reference: when the complaint is already stored nothing changes.

        Args:
            input: The intake and the landlord's name.

        """
        intake = input.intake
        with structlog.contextvars.bound_contextvars(reference=intake.reference):
            with self.session_factory() as session:
                if session.get(ComplaintRow, intake.reference) is not None:
                    log.info("intake_already_recorded")
                    return
                session.add(ComplaintRow(
                    reference=intake.reference, landlord=input.landlord,
                    policy_name=intake.policy_name, channel=intake.channel.value,
                    channel_reference=intake.channel_reference, category=intake.category,
                    received_on=intake.received_on, issue_occurred_on=intake.issue_occurred_on,
                    description=intake.description,
                    outcomes_sought=LINE_SEPARATOR.join(intake.outcomes_sought),
                    state="received", stage=0,
                    tenure=intake.tenure.value if intake.tenure else None,
                ))
                # Flush the complaint first: parties and adjustments reference it.
                session.flush()
                for position, party in enumerate(intake.parties, 1):
                    session.add(PartyRow(
                        reference=intake.reference, position=position, role=party.role.value,
                        name=party.name, address=LINE_SEPARATOR.join(party.address),
                        email=party.email, phone=party.phone))
                for position, adjustment in enumerate(intake.adjustments, 1):
                    session.add(AdjustmentRow(
                        reference=intake.reference, position=position,
                        description=adjustment.description,
                        disability_disclosed=adjustment.disability_disclosed,
                        recorded_on=intake.received_on))
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()
                    if session.get(ComplaintRow, intake.reference) is None:
                        raise
                    log.info("intake_already_recorded")
                    return
            # Not the category: it is free text (a Label), so it may hold personal data.
            log.info("intake_recorded", channel=intake.channel.value,
                     parties=len(intake.parties), adjustments=len(intake.adjustments),
                     disability_disclosed=any(a.disability_disclosed
                                              for a in intake.adjustments))

    @activity.defn
    def record_snapshot(self, input: CaseSnapshot) -> None:
        """Refresh a case's read model: row, deadlines, extensions, responses, refusals...

        A snapshot older than the one already applied (by ``updated_at``, workflow time)
        is ignored, so snapshots applied out of order never roll the read model back.

        Args:
            input: The case as it stands.

        Raises:
            ApplicationError: Retryable, of type ``IntakeNotRecorded``, when the
                complaint's intake has not been stored yet.

        """
        with structlog.contextvars.bound_contextvars(reference=input.reference):
            with self.session_factory() as session:
                if self.apply_snapshot(session, input):
                    session.commit()
            log.info("snapshot_recorded", state=input.state, stage=input.stage,
                     overdue=input.overdue, deadlines=len(input.deadlines))

    def apply_snapshot(self, session: Session, input: CaseSnapshot,
                       changed: Collection[str] | None = None,
                       deadlines: Sequence[Deadline] | None = None) -> bool:
        """Write a snapshot into ``session`` without committing (see ``record_snapshot``).

        The writes are Core statements on the session's connection, in its transaction:
        ORM objects pending in ``session`` are not flushed before them.

        Args:
            session: The open session.
            input: The case as it stands.
            changed: The case file's fields that changed since the last snapshot: only
                the rows they feed are rewritten (None: all of them).
            deadlines: The deadlines that changed (None: all of ``input.deadlines``).

        Returns:
            False when the snapshot is older than the one applied (nothing written).

        Raises:
            ApplicationError: Retryable, of type ``IntakeNotRecorded``, when the
                complaint's intake has not been stored yet.

        """
        # Core, not ORM objects: see ``Upsert``.
        connection = session.connection()
        stored = connection.execute(_COMPLAINT_STATE, {"reference": input.reference}).first()
        if stored is None:
            raise ApplicationError("the intake of this complaint is not recorded yet",
                                   type="IntakeNotRecorded")
        if stored.snapshot_at is not None and stored.snapshot_at > input.updated_at:
            log.info("snapshot_stale", state=input.state)
            return False
        complaint: dict[str, Any] = {
            "landlord": input.landlord, "policy_name": input.policy_name,
            "state": input.state, "stage": input.stage, "handler_id": input.handler_id,
            "next_deadline": input.next_deadline, "overdue": input.overdue,
            "updated_at": input.updated_at, "snapshot_at": input.updated_at,
            "closed_at": input.case.closed_at, **self._reporting_fields(input)}
        if input.state == "withdrawn" and stored.withdrawn_at is None:
            complaint["withdrawn_at"] = input.updated_at
        connection.execute(_UPDATE_COMPLAINT, {"match_reference": input.reference, **complaint})
        self._upsert_deadlines(connection, input, deadlines)
        if changed is None:
            changed = set(CaseFile.model_fields)
        clocks = any(d.kind in RESPONSE_KIND.values() for d in
                     (input.deadlines if deadlines is None else deadlines))
        if "extensions" in changed:
            self._upsert_extensions(connection, input)
        if clocks or {"responses", "extensions"} & set(changed):
            self._upsert_responses(connection, input, complaint["acknowledged_on"],
                                   complaint["stage2_acknowledged_on"])
        if {"declined", "escalation_refused"} & set(changed):
            self._upsert_refusals(connection, input)
        if "responses" in changed:
            self._upsert_remedies(connection, input)
        if "actions" in changed:
            self._upsert_actions(connection, input)
        return True

    @staticmethod
    def _reporting_fields(snapshot: CaseSnapshot) -> dict[str, Any]:
        """What the reports count, from the case file and its deadlines (complaint columns)."""
        case, deadlines = snapshot.case, snapshot.deadlines
        ack = latest(deadlines, DeadlineKind.STAGE1_ACKNOWLEDGEMENT)
        # A decline also meets the acknowledgement deadline: only a handler means accepted.
        met = last_met(deadlines, DeadlineKind.STAGE1_ACKNOWLEDGEMENT)
        ack2 = latest(deadlines, DeadlineKind.STAGE2_ACKNOWLEDGEMENT)
        # Refusing an escalation meets the stage 2 acknowledgement deadline too.
        met2 = last_met(deadlines, DeadlineKind.STAGE2_ACKNOWLEDGEMENT)
        return {
            # The workflow may correct an impossible (future) receipt date: count the
            # corrected.
            "received_on": case.received_on,
            "stage1_handler": case.stage1_handler,
            "stage2_handler": case.stage2_handler,
            "acknowledgement_due": ack.due if ack else None,
            "acknowledged_on": (london_date(met.met_at) if met and met.met_at
                                and case.stage1_handler else None),
            "stage2_acknowledgement_due": ack2.due if ack2 else None,
            "stage2_acknowledged_on": (london_date(met2.met_at) if met2 and met2.met_at
                                       and case.stage2_handler else None),
            "escalation_requested_on": case.escalation_requested_on,
            "declined_at": case.declined.at if case.declined else None,
            "excluded": case.declined is not None and case.stage1_handler is None,
            "escalation_refused": case.escalation_refused is not None,
            "referred_to_ombudsman_at": case.referred_to_ombudsman_at,
            # An order taking a declined complaint on plans a new acknowledgement clock
            # from the day of the order: the complaint counts in CH01 from that day.
            "taken_on_on": ack.start if case.declined is not None and ack is not None
            and sum(d.kind is DeadlineKind.STAGE1_ACKNOWLEDGEMENT for d in deadlines) > 1
            else None,
        }

    @staticmethod
    def _upsert_responses(connection: Connection, snapshot: CaseSnapshot,
                          acknowledged_on: dt.date | None,
                          stage2_acknowledged_on: dt.date | None) -> None:
        if not snapshot.case.responses:
            return
        policy, calendar = policy_and_calendar(snapshot.policy_name)
        measures = measure_responses(snapshot.case, snapshot.deadlines, policy, calendar,
                                     acknowledged_on, stage2_acknowledged_on)
        _RESPONSES.write(connection, snapshot.reference, (
            {"stage": m.stage, "seq": m.seq, "decision": m.decision,
             "responded_at": m.responded_at, "responded_on": m.responded_on, "by": m.by,
             "clock_start": m.clock_start, "due_base": m.due_base, "due_final": m.due_final,
             "extension_days": m.extension_days,
             "extension_within_code": m.extension_within_code,
             "working_days_taken": m.working_days_taken,
             "acknowledged_on": m.acknowledged_on,
             "acknowledgement_due": m.acknowledgement_due,
             "extensions_timely": m.extensions_timely, "within_code": m.within_code,
             "late_reason": m.late_reason} for m in measures))

    @staticmethod
    def _upsert_refusals(connection: Connection, snapshot: CaseSnapshot) -> None:
        case = snapshot.case
        decisions = [("complaint", case.declined), ("escalation", case.escalation_refused)]
        # An order may clear a refusal (None): its rows stay, it was made.
        _REFUSALS.write(connection, snapshot.reference, (
            {"kind": kind, "ground": ground.value, "decided_at": record.at,
             "decided_on": london_date(record.at), "by": record.by}
            for kind, record in decisions if record is not None
            for ground in record.grounds))

    @staticmethod
    def _upsert_deadlines(connection: Connection, snapshot: CaseSnapshot,
                          deadlines: Sequence[Deadline] | None = None) -> None:
        _DEADLINES.write(connection, snapshot.reference, (
            {"key": d.key, "kind": d.kind.value, "stage": d.stage, "label": d.label,
             "provision": d.provision, "start": d.start, "due": d.due, "ends_at": d.ends_at,
             "status": d.status.value, "met_at": d.met_at, "breached_at": d.breached_at}
            for d in (snapshot.deadlines if deadlines is None else deadlines)))

    @staticmethod
    def _upsert_extensions(connection: Connection, snapshot: CaseSnapshot) -> None:
        rows: list[dict[str, Any]] = []
        at_stage: dict[int, int] = {}
        for seq, extension in enumerate(snapshot.case.extensions, 1):
            at_stage[extension.stage] = at_stage.get(extension.stage, 0) + 1
            rows.append({"extension_seq": seq, "stage_seq": at_stage[extension.stage],
                         "stage": extension.stage, "working_days": extension.working_days,
                         "reason": extension.reason, "good_reason": extension.good_reason,
                         "granted_by": extension.by, "granted_at": extension.at})
        _EXTENSIONS.write(connection, snapshot.reference, rows)

    @staticmethod
    def _upsert_remedies(connection: Connection, snapshot: CaseSnapshot) -> None:
        rows: list[dict[str, Any]] = []
        positions: dict[int, int] = {}
        for response in snapshot.case.responses:
            for remedy in response.remedies:
                position = positions[response.stage] = positions.get(response.stage, 0) + 1
                rows.append({"stage": response.stage, "position": position,
                             "kind": remedy.kind.value, "description": remedy.description,
                             "amount_pence": _pence(remedy.amount), "due_by": remedy.due_by,
                             "decision": response.decision.value, "offered_by": response.by,
                             "offered_at": response.at})
        _REMEDIES.write(connection, snapshot.reference, rows)

    @staticmethod
    def _upsert_actions(connection: Connection, snapshot: CaseSnapshot) -> None:
        _ACTIONS.write(connection, snapshot.reference, (
            {"action_id": r.action.action_id, "stage": r.stage,
             "description": r.action.description, "due_by": r.action.due_by,
             "owner": r.action.owner, "completed_at": r.completed_at,
             "completed_on": london_date(r.completed_at) if r.completed_at else None}
            for r in snapshot.case.actions))

    @activity.defn
    def record_audit(self, input: AuditBatch) -> int:
        """Append audit events not stored yet (idempotent on reference and seq).

        Args:
            input: The complaint reference and the events.

        Returns:
            How many events were inserted (0 when all were stored already).

        """
        with structlog.contextvars.bound_contextvars(reference=input.reference):
            if not input.events:
                return 0
            with self.session_factory() as session:
                seqs = [event.seq for event in input.events]
                stored = set(session.exec(
                    select(AuditRow.seq).where(AuditRow.reference == input.reference,
                                               col(AuditRow.seq).in_(seqs))))
                added = []
                for event in input.events:
                    if event.seq in stored:
                        continue
                    stored.add(event.seq)
                    row = AuditRow(
                        reference=input.reference, seq=event.seq, at=event.at,
                        action=event.action, by=event.by, from_state=event.from_state,
                        to_state=event.to_state, accepted=event.accepted, detail=event.detail)
                    session.add(row)
                    added.append(row.model_dump())
                for payment in payment_rows(input.reference, added):
                    session.add(RemedyPaymentRow(**payment))
                inserted = len(added)
                session.commit()
            log.info("audit_recorded", received=len(input.events), inserted=inserted)
            return inserted

    @activity.defn
    def record_ombudsman_details(self, input: OmbudsmanDetailsGiven) -> None:
        """Record the Ombudsman's details given with an extension (6.5, 6.16), once.

        Args:
            input: The record, keyed by ``record_id``.

        """
        with structlog.contextvars.bound_contextvars(reference=input.reference):
            with self.session_factory() as session:
                # Core statements: one row, no use for the ORM's unit of work.
                connection = session.connection()
                if connection.scalar(_OMBUDSMAN_STORED, {"record_id": input.record_id}):
                    log.info("ombudsman_details_already_recorded", record_id=input.record_id)
                    return
                details = input.details
                try:
                    connection.execute(_INSERT_OMBUDSMAN, {
                        "record_id": input.record_id, "reference": input.reference,
                        "stage": input.stage, "extension_seq": input.extension_seq,
                        "letter_id": input.letter_id,
                        "given_to": LINE_SEPARATOR.join(input.given_to),
                        "given_at": input.given_at, "name": details.name,
                        "address": details.address, "phone": details.phone,
                        "phone_hours": details.phone_hours, "online_form": details.online_form,
                        "email": details.email,
                        "email_new_cases_until": details.email_new_cases_until})
                    session.commit()
                except IntegrityError:
                    session.rollback()
                    if not session.connection().scalar(_OMBUDSMAN_STORED,
                                                       {"record_id": input.record_id}):
                        raise
                    return
            log.info("ombudsman_details_recorded", record_id=input.record_id, stage=input.stage,
                     extension_seq=input.extension_seq, letter_id=input.letter_id)