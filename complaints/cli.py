"""The ``complaints`` command line.

Errors a user can act on are printed as one line (what went wrong, how to fix it) with a
non-zero exit, never a traceback. Anything unforeseen is caught last of all by
:func:`main`: one line with the exception's type and where it happened (never its
message, which may quote personal data), exit status 1; ``COMPLAINTS_DEBUG=1`` shows the
traceback instead.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from complaints.policies import (
    PolicyError,
    check_against_code,
    load_policy,
    shipped_policy_names,
)
from complaints.remote_scope import RemoteAwareGroup
from complaints.staff import OneLine
from complaints.staff_cli import register as register_staff_commands
from complaints.workdays import WorkingCalendar
from models.policy import Nation


class IsoDate(click.ParamType):
    """A calendar date written YYYY-MM-DD."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> dt.date:
        """Parse ``value`` or fail with a one-line usage error."""
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a date: write it as YYYY-MM-DD, e.g. 2026-11-23",
                      param, ctx)


# One-line errors for bad dates (no usage block), as for the staff commands.
ISO_DATE = OneLine(IsoDate())
NATIONS = click.Choice([n.value for n in Nation])


# RemoteAwareGroup: with API_URL, an operator's command refuses before it runs (the list
# of which commands are is complaints/remote_scope.py's).
@click.group(cls=RemoteAwareGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--api", "api_url", default=None, metavar="URL",
              help="Act on cases through the HTTP API at URL with API_TOKEN (default: "
                   "API_URL; unset: Temporal and the database directly).")
@click.pass_context
def cli(ctx: click.Context, api_url: str | None) -> None:
    """Complaint handling to the Housing Ombudsman's Complaint Handling Code."""
    from complaints.remote import API_URL_META

    if api_url:
        ctx.meta[API_URL_META] = api_url


@cli.command()
@click.option("--from", "start", type=ISO_DATE, required=True,
              help="The day the clock starts (day 0), e.g. the day a complaint was received.")
@click.option("--working-days", type=click.IntRange(min=0, max=10_000), required=True,
              help="How many working days are allowed.")
@click.option("--nation", type=NATIONS, default=None,
              help="Whose bank holidays count (default: the policy's, else england-and-wales).")
@click.option("--policy", "policy_name", default=None,
              help="A policy name or file: its nation and one-off bank holidays count; its "
                   "closure days are warned about, never added.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def deadlines(start: dt.date, working_days: int, nation: str | None, policy_name: str | None,
              as_json: bool) -> None:
    """Print the due date of "within N working days of D" (D is day 0)."""
    extra: tuple[dt.date, ...] = ()
    closures: tuple[dt.date, ...] = ()
    chosen = Nation(nation) if nation else Nation.ENGLAND_AND_WALES
    if policy_name is not None:
        policy = _load(policy_name)
        extra, closures = policy.non_working_days(), policy.closure_days
        chosen = Nation(nation) if nation else policy.nation
    calendar = WorkingCalendar(chosen, extra)
    deadline = calendar.deadline(start, working_days)
    skipped = _skipped(calendar, start, deadline.due)
    from domain.casebook import CLOSURE_WARNING_DAYS  # as the workflow warns

    closed = sorted(d for d in closures if start < d <= deadline.due
                    and (deadline.due - d).days < CLOSURE_WARNING_DAYS)
    if as_json:
        click.echo(json.dumps({
            "from": start.isoformat(), "working_days": working_days, "nation": chosen.value,
            "policy": policy_name, "due": deadline.due.isoformat(),
            "ends_at": deadline.ends_at.isoformat().replace("+00:00", "Z"),
            "skipped": [{"date": d.isoformat(), "reason": r} for d, r in skipped],
            "closures_before_due": [d.isoformat() for d in closed],
        }))
        return
    click.echo(f"due: {deadline.due.isoformat()} ({deadline.due:%A %-d %B %Y})")
    click.echo(f"ends: {deadline.ends_at.isoformat()} (23:59:59 Europe/London)")
    holidays = [(d, r) for d, r in skipped if r not in ("Saturday", "Sunday")]
    if holidays:
        click.echo("not counted: " + "; ".join(f"{d:%a %-d %b %Y} {r}" for d, r in holidays))
    if closed:
        click.echo("warning: the landlord is closed on "
                   + ", ".join(f"{d:%a %-d %b}" for d in closed)
                   + ", on or before the due date, which does not move: plan the work around it")


