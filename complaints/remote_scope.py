"""Which commands work in the CLI's remote mode, and the root group that refuses the rest.

With ``API_URL`` (or ``--api``) a command either goes through the HTTP API
(:data:`THROUGH_API`), touches neither Temporal nor a database (:data:`LOCAL`), or is the
operator's (:data:`OPERATOR_ONLY`) and refuses with one line naming why (the
:func:`complaints.remote.operator_only` message). Without the refusal it would quietly use
whatever database and Temporal this machine's settings name, perhaps an empty new one,
and give a wrong answer with exit status 0.

The check is made once, in :class:`RemoteAwareGroup` (the root ``complaints`` group),
from the command's path before its options are read, so that a new subcommand of an
operator's group is refused too. Every command is in exactly one of the three lists; a
test walks the command tree and fails on a command in none of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from complaints import remote

__all__ = ["LOCAL", "OPERATOR_ONLY", "THROUGH_API", "RemoteAwareGroup", "operator_reason"]

# Why each command or group (a group covers all its subcommands) is the operator's, as
# the one line says it: what it needs that the API does not serve.
_NOT_THROUGH_THE_API = ("this command reads and writes the database directly (the web app "
                        "serves it over HTTP)")
OPERATOR_ONLY: dict[str, str] = {
    # The database itself: only where it is.
    "db": "it migrates the database this machine's settings name",
    "resync": "it rebuilds the database's records from Temporal",
    "synthetic": "it writes synthetic complaints straight into the database",
    # The evidence pack lists cases under each Code provision; the API serves only the
    # annual report and the submission (`complaints report` works remotely).
    "evidence": "the API does not serve the evidence pack",
    # The unacceptable-behaviour register spans every case and names residents.
    "restriction": "the API does not serve the unacceptable-behaviour register, which "
                   "spans every case and names residents",
    # Who may sign in and with what: kept beside the database, never through a token.
    "staff": "the staff directory and its service tokens are kept in the database",
    # What is in force is the API's matrix and keys, not this machine's settings.
    "permissions show": "it shows this machine's PERMISSIONS_FILE, not the matrix the "
                        "API enforces",
    "keys show": "it lists this machine's payload keys, not those the engine runs with",
    # The worker's side: deliveries, erasure, retention.
    "webhooks": "the integrations' delivery log and pushing deliveries are the "
                "operator's, with the worker",
    "retention": "it erases files and rows, and schedules itself with Temporal",
    "erase": "erasure requests are recorded where the data is",
    "subject-access": "the export reads the database and documents directly; over HTTP "
                      "use POST /api/v1/subject-access",
    # Served by the API and the web app, but these commands use the database directly.
    "service-requests": _NOT_THROUGH_THE_API,
    "learning record": _NOT_THROUGH_THE_API,
    "learning show": _NOT_THROUGH_THE_API,
    "changes": _NOT_THROUGH_THE_API,
    "satisfaction": _NOT_THROUGH_THE_API,
}

#: Commands that go through the API in remote mode (:mod:`complaints.remote`,
#: :mod:`complaints.remote_reports`).
THROUGH_API: frozenset[str] = frozenset({
    "lodge", "acknowledge", "acknowledge-escalation", "decline", "extend", "respond",
    "escalate", "refuse-escalation", "withdraw", "complete-action", "refer-ombudsman", "act",
    "status", "list", "letters", "close", "record-contact", "early-contact", "add-issue",
    "void", "merge", "reassign", "delay-action", "pay-remedy", "ombudsman-order",
    "ombudsman-contact", "ombudsman-determination", "comply-order", "amend-intake",
    "add-representative", "adjustments", "attach", "documents", "document", "triage",
    "triage-show", "report", "report submission", "import",
})

#: Commands that touch neither Temporal nor the database, and work whatever API_URL says.
#: ``dev`` and ``serve`` run the database, worker and API themselves: they are what
#: API_URL points at (a developer may well set it to the dev server), not its clients.
LOCAL: frozenset[str] = frozenset({
    "deadlines", "policy", "demo", "diagram", "dev", "serve", "keys new",
    "permissions check", "learning vocabulary",
})


def operator_reason(path: Sequence[str]) -> str | None:
    """Why the command at ``path`` is the operator's, or None when it is not.

    Args:
        path: The command's names from the root, e.g. ``("staff", "token", "create")``.

    """
    for end in range(len(path), 0, -1):
        why = OPERATOR_ONLY.get(" ".join(path[:end]))
        if why is not None:
            return why
    return None


def _path(ctx: click.Context, name: str, command: click.Command,
          args: Sequence[str]) -> list[str]:
    """The names of the command to run: ``name``, then the subcommands ``args`` start with."""
    path = [name]
    for token in args:
        if not isinstance(command, click.Group):
            break
        sub = command.get_command(ctx, token)
        if sub is None:
            break  # an option, or a name click will refuse in its own words
        path.append(token)
        command = sub
    return path


class RemoteAwareGroup(click.Group):
    """The root group: refuses an operator's command in remote mode before it runs."""

    def resolve_command(self, ctx: click.Context, args: list[str]
                        ) -> tuple[str | None, click.Command | None, list[str]]:
        """Resolve as click does, then refuse an operator's command when API_URL is set.

        Help (``-h``, ``--help``) is still shown: it needs neither the API nor a database.
        Shell completion (``resilient_parsing``) is never refused.
        """
        name, command, rest = super().resolve_command(ctx, args)
        if ctx.resilient_parsing or name is None or command is None:
            return name, command, rest
        if set(ctx.help_option_names).intersection(rest):
            return name, command, rest
        path = _path(ctx, name, command, rest)
        why = operator_reason(path)
        if why is not None:
            # The root callback, which keeps --api for remote.api_url(), has not run yet.
            given = ctx.params.get("api_url")
            if given:
                ctx.meta[remote.API_URL_META] = given
            remote.operator_only(" ".join(path), why)
        return name, command, rest
