"""Rebuild the complaints database from the workflows' histories: ``complaints resync``.

A case's history in Temporal holds the input of every activity that wrote its records
(``ActivityTaskScheduled``): the intake, every snapshot of the read model, every batch of
audit events, every letter and the Ombudsman details given; or, for the activities a case
ran as *local* activities (``open_case``, ``record_case_event`` on cases started under
``LOCAL_RECORDING_PATCH``), whose inputs history does not keep, replaying the history with
the workflow code reproduces them (:mod:`complaints.resync_replay`; a history made by other
code is reported: resync it with the version that ran it). Resync reads each case's
histories (every run of a continue-as-new chain, oldest first), decodes those inputs
with the client's data converter and applies them, in order, through the very methods
the activities run. Every write is idempotent (keys: reference, (reference, seq),
letter_id, record_id) and a snapshot older than the one stored is ignored, so resync
fills the gaps a restored backup or a lost database left, changes nothing on a healthy
database, and can be run again at will.

Letters are stored **without being delivered again** (``LetterActivities.restore_letter``):
a resident never gets a letter twice because a database was restored. Deliveries the
activity's receipt names are recorded as made. Staff notifications are not replayed.

The ``references`` row (reference, year, sequence, channel, channel reference and the
intake's fingerprint) is rebuilt from the workflow's input, so that the reference
sequence and the channel-reference dedupe come back too.

A run older than Temporal's retention is gone: the next run's input carries the case
(its audit trail, the letters' ids), so the intake and audit trail are rebuilt from it,
and letters of that run missing from the database are reported as a gap that only a
backup can fill.

To plug in a new recording activity, add one entry to :data:`RECORDINGS`.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import structlog
from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine, func
from sqlmodel import Session, SQLModel, col, select
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHistory
from temporalio.service import RPCError, RPCStatusCode

from models.case import AuditEvent
from models.events import CaseContext, CaseEvent, CaseState, OpenCaseInput, Recorded
from models.messages import (
    AuditBatch,
    CaseSnapshot,
    Intake,
    LetterReceipt,
    OmbudsmanDetailsGiven,
    RecordIntakeInput,
    SendLetterInput,
)
from models.tables import AuditRow, DeliveryRow, ErasureRow, LetterRow

if TYPE_CHECKING:
    from activities.casework import CaseworkActivities
    from activities.letters import LetterActivities
    from activities.records import RecordActivities

__all__ = [
    "RECORDINGS",
    "CaseResult",
    "Recorders",
    "Recording",
    "Scheduled",
    "case_references",
    "register",
    "resync_case",
    "resync_cases",
]

log = structlog.get_logger(__name__)

#: Payloads are decoded as what they were when accepted: lodging rules (which judge new
#: input against today's date and limits) do not apply to a case Temporal already runs.
DECODE_CONTEXT = {"lodging": False}
#: Case workflow ids (``CMP-YYYY-NNNNNN``).
REFERENCE = re.compile(r"^CMP-\d{4}-\d{6}$")
#: The most runs followed back along one continue-as-new chain (a loop guard).
MAX_RUNS = 100_000


@dataclass
class Recorders:
    """The activity objects whose database methods resync calls (no mailer: no email)."""

    sessions: Callable[[], Session]
    records: RecordActivities
    letters: LetterActivities
    casework: CaseworkActivities

    @classmethod
    def for_engine(cls, engine: Engine, outbox_dir: Path) -> Recorders:
        """Build them on ``engine``; ``outbox_dir`` is never written by resync."""
        # Imported here: `complaints` loads this module for every command.
        from activities.casework import CaseworkActivities
        from activities.letters import LetterActivities
        from activities.notifications import NotificationActivities
        from activities.policy import PolicyActivities
        from activities.records import RecordActivities
        from complaints.db import session_factory

        sessions = session_factory(engine)
        records = RecordActivities(sessions)
        letters = LetterActivities(sessions, outbox_dir, mailer=None)
        # Never delivers: resync applies events with deliver=False (no notification sent).
        casework = CaseworkActivities(sessions, PolicyActivities(), records, letters,
                                      NotificationActivities(sessions))
        return cls(sessions, records, letters, casework)


@dataclass(frozen=True)
class Scheduled:
    """One recording activity as the workflow scheduled it, decoded."""

    activity_type: str
    input: Any
    scheduled_at: dt.datetime
    started_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None
    #: The activity's decoded result, when it completed and its entry has a result model.
    result: Any = None


@dataclass(frozen=True)
class Recording:
    """How to re-apply one recording activity: its input model and the apply function.

    ``apply(recorders, scheduled)`` writes what the activity writes and returns a note
    for the operator (e.g. a letter that renders differently now), or None.
    """

    model: type[BaseModel]
    apply: Callable[[Recorders, Scheduled], str | None]
    result_model: type[BaseModel] | None = None


def _restore_letter(recorders: Recorders, scheduled: Scheduled) -> str | None:
    receipt: LetterReceipt | None = scheduled.result
    row = recorders.letters.restore_letter(
        scheduled.input, receipt, stored_at=scheduled.started_at or scheduled.scheduled_at,
        delivered_at=scheduled.completed_at)
    if receipt is not None and receipt.sha256 and row.sha256 != receipt.sha256:
        return (f"letter {row.letter_id} differs from the one sent (its templates changed "
                "since): the stored text is a new rendering")
    return None


def _apply(method: str) -> Callable[[Recorders, Scheduled], None]:
    def apply(recorders: Recorders, scheduled: Scheduled) -> None:
        getattr(recorders.records, method)(scheduled.input)

    return apply


def _restore_opened(recorders: Recorders, scheduled: Scheduled) -> None:
    recorders.casework.restore_opened(scheduled.input, scheduled.result)


def _restore_event(recorders: Recorders, scheduled: Scheduled) -> None:
    recorders.casework.apply(scheduled.input, deliver=False, recorded=scheduled.result)


#: Activity type name -> how to re-apply it. Every activity that writes records belongs
#: here; one entry plugs a new one in.
RECORDINGS: dict[str, Recording] = {
    # The ``Complaint`` workflow type's.
    "open_case": Recording(OpenCaseInput, _restore_opened, result_model=CaseContext),
    "record_case_event": Recording(CaseEvent, _restore_event, result_model=Recorded),
    # The first type's (``ComplaintWorkflow``).
    "record_intake": Recording(RecordIntakeInput, _apply("record_intake")),
    "record_snapshot": Recording(CaseSnapshot, _apply("record_snapshot")),
    "record_audit": Recording(AuditBatch, _apply("record_audit")),
    "record_ombudsman_details": Recording(OmbudsmanDetailsGiven,
                                          _apply("record_ombudsman_details")),
    "send_letter": Recording(SendLetterInput, _restore_letter, result_model=LetterReceipt),
}


@dataclass
class CaseResult:
    """What resync did for one case."""

    reference: str
    #: Rows added per table.
    restored: Counter[str] = field(default_factory=Counter)
    runs: int = 0
    applied: int = 0
    notes: list[str] = field(default_factory=list)
    #: Why the case could not be fully rebuilt (one line), or None.
    error: str | None = None

    def line(self) -> str:
        """One line for the operator."""
        if self.error is not None:
            return f"{self.reference}: FAILED: {self.error}"
        return f"{self.reference}: {_restored_text(self.restored)}"


def _restored_text(restored: Counter[str]) -> str:
    parts = [f"{table} +{n}" for table, n in sorted(restored.items()) if n]
    return "restored " + ", ".join(parts) if parts else "nothing missing"


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        # Its text quotes the input (personal data): name the fields only.
        return f"invalid {exc.title}: " + ", ".join(
            ".".join(str(p) for p in e["loc"]) for e in exc.errors()[:3])
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    first = first if len(first) <= 200 else first[:197] + "..."
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


# --- reading the histories ---------------------------------------------------------------


class CaseNotFound(LookupError):
    """Temporal has no workflow with this id."""


def _time(event: HistoryEvent) -> dt.datetime:
    return event.event_time.ToDatetime(tzinfo=dt.UTC)


async def _histories(client: Client, reference: str) -> tuple[list[WorkflowHistory], bool]:
    """Every run of the case still in Temporal, oldest first; and whether older ones are gone.

    Follows the chain back from the latest run through each run's
    ``continued_execution_run_id``: this does not depend on visibility (eventually
    consistent), and stops where retention has deleted a run.
    """
    histories: list[WorkflowHistory] = []
    run_id: str | None = None
    seen: set[str] = set()
    while len(histories) < MAX_RUNS:
        try:
            history = await client.get_workflow_handle(reference, run_id=run_id).fetch_history()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            if not histories:
                raise CaseNotFound(reference) from None
            return histories[::-1], True
        histories.append(history)
        started = history.events[0].workflow_execution_started_event_attributes
        run_id = started.continued_execution_run_id or None
        if run_id is None or run_id in seen:
            break
        seen.add(run_id)
    return histories[::-1], False


async def _decode(client: Client, payloads: Iterable[Any], model: type[BaseModel]) -> Any:
    """The first payload decoded by the client's data converter, validated as ``model``."""
    values = await client.data_converter.decode(list(payloads))
    if not values:
        raise ValueError(f"no {model.__name__} in the history")
    return model.model_validate(values[0], context=DECODE_CONTEXT)


