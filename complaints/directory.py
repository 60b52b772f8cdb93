"""The staff directory: who works on complaints, in which roles, and whether they still do.

One table (``staff``, :class:`models.tables.StaffRow`) in the complaints database, kept by
``complaints staff ...`` (:mod:`complaints.directory_cli`). It serves two purposes:

- **Refusing actions by unknown or departed staff at the interface.** :func:`check_staff`
  looks at every staff id an action names (``by``; ``handler_id`` of ``acknowledge`` and
  ``acknowledge_escalation``; ``to`` of ``reassign``) and returns why it is refused, or
  None. While the directory is **empty** (a new install, the demo) nothing is refused:
  adding the first person turns the check on. :func:`directory_refusal` runs it on the
  deployment's database for ``complaints.staff._send``; a database that cannot be read
  refuses nothing (the workflow still validates every action).
- **Contact details for letters** (:func:`describe_staff`, :class:`StaffContact`).

Staff ids are compared by :func:`models.limits.staff_key`: ``MGR-1``, ``mgr-1`` and
``mgr-1`` with a zero-width space are one person, and the table's unique ``staff_key``
column holds to it. Every function raises :class:`DirectoryError` with one line to show
staff. Log lines carry staff ids only, never names, emails or phone numbers.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict
from sqlalchemy import bindparam, func
from sqlalchemy import select as select_columns
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, col, select

from models.actions import (
    Acknowledge,
    AcknowledgeEscalation,
    Action,
    Assign,
    Reassign,
    ReassignRole,
)
from models.limits import first_problem, hostile_character, staff_key
from models.tables import StaffRow, utcnow

__all__ = [
    "MAX_EMAIL",
    "MAX_PHONE",
    "MAX_REASON",
    "MAX_STAFF_ID",
    "MAX_TEXT",
    "ROLES",
    "DirectoryError",
    "StaffContact",
    "activate_staff",
    "add_staff",
    "check_staff",
    "check_staff_id",
    "deactivate_staff",
    "describe_staff",
    "describe_staff_ids",
    "directory_refusal",
    "find_by_subject",
    "find_staff",
    "get_staff",
    "inactive_since",
    "list_staff",
    "roles_of",
    "staff_json",
    "update_staff",
]

# Through the standard library, as complaints.casefiles: the plain CLI configures no
# logging, and structlog unconfigured would print to stdout (into `--json` output).
log = structlog.wrap_logger(logging.getLogger(__name__))

#: The roles a member of staff may hold. ``handler``: handles stage 1 complaints;
#: ``reviewer``: handles stage 2 reviews; ``manager``: receives a case's reminders and
#: breaches; ``lead``: the complaints lead; ``admin``: keeps the directory; ``viewer``:
#: reads cases only; ``integration``: a system acting through a service token. What each
#: may do is the permission matrix's (``domain/permissions.toml``).
ROLES = ("handler", "reviewer", "manager", "lead", "admin", "viewer", "integration",
         "operator")
#: A staff id: short enough to type (the action fields allow 200, the ``label`` limit).
MAX_STAFF_ID = 64
#: A display name, job title or team.
MAX_TEXT = 200
#: An email address (RFC 5321's limit on a path).
MAX_EMAIL = 254
#: A phone number as written (``+44 161 555 0100 ext 12`` fits).
MAX_PHONE = 40
#: Why someone was made inactive.
MAX_REASON = 1000

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+\Z")
_PHONE = re.compile(r"\+?[0-9 ()\-./]+(?:\s*(?:ext\.?|x)\s*[0-9]+)?\Z", re.IGNORECASE)
_MIN_PHONE_DIGITS = 6


class DirectoryError(ValueError):
    """A refusal with one line to show staff (what is wrong, how to put it right)."""


class StaffContact(BaseModel):
    """How a member of staff is named and reached in a letter to a resident.

    Attributes:
        display_name: Their name as residents should read it.
        job_title: Their job title.
        team: The team they work in.
        email: Their work email address.
        phone: Their work phone number, when they have one.
    """

    model_config = ConfigDict(frozen=True)

    display_name: str
    job_title: str
    team: str
    email: str
    phone: str | None = None


# --- checks ----------------------------------------------------------------------------


class _StaffId(BaseModel):
    """One staff id, checked by ``models.limits`` as every staff id field of an action."""

    by: str


def _shown(text: str) -> str:
    """``text`` for an error message, with characters that cannot be seen escaped."""
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)


def check_staff_id(value: str, option: str = "ID") -> str:
    """``value`` as a staff id in NFKC form, or a :class:`DirectoryError` naming ``option``.

    Refused as in staff actions (``models.limits``): invisible, bidirectional and control
    characters, anything but visible characters and plain spaces; and over
    :data:`MAX_STAFF_ID` characters.
    """
    normal = unicodedata.normalize("NFKC", value).strip()
    if not normal:
        raise DirectoryError(f"{option}: give a staff id, such as mgr-1")
    if len(normal) > MAX_STAFF_ID:
        raise DirectoryError(f"{option}: {len(normal):,} characters, at most {MAX_STAFF_ID}")
    problem = first_problem(_StaffId(by=normal))
    if problem is not None:
        raise DirectoryError(f"{option} '{_shown(normal)}': {problem.removeprefix('by: ')}")
    return normal


def _line(value: str | None, option: str, limit: int = MAX_TEXT) -> str:
    """A required one-line text (a name, title or team), stripped; never quoted back."""
    text = (value or "").strip()
    if not text:
        raise DirectoryError(f"{option}: required, and may not be blank")
    if len(text) > limit:
        raise DirectoryError(f"{option}: {len(text):,} characters, at most {limit:,}")
    if any(c in text for c in "\t\r\n"):
        raise DirectoryError(f"{option}: must be one line (no tabs or line breaks)")
    bad = hostile_character(text)
    if bad is not None:
        raise DirectoryError(f"{option}: contains the character {bad}; type it again rather "
                             "than pasting it")
    return text


def _email(value: str | None) -> str:
    text = _line(value, "--email", MAX_EMAIL)
    if not _EMAIL.match(text):
        raise DirectoryError("--email: not an email address: write it as name@example.org")
    return text


def _phone(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    text = _line(value, "--phone", MAX_PHONE)
    digits = sum(c.isdigit() for c in text)
    if not _PHONE.match(text) or digits < _MIN_PHONE_DIGITS:
        raise DirectoryError("--phone: not a phone number: digits, spaces, + ( ) - and an "
                             "optional 'ext 12', such as +44 161 555 0100")
    return text


def _roles(values: Iterable[str]) -> str:
    """The roles as stored: known ones, each once, in the order of :data:`ROLES`."""
    given = {v.strip().lower() for v in values if v.strip()}
    unknown = sorted(given - set(ROLES))
    if unknown:
        raise DirectoryError(f"--role: {unknown[0]!r} is not a role: one of "
                             f"{', '.join(ROLES)}")
    if not given:
        raise DirectoryError(f"--role: give at least one role ({', '.join(ROLES)})")
    return ",".join(r for r in ROLES if r in given)


def _subject(session: Session, value: str | None, staff_id: str) -> str | None:
    """A sign-in subject, checked: one line, and nobody else's."""
    if value is None:
        return None
    subject = _line(value, "--subject", limit=255)
    holder = find_by_subject(session, subject)
    if holder is not None and staff_key(holder.staff_id) != staff_key(staff_id):
        raise DirectoryError(f"--subject: already signs in as '{holder.staff_id}'; one "
                             "person, one subject")
    return subject


