"""Staff commands: lodge complaints and move them on through the workflow's updates.

Every command talks to Temporal, or, with ``API_URL`` set, the ones that act on a case
go through the HTTP API instead (:mod:`complaints.remote`); a refused action prints the
workflow's reason on one line and exits 1. Bad input (a malformed date, a missing field,
an unknown reference) is a one-line error with exit 2 (usage) or 1, never a traceback. No
command waits for ever: a case whose worker does not answer within :data:`ANSWER_TIMEOUT`
is reported as such.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
import time
from collections.abc import Callable, Coroutine
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from pydantic import BaseModel, ValidationError
from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from complaints import remote
from complaints.settings import Settings
from models.actions import (
    ACTION_BY_TRIGGER,
    Action,
)
from models.case import Adjustment, Party, PartyRole
from models.events import ActionResult
from models.limits import first_problem, normalise_staff_ids
from models.messages import CaseView, Intake

if TYPE_CHECKING:
    from complaints.lodging import Lodged

T = TypeVar("T")

#: How long a command waits for the worker to take an action or answer a query.
ANSWER_TIMEOUT = dt.timedelta(seconds=20)
#: How long a command waits to connect to Temporal.
CONNECT_TIMEOUT_S = 10.0
#: A reference that passes the pattern, used to validate an intake before allocating one.
PLACEHOLDER_REFERENCE = "CMP-0000-000000"


class StaffError(click.ClickException):
    """A one-line error for staff: what went wrong and how to fix it."""


class NoAnswer(StaffError):
    """Temporal or the worker did not answer in time."""


class _OneLineBadParameter(click.BadParameter):
    """A bad option value shown as the one ``Error:`` line, without the usage block."""

    def show(self, file: Any = None) -> None:
        """Print ``Error: Invalid value for '--opt': ...`` and nothing else."""
        click.ClickException.show(self, file)


class OneLine(click.ParamType):
    """Another parameter type whose conversion errors are one line (exit code 2 kept)."""

    def __init__(self, inner: click.ParamType) -> None:
        self.inner = inner
        self.name = inner.name

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        """Convert with the wrapped type; a refusal keeps its message, loses the usage."""
        try:
            return self.inner.convert(value, param, ctx)
        except click.BadParameter as exc:
            raise _OneLineBadParameter(exc.message, ctx=ctx, param=param) from None


def settle_sdk_threads(seconds: float = 0.05) -> None:
    """Let Temporal's Rust threads let go of Python before the interpreter shuts down.

    With temporalio 1.35 on CPython 3.11 a short-lived client process that exits straight
    after its last call can die at shutdown (SIGABRT "PyGILState_Release: thread state ...
    must be current when releasing", or SIGSEGV; measured: 7% of `complaints` commands, 23%
    of a bare connect-and-count script): the tokio thread that delivered the last result
    still holds the asyncio task locals and frees them while the interpreter finalizes
    (temporalio/sdk-python#300). Releasing the GIL for a moment lets that thread finish
    first (0 crashes in 300 runs).
    """
    time.sleep(seconds)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if "Connection refused" in text or "ConnectionRefused" in text:
        return "connection refused"
    first = text.splitlines()[0] if text else type(exc).__name__
    return first if len(first) <= 160 else first[:157] + "..."


def _no_answer(what: str, cause: str | None = None) -> NoAnswer:
    """The error for a case that did not answer in time.

    Args:
        what: What did not answer.
        cause: Why, when Temporal knows (an activity failing, see
            :func:`complaints.dbcheck.stall_cause`): said instead of asking whether a
            worker runs, which would point at the wrong cause.

    """
    if cause is not None:
        return NoAnswer(cause)
    settings = Settings()
    return NoAnswer(
        f"{what}: no answer within {ANSWER_TIMEOUT.total_seconds():.0f}s; is a worker "
        f"running on task queue {settings.temporal_task_queue!r} at "
        f"{settings.temporal_address} (`complaints dev` runs one)?")


def one_line(exc: ValidationError) -> str:
    """A pydantic error as one line naming each field."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}"
                     for e in exc.errors())


