"""Structured logging: structlog everywhere, JSON when not on a terminal.

Standard-library records (Temporal's ``workflow.logger``, ``activity.logger``, the SDK)
go through structlog's ``ProcessorFormatter`` so every line has one shape. Log lines
carry references, states and kinds, never residents' names, addresses or complaint text.

Exceptions are logged as their traceback (where) and type (what) with their text
withheld, but for the parts that never hold personal data (:func:`withheld_traceback`):
an exception's text quotes whatever it was given, and the Temporal SDK logs failures
caused by payloads. The full failure stays in the workflow's history, encrypted, for
operators allowed to decode it.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback

import structlog
from pydantic import ValidationError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.workflow import NondeterminismError, ReadOnlyContextError

_SHARED: list[structlog.types.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(*, json: bool | None = None, level: str = "INFO") -> None:
    """Route structlog and stdlib logging to stderr, as JSON unless on a terminal.

    Args:
        json: Force JSON (True) or console (False); None decides by ``isatty``.
        level: The root log level.
    """
    use_json = (not sys.stderr.isatty()) if json is None else json
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer())
    structlog.configure(
        processors=[*_SHARED, _render_exception,
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_FILTER)  # any library's record, as the SDK's (see the filter)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_SHARED, structlog.stdlib.ExtraAdder(), _render_exception],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # transitions logs every trigger at INFO, replays included.
    logging.getLogger("transitions").setLevel(logging.WARNING)
    withhold_payloads_from_sdk_logs()


#: How Python joins a chain of exceptions in a traceback.
_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"
#: Status codes (RFC 3463) at the start of an SMTP server's answer: all that is kept of it.
_SMTP_STATUS = re.compile(rb"^[245]\.\d{1,3}\.\d{1,3}")
#: Messages in which the SDK quotes an exception's text (the rest of its lines never do).
_SDK_QUOTED_ERROR = re.compile(r"(original error|with error of type [^:]*): .*", re.DOTALL)
_WITHHELD = "(text withheld: it may quote personal data)"


def _qualified(kind: type[BaseException]) -> str:
    """An exception type's full name, as a traceback's last line gives it."""
    name = f"{kind.__module__}.{kind.__qualname__}"
    return name.removeprefix("builtins.")


def _what_is_safe_to_say(error: BaseException) -> str:
    """What of ``error``'s text may be logged: only parts that never hold personal data.

    An exception's text quotes whatever it was given: a payload the SDK could not decode,
    an SMTP server's refusal naming the address, a database error with the row it was
    writing. Kept are the texts Temporal writes about commands and calls (a
    nondeterminism, a read-only context, the server's answer to a call), the ``type`` of
    an ``ApplicationError`` (its message may be another exception's text, carried from an
    activity; other Temporal failures carry such text too), operating-system errors'
    ``strerror``, SMTP reply codes, database error codes, and a validation error's fields
    and kinds of fault.
    """
    if isinstance(error, ApplicationError):
        retry = ", non-retryable" if error.non_retryable else ""
        return f"type {error.type or 'ApplicationError'}{retry}; {_WITHHELD}"
    if isinstance(error, NondeterminismError | ReadOnlyContextError | RPCError):
        return (str(error).strip().splitlines() or [""])[0][:500]
    if isinstance(error, ValidationError):
        faults = []
        for fault in error.errors(include_url=False, include_context=False,
                                  include_input=False)[:10]:
            loc = [str(part) for part in fault["loc"]]
            if fault["type"] == "extra_forbidden" and loc:
                loc[-1] = "<unknown field>"  # the name is whatever the sender wrote
            faults.append(f"{'.'.join(loc) or 'input'}: {fault['type']}")
        count = error.error_count()
        return (f"{count} validation error{'s' if count != 1 else ''} for {error.title}: "
                + "; ".join(faults))
    code = getattr(error, "smtp_code", None)
    if isinstance(code, int):
        answer = getattr(error, "smtp_error", b"")
        status = _SMTP_STATUS.match(answer) if isinstance(answer, bytes) else None
        return f"SMTP reply {code}{' ' + status.group().decode() if status else ''}"
    refused = getattr(error, "recipients", None)  # smtplib.SMTPRecipientsRefused
    if isinstance(refused, dict):
        codes = sorted({str(answer[0]) for answer in refused.values()
                        if isinstance(answer, tuple) and answer})
        return f"recipients refused: {len(refused)}, SMTP reply {', '.join(codes) or '?'}"
    original = getattr(error, "orig", None)  # sqlalchemy.exc.DBAPIError: the driver's error
    if isinstance(original, BaseException):
        return f"{_qualified(type(original))} {_database_code(original)}{_WITHHELD}"
    if _database_code(error):
        return f"{_database_code(error)}{_WITHHELD}"
    if isinstance(error, OSError) and error.errno is not None and error.strerror:
        return f"[Errno {error.errno}] {error.strerror}"  # never the file name
    return _WITHHELD


def _database_code(error: BaseException) -> str:
    """A database driver's error code (SQLite's name, PostgreSQL's SQLSTATE), then "; "."""
    code = (getattr(error, "sqlite_errorname", None) or getattr(error, "sqlstate", None)
            or getattr(error, "pgcode", None))
    return f"{code}; " if isinstance(code, str) and code else ""


def withheld_traceback(error: BaseException) -> str:
    """``error``'s traceback as Python prints it, with each exception's text withheld.

    Where it happened (files, lines, code) and what (each exception's type) are kept, with
    the parts of the text that never hold personal data (see ``_what_is_safe_to_say``).

    Args:
        error: The exception, with its causes and context.

    Returns:
        The traceback text, oldest exception first.
    """
    chain: list[tuple[BaseException, str]] = [(error, "")]
    seen = {id(error)}
    current: BaseException | None = error
    while current is not None and len(chain) < 20:
        if current.__cause__ is not None:
            current, joint = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, joint = current.__context__, _CONTEXT
        else:
            break
        if id(current) in seen:
            break
        seen.add(id(current))
        chain.append((current, joint))
    parts: list[str] = []
    for exc, joint in reversed(chain):
        if exc.__traceback__ is not None:
            parts.append("Traceback (most recent call last):\n")
            parts.extend(traceback.format_tb(exc.__traceback__))
        parts.append(f"{_qualified(type(exc))}: {_what_is_safe_to_say(exc)}\n")
        parts.append(joint)
    return "".join(parts).rstrip("\n")


def _exception_of(exc_info: object) -> BaseException | None:
    """The exception a log call's ``exc_info`` names (True: the one being handled)."""
    if exc_info is True:
        exc_info = sys.exc_info()
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3 \
            and isinstance(exc_info[1], BaseException):
        return exc_info[1]
    return None


def _render_exception(logger: object, method: str,
                      event: structlog.types.EventDict) -> structlog.types.EventDict:
    """Put a record's exception in ``exception`` as a traceback with its text withheld.

    Covers structlog's own ``exc_info`` and standard-library records, including those an
    SDK filter already rendered (``exc_text``). Without it the JSON renderer would write
    the exception's ``repr``, text and all, and no traceback.
    """
    exc_info = event.pop("exc_info", None)
    error = _exception_of(exc_info) if exc_info else None
    if error is not None:
        event["exception"] = withheld_traceback(error)
    else:
        record = event.get("_record")
        text = getattr(record, "exc_text", None) if record is not None else None
        if text:
            event["exception"] = text
    return event


class _WithholdExceptionText(logging.Filter):
    """Render a record's exception with its text withheld, for every handler after.

    The SDK logs an activity's failure (at WARNING), an activation's (at WARNING) and an
    update's rejection (at DEBUG) with the exception, and a few messages quote an
    exception's text; the exception may be a payload that failed to decode, or another
    exception quoting personal data. The record keeps its message; its traceback becomes
    ``exc_text`` (which ``logging.Formatter`` and :func:`configure_logging`'s formatter
    both print) with each exception's text withheld (see :func:`withheld_traceback`).
    Installed on the SDK's loggers (every handler sees their records so) and on
    :func:`configure_logging`'s handler (every other library's records).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = _exception_of(record.exc_info) if record.exc_info else None
        if error is not None:
            record.exc_text = withheld_traceback(error)
            record.exc_info = None
        if record.name.startswith("temporalio") and isinstance(record.msg, str) \
                and _SDK_QUOTED_ERROR.search(record.msg):
            record.msg = _SDK_QUOTED_ERROR.sub(rf"\1: {_WITHHELD}", record.getMessage())
            record.args = ()
        return True


_FILTER = _WithholdExceptionText()


def withhold_payloads_from_sdk_logs() -> None:
    """Install the filter on the SDK's loggers (idempotent; see the filter's docstring)."""
    for name in ("temporalio.worker._workflow_instance", "temporalio.worker._workflow",
                 "temporalio.worker._activity", "temporalio.activity", "temporalio.workflow",
                 "temporalio.worker._worker", "temporalio.worker._nexus"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
