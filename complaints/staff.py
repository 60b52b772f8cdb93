"""Staff commands: lodge complaints and move them on through the workflow's updates.

Every command talks to Temporal, or, with ``API_URL`` set, the ones that act on a case
go through the HTTP API instead (:mod:`complaints.remote`); a refused action prints the
workflow's reason on one line and exits 1. Bad input (a malformed date, a missing field,
an unknown reference) is a one-line error with exit 2 (usage) or 1, never a traceback. No
command waits for ever: a case whose worker does not answer within :data:`ANSWER_TIMEOUT`
is reported as such.

The click commands themselves are in :mod:`complaints.staff_cli`; this module holds what
they and the other command modules share: the one-line errors, the Temporal client,
acting on and querying a case, reading JSON input, lodging, and the action options.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
import time
from collections.abc import Callable, Coroutine
from functools import wraps
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
from complaints.updates import execute_update
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
            execute_update(handle, action.trigger, action, rpc_timeout=ANSWER_TIMEOUT),
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


# --- what the commands share: options, payloads, sending --------------------------------

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
