"""Run a complaints worker: ``python worker.py`` (settings from the environment).

The worker polls the complaints task queue, runs :class:`ComplaintWorkflow` and the
activities that send letters, notify staff and keep the records.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from temporalio.client import Client, TLSConfig
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from complaints.logs import configure_logging
from complaints.settings import Settings
from workflows.complaint import ComplaintWorkflow

log = structlog.get_logger("worker")


async def connect(settings: Settings) -> Client:
    """Connect to Temporal with the pydantic data converter and optional TLS/API key."""
    tls: bool | TLSConfig = settings.temporal_tls
    if settings.temporal_tls_cert and settings.temporal_tls_key:
        tls = TLSConfig(client_cert=settings.temporal_tls_cert.read_bytes(),
                        client_private_key=settings.temporal_tls_key.read_bytes())
    return await Client.connect(
        settings.temporal_address, namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter, tls=tls, api_key=settings.temporal_api_key)


def build_worker(client: Client, task_queue: str, activities: Sequence[Callable[..., Any]],
                 executor: concurrent.futures.Executor) -> Worker:
    """A worker for complaint workflows and the given activities."""
    return Worker(client, task_queue=task_queue, workflows=[ComplaintWorkflow],
                  activities=list(activities), activity_executor=executor,
                  max_concurrent_activities=16)


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set (or SIGINT/SIGTERM when none is given)."""
    from activities import build_activities

    client = await connect(settings)
    stop = stop or _stop_on_signals()
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as executor:
        worker = build_worker(client, settings.temporal_task_queue, build_activities(settings),
                              executor)
        log.info("worker started", task_queue=settings.temporal_task_queue,
                 address=settings.temporal_address, namespace=settings.temporal_namespace)
        async with worker:
            await stop.wait()
        log.info("worker stopped")


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def main() -> None:
    """Entry point: configure logging from settings and run the worker."""
    settings = Settings()
    configure_logging(json=settings.log_json, level=settings.log_level)
    asyncio.run(run_worker(settings))


if __name__ == "__main__":
    main()
