"""The codec server for the Temporal Web UI: ``POST /codec/decode`` and ``/codec/encode``.

Temporal's history holds residents' data encrypted (:mod:`complaints.codec`); the Web UI
shows ciphertext unless a codec endpoint decrypts it for the person looking. This one
answers only a signed-in member of staff whose roles allow ``decode_payloads`` (the
``operator`` role by default), identified by either:

- the web app's session cookie, which the UI sends when its codec settings have
  "Include cross-origin credentials" on (``complaints dev``: sign in to the web app in
  the same browser first); or
- ``Authorization: Bearer`` with an OIDC access token, which the UI passes when it signs
  people in itself (``TEMPORAL_CODEC_PASS_ACCESS_TOKEN``; docker-compose).

Anyone else gets 401 or 403 and the UI keeps showing ciphertext. Cross-origin requests
are allowed from the Temporal UI's origins only (``CODEC_CORS_ORIGINS``; by default the
dev UI on this machine), with credentials. The body is the codec protocol's: Temporal
``Payloads`` as protobuf JSON. Each request is logged with who, how many payloads and
the namespace, never their content.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.routing import APIRoute
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payloads

from complaints.api.deps import ContextDep, SessionDep, require
from complaints.api.problems import Problem, problem_response
from complaints.codec import EncryptionCodec, KeyProblem, keys_for
from complaints.directory import find_staff
from complaints.identity import AccessDenied, Identity, bearer_identity, identity_of
from complaints.settings import Settings
from domain.permissions import Permission

__all__ = ["allowed_origins", "router"]

class _CodecRoute(APIRoute):
    """A route whose every answer, refusals included, carries the UI's CORS headers.

    Without them a browser hides a 401 or 403 from the UI as a network error.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                response = await handler(request)
            except Problem as exc:
                response = problem_response(exc.status, exc.detail,
                                            instance=request.url.path)
            except AccessDenied as exc:
                response = problem_response(exc.status, exc.detail,
                                            instance=request.url.path)
            return _cors(request, response)

        return answer


router = APIRouter(prefix="/codec", tags=["codec"], route_class=_CodecRoute)
log = structlog.get_logger("codec")

#: The most payloads one request may carry (the UI sends a page of history at a time).
MAX_PAYLOADS = 2000
#: How long a browser may cache a preflight answer (seconds).
PREFLIGHT_MAX_AGE = "600"


def allowed_origins(settings: Settings) -> set[str]:
    """The origins whose pages may call the codec: ``CODEC_CORS_ORIGINS`` or the dev UI's."""
    if settings.codec_cors_origins:
        return {o.strip().rstrip("/") for o in settings.codec_cors_origins.split(",")
                if o.strip()}
    return {f"http://localhost:{settings.ui_port}", f"http://127.0.0.1:{settings.ui_port}"}


def _cors(request: Request, response: Response) -> Response:
    """Allow the Temporal UI's origin (with credentials); say nothing to any other."""
    origin = request.headers.get("origin")
    context = request.app.state.context
    if origin and origin.rstrip("/") in allowed_origins(context.settings):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
    response.headers["Vary"] = "Origin"
    return response


def _codec(request: Request) -> EncryptionCodec:
    """The app's codec, made once from its settings' keys."""
    state = request.app.state
    codec: EncryptionCodec | None = getattr(state, "payload_codec", None)
    if codec is None:
        try:
            codec = EncryptionCodec(keys_for(state.context.settings))
        except KeyProblem as exc:
            raise Problem(503, f"the codec has no usable keys: {exc}") from None
        state.payload_codec = codec
    return codec


async def codec_user(request: Request, context: ContextDep, session: SessionDep) -> Identity:
    """The person asking: a bearer token's, else the web app's signed-in session's."""
    authorization = request.headers.get("authorization", "")
    try:
        if authorization.lower().startswith("bearer "):
            return await bearer_identity(context, session, authorization[7:].strip())
        staff_id = request.session.get("staff_id") if "session" in request.scope else None
        if not staff_id:
            raise AccessDenied(401, "sign in to the web app in this browser and turn on "
                                    "\"Include cross-origin credentials\" in the Temporal "
                                    "UI's codec settings, or pass an access token")
        return identity_of(find_staff(session, staff_id), via="session",
                           shown=f"staff id '{staff_id}'")
    finally:
        session.rollback()


CodecUser = Annotated[Identity, Depends(codec_user)]


async def _payloads(request: Request) -> Payloads:
    body = await request.body()
    payloads = Payloads()
    try:
        json_format.Parse(body or b"{}", payloads)
    except (json_format.ParseError, DecodeError, UnicodeDecodeError):
        raise Problem(422, "the body is not Temporal Payloads as protobuf JSON "
                           "({\"payloads\": [{\"metadata\": {...}, \"data\": ...}]})") from None
    if len(payloads.payloads) > MAX_PAYLOADS:
        raise Problem(422, f"{len(payloads.payloads)} payloads in one request, at most "
                           f"{MAX_PAYLOADS}: send fewer")
    return payloads


def _answer(request: Request, payloads: list[Any]) -> Response:
    body = json_format.MessageToJson(Payloads(payloads=payloads))
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


@router.options("/{operation}", include_in_schema=False)
def preflight(request: Request, operation: str) -> Response:
    """The browser's CORS preflight: no sign-in needed to ask, only to decode."""
    response = Response(status_code=204)
    response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = \
        "Content-Type, Authorization, X-Namespace"
    response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
    return response


@router.post("/decode", summary="Decrypt payloads for the Temporal Web UI (operators)")
async def decode(request: Request, context: ContextDep, who: CodecUser,
                 x_namespace: Annotated[str | None, Header()] = None) -> Response:
    """Decrypt Temporal payloads; payloads that were never encrypted come back as sent."""
    require(context, who, Permission.DECODE_PAYLOADS.value)
    payloads = await _payloads(request)
    try:
        decoded = await _codec(request).decode(payloads.payloads)
    except KeyProblem as exc:
        raise Problem(422, str(exc)) from None
    log.info("payloads_decoded", by=who.staff_id, payloads=len(decoded),
             namespace=(x_namespace or "")[:100])
    return _answer(request, decoded)


@router.post("/encode", summary="Encrypt payloads sent from the Temporal Web UI (operators)")
async def encode(request: Request, context: ContextDep, who: CodecUser,
                 x_namespace: Annotated[str | None, Header()] = None) -> Response:
    """Encrypt payloads with the current key (the UI's signals and queries)."""
    require(context, who, Permission.DECODE_PAYLOADS.value)
    payloads = await _payloads(request)
    encoded = await _codec(request).encode(payloads.payloads)
    log.info("payloads_encoded", by=who.staff_id, payloads=len(encoded),
             namespace=(x_namespace or "")[:100])
    return _answer(request, encoded)
