"""The retention job: erase the personal data of cases kept past their landlord's period.

UK GDPR keeps personal data no longer than needed. A case is erased once it has *ended*
(closed, declined, withdrawn or voided) and its policy's retention period
(``[retention] years_after_closure``, default 6) has passed since then. The period is read
from the **current** policy file, not from the copy the case recorded when it started
(``case_records.policy_json``): retention is applied outside the workflow, and a landlord
that changes its period changes it for every case.

Erasing a case, in this order (each step repeatable, so a retry after a crash finishes
the job and repeats nothing):

1. Temporal: a case whose workflow still runs is **not** erased (it is open to late
   Ombudsman actions for :data:`domain.casebook.RETENTION` after it ends); it is recorded
   as skipped with the reason. Every finished run still in the namespace (Temporal's
   namespace retention deletes them later anyway) is deleted, when a client is given.
2. Files: the letters in the outbox (``outbox/<reference>/``) and the attached documents
   (``documents/<reference>/``) are deleted.
3. The database, in one transaction with the case's ``erasures`` row (which makes it
   once only): every personal value of the case's rows is replaced
   (:func:`activities.anonymise.anonymise_case` lists them).

Kept: the reference, dates, state, stage, channel, category, decisions, deadlines and
breaches, refusal grounds, remedies' kinds and amounts, payments (the ``pay_remedy``
audit entries' stage, remedy, amount and date), staff ids, extension reasons (the annual
report lists the most frequent: staff must not write personal data there), the learning's
themes and root causes, service changes, everything ``complaints/reports`` reads, so that
every report gives the same figures after erasure.
On SQLite the erasing connection runs with ``secure_delete`` and the write-ahead log is
checkpointed after a run, so the old values do not linger in the files.

Each run is recorded in ``erasure_runs`` (a dry run too, flagged, erasing nothing) and
each case in ``erasures``. Nothing here logs personal data: references and counts only.
Which cases may be erased is decided in :mod:`activities.erasable`; what erasing does to
the rows, in :mod:`activities.anonymise`. Their public names are importable from here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
from sqlalchemy import or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.anonymise import ERASED, anonymise_case, erase_service_request, scrub_json
from activities.erasable import (
    ENDED_STATES,
    ErasureRefused,
    RetentionError,
    add_years,
    ended_at,
    erasable_refusal,
    open_orders,
)
from activities.heartbeats import heartbeat as _heartbeat
from activities.letters import outbox_paths
from domain.casebook import RETENTION
from domain.deadlines import london_date
from models.retention import (
    LISTED,
    CaseErased,
    CaseSkipped,
    ErasureRequestInput,
    RetentionRunInput,
    RetentionRunResult,
)
from models.service_requests import ServiceRequestRow
from models.tables import ComplaintRow, ErasureRow, ErasureRunRow, utcnow

__all__ = ["ERASED", "ErasureRefused", "RetentionActivities", "RetentionError",
           "erasable_refusal", "scrub_json"]

# stdlib underneath: the plain CLI configures no logging, and structlog's default would
# print to stdout, into `--json` output (as ``complaints.identity`` does).
log = structlog.wrap_logger(logging.getLogger(__name__))

_WORKFLOW_ID = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")


@dataclass(frozen=True)
class _Due:
    """A case past its retention period."""

    reference: str
    ended: dt.datetime


class RetentionActivities:
    """Erase expired cases (the scheduled job) and single cases on request."""

    def __init__(self, session_factory: Callable[[], Session], outbox_dir: Path,
                 documents_dir: Path, *, client: Client | None = None,
                 policy_dir: Path | None = None, service_request_years: int = 6,
                 now: Callable[[], dt.datetime] = utcnow) -> None:
        """Wire the job to the database, the outbox and documents folders, and Temporal.

        Args:
            session_factory: Opens a database session.
            outbox_dir: The letters' outbox (``<outbox>/<reference>/``).
            documents_dir: The attached documents' folder (``<data>/documents``).
            client: A Temporal client: finished workflows still in the namespace are
                deleted, and a case whose workflow still runs is skipped. None: Temporal
                is left to its namespace retention, and a case is taken to be running
                until :data:`domain.casebook.RETENTION` after it ended.
            policy_dir: A folder of landlord policies taking precedence over those shipped.
            service_request_years: How long a resolved service request that never became
                a complaint is kept (``SERVICE_REQUEST_RETENTION_YEARS``): service
                requests belong to no policy. One converted to a complaint goes with it.
            now: The clock (tests fix it).

        """
        self.session_factory = session_factory
        self.outbox_dir = outbox_dir
        self.documents_dir = documents_dir
        self.client = client
        self.policy_dir = policy_dir
        self.service_request_years = service_request_years
        self.now = now

    # -- the activity ----------------------------------------------------------------------

    @activity.defn
    async def erase_expired(self, input: RetentionRunInput) -> RetentionRunResult:
        """Erase every case past its retention period (see the module docstring).

        Raises:
            ApplicationError: Non-retryable, of type ``RetentionError``, for a problem a
                person must fix (the message says how).

        """
        key = input.run_key or activity.info().workflow_run_id or None
        try:
            return await self.run(input.model_copy(update={"run_key": key}))
        except RetentionError as exc:
            raise ApplicationError(str(exc), type="RetentionError",
                                   non_retryable=True) from None

    # -- a run ------------------------------------------------------------------------------

    async def run(self, input: RetentionRunInput) -> RetentionRunResult:
        """Run the job once: ``complaints retention run`` and the activity both call this.

        Returns:
            What was erased (or, dry, would be) and what was skipped, and why.

        """
        as_of = input.as_of or london_date(self.now())
        key = input.run_key or f"run-{uuid.uuid4()}"
        run_id = await asyncio.to_thread(self._start_run, key, as_of, input.dry_run)
        due, skipped = await asyncio.to_thread(self._due, as_of)
        erased: list[CaseErased] = []
        with structlog.contextvars.bound_contextvars(erasure_run=run_id):
            for case in due:
                _heartbeat(case.reference)
                why = await self._running(case.reference, case.ended)
                if why is not None:
                    skipped.append(CaseSkipped(reference=case.reference, reason=why))
                    continue
                done = await self._erase(case.reference, dry_run=input.dry_run,
                                         run_id=run_id)
                if done is not None:
                    erased.append(done)
            result = await asyncio.to_thread(self._finish_run, run_id, as_of, input.dry_run,
                                             erased, skipped)
            requests = await asyncio.to_thread(self._erase_service_requests, as_of,
                                               input.dry_run)
            result = result.model_copy(update={"service_requests_erased": requests})
            log.info("retention_run", as_of=as_of.isoformat(), dry_run=input.dry_run,
                     erased=result.cases_erased, skipped=result.cases_skipped,
                     letters=result.letters, documents=result.documents,
                     histories=result.histories, service_requests=requests)
        if result.cases_erased and not input.dry_run:
            await asyncio.to_thread(self._checkpoint)
        return result

    async def erase_on_request(self, request: ErasureRequestInput) -> CaseErased:
        """Erase one case at a resident's request, where the law allows (recorded ``request``).

        Returns:
            What was erased; an already erased case's record (erased once only).

        Raises:
            ErasureRefused: The case is open, with the Ombudsman, under an open order, or
                its workflow still runs (the message says when it can be erased).

        """
        def check() -> tuple[CaseErased | None, dt.datetime | None]:
            with self.session_factory() as session:
                done = session.exec(select(ErasureRow).where(
                    ErasureRow.reference == request.reference)).first()
                if done is not None:
                    return _erased_of(done), None
                refusal = erasable_refusal(session, request.reference)
                if refusal is not None:
                    raise ErasureRefused(refusal)
                row = session.get(ComplaintRow, request.reference)
                assert row is not None
                return None, ended_at(row)

        already, ended = await asyncio.to_thread(check)
        if already is not None:
            return already
        assert ended is not None
        why = await self._running(request.reference, ended)
        if why is not None:
            raise ErasureRefused(
                f"{request.reference} {why}; its data is kept for the complaint's "
                f"defence until then: ask again after "
                f"{london_date(ended + RETENTION).isoformat()}")
        with structlog.contextvars.bound_contextvars(reference=request.reference):
            done = await self._erase(request.reference, dry_run=False, request=request)
        if done is None:  # erased meanwhile by the job: its record says what
            return await asyncio.to_thread(self._erasure_of, request.reference)
        await asyncio.to_thread(self._checkpoint)
        log.info("erasure_request", reference=request.reference, fields=done.fields,
                 letters=done.letters, documents=done.documents, histories=done.histories)
        return done

    # -- which cases ------------------------------------------------------------------------

    def _due(self, as_of: dt.date) -> tuple[list[_Due], list[CaseSkipped]]:
        """The ended cases past their retention on ``as_of``, not erased yet; and skips."""
        # No policy keeps less than a year: read only cases that ended before that.
        horizon = dt.datetime.combine(as_of - dt.timedelta(days=365), dt.time(23, 59),
                                      tzinfo=dt.UTC)
        years: dict[str, int | str] = {}
        due: list[_Due] = []
        skipped: list[CaseSkipped] = []
        with self.session_factory() as session:
            erased = select(ErasureRow.reference)
            rows = session.exec(select(ComplaintRow).where(
                col(ComplaintRow.state).in_(ENDED_STATES),
                col(ComplaintRow.reference).not_in(erased),
                or_(col(ComplaintRow.closed_at) <= horizon,
                    col(ComplaintRow.declined_at) <= horizon,
                    col(ComplaintRow.withdrawn_at) <= horizon))
                .order_by(ComplaintRow.reference)).all()
            for row in rows:
                ended = ended_at(row)
                assert ended is not None  # one of them is before the horizon
                period = years.setdefault(row.policy_name, self._years(row.policy_name))
                if isinstance(period, str):
                    skipped.append(CaseSkipped(reference=row.reference, reason=period))
                    continue
                if add_years(london_date(ended), period) > as_of:
                    continue
                if open_orders(session, row.reference):
                    skipped.append(CaseSkipped(
                        reference=row.reference,
                        reason="an Ombudsman order is not yet complied with"))
                    continue
                due.append(_Due(row.reference, ended))
        return due, skipped

    def _years(self, policy_name: str) -> int | str:
        """The policy's retention in years, or why it cannot be read (a skip reason)."""
        from complaints.policies import POLICY_DIR, PolicyError, load_policy

        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", policy_name):
            return f"policy name {policy_name!r} is not a policy file's name"
        path = POLICY_DIR / f"{policy_name}.toml"
        if self.policy_dir is not None and (self.policy_dir / f"{policy_name}.toml").is_file():
            path = self.policy_dir / f"{policy_name}.toml"
        try:
            return load_policy(path).retention.years_after_closure
        except PolicyError:
            return (f"policy {policy_name!r} cannot be read, so its retention period is "
                    "unknown: restore its file (POLICY_DIR) and run again")

    async def _running(self, reference: str, ended: dt.datetime) -> str | None:
        """Why the case's workflow may still act on it (skip it), or None."""
        if self.client is None:
            if self.now() < ended + RETENTION:
                until = london_date(ended + RETENTION).isoformat()
                return f"is open to late Ombudsman actions until {until}"
            return None
        try:
            described = await self.client.get_workflow_handle(reference).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        if described.status == WorkflowExecutionStatus.RUNNING:
            return "has a workflow still running (open to late Ombudsman actions)"
        return None

    # -- erasing one case -------------------------------------------------------------------

    async def _erase(self, reference: str, *, dry_run: bool, run_id: int | None = None,
                     request: ErasureRequestInput | None = None) -> CaseErased | None:
        """Erase one case (files, Temporal, then the database); None if erased already."""
        files = await asyncio.to_thread(self._files, reference, dry_run)
        histories = await self._histories(reference, dry_run)
        return await asyncio.to_thread(self._records, reference, dry_run=dry_run,
                                       run_id=run_id, request=request, files=files,
                                       histories=histories)

    def _case_folders(self, reference: str) -> list[Path]:
        """The case's outbox and documents folders (named as their writers name them)."""
        from complaints.casefiles import CaseFileError, check_reference

        folders = [outbox_paths(self.outbox_dir, reference, "letter")[0].parent]
        try:
            folders.append(self.documents_dir / check_reference(reference))
        except CaseFileError:
            pass  # not a reference a document folder can have
        return folders

    def _files(self, reference: str, dry_run: bool) -> int:
        """Delete the case's letter files and documents; how many files there were."""
        count = 0
        for folder in self._case_folders(reference):
            if not folder.is_dir():
                continue
            count += sum(1 for p in folder.rglob("*") if p.is_file())
            if not dry_run:
                shutil.rmtree(folder)
        return count

    async def _histories(self, reference: str, dry_run: bool) -> int:
        """Delete every finished run of the case's workflow in the namespace; how many."""
        if self.client is None or not _WORKFLOW_ID.match(reference):
            return 0
        from temporalio.api.common.v1 import WorkflowExecution
        from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest

        runs = [execution.run_id async for execution in self.client.list_workflows(
            f"WorkflowId = '{reference}'")
            if execution.status != WorkflowExecutionStatus.RUNNING]
        if dry_run:
            return len(runs)
        deleted = 0
        for run_id in runs:
            try:
                await self.client.workflow_service.delete_workflow_execution(
                    DeleteWorkflowExecutionRequest(
                        namespace=self.client.namespace,
                        workflow_execution=WorkflowExecution(workflow_id=reference,
                                                             run_id=run_id)))
                deleted += 1
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
        return deleted

    def _records(self, reference: str, *, dry_run: bool, run_id: int | None,
                 request: ErasureRequestInput | None, files: int,
                 histories: int) -> CaseErased | None:
        """Anonymise the case's rows and record the erasure, in one transaction.

        A dry run does the same work and rolls it back: what it reports is exactly what a
        real run would do.
        """
        with self.session_factory() as session:
            if session.get_bind().dialect.name == "sqlite":
                # Old values are overwritten on disk, not left in free pages.
                session.connection().exec_driver_sql("PRAGMA secure_delete = ON")
            if session.exec(select(ErasureRow.id).where(
                    ErasureRow.reference == reference)).first() is not None:
                return None
            counts = anonymise_case(session, reference, london_date(self.now()),
                                    "a request" if request else "retention")
            erased = CaseErased(reference=reference, files=files, histories=histories,
                                **counts)
            if dry_run:
                session.rollback()
                return erased
            session.add(ErasureRow(
                reference=reference, run_id=run_id,
                request_id=str(uuid.uuid4()) if request else None,
                reason="request" if request else "retention",
                requested_by=request.by if request else None,
                request_note=request.note if request else None, erased_at=self.now(),
                **erased.model_dump(exclude={"reference"})))
            try:
                session.commit()
            except IntegrityError:  # another run erased it meanwhile: once only
                session.rollback()
                return None
            return erased

    def _erasure_of(self, reference: str) -> CaseErased:
        with self.session_factory() as session:
            return _erased_of(session.exec(select(ErasureRow).where(
                ErasureRow.reference == reference)).one())

    # -- the run's record -------------------------------------------------------------------

    def _start_run(self, key: str, as_of: dt.date, dry_run: bool) -> int:
        """The run's row (the one a retried activity made already, else a new one)."""
        with self.session_factory() as session:
            row = session.exec(select(ErasureRunRow).where(
                ErasureRunRow.run_key == key)).first()
            if row is None:
                row = ErasureRunRow(run_key=key, as_of=as_of, dry_run=dry_run,
                                    started_at=self.now())
                session.add(row)
                session.commit()
            assert row.id is not None
            return row.id

    def _finish_run(self, run_id: int, as_of: dt.date, dry_run: bool,
                    erased: list[CaseErased], skipped: list[CaseSkipped]) -> RetentionRunResult:
        """Total the run (every erasure recorded under it, a retry's earlier ones too)."""
        with self.session_factory() as session:
            row = session.get(ErasureRunRow, run_id)
            assert row is not None
            if not dry_run:
                erased = [_erased_of(r) for r in session.exec(select(ErasureRow).where(
                    ErasureRow.run_id == run_id).order_by(ErasureRow.reference)).all()]
            totals = {kind: sum(getattr(e, kind) for e in erased) for kind in _COUNTS}
            for kind, value in totals.items():
                setattr(row, kind, value)
            row.cases_erased, row.cases_skipped = len(erased), len(skipped)
            row.skipped_json = json.dumps([s.model_dump() for s in skipped[:100]])
            row.finished_at = self.now()
            session.add(row)
            session.commit()
        return RetentionRunResult(
            run_id=run_id, as_of=as_of, dry_run=dry_run, cases_erased=len(erased),
            cases_skipped=len(skipped), erased=tuple(erased[:LISTED]),
            skipped=tuple(skipped[:LISTED]), **totals)

    def _erase_service_requests(self, as_of: dt.date, dry_run: bool) -> int:
        """Erase resolved service requests past their period that never became complaints.

        Returns:
            How many were erased (dry: would be). Each erased one keeps its id, dates,
            channel and category (the monitoring figures) and is stamped ``erased_at``.
        """
        with self.session_factory() as session:
            due = [row for row in session.exec(select(ServiceRequestRow).where(
                col(ServiceRequestRow.resolved_on).is_not(None),
                col(ServiceRequestRow.erased_at).is_(None),
                col(ServiceRequestRow.complaint_reference).is_(None))).all()
                if row.resolved_on is not None
                and add_years(row.resolved_on, self.service_request_years) <= as_of]
            for request in due:
                erase_service_request(request)
                session.add(request)
            if dry_run:
                session.rollback()
            else:
                session.commit()
        return len(due)

    def _checkpoint(self) -> None:
        """Fold SQLite's write-ahead log into the database (old values leave the log)."""
        with self.session_factory() as session:
            engine = session.get_bind()
        if engine.dialect.name != "sqlite":
            return
        raw = engine.raw_connection()  # type: ignore[union-attr]
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except Exception:  # noqa: BLE001 - best effort: a busy log is folded in later
            log.warning("wal_checkpoint_deferred")
        finally:
            raw.close()


_COUNTS = ("fields", "letters", "documents", "files", "histories")


def _erased_of(row: ErasureRow) -> CaseErased:
    return CaseErased(reference=row.reference,
                      **{kind: getattr(row, kind) for kind in _COUNTS})