def _skipped(calendar: WorkingCalendar, start: dt.date,
             due: dt.date) -> list[tuple[dt.date, str]]:
    """The non-working days passed over between ``start`` and ``due`` (for people to read)."""
    if (due - start).days > 366:
        return []  # Too long a list to be useful; the due date speaks for itself.
    days = (start + dt.timedelta(days=i) for i in range(1, (due - start).days + 1))
    return [(d, r) for d in days if (r := calendar.non_working_reason(d)) is not None]


#: What a landlord's closure day does (and does not do), in `policy check` and `policy show`.
CLOSURE_EFFECT = ("they never lengthen a Code timescale: deadlines count Monday to Friday "
                  "less the nation's bank holidays; staff are warned when a due date falls "
                  "in or just after a closure")


@cli.group()
def policy() -> None:
    """Check and show landlord complaints policies."""


@policy.command("check")
@click.argument("name_or_path")
def policy_check(name_or_path: str) -> None:
    """Exit 0 if the policy meets the Code; otherwise list the provisions it breaks."""
    loaded = _load(name_or_path)
    breaches = check_against_code(loaded)
    if not breaches:
        click.echo(f"{loaded.name}: complies with the Complaint Handling Code 2024")
        if loaded.closure_days:
            click.echo(f"  {len(loaded.closure_days)} closure day(s) "
                       f"({', '.join(d.isoformat() for d in loaded.closure_days[:6])}"
                       f"{' ...' if len(loaded.closure_days) > 6 else ''}): {CLOSURE_EFFECT}")
        return
    click.echo(f"{loaded.name}: refused, it breaks the Complaint Handling Code 2024 "
               f"({len(breaches)} provision{'s' if len(breaches) > 1 else ''}):", err=True)
    for breach in breaches:
        click.echo(f"  - {breach}", err=True)
    sys.exit(1)


@policy.command("show")
@click.argument("name_or_path")
@click.option("--json", "as_json", is_flag=True, help="Print the policy as JSON.")
def policy_show(name_or_path: str, as_json: bool) -> None:
    """Print the effective policy and whether it meets the Code."""
    loaded = _load(name_or_path)
    breaches = check_against_code(loaded)
    if as_json:
        data = loaded.model_dump(mode="json")
        data["code_breaches"] = [{"provision": b.provision, "message": b.message}
                                 for b in breaches]
        click.echo(json.dumps(data, indent=2))
        return
    limits = loaded.limits
    window = loaded.escalation_window
    rows = [
        ("policy", loaded.name), ("landlord", loaded.landlord), ("nation", loaded.nation.value),
        ("stages", f"{loaded.stages}{' + informal stage' if loaded.informal_stage else ''}"),
        ("early contact", f"{limits.early_contact} WD" if limits.early_contact else "-"),
        ("stage 1 acknowledgement", f"{limits.stage1_acknowledgement} WD of receipt"),
        ("stage 1 response", f"{limits.stage1_response} WD of {limits.stage1_response_from}"),
        ("stage 1 extension cap", f"{limits.stage1_extension_cap} WD"),
        ("stage 2 acknowledgement", f"{limits.stage2_acknowledgement} WD of the request"),
        ("stage 2 response", f"{limits.stage2_response} WD of {limits.stage2_response_from}"),
        ("stage 2 extension cap", f"{limits.stage2_extension_cap} WD"),
        ("reminder lead", f"{limits.reminder_lead} WD before each due date"),
        ("escalation window", f"{window.length} {window.unit.replace('_', ' ')} after the "
                              f"{window.runs_from.replace('_', ' ')}"),
        ("exclusion window", f"{loaded.exclusion_window_months} months"),
        ("closure days", (", ".join(d.isoformat() for d in loaded.closure_days)
                          + f" ({CLOSURE_EFFECT})") if loaded.closure_days else "-"),
        ("one-off bank holidays",
         ", ".join(d.isoformat() for d in loaded.one_off_bank_holidays) or "-"),
        ("homes owned", f"{loaded.homes_owned:,}"),
        ("retention", f"{loaded.retention.years_after_closure} years after closure, then "
                      "personal data is erased (the current file is read when erasing)"),
        ("Ombudsman", f"{loaded.ombudsman.name}, {loaded.ombudsman.phone}, "
                      f"{loaded.ombudsman.online_form}"),
        ("Code 2024", "complies" if not breaches else
         "REFUSED: " + "; ".join(str(b) for b in breaches)),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key:<{width}}  {value}")


