"""Emails sent exactly once: the claim-and-marker protocol of letters and staff notices.

SMTP has no idempotency key, and a server commits a message the moment it has received
the final ``.`` of DATA, before the client hears ``250`` (RFC 1047). So an email is:

1. **claimed** before it is sent: its delivery row is written with status ``sending``;
2. handed to the SMTP server, and the moment its final ``.`` has been written a marker
   file is left (``handed_over_marker``: one small file per email in flight, named by a
   hash, no address on disk);
3. **marked** ``sent`` when the server accepts it, and the marker removed.

So a retry knows how far an attempt that died got: no claim, or a claim without a marker
-- the server never had the message, send it (``resent``); a marker -- the server has it
all and commits it on that ``.``, record it (``unconfirmed``) without sending a second
copy. The same holds when the connection drops after the ``.``. A refusal (``4xx``,
``5xx``) or a refused connection releases the claim: nothing was delivered and the retry
sends normally; any other error after the ``.`` keeps it. A cancellation raised into the
activity's thread waits until the email is recorded. Recording an accepted email retries
through a database outage, and accepted emails are remembered in the worker process, so
that an outage right after the acceptance never sends an email twice.

What is left (see RELIABILITY.md): a crash in the microseconds between writing the ``.``
and the marker (a duplicate, same Message-ID), a server that fails after receiving the
``.`` without committing (a lost email, recorded ``unconfirmed``), and a retry on another
machine than the one holding the marker (a duplicate).

:class:`OnceEmailer` runs the protocol over any table with a key column (the letter id, the
notification id) and ``channel``, ``recipient``, ``status`` and ``delivered_at``:
``DeliveryRow`` for letters, ``NotificationDeliveryRow`` for staff notifications.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import smtplib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session, SQLModel, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeats import heartbeat
from activities.mail import DeliveryUncertain, Mailer
from complaints.files import PRIVATE_FILE, make_private_dir

__all__ = ["DELIVERED", "HANDED_OVER_MARKERS", "RECORD_RETRY_SECONDS", "RESENT", "SENDING",
           "SENT", "SMTP", "UNCONFIRMED", "OnceEmailer", "handed_over_marker",
           "retry_write"]

log = structlog.get_logger(__name__)

#: The delivery channel name of an email, as stored in the delivery rows.
SMTP = "smtp"
#: Delivery status: claimed, the message is being handed to the SMTP server.
SENDING = "sending"
#: Delivery status: delivered.
SENT = "sent"
#: Delivery status: delivered by a retry after an attempt that died before handing the
#: message over (so the server never had it, bar a microsecond window).
RESENT = "resent"
#: Delivery status: handed over in full but the server's answer was never seen (the
#: attempt died or the connection dropped after the final "."); taken as delivered, as
#: servers commit on that ".", and not sent again.
UNCONFIRMED = "unconfirmed"
#: The statuses that mean "delivered: do not send again".
DELIVERED = (SENT, RESENT, UNCONFIRMED)
#: The sub-folder (of the outbox) of handed-over markers (see ``handed_over_marker``).
HANDED_OVER_MARKERS = ".smtp-handed-over"
#: How long recording an accepted email may keep retrying through a database outage, at
#: most (never past the attempt's own start-to-close timeout).
RECORD_RETRY_SECONDS = 90.0


def handed_over_marker(outbox_dir: Path, key: str, recipient: str) -> Path:
    """Return the marker file that says "this email was handed over to the SMTP server".

    Written the moment the final ``.`` of the message has been sent (before the server's
    answer is read) and removed once the delivery is recorded in the database. A retry
    after a crash in between finds it and records the email instead of sending a second
    copy: the server has the whole message and commits it on that ``.`` (RFC 1047).
    One small file per email in flight, in ``<outbox>/.smtp-handed-over/``, named by a
    hash (no email address on disk). It lives on the worker's disk, so a retry on another
    machine does not see it (and sends again: a duplicate with the same Message-ID).

    Args:
        outbox_dir: The outbox folder.
        key: What is emailed: a letter id (a staff notification's is namespaced by
            ``OnceEmailer`` so that the two never share a marker).
        recipient: The email address.

    Returns:
        The marker's path.

    """
    digest = hashlib.sha256(f"{key}\0{recipient.casefold()}".encode()).hexdigest()
    return outbox_dir / HANDED_OVER_MARKERS / digest


def _seconds_left(budget: float) -> float:
    """Seconds this attempt may still spend: ``budget``, capped by its start-to-close."""
    if activity.in_activity():
        info = activity.info()
        if info.start_to_close_timeout and info.started_time:
            ends = info.started_time + info.start_to_close_timeout
            margin = min(10.0, info.start_to_close_timeout.total_seconds() / 4)
            budget = min(budget, (ends - dt.datetime.now(dt.UTC)).total_seconds() - margin)
    return budget


def retry_write(write: Callable[[], None], what: str, budget: float) -> None:
    """Run a database write, retrying through an outage for up to ``budget`` seconds.

    Used for the writes that record something already done outside (an email the server
    accepted): failing the activity would make Temporal redo the outside effect.

    Args:
        write: The write; it opens and commits its own session.
        what: What it records, for the log.
        budget: The most seconds to keep trying (capped by the attempt's timeout).

    Raises:
        sqlalchemy.exc.DBAPIError: The last failure, once the time is up.

    """
    ends = time.monotonic() + _seconds_left(budget)
    delay = 0.25
    while True:
        try:
            write()
            return
        except IntegrityError:
            raise
        except DBAPIError as exc:
            if time.monotonic() + delay > ends:
                raise
            log.warning("record_retrying", what=what, error=type(exc.orig).__name__,
                        retry_in=delay)
            heartbeat(what)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def _shielded() -> AbstractContextManager[None]:
    """Hold off a cancellation raised into this activity's thread until the block ends."""
    return activity.shield_thread_cancel_exception() if activity.in_activity() \
        else nullcontext()


class OnceEmailer:
    """Send each (key, recipient) email once, through crashes, refusals and outages.

    One instance per activity class, shared by its threads: it holds the process-local
    memory of emails being sent now and of emails accepted whose record is still to be
    written (a retry in this process records those instead of sending again).
    """

    def __init__(self, session_factory: Callable[[], Session], row_type: type[SQLModel],
                 key_column: str, marker_dir: Path | None, *, what: str,
                 marker_namespace: str = "") -> None:
        """Configure the table, the marker folder and the names used in logs.

        Args:
            session_factory: Opens a database session.
            row_type: The delivery table: ``key_column``, ``channel``, ``recipient``,
                ``status`` and ``delivered_at``, unique on the first three.
            key_column: The column naming what is emailed (``letter_id``...).
            marker_dir: The folder whose ``.smtp-handed-over/`` holds the markers (the
                outbox); None for no markers (a retry after a crash mid-send then always
                sends again, recorded ``resent``).
            what: The log event prefix (``letter`` logs ``letter_email_...``).
            marker_namespace: Put before the key in the marker's hash, so that two kinds
                of email with equal keys never share a marker.

        """
        self.session_factory = session_factory
        self.row_type: Any = row_type
        self.key_column = key_column
        self.marker_dir = marker_dir
        self.what = what
        self.marker_namespace = marker_namespace
        self._lock = threading.Lock()
        self._in_flight: set[tuple[str, str]] = set()
        self._accepted: dict[tuple[str, str], str] = {}

    def send(self, mailer: Mailer, key: str, recipient: str, *, subject: str, text: str,
             html: str | None, message_id: str) -> str | None:
        """Email ``recipient`` about ``key`` unless that email was delivered before.

        Args:
            mailer: Sends the message.
            key: What is emailed (a letter id, a notification id).
            recipient: The email address.
            subject: The subject line.
            text: The plain-text body.
            html: An HTML alternative, if any.
            message_id: The Message-ID, derived from ``key``.

        Returns:
            None when it had been delivered already; otherwise the status recorded now:
            ``sent``, ``resent`` (an earlier attempt claimed it and never got the message
            to the server) or ``unconfirmed`` (handed over, the answer never seen).

        Raises:
            ApplicationError: ``DeliveryInProgress``, if another attempt in this process
                is sending the same email now (retried by Temporal).
            OSError: If the server refused the message or could not be reached (the
                claim is released; nothing was delivered).

        """
        item = (key, recipient)
        marker = self._marker(key, recipient)
        # A cancellation of a threaded activity is raised inside its thread, at whatever
        # line it is running: between the server's commit and the record it would drop the
        # claim, and the retry would send a second copy. It waits for the record instead.
        with _shielded(), self._sending(item):
            status = self._claim(key, recipient)
            if status is None:
                self._drop(marker)
                return None
            with self._lock:
                remembered = self._accepted.get(item)
            if remembered is not None:
                status = remembered  # accepted here before; only the record failed
                log.info(f"{self.what}_email_accepted_earlier_recording")
            elif status == RESENT and marker is not None and marker.exists():
                # An attempt died after handing the whole message over: the server has it
                # (it commits on the final "."); sending again would duplicate it.
                status = UNCONFIRMED
                log.warning(f"{self.what}_email_handed_over_before_a_crash_not_resent")
            else:
                handed_over: list[bool] = []

                def note_handed_over() -> None:
                    handed_over.append(True)
                    self._note_handed_over(marker, key)

                try:
                    mailer.send(to=recipient, subject=subject, text=text, html=html,
                                message_id=message_id, on_handed_over=note_handed_over)
                except DeliveryUncertain:
                    status = UNCONFIRMED
                    log.warning(f"{self.what}_email_answer_lost_not_resent")
                except Exception as exc:
                    # Only a refusal (SMTP's answer) or a failure before the whole message
                    # went certainly delivered nothing. Anything else after the hand-over
                    # keeps the claim and the marker: the retry records, never resends.
                    if handed_over and not isinstance(exc, smtplib.SMTPResponseException):
                        log.warning(f"{self.what}_email_failed_after_hand_over_kept",
                                    error=type(exc).__name__)
                        raise
                    self._drop(marker)
                    self._release(key, recipient)
                    raise
                with self._lock:
                    self._accepted[item] = status
            self._mark(key, recipient, status)
            self._drop(marker)
            with self._lock:
                self._accepted.pop(item, None)
            return status

    def _marker(self, key: str, recipient: str) -> Path | None:
        if self.marker_dir is None:
            return None
        return handed_over_marker(self.marker_dir, self.marker_namespace + key, recipient)

    @staticmethod
    def _drop(marker: Path | None) -> None:
        if marker is not None:
            marker.unlink(missing_ok=True)

    def _where(self, key: str, recipient: str) -> Any:
        table = self.row_type
        return select(table).where(getattr(table, self.key_column) == key,
                                   table.channel == SMTP, table.recipient == recipient)

    def _claim(self, key: str, recipient: str) -> str | None:
        """Claim the email to ``recipient`` before sending it.

        Returns:
            None when it was delivered already; ``SENT`` for a first send (the claim is
            written now); ``RESENT`` when an earlier attempt claimed it and never
            recorded the outcome (it died mid-send or lost the server's answer).

        """
        for _ in range(2):
            with self.session_factory() as session:
                row = session.exec(self._where(key, recipient)).first()
                if row is not None:
                    if row.status in DELIVERED:
                        return None
                    log.warning(f"{self.what}_email_earlier_attempt_interrupted",
                                claimed_at=row.delivered_at.isoformat())
                    return RESENT
                session.add(self.row_type(**{self.key_column: key}, channel=SMTP,
                                          recipient=recipient, status=SENDING,
                                          delivered_at=dt.datetime.now(dt.UTC)))
                try:
                    session.commit()
                    return SENT
                except IntegrityError:
                    session.rollback()  # claimed concurrently: read it again
        raise RuntimeError(f"could not claim the {self.what} email {key!r}")

    def _release(self, key: str, recipient: str) -> None:
        """Drop a claim after a send that certainly failed (best effort)."""
        try:
            with self.session_factory() as session:
                row = session.exec(self._where(key, recipient)).first()
                if row is not None and row.status == SENDING:
                    session.delete(row)
                    session.commit()
        except DBAPIError:
            # The claim stays; the retry sends again and records "resent": safe.
            log.warning(f"{self.what}_email_claim_not_released")

    def _mark(self, key: str, recipient: str, status: str) -> None:
        """Record an accepted email (``SENT``, ``RESENT``...), through a database outage."""

        def write() -> None:
            with self.session_factory() as session:
                row = session.exec(self._where(key, recipient)).first()
                if row is None:
                    row = self.row_type(**{self.key_column: key}, channel=SMTP,
                                        recipient=recipient)
                elif row.status in DELIVERED:
                    return
                row.status = status
                row.delivered_at = dt.datetime.now(dt.UTC)
                session.add(row)
                session.commit()

        retry_write(write, f"{self.what}_email_delivery", RECORD_RETRY_SECONDS)

    @contextmanager
    def _sending(self, item: tuple[str, str]) -> Iterator[None]:
        """Hold ``item`` as being sent by this process; refuse a concurrent attempt."""
        with self._lock:
            if item in self._in_flight:
                raise ApplicationError("another attempt is sending this email now",
                                       type="DeliveryInProgress")
            self._in_flight.add(item)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight.discard(item)

    def _note_handed_over(self, marker: Path | None, key: str) -> None:
        """Leave the handed-over marker: the server has the whole message from now on."""
        if marker is None:
            return
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        try:
            try:
                fd = os.open(marker, flags, PRIVATE_FILE)
            except FileNotFoundError:
                make_private_dir(marker.parent)
                fd = os.open(marker, flags, PRIVATE_FILE)
            try:
                os.write(fd, key.encode("utf-8") + b"\n")
            finally:
                os.close(fd)
        except OSError:
            # Without it a retry after a crash would send again: a duplicate, not a loss.
            log.warning(f"{self.what}_email_marker_not_written")
