"""Retention and erasure for operators: the daily Schedule, and the commands.

- :func:`ensure_schedule` makes the Temporal Schedule ``complaints-retention`` that starts
  the ``Retention`` workflow (:mod:`workflows.retention`) every day at 03:00 London time.
  The worker calls it when it starts (``complaints dev`` runs the worker, so it does too):
  one RPC, and an existing Schedule is left as it is, so it is cheap and idempotent.
  ``complaints retention schedule`` does the same by hand; pause it with ``temporal
  schedule toggle --schedule-id complaints-retention --pause --reason ...``.
- ``complaints retention run [--dry-run] [--as-of DATE]`` runs the same activity code
  (:class:`activities.retention.RetentionActivities`) directly, once.
- ``complaints erase --reference REF --reason TEXT --by STAFF`` erases one case at a
  resident's request, where the law allows (refused, with when it will be allowed, while
  the case is open, with the Ombudsman, under an open order, or its workflow still runs).

The commands work on the database and files directly (not through ``API_URL``); they
connect to Temporal to find running workflows and delete finished histories
(``--no-temporal``: leave histories to the namespace's retention, and take a case to be
running until 366 days after it ended, as its workflow would be).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import click
import structlog
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
)

from complaints.settings import Settings
from models.retention import CaseErased, ErasureRequestInput, RetentionRunInput, RetentionRunResult

__all__ = ["SCHEDULE_ID", "activities_for", "ensure_schedule", "register", "schedule_for"]

# stdlib underneath: the plain CLI configures no logging, and structlog's default would
# print to stdout, into `--json` output (as ``complaints.identity`` does).
log = structlog.wrap_logger(logging.getLogger(__name__))

#: The Schedule's id, and the prefix of the workflow ids it starts.
SCHEDULE_ID = "complaints-retention"
#: When it runs: every day at this hour, London time (quiet hours).
SCHEDULE_HOUR = 3
SCHEDULE_TIME_ZONE = "Europe/London"


def schedule_for(task_queue: str) -> Schedule:
    """The daily retention Schedule, starting ``Retention`` on ``task_queue``.

    A run still going when the next is due makes the next one skip; one missed while
    Temporal was down is caught up within a day. The workflow is started with no argument
    (so the Schedule stores no payload encrypted with a key that may later be retired).
    """
    return Schedule(
        action=ScheduleActionStartWorkflow("Retention", id=f"{SCHEDULE_ID}-run",
                                           task_queue=task_queue,
                                           execution_timeout=dt.timedelta(hours=12)),
        spec=ScheduleSpec(calendars=[ScheduleCalendarSpec(hour=(ScheduleRange(SCHEDULE_HOUR),))],
                          time_zone_name=SCHEDULE_TIME_ZONE),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP,
                              catchup_window=dt.timedelta(days=1)))


async def ensure_schedule(client: Client, task_queue: str) -> bool:
    """Create the retention Schedule unless it exists; True when it was created now.

    Raises:
        RPCError: Temporal refused for another reason (callers at start log it and go on).

    """
    try:
        await client.create_schedule(SCHEDULE_ID, schedule_for(task_queue),
                                     rpc_timeout=dt.timedelta(seconds=10))
    except ScheduleAlreadyRunningError:
        return False
    log.info("retention_schedule_created", schedule_id=SCHEDULE_ID, task_queue=task_queue)
    return True


async def ensure_schedule_at_start(client: Client, task_queue: str) -> None:
    """:func:`ensure_schedule` for the worker's start: a failure is logged, never fatal.

    The worker's job is the cases; a Temporal that refuses Schedules (an old server, a
    permission) must not stop it. The log line says how to make the Schedule by hand.
    """
    try:
        await ensure_schedule(client, task_queue)
    except Exception as exc:  # noqa: BLE001 - logged with the fix, the worker goes on
        log.warning("retention_schedule_not_created", error=type(exc).__name__,
                    fix="run `complaints retention schedule` once Temporal accepts it")


def activities_for(settings: Settings, session_factory: Callable[[], Any],
                   client: Client | None) -> Any:
    """The retention activities for ``settings``' outbox and documents folders."""
    from activities.retention import RetentionActivities

    return RetentionActivities(session_factory, settings.effective_outbox(),
                               settings.data_dir / "documents", client=client)


# --- the commands -----------------------------------------------------------------------


def _summary(result: RetentionRunResult) -> list[str]:
    verb = "would erase" if result.dry_run else "erased"
    lines = [f"as of {result.as_of.isoformat()}: {verb} {result.cases_erased} case(s) "
             f"({result.fields} fields, {result.letters} letters, {result.documents} "
             f"documents, {result.files} files, {result.histories} Temporal histories); "
             f"skipped {result.cases_skipped}; {verb} {result.service_requests_erased} "
             f"resolved service request(s) that never became complaints; run {result.run_id}"
             + (" (dry run: nothing was changed)" if result.dry_run else "")]
    lines += [f"  {e.reference}  {verb}: {_what(e)}" for e in result.erased]
    lines += [f"  {s.reference}  skipped: {s.reason}" for s in result.skipped]
    return lines


