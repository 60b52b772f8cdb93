"""``complaints staff token create|list|revoke``: service tokens for integrations and the CLI.

A service token acts as one member of the staff directory within its scopes (the
permission matrix's names: staff action triggers and permissions), until it expires or
is revoked (:mod:`complaints.identity`). The token is printed once, when made; only the
SHA-256 of its secret is kept, so it can never be shown again. Making one needs an
active member of staff whose roles allow ``manage_tokens`` (``--by``); revoking and
listing need access to the database, which is the operator's already. The web app's
Staff page does the same through :mod:`complaints.tokens`, which both share.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import click
from sqlmodel import Session

from complaints.settings import Settings
from complaints.tokens import ALL_SCOPES, MAX_EXPIRES_DAYS, iso, token_json, token_line

__all__ = ["ALL_SCOPES", "register", "token_json"]


@contextlib.contextmanager
def _database() -> Iterator[Session]:
    """A session; an :class:`AccessDenied` raised inside becomes the one-line error."""
    from complaints.casefiles_cli import command_session
    from complaints.identity import AccessDenied

    with command_session(AccessDenied) as session:
        yield session


def _matrix() -> Any:
    """The permission matrix in force (PERMISSIONS_FILE applied), or a one-line error."""
    from domain.permissions import MatrixError, load_matrix

    try:
        return load_matrix(Settings().permissions_file)
    except MatrixError as exc:
        raise click.ClickException(str(exc)) from None


def register(cli: click.Group) -> None:
    """Add the ``token`` subgroup to ``complaints staff`` (registered before this)."""
    staff = cli.commands["staff"]
    assert isinstance(staff, click.Group), "register complaints.directory_cli first"

    @staff.group("token", help=(
        "Service tokens: bearer tokens for integrations and for the CLI's remote mode "
        "(API_URL, API_TOKEN). Each acts as one member of staff within its scopes; it is "
        "shown once, when made."))
    def token() -> None:
        pass

    @token.command("create", short_help="Make a token (printed once).")
    @click.argument("staff_id", metavar="STAFF_ID")
    @click.option("--scope", "scopes", multiple=True, required=True,
                  help="What it may do (repeatable): a staff action (acknowledge, respond, "
                       "...) or a permission (lodge, read_cases, ...); all: everything the "
                       "holder's roles allow. Never more than the holder's roles.")
    @click.option("--label", required=True,
                  help="What it is for, such as 'Housing system (Orchard)'.")
    @click.option("--expires-days", type=click.IntRange(1, MAX_EXPIRES_DAYS), default=None,
                  help="Expire after this many days (default: never; revoke it instead).")
    @click.option("--by", required=True,
                  help="Your staff id: an active member of staff who may manage tokens "
                       "(the admin role by default).")
    def create(staff_id: str, scopes: tuple[str, ...], label: str, expires_days: int | None,
               by: str) -> None:
        """Make a service token acting as STAFF_ID; it is printed once, on standard output."""
        from complaints.tokens import check_admin_by, make_token

        matrix = _matrix()
        with _database() as session:
            check_admin_by(session, by, matrix)
            row, secret = make_token(session, staff_id, wanted=scopes, label=label, by=by,
                                     matrix=matrix, expires_days=expires_days)
        click.echo(secret)
        expires = f", expires {iso(row.expires_at)}" if row.expires_at else ""
        click.echo(f"token {row.token_id} for {row.staff_id} ({row.scopes}{expires}): it "
                   "will not be shown again; store it now (for example as API_TOKEN)",
                   err=True)

    @token.command("list", short_help="List tokens (never their secrets).")
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
    def list_command(as_json: bool) -> None:
        """List every service token, newest first: who it acts as, its scopes and use."""
        from complaints.identity import list_tokens

        with _database() as session:
            rows = [token_json(r) for r in list_tokens(session)]
        if as_json:
            click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
            return
        for r in rows:
            click.echo(token_line(r))
        click.echo(f"{len(rows)} token{'s' if len(rows) != 1 else ''}")

    @token.command("revoke", short_help="Revoke a token at once.")
    @click.argument("token_id", metavar="TOKEN_ID")
    def revoke(token_id: str) -> None:
        """Revoke a service token: it is refused from now on (TOKEN_ID from `list`)."""
        from complaints.identity import TOKEN_PREFIX, revoke_token

        # A pasted whole token names its id before the dot; the secret is never echoed.
        wanted = token_id.removeprefix(TOKEN_PREFIX).partition(".")[0]
        with _database() as session:
            row = revoke_token(session, wanted)
        click.echo(f"token {row.token_id} ({row.staff_id}): revoked {iso(row.revoked_at)}")
