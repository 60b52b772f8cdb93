"""``complaints import FILE.csv``: bring a landlord's historic complaints into the reports.

Registered on the ``complaints`` group by ``register(cli)``. Reads and writes the database
at ``DATABASE_URL`` (``--database-url`` overrides it), bringing it to the newest schema
first, as the report commands do. The format and rules are :mod:`complaints.imports`'s.
A bad file is one ``Error:`` line (the first problem, with its line and column, and how
many more there are) and exit status 1; ``--list-problems`` prints every problem found,
one a line, before it. Progress goes to standard error for large files. With ``API_URL``
the file is posted to the HTTP API instead (:mod:`complaints.remote_reports`).
"""

from __future__ import annotations

import functools
from pathlib import Path

import click
from sqlalchemy.exc import SQLAlchemyError

from complaints.imports import ImportRefused, import_complaints, known_policies
from complaints.policies import PolicyError
from complaints.remote import api_url

__all__ = ["register"]


def register(cli: click.Group) -> None:
    """Add ``import`` to the ``complaints`` group."""

    @cli.command("import")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--dry-run", is_flag=True,
                  help="Check the whole file and say what would change; write nothing.")
    @click.option("--by", default="cli", show_default=True,
                  help="Who is importing: recorded with the import run.")
    @click.option("--policy", "policy_names", multiple=True, metavar="NAME",
                  help="A policy name or file whose landlord rows may name (repeatable; "
                       "default: every shipped policy that meets the Code).")
    @click.option("--list-problems", is_flag=True,
                  help="On a bad file, print every problem found (up to 100), one a line.")
    @click.option("--database-url", default=None,
                  help="SQLAlchemy URL (default: DATABASE_URL, else the data folder's).")
    def import_(file: Path, dry_run: bool, by: str, policy_names: tuple[str, ...],
                list_problems: bool, database_url: str | None) -> None:
        """Import historic complaints from a CSV file (one row per complaint).

        Imported complaints are counted in the reports exactly as live ones and start no
        workflow. All or nothing: a bad row refuses the file with its line and column.
        Importing the same file again changes nothing; a changed row replaces what the
        earlier import wrote for its reference. The format is in the README ("Importing
        historic complaints").
        """
        from complaints.reports.cli import _database_url, _engine

        if api_url() is not None:  # through the API, never a database on this machine
            from complaints.remote_reports import import_file

            import_file(file, dry_run=dry_run, by=by, list_problems=list_problems)
            return
        try:
            policies = known_policies(policy_names or None)
        except PolicyError as exc:
            raise click.ClickException(str(exc)) from None
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise click.ClickException(f"cannot read {file}: {exc.strerror}") from None
        engine = _engine(_database_url(database_url))
        try:
            summary = import_complaints(engine, data, by=by, via="cli", dry_run=dry_run,
                                        policies=policies,
                                        progress=functools.partial(click.echo, err=True))
        except ImportRefused as exc:
            if list_problems:
                for problem in exc.problems:
                    click.echo(str(problem), err=True)
            more = "" if list_problems else ": --list-problems shows them"
            raise click.ClickException(exc.line(more)) from None
        except SQLAlchemyError as exc:
            raise click.ClickException(f"the import failed in the database: "
                                       f"{str(exc).splitlines()[0]}") from None
        finally:
            engine.dispose()
        click.echo(summary.line())
