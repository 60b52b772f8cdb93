"""The codec server at /codec: operators see residents' data in the Temporal UI, others don't."""

from __future__ import annotations

import json

from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from complaints.codec import ENCRYPTED
from tests.api_support import Api
from tests.test_web import api, browser_for, sign_in

__all__ = ["api"]  # the fixture, shared with test_web

UI = "http://localhost:8233"


async def _start_payloads(api: Api, reference: str) -> str:
    """The case's workflow input as Temporal stores it, as the UI sends it to the codec."""
    history = await api.stack.env.client.get_workflow_handle(reference).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    return json_format.MessageToJson(Payloads(payloads=list(started.input.payloads)))


async def test_an_operator_decodes_through_the_session_and_a_token(api: Api) -> None:
    """Signed in (cookie) or with a bearer token, an operator gets the plaintext back."""
    reference = await api.lodge()
    body = await _start_payloads(api, reference)
    stored = Payloads()
    json_format.Parse(body, stored)
    assert stored.payloads[0].metadata["encoding"] == ENCRYPTED
    assert b"Bloggs" not in stored.payloads[0].data
    async with browser_for(api) as client:
        await sign_in(client, "ops-1")
        decoded = await client.post("/codec/decode", content=body, headers={
            "Origin": UI, "Content-Type": "application/json", "X-Namespace": "default"})
    assert decoded.status_code == 200, decoded.text
    assert decoded.headers["access-control-allow-origin"] == UI
    assert decoded.headers["access-control-allow-credentials"] == "true"
    plain = Payloads()
    json_format.Parse(decoded.text, plain)
    assert b"Jo Bloggs" in plain.payloads[0].data
    with_token = await api.http.post("/codec/decode", content=body,
                                     headers=api.auth("ops-1"))
    assert with_token.status_code == 200 and "Jo Bloggs" not in with_token.text  # base64
    assert json.loads(with_token.text) == json.loads(decoded.text)


async def test_others_get_a_refusal_the_ui_can_read(api: Api) -> None:
    """No sign-in is 401, a handler or admin is 403; both with the UI's CORS headers."""
    reference = await api.lodge()
    body = await _start_payloads(api, reference)
    anonymous = await api.http.post("/codec/decode", content=body, headers={"Origin": UI})
    assert anonymous.status_code == 401
    assert anonymous.headers["access-control-allow-origin"] == UI
    assert "Include cross-origin credentials" in anonymous.json()["detail"]
    for who in ("hdl-1", "adm-1", "view-1"):
        refused = await api.http.post("/codec/decode", content=body,
                                      headers={**api.auth(who), "Origin": UI})
        assert refused.status_code == 403, who
        assert "operator" in refused.json()["detail"]
        assert "Bloggs" not in refused.text
    async with browser_for(api) as client:
        await sign_in(client, "hdl-1")
        handler = await client.post("/codec/decode", content=body)
    assert handler.status_code == 403


async def test_cors_answers_the_ui_only(api: Api) -> None:
    """The preflight allows the UI's origin with credentials; another origin gets nothing."""
    asked = {"Origin": UI, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "content-type,x-namespace"}
    preflight = await api.http.options("/codec/decode", headers=asked)
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == UI
    assert "X-Namespace" in preflight.headers["access-control-allow-headers"]
    foreign = await api.http.options("/codec/decode",
                                     headers={**asked, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in foreign.headers


async def test_encode_round_trips_and_bad_bodies_are_refused(api: Api) -> None:
    """What /encode encrypts, /decode opens; a body that is not Payloads is 422."""
    plain = json.dumps({"payloads": [{"metadata": {"encoding": "anNvbi9wbGFpbg=="},
                                      "data": "eyJhIjogMX0="}]})
    encoded = await api.http.post("/codec/encode", content=plain, headers=api.auth("ops-1"))
    assert encoded.status_code == 200
    sealed = encoded.json()["payloads"][0]
    assert sealed["data"] != "eyJhIjogMX0="
    decoded = await api.http.post("/codec/decode", content=encoded.text,
                                  headers=api.auth("ops-1"))
    assert decoded.json() == json.loads(plain)
    bad = await api.http.post("/codec/decode", content=b"not json", headers=api.auth("ops-1"))
    assert bad.status_code == 422 and "protobuf JSON" in bad.json()["detail"]
