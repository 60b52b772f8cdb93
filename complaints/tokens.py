"""Service tokens as staff manage them, for the CLI and the web app's Staff page alike.

``complaints staff token`` (:mod:`complaints.tokens_cli`) and the Staff page
(:mod:`complaints.web.pages`) both make tokens through :func:`make_token`, check who may
with :func:`check_admin`, and show a token as :func:`token_json`, so that each refuses and
shows the same way. The tokens themselves are issued, checked and revoked in
:mod:`complaints.identity`, which logs each (token and staff ids only, never a secret).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

# Imported where used, so that the CLI (which reads the constants below as it starts)
# does not load the identity and database modules until a token command runs.
if TYPE_CHECKING:
    from sqlmodel import Session

    from complaints.identity import Identity
    from domain.permissions import Matrix
    from models.access import ServiceTokenRow

__all__ = [
    "ALL_SCOPES",
    "MAX_EXPIRES_DAYS",
    "allowed_scopes",
    "check_admin",
    "check_admin_by",
    "expand_scopes",
    "iso",
    "make_token",
    "scope_names",
    "token_json",
    "token_line",
    "token_state",
]

#: The scope that stands for every name the holder's roles allow (a person's own token).
ALL_SCOPES = "all"
#: The longest expiry, in days (ten years; past that, revoke it instead).
MAX_EXPIRES_DAYS = 3650


def iso(value: dt.datetime | None) -> str | None:
    """A UTC time as ISO 8601 with ``Z``, or None."""
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def scope_names() -> list[str]:
    """Every name a token can be scoped for: staff action triggers, then permissions."""
    from domain.permissions import Permission
    from models.actions import ACTION_BY_TRIGGER

    return [*ACTION_BY_TRIGGER, *(p.value for p in Permission)]


def allowed_scopes(holder_roles: Iterable[str], matrix: Matrix) -> list[str]:
    """The names the holder's roles allow: what ``all`` stands for, in :func:`scope_names` order."""
    roles = tuple(holder_roles)
    return [n for n in scope_names() if matrix.allowed(roles, n)]


def expand_scopes(wanted: Iterable[str], holder_roles: Iterable[str],
                  matrix: Matrix) -> list[str]:
    """The scopes asked for, ``all`` expanded to :func:`allowed_scopes`.

    Raises:
        AccessDenied: 400 for a name that is neither an action nor a permission.

    """
    from complaints.identity import AccessDenied
    from domain.permissions import Permission

    asked = set(wanted)
    if ALL_SCOPES in asked:
        return allowed_scopes(holder_roles, matrix)
    unknown = sorted(asked - set(scope_names()))
    if unknown:
        raise AccessDenied(
            400, f"unknown scope {', '.join(unknown)}: use staff action triggers (acknowledge, "
                 f"respond, ...), {', '.join(p.value for p in Permission)}, or all "
                 "(`complaints permissions show` lists them by role)")
    return sorted(asked)


def check_admin(who: Identity, matrix: Matrix, *, named: str = "") -> None:
    """Refuse unless ``who``'s roles allow ``manage_tokens``.

    Args:
        who: The person making or revoking a token.
        matrix: The permission matrix in force.
        named: Put before the reason, to say which input named them (``--by hdl-1: ``).

    Raises:
        AccessDenied: 403, saying who may.

    """
    from complaints.identity import AccessDenied
    from domain.permissions import Permission

    refusal = who.refusal(matrix, Permission.MANAGE_TOKENS)
    if refusal is not None:
        raise AccessDenied(403, f"{named}{refusal}")


def check_admin_by(session: Session, by: str, matrix: Matrix) -> None:
    """The CLI's ``--by``: refuse unless that staff id may manage tokens.

    An empty directory has nobody to check against; the holder must be in it anyway.

    Raises:
        AccessDenied: 403 for someone unknown, inactive, or whose roles do not allow it.

    """
    from sqlalchemy import func
    from sqlmodel import select

    from complaints.directory import find_staff
    from complaints.identity import identity_of
    from models.tables import StaffRow

    if not session.exec(select(func.count()).select_from(StaffRow)).one():
        return
    who = identity_of(find_staff(session, by), via="cli", shown=f"staff id '{by[:64]}' (--by)")
    check_admin(who, matrix, named=f"--by {who.staff_id}: ")


def make_token(session: Session, holder: str, *, wanted: Iterable[str], label: str,
               by: str, matrix: Matrix,
               expires_days: int | None = None) -> tuple[ServiceTokenRow, str]:
    """Make a token for ``holder`` within ``wanted`` (``all`` expanded); ``by`` has been checked.

    Returns:
        The stored row and the token, to be shown once and never kept or logged.

    Raises:
        AccessDenied: As :func:`expand_scopes` and :func:`complaints.identity.issue_token`.

    """
    from complaints.directory import find_staff, roles_of
    from complaints.identity import issue_token

    row = find_staff(session, holder)
    roles = roles_of(row) if row is not None else ()
    return issue_token(session, holder, scopes=expand_scopes(wanted, roles, matrix),
                       label=label, created_by=by, matrix=matrix,
                       expires_in=dt.timedelta(days=expires_days) if expires_days else None)


def token_json(row: ServiceTokenRow) -> dict[str, Any]:
    """A token as plain data: never its secret or the secret's digest."""
    return {"token_id": row.token_id, "staff_id": row.staff_id,
            "scopes": [s for s in row.scopes.split(",") if s], "label": row.label,
            "created_by": row.created_by, "created_at": iso(row.created_at),
            "expires_at": iso(row.expires_at), "revoked_at": iso(row.revoked_at),
            "last_used_at": iso(row.last_used_at)}


def token_state(row: ServiceTokenRow, now: dt.datetime | None = None) -> str:
    """``revoked``, ``expired`` or ``active`` (at ``now``, by default the present)."""
    from models.tables import utcnow

    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= (now or utcnow()):
        return "expired"
    return "active"


def token_line(data: dict[str, Any]) -> str:
    """One line of ``complaints staff token list``: a :func:`token_json` dict."""
    state = f"REVOKED {data['revoked_at']}" if data["revoked_at"] else "active"
    return (f"{data['token_id']}  {data['staff_id']:<12} {state}  "
            f"created {data['created_at']} by {data['created_by']}  "
            f"expires {data['expires_at'] or 'never'}  "
            f"last used {data['last_used_at'] or 'never'}  "
            f"label: {data['label']}  scopes: {', '.join(data['scopes'])}")
