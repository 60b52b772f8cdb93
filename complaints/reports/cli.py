"""The reporting commands: ``complaints report``, ``complaints evidence``, ``complaints synthetic``.

Registered on the ``complaints`` group by ``register(cli, ISO_DATE)``. They read and
write the database at ``DATABASE_URL`` (``--database-url`` overrides it), bringing it to
the newest schema first, as the worker does. With ``API_URL``, ``report`` and ``report
submission`` ask the HTTP API instead (:mod:`complaints.remote_reports`); ``evidence`` and
``synthetic`` refuse (:mod:`complaints.remote_scope`).
"""

from __future__ import annotations

import datetime as dt
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from complaints.policies import PolicyError, load_compliant_policy, load_policy
from complaints.remote import api_url
from complaints.reports.figures import ReportOptions, build_report
from complaints.reports.model import Ch02Basis
from complaints.reports.period import Period, parse_year
from complaints.reports.render import FORMATS, render
from complaints.reports.submission import SubmissionError, build_submission
from complaints.reports.submission_render import SUBMISSION_FORMATS, render_submission
from complaints.staff import OneLine
from models.policy import Policy

__all__ = ["register"]

_SUFFIXES = {".md": "md", ".markdown": "md", ".html": "html", ".htm": "html",
             ".json": "json", ".csv": "csv"}


def _database_url(url: str | None) -> str:
    from complaints.settings import Settings

    return url or Settings().effective_database_url()


def _engine(url: str) -> Engine:
    from complaints.db import ensure_schema, make_engine

    try:
        ensure_schema(url)
    except (SQLAlchemyError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise click.ClickException(f"cannot open the database {url.split('@')[-1]}: "
                                   f"{first}") from None
    return make_engine(url)


def _period(start: dt.date | None, end: dt.date | None, year: str | None) -> Period:
    if year is not None:
        if start is not None or end is not None:
            raise click.UsageError("give either --year or --from and --to, not both")
        try:
            return parse_year(year)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--year") from None
    if start is None or end is None:
        raise click.UsageError("give the period: --year 2025/26, or --from DATE --to DATE")
    try:
        return Period(start, end)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--to") from None


def _policy(engine: Engine, name: str | None, period: Period) -> Policy:
    """The named policy, else the one most of the period's complaints were handled under."""
    from models.tables import ComplaintRow

    if name is None:
        complaints = ComplaintRow.__table__  # type: ignore[attr-defined]
        count = func.count()
        with engine.connect() as db:
            found = db.execute(
                select(complaints.c.policy_name, count)
                .where(complaints.c.received_on.between(period.start, period.end))
                .group_by(complaints.c.policy_name).order_by(count.desc()).limit(1)).first()
            if found is None:
                found = db.execute(select(complaints.c.policy_name, count)
                                   .group_by(complaints.c.policy_name)
                                   .order_by(count.desc()).limit(1)).first()
        if found is None:
            raise click.ClickException("the database holds no complaints: load some "
                                       "(complaints synthetic --year ...) or pass --policy")
        name = str(found[0])
    try:
        return load_policy(name)
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from None


def _write(text: str, out: str | None) -> None:
    if out is None:
        click.echo(text, nl=False)
        return
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _format(fmt: str | None, out: str | None) -> str:
    if fmt is not None:
        return fmt
    if out is not None and Path(out).suffix.lower() in _SUFFIXES:
        return _SUFFIXES[Path(out).suffix.lower()]
    return "md"


def _report_options(date_type: click.ParamType) -> Callable[[Callable[..., Any]],
                                                            Callable[..., Any]]:
    """The options ``report`` and ``evidence`` share."""
    options = [
        click.option("--from", "start", type=date_type, default=None,
                     help="First day of the period."),
        click.option("--to", "end", type=date_type, default=None,
                     help="Last day of the period (included)."),
        click.option("--year", default=None,
                     help="A reporting year, 1 April - 31 March, e.g. 2025/26."),
        click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
                     help="Output format (default: from --out's suffix, else md)."),
        click.option("--out", default=None, type=click.Path(dir_okay=False),
                     help="Write to this file instead of standard output."),
        click.option("--policy", "policy_name", default=None,
                     help="Policy name or file: its landlord's complaints are reported, "
                          "whatever policy each was handled under (default: the one most "
                          "of the period's complaints were handled under)."),
        click.option("--homes", type=click.IntRange(min=1), default=None,
                     help="Homes owned, for CH01 (default: the policy's homes_owned)."),
        click.option("--as-of", type=date_type, default=None,
                     help="Date overdue figures are taken at (default: the period's end, "
                          "or today if sooner)."),
        click.option("--ch02", "basis", type=click.Choice([b.value for b in Ch02Basis]),
                     default=Ch02Basis.STRICT.value, show_default=True,
                     help="Headline CH02: strict (the whole chain within the Code, the "
                          "Regulator's figure), within the extended due date only, or "
                          "within the base timescale. All three are shown."),
        click.option("--exceptions", type=click.IntRange(min=0), default=50,
                     show_default=True, help="Exceptions listed per item (0: all)."),
        click.option("--database-url", default=None,
                     help="SQLAlchemy URL (default: DATABASE_URL, else .data/complaints.db)."),
    ]

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def _run_report(start: dt.date | None, end: dt.date | None, year: str | None,
                fmt: str | None, out: str | None, policy_name: str | None, homes: int | None,
                as_of: dt.date | None, basis: str, exceptions: int,
                database_url: str | None, *, evidence: bool, evidence_only: bool) -> None:
    started = time.perf_counter()
    period = _period(start, end, year)
    engine = _engine(_database_url(database_url))
    try:
        policy = _policy(engine, policy_name, period)
        if homes is None and not policy.homes_owned:
            raise click.ClickException(f"policy {policy.name} gives no homes_owned: pass "
                                       "--homes N for CH01")
        options = ReportOptions(period, policy, homes=homes, as_of=as_of,
                                basis=Ch02Basis(basis), exceptions=exceptions)
        report = build_report(engine, options, evidence=evidence or evidence_only)
    except SQLAlchemyError as exc:
        first = str(exc).splitlines()[0]
        raise click.ClickException(f"the report failed in the database: {first}") from None
    finally:
        engine.dispose()
    chosen = _format(fmt, out)
    _write(render(report, chosen, evidence_only=evidence_only), out)
    if out is not None:
        what = "evidence pack" if evidence_only else "report"
        click.echo(f"wrote {out}: {what} for {report.landlord} {period.label}, "
                   f"{report.complaints_logged:,} complaints, {chosen}, "
                   f"{time.perf_counter() - started:.1f}s", err=True)


