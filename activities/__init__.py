"""Temporal activities: every side effect of a complaint case.

Each group is a class that receives its dependencies (a database session factory, the
outbox folder, a mailer, a webhook URL) in its constructor; its ``@activity.defn`` methods
take one pydantic argument from ``models.messages``. The database work is synchronous, so
the worker must be given an ``activity_executor`` (a thread pool).

Activities log with structlog under the case's reference and never log personal data
(names, addresses, email addresses, the complaint description, letter text).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from activities.calendar import CalendarActivities
from activities.casework import CaseworkActivities
from activities.letters import LetterActivities
from activities.mail import Mailer, SmtpMailer
from activities.notifications import NotificationActivities
from activities.policy import PolicyActivities
from activities.records import RecordActivities
from activities.retention import RetentionActivities
from complaints.settings import Settings

if TYPE_CHECKING:
    from temporalio.client import Client

    from activities.recording_processes import RecordingProcesses

__all__ = [
    "CalendarActivities",
    "CaseworkActivities",
    "LetterActivities",
    "Mailer",
    "NotificationActivities",
    "PolicyActivities",
    "RecordActivities",
    "RetentionActivities",
    "SmtpMailer",
    "build_activities",
    "build_casework",
]


def build_casework(settings: Settings, policy_dir: Path | None = None) -> CaseworkActivities:
    """Build the casework activities alone (a recording helper's; see ``build_activities``).

    The database must be at the newest schema already (the worker brought it there).

    Args:
        settings: The worker's settings.
        policy_dir: A folder of landlord policies taking precedence over those shipped.

    Returns:
        ``open_case``, ``load_calendar`` and ``record_case_event``'s class, wired up.

    """
    return _build(settings, policy_dir)[0]


def _build(settings: Settings, policy_dir: Path | None
           ) -> tuple[CaseworkActivities, PolicyActivities, LetterActivities,
                      NotificationActivities, RecordActivities]:
    from complaints.db import make_engine, session_factory

    url = settings.effective_database_url()
    sessions = session_factory(make_engine(url))
    mailer = Mailer.from_settings(settings)
    policies = PolicyActivities(policy_dir)
    letters = LetterActivities(sessions, settings.effective_outbox(), mailer)
    notifications = NotificationActivities(sessions, mailer, settings.webhook_url,
                                           settings.staff_email_domain,
                                           outbox_dir=settings.effective_outbox())
    records = RecordActivities(sessions)
    # On SQLite, letters are rendered from a read that takes no write lock (see
    # CaseworkActivities): the worker's writers share one lock, the reader none.
    reader = session_factory(make_engine(url, read_only=True)) \
        if url.startswith("sqlite") else None
    casework = CaseworkActivities(sessions, policies, records, letters, notifications,
                                  integration_webhook_url=settings.integration_webhook_url,
                                  read_sessions=reader)
    return casework, policies, letters, notifications, records


def build_activities(settings: Settings, policy_dir: Path | None = None, *,
                     client: Client | None = None,
                     recording: RecordingProcesses | None = None) -> list[Callable[..., Any]]:
    """Build every activity the worker registers, wired to the settings' surroundings.

    Brings the database to the newest schema first (Alembic migrations).

    Args:
        settings: The worker's settings (database URL, outbox folder, SMTP, webhook).
        policy_dir: A folder of landlord policies taking precedence over those shipped.
        client: The worker's Temporal client, with which the retention job deletes
            finished workflows of erased cases (None: left to the namespace retention).
        recording: Helper processes to run ``open_case`` and ``record_case_event`` in
            (None: in the worker's threads).

    Returns:
        The bound activity methods: ``open_case``, ``load_calendar``,
        ``record_case_event`` and ``notify`` (the ``Complaint`` workflow's), and
        ``load_policy``, ``plan_deadline``, ``send_letter``, ``record_intake``,
        ``record_snapshot``, ``record_audit`` and ``record_ombudsman_details`` (kept for
        cases of the first workflow type), and ``erase_expired`` (the retention job's).

    """
    from complaints.db import ensure_schema

    ensure_schema(settings.effective_database_url())
    casework, policies, letters, notifications, records = _build(settings, policy_dir)
    calendar = CalendarActivities()
    retention = RetentionActivities(records.session_factory, settings.effective_outbox(),
                                    settings.data_dir / "documents", client=client,
                                    policy_dir=policy_dir,
                                    service_request_years=settings.service_request_retention_years)
    return [
        # The ``Complaint`` workflow's: open a case, record each event (in the helper
        # processes when given: see ``activities.recording_processes``).
        (recording or casework).open_case,
        casework.load_calendar,
        (recording or casework).record_case_event,
        # The first workflow type's (``ComplaintWorkflow``), kept for the cases it runs.
        policies.load_policy,
        calendar.plan_deadline,
        letters.send_letter,
        notifications.notify,
        records.record_intake,
        records.record_snapshot,
        records.record_audit,
        records.record_ombudsman_details,
        # The ``Retention`` workflow's (the daily Schedule).
        retention.erase_expired,
    ]
