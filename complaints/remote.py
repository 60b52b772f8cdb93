"""The CLI's remote mode: staff commands through the HTTP API instead of Temporal and the database.

When ``API_URL`` is set (or ``complaints --api URL ...``), the commands that act on a case
(every named action, ``act``, ``status``, ``list``, ``lodge``, ``letters``, ``attach``,
``documents``, ``document``, ``triage`` and ``triage-show``) call the HTTP API with
``Authorization: Bearer $API_TOKEN``, so staff need no Temporal or database access: the
API checks the token, the permission matrix and the staff directory, and the workflow
the Code. ``--by`` is ignored there (a note says so on standard error): the API records
every action, document and triage as the token's holder. Each command prints what it
prints in direct mode (the formatting is shared; this module returns the same records).
A document downloaded is checked against the SHA-256 the API sends (``Repr-Digest``)
before anything is written.

``report``, ``report submission`` and ``import`` go through the API too
(:mod:`complaints.remote_reports`).

Without ``API_URL`` the commands work directly, as operators use them. Every command
that needs Temporal or the database and has no remote mode is the operator's and refuses
remote mode with one line (:func:`operator_only`), among them the unacceptable-behaviour
register (``restriction``: it spans every case and names residents, so the API does not
serve it) and ``webhooks`` (the integrations' delivery log and pushing deliveries are the
operator's, with the worker). Which commands those are is listed once, in
:mod:`complaints.remote_scope`, and checked by the root group before a command runs.

Every failure is one line from the problem's ``detail`` (RFC 9457) and exit status 1.
The token is never printed, and nothing of a request's body is logged.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

import click

from complaints.settings import Settings

if TYPE_CHECKING:
    import httpx

    from complaints.casefiles import Attached
    from models.events import ActionResult
    from models.messages import CaseView, Intake
    from models.tables import DocumentRow, TriageRow

__all__ = ["API_URL_META", "Download", "RemoteError", "act", "api_url", "attach",
           "by_unless_remote", "case_view", "documents", "download_document", "ignore_by",
           "letter", "lodge", "operator_only", "print_cases", "record_triage",
           "triage_history"]

#: Where ``complaints --api URL`` keeps the URL (the root context's ``meta``).
API_URL_META = "complaints.api_url"
#: How long to wait for the API: longer than its own wait for a case to answer (20 s).
TIMEOUT_S = 30.0
#: The most cases ``list`` fetches, as the direct mode's limit.
MAX_LISTED = 1000
_PAGE = 100
_PREFIX = "/api/v1"


class RemoteError(click.ClickException):
    """A one-line error from remote mode: what the API said, or why it could not be asked."""

    def __init__(self, message: str, problem: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        #: The API's problem details when it sent them (a refused import's ``errors``).
        self.problem = problem


def api_url() -> str | None:
    """The API's base URL when remote mode is on (``--api`` first, then ``API_URL``)."""
    ctx = click.get_current_context(silent=True)
    given = ctx.find_root().meta.get(API_URL_META) if ctx is not None else None
    return given or Settings().api_url or None


def operator_only(command: str, why: str) -> None:
    """Refuse an operator's command in remote mode, with one line saying why.

    Args:
        command: The command as typed (``restriction add``).
        why: Why it is the operator's (what the API does not serve).

    Raises:
        RemoteError: ``API_URL`` (or ``--api``) is set.

    """
    if api_url() is not None:
        raise RemoteError(f"`complaints {command}` needs direct access, not the API: {why}; "
                          "unset API_URL (and --api) and run it where the database is")


def ignore_by(by: str | None, what: str = "the action") -> None:
    """Say on standard error that ``--by`` is not used: the API records the token's holder."""
    if by is not None:
        click.echo(f"note: --by is ignored with API_URL: the API records {what} as the "
                   "token's holder", err=True)


