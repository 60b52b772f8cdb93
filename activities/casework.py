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

A letter is written from the record (:mod:`activities.letter_writing`): the case's own
policy as it was loaded when the case started, its parties, and the action as submitted;
the event adds only the dates the workflow worked out.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, NamedTuple

import structlog
from sqlalchemy import Connection, bindparam, delete, insert, select, update
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.calendar import calendar_data
from activities.letter_writing import (
    LetterSources,
    letter_request,
    letter_sources,
    write_letter,
)
from activities.letters import LetterActivities, StoredLetter
from activities.notifications import NotificationActivities
from activities.payments import payment_rows
from activities.policy import PolicyActivities
from activities.records import RecordActivities, table_of
from complaints.letters import render_letter, resolve_template_set
from complaints.webhooks import record_webhook_events, webhook_events
from domain.deadlines import (
    london_date,
)
from models.actions import AmendIntake
from models.case import CaseFile, Party
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
    LetterKind,
    RenderedLetter,
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
from models.tables import (
    AdjustmentRow,
    AuditRow,
    CaseRecordRow,
    DeadlineRow,
    PartyRow,
    RemedyPaymentRow,
)

__all__ = ["CaseworkActivities", "calendar_data", "preview_letters"]

log = structlog.get_logger(__name__)

# The statements of every event, built once (SQLAlchemy caches their compiled form).
_CASE_RECORDS = table_of(CaseRecordRow)
_CASE_RECORD = select(
    _CASE_RECORDS.c.event_seq, _CASE_RECORDS.c.policy_json, _CASE_RECORDS.c.case_json,
    _CASE_RECORDS.c.deadlines_json, _CASE_RECORDS.c.undo_json,
).where(_CASE_RECORDS.c.reference == bindparam("reference"))
_UPDATE_CASE_RECORD = update(_CASE_RECORDS).where(
    _CASE_RECORDS.c.reference == bindparam("match_reference"))
_AUDIT = table_of(AuditRow)
_PAYMENTS = table_of(RemedyPaymentRow)
_INSERT_PAYMENTS = insert(_PAYMENTS)
_AUDIT_STORED = select(_AUDIT.c.seq).where(
    _AUDIT.c.reference == bindparam("reference"),
    _AUDIT.c.seq.in_(bindparam("seqs", expanding=True)))
_INSERT_AUDIT = insert(_AUDIT)
_AUDIT_COLUMNS = ("at", "action", "by", "from_state", "to_state", "accepted", "detail")
_UPDATE_AUDIT = update(_AUDIT).where(
    _AUDIT.c.reference == bindparam("match_reference"), _AUDIT.c.seq == bindparam("match_seq")
).values({name: bindparam(name) for name in _AUDIT_COLUMNS})
_DELETE_AUDIT_AFTER = delete(_AUDIT).where(
    _AUDIT.c.reference == bindparam("reference"), _AUDIT.c.seq > bindparam("after"))
_DELETE_PAYMENTS = delete(_PAYMENTS).where(
    _PAYMENTS.c.reference == bindparam("reference"),
    _PAYMENTS.c.seq.in_(bindparam("seqs", expanding=True)))
_DELETE_PAYMENTS_AFTER = delete(_PAYMENTS).where(
    _PAYMENTS.c.reference == bindparam("reference"), _PAYMENTS.c.seq > bindparam("after"))
_DEADLINE_ROWS = table_of(DeadlineRow)
_DELETE_DEADLINES = delete(_DEADLINE_ROWS).where(
    _DEADLINE_ROWS.c.reference == bindparam("reference"),
    _DEADLINE_ROWS.c.key.in_(bindparam("keys", expanding=True)))
_PARTY_ROWS = table_of(PartyRow)
_ADJUSTMENT_ROWS = table_of(AdjustmentRow)


def _take_back(case: dict[str, Any], deadlines: dict[str, Any], undo: dict[str, Any]) -> None:
    """Put back in ``case`` and ``deadlines`` (as stored) what the latest event replaced."""
    case.update(undo.get("case", {}))
    for key in undo.get("absent", ()):
        case.pop(key, None)
    for key, old in undo.get("deadlines", {}).items():
        if old is None:
            deadlines.pop(key, None)
        else:
            deadlines[key] = old