def find_by_subject(session: Session, subject: str) -> StaffRow | None:
    """The member of staff who signs in as ``subject`` (OpenID Connect), or None."""
    return session.exec(select(StaffRow).where(StaffRow.subject == subject)).first()


def roles_of(row: StaffRow) -> tuple[str, ...]:
    """The roles a member of staff holds, in the order of :data:`ROLES`."""
    return tuple(r for r in row.roles.split(",") if r)


def inactive_since(row: StaffRow) -> dt.date | None:
    """The Europe/London day a member of staff was made inactive, or None when active."""
    from complaints.workdays import LONDON

    if row.active or row.deactivated_at is None:
        return None
    return row.deactivated_at.astimezone(LONDON).date()


# --- reading and writing ---------------------------------------------------------------


def find_staff(session: Session, staff_id: str) -> StaffRow | None:
    """The member of staff ``staff_id`` names (compared by ``staff_key``), or None."""
    key = staff_key(staff_id)
    if not key:
        return None
    return session.exec(select(StaffRow).where(StaffRow.staff_key == key)).first()


def get_staff(session: Session, staff_id: str) -> StaffRow:
    """The member of staff ``staff_id`` names, or a :class:`DirectoryError`."""
    row = find_staff(session, staff_id)
    if row is None:
        raise DirectoryError(f"no staff id '{_shown(staff_id.strip())}' in the staff "
                             "directory: `complaints staff list --all` lists everyone")
    return row


