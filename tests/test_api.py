"""The HTTP API on a real Temporal dev server and worker, called in-process."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from sqlmodel import select

from complaints.casefiles import document_path
from complaints.identity import revoke_token
from models.access import CaseViewRow
from models.tables import AuditRow, ComplaintRow, DocumentRow, TriageRow
from tests.api_support import Api, acknowledge_body, running_api
from tests.conftest import Stack

PROBLEM = "application/problem+json"


@pytest_asyncio.fixture
async def api(stack: Stack) -> AsyncIterator[Api]:
    """The API on this test's stack, staff seeded, a worker running."""
    async with running_api(stack) as running:
        yield running


async def test_openapi_lists_one_endpoint_per_action(api: Api) -> None:
    """/openapi.json documents each staff action with a body that has no `by`."""
    spec = (await api.http.get("/openapi.json")).json()
    assert "/api/v1/complaints/{reference}/acknowledge" in spec["paths"]
    assert "/api/v1/complaints/{reference}/refuse_escalation" in spec["paths"]
    body = spec["components"]["schemas"]["AcknowledgeRequest"]
    assert "by" not in body["properties"] and "handler_id" in body["required"]


async def test_no_token_is_a_401_problem(api: Api) -> None:
    """A request without a bearer token gets RFC 9457 problem details and a challenge."""
    response = await api.http.get("/api/v1/complaints")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.headers["www-authenticate"].startswith("Bearer")
    problem = response.json()
    assert problem["status"] == 401 and "bearer token" in problem["detail"]
    assert problem["instance"] == "/api/v1/complaints"


async def test_lodging_is_idempotent_on_its_key(api: Api) -> None:
    """The same key and body give the same case; the same key with another body is refused."""
    reference = await api.lodge("k-1")
    again = await api.http.post("/api/v1/complaints", json=api.body(),
                                headers={**api.auth("hdl-1"), "Idempotency-Key": "k-1"})
    assert again.status_code == 200 and again.json() == {"reference": reference,
                                                         "created": False}
    other = await api.http.post("/api/v1/complaints",
                                json=api.body(description="A different complaint"),
                                headers={**api.auth("hdl-1"), "Idempotency-Key": "k-1"})
    assert other.status_code == 422 and "different complaint" in other.json()["detail"]
    missing = await api.http.post("/api/v1/complaints", json=api.body(),
                                  headers=api.auth("hdl-1"))
    assert missing.status_code == 428 and "Idempotency-Key" in missing.json()["detail"]
    with api.context.session() as session:
        assert len(session.exec(select(ComplaintRow)).all()) == 1


async def test_an_invalid_intake_names_its_fields(api: Api) -> None:
    """A malformed lodging body is a 422 whose errors point at each field, values unquoted."""
    body = api.body()
    body["parties"][0]["name"] = ""
    body["received_on"] = "not a date"
    response = await api.http.post("/api/v1/complaints", json=body,
                                   headers={**api.auth("hdl-1"), "Idempotency-Key": "k-2"})
    assert response.status_code == 422
    pointers = {e["pointer"] for e in response.json()["errors"]}
    assert {"#/received_on", "#/parties/0/name"} <= pointers
    assert "not a date" not in response.text


async def test_an_action_is_attributed_to_the_token_not_the_body(api: Api) -> None:
    """`by` comes from the identity; a body naming `by` is refused as an unknown field."""
    reference = await api.lodge()
    spoofed = await api.act(reference, "acknowledge", {**acknowledge_body(), "by": "lead-1"},
                            "hdl-1")
    assert spoofed.status_code == 422
    assert any(e["pointer"] == "#/by" for e in spoofed.json()["errors"])
    done = await api.act(reference, "acknowledge", acknowledge_body(), "hdl-1")
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "stage1_investigating"
    with api.context.session() as session:
        audit = session.exec(select(AuditRow).where(AuditRow.reference == reference,
                                                    AuditRow.action == "acknowledge")).one()
    assert audit.by == "hdl-1"