def by_unless_remote(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A click callback: ``--by`` is required in direct mode only (the API knows who acts)."""
    if value is None and api_url() is None:
        raise click.MissingParameter(ctx=ctx, param=param)
    return value


def _base(url: str) -> str:
    """``url`` without a trailing slash or ``/api/v1``, checked to be HTTP(S)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RemoteError(f"API_URL {url!r} is not an http(s) URL: set it to the web app's "
                          "address, such as https://complaints.landlord.org")
    base = url.strip().rstrip("/")
    return base.removesuffix(_PREFIX).rstrip("/")


def _client() -> httpx.Client:
    """An HTTP client for the API with the bearer token; refused without one."""
    import httpx

    from complaints.serving import is_loopback

    url = api_url()
    assert url is not None
    base = _base(url)
    token = Settings().api_token
    if not token:
        raise RemoteError(f"API_URL is set ({base}) but API_TOKEN is not: ask an "
                          "administrator for a token (complaints staff token create) and "
                          "set API_TOKEN, or unset API_URL to work directly")
    parts = urlsplit(base)
    if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
        click.echo(f"warning: API_URL {base} is http://: the token crosses the network in "
                   "clear; use the https:// address", err=True)
    return httpx.Client(base_url=base + _PREFIX, timeout=TIMEOUT_S, headers={
        "Authorization": f"Bearer {token}", "User-Agent": "complaints-cli",
        "Accept": "application/json, application/problem+json"})


def _send(method: str, path: str, *, after_timeout: str = "", timeout_s: float | None = None,
          **kwargs: Any) -> httpx.Response:
    """Call the API; its successful response, or any failure as a :class:`RemoteError`.

    Args:
        method: The HTTP method.
        path: The path under ``/api/v1``.
        after_timeout: What to add when the API did not answer in time.
        timeout_s: How long to wait for this answer (default :data:`TIMEOUT_S`).
        **kwargs: Passed to :meth:`httpx.Client.request` (``json``, ``params``, ``files``...).

    """
    import httpx

    wait = TIMEOUT_S if timeout_s is None else timeout_s
    with _client() as http:
        where = str(http.base_url).removesuffix(_PREFIX + "/").removesuffix(_PREFIX)
        try:
            response = http.request(method, path, timeout=wait, **kwargs)
        except httpx.TimeoutException:
            raise RemoteError(f"the API at {where} did not answer within {wait:.0f}s"
                              f"{after_timeout}") from None
        except httpx.HTTPError as exc:
            raise RemoteError(f"cannot reach the API at {where} ({type(exc).__name__}): "
                              "check API_URL, or unset it to work directly") from None
    if response.is_success:
        return response
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        raise RemoteError(body["detail"].splitlines()[0] if body["detail"] else
                          f"the API refused it (HTTP {response.status_code})", problem=body)
    raise RemoteError(f"the API at {where} answered HTTP {response.status_code} "
                      f"{response.reason_phrase} without problem details: check that API_URL "
                      "names the complaints web app (`complaints serve`)")


def _request(method: str, path: str, *, after_timeout: str = "", **kwargs: Any) -> Any:
    """Call the API and return its JSON; any failure as a :class:`RemoteError`.

    Args:
        method: The HTTP method.
        path: The path under ``/api/v1``.
        after_timeout: What to add when the API did not answer in time.
        **kwargs: Passed to :meth:`httpx.Client.request` (``json``, ``params``, ``headers``).

    """
    response = _send(method, path, after_timeout=after_timeout, **kwargs)
    try:
        return response.json()
    except ValueError:
        raise RemoteError(f"the API answered {path} with something other than JSON: check "
                          "that API_URL names the complaints web app") from None


def _case_path(reference: str) -> str:
    return "/complaints/" + quote(reference, safe="")


def act(reference: str, trigger: str, payload: dict[str, Any], *,
        whole_case: bool = False) -> ActionResult | CaseView:
    """Take one staff action through the API, as the token's holder.

    Args:
        reference: The case.
        trigger: The action's trigger name (``acknowledge``, ...).
        payload: The action's fields; ``by`` is dropped with a note (the API sets it).
        whole_case: Return the case's whole view afterwards (``--json``), not the result.

    """
    from models.events import ActionResult

    body = dict(payload)
    ignore_by(body.pop("by", None))
    answer = _request("POST", f"{_case_path(reference)}/{quote(trigger, safe='')}",
                      json=body, after_timeout=(
                          f" (the action may still be applied: check `complaints status "
                          f"{reference}` before sending it again)"))
    if whole_case:
        return case_view(reference)
    return ActionResult.model_validate(answer)


def case_view(reference: str) -> CaseView:
    """A case's live view, as ``complaints status`` shows it (the viewing is recorded)."""
    from models.messages import CaseView

    answer = _request("GET", _case_path(reference))
    if not isinstance(answer, dict) or answer.get("live") is None:
        why = answer.get("live_error") if isinstance(answer, dict) else None
        raise RemoteError(f"{reference}: {why or 'the case did not answer'}")
    return CaseView.model_validate(answer["live"])


def print_cases(state: str | None, overdue: bool, as_json: bool) -> None:
    """``complaints list`` through the API: every case (closed ones too), most urgent first."""
    params: dict[str, Any] = {"include_closed": "true", "per_page": _PAGE}
    if state:
        params["state"] = state
    if overdue:
        params["overdue"] = "true"
    rows: list[dict[str, Any]] = []
    page = 1
    while len(rows) < MAX_LISTED:
        answer = _request("GET", "/complaints", params={**params, "page": page})
        rows += answer["items"]
        if not answer["items"] or len(rows) >= answer["total"]:
            break
        page += 1
    rows = rows[:MAX_LISTED]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        click.echo(f"{r['reference']}  {r['state']:<22} stage {r['stage']}  "
                   f"next {r['next_due'] or '-'}{'  OVERDUE' if r['overdue'] else ''}  "
                   f"handler {r['handler_id'] or '-'}")
    click.echo(f"{len(rows)} case{'s' if len(rows) != 1 else ''}")


def lodge(intake: Intake, *, reference_given: bool) -> str:
    """Lodge an intake through the API; its reference.

    The ``Idempotency-Key`` is the digest of the intake, so running the same command again
    (after a time-out, say) returns the case already lodged instead of a second one.
    """
    if reference_given:
        raise RemoteError("--reference cannot be chosen through the API (it allocates one): "
                          "leave it out, or unset API_URL to lodge directly")
    body = intake.model_dump(mode="json", exclude={"reference"})
    key = "cli-" + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:40]
    answer = _request("POST", "/complaints", json=body, headers={"Idempotency-Key": key},
                      after_timeout=" (run the same command again: it will not lodge it twice)")
    return str(answer["reference"])


