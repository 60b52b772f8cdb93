"""Sending email: the ``Mailer`` protocol and its SMTP implementation.

Letters to residents and notices to staff go out through a ``Mailer``. Each message
carries a Message-ID derived from what it is (a letter id, a notification id), so that a
message sent twice after a crash between sending and recording is recognisably the same
message to the receiving systems.
"""

from __future__ import annotations

import email.policy
import io
import re
import smtplib
import ssl
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.utils import formatdate
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from complaints.settings import Settings

__all__ = ["Mailer", "SmtpMailer", "message_id_for"]

#: The right-hand side of every Message-ID the engine writes.
MESSAGE_ID_DOMAIN = "complaints"

# RFC 5322 dot-atom-text: atext characters and single dots. Anything else (a ':' in a
# letter id, say) would make a Message-ID that mail software cuts short.
_NOT_ATEXT = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]")
_DOTS = re.compile(r"\.{2,}")


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
    return f"<{left}@{MESSAGE_ID_DOMAIN}>"


@runtime_checkable
class Mailer(Protocol):
    """Something that sends one email to one recipient."""

    def send(self, *, to: str, subject: str, text: str, html: str | None,
             message_id: str) -> None:
        """Send one message.

        Args:
            to: The recipient's email address.
            subject: The subject line.
            text: The plain-text body.
            html: An HTML alternative of the body, if any.
            message_id: The Message-ID header, angle brackets included.

        Raises:
            OSError: If the message could not be handed over (``smtplib.SMTPException``
                is an ``OSError``); the caller retries.

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
             message_id: str) -> None:
        """Send one message over a fresh SMTP connection.

        Args:
            to: The recipient's email address.
            subject: The subject line.
            text: The plain-text body.
            html: An HTML alternative, if any.
            message_id: The Message-ID header.

        Raises:
            smtplib.SMTPException: If the server refuses the message.
            OSError: If the server cannot be reached.

        """
        message = self.build(to=to, subject=subject, text=text, html=html,
                             message_id=message_id)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            smtp.ehlo()
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.sendmail(self.sender, [to], self.to_bytes(message))
