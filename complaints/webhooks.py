"""Signed webhooks for integrations: case lodged, deadline breached, response issued.

Two halves, joined by the ``webhook_deliveries`` table (:class:`models.access.WebhookDeliveryRow`):

- **Recorded exactly once.** :func:`webhook_events` says which webhook events a recorded
  case event makes, and :func:`record_webhook_events` inserts the missing ones. The
  recording activity (``activities.casework``) calls both inside the transaction that
  records the case event, so an event's webhooks are stored if and only if the event is:
  a retried activity or a worker killed half-way neither duplicates nor loses one. Each
  ``event_id`` is stable from the workflow (``{reference}:{type}:{seq or deadline key}``)
  and inserted only if absent.
- **Delivered at least once, signed.** :class:`WebhookDispatcher` runs in the worker
  process as a background task: it POSTs due rows oldest first with the Standard Webhooks
  headers (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``), marks a 2xx
  answer delivered, and retries anything else with exponential backoff until
  :data:`MAX_ATTEMPTS`, after which the row is ``failed`` (logged). The same event may
  reach a receiver more than once (a crash after the POST, two workers); receivers drop
  repeats by ``webhook-id``.

Payloads hold no personal data: the reference, landlord, state and stage, and what
happened (a deadline's kind, label and dates; a response's stage and decision). Log lines
carry event ids, types and attempt counts only, never a payload or a receiver's answer.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import httpx
import structlog
from sqlalchemy import Connection, bindparam, insert, select, update
from sqlmodel import Session

from complaints.settings import Settings
from models.access import WebhookDeliveryRow
from models.case import CaseFile
from models.events import CaseEvent
from models.messages import DeadlineStatus
from models.tables import utcnow

__all__ = [
    "BACKOFF_BASE_SECONDS",
    "BACKOFF_CAP_SECONDS",
    "CASE_LODGED",
    "DEADLINE_BREACHED",
    "MAX_ATTEMPTS",
    "RESPONSE_ISSUED",
    "WebhookDispatcher",
    "WebhookEvent",
    "WebhookSettingsError",
    "backoff_seconds",
    "dispatcher_from_settings",
    "record_webhook_events",
    "sign",
    "verify_signature",
    "webhook_events",
]

log = structlog.get_logger(__name__)

#: The event types, as receivers see them in ``type``.
CASE_LODGED = "case.lodged"
DEADLINE_BREACHED = "deadline.breached"
RESPONSE_ISSUED = "response.issued"

#: Attempts before a row is given up as ``failed`` (about 5 hours of retrying).
MAX_ATTEMPTS = 12
#: The wait after the first failed attempt; it doubles with each failure, up to the cap.
BACKOFF_BASE_SECONDS = 30.0
BACKOFF_CAP_SECONDS = 3600.0
#: How often the dispatcher looks for due rows when it has nothing to send.
POLL_SECONDS = 5.0
#: How long a receiver may take to answer before the attempt counts as failed.
TIMEOUT_SECONDS = 10.0
#: Rows taken per pass: a backlog is sent in batches, oldest first.
BATCH = 50
#: Signatures older or newer than this are refused by :func:`verify_signature` (replays).
TOLERANCE_SECONDS = 300
#: The shortest signing key accepted (bytes): shorter ones can be guessed.
MIN_SECRET_BYTES = 16
#: The prefix of a Standard Webhooks secret, whose rest is the key in base64.
SECRET_PREFIX = "whsec_"

_TABLE = WebhookDeliveryRow.__table__  # type: ignore[attr-defined]


class WebhookSettingsError(ValueError):
    """The integration webhook's URL or secret cannot be used (one line, the fix)."""


@dataclasses.dataclass(frozen=True)
class WebhookEvent:
    """One webhook event to record: its stable id, type, case and JSON body."""

    event_id: str
    event_type: str
    reference: str
    payload: str


# -- which events a case event makes ------------------------------------------------------