def _duplicate(staff_id: str, row: StaffRow) -> DirectoryError:
    return DirectoryError(
        f"staff id '{_shown(staff_id)}' is already in the staff directory as "
        f"'{row.staff_id}' (ids that differ only in capitals or invisible characters are "
        f"one person): change their details with `complaints staff update {row.staff_id}`")


def add_staff(session: Session, staff_id: str, *, display_name: str, job_title: str,
              team: str, email: str, roles: Iterable[str],
              phone: str | None = None, subject: str | None = None) -> StaffRow:
    """Add a member of staff, active, to the directory.

    Args:
        session: A session on the complaints database.
        staff_id: The id they type in commands (``mgr-1``), kept as typed.
        display_name: Their name as residents should read it.
        job_title: Their job title.
        team: Their team.
        email: Their work email address.
        roles: At least one of :data:`ROLES`.
        phone: Their work phone number, if any.
        subject: Who they are when they sign in (their OpenID Connect subject), if known.

    Returns:
        The new row.

    Raises:
        DirectoryError: The id is taken by the same person (compared by ``staff_key``), or
            a field is refused.

    """
    typed = unicodedata.normalize("NFKC", staff_id).strip()
    existing = find_staff(session, typed)
    if existing is not None:  # Before the character check: a pasted look-alike is named.
        raise _duplicate(typed, existing)
    clean = check_staff_id(typed)
    now = utcnow()
    row = StaffRow(staff_id=clean, staff_key=staff_key(clean),
                   display_name=_line(display_name, "--name"),
                   job_title=_line(job_title, "--title"), team=_line(team, "--team"),
                   email=_email(email), phone=_phone(phone), roles=_roles(roles),
                   subject=_subject(session, subject, clean), active=True, created_at=now,
                   updated_at=now)
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raced = find_staff(session, clean)
        if raced is None:
            raise
        raise _duplicate(clean, raced) from None
    log.info("staff_added", staff_id=row.staff_id, roles=row.roles)
    return row


def update_staff(session: Session, staff_id: str, *, display_name: str | None = None,
                 job_title: str | None = None, team: str | None = None,
                 email: str | None = None, phone: str | None = None,
                 remove_phone: bool = False, roles: Iterable[str] | None = None,
                 subject: str | None = None) -> StaffRow:
    """Change a member of staff's details; what is not given is kept.

    Args:
        session: A session on the complaints database.
        staff_id: Their staff id (any spelling that is the same person).
        display_name: A new name.
        job_title: A new job title.
        team: A new team.
        email: A new email address.
        phone: A new phone number.
        remove_phone: Remove the phone number.
        roles: Their roles from now on (replacing the ones they had).
        subject: Their OpenID Connect subject from now on.

    Returns:
        The updated row.

    Raises:
        DirectoryError: Unknown id, nothing to change, or a field refused.

    """
    roles = list(roles) if roles is not None else None
    if phone is not None and remove_phone:
        raise DirectoryError("give --phone or --no-phone, not both")
    if all(v is None for v in (display_name, job_title, team, email, phone, subject)) \
            and not remove_phone and not roles:
        raise DirectoryError("nothing to change: give at least one of --name, --title, "
                             "--team, --email, --phone, --no-phone, --role, --subject")
    row = get_staff(session, staff_id)
    if subject is not None:
        row.subject = _subject(session, subject, row.staff_id)
    if display_name is not None:
        row.display_name = _line(display_name, "--name")
    if job_title is not None:
        row.job_title = _line(job_title, "--title")
    if team is not None:
        row.team = _line(team, "--team")
    if email is not None:
        row.email = _email(email)
    if phone is not None:
        checked = _phone(phone)
        if checked is None:
            raise DirectoryError("--phone: may not be blank: --no-phone removes the number")
        row.phone = checked
    if remove_phone:
        row.phone = None
    if roles:
        row.roles = _roles(roles)
    row.updated_at = utcnow()
    session.add(row)
    session.commit()
    log.info("staff_updated", staff_id=row.staff_id, roles=row.roles)
    return row