async def test_roles_and_scope_are_refused_with_a_reason(api: Api) -> None:
    """Viewer, another team's handler and a handler declining each get 403 saying who may."""
    reference = await api.lodge()
    assert (await api.act(reference, "acknowledge", acknowledge_body(), "hdl-1")).status_code \
        == 200
    extend = {"working_days": 5, "reason": "Awaiting a surveyor's report"}
    viewer = await api.act(reference, "extend", extend, "view-1")
    assert viewer.status_code == 403 and "that is for: handler" in viewer.json()["detail"]
    other_team = await api.act(reference, "extend", extend, "hdl-2")
    assert other_team.status_code == 403
    assert "handled by hdl-1 of team North" in other_team.json()["detail"]
    decline = {"grounds": ["legal_proceedings"], "explanation": "Court case started"}
    handler = await api.act(reference, "decline", decline, "hdl-1")
    assert handler.status_code == 403 and "manager, lead" in handler.json()["detail"]
    same_team = await api.act(reference, "extend", extend, "hdl-3")
    assert same_team.status_code == 200, same_team.text


async def test_a_refusal_by_the_case_is_a_409_with_its_reason(api: Api) -> None:
    """An action the state does not allow comes back 409 with the workflow's reason."""
    reference = await api.lodge()
    response = await api.act(reference, "respond", {
        "decision": "upheld", "findings": [{"point": "p", "finding": "f", "reason": "r"}]},
        "mgr-1")
    assert response.status_code == 409
    assert response.json()["detail"].startswith("refused: ")
    unknown = await api.act("CMP-2026-999999", "acknowledge", acknowledge_body(), "hdl-1")
    assert unknown.status_code == 404


async def test_the_directory_refuses_an_unknown_handler(api: Api) -> None:
    """Naming a handler who is not in the staff directory is refused before the workflow."""
    reference = await api.lodge()
    response = await api.act(reference, "acknowledge", acknowledge_body("nobody-9"), "hdl-1")
    assert response.status_code == 409 and "not in the staff directory" in \
        response.json()["detail"]