def webhook_events(event: CaseEvent, case: CaseFile, *, first: bool) -> list[WebhookEvent]:
    """The webhook events that recording ``event`` makes (none is personal data).

    Args:
        event: The case event being recorded.
        case: The case file after the event (its responses give a response's decision).
        first: Whether this is the first event recorded for the case: the intake's, which
            makes ``case.lodged``.

    Returns:
        ``case.lodged`` for the first event; ``response.issued`` when the event's action
        is an accepted ``respond`` (stage 1 or final response); one ``deadline.breached``
        per deadline the event carries as breached (a later event carrying the same
        breached deadline again makes the same id, which is inserted once).

    """
    found: list[WebhookEvent] = []
    if first:
        found.append(_event(event, CASE_LODGED, "", event.at,
                            {"received_on": case.received_on.isoformat()}))
    if event.action is not None and event.action.get("trigger") == "respond" \
            and case.responses:
        response = case.responses[-1]
        found.append(_event(event, RESPONSE_ISSUED, str(event.seq), response.at, {
            "response": {"stage": response.stage, "decision": response.decision.value}}))
    for deadline in event.deadlines:
        if deadline.status is DeadlineStatus.BREACHED:
            found.append(_event(event, DEADLINE_BREACHED, deadline.key,
                                deadline.breached_at or event.at, {"deadline": {
                                    "key": deadline.key, "kind": deadline.kind.value,
                                    "label": deadline.label, "stage": deadline.stage,
                                    "provision": deadline.provision,
                                    "due": deadline.due.isoformat(),
                                    "ends_at": _instant(deadline.ends_at)}}))
    return found


def _event(event: CaseEvent, event_type: str, key: str, occurred_at: dt.datetime,
           extra: dict[str, Any]) -> WebhookEvent:
    """One webhook event of ``event`` with the case's header and ``extra`` as its data."""
    event_id = f"{event.reference}:{event_type}" + (f":{key}" if key else "")
    header = event.header
    body = {"id": event_id, "type": event_type, "occurred_at": _instant(occurred_at),
            "data": {"reference": event.reference, "landlord": header.landlord,
                     "state": header.state, "stage": header.stage, **extra}}
    # Compact and key-sorted: the stored text is the exact body that is signed and sent.
    return WebhookEvent(event_id=event_id, event_type=event_type, reference=event.reference,
                        payload=json.dumps(body, sort_keys=True, separators=(",", ":")))


def _instant(at: dt.datetime) -> str:
    """An instant as ISO 8601 UTC with a ``Z``."""
    return at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


_STORED = select(_TABLE.c.event_id).where(
    _TABLE.c.event_id.in_(bindparam("ids", expanding=True)))
_INSERT = insert(_TABLE)


def record_webhook_events(connection: Connection, url: str,
                          events: Sequence[WebhookEvent]) -> int:
    """Insert the events not stored yet, as pending, on ``connection``'s transaction.

    Returns:
        How many rows were inserted.

    """
    if not events:
        return 0
    stored = set(connection.scalars(_STORED, {"ids": [e.event_id for e in events]}))
    now = utcnow()
    rows = [{"event_id": e.event_id, "reference": e.reference, "event_type": e.event_type,
             "url": url, "payload": e.payload, "status": "pending", "attempts": 0,
             "last_error": None, "created_at": now, "next_attempt_at": None,
             "delivered_at": None}
            for e in {e.event_id: e for e in events}.values() if e.event_id not in stored]
    if rows:
        connection.execute(_INSERT, rows)
    return len(rows)


# -- signing -------------------------------------------------------------------------------


def _key(secret: str) -> bytes:
    """The signing key: a ``whsec_`` secret's base64 bytes, else the secret's UTF-8 bytes.

    Raises:
        WebhookSettingsError: A ``whsec_`` secret that is not base64.

    """
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
        except binascii.Error:
            raise WebhookSettingsError(
                "INTEGRATION_WEBHOOK_SECRET starts with whsec_ but the rest is not base64"
            ) from None
    return secret.encode()


