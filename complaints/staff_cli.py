"""The staff commands: lodge a complaint, act on a case, show it, list cases and letters.

Each command is registered on the ``complaints`` group by :func:`register`; the plumbing
they share (one-line errors, the Temporal client, acting on and querying a case, JSON
input, the action options) is in :mod:`complaints.staff`. A refused action prints the
workflow's reason on one line and exits 1; bad input is a one-line error, never a
traceback. The case, its client and its timeout are looked up on :mod:`complaints.staff`
when a command runs (``staff._query``, ``staff.client_from_settings``,
``staff.ANSWER_TIMEOUT``), so that a stand-in set there is the one called.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from complaints import remote, staff
from complaints.settings import Settings
from complaints.staff import (
    BY,
    JSON_HELP,
    PAYLOAD,
    OneLine,
    StaffError,
    _first_line,
    _payload,
    _send,
    _split,
    intake_from_options,
    load_json,
    lodge_complaint,
    model_json,
    one_line,
    run_async,
    summarise,
)
from models.actions import ACTION_BY_TRIGGER


def _triage_of(references: list[str]) -> list[dict[str, str] | None]:
    """Each case's current triage (complexity, vulnerability, risk), None if never triaged.

    Read from the complaints database; a database that cannot be read shows no triage
    rather than failing the list (the list itself comes from Temporal).
    """
    from sqlalchemy.exc import SQLAlchemyError

    from complaints.casefiles import current_triage
    from complaints.db import make_engine, session_factory

    url = Settings().effective_database_url()
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return [None] * len(references)  # no database here yet: nothing triaged, none made
    try:
        engine = make_engine(url)
        try:
            with session_factory(engine)() as session:
                found = current_triage(session, references)
        finally:
            engine.dispose()
    except (SQLAlchemyError, OSError):
        return [None] * len(references)
    return [{"complexity": t.complexity, "vulnerability": t.vulnerability, "risk": t.risk}
            if (t := found.get(r)) else None for r in references]


def _write_pdf(reference: str, letter_id: str, path: Path) -> None:
    """Write a stored letter's PDF (printing and keeping it first if it has none).

    With ``API_URL``, the API's copy (which it prints and keeps the same way).
    """
    from sqlalchemy.exc import SQLAlchemyError

    from activities.letters import LetterActivities
    from complaints.db import make_engine, session_factory

    settings = Settings()
    if path.exists():
        raise StaffError(f"{path} exists: choose a new file name")
    if remote.api_url() is not None:
        _save_pdf(path, remote.letter(reference, letter_id, "pdf"))
        return
    try:
        engine = make_engine(settings.effective_database_url())
        try:
            letters = LetterActivities(session_factory(engine), settings.effective_outbox())
            row = letters.print_letter(letter_id)
        finally:
            engine.dispose()
    except LookupError:
        raise StaffError(f"no letter {letter_id} in the database: `complaints letters "
                         f"{reference}` lists them") from None
    except (SQLAlchemyError, OSError) as exc:
        raise StaffError(f"cannot read letter {letter_id} ({type(exc).__name__}): check "
                         "DATABASE_URL or DATA_DIR") from None
    if row.reference != reference:
        raise StaffError(f"letter {letter_id} belongs to another complaint, not {reference}")
    assert row.pdf is not None
    _save_pdf(path, row.pdf)


def _save_pdf(path: Path, pdf: bytes) -> None:
    """Write a letter's PDF to a new file (``0600``) and say so, in either mode."""
    from complaints.files import create_private_file

    if not create_private_file(path):  # 0600 from the first byte, never over another file
        raise StaffError(f"{path} exists: choose a new file name")
    path.write_bytes(pdf)
    click.echo(f"{path} ({len(pdf):,} bytes)")


def _stored_letter_text(url: str, letter_id: str) -> str | None:
    """A letter's stored text, with a database that cannot be read as a one-line error."""
    from sqlalchemy.exc import SQLAlchemyError

    from complaints.db import letter_text

    try:
        return letter_text(url, letter_id)
    except (SQLAlchemyError, OSError) as exc:
        raise StaffError(
            f"cannot read letter {letter_id} from the database at {url.split('@')[-1]} "
            f"({_first_line(exc)}): check that DATABASE_URL or DATA_DIR name the worker's "
            "database and that it is not damaged") from None