@policy.command("list")
def policy_list() -> None:
    """List the shipped policies and whether each meets the Code."""
    for name in shipped_policy_names():
        breaches = check_against_code(load_policy(name))
        verdict = "complies" if not breaches else "refused: " + ", ".join(
            b.provision for b in breaches)
        click.echo(f"{name:<14} {verdict}")


@cli.command()
@click.option("--received", type=ISO_DATE, default=None,
              help="The day a complaint was received (default: today).")
@click.option("--policy", "policy_name", default="connexus", show_default=True,
              help="The policy to time the complaint with.")
def demo(received: dt.date | None, policy_name: str) -> None:
    """Show the shipped policies and the Code's deadlines for one complaint."""
    click.echo("Shipped policies, checked against the Complaint Handling Code 2024:")
    for name in shipped_policy_names():
        breaches = check_against_code(load_policy(name))
        click.echo(f"  {name:<14} " + ("complies" if not breaches else
                                       "refused: " + "; ".join(str(b) for b in breaches)))
    chosen = _load(policy_name)
    start = received or dt.date.today()
    calendar = WorkingCalendar.for_policy(chosen)
    limits = chosen.limits
    ack = calendar.deadline(start, limits.stage1_acknowledgement)
    response_from = ack.due if limits.stage1_response_from == "acknowledgement" else start
    response = calendar.deadline(response_from, limits.stage1_response)
    extended = calendar.deadline(response.due, limits.stage1_extension_cap)
    click.echo(f"\nA complaint received on {start:%A %-d %B %Y} under {chosen.name} "
               f"({chosen.nation.value}):")
    rows = [(f"acknowledge within {limits.stage1_acknowledgement} WD (6.2)", ack.due)]
    if limits.early_contact:
        rows.insert(0, (f"early contact within {limits.early_contact} WD",
                        calendar.add_working_days(start, limits.early_contact)))
    rows += [(f"stage 1 response {limits.stage1_response} WD after (6.3)", response.due),
             (f"latest with a {limits.stage1_extension_cap} WD extension (6.4)", extended.due)]
    for label, due in rows:
        click.echo(f"  {label:<46} {due:%a %-d %b %Y}")


@cli.command()
@click.option("--write", "readme", type=click.Path(dir_okay=False), default=None,
              help="Replace the lifecycle block in this README instead of printing.")
def diagram(readme: str | None) -> None:
    """Print the lifecycle as a Mermaid diagram generated from the transition table."""
    from domain.lifecycle import mermaid_diagram

    block = f"<!-- lifecycle:start -->\n```mermaid\n{mermaid_diagram()}```\n<!-- lifecycle:end -->"
    if readme is None:
        click.echo(block)
        return
    path = Path(readme)
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise click.ClickException(f"cannot read {readme} ({why}): give a README that "
                                   "you can read and write") from None
    pattern = re.compile(r"<!-- lifecycle:start -->.*?<!-- lifecycle:end -->", re.S)
    if not pattern.search(text):
        raise click.ClickException(
            f"{readme} has no '<!-- lifecycle:start -->' ... '<!-- lifecycle:end -->' block: "
            "add the two markers where the diagram belongs")
    try:
        path.write_text(pattern.sub(lambda _: block, text), encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {readme} ({exc.strerror}): check its "
                                   "permissions") from None
    click.echo(f"updated the lifecycle diagram in {readme}")


@cli.command()
@click.option("--no-demo", is_flag=True,
              help="Do not lodge the demo complaint or add the demo staff.")
def dev(no_demo: bool) -> None:
    """Run everything locally: Temporal + UI, database, worker, web app (Ctrl-C stops)."""
    import asyncio

    from complaints.dev import run_dev
    from complaints.files import private_umask
    from complaints.logs import configure_logging
    from complaints.settings import Settings

    settings = Settings()
    configure_logging(json=settings.log_json, level=settings.log_level)
    with private_umask():  # residents' details: whatever it writes is the user's alone
        asyncio.run(run_dev(settings, demo=not no_demo))


