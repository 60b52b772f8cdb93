"""Who is acting: signed-in staff and integrations, mapped onto the staff directory.

Every request to the HTTP API and the web app is made by an :class:`Identity`: a member
of the staff directory (active), with the roles the directory gives them, reached by

- an **OpenID Connect access token** (a JWT from the landlord's provider, Entra ID for
  most): verified against the issuer's keys (:class:`OidcVerifier`), its subject claim
  mapped to the directory's ``subject`` column;
- a **service token** for an integration (:func:`issue_token`): scoped, revocable, with
  only the SHA-256 of its secret kept (``service_tokens``);
- the web app's **session**, made at sign-in by the same mapping (``complaints.web``).

An unknown subject, an inactive person, or a revoked or expired token gets no access
(:class:`AccessDenied`, one line saying what to do). ``by`` on every action is the
identity's staff id, never anything a request says. Viewing a case's personal data is
recorded (:func:`record_view`). Logs carry staff ids and token ids only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog
from sqlmodel import Session, select

from complaints.directory import find_by_subject, find_staff, roles_of
from domain.permissions import CaseRelation, Matrix
from models.access import CaseViewRow, ServiceTokenRow
from models.limits import staff_key
from models.tables import ComplaintRow, StaffRow, utcnow

__all__ = [
    "TOKEN_PREFIX",
    "AccessDenied",
    "Identity",
    "OidcVerifier",
    "identity_of",
    "issue_token",
    "list_tokens",
    "record_view",
    "relation_to",
    "revoke_token",
    "check_token",
    "token_identity",
    "touch_token",
]

log = structlog.wrap_logger(logging.getLogger(__name__))

#: Service tokens read ``cmpt_<token id>.<secret>``: the id can be logged, the secret never.
TOKEN_PREFIX = "cmpt_"


class AccessDenied(Exception):
    """No access: ``status`` 401 (not signed in, bad token) or 403 (not allowed)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Identity:
    """A person or integration acting, as the staff directory knows them.

    Attributes:
        staff_id: Their staff id: ``by`` on every action they take.
        display_name: Their name, for pages.
        team: Their team.
        roles: Their roles in the directory.
        via: ``oidc``, ``token``, ``session`` or ``dev``.
        scopes: A service token's scopes, which narrow the roles; None for people.
        token_id: The service token's id, if any.
    """

    staff_id: str
    display_name: str
    team: str
    roles: tuple[str, ...]
    via: str
    scopes: frozenset[str] | None = None
    token_id: str | None = None

    def refusal(self, matrix: Matrix, name: str,
                case: CaseRelation | None = None) -> str | None:
        """Why this identity may not do ``name`` (on ``case``), or None.

        The roles first (the matrix says who may), then a service token's scopes.
        """
        refusal = matrix.refusal(self.roles, name, case)
        if refusal is None and self.scopes is not None and name not in self.scopes:
            return (f"this service token ({self.token_id}) is not scoped for {name}; its "
                    f"scopes are {', '.join(sorted(self.scopes)) or 'none'} (make a new "
                    "token with complaints staff token create --scope ...)")
        return refusal

    def may(self, matrix: Matrix, name: str, case: CaseRelation | None = None) -> bool:
        """Whether this identity may do ``name`` (on ``case``)."""
        return self.refusal(matrix, name, case) is None


def identity_of(row: StaffRow | None, *, via: str, shown: str) -> Identity:
    """The identity of a directory row, refusing an unknown or inactive person.

    Args:
        row: The directory's row for them, or None.
        via: How they came (see :class:`Identity`).
        shown: How to name them in a refusal (a subject or staff id, never a name).

    Raises:
        AccessDenied: 403 when there is no such person or they are inactive.

    """
    if row is None:
        raise AccessDenied(403, f"{shown} is not in the staff directory: an administrator "
                                "adds them (complaints staff add ... --subject) or links "
                                "them (complaints staff update ID --subject)")
    if not row.active:
        raise AccessDenied(403, f"{row.staff_id} is inactive in the staff directory: an "
                                f"administrator can make them active again "
                                f"(complaints staff activate {row.staff_id})")
    return Identity(staff_id=row.staff_id, display_name=row.display_name, team=row.team,
                    roles=roles_of(row), via=via)


def relation_to(session: Session, who: Identity, reference: str) -> CaseRelation | None:
    """How ``who`` stands to the case ``reference`` (None: no such case in the database)."""
    case = session.get(ComplaintRow, reference)
    if case is None:
        return None
    handler = find_staff(session, case.handler_id) if case.handler_id else None
    own = case.handler_id is not None and staff_key(case.handler_id) == staff_key(who.staff_id)
    team = handler.team if handler is not None else None
    return CaseRelation(handler_id=case.handler_id, handler_team=team, own=own,
                        same_team=team is not None and team == who.team)