def sign(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body``."""
    mac = hmac.new(_key(secret), f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def verify_signature(secret: str, headers: Mapping[str, str] | Any, body: bytes | str, *,
                     tolerance_seconds: int = TOLERANCE_SECONDS,
                     now: float | None = None) -> bool:
    """Whether a received webhook was signed with ``secret``, recently (for receivers).

    Args:
        secret: The shared secret (``whsec_`` + base64, or plain text).
        headers: The request's headers (any mapping with ``items()``; names in any case).
        body: The raw request body, exactly as received.
        tolerance_seconds: How far ``webhook-timestamp`` may be from now (replays).
        now: The current unix time (tests); default the clock.

    Returns:
        True when the headers are present, the timestamp is within the tolerance and one
        of the space-separated ``v1,`` signatures matches (constant-time comparison).

    """
    named = {str(k).lower(): str(v) for k, v in headers.items()}
    event_id = named.get("webhook-id")
    stamp = named.get("webhook-timestamp")
    signatures = named.get("webhook-signature")
    if not event_id or not stamp or not signatures:
        return False
    try:
        timestamp = int(stamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    raw = body.encode() if isinstance(body, str) else body
    try:
        expected = sign(secret, event_id, timestamp, raw)
    except WebhookSettingsError:
        return False
    return any(hmac.compare_digest(expected, given) for given in signatures.split()
               if given.startswith("v1,"))


def backoff_seconds(attempts: int, *, base: float = BACKOFF_BASE_SECONDS,
                    cap: float = BACKOFF_CAP_SECONDS) -> float:
    """The wait after ``attempts`` failed attempts: ``base`` doubled each time, capped."""
    return min(cap, base * 2 ** max(attempts - 1, 0))


# -- delivery -------------------------------------------------------------------------------


@dataclasses.dataclass
class DeliveryPass:
    """What one :meth:`WebhookDispatcher.deliver_once` did."""

    delivered: int = 0
    retrying: int = 0
    failed: int = 0

    @property
    def attempted(self) -> int:
        """Rows POSTed in the pass."""
        return self.delivered + self.retrying + self.failed


_DUE = (select(_TABLE.c.event_id, _TABLE.c.payload, _TABLE.c.attempts,
               _TABLE.c.next_attempt_at)
        .where(_TABLE.c.status == "pending",
               (_TABLE.c.next_attempt_at.is_(None))
               | (_TABLE.c.next_attempt_at <= bindparam("now", type_=_TABLE.c.created_at.type)))
        .order_by(_TABLE.c.created_at, _TABLE.c.event_id))


class WebhookDispatcher:
    """POST pending webhook rows, signed, until each is delivered or given up.

    One pass (:meth:`deliver_once`) takes the due rows oldest first and sends them one at a
    time, in order. Before sending, a row is claimed by moving its ``next_attempt_at`` past
    the attempt's timeout (compare-and-set on the value read), so two dispatchers (two
    worker processes) do not normally send the same row at once. The database work runs
    in a thread, so the worker's event loop is never blocked by it.
    """

    def __init__(self, sessions: Callable[[], Session], url: str, secret: str,
                 client: httpx.AsyncClient, *, max_attempts: int = MAX_ATTEMPTS,
                 backoff_base: float = BACKOFF_BASE_SECONDS,
                 backoff_cap: float = BACKOFF_CAP_SECONDS, poll_seconds: float = POLL_SECONDS,
                 timeout_seconds: float = TIMEOUT_SECONDS, batch: int = BATCH,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        """Configure the dispatcher.

        Args:
            sessions: Opens a session on the complaints database.
            url: Where every event is POSTed (``INTEGRATION_WEBHOOK_URL``).
            secret: Signs each request (``INTEGRATION_WEBHOOK_SECRET``).
            client: Sends the requests; the caller owns (and closes) it.
            max_attempts: Attempts before a row is ``failed``.
            backoff_base: Seconds to wait after the first failure (doubled per failure).
            backoff_cap: The longest wait between attempts, in seconds.
            poll_seconds: How often to look for due rows when idle.
            timeout_seconds: How long a receiver may take to answer.
            batch: Rows taken per pass.
            clock: The current time (tests move it to skip backoff waits).

        Raises:
            WebhookSettingsError: The URL is not http(s), or the secret is too short.

        """
        if not url.startswith(("http://", "https://")):
            raise WebhookSettingsError("INTEGRATION_WEBHOOK_URL must be an http:// or "
                                       "https:// URL")
        if len(_key(secret)) < MIN_SECRET_BYTES:
            raise WebhookSettingsError(
                f"INTEGRATION_WEBHOOK_SECRET must be at least {MIN_SECRET_BYTES} bytes: "
                "use e.g. whsec_ followed by 32 random bytes in base64")
        self.sessions = sessions
        self.url = url
        self.secret = secret
        self.client = client
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self.batch = batch
        self.clock = clock
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    # -- the background task -----------------------------------------------------------

    def start(self) -> None:
        """Start :meth:`run` as a background task of the running event loop."""
        if self._task is None:
            self._stop.clear()
            self._task = asyncio.create_task(self.run(self._stop), name="webhook-dispatcher")

    async def stop(self) -> None:
        """Stop the background task: a request in flight may finish, within its timeout.

        A task still busy after that is cancelled; the row it was sending keeps its claim
        until the claim runs out and is then sent again (at least once).
        """
        self._stop.set()
        if self._task is not None:
            task, self._task = self._task, None
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, timeout=self.timeout_seconds + 5)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; an error is logged and the next pass tries again.

        A pass that filled its batch is followed at once by another (a backlog drains);
        otherwise the next pass is ``poll_seconds`` later.
        """
        log.info("webhook_dispatcher_started", poll_seconds=self.poll_seconds)
        while not stop.is_set():
            full = False
            try:
                done = await self.deliver_once()
                full = done.attempted >= self.batch
            except Exception as exc:  # noqa: BLE001 - never let the worker's task die
                # The type only: a database error's text may quote the row it was writing.
                log.error("webhook_dispatch_error", error=type(exc).__name__)
            if full:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.poll_seconds)
        log.info("webhook_dispatcher_stopped")

    # -- one pass -----------------------------------------------------------------------

    async def deliver_once(self) -> DeliveryPass:
        """Send every due row once, oldest first; what became of them."""
        done = DeliveryPass()
        for row in await asyncio.to_thread(self._due, self.clock()):
            if self._stop.is_set():
                break  # the worker is stopping: the rest wait for the next start
            if not await asyncio.to_thread(self._claim, row.event_id, row.next_attempt_at):
                continue  # another dispatcher has it
            error = await self._post(row.event_id, row.payload.encode())
            outcome = await asyncio.to_thread(self._settle, row.event_id, row.attempts + 1,
                                              error)
            setattr(done, outcome, getattr(done, outcome) + 1)
        return done

    def _due(self, now: dt.datetime) -> list[Any]:
        with self.sessions() as session:
            return list(session.connection().execute(_DUE.limit(self.batch), {"now": now}))

    def _claim(self, event_id: str, seen: dt.datetime | None) -> bool:
        """Lease the row for one attempt, unless someone else changed it since it was read."""
        lease = self.clock() + dt.timedelta(seconds=self.timeout_seconds + 30)
        same = (_TABLE.c.next_attempt_at.is_(None) if seen is None
                else _TABLE.c.next_attempt_at == seen)
        with self.sessions() as session:
            result = session.connection().execute(
                update(_TABLE).where(_TABLE.c.event_id == event_id,
                                     _TABLE.c.status == "pending", same)
                .values(next_attempt_at=lease))
            session.commit()
            return result.rowcount == 1

    async def _post(self, event_id: str, body: bytes) -> str | None:
        """POST one event; None on a 2xx answer, else one line saying why (no body echo)."""
        timestamp = int(time.time())
        headers = {"content-type": "application/json", "webhook-id": event_id,
                   "webhook-timestamp": str(timestamp),
                   "webhook-signature": sign(self.secret, event_id, timestamp, body)}
        try:
            response = await self.client.post(self.url, content=body, headers=headers,
                                              timeout=self.timeout_seconds)
        except httpx.HTTPError as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return f"{type(exc).__name__}: {detail}"[:200].rstrip(": ")
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

    def _settle(self, event_id: str, attempts: int, error: str | None) -> str:
        """Record the attempt; which :class:`DeliveryPass` count it falls in."""
        now = self.clock()
        values: dict[str, Any] = {"attempts": attempts, "url": self.url}
        if error is None:
            outcome = "delivered"
            values |= {"status": "delivered", "delivered_at": now, "last_error": None,
                       "next_attempt_at": None}
        elif attempts >= self.max_attempts:
            outcome = "failed"
            values |= {"status": "failed", "last_error": error, "next_attempt_at": None}
        else:
            outcome = "retrying"
            wait = backoff_seconds(attempts, base=self.backoff_base, cap=self.backoff_cap)
            values |= {"last_error": error,
                       "next_attempt_at": now + dt.timedelta(seconds=wait)}
        with self.sessions() as session:
            session.connection().execute(
                update(_TABLE).where(_TABLE.c.event_id == event_id).values(**values))
            session.commit()
        if outcome == "delivered":
            log.info("webhook_delivered", event_id=event_id, attempts=attempts)
        elif outcome == "failed":
            log.error("webhook_failed", event_id=event_id, attempts=attempts, error=error)
        else:
            log.warning("webhook_retrying", event_id=event_id, attempts=attempts, error=error,
                        next_attempt_at=values["next_attempt_at"].isoformat())
        return outcome