def _what(erased: CaseErased) -> str:
    return (f"{erased.fields} fields, {erased.letters} letters, {erased.documents} documents, "
            f"{erased.files} files, {erased.histories} histories")


async def _client(no_temporal: bool) -> Client | None:
    from complaints.staff import StaffError, client_from_settings

    if no_temporal:
        return None
    try:
        return await client_from_settings()
    except StaffError as exc:
        raise click.ClickException(f"{exc.message}; or pass --no-temporal to leave "
                                   "Temporal's histories to its namespace retention") from None


def register(cli: click.Group, date_type: click.ParamType) -> None:
    """Add ``retention run``, ``retention schedule`` and ``erase`` to ``cli``."""
    from complaints.casefiles import CaseFileError, check_reference, check_staff_id, check_text

    @cli.group()
    def retention() -> None:
        """Erase personal data kept past each landlord's retention period."""

    no_temporal_option = click.option(
        "--no-temporal", is_flag=True,
        help="Do not connect to Temporal: histories are left to the namespace's retention "
             "and a case counts as running until 366 days after it ended.")

    @retention.command("run")
    @click.option("--dry-run", is_flag=True, help="Say what would be erased; erase nothing.")
    @click.option("--as-of", type=date_type, default=None,
                  help="Measure retention periods to this day (default: today, London).")
    @click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
    @no_temporal_option
    def retention_run(dry_run: bool, as_of: dt.date | None, as_json: bool,
                      no_temporal: bool) -> None:
        """Run the retention job once, now (the daily Schedule runs the same code)."""
        result = _run_with_database(lambda activities: activities.run(
            RetentionRunInput(as_of=as_of, dry_run=dry_run)), no_temporal)
        if as_json:
            click.echo(result.model_dump_json(indent=2))
            return
        for line in _summary(result):
            click.echo(line)

    @retention.command("schedule")
    def retention_schedule() -> None:
        """Create the daily Schedule `complaints-retention` (the worker does this at start)."""
        from complaints.staff import client_from_settings, run_async

        @run_async
        async def make() -> bool:
            return await ensure_schedule(await client_from_settings(),
                                         Settings().temporal_task_queue)

        created = make()
        click.echo(f"schedule {SCHEDULE_ID}: " + ("created, daily at "
                                                  f"{SCHEDULE_HOUR:02d}:00 London time"
                                                  if created else "exists already"))

    @cli.command("erase")
    @click.option("--reference", required=True, help="The case to erase.")
    @click.option("--reason", required=True,
                  help="How and when the resident asked (for the record; no personal data).")
    @click.option("--by", required=True, help="Your staff id (recorded).")
    @click.option("--json", "as_json", is_flag=True, help="Print what was erased as JSON.")
    @no_temporal_option
    def erase(reference: str, reason: str, by: str, as_json: bool, no_temporal: bool) -> None:
        """Erase one case's personal data at the resident's request, where the law allows.

        Refused while the case is open, with the Ombudsman, under an Ombudsman order not
        complied with, or while its workflow still runs (366 days after it ended): the
        data is needed for the complaint's defence until then.
        """
        from activities.retention import ErasureRefused

        try:
            request = ErasureRequestInput(
                reference=check_reference(reference.strip()), by=check_staff_id(by),
                note=check_text(reason, "--reason") or "")
        except CaseFileError as exc:
            raise click.ClickException(str(exc)) from None
        try:
            done = _run_with_database(lambda activities: activities.erase_on_request(request),
                                      no_temporal)
        except ErasureRefused as exc:
            raise click.ClickException(f"refused: {exc}") from None
        if as_json:
            click.echo(done.model_dump_json(indent=2))
            return
        click.echo(f"{done.reference}: erased ({_what(done)})")


def _run_with_database(work: Callable[[Any], Any], no_temporal: bool) -> Any:
    """Run ``work(activities)`` on the settings' database, folders and Temporal client."""
    from complaints.casefiles_cli import open_for_command
    from complaints.db import session_factory
    from complaints.staff import settle_sdk_threads

    settings = Settings()
    engine = open_for_command(settings.effective_database_url())

    async def go() -> Any:
        client = await _client(no_temporal)
        return await work(activities_for(settings, session_factory(engine), client))

    try:
        return asyncio.run(go())
    finally:
        engine.dispose()
        if not no_temporal:
            settle_sdk_threads()

