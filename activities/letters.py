"""Sending letters to residents: render, store, deliver, each exactly once per letter id.

A letter is rendered from its content model, stored (``LetterRow``: the record of
correspondence, Code 5.12), then delivered over every configured channel: always the
outbox (a ``.txt`` and an ``.html`` file per letter, for printing and posting or for a
document system to pick up) and, when a mailer is configured, an email to every recipient
who has an address. Each delivery is recorded (``DeliveryRow``) and skipped when the
activity runs again, so a retried activity never sends a letter twice.

An email delivery is claimed before it is sent: its row is written with status
``sending``, then the message is handed to the SMTP server, and the moment its final ``.``
has been written a marker file is left in the outbox (``handed_over_marker``); the row is
marked ``sent`` when the server accepts it and the marker removed. So a retry knows how
far an attempt that died got: no claim, or a claim without a marker -- the server never
had the message, send it (``resent``); a marker -- the server has it all and commits it on
that ``.`` (RFC 1047), record it (``unconfirmed``) without sending a second copy. The
same holds when the connection drops after the ``.``. Recording an accepted email retries
through a database outage, and accepted emails are remembered in the worker process, so
that an outage right after the acceptance never sends an email twice. What is left (see
RELIABILITY.md): a crash in the microseconds between writing the ``.`` and the marker
(a duplicate, same Message-ID), a server that fails after receiving the ``.`` without
committing (a lost email, recorded ``unconfirmed``), and a retry on another machine than
the one holding the marker (a duplicate). The outbox files are named by letter id, so
writing them again replaces them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import structlog
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.mail import DeliveryUncertain, Mailer, message_id_for
from complaints.letters import DEFAULT_TEMPLATE_SET, TEMPLATES_DIR, render_letter
from models.letters import RenderedLetter
from models.messages import LetterReceipt, SendLetterInput
from models.tables import DeliveryRow, LetterRow

__all__ = ["DELIVERED", "OUTBOX", "RESENT", "SENDING", "SENT", "SMTP", "UNCONFIRMED",
           "LetterActivities", "handed_over_marker", "outbox_paths"]

log = structlog.get_logger(__name__)

#: Delivery channel names, as stored in ``DeliveryRow.channel``.
OUTBOX = "outbox"
SMTP = "smtp"
#: The recipient recorded for an outbox delivery.
OUTBOX_RECIPIENT = "file"
#: ``DeliveryRow.status``: claimed, the message is being handed to the SMTP server.
SENDING = "sending"
#: ``DeliveryRow.status``: delivered.
SENT = "sent"
#: ``DeliveryRow.status``: delivered by a retry after an attempt that died before handing
#: the message over (so the server never had it, bar a microsecond window).
RESENT = "resent"
#: ``DeliveryRow.status``: handed over in full but the server's answer was never seen (the
#: attempt died or the connection dropped after the final "."); taken as delivered, as
#: servers commit on that ".", and not sent again.
UNCONFIRMED = "unconfirmed"
#: The statuses that mean "delivered: do not send again".
DELIVERED = (SENT, RESENT, UNCONFIRMED)
#: The outbox sub-folder of handed-over markers (see ``handed_over_marker``).
HANDED_OVER_MARKERS = ".smtp-handed-over"
#: How long recording an accepted email may keep retrying through a database outage, at
#: most (never past the attempt's own start-to-close timeout).
RECORD_RETRY_SECONDS = 90.0

_TEMPLATE_SET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]")


def outbox_paths(outbox_dir: Path, reference: str, letter_id: str) -> tuple[Path, Path]:
    """Return where a letter's text and HTML files go in the outbox.

    Args:
        outbox_dir: The outbox folder.
        reference: The complaint reference (one sub-folder per complaint).
        letter_id: The letter id; ``:`` (and anything else unsafe in a file name) becomes
            ``_``.

    Returns:
        ``<outbox>/<reference>/<letter_id>.txt`` and ``.html``.

    """
    stem = _UNSAFE_FILE_CHARS.sub("_", letter_id.replace(":", "_")).lstrip(".") or "letter"
    folder = outbox_dir / _UNSAFE_FILE_CHARS.sub("_", reference)
    return folder / f"{stem}.txt", folder / f"{stem}.html"


def handed_over_marker(outbox_dir: Path, letter_id: str, recipient: str) -> Path:
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
        letter_id: The letter id.
        recipient: The email address.

    Returns:
        The marker's path.

    """
    digest = hashlib.sha256(f"{letter_id}\0{recipient.casefold()}".encode()).hexdigest()
    return outbox_dir / HANDED_OVER_MARKERS / digest