async def _scheduled(client: Client, history: WorkflowHistory) -> AsyncIterator[Scheduled]:
    """The recording activities of one run, in the order the workflow scheduled them.

    A run that recorded through local activities has no input of theirs in its history:
    they come from replaying it (:mod:`complaints.resync_replay`), merged by time.
    """
    from complaints.resync_replay import has_local_activities, replayed

    if has_local_activities(history):
        ordinary = [s async for s in _activities(client, history)]
        merged = ordinary + await replayed(client.data_converter, history)
        for scheduled in sorted(merged, key=lambda s: s.scheduled_at):  # stable
            yield scheduled
        return
    async for scheduled in _activities(client, history):
        yield scheduled


async def _activities(client: Client, history: WorkflowHistory) -> AsyncIterator[Scheduled]:
    """The recording (ordinary) activities of one run, from ``ActivityTaskScheduled``."""
    started: dict[int, dt.datetime] = {}
    completed: dict[int, HistoryEvent] = {}
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started[event.activity_task_started_event_attributes.scheduled_event_id] = \
                _time(event)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            completed[event.activity_task_completed_event_attributes.scheduled_event_id] = event
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        attributes = event.activity_task_scheduled_event_attributes
        recording = RECORDINGS.get(attributes.activity_type.name)
        if recording is None:
            continue
        done = completed.get(event.event_id)
        result = None
        if done is not None and recording.result_model is not None:
            result = await _decode(client, done.activity_task_completed_event_attributes
                                   .result.payloads, recording.result_model)
        yield Scheduled(
            activity_type=attributes.activity_type.name,
            input=await _decode(client, attributes.input.payloads, recording.model),
            scheduled_at=_time(event), started_at=started.get(event.event_id),
            completed_at=_time(done) if done is not None else None, result=result)