def record_view(session: Session, who: Identity, reference: str, what: str, via: str) -> None:
    """Record that ``who`` viewed ``what`` of a case (Code 5.12; accountable access).

    ``session`` must be a writing session (the API's and web app's go through
    ``ApiContext.write``).
    """
    session.add(CaseViewRow(reference=reference, staff_id=who.staff_id, what=what[:120],
                            via=via))
    session.commit()


# --- service tokens -------------------------------------------------------------------


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_token(session: Session, staff_id: str, *, scopes: Iterable[str], label: str,
                created_by: str, matrix: Matrix,
                expires_in: dt.timedelta | None = None) -> tuple[ServiceTokenRow, str]:
    """Make a service token acting as ``staff_id`` within ``scopes``.

    Returns:
        The stored row and the token itself, which is shown once and never kept.

    Raises:
        AccessDenied: Unknown or inactive holder (403), no scope or a scope beyond the
            holder's roles (400).

    """
    row = find_staff(session, staff_id)
    holder = identity_of(row, via="token", shown=f"staff id '{staff_id}'")
    wanted = sorted(set(scopes))
    if not wanted:
        raise AccessDenied(400, "give at least one --scope (what the token may do)")
    beyond = [s for s in wanted if not matrix.allowed(holder.roles, s)]
    if beyond:
        raise AccessDenied(400, f"{holder.staff_id}'s roles ({', '.join(holder.roles)}) "
                                f"do not allow {', '.join(beyond)}: a token cannot do more "
                                "than its holder")
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    stored = ServiceTokenRow(
        token_id=token_id, secret_sha256=_digest(secret), staff_id=holder.staff_id,
        scopes=",".join(wanted), label=label[:200], created_by=created_by,
        expires_at=utcnow() + expires_in if expires_in else None)
    session.add(stored)
    session.commit()
    log.info("service_token_issued", token_id=token_id, staff_id=holder.staff_id,
             scopes=stored.scopes, by=created_by)
    return stored, f"{TOKEN_PREFIX}{token_id}.{secret}"


def revoke_token(session: Session, token_id: str, *, by: str | None = None) -> ServiceTokenRow:
    """Revoke a service token at once.

    Args:
        session: A session on the complaints database.
        token_id: The token's id (never its secret).
        by: Who revoked it, for the log (the web app's signed-in person; the CLI has none).

    Raises:
        AccessDenied: 404 when there is no such token.

    """
    row = session.get(ServiceTokenRow, token_id)
    if row is None:
        raise AccessDenied(404, f"no service token {token_id!r}: complaints staff token "
                                "list (or the web app's Staff page) shows them")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(row)
        session.commit()
        log.info("service_token_revoked", token_id=token_id, by=by)
    return row


def list_tokens(session: Session) -> list[ServiceTokenRow]:
    """Every service token, newest first (secrets are never stored)."""
    return list(session.exec(select(ServiceTokenRow)
                             .order_by(ServiceTokenRow.created_at.desc())))  # type: ignore[attr-defined]


#: How stale a service token's ``last_used_at`` may get before a use writes it again.
TOKEN_TOUCH_EVERY = dt.timedelta(minutes=5)


def check_token(session: Session, token: str) -> tuple[Identity, bool]:
    """The identity a service token acts as, read only; and whether its use is due a stamp.

    Args:
        session: A session (a reading one will do: nothing is written).
        token: The bearer token.

    Returns:
        The identity, and True when ``last_used_at`` is older than
        :data:`TOKEN_TOUCH_EVERY` (see :func:`touch_token`).

    Raises:
        AccessDenied: 401 for a malformed, unknown, revoked or expired token; 403 when
            its holder left the directory or was made inactive.

    """
    body = token[len(TOKEN_PREFIX):]
    token_id, _, secret = body.partition(".")
    row = session.get(ServiceTokenRow, token_id) if token_id and secret else None
    if row is None or not hmac.compare_digest(row.secret_sha256, _digest(secret)):
        raise AccessDenied(401, "unknown service token: ask an administrator for a new one")
    now = utcnow()
    if row.revoked_at is not None:
        raise AccessDenied(401, f"service token {token_id} was revoked: ask an "
                                "administrator for a new one")
    if row.expires_at is not None and row.expires_at <= now:
        raise AccessDenied(401, f"service token {token_id} expired: ask an administrator "
                                "for a new one")
    person = identity_of(find_staff(session, row.staff_id), via="token",
                         shown=f"staff id '{row.staff_id}'")
    due = row.last_used_at is None or now - row.last_used_at > TOKEN_TOUCH_EVERY
    return (Identity(staff_id=person.staff_id, display_name=person.display_name,
                     team=person.team, roles=person.roles, via="token",
                     scopes=frozenset(filter(None, row.scopes.split(","))),
                     token_id=token_id), due)