def _write_atomically(path: Path, content: str) -> None:
    """Write ``content`` to ``path`` so that readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _heartbeat(*details: object) -> None:
    """Heartbeat when running as an activity (no-op when called directly)."""
    if activity.in_activity():
        activity.heartbeat(*details)


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
            _heartbeat(what)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


class LetterActivities:
    """Render, store and deliver letters."""

    def __init__(self, session_factory: Callable[[], Session], outbox_dir: Path,
                 mailer: Mailer | None = None) -> None:
        """Configure where letters are stored and how they are delivered.

        Args:
            session_factory: Opens a database session.
            outbox_dir: The folder letters are written to as files.
            mailer: Sends letters by email; None to deliver to the outbox only.

        """
        self.session_factory = session_factory
        self.outbox_dir = Path(outbox_dir)
        self.mailer = mailer
        # Process-local: emails being sent now, and emails the server accepted whose
        # "sent" record is still to be written (a retry here records instead of sending).
        self._lock = threading.Lock()
        self._in_flight: set[tuple[str, str]] = set()
        self._accepted: dict[tuple[str, str], str] = {}

    @activity.defn
    def send_letter(self, input: SendLetterInput) -> LetterReceipt:
        """Render, store and deliver one letter, exactly once per ``letter_id``.

        Running it again with the same ``letter_id`` re-sends nothing that was delivered:
        the stored letter is reused and recorded deliveries are skipped.

        Args:
            input: The letter id, the complaint reference, stage and sequence, the
                landlord's template set (the default set when it has no folder) and the
                letter's content.

        Returns:
            The receipt: the subject, the channels delivered to (``"outbox"``, and
            ``"smtp:<n>"`` for ``n`` email recipients) and the SHA-256 of the text.

        Raises:
            ApplicationError: Non-retryable, of type ``LetterMismatch``, when the letter
                is for another complaint than ``input.reference``.

        """
        with structlog.contextvars.bound_contextvars(reference=input.reference,
                                                     letter_id=input.letter_id):
            if input.letter.reference != input.reference:
                raise ApplicationError(
                    f"letter {input.letter_id!r} is addressed for another complaint",
                    type="LetterMismatch", non_retryable=True)
            rendered = render_letter(input.letter, self._template_set(input.template_set))
            row = self._store(input, rendered)
            _heartbeat("stored")
            delivered = [self._deliver_to_outbox(input, row)]
            _heartbeat("outbox")
            if self.mailer is not None:
                sent = self._deliver_by_email(input, row, self.mailer)
                if sent:
                    delivered.append(f"{SMTP}:{sent}")
            log.info("letter_sent", kind=input.letter.kind.value, stage=input.stage,
                     seq=input.seq, channels=delivered)
            return LetterReceipt(letter_id=row.letter_id, subject=row.subject,
                                 delivered_to=tuple(delivered), sha256=row.sha256)

    @staticmethod
    def _template_set(name: str) -> str:
        """Return ``name`` if it is a template folder, else the default set."""
        if _TEMPLATE_SET_NAME.fullmatch(name) and (TEMPLATES_DIR / name).is_dir():
            return name
        log.info("template_set_fallback", template_set=name)
        return DEFAULT_TEMPLATE_SET

    def _store(self, input: SendLetterInput, rendered: RenderedLetter) -> LetterRow:
        """Store the letter once; on a repeat return what was stored (and sent) before."""
        digest = _sha256(rendered.text)
        with self.session_factory() as session:
            row = session.get(LetterRow, input.letter_id)
            if row is not None and row.sha256 != digest:
                delivered = session.exec(
                    select(DeliveryRow.id).where(DeliveryRow.letter_id == input.letter_id)
                ).first()
                if delivered is not None:
                    # Keep the record identical to what the resident already received.
                    log.warning("letter_render_changed_after_delivery",
                                stored_sha256=row.sha256, new_sha256=digest)
                    return row
                row.subject, row.text, row.html, row.sha256 = (
                    rendered.subject, rendered.text, rendered.html, digest)
                session.add(row)
                session.commit()
                log.info("letter_rerendered", sha256=digest)
                return row
            if row is not None:
                return row
            row = LetterRow(
                letter_id=input.letter_id, reference=input.reference,
                kind=input.letter.kind.value, stage=input.stage, seq=input.seq,
                subject=rendered.subject, text=rendered.text, html=rendered.html,
                sha256=digest, created_at=dt.datetime.now(dt.UTC),
            )
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                # Another attempt stored it first: use that one.
                session.rollback()
                existing = session.get(LetterRow, input.letter_id)
                if existing is None:
                    raise
                return existing
            log.info("letter_stored", kind=row.kind, sha256=digest)
            return row

    def _delivered(self, letter_id: str, channel: str, recipient: str) -> bool:
        with self.session_factory() as session:
            found = session.exec(
                select(DeliveryRow.status).where(DeliveryRow.letter_id == letter_id,
                                                 DeliveryRow.channel == channel,
                                                 DeliveryRow.recipient == recipient)
            ).first()
            return found in DELIVERED

    def _record_delivery(self, letter_id: str, channel: str, recipient: str) -> None:
        with self.session_factory() as session:
            session.add(DeliveryRow(letter_id=letter_id, channel=channel, recipient=recipient,
                                    status="sent", delivered_at=dt.datetime.now(dt.UTC)))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()  # recorded by a concurrent attempt: same outcome

    def _deliver_to_outbox(self, input: SendLetterInput, row: LetterRow) -> str:
        """Write the letter's files once; return the channel name."""
        if not self._delivered(row.letter_id, OUTBOX, OUTBOX_RECIPIENT):
            text_path, html_path = outbox_paths(self.outbox_dir, input.reference, row.letter_id)
            _write_atomically(text_path, row.text)
            _write_atomically(html_path, row.html)
            self._record_delivery(row.letter_id, OUTBOX, OUTBOX_RECIPIENT)
            log.info("letter_written_to_outbox")
        return OUTBOX

    def _claim(self, letter_id: str, recipient: str) -> str | None:
        """Claim the email to ``recipient`` before sending it.

        Returns:
            None when it was delivered already; ``SENT`` for a first send (the claim is
            written now); ``RESENT`` when an earlier attempt claimed it and never
            recorded the outcome (it died mid-send or lost the server's answer).

        """
        for _ in range(2):
            with self.session_factory() as session:
                row = session.exec(select(DeliveryRow).where(
                    DeliveryRow.letter_id == letter_id, DeliveryRow.channel == SMTP,
                    DeliveryRow.recipient == recipient)).first()
                if row is not None:
                    if row.status in DELIVERED:
                        return None
                    log.warning("letter_email_earlier_attempt_interrupted",
                                claimed_at=row.delivered_at.isoformat())
                    return RESENT
                session.add(DeliveryRow(letter_id=letter_id, channel=SMTP,
                                        recipient=recipient, status=SENDING,
                                        delivered_at=dt.datetime.now(dt.UTC)))
                try:
                    session.commit()
                    return SENT
                except IntegrityError:
                    session.rollback()  # claimed concurrently: read it again
        raise RuntimeError(f"could not claim the email of letter {letter_id!r}")

    def _release(self, letter_id: str, recipient: str) -> None:
        """Drop a claim after a send that certainly failed (best effort)."""
        try:
            with self.session_factory() as session:
                row = session.exec(select(DeliveryRow).where(
                    DeliveryRow.letter_id == letter_id, DeliveryRow.channel == SMTP,
                    DeliveryRow.recipient == recipient,
                    DeliveryRow.status == SENDING)).first()
                if row is not None:
                    session.delete(row)
                    session.commit()
        except DBAPIError:
            # The claim stays; the retry sends again and records "resent": safe.
            log.warning("letter_email_claim_not_released")

    def _mark(self, letter_id: str, recipient: str, status: str) -> None:
        """Record an accepted email (``SENT`` or ``RESENT``), through a database outage."""

        def write() -> None:
            with self.session_factory() as session:
                row = session.exec(select(DeliveryRow).where(
                    DeliveryRow.letter_id == letter_id, DeliveryRow.channel == SMTP,
                    DeliveryRow.recipient == recipient)).first()
                if row is None:
                    row = DeliveryRow(letter_id=letter_id, channel=SMTP, recipient=recipient)
                elif row.status in DELIVERED:
                    return
                row.status = status
                row.delivered_at = dt.datetime.now(dt.UTC)
                session.add(row)
                session.commit()

        retry_write(write, "letter_email_delivery", RECORD_RETRY_SECONDS)

    @contextmanager
    def _sending(self, key: tuple[str, str]) -> Iterator[None]:
        """Hold ``key`` as being sent by this process; refuse a concurrent attempt."""
        with self._lock:
            if key in self._in_flight:
                raise ApplicationError("another attempt is sending this email now",
                                       type="DeliveryInProgress")
            self._in_flight.add(key)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight.discard(key)

    def _note_handed_over(self, marker: Path, letter_id: str) -> None:
        """Leave the handed-over marker: the server has the whole message from now on."""
        try:
            try:
                fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            except FileNotFoundError:
                marker.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, letter_id.encode("utf-8") + b"\n")
            finally:
                os.close(fd)
        except OSError:
            # Without it a retry after a crash would send again: a duplicate, not a loss.
            log.warning("letter_email_marker_not_written")

    def _deliver_by_email(self, input: SendLetterInput, row: LetterRow, mailer: Mailer) -> int:
        """Email every recipient with an address once; return how many have it."""
        addresses: list[str] = []
        seen: set[str] = set()
        for party in input.letter.recipients:
            if party.email and party.email.strip().casefold() not in seen:
                seen.add(party.email.strip().casefold())
                addresses.append(party.email.strip())
        message_id = message_id_for(row.letter_id)
        newly_sent = 0
        for address in addresses:
            key = (row.letter_id, address)
            marker = handed_over_marker(self.outbox_dir, row.letter_id, address)
            with self._sending(key):
                status = self._claim(row.letter_id, address)
                if status is None:
                    marker.unlink(missing_ok=True)
                    continue
                with self._lock:
                    remembered = self._accepted.get(key)
                if remembered is not None:
                    status = remembered  # accepted here before; only the record failed
                    log.info("letter_email_accepted_earlier_recording")
                elif status == RESENT and marker.exists():
                    # An attempt died after handing the whole message over: the server has
                    # it (it commits on the final "."); sending again would duplicate it.
                    status = UNCONFIRMED
                    log.warning("letter_email_handed_over_before_a_crash_not_resent")
                else:
                    try:
                        mailer.send(to=address, subject=row.subject, text=row.text,
                                    html=row.html, message_id=message_id,
                                    on_handed_over=lambda m=marker: self._note_handed_over(
                                        m, row.letter_id))
                    except DeliveryUncertain:
                        status = UNCONFIRMED
                        log.warning("letter_email_answer_lost_not_resent")
                    except Exception:
                        marker.unlink(missing_ok=True)
                        self._release(row.letter_id, address)
                        raise
                    with self._lock:
                        self._accepted[key] = status
                    newly_sent += 1
                self._mark(row.letter_id, address, status)
                marker.unlink(missing_ok=True)
                with self._lock:
                    self._accepted.pop(key, None)
            _heartbeat(newly_sent)
        log.info("letter_emailed", recipients=len(addresses), newly_sent=newly_sent)
        return len(addresses)