async def test_reading_a_case_is_recorded_and_offers_allowed_actions(api: Api) -> None:
    """GET a case returns its records and live view, records the viewing, lists actions."""
    reference = await api.lodge()
    response = await api.http.get(f"/api/v1/complaints/{reference}", headers=api.auth("view-1"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["live"]["reference"] == reference and body["live_error"] is None
    assert body["records"]["parties"][0]["name"] == "Jo Bloggs"
    options = {o["trigger"]: o for o in body["actions"]}
    assert options["acknowledge"]["allowed"] is False
    assert "viewer" in options["acknowledge"]["reason"]
    with api.context.session() as session:
        views = session.exec(select(CaseViewRow).where(
            CaseViewRow.reference == reference)).all()
    assert [(v.staff_id, v.what, v.via) for v in views] == [("view-1", "case", "api")]


async def test_list_filters_and_pages_without_personal_data(api: Api) -> None:
    """The list filters by state and handler, pages, and carries no resident names."""
    first = await api.lodge("k-a")
    second = await api.lodge("k-b", description="Another complaint about damp",
                             channel_reference=f"call-{api.salt}-2")
    await api.act(first, "acknowledge", acknowledge_body(), "hdl-1")
    page = (await api.http.get("/api/v1/complaints", params={"handler": "hdl-1"},
                               headers=api.auth("view-1"))).json()
    assert [c["reference"] for c in page["items"]] == [first]
    assert page["items"][0]["handler_team"] == "North"
    unassigned = (await api.http.get("/api/v1/complaints", params={"unassigned": "true"},
                                     headers=api.auth("hdl-2"))).json()
    assert [c["reference"] for c in unassigned["items"]] == [second]
    paged = (await api.http.get("/api/v1/complaints", params={"per_page": 1},
                                headers=api.auth("mgr-1"))).json()
    assert paged["total"] == 2 and len(paged["items"]) == 1
    assert "Jo Bloggs" not in str(page)
    bad = await api.http.get("/api/v1/complaints", params={"per_page": 1000},
                             headers=api.auth("mgr-1"))
    assert bad.status_code == 422 and bad.json()["errors"][0]["pointer"] == "#/per_page"


async def test_a_revoked_token_and_an_inactive_holder_get_no_access(api: Api) -> None:
    """A revoked service token is a 401; the token of someone made inactive is a 403."""
    from complaints.directory import deactivate_staff

    with api.context.session() as session:
        token_id = api.tokens["int-1"].removeprefix("cmpt_").split(".")[0]
        revoke_token(session, token_id)
        deactivate_staff(session, "view-1", reason="Left the board")
    revoked = await api.http.get("/api/v1/complaints", headers=api.auth("int-1"))
    assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]
    inactive = await api.http.get("/api/v1/complaints", headers=api.auth("view-1"))
    assert inactive.status_code == 403 and "inactive" in inactive.json()["detail"]
    forged = await api.http.get("/api/v1/complaints", headers={
        "Authorization": f"Bearer {api.tokens['mgr-1'][:-4]}AAAA"})
    assert forged.status_code == 401


async def test_letters_download_as_text_and_pdf(api: Api) -> None:
    """The acknowledgement letter downloads as text and as a PDF, each viewing recorded."""
    reference = await api.lodge()
    await api.act(reference, "acknowledge", acknowledge_body(), "hdl-1")
    case = (await api.http.get(f"/api/v1/complaints/{reference}",
                               headers=api.auth("hdl-1"))).json()
    letter = case["records"]["letters"][0]["letter_id"]
    text = await api.http.get(f"/api/v1/complaints/{reference}/letters/{letter}",
                              headers=api.auth("hdl-1"))
    assert text.status_code == 200 and reference in text.text
    pdf = await api.http.get(f"/api/v1/complaints/{reference}/letters/{letter}",
                             params={"format": "pdf"}, headers=api.auth("hdl-1"))
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    with api.context.session() as session:
        whats = session.exec(select(CaseViewRow.what).where(
            CaseViewRow.reference == reference)).all()
    assert whats.count(f"letter:{letter}") == 2


async def test_documents_upload_and_refuse_unknown_types(api: Api) -> None:
    """A text document is attached once; an executable is refused with a 409 problem."""
    reference = await api.lodge()
    files = {"file": ("email.txt", b"The resident wrote again about the leak.", "text/plain")}
    form = {"kind": "email", "direction": "inbound"}
    url = f"/api/v1/complaints/{reference}/documents"
    first = await api.http.post(url, files=files, data=form, headers=api.auth("hdl-1"))
    assert first.status_code == 201, first.text
    assert first.json()["new"] is True
    again = await api.http.post(url, files=files, data=form, headers=api.auth("hdl-1"))
    assert again.json()["new"] is False
    bad = await api.http.post(url, files={"file": ("x.exe", b"MZ\x90\x00binary", "app/x")},
                              data=form, headers=api.auth("hdl-1"))
    assert bad.status_code == 409 and bad.headers["content-type"].startswith(PROBLEM)


async def test_health_and_readiness(api: Api) -> None:
    """/health answers; /ready checks the database and Temporal and says both are ok."""
    assert (await api.http.get("/api/v1/health")).json() == {"status": "ok"}
    ready = await api.http.get("/api/v1/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "temporal": "ok"}


async def test_the_annual_report_and_the_view_log(api: Api) -> None:
    """The report comes as JSON for a viewer; the case's view log lists who read it."""
    reference = await api.lodge()
    await api.http.get(f"/api/v1/complaints/{reference}", headers=api.auth("mgr-1"))
    today = api.context.today()
    first = today.year if today.month >= 4 else today.year - 1
    year = f"{first}/{str(first + 1)[2:]}"
    report = await api.http.get("/api/v1/reports/annual", params={"year": year},
                                headers=api.auth("view-1"))
    assert report.status_code == 200, report.text
    assert report.json()["complaints_logged"] >= 1
    denied = await api.http.get("/api/v1/reports/annual", params={"year": year},
                                headers=api.auth("int-1"))
    assert denied.status_code == 403
    bad = await api.http.get("/api/v1/reports/annual", params={"year": "last year"},
                             headers=api.auth("view-1"))
    assert bad.status_code == 422
    views = (await api.http.get(f"/api/v1/complaints/{reference}/views",
                                headers=api.auth("lead-1"))).json()
    assert [(v["staff_id"], v["what"]) for v in views] == [("mgr-1", "case")]


async def test_a_handler_claims_and_a_manager_assigns(api: Api) -> None:
    """Claiming takes an unassigned case; assigning someone else is a manager's, recorded."""
    reference = await api.lodge()
    claimed = await api.act(reference, "assign", {"to": "hdl-2"}, "hdl-2")
    assert claimed.status_code == 200, claimed.text
    mine = (await api.http.get("/api/v1/complaints", params={"handler": "hdl-2"},
                               headers=api.auth("hdl-2"))).json()
    assert [c["reference"] for c in mine["items"]] == [reference]
    unassigned = (await api.http.get("/api/v1/complaints", params={"unassigned": "true"},
                                     headers=api.auth("hdl-1"))).json()
    assert reference not in [c["reference"] for c in unassigned["items"]]
    handler = await api.act(reference, "assign", {"to": "hdl-3"}, "hdl-2")
    assert handler.status_code == 403 and "manager, lead" in handler.json()["detail"]
    manager = await api.act(reference, "assign", {"to": "hdl-3", "note": "Balancing"},
                            "mgr-1")
    assert manager.status_code == 200, manager.text
    viewer = await api.act(reference, "assign", {"to": "view-1"}, "view-1")
    assert viewer.status_code == 403
    with api.context.session() as session:
        audit = session.exec(select(AuditRow.by).where(
            AuditRow.reference == reference, AuditRow.action == "assign")).all()
        row = session.get(ComplaintRow, reference)
    assert audit == ["hdl-2", "mgr-1"] and row is not None and row.handler_id == "hdl-3"


async def test_an_oidc_access_token_is_the_person_it_names(stack: Stack,
                                                          oidc_provider: Any) -> None:
    """A real provider's access token maps to the staff member with that subject; others fail."""
    from tests.oidc_provider import sign_in

    async with running_api(stack, subjects=True, oidc_issuer=oidc_provider.issuer,
                           oidc_audience=oidc_provider.audience) as api:
        redirect = next(c["redirect_uris"][0] for c in oidc_provider.clients
                        if c["client_id"] == "complaints-cli")

        def token_of(login: str) -> str:
            tokens = sign_in(oidc_provider, client_id="complaints-cli",
                             client_secret="cli-secret-for-tests-only",
                             redirect_uri=redirect, login=login)
            return str(tokens["access_token"])

        reference = await api.lodge()
        as_handler = {"Authorization": f"Bearer {await asyncio.to_thread(token_of, 'hdl-1')}"}
        done = await api.http.post(f"/api/v1/complaints/{reference}/acknowledge",
                                   json=acknowledge_body(), headers=as_handler)
        assert done.status_code == 200, done.text
        with api.context.session() as session:
            audit = session.exec(select(AuditRow.by).where(
                AuditRow.reference == reference, AuditRow.action == "acknowledge")).one()
        assert audit == "hdl-1"
        stranger = {"Authorization": f"Bearer {await asyncio.to_thread(token_of, 'nobody')}"}
        refused = await api.http.get("/api/v1/complaints", headers=stranger)
        assert refused.status_code == 403 and "not in the staff directory" in \
            refused.json()["detail"]
        tampered = as_handler["Authorization"][:-6] + "AAAAAA"
        bad = await api.http.get("/api/v1/complaints", headers={"Authorization": tampered})
        assert bad.status_code == 401 and "not valid" in bad.json()["detail"]


async def test_case_file_routes_refuse_with_problems(api: Api) -> None:
    """The document and triage routes give 404, 403 and 422 problems with their reasons."""
    reference = await api.lodge()
    triage = {"complexity": "high", "vulnerability": "some", "risk": "medium"}
    unknown = "/api/v1/complaints/CMP-2026-999999"
    for method, path in (("GET", "/documents"), ("GET", "/documents/0123456789abcdef"),
                         ("GET", "/triage"), ("POST", "/triage")):
        missing = await api.http.request(method, unknown + path, headers=api.auth("hdl-1"),
                                         json=triage if method == "POST" else None)
        assert missing.status_code == 404, (path, missing.text)
        assert missing.headers["content-type"].startswith(PROBLEM)
        assert "no complaint CMP-2026-999999" in missing.json()["detail"]
    case = f"/api/v1/complaints/{reference}"
    no_document = await api.http.get(f"{case}/documents/0123456789abcdef",
                                     headers=api.auth("hdl-1"))
    assert no_document.status_code == 404 and "no document" in no_document.json()["detail"]

    viewer = await api.http.post(f"{case}/triage", json=triage, headers=api.auth("view-1"))
    assert viewer.status_code == 403
    assert "your roles (viewer) may not triage cases" in viewer.json()["detail"]
    upload = await api.http.post(f"{case}/documents", data={"kind": "email",
                                                            "direction": "inbound"},
                                 files={"file": ("a.txt", b"Text", "text/plain")},
                                 headers=api.auth("view-1"))
    assert upload.status_code == 403 and "attach documents" in upload.json()["detail"]
    await api.act(reference, "acknowledge", acknowledge_body("hdl-1"), "hdl-1")
    other_team = await api.http.post(f"{case}/triage", json=triage, headers=api.auth("hdl-2"))
    assert other_team.status_code == 403
    assert "handled by hdl-1 of team North" in other_team.json()["detail"]

    bad = await api.http.post(f"{case}/triage", json={**triage, "complexity": "extreme"},
                              headers=api.auth("hdl-1"))
    assert bad.status_code == 422 and bad.headers["content-type"].startswith(PROBLEM)
    assert [e["pointer"] for e in bad.json()["errors"]] == ["#/complexity"]
    named = await api.http.post(f"{case}/triage", json={**triage, "by": "lead-1"},
                                headers=api.auth("hdl-1"))
    assert named.status_code == 422 and named.json()["errors"][0]["pointer"] == "#/by"
    with api.context.session() as session:
        assert session.exec(select(TriageRow).where(TriageRow.reference == reference)
                            ).all() == []


async def test_documents_download_checked_and_triage_by_the_caller(api: Api) -> None:
    """A document downloads with its SHA-256, a damaged copy is refused, views are recorded."""
    reference = await api.lodge()
    case = f"/api/v1/complaints/{reference}"
    data = b"The resident wrote again about the leak."
    uploaded = await api.http.post(
        f"{case}/documents", files={"file": ("email.txt", data, "text/plain")},
        data={"kind": "email", "direction": "inbound", "note": "Second email",
              "received_on": api.context.today().isoformat()}, headers=api.auth("hdl-1"))
    assert uploaded.status_code == 201, uploaded.text
    document = uploaded.json()
    assert document["added_by"] == "hdl-1" and document["new"] is True
    assert document["received_on"] == api.context.today().isoformat()
    [listed] = (await api.http.get(f"{case}/documents", headers=api.auth("view-1"))).json()
    assert listed["note"] == "Second email" and listed["sha256"] == hashlib.sha256(
        data).hexdigest()
    got = await api.http.get(f"{case}/documents/{document['document_id']}",
                             headers=api.auth("view-1"))
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-type"].startswith("text/plain")
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert got.headers["repr-digest"] == f"sha-256=:{digest}:"
    assert "filename*=UTF-8''email.txt" in got.headers["content-disposition"]

    with api.context.session() as session:
        row = session.exec(select(DocumentRow).where(DocumentRow.reference == reference)).one()
    document_path(api.context.settings.data_dir, row).write_bytes(b"tampered")
    damaged = await api.http.get(f"{case}/documents/{row.document_id}",
                                 headers=api.auth("hdl-1"))
    assert damaged.status_code == 500 and "recorded SHA-256" in damaged.json()["detail"]
    assert str(api.context.settings.data_dir) not in damaged.text  # no server paths

    recorded = await api.http.post(f"{case}/triage", headers=api.auth("hdl-1"), json={
        "complexity": "high", "vulnerability": "some", "risk": "low", "note": "Asthma"})
    assert recorded.status_code == 201 and recorded.json()["by"] == "hdl-1"
    history = (await api.http.get(f"{case}/triage", headers=api.auth("view-1"))).json()
    assert [(t["complexity"], t["by"], t["note"]) for t in history] == [("high", "hdl-1",
                                                                         "Asthma")]
    with api.context.session() as session:
        whats = session.exec(select(CaseViewRow.what).where(
            CaseViewRow.reference == reference)).all()
    assert sorted(whats) == sorted(["documents", f"document:{row.document_id}", "triage"])
