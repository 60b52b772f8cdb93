"""Signing staff in to the web app, and knowing who they are on each page.

- **OpenID Connect** (production): the authorisation code flow with PKCE (S256) through
  authlib's Starlette client, against the issuer in OIDC_ISSUER. The subject claim of
  the ID token (OIDC_SUBJECT_CLAIM) names the person; the staff directory's ``subject``
  column maps it to one active member of staff, or there is no access.
- **Dev sign-in** (``complaints dev`` only, DEV_SIGN_IN): pick an active member of staff
  from the directory. Off unless the setting is on; refused on a non-loopback host.

The session cookie (signed with SESSION_SECRET, ``SameSite=Lax``, ``HttpOnly``) holds
the staff id and a CSRF token; every request looks the person up again, so making
someone inactive locks them out at once. Every form POST carries the CSRF token.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from complaints.api.deps import ContextDep, SessionDep
from complaints.directory import find_by_subject, find_staff, list_staff, roles_of
from complaints.identity import AccessDenied, Identity, identity_of

__all__ = ["SignInRequired", "WebUser", "check_csrf", "csrf_token", "router"]

router = APIRouter(include_in_schema=False)


class SignInRequired(Exception):
    """No one is signed in: the page redirects to sign-in, then back to ``next``."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use)."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(24)
    return str(token)


def check_csrf(request: Request, sent: str | None) -> None:
    """Refuse a POST whose CSRF token is not the session's (403)."""
    expected = request.session.get("csrf")
    if not expected or not sent or not hmac.compare_digest(str(expected), sent):
        raise AccessDenied(403, "this form has expired (or came from another site): "
                                "reload the page and try again")


def _oauth(request: Request) -> Any:
    return request.app.state.oauth


def web_identity(request: Request, session: SessionDep) -> Identity:
    """The signed-in person, looked up again in the directory on every request."""
    staff_id = request.session.get("staff_id")
    if not staff_id:
        raise SignInRequired(request.url.path)
    try:
        return identity_of(find_staff(session, staff_id), via="session",
                           shown=f"staff id '{staff_id}'")
    except AccessDenied:
        request.session.clear()
        raise
    finally:
        session.rollback()  # no transaction held while the page awaits (complaints.api.deps)


WebUser = Annotated[Identity, Depends(web_identity)]


def _safe_next(value: str | None) -> str:
    """Only a path on this site (no scheme, no host): never an open redirect."""
    if value and value.startswith("/") and not value.startswith("//"):
        return value
    return "/"


@router.get("/auth/login")
async def login(request: Request, context: ContextDep, next: str | None = None) -> Response:
    """Start signing in: to the OIDC provider, or the dev picker when that is on."""
    request.session["next"] = _safe_next(next)
    if getattr(request.app.state, "oauth", None) is not None:
        redirect_uri = _callback_url(request, context)
        return await _oauth(request).oidc.authorize_redirect(request, redirect_uri)  # type: ignore[no-any-return]
    if context.settings.dev_sign_in:
        return RedirectResponse("/auth/dev", status_code=303)
    raise AccessDenied(503, "sign-in is not configured: set OIDC_ISSUER, OIDC_CLIENT_ID "
                            "and OIDC_CLIENT_SECRET (or DEV_SIGN_IN for complaints dev)")


def _callback_url(request: Request, context: Any) -> str:
    base = context.settings.public_url
    if base:
        return base.rstrip("/") + "/auth/callback"
    return str(request.url_for("auth_callback"))


@router.get("/auth/callback", name="auth_callback")
async def callback(request: Request, session: SessionDep, context: ContextDep) -> Response:
    """The provider's redirect back: check the code (and PKCE), map the subject to staff."""
    from authlib.integrations.base_client.errors import OAuthError

    oauth = getattr(request.app.state, "oauth", None)
    if oauth is None:
        raise AccessDenied(404, "OpenID Connect sign-in is not configured")
    try:
        token = await oauth.oidc.authorize_access_token(request)
    except OAuthError as exc:
        raise AccessDenied(401, f"sign-in failed ({exc.error}): try again") from None
    claims = token.get("userinfo") or {}
    subject = claims.get(context.settings.oidc_subject_claim)
    if not isinstance(subject, str) or not subject:
        raise AccessDenied(401, f"the sign-in gave no {context.settings.oidc_subject_claim} "
                                "claim: check OIDC_SUBJECT_CLAIM")
    person = identity_of(find_by_subject(session, subject), via="oidc",
                         shown=f"subject '{subject[:80]}'")
    return _signed_in(request, person)


def _signed_in(request: Request, person: Identity) -> Response:
    following = _safe_next(request.session.get("next"))
    request.session.clear()  # a new session at sign-in: no fixation
    request.session["staff_id"] = person.staff_id
    csrf_token(request)
    return RedirectResponse(following, status_code=303)


@router.get("/auth/dev")
def dev_picker(request: Request, context: ContextDep, session: SessionDep) -> Response:
    """Dev sign-in: choose a seeded member of staff (only when DEV_SIGN_IN is on)."""
    if not context.settings.dev_sign_in:
        raise AccessDenied(404, "dev sign-in is off (it is for complaints dev only)")
    people = [(row.staff_id, row.display_name, ", ".join(roles_of(row)), row.team)
              for row in list_staff(session)]
    templates = request.app.state.templates
    return templates.TemplateResponse(request, "signin_dev.html", {
        "people": people, "csrf": csrf_token(request), "user": None})


@router.post("/auth/dev")
def dev_sign_in(request: Request, context: ContextDep, session: SessionDep,
                staff_id: Annotated[str, Form(max_length=64)],
                csrf: Annotated[str, Form()]) -> Response:
    """Sign in as the chosen member of staff (dev only)."""
    if not context.settings.dev_sign_in:
        raise AccessDenied(404, "dev sign-in is off (it is for complaints dev only)")
    check_csrf(request, csrf)
    person = identity_of(find_staff(session, staff_id), via="dev",
                         shown=f"staff id '{staff_id}'")
    return _signed_in(request, person)


@router.post("/auth/logout")
def logout(request: Request, csrf: Annotated[str, Form()]) -> Response:
    """Sign out: the session is cleared."""
    check_csrf(request, csrf)
    request.session.clear()
    return RedirectResponse("/auth/signed-out", status_code=303)


@router.get("/auth/signed-out")
def signed_out(request: Request) -> Response:
    """The page after signing out."""
    return request.app.state.templates.TemplateResponse(  # type: ignore[no-any-return]
        request, "signed_out.html", {"user": None})


def register_oidc(app: Any, settings: Any) -> None:
    """Register the OIDC client on ``app`` when the settings name a provider."""
    if not (settings.oidc_issuer and settings.oidc_client_id):
        app.state.oauth = None
        return
    from authlib.integrations.starlette_client import OAuth

    oauth = OAuth()
    oauth.register(
        "oidc", client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret,
        server_metadata_url=settings.oidc_issuer.rstrip("/")
        + "/.well-known/openid-configuration",
        client_kwargs={"scope": "openid profile email", "code_challenge_method": "S256"})
    app.state.oauth = oauth