class _ReportingYear(click.ParamType):
    """A reporting year written 2025/26, read as its :class:`Period`."""

    name = "YYYY/YY"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Period:
        """Parse ``value`` or fail with the reason (one line, through ``OneLine``)."""
        if isinstance(value, Period):
            return value
        try:
            return parse_year(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _run_submission(period: Period, fmt: str | None, out: str | None,
                    policy_name: str | None, homes: int | None, as_of: dt.date | None,
                    database_url: str | None) -> None:
    """Build the year's report (with the evidence pack) and the submission from it."""
    chosen = fmt or ("csv" if out is not None and Path(out).suffix.lower() == ".csv"
                     else "json")
    engine = _engine(_database_url(database_url))
    try:
        policy = _policy(engine, policy_name, period)
        options = ReportOptions(period, policy, homes=homes, as_of=as_of)
        report = build_report(engine, options, evidence=True)
        made = build_submission(report, policy)
    except SQLAlchemyError as exc:
        first = str(exc).splitlines()[0]
        raise click.ClickException(f"the submission failed in the database: {first}") from None
    except SubmissionError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()
    _write(render_submission(made, chosen), out)
    if out is not None:
        click.echo(f"wrote {out}: Ombudsman submission for {made.landlord} "
                   f"{made.reporting_year}, {chosen}; due {made.deadline.due.isoformat()} "
                   f"({made.deadline.rule})", err=True)


def register(cli: click.Group, date_type: click.ParamType) -> None:
    """Add ``report``, ``evidence`` and ``synthetic`` to the ``complaints`` group.

    Args:
        cli: The ``complaints`` command group.
        date_type: The group's YYYY-MM-DD parameter type.

    """

    # A group that still runs as a command: `complaints report --year ...` is the report,
    # `complaints report submission --year ...` the Ombudsman's annual submission.
    @cli.group(invoke_without_command=True)
    @_report_options(date_type)
    @click.option("--evidence", is_flag=True,
                  help="Append the self-assessment evidence pack.")
    @click.pass_context
    def report(ctx: click.Context, evidence: bool, **options: Any) -> None:
        """Complaints performance report: TSM CH01/CH02, volumes, timeliness, outcomes.

        For the annual complaints performance report (Code 8.1, 9.7) and the committee
        update (md for documents, html with charts, json / csv for other systems).
        """
        if ctx.invoked_subcommand is None:
            if api_url() is not None:  # through the API, never a database on this machine
                from complaints.remote_reports import annual_report

                annual_report(options["year"], options["fmt"], options["out"])
                return
            _run_report(**options, evidence=evidence, evidence_only=False)

    @report.command("submission")
    @click.option("--year", "period", required=True, type=OneLine(_ReportingYear()),
                  help="The reporting year, 1 April - 31 March, e.g. 2025/26.")
    @click.option("--format", "fmt", type=click.Choice(SUBMISSION_FORMATS), default=None,
                  help="json or csv (field,value) (default: from --out's suffix, else json).")
    @click.option("--out", default=None, type=click.Path(dir_okay=False),
                  help="Write to this file instead of standard output.")
    @click.option("--policy", "policy_name", default=None,
                  help="Policy name or file (default: the one most of the year's complaints "
                       "were handled under).")
    @click.option("--homes", type=click.IntRange(min=1), default=None,
                  help="Homes owned at 31 March (default: the policy's for the year).")
    @click.option("--as-of", type=date_type, default=None,
                  help="Date overdue figures are taken at (default: the year's end, or "
                       "today if sooner).")
    @click.option("--database-url", default=None,
                  help="SQLAlchemy URL (default: DATABASE_URL, else .data/complaints.db).")
    def submission(period: Period, fmt: str | None, out: str | None,
                   policy_name: str | None, homes: int | None, as_of: dt.date | None,
                   database_url: str | None) -> None:
        """The Housing Ombudsman's annual submission: the data its form asks for (Code 8).

        CH01 and strict CH02 per stage and tenure, refusals and their grounds, referrals,
        orders and their compliance, remedies, the policy check per Code provision, and
        the deadline (30 September for more than 1,000 homes). The published report's
        and the governing body's response's addresses are left for you to fill in.
        """
        if api_url() is not None:  # through the API, never a database on this machine
            from complaints.remote_reports import submission as remote_submission

            remote_submission(period, fmt, out)
            return
        _run_submission(period, fmt, out, policy_name, homes, as_of, database_url)

    @cli.command()
    @_report_options(date_type)
    def evidence(**options: Any) -> None:
        """Self-assessment evidence pack: each Code provision, cases, met, exceptions."""
        _run_report(**options, evidence=True, evidence_only=True)

    @cli.command()
    @click.option("--year", required=True, help="Reporting year, e.g. 2025/26.")
    @click.option("--complaints", "count", type=click.IntRange(min=1, max=5_000_000),
                  default=2000, show_default=True, help="How many complaints.")
    @click.option("--seed", type=int, default=1, show_default=True,
                  help="Random seed: the same seed loads the same year.")
    @click.option("--policy", "policy_name", default="connexus", show_default=True,
                  help="The policy the complaints are handled under.")
    @click.option("--as-of", type=date_type, default=None,
                  help="Nothing happens after this date (default: today).")
    @click.option("--replace", is_flag=True,
                  help="Delete this year's synthetic complaints first (never real ones).")
    @click.option("--database-url", default=None,
                  help="SQLAlchemy URL (default: DATABASE_URL, else .data/complaints.db).")
    def synthetic(year: str, count: int, seed: int, policy_name: str,
                  as_of: dt.date | None, replace: bool, database_url: str | None) -> None:
        """Load a reproducible synthetic year of complaints (demos and benchmarks).

        Writes straight into the database, bypassing the workflows on purpose (speed);
        references are SYN-<year>-NNNNNN, so real complaints are never touched.
        """
        from complaints.synthetic import SyntheticError, load_synthetic_year

        try:
            period = parse_year(year)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--year") from None
        try:
            policy = load_compliant_policy(policy_name)
        except PolicyError as exc:
            raise click.ClickException(str(exc)) from None
        url = _database_url(database_url)
        engine = _engine(url)
        say = functools.partial(click.echo, err=True)
        try:
            summary = load_synthetic_year(engine, policy, period, count, seed=seed,
                                          as_of=as_of, replace=replace, progress=say)
        except SyntheticError as exc:
            raise click.ClickException(str(exc)) from None
        except SQLAlchemyError as exc:
            raise click.ClickException(f"loading failed: {str(exc).splitlines()[0]}") from None
        finally:
            engine.dispose()
        rows = sum(summary.rows.values())
        click.echo(f"loaded {summary.complaints:,} synthetic complaints of {period.label} "
                   f"({rows:,} rows) into {url.split('@')[-1]} in {summary.seconds:.1f}s; "
                   f"report with: complaints report --year {period.label}")
        sys.stdout.flush()
