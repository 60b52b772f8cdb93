"""Structured logging: structlog everywhere, JSON when not on a terminal.

Standard-library records (Temporal's ``workflow.logger``, ``activity.logger``, the SDK)
go through structlog's ``ProcessorFormatter`` so every line has one shape. Log lines
carry references, states and kinds, never residents' names, addresses or complaint text.
"""

from __future__ import annotations

import logging
import sys

import structlog

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
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_SHARED, structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # transitions logs every trigger at INFO, replays included.
    logging.getLogger("transitions").setLevel(logging.WARNING)
    withhold_payloads_from_sdk_logs()


class _WithholdValidationDetails(logging.Filter):
    """Drop the traceback of a record caused by a payload that failed validation.

    The SDK logs why an update's arguments could not be decoded (at DEBUG) and why an
    activation failed (at WARNING) with the exception; a pydantic error names the fields
    it refused, and an unknown field's name is whatever the sender wrote, so it may be
    personal data. The line stays, with the exception's type only.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        seen = 0
        while error is not None and seen < 20:
            if type(error).__name__ == "ValidationError":
                record.msg = f"{record.getMessage()} (ValidationError: details withheld)"
                record.args = ()
                record.exc_info = None
                record.exc_text = None
                break
            error = error.__cause__ or error.__context__
            seen += 1
        return True


_FILTER = _WithholdValidationDetails()


def withhold_payloads_from_sdk_logs() -> None:
    """Install the filter on the SDK's loggers (idempotent; see the filter's docstring)."""
    for name in ("temporalio.worker._workflow_instance", "temporalio.worker._workflow",
                 "temporalio.worker._activity", "temporalio.activity", "temporalio.workflow"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
