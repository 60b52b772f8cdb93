"""Who may do what: the permission matrix, and the one decision made with it.

Pure rules, no I/O beyond reading the matrix's TOML text. The matrix is data
(``domain/permissions.toml``, the defaults; a landlord's own file replaces the roles it
names): each role lists what it ``can`` do (staff actions by trigger name, and the
:class:`Permission` names) and its ``scope``, which cases it may act on. The HTTP API and
the web app ask :meth:`Matrix.refusal` before anything reaches the workflow; the workflow
still applies the Code's own rules (6.13, the states) with the real identity as ``by``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from models.actions import ACTION_BY_TRIGGER

__all__ = [
    "DEFAULT_MATRIX_FILE",
    "PERMISSION_TEXT",
    "CaseRelation",
    "Matrix",
    "MatrixError",
    "Permission",
    "Scope",
    "load_matrix",
]

#: The defaults shipped with the product.
DEFAULT_MATRIX_FILE = Path(__file__).with_name("permissions.toml")


class Permission(StrEnum):
    """What a role may do besides the staff actions (whose names are their triggers)."""

    READ_CASES = "read_cases"
    READ_REPORTS = "read_reports"
    LODGE = "lodge"
    UPLOAD_DOCUMENTS = "upload_documents"
    CLAIM = "claim"
    ASSIGN = "assign"
    ADMIN_STAFF = "admin_staff"
    MANAGE_TOKENS = "manage_tokens"
    TRIAGE = "triage"
    DECODE_PAYLOADS = "decode_payloads"
    SUBJECT_ACCESS = "subject_access"
    ERASE = "erase"
    LOG_SERVICE_REQUESTS = "log_service_requests"
    CONVERT_SERVICE_REQUESTS = "convert_service_requests"
    IMPORT_COMPLAINTS = "import_complaints"
    RECORD_LEARNING = "record_learning"
    MANAGE_SERVICE_CHANGES = "manage_service_changes"
    RECORD_SATISFACTION = "record_satisfaction"


#: How a refusal names each permission.
PERMISSION_TEXT: dict[str, str] = {
    "read_cases": "see cases",
    "read_reports": "see reports",
    "lodge": "lodge complaints",
    "upload_documents": "attach documents",
    "claim": "claim unassigned cases",
    "assign": "assign cases",
    "admin_staff": "keep the staff directory",
    "manage_tokens": "manage service tokens",
    "triage": "triage cases",
    "decode_payloads": "see residents' data decrypted in the Temporal UI",
    "subject_access": "export everything held about a person (subject access)",
    "erase": "erase a case's personal data on request",
    "log_service_requests": "log and resolve service requests",
    "convert_service_requests": "convert service requests to complaints",
    "import_complaints": "import historic complaints",
    "record_learning": "record what a response taught (themes, root causes, lessons)",
    "manage_service_changes": "record service changes made because of complaints",
    "record_satisfaction": "record customer satisfaction with complaint handling",
}


class Scope(StrEnum):
    """Which cases a role may act on (see ``permissions.toml``)."""

    OWN = "own"
    TEAM = "team"
    ANY = "any"


class MatrixError(ValueError):
    """A permission file that cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class CaseRelation:
    """How the person acting stands to one case.

    Attributes:
        handler_id: The case's current handler (None: unassigned).
        handler_team: That handler's team in the staff directory (None if unknown).
        own: The person is the case's handler or its manager.
        same_team: The handler is in the person's team.
    """

    handler_id: str | None
    handler_team: str | None
    own: bool
    same_team: bool

    def within(self, scope: Scope) -> bool:
        """Whether a role of ``scope`` reaches this case."""
        if scope is Scope.ANY or self.own or self.handler_id is None:
            return True
        return scope is Scope.TEAM and self.same_team


@dataclass(frozen=True)
class Grant:
    """One role's row of the matrix."""

    can: frozenset[str]
    scope: Scope


def _what(name: str) -> str:
    return PERMISSION_TEXT.get(name, name.replace("_", " "))