def touch_token(session: Session, token_id: str) -> None:
    """Stamp a service token's ``last_used_at`` (coarse: a busy integration writes rarely)."""
    row = session.get(ServiceTokenRow, token_id)
    if row is not None:
        row.last_used_at = utcnow()
        session.add(row)
        session.commit()


def token_identity(session: Session, token: str) -> Identity:
    """The identity a service token acts as, stamping its use when due (a writing session).

    Raises:
        AccessDenied: As :func:`check_token`.

    """
    identity, due = check_token(session, token)
    if due and identity.token_id is not None:
        touch_token(session, identity.token_id)
    return identity


# --- OpenID Connect access tokens -----------------------------------------------------


#: The signature algorithms accepted on access tokens (never ``none`` or HMAC).
_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384"]


@dataclass
class OidcVerifier:
    """Verifies the provider's JWT access tokens against its published keys.

    The discovery document and key set are fetched on first use and again when a token
    names a key not seen yet (the provider rotated its keys), at most once a minute.

    Attributes:
        issuer: The provider's issuer URL, exactly as its tokens carry it.
        audience: The audience access tokens for this API carry.
        subject_claim: The claim that names the person (``sub``; Entra ID ``oid``).
    """

    issuer: str
    audience: str
    subject_claim: str = "sub"
    _keys: Any = None
    _discovery: dict[str, Any] = field(default_factory=dict)
    _fetched_at: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def discovery(self) -> dict[str, Any]:
        """The provider's discovery document (fetched once)."""
        if not self._discovery:
            url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
            async with httpx.AsyncClient(timeout=10) as http:
                response = await http.get(url)
                response.raise_for_status()
                self._discovery = response.json()
        return self._discovery

    async def _key_set(self, refresh: bool) -> Any:
        from joserfc.jwk import KeySet

        async with self._lock:
            stale = time.monotonic() - self._fetched_at > 60
            if self._keys is None or (refresh and stale):
                document = await self.discovery()
                async with httpx.AsyncClient(timeout=10) as http:
                    response = await http.get(document["jwks_uri"])
                    response.raise_for_status()
                self._keys = KeySet.import_key_set(response.json())
                self._fetched_at = time.monotonic()
            return self._keys

    async def subject(self, token: str) -> str:
        """The verified subject of an access token.

        Raises:
            AccessDenied: 401 when the token is not valid for this API (signature,
                issuer, audience, expiry), names no subject, or the provider's keys
                cannot be fetched.

        """
        from joserfc import jwt
        from joserfc.errors import JoseError

        registry = jwt.JWTClaimsRegistry(
            leeway=30, iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.audience}, exp={"essential": True})
        try:
            for refresh in (False, True):
                keys = await self._key_set(refresh=refresh)
                try:
                    decoded = jwt.decode(token, keys, algorithms=_ALGORITHMS)
                    break
                except (JoseError, ValueError):  # maybe a key rotated in since the fetch
                    if refresh:
                        raise
            registry.validate(decoded.claims)
            claims = decoded.claims
        except (JoseError, ValueError) as exc:
            raise AccessDenied(401, f"the access token is not valid for this API "
                                    f"({exc.__class__.__name__}): sign in again") from None
        except (httpx.HTTPError, KeyError) as exc:
            raise AccessDenied(401, f"cannot check the access token: the sign-in provider "
                                    f"did not answer ({exc.__class__.__name__})") from None
        value = claims.get(self.subject_claim)
        if not isinstance(value, str) or not value:
            raise AccessDenied(401, f"the access token has no {self.subject_claim} claim: "
                                    "check OIDC_SUBJECT_CLAIM")
        return value


async def bearer_identity(context: Any, session: Session, token: str) -> Identity:
    """The identity behind a bearer token: a service token, or an OIDC access token.

    Args:
        context: The app's context (its ``write`` runs a service token's bookkeeping).
        session: A reading session.
        token: The bearer token.

    Raises:
        AccessDenied: As :func:`token_identity` and :meth:`OidcVerifier.subject`; 401
            when the token is a JWT and no OIDC provider is configured.

    """
    if token.startswith(TOKEN_PREFIX):
        # Checked on the reading session, off the event loop: a write session would take
        # SQLite's write lock on every request, queueing each one behind the worker's
        # recording. Only the coarse last-used stamp writes, every few minutes per token.
        identity, due = await asyncio.to_thread(check_token, session, token)
        if due and identity.token_id is not None:
            token_id = identity.token_id
            await context.write(lambda writer: touch_token(writer, token_id))
        return identity
    verifier: OidcVerifier | None = context.verifier
    if verifier is None:
        raise AccessDenied(401, "this deployment takes service tokens only (OIDC_ISSUER "
                                "is not set)")
    subject = await verifier.subject(token)
    return identity_of(find_by_subject(session, subject), via="oidc",
                       shown=f"subject '{subject[:80]}'")
