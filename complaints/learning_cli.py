"""``complaints learning``, ``changes`` and ``satisfaction``: learning from complaints.

Each response's themes, root causes and lessons; the service changes made as a result; and
customer satisfaction with complaint handling per period (Code 8.1, 9; Connexus policy
4.2). All kept in the complaints database (``DATABASE_URL``, brought to the newest schema
first): no worker is needed. The logic is in :mod:`complaints.learning`; every refusal is
one ``Error:`` line and exit status 1. ``--by`` and ``--owner`` are checked against the
staff directory as for staff actions.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from complaints import learning as ln
from complaints.casefiles import london_today
from complaints.casefiles_cli import command_session
from models.learning import SatisfactionRow, ServiceChangeRow

__all__ = ["register"]


def _session() -> Any:
    return command_session(ln.LearningError)


def pct_text(part: int, whole: int) -> str:
    """``part`` of ``whole`` as a percentage to one decimal place, or n/a."""
    return f"{100 * part / whole:.1f}%" if whole else "n/a"


def _iso(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def change_json(row: ServiceChangeRow, today: dt.date) -> dict[str, Any]:
    """A service change as JSON, with ``overdue``."""
    out = {name: _iso(getattr(row, name)) for name in ServiceChangeRow.model_fields}
    out["overdue"] = ln.is_overdue(row, today)
    return out


def satisfaction_json(row: SatisfactionRow) -> dict[str, Any]:
    """A satisfaction result as JSON, with its percentage."""
    out = {name: _iso(getattr(row, name)) for name in SatisfactionRow.model_fields}
    out["pct_satisfied"] = (round(100 * row.satisfied / row.surveyed, 1) if row.surveyed
                            else None)
    return out


def _change_line(row: ServiceChangeRow, today: dt.date) -> str:
    status = ("overdue" if ln.is_overdue(row, today) else
              "done" if row.done_on is not None else "open")
    when = (f"done {row.done_on.isoformat()}" if row.done_on is not None
            else f"due {row.due_on.isoformat()}")
    extra = "".join(f"  {x}" for x in (row.reference, row.theme) if x)
    return f"{row.id:>5}  {status:<7}  {when}  owner {row.owner}{extra}  {row.description}"


def register(cli: click.Group, date_type: click.ParamType) -> None:
    """Add the ``learning``, ``changes`` and ``satisfaction`` groups to ``complaints``."""
    by_option = click.option("--by", required=True, help="Your staff id.")

    @cli.group("learning", help="What each response taught: themes, root causes, lessons "
                                "(Code 8.1, 9).")
    def learning() -> None:
        pass

    @learning.command("record")
    @click.argument("reference")
    @click.option("--stage", type=click.IntRange(1, 2), required=True,
                  help="The stage whose response it is.")
    @click.option("--theme", "themes", multiple=True, required=True,
                  help="A theme from the policy's [learning] themes (repeatable).")
    @click.option("--root-cause", "root_causes", multiple=True, required=True,
                  help="A root cause from the policy's [learning] root_causes (repeatable).")
    @click.option("--lesson", "lessons", default=None, help="The lessons learned.")
    @by_option
    def record(reference: str, by: str, **options: Any) -> None:
        """Record (or replace) the learning of a stage response already issued."""
        with _session() as session:
            data = ln.parse_in(ln.LearningIn, options)
            view = ln.record_learning(session, reference.strip(), data, by)
            click.echo(f"{view.reference} stage {view.stage}: themes "
                       f"{', '.join(view.themes)}; root causes {', '.join(view.root_causes)}"
                       f" (revision {view.revision})")

    @learning.command("show")
    @click.argument("reference")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def show(reference: str, as_json: bool) -> None:
        """The learning recorded on a case, stage by stage."""
        with _session() as session:
            views = ln.show_learning(session, reference.strip())
        if as_json:
            click.echo(json.dumps([v.model_dump(mode="json") for v in views], indent=2))
            return
        if not views:
            click.echo(f"{reference.strip()}: no learning recorded yet")
        for v in views:
            click.echo(f"stage {v.stage}  themes: {', '.join(v.themes)}\n"
                       f"         root causes: {', '.join(v.root_causes)}\n"
                       f"         lessons: {v.lessons or '-'}\n"
                       f"         recorded by {v.recorded_by} at {_iso(v.recorded_at)} "
                       f"(revision {v.revision})")

    @learning.command("vocabulary")
    @click.option("--policy", "policy_name", default="code-2024", show_default=True,
                  help="Policy name or file.")
    def vocabulary(policy_name: str) -> None:
        """The themes and root causes a policy allows."""
        from complaints.policies import PolicyError, load_policy

        try:
            words = load_policy(policy_name).learning
        except PolicyError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo("themes: " + ", ".join(words.themes))
        click.echo("root causes: " + ", ".join(words.root_causes))

    @cli.group("changes", help="Service changes made because of complaints: owner, due, "
                               "done (Code 9).")
    def changes() -> None:
        pass

    @changes.command("add")
    @click.option("--description", required=True, help="What changes in the service.")
    @click.option("--owner", required=True, help="The staff id of who owns the change.")
    @click.option("--due", "due_on", type=date_type, required=True, help="When it is due.")
    @click.option("--reference", default=None, help="The complaint it came from, if one.")
    @click.option("--theme", default=None, help="A theme of the vocabulary it answers.")
    @click.option("--landlord", default=None,
                  help="Default: the complaint's, else the only landlord in the database.")
    @by_option
    def add(by: str, **options: Any) -> None:
        """Record a service change; prints its id."""
        with _session() as session:
            row = ln.add_change(session, ln.parse_in(ln.ChangeIn, options), by)
            click.echo(str(row.id))

    @changes.command("done")
    @click.argument("change_id", type=int)
    @click.option("--on", "done_on", type=date_type, default=None, help="Default: today.")
    @by_option
    def done(change_id: int, done_on: dt.date | None, by: str) -> None:
        """Record that a service change was made."""
        today = london_today()
        with _session() as session:
            row = ln.complete_change(session, change_id, by, done_on=done_on or today,
                                     today=today)
            click.echo(_change_line(row, today))

    @changes.command("list")
    @click.option("--open", "open_only", is_flag=True, help="Only those not done.")
    @click.option("--overdue", is_flag=True, help="Only open ones past their due date.")
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
    def list_command(open_only: bool, overdue: bool, as_json: bool) -> None:
        """Service changes: open ones by due date (overdue marked), then done ones."""
        today = london_today()
        with _session() as session:
            rows = ln.list_changes(session, today=today, open_only=open_only,
                                   overdue=overdue)
        if as_json:
            click.echo(json.dumps([change_json(r, today) for r in rows], indent=2))
            return
        for row in rows:
            click.echo(_change_line(row, today))
        click.echo(f"{len(rows)} service change{'' if len(rows) == 1 else 's'}")

    @cli.group("satisfaction", help="Customer satisfaction with complaint handling, per "
                                    "period (Connexus policy 4.2).")
    def satisfaction() -> None:
        pass

    @satisfaction.command("record")
    @click.option("--start", "period_start", type=date_type, required=True,
                  help="First day of the period surveyed.")
    @click.option("--end", "period_end", type=date_type, required=True,
                  help="Last day of the period (included).")
    @click.option("--surveyed", type=int, required=True, help="Residents who answered.")
    @click.option("--satisfied", type=int, required=True,
                  help="Of those, how many were satisfied with how the complaint was handled.")
    @click.option("--source", default=None, help="The survey, and any notes.")
    @click.option("--landlord", default=None,
                  help="Default: the only landlord in the database.")
    @by_option
    def record_satisfaction(by: str, **options: Any) -> None:
        """Record (or replace) the results for one period; periods may not overlap."""
        with _session() as session:
            row = ln.record_satisfaction(session, ln.parse_in(ln.SatisfactionIn, options), by)
            click.echo(f"{row.landlord} {row.period_start.isoformat()} to "
                       f"{row.period_end.isoformat()}: {row.satisfied:,} of {row.surveyed:,} "
                       f"satisfied ({pct_text(row.satisfied, row.surveyed)})")

    @satisfaction.command("list")
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
    def list_satisfaction(as_json: bool) -> None:
        """The results recorded, by landlord and period."""
        with _session() as session:
            rows = ln.list_satisfaction(session)
        if as_json:
            click.echo(json.dumps([satisfaction_json(r) for r in rows], indent=2))
            return
        for row in rows:
            click.echo(f"{row.landlord}  {row.period_start.isoformat()} to "
                       f"{row.period_end.isoformat()}  {row.satisfied:,} of {row.surveyed:,} "
                       f"({pct_text(row.satisfied, row.surveyed)})")