@dataclass(frozen=True)
class Matrix:
    """The permission matrix: role name to what it may do and on which cases."""

    roles: Mapping[str, Grant]

    def allowed(self, roles: Iterable[str], name: str) -> bool:
        """Whether any of ``roles`` may do ``name`` on some case."""
        return any(name in self.roles[r].can for r in roles if r in self.roles)

    def who_may(self, name: str) -> list[str]:
        """The roles that may do ``name``, in the matrix's order."""
        return [r for r, grant in self.roles.items() if name in grant.can]

    def refusal(self, roles: Iterable[str], name: str,
                case: CaseRelation | None = None) -> str | None:
        """Why a person with ``roles`` may not do ``name`` (on ``case``), or None.

        Args:
            roles: The person's roles (from the staff directory).
            name: A trigger name or a :class:`Permission`.
            case: How the person stands to the case acted on (None: no case).

        Returns:
            One line saying what is allowed instead, or None when allowed.

        """
        held = [r for r in roles if r in self.roles]
        granting = [r for r in held if name in self.roles[r].can]
        if not granting:
            who = self.who_may(name)
            return (f"your roles ({', '.join(held) or 'none'}) may not {_what(name)}; "
                    + (f"that is for: {', '.join(who)}" if who else "no role may")
                    + " (the permission matrix, PERMISSIONS_FILE)")
        if case is None or any(case.within(self.roles[r].scope) for r in granting):
            return None
        widest = max((self.roles[r].scope for r in granting),
                     key=lambda s: list(Scope).index(s))
        reach = ("your own cases" if widest is Scope.OWN
                 else "your own and your team's cases")
        team = f" of team {case.handler_team}" if case.handler_team else ""
        return (f"you may {_what(name)} on {reach} only; this case is handled by "
                f"{case.handler_id}{team}: ask a manager to reassign it")

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """The matrix as plain data (for ``permissions show`` and the API)."""
        return {r: {"scope": g.scope.value, "can": sorted(g.can)} for r, g in self.roles.items()}


def _known() -> set[str]:
    return set(ACTION_BY_TRIGGER) | {p.value for p in Permission}


def _roles_from(data: Mapping[str, Any], source: str) -> dict[str, Grant]:
    table = data.get("roles")
    if not isinstance(table, Mapping) or not table:
        raise MatrixError(f"{source}: needs a [roles.NAME] table for each role it sets")
    known = _known()
    roles: dict[str, Grant] = {}
    for role, row in table.items():
        if not isinstance(row, Mapping):
            raise MatrixError(f"{source}: [roles.{role}] must be a table with can and scope")
        extra = set(row) - {"can", "scope"}
        if extra:
            raise MatrixError(f"{source}: [roles.{role}] has unknown keys "
                              f"{', '.join(sorted(extra))}; only can and scope")
        scope = row.get("scope", "own")
        if scope not in {s.value for s in Scope}:
            raise MatrixError(f"{source}: [roles.{role}] scope {scope!r} must be one of "
                              "own, team, any")
        can = row.get("can", [])
        if not isinstance(can, list) or not all(isinstance(c, str) for c in can):
            raise MatrixError(f"{source}: [roles.{role}] can must be a list of names")
        unknown = sorted(set(can) - known)
        if unknown:
            raise MatrixError(f"{source}: [roles.{role}] can names unknown "
                              f"{', '.join(unknown)}; use staff action triggers or "
                              f"{', '.join(p.value for p in Permission)}")
        roles[str(role)] = Grant(can=frozenset(can), scope=Scope(scope))
    return roles


def parse_matrix(text: str, source: str = "permissions") -> dict[str, Grant]:
    """The roles a permission file sets.

    Raises:
        MatrixError: Not TOML, or a role, scope or name that is not known.

    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MatrixError(f"{source}: not valid TOML ({exc})") from None
    return _roles_from(data, source)


def load_matrix(path: Path | None = None) -> Matrix:
    """The defaults, with the roles of a landlord's file (``path``) replacing theirs.

    Raises:
        MatrixError: The file cannot be read or is not a valid matrix.

    """
    roles = parse_matrix(DEFAULT_MATRIX_FILE.read_text(encoding="utf-8"), "defaults")
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise MatrixError(f"cannot read the permission file {path} ({exc.__class__.__name__}"
                              "): check PERMISSIONS_FILE") from None
        roles.update(parse_matrix(text, str(path)))
    return Matrix(roles=roles)
