"""The case-file commands: documents, the unacceptable-behaviour register and triage.

``complaints attach``, ``documents``, ``document``, ``restriction add|review|list``,
``triage`` and ``triage-show``, registered on the ``complaints`` group by
:func:`register`. They read and write the complaints database (``DATABASE_URL``, brought
to the newest schema first) and the data folder (``DATA_DIR``) only: never Temporal, so
they work with no worker running. The logic is in :mod:`complaints.casefiles`; every
refusal is one ``Error:`` line and exit status 1.

With ``API_URL`` (:mod:`complaints.remote`) all but ``restriction`` go through the HTTP
API instead and print the same: both modes hand the same rows to the same formatting
here. ``restriction`` is the operator's and refuses remote mode
(``complaints.remote_scope``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from sqlalchemy import Engine
from sqlmodel import Session

from complaints import casefiles, remote
from complaints.casefiles import Attached, CaseFileError, london_date
from complaints.settings import Settings
from models.tables import DocumentRow, RestrictionHistoryRow, RestrictionRow, TriageRow

__all__ = ["register"]

_CODE_CARRIES_ON = ("A restriction limits how the resident may contact the landlord, never "
                    "the complaint: the complaint carries on under the Code, to its time "
                    "limits.")
_REVIEW_RULE = (f"The review date must be after today (London) and at most "
                f"{casefiles.REVIEW_MAX_MONTHS} months ahead.")


def open_for_command(url: str) -> Engine:
    """The complaints database at the newest schema, for a command; a one-line error if not.

    Raises:
        click.ClickException: The database cannot be opened or migrated (the cause, and
            which settings name it).
    """
    from sqlalchemy.exc import SQLAlchemyError

    from complaints.db import ensure_schema, make_engine
    from complaints.dbcheck import database_label

    try:
        ensure_schema(url)
        return make_engine(url)
    except (SQLAlchemyError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise click.ClickException(f"cannot open the complaints database "
                                   f"{database_label(url)} ({first[:160]}): check "
                                   "DATABASE_URL / DATA_DIR") from None


@contextlib.contextmanager
def command_session(*refusals: type[Exception]) -> Iterator[Session]:
    """A session on the complaints database at the newest schema, for one command.

    Each of ``refusals`` raised inside becomes the one-line ``Error:`` of the command (its
    ``detail`` if it has one, else its message).
    """
    from complaints.db import session_factory

    engine = open_for_command(Settings().effective_database_url())
    try:
        with session_factory(engine)() as session:
            try:
                yield session
            except refusals as exc:
                raise click.ClickException(str(getattr(exc, "detail", exc))) from None
    finally:
        engine.dispose()


@contextlib.contextmanager
def _database() -> Iterator[tuple[Settings, Session]]:
    """The settings and a session; a :class:`CaseFileError` becomes the one-line error."""
    with command_session(CaseFileError) as session:
        yield Settings(), session


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"


def _local(instant: dt.datetime) -> str:
    """An instant as London date and time, for people."""
    from complaints.workdays import LONDON

    return instant.astimezone(LONDON).strftime("%Y-%m-%d %H:%M")


def _iso(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _row_json(row: Any, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    return {name: _iso(getattr(row, name)) for name in type(row).model_fields
            if name not in drop}


def _first_line(text: str, width: int = 70) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[:width - 3] + "..."


def _document_line(row: DocumentRow) -> str:
    when = f"  received {row.received_on.isoformat()}" if row.received_on else ""
    return (f"{row.document_id}  {row.direction:<8} {row.kind:<7} {_size(row.size_bytes):>9}  "
            f"{row.file_name}  ({row.media_type}; added {_local(row.added_at)}"
            f"{' by ' + row.added_by if row.added_by else ''}){when}")


def _triage_text(row: TriageRow) -> str:
    return (f"complexity {row.complexity}, vulnerability {row.vulnerability}, risk "
            f"{row.risk} (by {row.by}, {_local(row.at)})")


def _attached_line(reference: str, done: Attached) -> str:
    """What ``attach`` prints: the document attached, or the one it already was."""
    row = done.row
    if done.created:
        return (f"{reference}: attached {row.document_id} ({row.kind}, {row.direction}, "
                f"{row.media_type}, {_size(row.size_bytes)})")
    restored = "; its stored copy was missing or damaged and is written again" \
        if done.restored else ""
    return (f"{reference}: already attached as {row.document_id} ({row.file_name}, added "
            f"{_local(row.added_at)}{' by ' + row.added_by if row.added_by else ''}): not "
            f"stored twice{restored}")


def _documents_text(rows: list[DocumentRow]) -> list[str]:
    """What ``documents`` prints: a line per document (and its note's first line)."""
    lines = []
    for row in rows:
        lines.append(_document_line(row))
        if row.note:
            lines.append(f"    note: {_first_line(row.note)}")
    lines.append(f"{len(rows)} document{'s' if len(rows) != 1 else ''}")
    return lines


def _triage_history_text(reference: str, rows: list[TriageRow]) -> list[str]:
    """What ``triage-show`` prints: the current triage, its note, then the earlier ones."""
    if not rows:
        return [f"{reference}: not triaged yet: `complaints triage {reference} ...`"]
    lines = [f"{reference}: current: {_triage_text(rows[0])}"]
    if rows[0].note:
        lines.append(f"    note: {_first_line(rows[0].note)}")
    lines += [f"  earlier: {_triage_text(row)}" for row in rows[1:]]
    return lines


def _restriction_json(row: RestrictionRow,
                      history: list[RestrictionHistoryRow]) -> dict[str, Any]:
    data = _row_json(row)
    data["history"] = [_row_json(e, drop=("snapshot_json", "restriction_id", "reference"))
                       | {"snapshot": json.loads(e.snapshot_json)} for e in history]
    return data


def register(cli: click.Group, date_type: click.ParamType | None = None) -> None:
    """Add the case-file commands to the ``complaints`` group.

    Args:
        cli: The ``complaints`` group.
        date_type: The group's ``YYYY-MM-DD`` parameter type (default: the one of
            ``complaints.cli``, read when this is called).

    """
    if date_type is None:
        from complaints.cli import ISO_DATE

        date_type = ISO_DATE
    by_required = click.option("--by", required=True,
                               help="Your staff id (recorded with the entry).")

    @cli.command()
    @click.argument("reference")
    @click.argument("file", type=click.Path(dir_okay=True, path_type=Path))
    @click.option("--kind", required=True, type=click.Choice(casefiles.DOCUMENT_KINDS),
                  help="What the document is.")
    @click.option("--direction", required=True, type=click.Choice(casefiles.DIRECTIONS),
                  help="Received by the landlord (inbound) or sent by it (outbound).")
    @click.option("--received-on", type=date_type, default=None,
                  help="The day it was received (or sent); not in the future.")
    @click.option("--by", default=None, help="Your staff id (recorded with the document); "
                  "with API_URL, the token's holder is.")
    @click.option("--note", default=None,
                  help=f"A note about it (at most {casefiles.MAX_TEXT:,} characters).")
    def attach(reference: str, file: Path, kind: str, direction: str,
               received_on: dt.date | None, by: str | None, note: str | None) -> None:
        """Attach a document to a case file (Code 5.12): letter, email, report, photo...

        The file is kept under the data folder as documents/REFERENCE/<sha256>.<ext>,
        readable by the engine's user only. At most 25 MiB; accepted: pdf, png, jpeg,
        gif, webp, txt, eml, docx, odt, csv, checked by content as well as extension
        (executables and macro documents are refused). The same file attached twice to
        a case is kept once.
        """
        if remote.api_url() is not None:
            remote.ignore_by(by, "the document")
            done = remote.attach(reference, file, kind=kind, direction=direction,
                                 received_on=received_on, note=note)
        else:
            with _database() as (settings, session):
                done = casefiles.attach_document(
                    session, settings.data_dir, reference, file, kind=kind,
                    direction=direction, received_on=received_on, by=by, note=note)
        click.echo(_attached_line(reference, done))

    @cli.command()
    @click.argument("reference")
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
    def documents(reference: str, as_json: bool) -> None:
        """List the documents on a case file, oldest first."""
        if remote.api_url() is not None:
            rows = remote.documents(reference)
        else:
            with _database() as (_, session):
                rows = casefiles.list_documents(session, reference)
        if as_json:
            click.echo(json.dumps([_row_json(r, drop=("id",)) for r in rows], indent=2,
                                  ensure_ascii=False))
            return
        click.echo("\n".join(_documents_text(rows)))

    @cli.command()
    @click.argument("reference")
    @click.argument("document_id")
    @click.option("--out", required=True, type=click.Path(path_type=Path),
                  help="A new file to write the copy to, or a folder (the copy keeps the "
                       "document's name). An existing file is never overwritten.")
    def document(reference: str, document_id: str, out: Path) -> None:
        """Write out a copy of a document, after checking it is the file attached.

        The stored copy's SHA-256 must match the one recorded when it was attached
        (with API_URL: the copy received must match the one the API sends); otherwise
        nothing is written and the command fails (exit 1).
        """
        if remote.api_url() is not None:
            got = remote.download_document(reference, document_id)
            try:
                target = casefiles.write_copy(got.data, out, got.file_name)
            except CaseFileError as exc:
                raise click.ClickException(str(exc)) from None
            shown, size = got.document_id, len(got.data)
        else:
            with _database() as (settings, session):
                row, target = casefiles.export_document(session, settings.data_dir,
                                                        reference, document_id, out)
            shown, size = row.document_id, row.size_bytes
        click.echo(f"{reference}: wrote {shown} to {target} ({_size(size)}, SHA-256 checked)")

    @cli.group(help="The unacceptable-behaviour register (Code 3.6): restrictions on "
                    f"contact, each reviewed. {_CODE_CARRIES_ON}")
    def restriction() -> None:
        pass

    @restriction.command("add", short_help="Restrict a resident's contact (Code 3.6).", help=(
        "Restrict how a resident may contact the landlord, with the reason, evidence, why "
        "it is proportionate, the contact route left open and a review date. "
        f"{_CODE_CARRIES_ON} {_REVIEW_RULE} Every field is required, each at most "
        f"{casefiles.MAX_TEXT:,} characters."))
    @click.argument("reference")
    @click.option("--reason", required=True, help="The behaviour that led to it.")
    @click.option("--evidence", required=True,
                  help="What it rests on: dates, records, who witnessed it.")
    @click.option("--proportionality", required=True,
                  help="Why it is proportionate; what was considered first (adjustments, "
                       "vulnerability).")
    @click.option("--contact-route", required=True,
                  help="How the resident may still contact the landlord.")
    @click.option("--review-on", type=date_type, required=True,
                  help=f"When it is reviewed: after today, at most "
                       f"{casefiles.REVIEW_MAX_MONTHS} months ahead.")
    @by_required
    def restriction_add(reference: str, reason: str, evidence: str, proportionality: str,
                        contact_route: str, review_on: dt.date, by: str) -> None:
        with _database() as (_, session):
            row = casefiles.add_restriction(
                session, reference, reason=reason, evidence=evidence,
                proportionality=proportionality, contact_route=contact_route,
                review_on=review_on, by=by)
        click.echo(f"{reference}: restriction {row.id} recorded, review on "
                   f"{row.review_on}; the complaint carries on under the Code")

    @restriction.command("review", short_help="Continue, change or lift a restriction.",
                         help=(
        "Review a restriction: continue it, change it (the note says how) or lift it. "
        "continue and change need --next-review; lift takes none. "
        f"{_REVIEW_RULE} {_CODE_CARRIES_ON}"))
    @click.argument("reference")
    @click.argument("restriction_id", type=click.IntRange(min=1))
    @click.option("--outcome", required=True, type=click.Choice(casefiles.REVIEW_OUTCOMES))
    @click.option("--note", required=True, help="What was considered and decided.")
    @click.option("--next-review", type=date_type, default=None,
                  help=f"The next review (continue, change): after today, at most "
                       f"{casefiles.REVIEW_MAX_MONTHS} months ahead.")
    @by_required
    def restriction_review(reference: str, restriction_id: int, outcome: str, note: str,
                           next_review: dt.date | None, by: str) -> None:
        with _database() as (_, session):
            row = casefiles.review_restriction(session, reference, restriction_id,
                                               outcome=outcome, note=note,
                                               next_review=next_review, by=by)
        if row.status == "lifted":
            click.echo(f"{reference}: restriction {row.id} lifted")
        else:
            click.echo(f"{reference}: restriction {row.id} {outcome}d, next review on "
                       f"{row.review_on}")

    @restriction.command("list", short_help="List the register (--due: reviews due).")
    @click.option("--due", is_flag=True,
                  help="Only active restrictions whose review date is today or past (London).")
    @click.option("--json", "as_json", is_flag=True,
                  help="Print a JSON array, each restriction with its history.")
    def restriction_list(due: bool, as_json: bool) -> None:
        """List the register: active restrictions by review date, then lifted ones."""
        today = casefiles.london_today()
        with _database() as (_, session):
            rows = casefiles.list_restrictions(session, due=due, today=today)
            history = casefiles.restriction_history(session, [r.id for r in rows if r.id])
        if as_json:
            click.echo(json.dumps([_restriction_json(r, history.get(r.id or 0, []))
                                   for r in rows], indent=2, ensure_ascii=False))
            return
        overdue = 0
        for row in rows:
            is_due = row.status == "active" and row.review_on is not None \
                and row.review_on <= today
            overdue += is_due
            review = (f"review {row.review_on}{'  DUE' if is_due else ''}"
                      if row.status == "active" else
                      f"since {london_date(row.lifted_at) if row.lifted_at else '-'}")
            click.echo(f"{row.id:>4}  {row.reference}  {row.status:<7} {review}  "
                       f"(added {london_date(row.added_at)} by {row.added_by})")
            click.echo(f"      contact route: {_first_line(row.contact_route)}")
        what = "restriction" + ("s" if len(rows) != 1 else "")
        click.echo(f"{len(rows)} {what}" + (f", {overdue} due for review" if not due else ""))

    @cli.command()
    @click.argument("reference")
    @click.option("--complexity", required=True, type=click.Choice(casefiles.COMPLEXITY))
    @click.option("--vulnerability", required=True, type=click.Choice(casefiles.VULNERABILITY),
                  help="The resident's vulnerability as known (5.10).")
    @click.option("--risk", required=True, type=click.Choice(casefiles.RISK),
                  help="Risk to the resident or the home (health and safety, disrepair).")
    @click.option("--note", default=None,
                  help=f"Why (at most {casefiles.MAX_TEXT:,} characters).")
    @click.option("--by", default=None, callback=remote.by_unless_remote,
                  help="Your staff id (recorded with the entry); with API_URL, the token's "
                       "holder is.")
    def triage(reference: str, complexity: str, vulnerability: str, risk: str,
               note: str | None, by: str | None) -> None:
        """Record a triage of a case (Code 5.10, 6.1); the latest is the current one.

        Every triage is kept: `complaints triage-show REFERENCE` shows them all.
        """
        if remote.api_url() is not None:
            remote.ignore_by(by, "the triage")
            row = remote.record_triage(reference, complexity=complexity,
                                       vulnerability=vulnerability, risk=risk, note=note)
        else:
            assert by is not None  # by_unless_remote requires it in direct mode
            with _database() as (_, session):
                row = casefiles.record_triage(session, reference, complexity=complexity,
                                              vulnerability=vulnerability, risk=risk,
                                              note=note, by=by)
        click.echo(f"{reference}: triage recorded: {_triage_text(row)}")

    @cli.command("triage-show")
    @click.argument("reference")
    def triage_show(reference: str) -> None:
        """Show a case's current triage and the earlier ones."""
        if remote.api_url() is not None:
            rows = remote.triage_history(reference)
        else:
            with _database() as (_, session):
                rows = casefiles.triage_history(session, reference)
        click.echo("\n".join(_triage_history_text(reference, rows)))
