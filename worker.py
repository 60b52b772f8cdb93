"""Run a complaints worker: ``python worker.py`` (settings from the environment).

The worker polls the complaints task queue, runs :class:`ComplaintWorkflow` and the
activities that send letters, notify staff and keep the records. With
``INTEGRATION_WEBHOOK_URL`` set it also runs the webhook dispatcher
(``complaints.webhooks``) as a background task of the same event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import structlog
from temporalio.client import Client, TLSConfig
from temporalio.worker import Worker

from complaints.logs import configure_logging
from complaints.settings import Settings
from workflows.complaint import ComplaintWorkflow
from workflows.complaint_v1 import ComplaintWorkflowV1
from workflows.retention import RetentionWorkflow

if TYPE_CHECKING:
    from complaints.webhooks import WebhookDispatcher

#: Every workflow type a worker runs: new cases, the first type's cases until they end, and
#: the daily retention job.
WORKFLOWS: list[type] = [ComplaintWorkflow, ComplaintWorkflowV1, RetentionWorkflow]

log = structlog.get_logger("worker")
#: The worker's exit status when its database is unreachable, lost or replaced.
DATABASE_PROBLEM_EXIT = 3
#: The worker's exit status when a setting cannot be used (the log line says which).
SETTINGS_PROBLEM_EXIT = 2


async def connect(settings: Settings) -> Client:
    """Connect to Temporal with the engine's encrypting converter and optional TLS/API key.

    TLS is on when ``TEMPORAL_TLS`` is, or when any of ``TEMPORAL_TLS_CA``,
    ``TEMPORAL_TLS_SERVER_NAME`` or the client certificate is set: the server's certificate
    is checked against that CA (else the system's) and that name (else the address's
    host), and the client certificate, for a frontend that requires mTLS, is presented.
    The settings refuse a certificate without its key (and the reverse), so either both
    are passed or neither.

    Raises:
        KeyProblem: The payload keys cannot be used (the message says how to fix it).

    """
    from complaints.codec import data_converter, keys_for

    converter = data_converter(keys_for(settings))
    tls: bool | TLSConfig = settings.temporal_tls
    ca, cert, key = settings.temporal_tls_ca, settings.temporal_tls_cert, settings.temporal_tls_key
    if ca is not None or cert is not None or settings.temporal_tls_server_name:
        tls = TLSConfig(server_root_ca_cert=ca.read_bytes() if ca is not None else None,
                        domain=settings.temporal_tls_server_name or None,
                        client_cert=cert.read_bytes() if cert is not None else None,
                        client_private_key=key.read_bytes() if key is not None else None)
    return await Client.connect(
        settings.temporal_address, namespace=settings.temporal_namespace,
        data_converter=converter, tls=tls, api_key=settings.temporal_api_key)


def build_worker(client: Client, task_queue: str, activities: Sequence[Callable[..., Any]],
                 executor: concurrent.futures.Executor) -> Worker:
    """A worker for complaint workflows and the given activities."""
    from complaints.logs import withhold_payloads_from_sdk_logs

    withhold_payloads_from_sdk_logs()
    return Worker(client, task_queue=task_queue, workflows=WORKFLOWS,
                  activities=list(activities), activity_executor=executor,
                  max_concurrent_activities=16)


async def run_worker(settings: Settings, stop: asyncio.Event | None = None,
                     checked: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set (or SIGINT/SIGTERM when none is given).

    ``checked`` (if given) is set once the database passed its check at start, so that a
    caller (``complaints dev``) lodges nothing before the check has looked.

    The database is checked first and then every ``DATABASE_CHECK_SECONDS``
    (``complaints.dbcheck``): a database that is unreachable, lost or replaced stops the
    worker rather than letting its activities write records nobody will see.

    Raises:
        DatabaseProblem: The database failed a check (at start, or while running: then
            the worker has stopped and the problem is logged already).
        WebhookSettingsError: ``INTEGRATION_WEBHOOK_URL`` is set without a usable secret
            (checked before anything starts).

    """
    from complaints.dbcheck import DatabaseProblem
    from complaints.files import secure_data_files
    from complaints.webhooks import dispatcher_from_settings

    # Residents' details: the data folder and outbox are the worker user's alone (any
    # left readable by an earlier version are tightened now, and logged).
    secure_data_files(settings.data_dir, outbox=settings.effective_outbox())
    webhooks = dispatcher_from_settings(settings)  # refuses a URL without a secret, first
    try:
        problem = await _serve(settings, stop, webhooks[0] if webhooks else None, checked)
    finally:
        if webhooks is not None:
            await webhooks[1]()  # stops sending, closes its HTTP client and engine
    if problem is not None:
        raise DatabaseProblem(problem, logged=True)