def run_async(fn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """Run an async click command, turning Temporal errors into one-line messages."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        from complaints.policies import PolicyError

        try:
            return asyncio.run(fn(*args, **kwargs))
        except ValidationError as exc:
            raise StaffError(f"invalid input: {one_line(exc)}") from None
        except PolicyError as exc:
            raise StaffError(str(exc)) from None
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise StaffError(f"not found: {exc.message}; check the reference with "
                                 "`complaints list`") from None
            if exc.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
                raise _no_answer("Temporal did not answer") from None
            if exc.status == RPCStatusCode.UNAVAILABLE:
                raise StaffError(f"cannot reach Temporal at {Settings().temporal_address} "
                                 f"({_first_line(exc)}): start it with `complaints dev` or "
                                 "set TEMPORAL_ADDRESS") from None
            raise StaffError(f"Temporal refused the request: {_first_line(exc)}") from None
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(cause)
            raise StaffError(f"refused: {message}") from None
        except (TimeoutError, RPCTimeoutOrCancelledError):
            raise _no_answer("the case did not answer") from None
        except (ConnectionError, OSError) as exc:
            raise StaffError(f"cannot reach Temporal: {_first_line(exc)}") from None
        except RuntimeError as exc:
            if "connect" in str(exc).lower():
                settings = Settings()
                raise StaffError(
                    f"cannot reach Temporal at {settings.temporal_address}: start it with "
                    "`complaints dev` or set TEMPORAL_ADDRESS") from None
            raise
        finally:
            settle_sdk_threads()

    return wrapper


async def client_from_settings() -> Client:
    """Connect to Temporal as the worker does."""
    from worker import connect

    settings = Settings()
    try:
        return await asyncio.wait_for(connect(settings), timeout=CONNECT_TIMEOUT_S)
    except TimeoutError:
        why = f"no answer within {CONNECT_TIMEOUT_S:.0f}s"
    except RuntimeError as exc:
        why = _first_line(exc)
    raise StaffError(f"cannot reach Temporal at {settings.temporal_address} ({why}): "
                     "start it with `complaints dev` or set TEMPORAL_ADDRESS")


#: The most JSON a command reads: Temporal refuses a larger payload anyway (its default
#: blob limit is 2 MB), and a mistaken path to a huge file should not fill the memory.
MAX_JSON_BYTES = 2 * 1024 * 1024


def _read_json_bytes(path: str, *, inline: bool) -> bytes:
    """The bytes of a JSON file, or of standard input for ``-``, as a one-line error if not."""
    name = json_source(path)
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_JSON_BYTES + 1)
        else:
            with open(path, "rb") as handle:
                data = handle.read(MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        hint = " (inline JSON must start with '{')" if inline else ""
        raise StaffError(f"no such file: '{path}'{hint}") from None
    except IsADirectoryError:
        raise StaffError(f"'{path}' is a folder: give the path of a JSON file") from None
    except PermissionError:
        raise StaffError(f"cannot read '{path}': permission denied; check the file's "
                         "permissions, or give - and pipe it in") from None
    except OSError as exc:
        raise StaffError(f"cannot read {name}: {exc.strerror or type(exc).__name__}") from None
    if len(data) > MAX_JSON_BYTES:
        raise StaffError(f"{name} holds more than {MAX_JSON_BYTES // (1024 * 1024)} MB: "
                         "give the JSON file of one intake or action")
    return data


def _is_inline(path: str, inline: bool) -> bool:
    return inline and path.lstrip().startswith("{")


def json_source(path: str, *, inline: bool = False) -> str:
    """How an error names where JSON came from (never by its content)."""
    if _is_inline(path, inline):
        return "the inline JSON"
    return "standard input" if path == "-" else f"'{path}'"


def load_json(path: str, *, inline: bool = False) -> Any:
    """Read JSON from a file, standard input for ``-``, or (``inline``) the value itself.

    With ``inline``, a value whose first non-blank character is ``{`` is the JSON object
    itself; anything else is a path (``-``: standard input). Every failure is a one-line
    ``StaffError`` naming the source, never its content (it may hold personal data).
    """
    name = json_source(path, inline=inline)
    if _is_inline(path, inline):
        data = path.encode("utf-8", "surrogateescape")
    else:
        data = _read_json_bytes(path, inline=inline)
    try:
        text = data.decode("utf-8-sig")  # A byte-order mark from a Windows editor is fine.
    except UnicodeDecodeError as exc:
        raise StaffError(f"{name} is not UTF-8 text (at byte {exc.start + 1}): save it as "
                         "UTF-8") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StaffError(f"{name} is not valid JSON: {exc.msg} at line {exc.lineno} column "
                         f"{exc.colno}") from None
    except RecursionError:
        raise StaffError(f"{name} is nested too deeply to be an intake or an action") from None


def json_kind(value: Any) -> str:
    """What a JSON value is, for an error message: "an array", "null", "a string"..."""
    kinds = {list: "an array", str: "a string", bool: "true or false", int: "a number",
             float: "a number", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


# --- lodging ----------------------------------------------------------------------------


async def lodge_intake(client: Client, intake: Intake, task_queue: str) -> WorkflowHandle[Any, Any]:
    """Start the case for an intake that has its reference already, or return its case.

    For callers that hold a reference (tests, tools); staff lodging goes through
    :func:`lodge_complaint`, which also allocates references and checks channel ids. The
    workflow id is the reference; Temporal refuses it whether its case is running or
    finished, and the existing case's own intake decides: the same intake (fingerprint) is
    the same case, returned; a different one raises
    :class:`~complaints.lodging.ReferenceTaken` and is never merged.
    """
    from complaints.lodging import start_case

    handle, _created = await start_case(client, intake, task_queue)
    return handle


async def lodge_complaint(client: Client, intake: Intake, *, reference: str | None = None,
                          settings: Settings | None = None) -> Lodged:
    """Lodge an intake in the deployment's database and Temporal (see complaints.lodging).

    Args:
        client: The Temporal client.
        intake: The validated intake (from :func:`intake_from_options`).
        reference: The reference staff asked for, or None to allocate one.
        settings: The settings (default: from the environment).

    Returns:
        The case and whether it is new.

    Raises:
        LodgingRefused: A bad reference or a collision with another complaint.
        StaffError: The database cannot be used.

    """
    from sqlalchemy.exc import SQLAlchemyError

    from complaints.lodging import lodge

    settings = settings or Settings()
    url = settings.effective_database_url()
    try:
        return await lodge(client, url, intake, settings.temporal_task_queue,
                           reference=reference)
    except (SQLAlchemyError, OSError) as exc:
        raise StaffError(f"cannot allocate a reference in the database at "
                         f"{url.split('@')[-1]} ({_first_line(exc)}): check DATABASE_URL or "
                         "DATA_DIR") from None


def intake_from_options(data: dict[str, Any], options: dict[str, Any]) -> Intake:
    """Merge an intake JSON file with command-line options (options win), and validate it.

    The reference is the one given (``--reference`` or the file's), else
    :data:`PLACEHOLDER_REFERENCE`: the real one is allocated when the case is lodged
    (:func:`lodge_complaint`), so a refused intake takes no number and touches no database.
    """
    merged = dict(data)
    parties: list[dict[str, Any]] = list(merged.get("parties", []))
    if options["resident"]:
        parties.append(Party(role=PartyRole.RESIDENT, name=options["resident"],
                             address=tuple(options["address"]), email=options["email"],
                             phone=options["phone"],
                             preferred_channel=options.get("prefers")).model_dump())
    if options["representative"]:
        parties.append({"role": "representative", "name": options["representative"]})
    parties += [{"role": "group_member", "name": n} for n in options["group_member"]]
    if parties:
        merged["parties"] = parties
    simple = {"channel": "channel", "channel_reference": "channel_reference",
              "received": "received_on", "issue_date": "issue_occurred_on",
              "category": "category", "description": "description", "policy": "policy_name",
              "manager": "manager_id", "reference": "reference", "tenure": "tenure"}
    for option, field in simple.items():
        if options.get(option) is not None:
            value = options[option]
            merged[field] = value.isoformat() if isinstance(value, dt.date) else value
    if options["outcome"]:
        merged["outcomes_sought"] = list(options["outcome"])
    if options["adjustment"]:
        merged["adjustments"] = [Adjustment(description=a).model_dump()
                                 for a in options["adjustment"]]
    merged.setdefault("reference", PLACEHOLDER_REFERENCE)
    return Intake.model_validate(merged)


# --- acting on a case -------------------------------------------------------------------


async def act(reference: str, action: Action) -> ActionResult | CaseView:
    """Send one staff action as a validated update and return what the case answered.

    A case of the ``Complaint`` type answers with a small :class:`ActionResult`; one of
    the first type (``ComplaintWorkflow``) with the whole :class:`CaseView`.

    An update waits for a worker to take it; with none running it would wait for ever, so
    it is given :data:`ANSWER_TIMEOUT` (it may still be applied once a worker starts).
    """
    client = await client_from_settings()
    handle = client.get_workflow_handle(reference)
    try:
        answer = await asyncio.wait_for(
            handle.execute_update(action.trigger, action, rpc_timeout=ANSWER_TIMEOUT),
            ANSWER_TIMEOUT.total_seconds())
        if isinstance(answer, dict) and "case" in answer:
            return CaseView.model_validate(answer)
        return ActionResult.model_validate(answer)
    except (TimeoutError, RPCTimeoutOrCancelledError):
        from complaints.dbcheck import stall_cause

        raise _no_answer(f"{reference} did not take {action.trigger} (it may still be "
                         f"applied when a worker picks it up: check `complaints status "
                         f"{reference}` before sending it again)",
                         await stall_cause(client, reference)) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND and "already completed" in exc.message:
            raise StaffError(f"{reference} has finished in Temporal (retention over, or "
                             f"terminated) and takes no more actions; `complaints status "
                             f"{reference}` shows where it ended") from None
        raise


def build_action(trigger: str, payload: dict[str, Any]) -> Action:
    """Validate a payload as the action model for ``trigger``."""
    model = ACTION_BY_TRIGGER[trigger]
    try:
        action = model.model_validate(normalise_staff_ids(payload))
    except ValidationError as exc:
        raise StaffError(f"invalid {trigger}: {one_line(exc)}") from None
    # The documented limits and invisible characters (models.limits): refused here, before
    # the workflow, with the field named; the field types alone stay as lenient as replay
    # of accepted cases needs.
    problem = first_problem(action)
    if problem is not None:
        raise StaffError(f"invalid {trigger}: {problem}")
    return action


def summarise(view: CaseView | ActionResult) -> str:
    """A short human summary of a case (no personal data)."""
    if isinstance(view, ActionResult):
        return ", ".join([f"{view.reference}: {view.state} (stage {view.stage})"]
                         + ([f"next: {view.next_deadline}"] if view.next_deadline else [])
                         + (["OVERDUE"] if view.overdue else []))
    nxt = min((d for d in view.deadlines if d.status == "pending"), key=lambda d: d.ends_at,
              default=None)
    parts = [f"{view.reference}: {view.state} (stage {view.stage})"]
    if nxt is not None:
        parts.append(f"next: {nxt.label} due {nxt.due.isoformat()}")
    if view.overdue:
        parts.append("OVERDUE")
    return ", ".join(parts)


def model_json(model: BaseModel) -> str:
    """A model as indented JSON."""
    return model.model_dump_json(indent=2)


#: How Temporal words a query answer over its size limits: the server's blob limit
#: (2 MB by default) and gRPC's 4 MB message limit (measured with temporalio 1.35).
_TOO_LARGE = ("size exceeds limit", "message too large", "larger than max")


def _too_large(reference: str, why: str) -> StaffError:
    return StaffError(
        f"{reference} is too large for Temporal to send back in one answer ({why}): read "
        "the case from the complaints database (DATABASE_URL) instead, or ask the operator "
        "to raise the Temporal server's limit.blobSize.error")


async def _query(reference: str) -> CaseView:
    client = await client_from_settings()
    try:
        return await client.get_workflow_handle(reference).query(
            "case_view", result_type=CaseView, rpc_timeout=ANSWER_TIMEOUT)
    except RPCError as exc:
        if exc.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
            from complaints.dbcheck import stall_cause

            raise _no_answer(f"{reference} did not answer",
                             await stall_cause(client, reference)) from None
        if exc.status == RPCStatusCode.RESOURCE_EXHAUSTED and any(
                t in exc.message.lower() for t in _TOO_LARGE):
            raise _too_large(reference, _first_line(exc)) from None
        raise
    except WorkflowQueryFailedError as exc:
        # The worker answered with a failure instead of the case: over a size limit, or
        # the query itself failed (the worker's log has the details).
        why = _first_line(exc)
        if any(t in why.lower() for t in _TOO_LARGE):
            raise _too_large(reference, why) from None
        raise StaffError(f"{reference} could not answer the query ({why}): see the "
                         "worker's log") from None
    except WorkflowQueryRejectedError as exc:
        status = exc.status.name if exc.status is not None else "unknown"
        raise StaffError(f"{reference} refused the query (workflow status {status}); "
                         f"`complaints list` shows its state") from None


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


# --- the click commands -----------------------------------------------------------------

BY = click.option("--by", default=None, callback=remote.by_unless_remote, help=(
    "Your staff id (recorded in the audit trail); with API_URL, the token's holder is."))
#: How every action's ``--json`` is read (:func:`load_json` with ``inline``).
JSON_HELP = ("The action's fields as a JSON object: inline when the value starts with '{', "
             "- for standard input, otherwise the path of a JSON file.")
PAYLOAD = click.option("--json", "json_path", default=None,
                       help=JSON_HELP + " Options given as well win.")


def _payload(json_path: str | None, **fields: Any) -> dict[str, Any]:
    data = load_json(json_path, inline=True) if json_path is not None else {}
    if not isinstance(data, dict):
        raise StaffError(f"{json_source(str(json_path), inline=True)} holds "
                         f"{json_kind(data)}, not a JSON object: write the action's "
                         'fields as {"field": value, ...}')
    data.update({k: v for k, v in fields.items() if v not in (None, (), [])})
    return data


def _split(value: str, parts: int, what: str) -> list[str]:
    pieces = [p.strip() for p in value.split("::")]
    if len(pieces) < parts:
        raise StaffError(f"{what} {value!r} needs {parts} parts separated by '::'")
    return pieces


def _send(reference: str, trigger: str, payload: dict[str, Any], as_json: bool = False) -> None:
    if remote.api_url() is not None:  # through the HTTP API, as the token's holder
        result = remote.act(reference, trigger, payload, whole_case=as_json)
        click.echo(model_json(result) if as_json else summarise(result))
        return
    action = build_action(trigger, payload)
    from complaints.directory import directory_refusal  # the staff directory's check

    refusal = directory_refusal(action)
    if refusal is not None:  # before Temporal is asked; an empty directory refuses nothing
        raise StaffError(f"refused: {refusal}")
    view = run_async(act)(reference, action)
    if as_json and isinstance(view, ActionResult):
        view = run_async(_query)(reference)  # --json prints the whole case, as `status`
    click.echo(model_json(view) if as_json else summarise(view))


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
            client = await client_from_settings()
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
        view = remote.case_view(reference) if remote.api_url() else run_async(_query)(reference)
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

            client = await client_from_settings()
            query = "WorkflowType IN ('Complaint', 'ComplaintWorkflow')"
            if state:
                query += f" AND ComplaintState = '{state.replace(chr(39), '')}'"
            if overdue:
                query += " AND Overdue = true"
            rows = []
            async for wf in client.list_workflows(query, limit=1000,
                                                  rpc_timeout=ANSWER_TIMEOUT):
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
        view = remote.case_view(reference) if remote.api_url() else run_async(_query)(reference)
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