@cli.group()
def db() -> None:
    """The complaints database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply the schema migrations (Alembic) to DATABASE_URL."""
    from complaints.db import upgrade
    from complaints.settings import Settings

    url = Settings().effective_database_url()
    try:
        upgrade(url)
    except Exception as exc:  # noqa: BLE001 - any failure is reported on one line
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise click.ClickException(f"cannot migrate {url.split('@')[-1]}: {first}") from None
    click.echo(f"database at {url.split('@')[-1]} is at the latest schema")


register_staff_commands(cli, ISO_DATE)
__import__("complaints.casework_cli", fromlist=["register"]).register(cli, ISO_DATE)
__import__("complaints.reports.cli", fromlist=["register"]).register(cli, ISO_DATE)
__import__("complaints.resync", fromlist=["register"]).register(cli)
__import__("complaints.casefiles_cli", fromlist=["register"]).register(cli, ISO_DATE)
__import__("complaints.directory_cli", fromlist=["register"]).register(cli, ISO_DATE)
__import__("complaints.tokens_cli", fromlist=["register"]).register(cli)  # after `staff`
__import__("complaints.permissions_cli", fromlist=["register"]).register(cli)
__import__("complaints.serving", fromlist=["register"]).register(cli)
__import__("complaints.webhooks_cli", fromlist=["register"]).register(cli, ISO_DATE)
__import__("complaints.retention", fromlist=["register"]).register(cli, ISO_DATE)
__import__("complaints.subject_access", fromlist=["register"]).register(cli)
__import__("complaints.keys_cli", fromlist=["register"]).register(cli)
__import__("complaints.service_requests_cli", fromlist=["register"]).register(cli, ISO_DATE)
__import__("complaints.imports_cli", fromlist=["register"]).register(cli)
__import__("complaints.learning_cli", fromlist=["register"]).register(cli, ISO_DATE)


def _load(name_or_path: str) -> Any:
    try:
        return load_policy(name_or_path)
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from None


#: Set (to anything but 0 or empty) to see the traceback of an unexpected error.
DEBUG_ENV = "COMPLAINTS_DEBUG"
#: The engine's own top-level modules (pyproject.toml), to find where an error happened.
_OUR_MODULES = frozenset({"complaints", "workflows", "activities", "models", "domain",
                          "worker.py"})


def unexpected_error_line(exc: BaseException) -> str:
    """The one line shown for an error nobody foresaw: its type and where, not its text.

    The message is left out on purpose: an unforeseen exception may quote anything it was
    given, personal data included. The innermost frame in the engine's own code says where.
    """
    root = Path(__file__).resolve().parent.parent  # the checkout, or site-packages
    where = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = Path(frame.filename)
        if path.is_relative_to(root) and path.relative_to(root).parts[0] in _OUR_MODULES:
            where = f" in {path.relative_to(root)}:{frame.lineno} ({frame.name})"
            break
    kind = type(exc).__module__ + "." + type(exc).__qualname__
    kind = kind.removeprefix("builtins.")
    return (f"Error: unexpected {kind}{where}; this is a bug: rerun with {DEBUG_ENV}=1 for "
            "the traceback and report it")


def main() -> None:
    """Console-script entry point: every failure is one ``Error:`` line and a non-zero exit.

    Click already turns usage errors and ``ClickException`` into one line; what still gets
    here is unforeseen, and becomes one line too (see :func:`unexpected_error_line`)
    unless ``COMPLAINTS_DEBUG`` asks for the traceback.
    """
    from pydantic import ValidationError

    try:
        cli.main(prog_name="complaints")
    except Exception as exc:  # noqa: BLE001 - the last line of defence, on purpose
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        if isinstance(exc, ValidationError) and exc.title == "Settings":
            # Read wherever a command first needs them: a bad value is the operator's to fix.
            fields = "; ".join(f"{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
                               for e in exc.errors())
            line = (f"Error: invalid settings: {fields}; fix that environment variable (or "
                    "the env file's line)")
        else:
            line = unexpected_error_line(exc)
        click.echo(line, err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
