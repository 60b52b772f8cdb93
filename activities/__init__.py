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
from typing import Any

from activities.calendar import CalendarActivities
from activities.letters import LetterActivities
from activities.mail import Mailer, SmtpMailer
from activities.notifications import NotificationActivities
from activities.policy import PolicyActivities
from activities.records import RecordActivities
from complaints.settings import Settings

__all__ = [
    "CalendarActivities",
    "LetterActivities",
    "Mailer",
    "NotificationActivities",
    "PolicyActivities",
    "RecordActivities",
    "SmtpMailer",
    "build_activities",
]


def build_activities(settings: Settings) -> list[Callable[..., Any]]:
    """Build every activity the worker registers, wired to the settings' surroundings.

    Brings the database to the newest schema first (Alembic migrations).

    Args:
        settings: The worker's settings (database URL, outbox folder, SMTP, webhook).

    Returns:
        The bound activity methods: ``load_policy``, ``plan_deadline``, ``send_letter``,
        ``notify``, ``record_intake``, ``record_snapshot``, ``record_audit`` and
        ``record_ombudsman_details``.

    """
    from complaints.db import ensure_schema, make_engine, session_factory

    url = settings.effective_database_url()
    ensure_schema(url)
    sessions = session_factory(make_engine(url))
    mailer = Mailer.from_settings(settings)
    policies = PolicyActivities()
    calendar = CalendarActivities()
    letters = LetterActivities(sessions, settings.effective_outbox(), mailer)
    notifications = NotificationActivities(sessions, mailer, settings.webhook_url,
                                           settings.staff_email_domain)
    records = RecordActivities(sessions)
    return [
        policies.load_policy,
        calendar.plan_deadline,
        letters.send_letter,
        notifications.notify,
        records.record_intake,
        records.record_snapshot,
        records.record_audit,
        records.record_ombudsman_details,
    ]