def deactivate_staff(session: Session, staff_id: str, *, reason: str) -> StaffRow:
    """Make a member of staff inactive: from now on their id is refused on every action.

    They stay in the directory (past cases name them); :func:`activate_staff` undoes it.

    Raises:
        DirectoryError: Unknown id, already inactive, or a missing reason.

    """
    text = (reason or "").strip()
    if not text:
        raise DirectoryError("--reason: required, and may not be blank")
    if len(text) > MAX_REASON:
        raise DirectoryError(f"--reason: {len(text):,} characters, at most {MAX_REASON:,}")
    bad = hostile_character(text)
    if bad is not None:
        raise DirectoryError(f"--reason: contains the character {bad}; type it again rather "
                             "than pasting it")
    row = get_staff(session, staff_id)
    if not row.active:
        raise DirectoryError(f"'{row.staff_id}' is already inactive since "
                             f"{inactive_since(row)}")
    now = utcnow()
    row.active, row.deactivated_at, row.deactivation_reason = False, now, text
    row.updated_at = now
    session.add(row)
    session.commit()
    log.info("staff_deactivated", staff_id=row.staff_id)
    return row


def activate_staff(session: Session, staff_id: str) -> StaffRow:
    """Make an inactive member of staff active again (their id is accepted once more).

    Raises:
        DirectoryError: Unknown id, or already active.

    """
    row = get_staff(session, staff_id)
    if row.active:
        raise DirectoryError(f"'{row.staff_id}' is already active")
    row.active, row.deactivated_at, row.deactivation_reason = True, None, None
    row.updated_at = utcnow()
    session.add(row)
    session.commit()
    log.info("staff_activated", staff_id=row.staff_id)
    return row


def list_staff(session: Session, *, include_inactive: bool = False) -> list[StaffRow]:
    """The directory by staff id: active members only, or everyone (``include_inactive``)."""
    query = select(StaffRow)
    if not include_inactive:
        query = query.where(col(StaffRow.active).is_(True))
    return list(session.exec(query.order_by(col(StaffRow.staff_key))).all())


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value else None


def staff_json(row: StaffRow) -> dict[str, Any]:
    """A member of staff as a JSON object (roles as a list, instants in UTC)."""
    since = inactive_since(row)
    return {"staff_id": row.staff_id, "display_name": row.display_name,
            "job_title": row.job_title, "team": row.team, "email": row.email,
            "phone": row.phone, "roles": list(roles_of(row)), "subject": row.subject,
            "active": row.active,
            "inactive_since": since.isoformat() if since else None,
            "deactivation_reason": row.deactivation_reason,
            "created_at": _iso(row.created_at), "updated_at": _iso(row.updated_at)}


def describe_staff(session: Session, staff_id: str, *,
                   include_inactive: bool = False) -> StaffContact | None:
    """How a letter names and gives the contact details of a member of staff.

    Args:
        session: A session on the complaints database.
        staff_id: Their staff id (any spelling that is the same person).
        include_inactive: Also describe someone made inactive (by default a letter never
            gives a resident the contact of someone who has left).

    Returns:
        Their contact, or None when the id is not in the directory (or inactive).

    """
    row = find_staff(session, staff_id)
    if row is None or not (row.active or include_inactive):
        return None
    return StaffContact(display_name=row.display_name, job_title=row.job_title,
                        team=row.team, email=row.email, phone=row.phone)


#: What a letter needs of the staff several ids name, in one query (by ``staff_key``, as
#: :func:`find_staff`): columns, not ORM rows, which cost more than the query.
_STAFF = StaffRow.__table__  # type: ignore[attr-defined]
_CONTACTS = select_columns(
    _STAFF.c.staff_key, _STAFF.c.display_name, _STAFF.c.job_title, _STAFF.c.team,
    _STAFF.c.email, _STAFF.c.phone, _STAFF.c.active).where(
    _STAFF.c.staff_key.in_(bindparam("keys", expanding=True)))