def dispatcher_from_settings(
        settings: Settings) -> tuple[WebhookDispatcher, Callable[[], Awaitable[None]]] | None:
    """The worker's dispatcher for ``settings``, and what closes it; None without a URL.

    Returns:
        The dispatcher (with its own database engine and HTTP client) and an async
        function that closes both, or None when ``INTEGRATION_WEBHOOK_URL`` is not set.

    Raises:
        WebhookSettingsError: The URL is set without a usable secret.

    """
    url = settings.integration_webhook_url
    if not url:
        return None
    if not settings.integration_webhook_secret:
        raise WebhookSettingsError("INTEGRATION_WEBHOOK_URL is set without "
                                   "INTEGRATION_WEBHOOK_SECRET: set both, or neither")
    from complaints.db import make_engine, session_factory

    engine = make_engine(settings.effective_database_url())
    client = httpx.AsyncClient(follow_redirects=False)
    try:
        dispatcher = WebhookDispatcher(session_factory(engine), url,
                                       settings.integration_webhook_secret, client)
    except WebhookSettingsError:
        engine.dispose()
        raise

    async def close() -> None:
        await dispatcher.stop()
        await client.aclose()
        engine.dispose()

    return dispatcher, close


def status_counts(session: Session) -> dict[str, int]:
    """How many rows are in each status."""
    from sqlalchemy import func

    counts = {"pending": 0, "delivered": 0, "failed": 0}
    for status, count in session.connection().execute(
            select(_TABLE.c.status, func.count()).group_by(_TABLE.c.status)):
        counts[status] = count
    return counts


def last_failures(session: Session, limit: int = 10) -> Iterable[Any]:
    """The latest rows that failed or are retrying after an error, newest first."""
    return session.connection().execute(
        select(_TABLE.c.event_id, _TABLE.c.event_type, _TABLE.c.status, _TABLE.c.attempts,
               _TABLE.c.last_error, _TABLE.c.created_at, _TABLE.c.next_attempt_at)
        .where(_TABLE.c.last_error.is_not(None), _TABLE.c.status != "delivered")
        .order_by(_TABLE.c.created_at.desc(), _TABLE.c.event_id.desc()).limit(limit)).all()
