"""The ``complaints staff`` commands: keep the staff directory.

``complaints staff add|update|deactivate|activate|list|show``, registered on the
``complaints`` group by :func:`register`. They read and write the complaints database
(``DATABASE_URL``, brought to the newest schema first) only: never Temporal, so they work
with no worker running. The logic is in :mod:`complaints.directory`; every refusal is one
``Error:`` line and exit status 1.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import click
from sqlmodel import Session

from complaints import directory
from complaints.directory import DirectoryError
from models.tables import StaffRow

__all__ = ["register"]

_CHECK = ("Once the directory holds at least one person, every action on a case is "
          "refused unless the staff ids it names (--by, --handler, reassign --to) are in "
          "the directory and active; while it is empty nothing is refused.")
_ROLES_HELP = ("A role (repeat for several): handler (stage 1 complaints), reviewer "
               "(stage 2 reviews), manager (told of reminders and breaches), lead "
               "(complaints lead), admin (keeps this directory), viewer (reads cases only), "
               "integration (a system, through a service token), operator (sees payloads "
               "decrypted in the Temporal UI).")


@contextlib.contextmanager
def _database() -> Iterator[Session]:
    """A session; a :class:`DirectoryError` raised inside becomes the one-line error."""
    from complaints.casefiles_cli import command_session

    with command_session(DirectoryError) as session:
        yield session


def _line(row: StaffRow) -> str:
    """One member of staff on one line, for ``list``."""
    since = directory.inactive_since(row)
    state = f"  INACTIVE since {since}" if since else ""
    return (f"{row.staff_id:<12} {row.display_name}, {row.job_title} ({row.team})  "
            f"roles: {', '.join(directory.roles_of(row))}{state}")


def _show(row: StaffRow) -> list[str]:
    """A member of staff, one field a line, for ``show``."""
    since = directory.inactive_since(row)
    status = "active" if row.active else f"inactive since {since}"
    lines = [f"staff id:  {row.staff_id}", f"name:      {row.display_name}",
             f"job title: {row.job_title}", f"team:      {row.team}",
             f"email:     {row.email}", f"phone:     {row.phone or '-'}",
             f"roles:     {', '.join(directory.roles_of(row))}", f"status:    {status}"]
    if not row.active and row.deactivation_reason:
        lines.append(f"reason:    {row.deactivation_reason}")
    return lines


def register(cli: click.Group, date_type: click.ParamType | None = None) -> None:
    """Add the ``staff`` group to the ``complaints`` group.

    Args:
        cli: The ``complaints`` group.
        date_type: The group's ``YYYY-MM-DD`` parameter type (unused: no command here
            takes a date; accepted as every ``register`` does).

    """
    del date_type
    role = click.option("--role", "roles", multiple=True, type=click.Choice(directory.ROLES),
                        help=_ROLES_HELP)

    @cli.group(help="The staff directory: who works on complaints, their roles and contact "
                    f"details (for letters). {_CHECK}")
    def staff() -> None:
        pass

    @staff.command("add", short_help="Add a member of staff.", help=(
        "Add a member of staff to the directory, active. ID is the staff id they type in "
        "commands (--by), such as mgr-1: ids that differ only in capitals or invisible "
        "characters are the same person, and are refused as already there. At least one "
        f"--role is needed. {_CHECK}"))
    @click.argument("staff_id", metavar="ID")
    @click.option("--name", required=True, help="Their name as residents should read it.")
    @click.option("--title", required=True, help="Their job title.")
    @click.option("--team", required=True, help="The team they work in.")
    @click.option("--email", required=True, help="Their work email address.")
    @click.option("--phone", default=None, help="Their work phone number (optional).")
    @click.option("--subject", default=None, help=(
        "Who they are when they sign in: their OpenID Connect subject (the sub claim, or "
        "Entra ID's object id with OIDC_SUBJECT_CLAIM=oid)."))
    @role
    def add(staff_id: str, name: str, title: str, team: str, email: str, phone: str | None,
            subject: str | None, roles: tuple[str, ...]) -> None:
        with _database() as session:
            row = directory.add_staff(session, staff_id, display_name=name, job_title=title,
                                      team=team, email=email, phone=phone, roles=roles,
                                      subject=subject)
        click.echo(f"{row.staff_id}: added ({', '.join(directory.roles_of(row))})")

    @staff.command("update", short_help="Change a member of staff's details or roles.", help=(
        "Change a member of staff's details; what you do not give is kept. --role replaces "
        "their roles: give every role they keep."))
    @click.argument("staff_id", metavar="ID")
    @click.option("--name", default=None, help="Their name as residents should read it.")
    @click.option("--title", default=None, help="Their job title.")
    @click.option("--team", default=None, help="The team they work in.")
    @click.option("--email", default=None, help="Their work email address.")
    @click.option("--phone", default=None, help="Their work phone number.")
    @click.option("--no-phone", "remove_phone", is_flag=True,
                  help="Remove their phone number.")
    @click.option("--subject", default=None, help=(
        "Who they are when they sign in: their OpenID Connect subject (the sub claim, or "
        "Entra ID's object id with OIDC_SUBJECT_CLAIM=oid)."))
    @role
    def update(staff_id: str, name: str | None, title: str | None, team: str | None,
               email: str | None, phone: str | None, remove_phone: bool,
               subject: str | None, roles: tuple[str, ...]) -> None:
        with _database() as session:
            row = directory.update_staff(session, staff_id, display_name=name,
                                         job_title=title, team=team, email=email,
                                         phone=phone, remove_phone=remove_phone,
                                         roles=roles or None, subject=subject)
        click.echo(f"{row.staff_id}: updated ({', '.join(directory.roles_of(row))})")

    @staff.command("deactivate", short_help="Stop a member of staff acting on cases.", help=(
        "Make a member of staff inactive (they left, or no longer handle complaints): "
        "from now on any action naming their id is refused. They stay in the directory, "
        "because past cases name them; `complaints staff activate ID` undoes it. Cases "
        "they hold keep them as handler or manager until reassigned "
        "(`complaints reassign`)."))
    @click.argument("staff_id", metavar="ID")
    @click.option("--reason", required=True,
                  help=f"Why (at most {directory.MAX_REASON:,} characters), such as 'Left "
                       "the organisation'.")
    def deactivate(staff_id: str, reason: str) -> None:
        with _database() as session:
            row = directory.deactivate_staff(session, staff_id, reason=reason)
        click.echo(f"{row.staff_id}: inactive since {directory.inactive_since(row)}")

    @staff.command("activate", short_help="Let an inactive member of staff act again.")
    @click.argument("staff_id", metavar="ID")
    def activate(staff_id: str) -> None:
        """Make an inactive member of staff active again: their id is accepted once more."""
        with _database() as session:
            row = directory.activate_staff(session, staff_id)
        click.echo(f"{row.staff_id}: active")

    @staff.command("list", short_help="List the directory (active staff by default).")
    @click.option("--all", "include_inactive", is_flag=True,
                  help="Include inactive staff.")
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
    def list_command(include_inactive: bool, as_json: bool) -> None:
        """List the staff directory by staff id: active staff, or everyone with --all."""
        with _database() as session:
            rows = directory.list_staff(session, include_inactive=include_inactive)
        if as_json:
            click.echo(json.dumps([directory.staff_json(r) for r in rows], indent=2,
                                  ensure_ascii=False))
            return
        for row in rows:
            click.echo(_line(row))
        what = "member" + ("s" if len(rows) != 1 else "") + " of staff"
        click.echo(f"{len(rows)} {what}" + ("" if include_inactive else " (active)"))

    @staff.command("show", short_help="Show one member of staff.")
    @click.argument("staff_id", metavar="ID")
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
    def show(staff_id: str, as_json: bool) -> None:
        """Show a member of staff: details, roles, and whether they are active."""
        with _database() as session:
            row = directory.get_staff(session, staff_id)
        if as_json:
            click.echo(json.dumps(directory.staff_json(row), indent=2, ensure_ascii=False))
            return
        for line in _show(row):
            click.echo(line)