def register(cli: click.Group, date_type: click.ParamType) -> None:
    """Add the staff commands to the ``complaints`` group."""
    date_type = OneLine(date_type)

    @cli.command()
    @click.option("--file", "file_path", default=None, help="An intake JSON file.")
    @click.option("--reference", default=None, help="Use this reference (CMP-YYYY-NNNNNN).")
    @click.option("--channel", default=None, help="phone, email, letter, web_form, ...")
    @click.option("--channel-reference", default=None,
                  help="The channel's own id (email id, call id): lodging it twice is one case.")
    @click.option("--received", type=date_type, default=None)
    @click.option("--issue-date", type=date_type, default=None,
                  help="When the issue happened (for the 12-month rule, Code 2.3).")
    @click.option("--resident", default=None)
    @click.option("--address", multiple=True)
    @click.option("--email", default=None)
    @click.option("--phone", default=None)
    @click.option("--prefers", type=click.Choice(["post", "email"]), default=None,
                  help="How the resident wants letters: post (never emailed) or email (when "
                       "an address is given; otherwise posted).")
    @click.option("--representative", default=None)
    @click.option("--group-member", multiple=True)
    @click.option("--description", default=None)
    @click.option("--outcome", multiple=True, help="An outcome sought (repeatable).")
    @click.option("--adjustment", multiple=True, help="A reasonable adjustment (repeatable).")
    @click.option("--category", default=None)
    @click.option("--policy", default=None, help="Policy name (default code-2024).")
    @click.option("--manager", default=None, help="The responsible manager's staff id.")
    @click.option("--tenure", type=click.Choice(["lcra", "lcho", "other"]), default=None,
                  help="The resident's tenure: lcra (low-cost rental), lcho (low-cost home "
                       "ownership) or other; reported per tenure (CH01, CH02).")
    def lodge(file_path: str | None, **options: Any) -> None:
        """Lodge a complaint from flags or a JSON file; prints its reference."""
        data = load_json(file_path) if file_path else {}
        if not isinstance(data, dict):
            raise StaffError(f"{file_path} must hold a JSON object with the intake fields")
        try:
            intake = intake_from_options(data, options)
        except ValidationError as exc:
            raise StaffError(f"cannot lodge: {one_line(exc)}") from None
        from complaints.lodging import LodgingRefused, check_reference

        asked = options.get("reference") is not None or "reference" in data
        reference = intake.reference if asked else None
        try:
            if reference is not None:  # Refused before Temporal or the database is asked.
                check_reference(reference, intake.received_on.year)
        except LodgingRefused as exc:
            raise StaffError(str(exc)) from None
        if remote.api_url() is not None:
            click.echo(remote.lodge(intake, reference_given=asked))
            return

        async def start() -> str:
            client = await staff.client_from_settings()
            try:
                lodged = await lodge_complaint(client, intake, reference=reference)
            except LodgingRefused as exc:
                raise StaffError(str(exc)) from None
            return lodged.reference

        click.echo(run_async(start)())

    @cli.command()
    @click.argument("reference")
    @BY
    @PAYLOAD
    @click.option("--handler", default=None, help="Handler's staff id (default: --by).")
    @click.option("--summary", default=None)
    @click.option("--point", multiple=True, help="A point of the complaint definition.")
    @click.option("--outcome", multiple=True, help="An outcome the resident seeks.")
    @click.option("--responsible-for", multiple=True)
    @click.option("--not-responsible-for", multiple=True)
    def acknowledge(reference: str, by: str, json_path: str | None, handler: str | None,
                    summary: str | None, point: tuple[str, ...], outcome: tuple[str, ...],
                    responsible_for: tuple[str, ...], not_responsible_for: tuple[str, ...]) -> None:
        """Acknowledge and define a stage 1 complaint (Code 5.6, 6.2)."""
        definition = {k: v for k, v in {
            "summary": summary, "points": list(point), "outcomes_sought": list(outcome),
            "responsible_for": list(responsible_for),
            "not_responsible_for": list(not_responsible_for)}.items() if v}
        _send(reference, "acknowledge", _payload(json_path, by=by, handler_id=handler or by,
                                                 definition=definition or None))

    @cli.command("acknowledge-escalation")
    @click.argument("reference")
    @BY
    @PAYLOAD
    @click.option("--handler", default=None, help="Stage 2 reviewer (default: --by).")
    @click.option("--summary", default=None)
    @click.option("--point", multiple=True)
    @click.option("--outcome", multiple=True)
    def acknowledge_escalation(reference: str, by: str, json_path: str | None,
                               handler: str | None, summary: str | None,
                               point: tuple[str, ...], outcome: tuple[str, ...]) -> None:
        """Acknowledge and define a stage 2 request (Code 6.11, 6.13)."""
        definition = {k: v for k, v in {"summary": summary, "points": list(point),
                                        "outcomes_sought": list(outcome)}.items() if v}
        _send(reference, "acknowledge_escalation",
              _payload(json_path, by=by, handler_id=handler or by,
                       definition=definition or None))

    @cli.command()
    @click.argument("reference")
    @BY
    @PAYLOAD
    @click.option("--ground", multiple=True, help="An exclusion ground (Code section 2).")
    @click.option("--explanation", default=None)
    @click.option("--discretion", default=None, help="How discretion was considered (2.3).")
    @click.option("--issue-date", type=date_type, default=None,
                  help="When the issue occurred (the twelve-month ground needs it, 2.3).")
    @click.option("--aware-on", type=date_type, default=None,
                  help="When the resident became aware of it, if later.")
    @click.option("--instead", default=None,
                  help="What the resident can do instead (the other route), for the letter.")
    def decline(reference: str, by: str, json_path: str | None, ground: tuple[str, ...],
                explanation: str | None, discretion: str | None, issue_date: dt.date | None,
                aware_on: dt.date | None, instead: str | None) -> None:
        """Decline a complaint on a section 2 ground, with reasons (Code 2.1-2.5).

        Before acknowledgement on any section 2 ground; after it, only on a ground that
        arose since (legal proceedings started, for example).
        """
        _send(reference, "decline", _payload(
            json_path, by=by, grounds=list(ground), explanation=explanation,
            discretion_considered=discretion, instead=instead,
            issue_occurred_on=issue_date.isoformat() if issue_date else None,
            aware_on=aware_on.isoformat() if aware_on else None))

    @cli.command()
    @click.argument("reference")
    @BY
    @PAYLOAD
    @click.option("--working-days", type=int, default=None)
    @click.option("--reason", default=None)
    @click.option("--good-reason", default=None, help="Needed beyond the cap (6.4, 6.15).")
    @click.option("--update-interval", default=None, help="How often the resident hears (5.9).")
    def extend(reference: str, by: str, json_path: str | None, working_days: int | None,
               reason: str | None, good_reason: str | None,
               update_interval: str | None) -> None:
        """Extend the response time; the letter gives the Ombudsman's details (6.5)."""
        _send(reference, "extend", _payload(json_path, by=by, working_days=working_days,
                                            reason=reason, good_reason=good_reason,
                                            update_interval=update_interval))

    @cli.command()
    @click.argument("reference")
    @BY
    @PAYLOAD
    @click.option("--decision", type=click.Choice(["upheld", "partly_upheld", "not_upheld"]),
                  default=None)
    @click.option("--finding", multiple=True, help="POINT::FINDING::REASON (repeatable).")
    @click.option("--remedy", multiple=True,
                  help="KIND::DESCRIPTION[::AMOUNT[::DUE YYYY-MM-DD]] (repeatable).")
    @click.option("--action", "actions", multiple=True,
                  help="ID::DESCRIPTION::DUE YYYY-MM-DD (repeatable).")
    def respond(reference: str, by: str, json_path: str | None, decision: str | None,
                finding: tuple[str, ...], remedy: tuple[str, ...],
                actions: tuple[str, ...]) -> None:
        """Issue the stage 1 response or the final response (Code 6.9, 6.19)."""
        findings = [dict(zip(("point", "finding", "reason"), _split(f, 3, "finding"),
                             strict=False)) for f in finding]
        remedies = []
        for r in remedy:
            parts = _split(r, 2, "remedy")
            entry: dict[str, Any] = {"kind": parts[0], "description": parts[1]}
            if len(parts) > 2 and parts[2]:
                entry["amount"] = parts[2]
            if len(parts) > 3 and parts[3]:
                entry["due_by"] = parts[3]
            remedies.append(entry)
        outstanding = [dict(zip(("action_id", "description", "due_by"), _split(a, 3, "action"),
                                strict=False)) for a in actions]
        _send(reference, "respond", _payload(json_path, by=by, decision=decision,
                                             findings=findings, remedies=remedies,
                                             outstanding_actions=outstanding))

    @cli.command()
    @click.argument("reference")
    @BY
    @click.option("--requested-on", type=date_type, default=None,
                  help="When the resident asked (default: today).")
    @click.option("--reason", default=None, help="Optional: no reason is required (6.12).")
    def escalate(reference: str, by: str, requested_on: dt.date | None,
                 reason: str | None) -> None:
        """Record the resident's request for stage 2."""
        _send(reference, "request_escalation", _payload(
            None, by=by, requested_on=(requested_on or dt.date.today()).isoformat(),
            reason=reason))

    @cli.command("refuse-escalation")
    @click.argument("reference")
    @BY
    @click.option("--ground", multiple=True, required=True)
    @click.option("--explanation", required=True)
    def refuse_escalation(reference: str, by: str, ground: tuple[str, ...],
                          explanation: str) -> None:
        """Refuse a stage 2 request on a section 2 ground (Code 5.11)."""
        _send(reference, "refuse_escalation", _payload(None, by=by, grounds=list(ground),
                                                       explanation=explanation))

    @cli.command()
    @click.argument("reference")
    @BY
    @click.option("--reason", default=None, help="The resident's reason, in their words.")
    @click.option("--confirmed-via", default=None,
                  help="How the resident confirmed it: phone, email, letter, in_person, ...")
    @click.option("--note", default=None)
    def withdraw(reference: str, by: str, reason: str | None, confirmed_via: str | None,
                 note: str | None) -> None:
        """Record that the resident withdrew the complaint; a letter confirms it to them."""
        _send(reference, "withdraw", _payload(None, by=by, reason=reason,
                                              confirmed_via=confirmed_via, note=note))

    @cli.command("complete-action")
    @click.argument("reference")
    @click.argument("action_id")
    @BY
    @click.option("--note", default=None)
    def complete_action(reference: str, action_id: str, by: str, note: str | None) -> None:
        """Mark an outstanding action complete; the resident is told (Code 6.6)."""
        _send(reference, "complete_action", _payload(None, by=by, action_id=action_id,
                                                     note=note))

    @cli.command("refer-ombudsman")
    @click.argument("reference")
    @BY
    @click.option("--ombudsman-reference", default=None)
    def refer_ombudsman(reference: str, by: str, ombudsman_reference: str | None) -> None:
        """Record that the Housing Ombudsman has taken the complaint."""
        _send(reference, "refer_ombudsman", _payload(None, by=by,
                                                     ombudsman_reference=ombudsman_reference))

    @cli.command("act")
    @click.argument("reference")
    @click.argument("action", type=click.Choice(sorted(ACTION_BY_TRIGGER)))
    @click.option("--json", "json_path", required=True, help=JSON_HELP)
    def act_command(reference: str, action: str, json_path: str) -> None:
        """Send any staff action from JSON (add_issue, record_contact, close, ...)."""
        _send(reference, action, _payload(json_path))

    @cli.command()
    @click.argument("reference")
    @click.option("--json", "as_json", is_flag=True)
    def status(reference: str, as_json: bool) -> None:
        """Show a case: state, deadlines, letters, actions and refusals."""
        view = (remote.case_view(reference) if remote.api_url()
                else run_async(staff._query)(reference))
        if as_json:
            click.echo(model_json(view))
            return
        click.echo(summarise(view))
        click.echo(f"landlord: {view.landlord}  policy: {view.policy_name}  handlers: "
                   + (", ".join(f"{k}={v}" for k, v in view.handlers.items()) or "-"))
        click.echo("deadlines:")
        for d in view.deadlines:
            click.echo(f"  {d.label:<26} due {d.due.isoformat()}  {d.status.value}"
                       f"{'  (met late)' if d.status == 'breached' and d.met_at else ''}")
        click.echo(f"letters: {len(view.letters)}  actions open: "
                   f"{len(view.case.open_actions())}  refused actions: {len(view.rejected)}")

    @cli.command("list")
    @click.option("--state", default=None, help="Only cases in this state.")
    @click.option("--overdue", is_flag=True, help="Only cases with a breached deadline.")
    @click.option("--json", "as_json", is_flag=True)
    def list_cases(state: str | None, overdue: bool, as_json: bool) -> None:
        """List complaint cases from Temporal's visibility (search attributes)."""
        if remote.api_url() is not None:
            return remote.print_cases(state, overdue, as_json)

        async def fetch() -> list[dict[str, Any]]:
            from workflows.complaint import (
                SA_HANDLER,
                SA_NEXT_DEADLINE,
                SA_OVERDUE,
                SA_STAGE,
                SA_STATE,
            )

            client = await staff.client_from_settings()
            query = "WorkflowType IN ('Complaint', 'ComplaintWorkflow')"
            if state:
                query += f" AND ComplaintState = '{state.replace(chr(39), '')}'"
            if overdue:
                query += " AND Overdue = true"
            rows = []
            async for wf in client.list_workflows(query, limit=1000,
                                                  rpc_timeout=staff.ANSWER_TIMEOUT):
                attrs = wf.typed_search_attributes
                deadline = attrs.get(SA_NEXT_DEADLINE)
                rows.append({"reference": wf.id, "state": attrs.get(SA_STATE),
                             "stage": attrs.get(SA_STAGE), "handler": attrs.get(SA_HANDLER),
                             "next_deadline": deadline.isoformat() if deadline else None,
                             "overdue": bool(attrs.get(SA_OVERDUE)),
                             "status": wf.status.name if wf.status else None})
            return rows

        rows = run_async(fetch)()
        for r, triage in zip(rows, _triage_of([r["reference"] for r in rows]), strict=True):
            r["triage"] = triage
        if as_json:
            click.echo(json.dumps(rows, indent=2))
            return
        for r in rows:
            t = r["triage"]
            shown = (f"  triage {t['complexity']}/{t['vulnerability']}/{t['risk']}"
                     if t else "")
            click.echo(f"{r['reference']}  {r['state'] or '-':<22} stage {r['stage']}  "
                       f"next {r['next_deadline'] or '-'}{'  OVERDUE' if r['overdue'] else ''}"
                       f"{shown}")
        click.echo(f"{len(rows)} case{'s' if len(rows) != 1 else ''}")

    @cli.command()
    @click.argument("reference")
    @click.option("--show", "letter_id", default=None, help="Print this letter's text.")
    @click.option("--pdf", "pdf_path", default=None,
                  help="With --show: write the letter as an accessible PDF to this file "
                       "(printed now if it never was, and kept with the letter).")
    def letters(reference: str, letter_id: str | None, pdf_path: str | None) -> None:
        """List the letters sent on a case, or print one (with API_URL: through the API)."""
        if pdf_path is not None:
            if letter_id is None:
                raise StaffError("--pdf needs --show LETTER_ID: `complaints letters "
                                 f"{reference}` lists them")
            _write_pdf(reference, letter_id, Path(pdf_path))
            return
        if letter_id is not None and remote.api_url() is not None:
            # The API checks that the letter is the case's, and records the reading.
            click.echo(remote.letter(reference, letter_id).decode("utf-8"))
            return
        view = (remote.case_view(reference) if remote.api_url()
                else run_async(staff._query)(reference))
        if letter_id is None:
            for record in view.letters:
                click.echo(f"{record.letter_id}  {record.sent_at:%Y-%m-%d}  {record.subject}  "
                           f"[{', '.join(record.delivered_to)}]")
            click.echo(f"{len(view.letters)} letter{'s' if len(view.letters) != 1 else ''}")
            return
        if letter_id not in {r.letter_id for r in view.letters}:
            raise StaffError(f"no letter {letter_id} on {reference}: "
                             f"`complaints letters {reference}` lists them")
        text = _stored_letter_text(Settings().effective_database_url(), letter_id)
        if text is None:
            raise StaffError(f"letter {letter_id} is not in the database yet; try again")
        click.echo(text)
