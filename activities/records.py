"""Keeping the records (Code 5.12) and the read model of every case in the database.

Every method is idempotent, so Temporal may retry it freely: the intake is stored once
per reference, snapshots are applied only when newer than what is stored, audit events
and Ombudsman-details records are inserted once by their keys.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import structlog
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.messages import (
    AuditBatch,
    CaseSnapshot,
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
    RemedyRow,
)

__all__ = ["RecordActivities"]

log = structlog.get_logger(__name__)

#: Joins multi-line values (an address, outcomes sought) into one text column.
LINE_SEPARATOR = "\n"


def _pence(amount: object) -> int | None:
    """Convert an amount in pounds (a ``Decimal`` with pence) to whole pence."""
    if amount is None:
        return None
    return int((Decimal(str(amount)) * 100).to_integral_value())


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
            log.info("intake_recorded", channel=intake.channel.value, category=intake.category,
                     parties=len(intake.parties), adjustments=len(intake.adjustments),
                     disability_disclosed=any(a.disability_disclosed
                                              for a in intake.adjustments))

    @activity.defn
    def record_snapshot(self, input: CaseSnapshot) -> None:
        """Refresh a case's read model: its row, deadlines, extensions, remedies, actions.

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
                complaint = session.get(ComplaintRow, input.reference)
                if complaint is None:
                    raise ApplicationError("the intake of this complaint is not recorded yet",
                                           type="IntakeNotRecorded")
                if complaint.snapshot_at is not None and complaint.snapshot_at > input.updated_at:
                    log.info("snapshot_stale", state=input.state)
                    return
                complaint.landlord = input.landlord
                complaint.policy_name = input.policy_name
                complaint.state = input.state
                complaint.stage = input.stage
                complaint.handler_id = input.handler_id
                complaint.next_deadline = input.next_deadline
                complaint.overdue = input.overdue
                complaint.updated_at = input.updated_at
                complaint.snapshot_at = input.updated_at
                complaint.closed_at = input.case.closed_at
                session.add(complaint)
                self._upsert_deadlines(session, input)
                self._upsert_extensions(session, input)
                self._upsert_remedies(session, input)
                self._upsert_actions(session, input)
                session.commit()
            log.info("snapshot_recorded", state=input.state, stage=input.stage,
                     overdue=input.overdue, deadlines=len(input.deadlines))

    @staticmethod
    def _upsert_deadlines(session: Session, snapshot: CaseSnapshot) -> None:
        stored = {row.key: row for row in session.exec(
            select(DeadlineRow).where(DeadlineRow.reference == snapshot.reference))}
        for deadline in snapshot.deadlines:
            row = stored.get(deadline.key) or DeadlineRow(
                reference=snapshot.reference, key=deadline.key, kind=deadline.kind.value,
                stage=deadline.stage, label=deadline.label, provision=deadline.provision,
                start=deadline.start, due=deadline.due, ends_at=deadline.ends_at,
                status=deadline.status.value)
            row.kind = deadline.kind.value
            row.stage = deadline.stage
            row.label = deadline.label
            row.provision = deadline.provision
            row.start = deadline.start
            row.due = deadline.due
            row.ends_at = deadline.ends_at
            row.status = deadline.status.value
            row.met_at = deadline.met_at
            row.breached_at = deadline.breached_at
            session.add(row)

    @staticmethod
    def _upsert_extensions(session: Session, snapshot: CaseSnapshot) -> None:
        stored = {row.extension_seq: row for row in session.exec(
            select(ExtensionRow).where(ExtensionRow.reference == snapshot.reference))}
        for seq, extension in enumerate(snapshot.case.extensions, 1):
            row = stored.get(seq) or ExtensionRow(
                reference=snapshot.reference, extension_seq=seq, stage=extension.stage,
                working_days=extension.working_days, reason=extension.reason,
                granted_by=extension.by, granted_at=extension.at)
            row.stage = extension.stage
            row.working_days = extension.working_days
            row.reason = extension.reason
            row.good_reason = extension.good_reason
            row.granted_by = extension.by
            row.granted_at = extension.at
            session.add(row)

    @staticmethod
    def _upsert_remedies(session: Session, snapshot: CaseSnapshot) -> None:
        stored = {(row.stage, row.position): row for row in session.exec(
            select(RemedyRow).where(RemedyRow.reference == snapshot.reference))}
        positions: dict[int, int] = {}
        for response in snapshot.case.responses:
            for remedy in response.remedies:
                position = positions[response.stage] = positions.get(response.stage, 0) + 1
                row = stored.get((response.stage, position)) or RemedyRow(
                    reference=snapshot.reference, stage=response.stage, position=position,
                    kind=remedy.kind.value, description=remedy.description,
                    decision=response.decision.value, offered_by=response.by,
                    offered_at=response.at)
                row.kind = remedy.kind.value
                row.description = remedy.description
                row.amount_pence = _pence(remedy.amount)
                row.due_by = remedy.due_by
                row.decision = response.decision.value
                row.offered_by = response.by
                row.offered_at = response.at
                session.add(row)

    @staticmethod
    def _upsert_actions(session: Session, snapshot: CaseSnapshot) -> None:
        stored = {row.action_id: row for row in session.exec(
            select(ActionRow).where(ActionRow.reference == snapshot.reference))}
        for record in snapshot.case.actions:
            action = record.action
            row = stored.get(action.action_id) or ActionRow(
                reference=snapshot.reference, action_id=action.action_id, stage=record.stage,
                description=action.description, due_by=action.due_by)
            row.stage = record.stage
            row.description = action.description
            row.due_by = action.due_by
            row.owner = action.owner
            row.completed_at = record.completed_at
            session.add(row)
            stored[action.action_id] = row

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
                inserted = 0
                for event in input.events:
                    if event.seq in stored:
                        continue
                    stored.add(event.seq)
                    session.add(AuditRow(
                        reference=input.reference, seq=event.seq, at=event.at,
                        action=event.action, by=event.by, from_state=event.from_state,
                        to_state=event.to_state, accepted=event.accepted, detail=event.detail))
                    inserted += 1
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
                if session.get(OmbudsmanDetailsRow, input.record_id) is not None:
                    log.info("ombudsman_details_already_recorded", record_id=input.record_id)
                    return
                details = input.details
                session.add(OmbudsmanDetailsRow(
                    record_id=input.record_id, reference=input.reference, stage=input.stage,
                    extension_seq=input.extension_seq, letter_id=input.letter_id,
                    given_to=LINE_SEPARATOR.join(input.given_to), given_at=input.given_at,
                    name=details.name, address=details.address, phone=details.phone,
                    phone_hours=details.phone_hours, online_form=details.online_form,
                    email=details.email, email_new_cases_until=details.email_new_cases_until))
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()
                    if session.get(OmbudsmanDetailsRow, input.record_id) is None:
                        raise
                    return
            log.info("ombudsman_details_recorded", record_id=input.record_id, stage=input.stage,
                     extension_seq=input.extension_seq, letter_id=input.letter_id)
