"""``complaints permissions show|check``: the permission matrix in force, and a file's check.

The matrix is ``domain/permissions.toml`` with a landlord's own file (``PERMISSIONS_FILE``)
replacing the roles it names (:func:`domain.permissions.load_matrix`). ``check`` tells an
administrator whether a file would load before the API and the web app are restarted on
it: a bad file would stop them starting.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from complaints.settings import Settings
from domain.permissions import DEFAULT_MATRIX_FILE, PERMISSION_TEXT, MatrixError, load_matrix

__all__ = ["register"]


def register(cli: click.Group) -> None:
    """Add the ``permissions`` group to the ``complaints`` group."""

    @cli.group(help="The permission matrix: which role may do what, on which cases.")
    def permissions() -> None:
        pass

    @permissions.command("show", short_help="Print the matrix in force.")
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
    def show(as_json: bool) -> None:
        """Print the matrix in force: the defaults with PERMISSIONS_FILE applied."""
        path = Settings().permissions_file
        try:
            matrix = load_matrix(path)
        except MatrixError as exc:
            raise click.ClickException(str(exc)) from None
        data = matrix.as_dict()
        if as_json:
            click.echo(json.dumps({"source": str(path) if path else "defaults",
                                   "roles": data}, indent=2))
            return
        click.echo(f"defaults: {DEFAULT_MATRIX_FILE}"
                   + (f"; roles replaced from PERMISSIONS_FILE {path}" if path else ""))
        scopes = {"own": "own cases (and unassigned)", "team": "own and team's cases",
                  "any": "every case"}
        for role, grant in data.items():
            allowed = set(grant["can"])
            special = [n for n in PERMISSION_TEXT if n in allowed]
            actions = sorted(allowed - set(special))
            click.echo(f"\n{role}  (acts on {scopes[grant['scope']]})")
            click.echo(f"  may:     {', '.join(PERMISSION_TEXT[n] for n in special) or '-'}")
            click.echo(f"  actions: {', '.join(actions) or 'none'}")

    @permissions.command("check", short_help="Check a permission file.")
    @click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
    def check(file: Path) -> None:
        """Exit 0 if FILE is a valid permission file; else print why, exit 1."""
        try:
            matrix = load_matrix(file)
        except MatrixError as exc:
            raise click.ClickException(str(exc)) from None
        from domain.permissions import parse_matrix

        named = parse_matrix(file.read_text(encoding="utf-8"), str(file))
        click.echo(f"{file}: valid; it sets {', '.join(named)} (the other roles keep the "
                   f"defaults: {', '.join(r for r in matrix.roles if r not in named) or 'none'})")
