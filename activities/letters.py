"""Sending letters to residents: render, check, store, deliver, each once per letter id.

A letter is rendered from its content model and checked against the Code: every element
of ``letter.required_elements()`` must be in the plain text and in the HTML's visible
text, whatever the landlord's templates (``complaints.letters.check_complete``); a letter
that lacks one is neither stored nor sent (a non-retryable ``LetterIncomplete``, naming
the missing provisions, never their values). A complete letter is printed to an
accessible PDF (PDF/UA-1) and stored with it (``LetterRow``: the record of
correspondence, Code 5.12), then delivered over every configured channel: always the
outbox (a ``.txt``, an ``.html`` and a ``.pdf`` file per letter, for printing and posting
or for a document system to pick up) and, when a mailer is configured, an email to every
recipient who has an address, except one who asked for letters by post
(``Party.preferred_channel``). Each delivery is recorded (``DeliveryRow``) and skipped when
the activity runs again, so a retried activity never sends a letter twice; a letter once
delivered is never rendered or printed again.

An email is claimed before it is sent and marked the moment it is handed over, so that a
retry after a crash never sends it twice: the claim-and-marker protocol, shared with staff
notifications, is in ``activities.email_once``. The outbox files are named by letter id,
so writing them again replaces them; they and their folders are private to the worker's
user (``0600`` / ``0700``, ``complaints.files``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import structlog
from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.email_once import (
    DELIVERED,
    HANDED_OVER_MARKERS,
    RECORD_RETRY_SECONDS,
    RESENT,
    SENDING,
    SENT,
    SMTP,
    UNCONFIRMED,
    OnceEmailer,
    handed_over_marker,
    retry_write,
)
from activities.heartbeats import heartbeat as _heartbeat
from activities.mail import Mailer, message_id_for
from activities.records import table_of
from complaints.files import write_private_files
from complaints.letters import (
    DEFAULT_TEMPLATE_SET,
    LetterIncomplete,
    check_complete,
    render_letter,
    render_pdf,
    resolve_template_set,
)
from models.case import PreferredChannel
from models.letters import Letter, RenderedLetter
from models.messages import LetterReceipt, SendLetterInput
from models.tables import DeliveryRow, LetterRow

# The delivery statuses, the marker and the record retry are re-exported from
# activities.email_once for the callers that know them from here.
__all__ = ["DELIVERED", "HANDED_OVER_MARKERS", "OUTBOX", "RECORD_RETRY_SECONDS", "RESENT",
           "SENDING", "SENT", "SMTP", "UNCONFIRMED", "retry_write",
           "LetterActivities", "StoredLetter", "email_addresses", "handed_over_marker",
           "outbox_paths", "outbox_pdf_path"]

log = structlog.get_logger(__name__)

#: Delivery channel names, as stored in ``DeliveryRow.channel`` (and ``SMTP``).
OUTBOX = "outbox"
#: The recipient recorded for an outbox delivery.
OUTBOX_RECIPIENT = "file"

_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]")

# The statements of every letter, built once (SQLAlchemy caches their compiled form).
_LETTERS = table_of(LetterRow)
_LETTER = select(_LETTERS).where(_LETTERS.c.letter_id == bindparam("letter_id"))
_INSERT_LETTER = insert(_LETTERS)
_DELIVERY_ROWS = table_of(DeliveryRow)
# Re-rendered only while nothing was delivered and the stored text is still the one read:
# a concurrent attempt that delivered it in between keeps what the resident received.
_RERENDER_LETTER = update(_LETTERS).where(
    _LETTERS.c.letter_id == bindparam("match_letter_id"),
    _LETTERS.c.sha256 == bindparam("match_sha256"),
    ~select(_DELIVERY_ROWS.c.id).where(
        _DELIVERY_ROWS.c.letter_id == bindparam("match_letter_id")).exists())
_DELIVERIES = select(_DELIVERY_ROWS.c.channel, _DELIVERY_ROWS.c.recipient,
                     _DELIVERY_ROWS.c.status).where(
    _DELIVERY_ROWS.c.letter_id == bindparam("letter_id"))
_INSERT_DELIVERY = insert(_DELIVERY_ROWS)
_ADD_PDF = update(_LETTERS).where(
    _LETTERS.c.letter_id == bindparam("match_letter_id"),
    _LETTERS.c.sha256 == bindparam("match_sha256"), _LETTERS.c.pdf.is_(None))
#: Keep a PDF printed on demand (the letter's text is never changed by it).
_SET_PDF = update(_LETTERS).where(
    _LETTERS.c.letter_id == bindparam("match_letter_id"), _LETTERS.c.pdf.is_(None))


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


def outbox_pdf_path(outbox_dir: Path, reference: str, letter_id: str) -> Path:
    """Return where a letter's PDF goes in the outbox: beside its ``.txt`` and ``.html``."""
    return outbox_paths(outbox_dir, reference, letter_id)[0].with_suffix(".pdf")