async def _workflow_input(client: Client, history: WorkflowHistory) -> dict[str, Any]:
    """The run's input as JSON: a model whose field ``intake`` holds the Intake."""
    started = history.events[0].workflow_execution_started_event_attributes
    values = await client.data_converter.decode(list(started.input.payloads))
    if not values or not isinstance(values[0], dict) or "intake" not in values[0]:
        raise ValueError("the workflow's input has no intake")
    return values[0]


# --- writing -----------------------------------------------------------------------------


def _count_rows(sessions: Callable[[], Session], reference: str) -> Counter[str]:
    """Rows per table for a case: every table with a ``reference`` column, and deliveries."""
    counts: Counter[str] = Counter()
    with sessions() as session:
        for table in SQLModel.metadata.sorted_tables:
            if "reference" in table.c:
                counts[table.name] = session.execute(
                    select(func.count()).select_from(table).where(
                        table.c.reference == reference)).scalar_one()
        letters = select(LetterRow.letter_id).where(LetterRow.reference == reference)
        counts[DeliveryRow.__tablename__] = session.execute(
            select(func.count()).select_from(DeliveryRow).where(
                col(DeliveryRow.letter_id).in_(letters))).scalar_one()
    return counts


def _restore_reference(recorders: Recorders, engine: Engine, intake: Intake) -> str | None:
    """Put back the case's ``references`` row (with its fingerprint); return a conflict.

    The fingerprint is the one lodging compares (``complaints.lodging``); a row stored
    before it had one gets it now.
    """
    from complaints.db import reserve_reference
    from complaints.lodging import intake_fingerprint

    fingerprint = intake_fingerprint(intake)
    row = reserve_reference(engine, intake.reference, intake.channel.value,
                            intake.channel_reference, fingerprint)
    if row.reference != intake.reference:
        return (f"its channel reference is recorded for {row.reference} in the references "
                "table: check whether both cases are the same complaint")
    if row.fingerprint is None:
        with recorders.sessions() as session:
            stored = session.get(type(row), row.reference)
            if stored is not None and stored.fingerprint is None:
                stored.fingerprint = fingerprint
                session.add(stored)
                session.commit()
    return None


