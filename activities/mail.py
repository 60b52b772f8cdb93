"""Sending email: the ``Mailer`` protocol and its SMTP implementation.

Letters to residents and notices to staff go out through a ``Mailer``. Each message
carries a Message-ID derived from what it is (a letter id, a notification id), so that a
message sent twice after a crash between sending and recording is recognisably the same
message to the receiving systems.

A send reports the moment the whole message has been handed over (the final ``.`` of
DATA written to the connection: ``on_handed_over``), and a failed send says which side of
that moment it failed on: ``DeliveryUncertain`` after it (the server's answer was lost; a
server commits a message once it has received the final ``.``, RFC 1047, so it is most
likely delivered), any other ``OSError`` before it or when the server refused (certainly
not delivered).
"""

from __future__ import annotations

import contextlib
import email.policy
import hashlib
import io
import re
import smtplib
import ssl
from collections.abc import Callable
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.utils import formatdate
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    # Typeshed's name for what smtplib.SMTP.data/send accept; exists only for type checkers.
    from _typeshed import ReadableBuffer

    from complaints.settings import Settings

__all__ = ["DeliveryUncertain", "Mailer", "SmtpMailer", "SmtpRecipientRefused", "SmtpRefused",
           "message_id_for"]

#: The right-hand side of every Message-ID the engine writes.
MESSAGE_ID_DOMAIN = "complaints"

# RFC 5322 dot-atom-text: atext characters and single dots. Anything else (a ':' in a
# letter id, say) would make a Message-ID that mail software cuts short.
_NOT_ATEXT = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]")
_DOTS = re.compile(r"\.{2,}")


#: Longest left part of a Message-ID: "Message-ID: <left@complaints>" fits in 78 columns.
MAX_MESSAGE_ID_LEFT = 52


def message_id_for(key: str) -> str:
    """Return the deterministic Message-ID for a letter or notification id.

    ``<{key}@complaints>``, with characters that RFC 5322 does not allow in a Message-ID
    (such as ``:``) replaced by ``.``.

    Args:
        key: A letter id or notification id.

    Returns:
        The Message-ID, angle brackets included.

    """
    left = _DOTS.sub(".", _NOT_ATEXT.sub(".", key)).strip(".") or "message"
    if len(left) > MAX_MESSAGE_ID_LEFT:
        # Too long for one header line: it would be folded onto the next, and some readers
        # keep the fold's space. A prefix and a digest keep it unique and the same on retry.
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
        left = f"{left[:MAX_MESSAGE_ID_LEFT - 17].rstrip('.')}.{digest}"
    return f"<{left}@{MESSAGE_ID_DOMAIN}>"


class DeliveryUncertain(OSError):  # noqa: N818 - an OSError like the ones it wraps
    """The whole message was handed over but the server's answer was lost.

    Raised by ``SmtpMailer.send`` when the connection failed or timed out after the final
    ``.`` of DATA was written and before the server answered it. The server commits on
    receiving that ``.`` (RFC 1047), so the message is most likely delivered; sending it
    again would most likely deliver a second copy.
    """


#: The enhanced status code (RFC 3463) that starts an SMTP reply's text.
_STATUS = re.compile(rb"^[245]\.\d{1,3}\.\d{1,3}")
#: What each kind of refusal refused.
_REFUSED = {"SMTPSenderRefused": "the sender", "SMTPDataError": "the message",
            "SMTPAuthenticationError": "the login", "SMTPHeloError": "the greeting",
            "SMTPConnectError": "the connection"}
#: Said instead of the server's words (the mail server's own log has them).
_WORDS_WITHHELD = ("(its words are withheld: they may quote the address; the mail server's "
                   "log has them)")


def _reply(code: int, text: bytes | str) -> tuple[int, bytes, str]:
    """An SMTP reply reduced to its codes: the code, the status as bytes, as words."""
    raw = text.encode("utf-8", "replace") if isinstance(text, str) else text
    status = match.group() if (match := _STATUS.match(raw)) else b""
    return code, status, f"{code} {status.decode()}".rstrip()