def _print_now(letter: Letter) -> bool:
    """Whether a letter is printed (PDF) when it is sent, not only when first asked for.

    When the resident's reasonable adjustments call for a printed copy (large print): the
    adjustment is applied where software can. Others are printed on demand.
    """
    return bool(getattr(letter, "large_print", False))


def _sha256(content: str | bytes) -> str:
    data = content.encode("utf-8") if isinstance(content, str) else content
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class StoredLetter:
    """A letter as stored (a ``LetterRow``'s columns), read or written with Core statements.

    Plain data rather than the ORM row: building an instrumented ``LetterRow`` costs more
    than the statement that reads it, and nothing here needs a session's identity map.
    """

    letter_id: str
    reference: str
    kind: str
    stage: int
    seq: int
    subject: str
    text: str
    html: str
    sha256: str
    created_at: dt.datetime
    pdf: bytes | None = None
    pdf_sha256: str | None = None


def email_addresses(letter: Letter) -> list[str]:
    """The distinct email addresses of a letter's recipients, in order (case-insensitive).

    A recipient who asked for letters by post is left out (a reasonable adjustment applied
    where software can, 5.10): they get the posted copy only.
    """
    addresses: list[str] = []
    seen: set[str] = set()
    for party in letter.recipients:
        if party.preferred_channel is PreferredChannel.POST:
            continue
        if party.email and party.email.strip().casefold() not in seen:
            seen.add(party.email.strip().casefold())
            addresses.append(party.email.strip())
    return addresses


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
        self._email = OnceEmailer(session_factory, DeliveryRow, "letter_id", self.outbox_dir,
                                  what="letter")

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
                is for another complaint than ``input.reference``; of type
                ``LetterIncomplete`` when the rendered letter lacks an element the Code
                requires (nothing is stored or sent; the message names the missing
                provisions by label and the template set, never their values).

        """
        with structlog.contextvars.bound_contextvars(reference=input.reference,
                                                     letter_id=input.letter_id):
            rendered = self.render_checked(input)
            row, deliveries = self._store(input, rendered)
            return self.deliver(input, row, deliveries)

    def render_checked(self, input: SendLetterInput) -> RenderedLetter:
        """Render a letter to be sent, refusing one the Code's required elements miss.

        Raises:
            ApplicationError: Non-retryable: ``LetterMismatch`` or ``LetterIncomplete``
                (see :meth:`send_letter`).

        """
        if input.letter.reference != input.reference:
            raise ApplicationError(
                f"letter {input.letter_id!r} is addressed for another complaint",
                type="LetterMismatch", non_retryable=True)
        template_set = self._template_set(input.template_set)
        rendered = render_letter(input.letter, template_set)
        try:
            check_complete(input.letter, rendered, template_set)
        except LetterIncomplete as exc:
            log.error("letter_incomplete", kind=exc.kind, template_set=template_set,
                      missing=sorted(exc.missing))
            raise ApplicationError(str(exc), type="LetterIncomplete",
                                   non_retryable=True) from None
        return rendered

    def deliver(self, input: SendLetterInput, row: StoredLetter,
                deliveries: Mapping[tuple[str, str], str]) -> LetterReceipt:
        """Deliver a stored letter once per channel: outbox, then email.

        Printed first (outside any transaction) when the resident's adjustments call for it.

        Args:
            input: The letter's input.
            row: The letter as stored (committed).
            deliveries: Its deliveries as read with it in that transaction.

        Returns:
            The receipt (see :meth:`send_letter`).

        """
        if row.pdf is None and not deliveries and _print_now(input.letter):
            # Printed outside any transaction: about 200 ms of CPU.
            row = self._add_pdf(row)
            _heartbeat("printed")
        _heartbeat("stored")
        delivered = [self._deliver_to_outbox(input, row, deliveries)]
        _heartbeat("outbox")
        if self.mailer is not None:
            sent = self._deliver_by_email(input, row, self.mailer)
            if sent:
                delivered.append(f"{SMTP}:{sent}")
        self._warn_if_email_not_possible(input.letter)
        log.info("letter_sent", kind=input.letter.kind.value, stage=input.stage,
                 seq=input.seq, channels=delivered)
        return LetterReceipt(letter_id=row.letter_id, subject=row.subject,
                             delivered_to=tuple(delivered), sha256=row.sha256)

    def _warn_if_email_not_possible(self, letter: Letter) -> None:
        """Say (counts only) when someone who prefers email could not be emailed.

        They get the posted copy from the outbox instead: no mailer is configured, or no
        address is recorded for them. Staff can then ask for an address.
        """
        wanting = [p for p in letter.recipients if p.preferred_channel is PreferredChannel.EMAIL]
        unreachable = len(wanting) if self.mailer is None else sum(
            1 for p in wanting if not (p.email and p.email.strip()))
        if unreachable:
            log.warning("preferred_email_not_possible", recipients=unreachable,
                        mailer=self.mailer is not None)

    def restore_letter(self, input: SendLetterInput, receipt: LetterReceipt | None = None,
                       stored_at: dt.datetime | None = None,
                       delivered_at: dt.datetime | None = None) -> StoredLetter:
        """Store a letter that was sent before, and its deliveries, WITHOUT delivering it.

        For ``complaints resync``, which rebuilds the database from the workflows'
        histories: a resident must never get a letter twice because a database was
        restored. A letter already stored is left exactly as it is (it is the record of
        what was sent); a missing one is rendered again from the same input. The
        deliveries named by the activity's receipt (``outbox``, ``smtp:<n>``) are recorded
        as made, without touching the outbox or any mail server. Idempotent.

        Args:
            input: The ``send_letter`` input as the workflow scheduled it.
            receipt: What ``send_letter`` returned, when it completed; None records no
                delivery (a letter still being sent is delivered by its own activity).
            stored_at: When the letter was first stored (default: now).
            delivered_at: When it was delivered (default: now).

        Returns:
            The stored letter (compare its ``sha256`` with the receipt's: a template
            changed since makes a restored letter differ from the one sent).

        """
        with structlog.contextvars.bound_contextvars(reference=input.reference,
                                                     letter_id=input.letter_id):
            with self.session_factory() as session:
                row, deliveries = self._stored(session.connection(), input.letter_id)
            if row is None:
                template_set = self._template_set(input.template_set)
                rendered = render_letter(input.letter, template_set)
                try:
                    check_complete(input.letter, rendered, template_set)
                except LetterIncomplete as exc:
                    # Stored all the same: this is the record of what the letter says
                    # (sent by an older version, or never sent: send_letter refuses it).
                    log.warning("restored_letter_incomplete", kind=exc.kind,
                                template_set=template_set, missing=sorted(exc.missing))
                row, deliveries = self._store(input, rendered, created_at=stored_at)
            if receipt is None:
                return row
            wanted: list[tuple[str, str]] = []
            for channel in receipt.delivered_to:
                if channel == OUTBOX:
                    wanted.append((OUTBOX, OUTBOX_RECIPIENT))
                elif channel.startswith(f"{SMTP}:"):
                    # "smtp:<n>": the first n distinct addresses, as _deliver_by_email counts.
                    count = int(channel.partition(":")[2] or 0)
                    wanted += [(SMTP, a) for a in email_addresses(input.letter)[:count]]
            for channel, recipient in wanted:
                # Recording is idempotent (a concurrent record makes it a no-op): the
                # deliveries read with the letter are enough to skip those on record.
                if deliveries.get((channel, recipient)) not in DELIVERED:
                    self._record_delivery(row.letter_id, channel, recipient, delivered_at)
            return row

    @staticmethod
    def _template_set(name: str) -> str:
        """Return ``name`` if it is a template folder, else the default set."""
        resolved = resolve_template_set(name)
        if resolved == DEFAULT_TEMPLATE_SET and name != DEFAULT_TEMPLATE_SET:
            log.info("template_set_fallback", template_set=name)
        return resolved

    @staticmethod
    def _stored(connection: Connection,
                letter_id: str) -> tuple[StoredLetter | None, dict[tuple[str, str], str]]:
        """The stored letter, if any, and its recorded deliveries, in one transaction.

        Returns:
            The letter (None when not stored) and the status of each delivery recorded,
            by (channel, recipient).

        """
        found = connection.execute(_LETTER, {"letter_id": letter_id}).first()
        if found is None:
            return None, {}
        deliveries = {(d.channel, d.recipient): d.status
                      for d in connection.execute(_DELIVERIES, {"letter_id": letter_id})}
        return StoredLetter(**found._asdict()), deliveries

    def _store(self, input: SendLetterInput, rendered: RenderedLetter,
               created_at: dt.datetime | None = None,
               ) -> tuple[StoredLetter, dict[tuple[str, str], str]]:
        """Store the letter once in a transaction of its own (see :meth:`store_on`)."""
        with self.session_factory() as session:
            row, deliveries = self.store_on(session.connection(), input, rendered, created_at)
            session.commit()
        return row, deliveries

    def store_on(self, connection: Connection, input: SendLetterInput,
                 rendered: RenderedLetter, created_at: dt.datetime | None = None,
                 ) -> tuple[StoredLetter, dict[tuple[str, str], str]]:
        """Store the letter once in the caller's transaction; on a repeat, what was before.

        Core statements (the ORM's unit of work costs more than the two statements): read
        the letter and its deliveries, then insert or re-render it, without its PDF (that
        is printed after the commit, outside any transaction, when the letter must be).
        A letter delivered before is returned as stored, whatever the templates make of
        it now. The caller commits: ``record_case_event`` stores an event's letters in
        the event's own transaction.

        Returns:
            The stored letter and its deliveries as read then, by (channel, recipient):
            none for a letter stored now (a delivery is only ever recorded for a letter
            already stored).

        """
        digest = _sha256(rendered.text)
        row, deliveries = self._stored(connection, input.letter_id)
        if row is not None and deliveries:
            if row.sha256 != digest:
                # Keep the record identical to what the resident already received.
                log.warning("letter_render_changed_after_delivery",
                            stored_sha256=row.sha256, new_sha256=digest)
            return row, deliveries
        if row is not None and row.sha256 == digest:
            return row, deliveries
        if row is not None:
            updated = connection.execute(_RERENDER_LETTER, {
                "match_letter_id": input.letter_id, "match_sha256": row.sha256,
                "subject": rendered.subject, "text": rendered.text, "html": rendered.html,
                "sha256": digest, "pdf": None, "pdf_sha256": None})
            if updated.rowcount != 1:
                # Delivered or re-rendered meanwhile by another attempt: keep that.
                stored, deliveries = self._stored(connection, input.letter_id)
                if stored is None:
                    raise RuntimeError("letter vanished while being re-rendered")
                return stored, deliveries
            log.info("letter_rerendered", sha256=digest)
            return replace(row, subject=rendered.subject, text=rendered.text,
                           html=rendered.html, sha256=digest, pdf=None,
                           pdf_sha256=None), deliveries
        row = StoredLetter(
            letter_id=input.letter_id, reference=input.reference,
            kind=input.letter.kind.value, stage=input.stage, seq=input.seq,
            subject=rendered.subject, text=rendered.text, html=rendered.html,
            sha256=digest, created_at=created_at or dt.datetime.now(dt.UTC))
        try:
            # A savepoint: a concurrent attempt's row must not undo the caller's work.
            with connection.begin_nested():
                connection.execute(_INSERT_LETTER, asdict(row))
        except IntegrityError:
            existing, deliveries = self._stored(connection, input.letter_id)
            if existing is None:
                raise
            return existing, deliveries
        log.info("letter_stored", kind=row.kind, sha256=digest)
        return row, {}

    def print_letter(self, letter_id: str) -> StoredLetter:
        """The stored letter with its PDF, printed now (and kept) if it has none yet.

        Printing costs about 200 ms of CPU a letter against under 1 ms for the text and
        HTML, so letters are printed when first asked for (``complaints letters REF ID
        --pdf FILE``), or when sent if the resident's adjustments call for it.

        Raises:
            LookupError: No letter ``letter_id`` is stored.
        """
        with self.session_factory() as session:
            row, _ = self._stored(session.connection(), letter_id)
        if row is None:
            raise LookupError(letter_id)
        if row.pdf is not None:
            return row
        pdf = render_pdf(RenderedLetter(subject=row.subject, text=row.text, html=row.html))
        digest = _sha256(pdf)
        with self.session_factory() as session:
            session.connection().execute(_SET_PDF, {
                "match_letter_id": row.letter_id, "pdf": pdf, "pdf_sha256": digest})
            session.commit()
        return replace(row, pdf=pdf, pdf_sha256=digest)

    def _add_pdf(self, row: StoredLetter) -> StoredLetter:
        """Print a stored, undelivered letter that has no PDF, and keep the PDF with it."""
        pdf = render_pdf(RenderedLetter(subject=row.subject, text=row.text, html=row.html))
        digest = _sha256(pdf)
        with self.session_factory() as session:
            session.connection().execute(_ADD_PDF, {
                "match_letter_id": row.letter_id, "match_sha256": row.sha256,
                "pdf": pdf, "pdf_sha256": digest})
            session.commit()
        log.info("letter_pdf_added", pdf_bytes=len(pdf))
        return replace(row, pdf=pdf, pdf_sha256=digest)

    def _record_delivery(self, letter_id: str, channel: str, recipient: str,
                         at: dt.datetime | None = None) -> None:
        with self.session_factory() as session:
            try:
                session.connection().execute(_INSERT_DELIVERY, {
                    "letter_id": letter_id, "channel": channel, "recipient": recipient,
                    "status": "sent", "delivered_at": at or dt.datetime.now(dt.UTC)})
                session.commit()
            except IntegrityError:
                session.rollback()  # recorded by a concurrent attempt: same outcome

    def _deliver_to_outbox(self, input: SendLetterInput, row: StoredLetter,
                           deliveries: Mapping[tuple[str, str], str]) -> str:
        """Write the letter's files (text, HTML and, when it has one, PDF) once.

        Args:
            input: The letter's input.
            row: The stored letter.
            deliveries: Its deliveries as ``_store`` read them with it. Reading them again
                would only narrow, not close, the window in which a concurrent attempt
                writes the files too (the same files; its record makes ours a no-op).

        """
        if deliveries.get((OUTBOX, OUTBOX_RECIPIENT)) not in DELIVERED:
            text_path, html_path = outbox_paths(self.outbox_dir, input.reference, row.letter_id)
            files: dict[str, str | bytes] = {text_path.name: row.text, html_path.name: row.html}
            if row.pdf is not None:
                files[outbox_pdf_path(self.outbox_dir, input.reference,
                                      row.letter_id).name] = row.pdf
            # Durable before the delivery is recorded: a power loss cannot leave a letter
            # recorded as delivered without its files.
            write_private_files(text_path.parent, files)
            self._record_delivery(row.letter_id, OUTBOX, OUTBOX_RECIPIENT)
            log.info("letter_written_to_outbox")
        return OUTBOX

    def _deliver_by_email(self, input: SendLetterInput, row: StoredLetter,
                          mailer: Mailer) -> int:
        """Email every recipient with an address once; return how many have it."""
        addresses = email_addresses(input.letter)
        message_id = message_id_for(row.letter_id)
        newly_sent = 0
        for address in addresses:
            status = self._email.send(mailer, row.letter_id, address, subject=row.subject,
                                      text=row.text, html=row.html, message_id=message_id)
            newly_sent += status is not None
            _heartbeat(newly_sent)
        log.info("letter_emailed", recipients=len(addresses), newly_sent=newly_sent)
        return len(addresses)
