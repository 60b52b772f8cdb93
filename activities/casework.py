"""The ``Complaint`` workflow's activities: open a case, and record each of its events.

``open_case`` runs once per case: it loads the policy (checked against the Code), reads the
calendar of the years the case may need and stores the intake. ``record_case_event`` runs
once per accepted action (and per batch of refusals, and per timer that did something): in
one transaction it merges the event's changes into the stored case file and deadlines,
appends the audit entries (an accepted action's entry holds the action as submitted) and
refreshes the read model the reports count; then it writes and sends the event's letters,
records the Ombudsman's details given with an extension and tells staff. Each part is keyed
(``(reference, event seq)``, letter id, record id, notification id), so a retry or a worker
that died half-way repeats nothing that was done.

A letter is written from the record: the case's own policy as it was loaded when the case
started, its parties, and the action as submitted; the event adds only the dates the
workflow worked out.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import structlog
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.letters import LetterActivities
from activities.notifications import NotificationActivities
from activities.policy import PolicyActivities
from activities.records import RecordActivities
from complaints.workdays import WorkingCalendar, non_working_weekdays
from domain.deadlines import london_date
from models.actions import ACTION_BY_TRIGGER, Action
from models.case import CaseFile, Party, PartyRole
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
    Letter,
    LetterKind,
    Stage1Acknowledgement,
    Stage1Response,
    Stage2Acknowledgement,
)
from models.messages import (
    CaseSnapshot,
    Deadline,
    Intake,
    LetterReceipt,
    LetterRecord,
    OmbudsmanDetailsGiven,
    RecordIntakeInput,
    SendLetterInput,
)
from models.policy import Policy
from models.tables import AdjustmentRow, AuditRow, CaseRecordRow, ComplaintRow, PartyRow

__all__ = ["CaseworkActivities", "calendar_data"]

log = structlog.get_logger(__name__)


def calendar_data(policy: Policy, first_year: int, last_year: int) -> CalendarData:
    """The policy's working calendar for the given years, as a case records it."""
    calendar = WorkingCalendar.for_policy(policy)
    return CalendarData(nation=policy.nation.value, first_year=first_year, last_year=last_year,
                        closed=non_working_weekdays(calendar, first_year, last_year))


class CaseworkActivities:
    """Open cases and record their events (see the module docstring)."""

    def __init__(self, session_factory: Callable[[], Session], policies: PolicyActivities,
                 records: RecordActivities, letters: LetterActivities,
                 notifications: NotificationActivities) -> None:
        """Wire the activity to the database and the other side effects it runs.

        Args:
            session_factory: Opens a database session.
            policies: Loads policies by name.
            records: Writes the intake, the read model and the Ombudsman-details records.
            letters: Renders, stores and delivers letters exactly once.
            notifications: Tells staff exactly once.

        """
        self.session_factory = session_factory
        self.policies = policies
        self.records = records
        self.letters = letters
        self.notifications = notifications

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
            with self.session_factory() as session:
                case, policy, fresh = self._apply_record(session, event)
                parties, adjustments, description = self._parties(session, event.reference)
            letters = []
            for spec in event.letters:
                letter = _letter(spec, event, case, policy, parties, adjustments, description)
                letters.append(self._send(spec, event, letter, policy, deliver, recorded))
                if event.ombudsman_details and spec.kind is LetterKind.EXTENSION:
                    self._record_ombudsman(spec, event, case, policy, parties)
            if deliver:
                for notice in event.notifications:
                    self.notifications.notify(notice)
            log.info("event_recorded", event_seq=event.seq, applied=fresh,
                     audit=[e.seq for e in event.audit], letters=len(letters),
                     notifications=len(event.notifications) if deliver else 0)
            return Recorded(letters=tuple(letters))

    # -- the record, in one transaction ---------------------------------------------------

    def _apply_record(self, session: Session, event: CaseEvent) -> tuple[CaseFile, Policy, bool]:
        row = session.get(CaseRecordRow, event.reference)
        if row is None:
            raise ApplicationError("the intake of this complaint is not recorded yet",
                                   type="IntakeNotRecorded")
        policy = Policy.model_validate_json(row.policy_json)
        if event.seq <= row.event_seq:
            return CaseFile.model_validate_json(row.case_json), policy, False
        case = CaseFile.model_validate({**json.loads(row.case_json), **event.changes})
        deadlines = {d["key"]: d for d in json.loads(row.deadlines_json)}
        deadlines.update({d.key: d.model_dump(mode="json") for d in event.deadlines})
        row.case_json = case.model_dump_json()
        row.deadlines_json = json.dumps(list(deadlines.values()))
        row.event_seq = event.seq
        row.updated_at = event.at
        session.add(row)
        self._audit(session, event)
        header = event.header
        self.records.apply_snapshot(session, CaseSnapshot(
            reference=event.reference, landlord=header.landlord,
            policy_name=header.policy_name, state=header.state, stage=header.stage,
            handler_id=header.handler_id, next_deadline=header.next_deadline,
            overdue=header.overdue, updated_at=event.at, case=case,
            deadlines=tuple(Deadline.model_validate(d) for d in deadlines.values())),
            changed=set(event.changes), deadlines=event.deadlines)
        session.commit()
        return case, policy, True

    @staticmethod
    def _audit(session: Session, event: CaseEvent) -> None:
        """Append the event's audit entries not stored yet (by seq)."""
        seqs = [e.seq for e in event.audit]
        stored = set(session.exec(select(AuditRow.seq).where(
            AuditRow.reference == event.reference, col(AuditRow.seq).in_(seqs))))
        for entry in event.audit:
            if entry.seq in stored:
                continue
            detail = entry.detail
            if entry.accepted and event.action is not None and entry.by != "system" \
                    and entry.action == event.action.get("trigger"):
                # The full record of what staff submitted (5.12); the workflow keeps none.
                detail = json.dumps(event.action, sort_keys=True)
            session.add(AuditRow(
                reference=event.reference, seq=entry.seq, at=entry.at, action=entry.action,
                by=entry.by, from_state=entry.from_state, to_state=entry.to_state,
                accepted=entry.accepted, detail=detail))

    @staticmethod
    def _parties(session: Session, reference: str) -> tuple[tuple[Party, ...],
                                                            tuple[str, ...], str]:
        rows = session.exec(select(PartyRow).where(PartyRow.reference == reference)
                            .order_by(col(PartyRow.position))).all()
        parties = tuple(Party(role=PartyRole(r.role), name=r.name,
                              address=tuple(ln for ln in r.address.split("\n") if ln),
                              email=r.email, phone=r.phone) for r in rows)
        adjustments = tuple(a.description for a in session.exec(
            select(AdjustmentRow).where(AdjustmentRow.reference == reference)
            .order_by(col(AdjustmentRow.position))).all())
        complaint = session.get(ComplaintRow, reference)
        return parties, adjustments, complaint.description if complaint else ""

    # -- letters and records after the transaction ----------------------------------------

    def _send(self, spec: LetterSpec, event: CaseEvent, letter: Letter, policy: Policy,
              deliver: bool, recorded: Recorded | None) -> LetterRecord:
        request = SendLetterInput(letter_id=spec.letter_id, reference=event.reference,
                                  stage=spec.stage, seq=spec.seq, template_set=policy.name,
                                  letter=letter)
        if deliver:
            receipt = self.letters.send_letter(request)
            return LetterRecord(letter_id=spec.letter_id, kind=spec.kind, stage=spec.stage,
                                seq=spec.seq, subject=receipt.subject, sent_at=event.at,
                                delivered_to=receipt.delivered_to, sha256=receipt.sha256)
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