# --- letters, documents and triage --------------------------------------------------------


def letter(reference: str, letter_id: str, fmt: str = "text") -> bytes:
    """A letter as sent (``text``, ``html`` or ``pdf``: printed and kept on first ask).

    The viewing is recorded by the API.
    """
    return _send("GET", f"{_case_path(reference)}/letters/{quote(letter_id, safe='')}",
                 params={"format": fmt}).content


def documents(reference: str) -> list[DocumentRow]:
    """The documents on a case file, oldest first, as the direct mode's rows."""
    from models.tables import DocumentRow

    answer = _request("GET", f"{_case_path(reference)}/documents")
    return [DocumentRow.model_validate(item) for item in answer]


@dataclass(frozen=True)
class Download:
    """A document downloaded and checked against its recorded SHA-256."""

    document_id: str
    file_name: str
    data: bytes


_FILE_NAME = re.compile(r"filename\*=UTF-8''([^;\s]+)", re.IGNORECASE)


def _recorded_sha256(header: str | None) -> str | None:
    """The SHA-256 (hex) in an RFC 9530 ``Repr-Digest`` header, or None."""
    for member in (header or "").split(","):
        name, _, value = member.strip().partition("=")
        if name.strip().lower() == "sha-256" and len(value) > 2 and value[0] == value[-1] == ":":
            try:
                raw = base64.b64decode(value[1:-1], validate=True)
            except binascii.Error:
                return None
            return raw.hex() if len(raw) == 32 else None
    return None


def download_document(reference: str, document_id: str) -> Download:
    """A document's bytes, checked against the SHA-256 the API recorded for it.

    Raises:
        RemoteError: Refused by the API, or the bytes received do not match (nothing is
            written then).

    """
    from complaints.casefiles import document_id_for

    response = _send("GET", f"{_case_path(reference)}/documents/{quote(document_id, safe='')}")
    recorded = _recorded_sha256(response.headers.get("Repr-Digest"))
    if recorded is None:
        raise RemoteError(f"the API sent document {document_id} without its recorded SHA-256 "
                          "(Repr-Digest), so it cannot be checked: check that API_URL names "
                          "the complaints web app; nothing was written")
    if hashlib.sha256(response.content).hexdigest() != recorded:
        raise RemoteError(f"the copy of document {document_id} received does not match its "
                          "recorded SHA-256 (damaged on the way): run the command again; "
                          "nothing was written")
    named = _FILE_NAME.search(response.headers.get("Content-Disposition", ""))
    file_name = unquote(named.group(1)) if named else document_id_for(recorded)
    return Download(document_id_for(recorded), file_name, response.content)


def attach(reference: str, path: Path, *, kind: str, direction: str,
           received_on: dt.date | None, note: str | None) -> Attached:
    """Attach a file to a case file through the API, as the token's holder.

    The file is read here first, and refused as the direct mode refuses it (missing, a
    folder, empty, over 25 MiB); the API checks its type and content.
    """
    from complaints.casefiles import Attached, CaseFileError, read_attachment
    from models.tables import DocumentRow

    try:
        data = read_attachment(path)
    except CaseFileError as exc:
        raise RemoteError(str(exc)) from None
    form = {"kind": kind, "direction": direction}
    if received_on is not None:
        form["received_on"] = received_on.isoformat()
    if note is not None:
        form["note"] = note
    answer = _request("POST", f"{_case_path(reference)}/documents", data=form,
                      files={"file": (path.name, data, "application/octet-stream")},
                      after_timeout=(f" (it may be attached: `complaints documents "
                                     f"{reference}` shows; attaching it again keeps it once)"))
    new, restored = bool(answer.pop("new")), bool(answer.pop("restored"))
    return Attached(DocumentRow.model_validate(answer), created=new, restored=restored)


def record_triage(reference: str, *, complexity: str, vulnerability: str, risk: str,
                  note: str | None) -> TriageRow:
    """Record a triage through the API, as the token's holder."""
    from models.tables import TriageRow

    body = {"complexity": complexity, "vulnerability": vulnerability, "risk": risk,
            "note": note}
    return TriageRow.model_validate(_request("POST", f"{_case_path(reference)}/triage",
                                             json=body))


def triage_history(reference: str) -> list[TriageRow]:
    """Every triage of a case, the current (latest) first."""
    from models.tables import TriageRow

    return [TriageRow.model_validate(item)
            for item in _request("GET", f"{_case_path(reference)}/triage")]