def _carried_gap(start: dict[str, Any],
                 reference: str) -> tuple[list[RecordIntakeInput | AuditBatch | CaseState],
                                          list[str]]:
    """What the first run still in Temporal carries from the runs retention deleted.

    Returns:
        The intake and audit events to apply, and the carried letters' ids (to check).

    """
    intake = Intake.model_validate(start["intake"], context=DECODE_CONTEXT)
    carried = start.get("carried") or {}
    inputs: list[RecordIntakeInput | AuditBatch | CaseState] = []
    if "context" in carried:  # the ``Complaint`` type: its case record, recent audit only
        state = CaseState.model_validate(carried)
        inputs.append(state)
        events = tuple(state.recent)
        if events:
            inputs.append(AuditBatch(reference=reference, events=events))
        return inputs, [r.letter_id for r in state.letters]
    landlord = (carried.get("policy") or {}).get("landlord")
    if landlord:
        inputs.append(RecordIntakeInput(intake=intake, landlord=landlord))
    case = carried.get("case") or {}
    recorded = int(carried.get("audit_recorded") or 0)
    events = tuple(AuditEvent.model_validate(e, context=DECODE_CONTEXT)
                   for e in (case.get("audit") or [])[:recorded])
    if events:
        inputs.append(AuditBatch(reference=reference, events=events))
    letters = [str(r["letter_id"]) for r in carried.get("letters") or [] if "letter_id" in r]
    return inputs, letters


def _audit_gap(sessions: Callable[[], Session], reference: str) -> str | None:
    """Audit events missing below the highest one stored, as ``seq a-b`` ranges."""
    with sessions() as session:
        seqs = sorted(session.exec(select(AuditRow.seq).where(
            AuditRow.reference == reference)))
    present = set(seqs)
    missing = [s for s in range(1, (seqs[-1] if seqs else 0) + 1) if s not in present]
    if not missing:
        return None
    ranges: list[str] = []
    start = prev = missing[0]
    for seq in [*missing[1:], None]:
        if seq is not None and seq == prev + 1:
            prev = seq
            continue
        ranges.append(f"{start}" if start == prev else f"{start}-{prev}")
        if seq is not None:
            start = prev = seq
    return f"audit events {', '.join(ranges)} are missing and not in Temporal any more"


