"""The ``complaints webhooks`` commands: see and push the integrations' signed webhooks.

``complaints webhooks list`` prints how many events are pending, delivered and failed, and
the latest that failed or are waiting to be tried again (event id, attempts, the one-line
error: never a payload). ``complaints webhooks deliver`` runs one delivery pass now, as the
worker's dispatcher does every few seconds (``complaints.webhooks``). Both read the
complaints database only: no worker or Temporal needed. Both are the operator's: with
``API_URL`` set (the CLI's remote mode) they refuse, with one line, to run
(``complaints.remote_scope``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator

import click
from sqlmodel import Session

from complaints.settings import Settings

__all__ = ["register"]


@contextlib.contextmanager
def _database(settings: Settings) -> Iterator[Session]:
    """A session on the complaints database at the newest schema."""
    from complaints.casefiles_cli import open_for_command
    from complaints.db import session_factory

    engine = open_for_command(settings.effective_database_url())
    try:
        with session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def register(cli: click.Group, date_type: click.ParamType | None = None) -> None:
    """Add the ``webhooks`` group to the ``complaints`` group.

    Args:
        cli: The ``complaints`` group.
        date_type: Unused (no command here takes a date); accepted as every ``register`` does.

    """
    del date_type

    @cli.group(help="Signed webhooks for integrations (case.lodged, deadline.breached, "
                    "response.issued), sent to INTEGRATION_WEBHOOK_URL by the worker.")
    def webhooks() -> None:
        pass

    @webhooks.command("list", help="How many events are pending, delivered and failed, and "
                                   "the latest that failed or are being retried.")
    @click.option("--last", type=click.IntRange(min=0, max=1000), default=10, show_default=True,
                  help="How many of the latest failures to show.")
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
    def list_(last: int, as_json: bool) -> None:
        from complaints.webhooks import last_failures, status_counts

        with _database(Settings()) as session:
            counts = status_counts(session)
            failures = list(last_failures(session, last)) if last else []
        if as_json:
            click.echo(json.dumps({"counts": counts, "failures": [
                {"event_id": f.event_id, "type": f.event_type, "status": f.status,
                 "attempts": f.attempts, "last_error": f.last_error,
                 "created_at": f.created_at.isoformat(),
                 "next_attempt_at": f.next_attempt_at.isoformat()
                 if f.next_attempt_at else None} for f in failures]}))
            return
        click.echo("  ".join(f"{status} {count}" for status, count in counts.items()))
        for f in failures:
            retry = (f", next try {f.next_attempt_at.isoformat(timespec='seconds')}"
                     if f.status == "pending" and f.next_attempt_at else "")
            click.echo(f"{f.status:<8} {f.event_id}  attempts {f.attempts}{retry}: "
                       f"{f.last_error}")

    @webhooks.command("deliver", help="Send the events that are due now, once (the worker "
                                      "does this every few seconds by itself).")
    def deliver() -> None:
        import httpx

        from complaints.db import make_engine, session_factory
        from complaints.webhooks import WebhookDispatcher, WebhookSettingsError

        settings = Settings()
        if not settings.integration_webhook_url or not settings.integration_webhook_secret:
            raise click.ClickException("set INTEGRATION_WEBHOOK_URL and "
                                       "INTEGRATION_WEBHOOK_SECRET first")
        with _database(settings):
            pass  # brings the schema up to date, with a one-line error if it cannot
        engine = make_engine(settings.effective_database_url())

        async def once() -> str:
            async with httpx.AsyncClient() as client:
                dispatcher = WebhookDispatcher(
                    session_factory(engine), settings.integration_webhook_url or "",
                    settings.integration_webhook_secret or "", client)
                done = await dispatcher.deliver_once()
            return (f"delivered {done.delivered}, to retry {done.retrying}, "
                    f"failed {done.failed}")

        try:
            click.echo(asyncio.run(once()))
        except WebhookSettingsError as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            engine.dispose()
