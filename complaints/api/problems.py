"""RFC 9457 problem details for every error the API returns.

Each problem is ``application/problem+json`` with ``type``, ``title``, ``status`` and a
one-line ``detail`` saying what went wrong and how to fix it. A malformed body (422)
also lists ``errors``, each with a JSON Pointer to the field (``#/findings/0/point``)
and what is wrong with it, never the value sent (it may hold personal data).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from complaints.identity import AccessDenied

__all__ = ["PROBLEM_TYPES", "Problem", "install", "pointer", "problem_response"]

MEDIA_TYPE = "application/problem+json"

#: The problem types this API uses: a URI each (relative to the API, documented here).
PROBLEM_TYPES: dict[int | str, tuple[str, str]] = {
    400: ("/problems/bad-request", "The request is not one the API can take"),
    401: ("/problems/unauthenticated", "Sign in first"),
    403: ("/problems/forbidden", "Not allowed"),
    404: ("/problems/not-found", "Not found"),
    405: ("/problems/method-not-allowed", "Method not allowed"),
    409: ("/problems/refused", "Refused by the case"),
    413: ("/problems/too-large", "Too large"),
    415: ("/problems/unsupported-media-type", "Unsupported media type"),
    422: ("/problems/invalid", "The request body or query is not valid"),
    428: ("/problems/precondition-required", "A header is required"),
    503: ("/problems/unavailable", "A service the API needs is not answering"),
    504: ("/problems/no-answer", "The case did not answer in time"),
}


class Problem(Exception):
    """An error to return as problem details.

    Args:
        status: The HTTP status.
        detail: One line: what went wrong and how to fix it.
        type_key: Which :data:`PROBLEM_TYPES` entry (default: the status).
        extra: Extension members (``errors``, ``reference``, ...).
        headers: Response headers (``WWW-Authenticate``).
    """

    def __init__(self, status: int, detail: str, *, type_key: int | str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.type_key = type_key if type_key is not None else status
        self.extra = extra
        self.headers = headers


def problem_response(status: int, detail: str, *, instance: str | None = None,
                     type_key: int | str | None = None, headers: dict[str, str] | None = None,
                     **extra: Any) -> JSONResponse:
    """A problem details response."""
    type_uri, title = PROBLEM_TYPES.get(type_key if type_key is not None else status,
                                        ("about:blank", "Error"))
    body: dict[str, Any] = {"type": type_uri, "title": title, "status": status,
                            "detail": detail}
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def pointer(loc: Sequence[int | str]) -> str:
    """A JSON Pointer (RFC 6901) for a pydantic error location, without its source."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    escaped = (p.replace("~", "~0").replace("/", "~1") for p in parts)
    return "#/" + "/".join(escaped)


def field_errors(errors: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    """Pydantic errors as ``{"pointer", "detail"}`` (never the input value)."""
    out = []
    for error in errors:
        loc = [p for p in error.get("loc", ()) if not (isinstance(p, str) and "[" in p)]
        out.append({"pointer": pointer(loc), "detail": str(error.get("msg", "invalid"))})
    return out


def invalid(errors: list[dict[str, str]], what: str = "body") -> Problem:
    """A 422 problem naming the fields at fault."""
    first = errors[0] if errors else {"pointer": "#/", "detail": "invalid"}
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return Problem(422, f"the {what} is not valid: {first['pointer']}: {first['detail']}"
                        f"{more}", errors=errors)


def from_validation(exc: ValidationError, what: str = "body") -> Problem:
    """A 422 problem from a pydantic ValidationError raised by our own validation."""
    errors: list[Any] = list(exc.errors(include_input=False))
    return invalid(field_errors(errors), what)


def install(app: FastAPI) -> None:
    """Make every error of ``app`` a problem details response."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.detail, instance=request.url.path,
                                type_key=exc.type_key, headers=exc.headers, **exc.extra)

    @app.exception_handler(AccessDenied)
    async def _denied(request: Request, exc: AccessDenied) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} \
            if exc.status == 401 else None
        return problem_response(exc.status, exc.detail, instance=request.url.path,
                                headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = field_errors(exc.errors())
        where = {str(e.get("loc", ("body",))[0]) for e in exc.errors()}
        problem = invalid(errors, "query" if where == {"query"} else "request")
        return problem_response(422, problem.detail, instance=request.url.path,
                                **problem.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such endpoint {request.url.path}: see /docs for the API"
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}: see /docs"
        return problem_response(exc.status_code, detail, instance=request.url.path,
                                headers=getattr(exc, "headers", None))