async def resync_case(client: Client, recorders: Recorders, engine: Engine,
                      reference: str) -> CaseResult:
    """Rebuild one case's records from its histories; never raises for a case's own fault.

    Args:
        client: The Temporal client (with the data converter the workflows use).
        recorders: The activity objects to write through.
        engine: The database (for the references row).
        reference: The case.

    Returns:
        Rows added per table, notes, and the error when the case could not be rebuilt
        in full.

    """
    from complaints.resync_replay import ReplayFailed

    result = CaseResult(reference)
    with structlog.contextvars.bound_contextvars(reference=reference):
        with recorders.sessions() as session:
            erased = session.exec(select(ErasureRow.reason).where(
                ErasureRow.reference == reference)).first()
        if erased is not None:
            # Its personal data was erased on purpose: a history still in Temporal must
            # not bring it back.
            result.notes.append(f"skipped: its personal data was erased ({erased})")
            return result
        try:
            before = _count_rows(recorders.sessions, reference)
            histories, older_gone = await _histories(client, reference)
            result.runs = len(histories)
            start = await _workflow_input(client, histories[0])
            errors: list[str] = []
            carried_letters: list[str] = []
            if older_gone:
                inputs, carried_letters = _carried_gap(start, reference)
                for carried_input in inputs:
                    if isinstance(carried_input, CaseState):
                        recorders.casework.restore_carried(
                            Intake.model_validate(start["intake"], context=DECODE_CONTEXT),
                            carried_input)
                    elif isinstance(carried_input, RecordIntakeInput):
                        recorders.records.record_intake(carried_input)
                    else:
                        recorders.records.record_audit(carried_input)
            for history in histories:
                try:
                    async for scheduled in _scheduled(client, history):
                        try:
                            note = RECORDINGS[scheduled.activity_type].apply(recorders,
                                                                             scheduled)
                        except Exception as exc:  # noqa: BLE001 - reported, the rest applied
                            errors.append(f"{scheduled.activity_type}: {_first_line(exc)}")
                            continue
                        result.applied += 1
                        if note:
                            result.notes.append(note)
                except ReplayFailed as exc:  # that run's local activities: the rest applied
                    errors.append(str(exc))
            intake = Intake.model_validate(start["intake"], context=DECODE_CONTEXT)
            conflict = _restore_reference(recorders, engine, intake)
            if conflict:
                errors.append(conflict)
            if carried_letters:
                with recorders.sessions() as session:
                    missing = [i for i in carried_letters if session.get(LetterRow, i) is None]
                if missing:
                    errors.append(f"{len(missing)} letters of runs no longer in Temporal are "
                                  f"missing (e.g. {missing[0]}): restore them from a backup")
            gap = _audit_gap(recorders.sessions, reference)
            if gap:
                errors.append(f"{gap}: restore them from a backup")
            result.restored = _count_rows(recorders.sessions, reference) - before
            if errors:
                more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
                result.error = errors[0] + more
        except CaseNotFound:
            result.error = ("not found in Temporal: check the reference with "
                            "`complaints list`")
        except Exception as exc:  # noqa: BLE001 - one case's failure is one line
            result.error = _first_line(exc)
        log.info("case_resynced", runs=result.runs, applied=result.applied,
                 restored=dict(+result.restored), failed=result.error is not None)
    return result


async def case_references(client: Client, task_queue: str | None = None) -> list[str]:
    """Every case Temporal knows (running or not), from visibility, in reference order.

    Args:
        client: The Temporal client.
        task_queue: Only cases on this task queue (the deployment's), or all.

    Returns:
        The references.

    """
    query = "WorkflowId STARTS_WITH 'CMP-'"
    if task_queue is not None:
        query += f" AND TaskQueue = '{task_queue.replace(chr(39), '')}'"
    found = {wf.id async for wf in client.list_workflows(query)}
    return sorted(r for r in found if REFERENCE.match(r))