@functools.lru_cache(maxsize=256)
def _policy(policy_json: str) -> Policy:
    """The policy a case record stores, parsed once per distinct JSON.

    Every event of a case reads the same stored policy; a ``Policy`` is frozen, so one
    parsed instance serves them all. Keyed on the exact JSON: a different policy (or
    version of one) is a different key.
    """
    return Policy.model_validate_json(policy_json)


def _requests(event: CaseEvent, case: CaseFile, policy: Policy,
              sources: LetterSources) -> list[tuple[LetterSpec, SendLetterInput]]:
    """Each letter of ``event``, written from the record and what it names, to be sent."""
    return [(spec, letter_request(spec, event, write_letter(
        spec, event, case, policy, *sources), policy)) for spec in event.letters]


class _Prepared(NamedTuple):
    """An event's letters as written and rendered before its write transaction."""

    case: CaseFile
    parties: tuple[Party, ...]
    requests: list[tuple[LetterSpec, SendLetterInput]]
    rendered: tuple[RenderedLetter, ...]


class CaseworkActivities:
    """Open cases and record their events (see the module docstring)."""

    def __init__(self, session_factory: Callable[[], Session], policies: PolicyActivities,
                 records: RecordActivities, letters: LetterActivities,
                 notifications: NotificationActivities, *,
                 integration_webhook_url: str | None = None,
                 read_sessions: Callable[[], Session] | None = None) -> None:
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
            read_sessions: Opens a session that reads without the write lock (SQLite's
                read-only engine): an event's letters are then written and rendered
                before its write transaction begins, so that other cases' recordings do
                not wait for the rendering. None: in the write transaction.

        """
        self.session_factory = session_factory
        self.read_sessions = read_sessions
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
            prepared = self._prepared(event) if deliver else None
            with self.session_factory() as session:
                # One transaction: the record and, when sending, its letters, so that a
                # recording takes the database's write lock once for what it decides.
                connection = session.connection()
                case, policy, fresh = self._apply_record(session, connection, event)
                if prepared is not None and prepared.case == case:
                    requests, renders = prepared.requests, prepared.rendered
                    parties = prepared.parties
                else:  # written here: no reader, or the record changed since the read
                    sources = letter_sources(session, event, case)
                    parties = sources.parties
                    requests = _requests(event, case, policy, sources)
                    renders = ()
                for number, (spec, request) in enumerate(requests if deliver else ()):
                    try:
                        rendered = renders[number] if renders else \
                            self.letters.render_checked(request)
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
                    self._record_ombudsman(spec, event, case, policy, parties)
            if refused is not None:
                raise refused
            if deliver:
                for notice in event.notifications:
                    self.notifications.notify(notice)
            log.info("event_recorded", event_seq=event.seq, applied=fresh,
                     audit=[e.seq for e in event.audit], letters=len(letters),
                     notifications=len(event.notifications) if deliver else 0)
            return Recorded(letters=tuple(letters))

    def _prepared(self, event: CaseEvent) -> _Prepared | None:
        """The event's letters written and rendered from a read, before the write lock.

        Rendering and checking a letter takes milliseconds; in the write transaction
        every other case's recording waits for it. So, given a reader, they are done
        from the record as read, and used if the record the transaction then writes is
        the same case file (else written again there). Anything that fails here is left
        to the transaction, which meets it again and keeps the record (None).
        """
        if self.read_sessions is None or not event.letters:
            return None
        try:
            with self.read_sessions() as session:
                row = session.connection().execute(
                    _CASE_RECORD, {"reference": event.reference}).first()
                if row is None or event.seq < row.event_seq:
                    return None
                policy = _policy(row.policy_json)
                case = CaseFile.model_validate({**json.loads(row.case_json),
                                                **event.changes})
                sources = letter_sources(session, event, case)
            requests = _requests(event, case, policy, sources)
            rendered = tuple(self.letters.render_checked(r) for _, r in requests)
        except Exception:  # noqa: BLE001 - the transaction does it again and reports it
            return None
        return _Prepared(case, sources.parties, requests, rendered)

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
        if event.seq < row.event_seq:
            # Applied before; its audit entries take this run's version (see ``_audit``).
            wrote = self._audit(connection, event)
            return CaseFile.model_validate_json(row.case_json), policy, wrote
        # The latest event applied again is merged again: a case records its events in
        # local activities, and a workflow task that did not complete (a killed worker,
        # a continue-as-new refused because signals arrived) leaves the record of an event
        # Temporal never saw. The next attempt builds it again, at a later
        # ``workflow.now()`` and perhaps with more in it: what the earlier version replaced
        # is put back, and the record takes this version (the one in history), so the
        # database and the workflow agree.
        again = event.seq == row.event_seq
        base = json.loads(row.case_json)
        deadlines = {d["key"]: d for d in json.loads(row.deadlines_json)}
        if again:
            earlier = json.loads(row.undo_json)
            _take_back(base, deadlines, earlier)
            # Deadlines only the earlier version planned leave the read model too.
            gone = {key for key, old in earlier.get("deadlines", {}).items() if old is None}
            gone -= {d.key for d in event.deadlines}
            if gone:
                connection.execute(_DELETE_DEADLINES, {"reference": event.reference,
                                                       "keys": sorted(gone)})
        undo = {"case": {k: base[k] for k in event.changes if k in base},
                "absent": [k for k in event.changes if k not in base],
                "deadlines": {d.key: deadlines.get(d.key) for d in event.deadlines}}
        case = CaseFile.model_validate({**base, **event.changes})
        deadlines.update({d.key: d.model_dump(mode="json") for d in event.deadlines})
        connection.execute(_UPDATE_CASE_RECORD, {
            "match_reference": event.reference, "case_json": case.model_dump_json(),
            "deadlines_json": json.dumps(list(deadlines.values())), "event_seq": event.seq,
            "undo_json": json.dumps(undo), "updated_at": event.at})
        self._audit(connection, event, latest=again)
        if event.action is not None and event.action.get("trigger") == "amend_intake":
            self._amend_intake(connection, event)
        if self.integration_webhook_url is not None and not again:
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
            # Again: the earlier version may have changed other rows, so all are written.
            changed=None if again else set(event.changes),
            deadlines=None if again else event.deadlines)
        return case, policy, True

    @staticmethod
    def _audit(connection: Connection, event: CaseEvent, *, latest: bool = False) -> bool:
        """Store the event's audit entries (by seq); whether anything was written.

        New entries are appended in one insert. An entry stored already takes this
        version, whole, with its payment: the same on a plain retry, but different when
        a worker's workflow task failed after its local activity stored the event (a
        killed worker, a task past its timeout). The next attempt builds the event again
        from a history that may hold more by then: the acceptance at a later time, a
        batch of refusals counting the signals that arrived meanwhile. This version is
        the one in history, so the record takes it.

        Args:
            connection: The event's transaction.
            event: The event.
            latest: Whether it is the case's latest recorded event applied again. Its
                entries continue the trail, so any stored after them are the earlier
                version's own and are removed (none on a plain retry).

        """
        if not event.audit:
            return False
        reference = event.reference
        seqs = [e.seq for e in event.audit]
        stored = set(connection.scalars(_AUDIT_STORED, {"reference": reference,
                                                        "seqs": seqs}))
        rows, again = [], []
        for entry in event.audit:
            detail = entry.detail
            if entry.accepted and event.action is not None and entry.by != "system" \
                    and entry.action == event.action.get("trigger"):
                # The full record of what staff submitted (5.12); the workflow keeps none.
                detail = json.dumps(event.action, sort_keys=True)
            row = {"reference": reference, "seq": entry.seq, "at": entry.at,
                   "action": entry.action, "by": entry.by, "from_state": entry.from_state,
                   "to_state": entry.to_state, "accepted": entry.accepted, "detail": detail}
            if entry.seq in stored:
                again.append(row | {"match_reference": reference, "match_seq": entry.seq})
            else:
                rows.append(row)
        if latest:
            after = {"reference": reference, "after": max(seqs)}
            connection.execute(_DELETE_PAYMENTS_AFTER, after)
            connection.execute(_DELETE_AUDIT_AFTER, after)
        if again:
            connection.execute(_UPDATE_AUDIT, [
                {k: v for k, v in row.items() if k not in ("reference", "seq")}
                for row in again])
            connection.execute(_DELETE_PAYMENTS, {"reference": reference,
                                                  "seqs": [row["seq"] for row in again]})
        if rows:
            connection.execute(_INSERT_AUDIT, rows)
        payments = payment_rows(reference, [*again, *rows])
        if payments:
            connection.execute(_INSERT_PAYMENTS, payments)
        return True

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
        sources = letter_sources(session, event, case)
    finally:
        session.rollback()
    template_set = resolve_template_set(policy.name)  # as LetterActivities.send_letter does
    return [render_letter(write_letter(spec, event, case, policy, *sources), template_set)
            for spec in event.letters]