def _action(event: CaseEvent) -> Action:
    if event.action is None:
        raise ApplicationError("a letter needs the action it answers", type="LetterMismatch",
                               non_retryable=True)
    data = {k: v for k, v in event.action.items() if k != "trigger"}
    return ACTION_BY_TRIGGER[str(event.action["trigger"])].model_validate(data)


def _letter(spec: LetterSpec, event: CaseEvent, case: CaseFile, policy: Policy,
            parties: tuple[Party, ...], adjustments: tuple[str, ...],
            description: str) -> Letter:
    """Write the letter ``spec`` names from the record and the action it answers."""
    action: Any = _action(event)
    today = london_date(event.at)
    base: dict[str, Any] = {
        "reference": event.reference, "landlord": policy.landlord,
        "landlord_contact": policy.landlord_contact, "recipients": parties,
        "letter_date": today, "signed_by": f"{policy.landlord} complaints team",
        "ombudsman": policy.ombudsman}
    kind = spec.kind
    if kind is LetterKind.STAGE1_ACKNOWLEDGEMENT:
        return Stage1Acknowledgement(
            **base, definition=action.definition, received_on=case.received_on,
            response_due=spec.due, handler=action.handler_id, adjustments=adjustments)
    if kind is LetterKind.EXCLUSION:
        return Exclusion(**base, grounds=action.grounds, explanation=action.explanation,
                         discretion_considered=action.discretion_considered,
                         received_on=case.received_on, complaint_summary=description[:500])
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
        common = {"definition": definition, "decision": action.decision,
                  "findings": action.findings, "remedies": action.remedies,
                  "outstanding_actions": action.outstanding_actions}
        if spec.stage == 1:
            return Stage1Response(**base, **common, escalation_window=policy.escalation_window)
        return FinalResponse(**base, **common)
    if kind is LetterKind.STAGE2_ACKNOWLEDGEMENT:
        return Stage2Acknowledgement(
            **base, definition=action.definition,
            escalation_requested_on=case.escalation_requested_on or today,
            response_due=spec.due, reviewer=action.handler_id,
            stage1_handler=case.stage1_handler, adjustments=adjustments)
    if kind is LetterKind.ESCALATION_REFUSAL:
        return EscalationRefusal(
            **base, grounds=action.grounds, explanation=action.explanation,
            discretion_considered=action.discretion_considered,
            escalation_requested_on=case.escalation_requested_on or today)
    if kind is LetterKind.ACTION_UPDATE:
        record = next(a for a in case.actions if a.action.action_id == action.action_id)
        return ActionUpdate(**base, action=record.action, status=ActionStatus.COMPLETED,
                            note=action.note)
    raise ApplicationError(f"no letter of kind {kind.value}", type="LetterMismatch",
                           non_retryable=True)