class SmtpRefused(smtplib.SMTPResponseException):
    """The SMTP server refused the message, the sender or the login: codes only.

    A server's refusal often quotes the address it refused (Postfix: ``550 5.1.1
    <jo@example.com>: Recipient address rejected``), and an exception's text travels into
    the activity's failure, the worker's log and staff notices. Only the reply code and
    the enhanced status code (RFC 3463) are kept: ``smtp_code``, and ``smtp_error`` holds
    the status code alone.
    """

    def __init__(self, refused: smtplib.SMTPResponseException) -> None:
        """Keep the codes of ``refused``, drop its words."""
        code, status, said = _reply(refused.smtp_code, refused.smtp_error)
        super().__init__(code, status)
        what = _REFUSED.get(type(refused).__name__, "the message")
        self._said = f"the SMTP server refused {what}: {said} {_WORDS_WITHHELD}"

    def __str__(self) -> str:
        return self._said


class SmtpRecipientRefused(smtplib.SMTPRecipientsRefused):
    """The SMTP server refused the recipient: codes only (see :class:`SmtpRefused`).

    ``recipients`` is left empty: its keys are the addresses refused.
    """

    def __init__(self, refused: smtplib.SMTPRecipientsRefused) -> None:
        """Keep the codes of the (one) recipient's refusal, drop the address and words."""
        super().__init__({})
        answer = next(iter(refused.recipients.values()), (0, b""))
        self.smtp_code, self.smtp_error, said = _reply(answer[0], answer[1])
        self._said = f"the SMTP server refused the recipient: {said} {_WORDS_WITHHELD}"

    def __str__(self) -> str:
        return self._said


class _TrackingSMTP(smtplib.SMTP):
    """``smtplib.SMTP`` that notices when the whole message has been handed over."""

    handed_over = False
    _in_data = False

    def __init__(self, *args: object, on_handed_over: Callable[[], None] | None = None,
                 **kwargs: object) -> None:
        self._on_handed_over = on_handed_over
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def data(self, msg: ReadableBuffer | str) -> tuple[int, bytes]:
        self._in_data = True
        try:
            return super().data(msg)
        finally:
            self._in_data = False

    def send(self, s: ReadableBuffer | str) -> None:
        # Within DATA, smtplib sends the "DATA" command as str and then the message with
        # its final "." as one bytes payload: once that is written, the server has it all.
        super().send(s)
        if self._in_data and isinstance(s, bytes):
            self.handed_over = True
            if self._on_handed_over is not None:
                self._on_handed_over()


@runtime_checkable
class Mailer(Protocol):
    """Something that sends one email to one recipient."""

    def send(self, *, to: str, subject: str, text: str, html: str | None,
             message_id: str, on_handed_over: Callable[[], None] | None = None) -> None:
        """Send one message.

        Args:
            to: The recipient's email address.
            subject: The subject line.
            text: The plain-text body.
            html: An HTML alternative of the body, if any.
            message_id: The Message-ID header, angle brackets included.
            on_handed_over: Called once the whole message has been handed over, before
                the server's answer is read (a mailer that cannot tell may not call it).

        Raises:
            DeliveryUncertain: If the message was handed over but the answer was lost:
                most likely delivered.
            OSError: If the message was not accepted (``smtplib.SMTPException`` is an
                ``OSError``); the caller retries.

        """
        ...

    @staticmethod
    def from_settings(settings: Settings) -> Mailer | None:
        """Build the mailer the settings describe.

        Args:
            settings: The worker's settings.

        Returns:
            An ``SmtpMailer`` when ``smtp_host`` is set, otherwise None (no email).

        """
        if not settings.smtp_host:
            return None
        return SmtpMailer(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_sender,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
        )


