"""Telling staff: reminders, breach notices and refused actions, each at most once.

A notification is logged as a structured event (for log-based alerting), emailed to the
member of staff when a mailer is configured and POSTed as JSON to a webhook (a chat
channel, an alerting tool) when one is configured. Its row in ``notifications`` is written
only after every external send succeeded: an existing row means "done", so a repeat does
nothing, and a failed send raises so that Temporal retries the whole notification.

The email goes out exactly once, as a letter does (``activities.email_once``): it is
claimed in ``notification_deliveries`` before it is sent, a marker is left in the outbox
the moment the server has the whole message, and the claim is marked done on the
server's answer. A retry after a crash between sending and recording finds the claim and
the marker and does not send it again; one after a crash before the message was handed
over sends it (recorded ``resent``). The Message-ID derives from the notification id.

The webhook is remembered in the worker process once it succeeded, so a retry there does
not POST again; a retry on another worker after a crash may, with the same
``Idempotency-Key`` header so that the receiver can drop it. The ``notifications`` row is
written through a database outage (retrying, for up to the attempt's timeout) rather than
failing after the sends.

Notifications hold no personal data: ``NotifyInput.message`` is written without any (the
workflow's job), and nothing else about the resident is sent or logged.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from temporalio import activity

from activities.email_once import RECORD_RETRY_SECONDS, OnceEmailer, retry_write
from activities.mail import Mailer, message_id_for
from models.messages import NotifyInput
from models.tables import NotificationDeliveryRow, NotificationRow

__all__ = ["WEBHOOK_TIMEOUT_SECONDS", "NotificationActivities"]

log = structlog.get_logger(__name__)

#: How long a webhook may take to answer before the attempt fails (and is retried).
WEBHOOK_TIMEOUT_SECONDS = 5.0


class NotificationActivities:
    """Send staff notifications over the log, email and a webhook."""

    def __init__(self, session_factory: Callable[[], Session], mailer: Mailer | None = None,
                 webhook_url: str | None = None,
                 staff_email_domain: str = "landlord.example", *,
                 outbox_dir: Path | None = None) -> None:
        """Configure the channels.

        Args:
            session_factory: Opens a database session.
            mailer: Emails ``<recipient_id>@<staff_email_domain>``; None for no email.
            webhook_url: Receives each notification as a JSON POST; None for none.
            staff_email_domain: The domain of staff email addresses.
            outbox_dir: The letters' outbox, whose ``.smtp-handed-over/`` holds the
                handed-over markers of emails in flight. Without it a retry after a crash
                in mid-send cannot tell that the server had the email, and sends it again.

        """
        if webhook_url is not None and not webhook_url.startswith(("http://", "https://")):
            raise ValueError("webhook_url must be an http:// or https:// URL")
        self.session_factory = session_factory
        self.mailer = mailer
        self.webhook_url = webhook_url
        self.staff_email_domain = staff_email_domain
        # Namespaced markers: a notification id never shares a marker with a letter id.
        self._email = OnceEmailer(session_factory, NotificationDeliveryRow, "notification_id",
                                  outbox_dir, what="notification",
                                  marker_namespace="notification\0")
        # Process-local: the notifications whose webhook POST succeeded, not yet recorded.
        self._lock = threading.Lock()
        self._posted: set[str] = set()

    @activity.defn
    def notify(self, input: NotifyInput) -> None:
        """Tell a member of staff, once per ``notification_id``.

        Args:
            input: The notification; its ``message`` holds no personal data.

        Raises:
            OSError: If the email or the webhook failed (``urllib.error.URLError`` and
                ``smtplib.SMTPException`` are ``OSError``); retried by Temporal. The
                notification is recorded done only once every channel succeeded; an email
                that went is recorded at once and not sent again by the retry.
            ApplicationError: ``DeliveryInProgress``, if another attempt in this worker
                is sending the same email now (retried by Temporal).

        """
        with structlog.contextvars.bound_contextvars(reference=input.reference,
                                                     notification_id=input.notification_id):
            with self.session_factory() as session:
                if session.get(NotificationRow, input.notification_id) is not None:
                    log.info("notification_already_sent")
                    return
            log.info("staff_notified", kind=input.kind.value, deadline_key=input.deadline_key,
                     due=input.due.isoformat() if input.due else None,
                     recipient_role=input.recipient_role)
            if self.mailer is not None:
                self._email.send(
                    self.mailer, input.notification_id,
                    f"{input.recipient_id}@{self.staff_email_domain}",
                    subject=self._subject(input), text=input.message + "\n", html=None,
                    message_id=message_id_for(input.notification_id))
            with self._lock:
                posted = input.notification_id in self._posted
            if self.webhook_url is not None and not posted:
                self._post(self.webhook_url, self._payload(input), input.notification_id)
                with self._lock:
                    self._posted.add(input.notification_id)
            retry_write(lambda: self._record(input), "notification", RECORD_RETRY_SECONDS)
            with self._lock:
                self._posted.discard(input.notification_id)

    @staticmethod
    def _subject(input: NotifyInput) -> str:
        """Write the email subject: the kind, the complaint reference and any due date."""
        subject = f"[{input.kind.value}] Complaint {input.reference}"
        if input.due is not None:
            subject += f" (due {input.due.isoformat()})"
        return subject

    @staticmethod
    def _payload(input: NotifyInput) -> dict[str, Any]:
        return {
            "notification_id": input.notification_id,
            "reference": input.reference,
            "kind": input.kind.value,
            "recipient_role": input.recipient_role,
            "recipient_id": input.recipient_id,
            "deadline_key": input.deadline_key,
            "due": input.due.isoformat() if input.due else None,
            "message": input.message,
        }

    @staticmethod
    def _post(url: str, payload: dict[str, Any], idempotency_key: str) -> None:
        """POST ``payload`` as JSON; raise unless the answer is 2xx."""
        request = urllib.request.Request(
            url, data=json.dumps(payload).encode("utf-8"), method="POST",
            headers={"Content-Type": "application/json", "Idempotency-Key": idempotency_key,
                     "User-Agent": "complaints-engine"})
        # A non-2xx answer raises urllib.error.HTTPError (an OSError).
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
            response.read()

    def _record(self, input: NotifyInput) -> None:
        with self.session_factory() as session:
            session.add(NotificationRow(
                notification_id=input.notification_id, reference=input.reference,
                kind=input.kind.value, recipient_role=input.recipient_role,
                recipient_id=input.recipient_id, deadline_key=input.deadline_key,
                due=input.due, message=input.message, created_at=dt.datetime.now(dt.UTC)))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()  # a concurrent attempt recorded it: same outcome