async def _serve(settings: Settings, stop: asyncio.Event | None,
                 webhooks: WebhookDispatcher | None,
                 checked: asyncio.Event | None = None) -> str | None:
    """Run the worker (and the webhook dispatcher beside it) until stopped.

    Returns:
        The database problem that stopped it, or None when ``stop`` did.

    """
    from activities import build_activities
    from activities.recording_processes import RecordingProcesses
    from complaints.dbcheck import check_at_start, watch_database
    from complaints.retention import ensure_schedule_at_start

    client = await connect(settings)
    stop = stop or _stop_on_signals()
    watch = await check_at_start(settings, client)
    await ensure_schedule_at_start(client, settings.temporal_task_queue)  # daily erasure job
    if checked is not None:
        checked.set()
    problem: str | None = None
    recording = RecordingProcesses(settings, settings.recording_processes) \
        if settings.recording_processes else None
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as executor, \
            recording or contextlib.nullcontext():
        worker = build_worker(client, settings.temporal_task_queue,
                              build_activities(settings, client=client, recording=recording),
                              executor)
        log.info("worker started", task_queue=settings.temporal_task_queue,
                 address=settings.temporal_address, namespace=settings.temporal_namespace)
        async with worker:
            if webhooks is not None:
                webhooks.start()  # a background task: it never blocks the worker
            stopped = asyncio.ensure_future(stop.wait())
            checks = asyncio.ensure_future(watch_database(
                watch, settings.database_check_seconds))
            try:
                await asyncio.wait({stopped, checks}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (stopped, checks):
                    task.cancel()
                if webhooks is not None:
                    await webhooks.stop()  # stop sending before the worker drains
            if checks.done() and not checks.cancelled():
                problem = checks.result()
                # Said at once: finishing the activities in flight may take a while.
                log.error("database_lost", error=problem)
        log.info("worker stopped")
    return problem


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def main() -> None:
    """Entry point: configure logging from settings and run the worker.

    A database problem is one error line and exit status 3 (the cause and the fix); a
    setting that cannot be used (one that does not parse, a client certificate without its
    key, unusable payload keys, a webhook URL without its secret) is one and exit status 2.
    """
    from pydantic import ValidationError

    from complaints.codec import KeyProblem
    from complaints.dbcheck import DatabaseProblem
    from complaints.files import private_umask
    from complaints.serving import mail_warnings
    from complaints.webhooks import WebhookSettingsError

    try:
        settings = Settings()
    except ValidationError as exc:
        configure_logging()  # the settings that choose the log format are what failed
        # Each setting and what is wrong with it, as the CLI says it; never the value.
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
                             for e in exc.errors())
        log.error("settings_refused", error=problems)
        sys.exit(SETTINGS_PROBLEM_EXIT)
    configure_logging(json=settings.log_json, level=settings.log_level)
    for warning in mail_warnings(settings):
        log.warning("settings_warning", warning=warning)
    try:
        with private_umask():  # whatever else the worker creates is private too
            asyncio.run(run_worker(settings))
    except DatabaseProblem as exc:
        if not exc.logged:
            log.error("database_refused", error=exc.message)
        sys.exit(DATABASE_PROBLEM_EXIT)
    except WebhookSettingsError as exc:
        log.error("webhook_settings_refused", error=str(exc))
        sys.exit(SETTINGS_PROBLEM_EXIT)
    except KeyProblem as exc:
        log.error("payload_keys_refused", error=str(exc))
        sys.exit(SETTINGS_PROBLEM_EXIT)


if __name__ == "__main__":
    main()