class SmtpMailer(Mailer):
    """Send email through an SMTP server with ``smtplib``, one connection per message."""

    def __init__(self, host: str, port: int = 25, sender: str = "complaints@landlord.example",
                 username: str | None = None, password: str | None = None,
                 starttls: bool = False, timeout: float = 30.0) -> None:
        """Configure the mailer.

        Args:
            host: The SMTP server.
            port: Its port.
            sender: The From address (and envelope sender).
            username: The login, if the server needs one.
            password: The password for ``username``.
            starttls: Whether to upgrade the connection with STARTTLS before logging in.
            timeout: Socket timeout in seconds.

        """
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"SmtpMailer({self.host!r}, {self.port}, starttls={self.starttls})"

    def build(self, *, to: str, subject: str, text: str, html: str | None,
              message_id: str) -> EmailMessage:
        """Build the message ``send`` would send.

        Args:
            to: The recipient's email address.
            subject: The subject line.
            text: The plain-text body.
            html: An HTML alternative, if any.
            message_id: The Message-ID header.

        Returns:
            A ``multipart/alternative`` message when ``html`` is given, else plain text.

        """
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = message_id
        # Quoted-printable keeps every line 7-bit and short, whatever the server supports.
        message.set_content(text, cte="quoted-printable")
        if html is not None:
            message.add_alternative(html, subtype="html", cte="quoted-printable")
        return message

    @staticmethod
    def to_bytes(message: EmailMessage) -> bytes:
        """Serialise a message for SMTP: CRLF line ends, lines starting "From " unchanged.

        ``smtplib.SMTP.send_message`` would serialise with the compat32 defaults, which
        turn a body line starting "From " into ">From ".

        Args:
            message: The message.

        Returns:
            The message as bytes.

        """
        buffer = io.BytesIO()
        BytesGenerator(buffer, policy=email.policy.SMTP).flatten(message)
        return buffer.getvalue()

    def send(self, *, to: str, subject: str, text: str, html: str | None,
             message_id: str, on_handed_over: Callable[[], None] | None = None) -> None:
        """Send one message over a fresh SMTP connection.

        Returns as soon as the server has accepted the message: QUIT is sent without
        waiting for its answer, and a connection that fails after the acceptance is not
        an error (the message is delivered; reporting a failure would send it twice).

        Args:
            to: The recipient's email address.
            subject: The subject line.
            text: The plain-text body.
            html: An HTML alternative, if any.
            message_id: The Message-ID header.
            on_handed_over: Called the moment the final ``.`` of DATA has been written,
                before the server's answer is read.

        Raises:
            DeliveryUncertain: If the connection failed after the whole message was sent
                and before the server answered: most likely delivered.
            SmtpRecipientRefused: If the server refused the recipient (not delivered).
            SmtpRefused: If the server refused the message otherwise (not delivered).
            OSError: If the server cannot be reached (not delivered).

        """
        message = self.build(to=to, subject=subject, text=text, html=html,
                             message_id=message_id)
        payload = self.to_bytes(message)
        smtp = _TrackingSMTP(self.host, self.port, timeout=self.timeout,
                             on_handed_over=on_handed_over)
        try:
            try:
                smtp.ehlo()
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.sendmail(self.sender, [to], payload)
            # The server answered with a refusal: certainly not accepted. Its words are
            # dropped here, where they are known to be a server's (see SmtpRefused).
            except smtplib.SMTPRecipientsRefused as exc:
                raise SmtpRecipientRefused(exc) from None
            except smtplib.SMTPResponseException as exc:
                raise SmtpRefused(exc) from None
            except OSError as exc:
                if smtp.handed_over:
                    raise DeliveryUncertain(
                        f"the SMTP server's answer to the message was lost ({exc!r}); it "
                        "is most likely delivered") from exc
                raise
            # Accepted: say goodbye without waiting for the answer.
            with contextlib.suppress(OSError):
                smtp.putcmd("quit")
        finally:
            smtp.close()