def describe_staff_ids(session: Session, staff_ids: Iterable[str], *,
                       include_inactive: bool = False) -> dict[str, StaffContact]:
    """:func:`describe_staff` for several ids at once, in one query.

    Each id is matched as :func:`find_staff` matches it (by ``staff_key``; one that folds
    to nothing names nobody), so two spellings of one person both get their contact.

    Args:
        session: A session on the complaints database.
        staff_ids: Staff ids, in any spelling.
        include_inactive: Also describe people made inactive (see :func:`describe_staff`).

    Returns:
        Each id that :func:`describe_staff` describes -> its contact; the others are left
        out.

    """
    keys = {staff_id: staff_key(staff_id) for staff_id in staff_ids}
    wanted = sorted({key for key in keys.values() if key})
    if not wanted:
        return {}
    if session.autoflush:
        session.flush()  # what an ORM query (describe_staff's) does first: a no-op if clean
    contacts = {row.staff_key: StaffContact(
        display_name=row.display_name, job_title=row.job_title, team=row.team,
        email=row.email, phone=row.phone)
        for row in session.connection().execute(_CONTACTS, {"keys": wanted})
        if row.active or include_inactive}
    return {staff_id: contacts[key] for staff_id, key in keys.items() if key in contacts}


# --- actions ---------------------------------------------------------------------------


def _named(action: Action) -> list[tuple[str, str, tuple[str, ...], str]]:
    """Each staff id ``action`` names: (field, id, roles of which one is needed, as what)."""
    named: list[tuple[str, str, tuple[str, ...], str]] = [("by", action.by, (), "")]
    if isinstance(action, Acknowledge):
        named.append(("handler_id", action.handler_id, ("handler",), "the stage 1 handler"))
    elif isinstance(action, AcknowledgeEscalation):
        named.append(("handler_id", action.handler_id, ("reviewer",),
                      "the stage 2 reviewer"))
    elif isinstance(action, Assign):
        named.append(("to", action.to, ("handler", "reviewer"), "given a case to handle"))
    elif isinstance(action, Reassign):
        if action.role == ReassignRole.HANDLER:
            named.append(("to", action.to, ("handler", "reviewer"), "a case's handler"))
        else:
            named.append(("to", action.to, (), ""))
    return named


def check_staff(session: Session, action: Action) -> str | None:
    """Why the directory refuses ``action``, or None when it accepts it.

    Every staff id the action names (``by``; ``handler_id`` of an acknowledgement;
    ``to`` of a reassignment) must be in the directory and active; a handler needs the
    ``handler`` role (stage 1), a stage 2 reviewer the ``reviewer`` role, and a new
    handler (``reassign --role handler``) either. An empty directory accepts everything.

    Args:
        session: A session on the complaints database.
        action: A validated staff action (``complaints.staff.build_action``).

    Returns:
        One line for staff, without the ``refused:`` prefix, or None.

    """
    if not session.exec(select(func.count()).select_from(StaffRow)).one():
        return None
    for _field, staff_id, needed, as_what in _named(action):
        row = find_staff(session, staff_id)
        shown = _shown(staff_id)
        if row is None:
            return (f"staff id '{shown}' is not in the staff directory (add it with "
                    "complaints staff add)")
        if not row.active:
            return (f"staff id '{shown}' is inactive since {inactive_since(row)}: give the "
                    "id of someone who works on complaints now, or make it active again "
                    f"with complaints staff activate {row.staff_id}")
        if needed and not set(needed) & set(roles_of(row)):
            held = ", ".join(roles_of(row)) or "none"
            return (f"staff id '{shown}' cannot be {as_what}: it needs the "
                    f"{' or '.join(needed)} role, and has {held} (complaints staff update "
                    f"{row.staff_id} --role ... sets the roles, every one they keep)")
    return None


def directory_refusal(action: Action, url: str | None = None) -> str | None:
    """:func:`check_staff` on the deployment's database; None when it cannot be read.

    Nothing is created or migrated: a SQLite file that does not exist, a database without
    the ``staff`` table (not migrated yet) or one that cannot be reached refuses nothing,
    and says nothing; the workflow still validates the action.

    Args:
        action: A validated staff action.
        url: The database URL (default: ``Settings().effective_database_url()``).

    """
    from sqlalchemy.engine import make_url

    from complaints.db import make_engine, session_factory
    from complaints.settings import Settings

    try:
        url = url or Settings().effective_database_url()
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database or ""
            if database in ("", ":memory:") or not Path(database).is_file():
                return None
        engine = make_engine(url)
    except (SQLAlchemyError, OSError, ValueError, ImportError):
        return None
    try:
        with session_factory(engine)() as session:
            refusal = check_staff(session, action)
    except (SQLAlchemyError, OSError):
        return None
    finally:
        engine.dispose()
    if refusal is not None:
        log.info("action_refused_by_directory", trigger=action.trigger, staff_id=action.by)
    return refusal
