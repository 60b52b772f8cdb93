"""Reports, imports and a case's parties in the CLI's remote mode: through the HTTP API.

With ``API_URL`` (:mod:`complaints.remote`), ``complaints report --year``, ``complaints
report submission`` and ``complaints import`` call ``GET /reports/annual``,
``GET /reports/submission`` and ``POST /imports`` as the token's holder, and print what
direct mode prints: the report's text (or write it to ``--out``), the import's one-line
summary, or a refused file's problems (one line, or one a line with ``--list-problems``).
``add-representative`` reads the parties it adds to from the API's records of the case.

The API takes fewer options than direct mode: it reports whole reporting years under the
policy most complaints were handled under, with that policy's homes and figures as at the
year's end, and imports for every shipped policy that meets the Code. An option it does
not take is refused with one line naming it (:func:`refuse_options`), never dropped.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from complaints.remote import RemoteError, _case_path, _request, _send, ignore_by

__all__ = ["annual_report", "import_file", "recorded_parties", "refuse_options", "submission"]

#: Where an option's value came from when the user gave it (not its default).
_GIVEN = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT, ParameterSource.PROMPT)
#: Why the report commands take only --year, --format and --out through the API.
_REPORT_WHY = ("the API reports a whole reporting year under the policy most complaints "
               "were handled under, with its own defaults")
#: How long ``import`` waits for the API's answer: the whole file is imported before it
#: answers, some 2,000 rows a second, so the largest file taken (64 MiB) needs minutes.
IMPORT_TIMEOUT_S = 1800.0
_IMPORT_WHY = ("the API imports into its own database, for every shipped policy that meets "
               "the Code")


def refuse_options(allowed: set[str], why: str) -> None:
    """Refuse, in one line, an option of the running command that the API does not take.

    Args:
        allowed: The parameters' names that remote mode uses.
        why: Why the others cannot be honoured through the API.

    Raises:
        RemoteError: An option not in ``allowed`` was given (not left at its default).

    """
    ctx = click.get_current_context()
    for param in ctx.command.params:
        if param.name is None or param.name in allowed:
            continue
        if ctx.get_parameter_source(param.name) in _GIVEN:
            shown = max(param.opts, key=len) if isinstance(param, click.Option) else param.name
            raise RemoteError(f"{shown} cannot be used with API_URL ({why}): unset API_URL "
                              "(and --api) to use it")


def _write(text: str, out: str | None, what: str, started: float) -> None:
    """Print ``text``, or write it to ``out`` as direct mode does and say so on stderr."""
    from complaints.reports.cli import _write as write

    write(text, out)
    if out is not None:
        click.echo(f"wrote {out}: {what} from the API, {time.perf_counter() - started:.1f}s",
                   err=True)


def _text(path: str, year: str, fmt: str) -> str:
    """The body of ``GET path?year=&format=`` as text (the API sends UTF-8)."""
    response = _send("GET", path, params={"year": year, "format": fmt},
                     after_timeout=" (a large year takes longer: try again, or ask an "
                                   "operator to run it directly)")
    try:
        return response.content.decode("utf-8")
    except UnicodeDecodeError:
        raise RemoteError(f"the API answered {path} with something other than UTF-8 text: "
                          "check that API_URL names the complaints web app") from None


def annual_report(year: str | None, fmt: str | None, out: str | None) -> None:
    """``complaints report --year Y`` through the API (``GET /reports/annual``).

    Args:
        year: The reporting year as typed (``2025/26``); required remotely.
        fmt: The format asked for (default: from ``out``'s suffix, else md, as direct).
        out: The file to write instead of printing.

    """
    from complaints.reports.cli import _format
    from complaints.reports.period import parse_year

    refuse_options({"year", "fmt", "out"}, _REPORT_WHY)
    if year is None:
        raise RemoteError("give the reporting year with --year, e.g. --year 2025/26: the API "
                          "reports whole years (unset API_URL for --from/--to)")
    try:
        period = parse_year(year)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--year") from None
    chosen = _format(fmt, out)
    started = time.perf_counter()
    text = _text("/reports/annual", period.label, chosen)
    _write(text, out, f"report for {period.label}, {chosen}", started)


def submission(period: Any, fmt: str | None, out: str | None) -> None:
    """``complaints report submission --year Y`` through the API (``GET /reports/submission``).

    Args:
        period: The reporting year (:class:`complaints.reports.period.Period`).
        fmt: json or csv (default: csv for an ``out`` ending .csv, else json, as direct).
        out: The file to write instead of printing.

    """
    refuse_options({"period", "fmt", "out"}, _REPORT_WHY)
    chosen = fmt or ("csv" if out is not None and Path(out).suffix.lower() == ".csv"
                     else "json")
    started = time.perf_counter()
    text = _text("/reports/submission", period.label, chosen)
    _write(text, out, f"Ombudsman submission for {period.label}, {chosen}", started)


def _refused_import(exc: RemoteError, list_problems: bool) -> RemoteError:
    """A refused file's error as direct mode words it, from the problem's ``errors``."""
    from complaints.import_csv import ImportRefused, RowProblem

    errors = (exc.problem or {}).get("errors")
    if not isinstance(errors, list) or not errors:
        return exc  # refused for another reason (permission, size, type): its one line
    try:
        problems = [RowProblem(e.get("line"), e.get("field"), str(e["detail"]))
                    for e in errors]
    except (AttributeError, KeyError, TypeError):
        return exc
    if list_problems:
        for problem in problems:
            click.echo(str(problem), err=True)
    more = "" if list_problems else ": --list-problems shows them"
    return RemoteError(ImportRefused(problems).line(more))


def import_file(file: Path, *, dry_run: bool, by: str | None, list_problems: bool) -> None:
    """``complaints import FILE`` through the API (``POST /imports``), as the token's holder.

    Args:
        file: The CSV file, sent as it is (``text/csv``).
        dry_run: Check it and say what would change; nothing is written.
        by: ``--by``: ignored with a note when given (the API records the token's holder).
        list_problems: Print every problem of a refused file, one a line.

    """
    from complaints.imports import ImportSummary

    refuse_options({"file", "dry_run", "by", "list_problems"}, _IMPORT_WHY)
    ctx = click.get_current_context()
    ignore_by(by if ctx.get_parameter_source("by") in _GIVEN else None, "the import run")
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise click.ClickException(f"cannot read {file}: {exc.strerror}") from None
    try:
        response = _send("POST", "/imports", content=data,
                         headers={"Content-Type": "text/csv"},
                         params={"dry_run": "true"} if dry_run else None,
                         timeout_s=IMPORT_TIMEOUT_S,
                         after_timeout=(" (it may still be imported: run the same command "
                                        "with --dry-run to see; importing the same file "
                                        "again changes nothing)"))
    except RemoteError as exc:
        raise _refused_import(exc, list_problems) from None
    try:
        answer = response.json()
        summary = ImportSummary(
            rows=int(answer["rows"]), imported=int(answer["imported"]),
            replaced=int(answer["replaced"]), unchanged=int(answer["unchanged"]),
            dry_run=bool(answer["dry_run"]), file_sha256=str(answer["file_sha256"]),
            run_id=None if answer.get("run_id") is None else int(answer["run_id"]))
    except (ValueError, KeyError, TypeError):
        raise RemoteError("the API answered /imports with something other than an import's "
                          "summary: check that API_URL names the complaints web app") from None
    click.echo(summary.line())


def recorded_parties(reference: str) -> list[dict[str, Any]]:
    """The parties the API has recorded for a case, as an amendment's JSON lists them.

    The API records the reading (the parties are personal data).
    """
    answer = _request("GET", _case_path(reference))
    parties = (answer.get("records") or {}).get("parties") if isinstance(answer, dict) else None
    if not parties:
        raise RemoteError(f"the API has no parties recorded for {reference}: check the "
                          "reference (`complaints status`)")
    return [{"role": p["role"], "name": p["name"], "address": list(p["address"]),
             "email": p["email"], "phone": p["phone"]} for p in parties]