@dataclass
class Summary:
    """What a resync of several cases did."""

    cases: int = 0
    failed: int = 0
    restored: Counter[str] = field(default_factory=Counter)

    def add(self, result: CaseResult) -> None:
        """Count one case."""
        self.cases += 1
        self.failed += result.error is not None
        self.restored.update(result.restored)

    def line(self) -> str:
        """The summary line."""
        failed = f", {self.failed} failed" if self.failed else ""
        return (f"resync: {self.cases} case{'s' if self.cases != 1 else ''}{failed}; "
                f"{_restored_text(self.restored)}")


async def resync_cases(client: Client, recorders: Recorders, engine: Engine,
                       references: Iterable[str],
                       on_case: Callable[[CaseResult], None] | None = None) -> Summary:
    """Resync several cases in turn.

    Args:
        client: The Temporal client.
        recorders: The activity objects to write through.
        engine: The database.
        references: The cases.
        on_case: Called after each case (progress).

    Returns:
        The summary: cases, failures, rows added per table.

    """
    summary = Summary()
    for reference in references:
        result = await resync_case(client, recorders, engine, reference)
        summary.add(result)
        if on_case is not None:
            on_case(result)
    return summary


# --- the command -------------------------------------------------------------------------


def register(cli: click.Group) -> None:
    """Add ``complaints resync`` to the ``complaints`` group."""

    @cli.command()
    @click.argument("reference", required=False)
    @click.option("--all", "all_cases", is_flag=True,
                  help="Every case on this deployment's task queue.")
    def resync(reference: str | None, all_cases: bool) -> None:
        """Rebuild the database's records of cases from Temporal (after a restore or loss).

        Safe to run at any time and again: it only adds what is missing, and never sends a
        letter or a notification.
        """
        from complaints.logs import configure_logging
        from complaints.settings import Settings
        from complaints.staff import StaffError, client_from_settings, run_async

        if (reference is None) == (not all_cases):
            raise StaffError("give one case reference or --all: `complaints resync "
                             "CMP-YYYY-NNNNNN` or `complaints resync --all`")
        if reference is not None and not REFERENCE.match(reference):
            raise StaffError(f"{reference!r} is not a case reference: write it as "
                             "CMP-YYYY-NNNNNN")
        settings = Settings()
        # The activities' methods log every row at INFO: keep stdout for the report and
        # send only warnings (a policy that cannot be loaded...) to stderr.
        configure_logging(json=settings.log_json, level="WARNING")
        engine = _engine(settings.effective_database_url())
        recorders = Recorders.for_engine(engine, settings.effective_outbox())
        tty = sys.stdout.isatty()

        async def run() -> Summary:
            client = await client_from_settings()
            references = [reference] if reference is not None else \
                await case_references(client, settings.temporal_task_queue)
            counter = iter(range(1, len(references) + 1))
            # On a terminal a count updated in place; otherwise (logs, pipes) a line a case.
            in_place = tty and len(references) > 1

            def progress(result: CaseResult) -> None:
                done = next(counter)
                if result.error is not None:
                    click.echo(("\n" if in_place else "") + result.line(), err=True)
                elif in_place:
                    click.echo(f"\rresync: {done}/{len(references)} cases", nl=False)
                else:
                    click.echo(result.line())
                for note in result.notes:
                    click.echo(f"{result.reference}: note: {note}", err=True)

            summary = await resync_cases(client, recorders, engine, references, progress)
            if in_place:
                click.echo()
            return summary

        try:
            summary = run_async(run)()
        finally:
            engine.dispose()
        click.echo(summary.line())
        if summary.failed:
            sys.exit(1)


def _engine(url: str) -> Engine:
    """The database at ``url`` at the newest schema, or a one-line error."""
    from sqlalchemy.exc import SQLAlchemyError

    from complaints.db import ensure_schema, make_engine
    from complaints.dbcheck import database_label
    from complaints.staff import StaffError

    try:
        ensure_schema(url)
        return make_engine(url)
    except (SQLAlchemyError, OSError) as exc:
        raise StaffError(f"cannot open the complaints database {database_label(url)} "
                         f"({_first_line(exc)}): check DATABASE_URL / DATA_DIR") from None

