"""The CLI's remote mode: staff commands through the HTTP API instead of Temporal and the database.

When ``API_URL`` is set (or ``complaints --api URL ...``), the commands that act on a case
(every named action, ``act``, ``status``, ``list`` and ``lodge``) call the HTTP API with
``Authorization: Bearer $API_TOKEN``, so staff need no Temporal or database access: the
API checks the token, the permission matrix and the staff directory, and the workflow
the Code. ``--by`` is ignored there (a note says so on standard error): the API records
every action as the token's holder. Without ``API_URL`` the commands work directly, as
operators use them.

Every failure is one line from the problem's ``detail`` (RFC 9457) and exit status 1.
The token is never printed, and nothing of a request's body is logged.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import click

from complaints.settings import Settings

if TYPE_CHECKING:
    import httpx

    from models.events import ActionResult
    from models.messages import CaseView, Intake

__all__ = ["API_URL_META", "RemoteError", "act", "api_url", "by_unless_remote", "case_view",
           "lodge", "print_cases"]

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


def api_url() -> str | None:
    """The API's base URL when remote mode is on (``--api`` first, then ``API_URL``)."""
    ctx = click.get_current_context(silent=True)
    given = ctx.find_root().meta.get(API_URL_META) if ctx is not None else None
    return given or Settings().api_url or None


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


def _request(method: str, path: str, *, after_timeout: str = "", **kwargs: Any) -> Any:
    """Call the API and return its JSON; any failure as a :class:`RemoteError`.

    Args:
        method: The HTTP method.
        path: The path under ``/api/v1``.
        after_timeout: What to add when the API did not answer in time.
        **kwargs: Passed to :meth:`httpx.Client.request` (``json``, ``params``, ``headers``).

    """
    import httpx

    with _client() as http:
        where = str(http.base_url).removesuffix(_PREFIX + "/").removesuffix(_PREFIX)
        try:
            response = http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise RemoteError(f"the API at {where} did not answer within {TIMEOUT_S:.0f}s"
                              f"{after_timeout}") from None
        except httpx.HTTPError as exc:
            raise RemoteError(f"cannot reach the API at {where} ({type(exc).__name__}): "
                              "check API_URL, or unset it to work directly") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success and body is not None:
        return body
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        raise RemoteError(body["detail"].splitlines()[0] if body["detail"] else
                          f"the API refused it (HTTP {response.status_code})")
    raise RemoteError(f"the API at {where} answered HTTP {response.status_code} "
                      f"{response.reason_phrase} without problem details: check that API_URL "
                      "names the complaints web app (`complaints serve`)")


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
    if body.pop("by", None) is not None:
        click.echo("note: --by is ignored with API_URL: the API records the action as the "
                   "token's holder", err=True)
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
