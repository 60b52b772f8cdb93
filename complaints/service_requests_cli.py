"""``complaints service-requests ...``: log, list, show, resolve and convert service requests.

Service requests (Code 1.4) are kept in the complaints database (``DATABASE_URL``, brought
to the newest schema first): every command but ``convert`` works with no worker running.
``convert`` lodges a complaint (1.5) through Temporal as ``complaints lodge`` does and
prints its reference. The logic is in :mod:`complaints.service_requests`; every refusal is
one ``Error:`` line and exit status 1. ``--by`` is checked against the staff directory as
for staff actions. ``list`` and ``report`` print no personal data; ``show`` does.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click
from pydantic import ValidationError

from complaints import service_requests as sr
from complaints.casefiles import london_today
from complaints.casefiles_cli import command_session, open_for_command
from complaints.settings import Settings
from models.case import Channel, Party
from models.service_requests import ServiceRequestRow

__all__ = ["register"]

#: The columns ``list`` prints and its ``--json`` gives: no personal data.
LIST_FIELDS = ("id", "channel", "category", "received_on", "target_date", "resolved_on",
               "complaint_reference", "told_how_to_complain_on")


def _iso(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def row_json(row: ServiceRequestRow, *, personal: bool, today: dt.date) -> dict[str, Any]:
    """A request as JSON: the listed fields, or (``personal``) every field but the internals.

    Args:
        row: The request.
        personal: Include the resident, the description and the resolution note.
        today: Today in London, for ``overdue``.

    """
    names = (LIST_FIELDS if not personal else tuple(
        n for n in ServiceRequestRow.model_fields if n not in ("year", "seq")))
    out = {name: _iso(getattr(row, name)) for name in names}
    out["status"] = "resolved" if row.resolved_on is not None else "open"
    out["overdue"] = sr.is_overdue(row, today)
    return out


def _session() -> Any:
    return command_session(sr.ServiceRequestError)


def _line(row: ServiceRequestRow, today: dt.date) -> str:
    status = ("overdue" if sr.is_overdue(row, today) else
              "resolved" if row.resolved_on is not None else "open")
    complaint = f"  complaint {row.complaint_reference}" if row.complaint_reference else ""
    return (f"{row.id}  {status:<8}  target {row.target_date.isoformat()}  "
            f"{row.channel:<12}  {row.category}{complaint}")


def register(cli: click.Group, date_type: click.ParamType) -> None:
    """Add the ``service-requests`` group to the ``complaints`` command."""

    @cli.group("service-requests", help="Service requests (Code 1.4-1.6): not complaints, "
                                        "but recorded, monitored and reviewed.")
    def group() -> None:
        pass

    by_option = click.option("--by", required=True, help="Your staff id.")

    @group.command("log")
    @click.option("--channel", type=click.Choice([c.value for c in Channel]), required=True)
    @click.option("--channel-reference", default=None,
                  help="The channel's own id (email or call id): logging it twice is one "
                       "request.")
    @click.option("--received", type=date_type, default=None, help="Default: today.")
    @click.option("--category", default="general", show_default=True,
                  help="What it is about (the themes the report counts).")
    @click.option("--target", "target_date", type=date_type, required=True,
                  help="When it is to be put right by.")
    @click.option("--resident", required=True, help="The resident's name.")
    @click.option("--address", multiple=True, help="An address line (repeatable).")
    @click.option("--email", default=None)
    @click.option("--phone", default=None)
    @click.option("--description", required=True, help="What the resident asks for.")
    @by_option
    def log_command(by: str, **options: Any) -> None:
        """Log a service request; prints its id (SR-YYYY-NNNNNN)."""
        try:
            data = sr.ServiceRequestIn(
                channel=options["channel"], channel_reference=options["channel_reference"],
                received_on=options["received"], category=options["category"],
                target_date=options["target_date"],
                resident=Party(name=options["resident"], address=tuple(options["address"]),
                               email=options["email"], phone=options["phone"]),
                description=options["description"])
        except ValidationError as exc:
            from complaints.staff import one_line

            raise click.ClickException(f"cannot log: {one_line(exc)}") from None
        with _session() as session:
            row, _created = sr.log_request(session, data, sr.check_by(session, by))
            click.echo(row.id)

    @group.command("list")
    @click.option("--open", "open_only", is_flag=True, help="Only those not resolved.")
    @click.option("--overdue", is_flag=True, help="Only open ones past their target date.")
    @click.option("--category", default=None)
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
    def list_command(open_only: bool, overdue: bool, category: str | None,
                     as_json: bool) -> None:
        """List service requests, overdue first, then by target date (no personal data)."""
        today = london_today()
        with _session() as session:
            rows, total = sr.list_requests(session, today=today, open_only=open_only,
                                           overdue=overdue, category=category,
                                           per_page=10_000)
        if as_json:
            click.echo(json.dumps([row_json(r, personal=False, today=today) for r in rows],
                                  indent=2))
            return
        for row in rows:
            click.echo(_line(row, today))
        click.echo(f"{total} service request{'' if total == 1 else 's'}")

    @group.command("show")
    @click.argument("request_id")
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
    def show_command(request_id: str, as_json: bool) -> None:
        """Show one service request, with the resident's details."""
        today = london_today()
        with _session() as session:
            row = sr.get_request(session, request_id)
        data = row_json(row, personal=True, today=today)
        if as_json:
            click.echo(json.dumps(data, indent=2))
            return
        for name, value in data.items():
            if value not in (None, ""):
                shown = str(value).replace("\n", ", ")
                click.echo(f"{name.replace('_', ' ')}: {shown}")

    @group.command("resolve")
    @click.argument("request_id")
    @click.option("--resolution", required=True, help="How it was put right.")
    @click.option("--on", "resolved_on", type=date_type, default=None, help="Default: today.")
    @by_option
    def resolve_command(request_id: str, resolution: str, resolved_on: dt.date | None,
                        by: str) -> None:
        """Record that a service request was put right."""
        with _session() as session:
            row = sr.resolve(session, request_id, sr.check_by(session, by), resolution,
                             resolved_on=resolved_on)
            click.echo(f"{row.id}: resolved on {row.resolved_on}")

    @group.command("told-how-to-complain")
    @click.argument("request_id")
    @click.option("--on", type=date_type, default=None, help="Default: today.")
    @by_option
    def told_command(request_id: str, on: dt.date | None, by: str) -> None:
        """Record that the resident was told how to complain (Code 1.6)."""
        with _session() as session:
            row = sr.told_how_to_complain(session, request_id, sr.check_by(session, by), on=on)
            click.echo(f"{row.id}: told how to complain on {row.told_how_to_complain_on}")

    @group.command("convert")
    @click.argument("request_id")
    @click.option("--policy", default="code-2024", show_default=True,
                  help="The complaint's policy.")
    @click.option("--received", type=date_type, default=None,
                  help="The day the resident expressed dissatisfaction (default: today).")
    @click.option("--channel", type=click.Choice([c.value for c in Channel]), default=None,
                  help="How they did (default: the request's channel).")
    @click.option("--description", default=None,
                  help="What they say (default: the request's description).")
    @click.option("--outcome", multiple=True, help="An outcome sought (repeatable).")
    @by_option
    def convert_command(request_id: str, policy: str, received: dt.date | None,
                        channel: str | None, description: str | None,
                        outcome: tuple[str, ...], by: str) -> None:
        """Raise a complaint from a service request (Code 1.5); prints its reference.

        The service request stays open: it carries on alongside the complaint.
        """
        from complaints.lodging import LodgingRefused
        from complaints.staff import StaffError, client_from_settings, lodge_complaint, run_async
        from models.messages import Intake

        with _session() as session:
            staff_id = sr.check_by(session, by)
        engine = open_for_command(Settings().effective_database_url())

        async def convert() -> sr.Converted:
            client = await client_from_settings()

            async def lodge(intake: Intake) -> tuple[str, bool]:
                lodged = await lodge_complaint(client, intake)
                return lodged.reference, lodged.created

            try:
                return await sr.convert_to_complaint(
                    engine, request_id, lodge, by=staff_id, policy_name=policy,
                    received_on=received, channel=channel, description=description,
                    outcomes_sought=outcome)
            except (LodgingRefused, sr.ServiceRequestError) as exc:
                raise StaffError(str(exc)) from None

        try:
            done = run_async(convert)()
        finally:
            engine.dispose()
        click.echo(done.reference)

    @group.command("report")
    @click.option("--from", "start", type=date_type, required=True,
                  help="First day of the period.")
    @click.option("--to", "end", type=date_type, required=True,
                  help="Last day of the period (included).")
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
    def report_command(start: dt.date, end: dt.date, as_json: bool) -> None:
        """Volumes, the conversion rate to complaints and themes for a period."""
        if end < start:
            raise click.ClickException(f"--to {end} is before --from {start}: give the "
                                       "period's first day, then its last")
        engine = open_for_command(Settings().effective_database_url())
        try:
            figures = sr.report(engine, start, end)
        finally:
            engine.dispose()
        if as_json:
            click.echo(figures.model_dump_json(indent=2))
            return
        rate = ("n/a" if figures.conversion_rate is None
                else f"{figures.conversion_rate:.1%}")
        click.echo(f"Service requests {start} to {end}")
        click.echo(f"  logged {figures.logged}, resolved {figures.resolved} "
                   f"({figures.resolved_within_target} within target), open at the end "
                   f"{figures.open}, of them overdue {figures.overdue}")
        click.echo(f"  converted to complaints {figures.converted} ({rate} of those logged); "
                   f"told how to complain {figures.told_how_to_complain}")
        for theme in figures.themes:
            click.echo(f"  {theme.category}: {theme.count}")
