"""The staff pages: inboxes, a case, its action forms, lodging, search, reports, staff.

Each page acts as the signed-in person (``WebUser``) through the same code as the API:
lists from :mod:`complaints.caseindex`, a case from :mod:`complaints.casedetail`, actions
through :func:`complaints.api.actions.perform` (the matrix, the directory, then the
workflow's validator), so a refusal reads the same in the app as in the API.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from complaints.api.actions import body_model, perform, preview
from complaints.api.cases import live_view, recorded
from complaints.api.deps import ContextDep, SessionDep
from complaints.api.problems import Problem
from complaints.casedetail import action_options, case_records
from complaints.caseindex import CaseFilter, search_cases
from complaints.identity import Identity, record_view, relation_to
from complaints.reports.annual import annual_report_text, report_body
from complaints.web.auth import WebUser, check_csrf, csrf_token
from complaints.web.forms import form_fields, payload_from_form
from domain.lifecycle import TRIGGER_TEXT, ComplaintState
from domain.permissions import Permission
from models.actions import ACTION_BY_TRIGGER
from models.tables import LetterRow

router = APIRouter(include_in_schema=False)


def page(request: Request, template: str, user: Identity | None, status: int = 200,
         **values: Any) -> HTMLResponse:
    """Render a page with what every page needs (the person, the CSRF token, the nav)."""
    context = request.app.state.context
    nav = []
    if user is not None:
        if user.may(context.matrix, Permission.READ_CASES):
            nav = [("/cases/mine", "My cases"), ("/cases/team", "Team queue"),
                   ("/cases/unassigned", "Unassigned"), ("/cases/search", "Search")]
        if user.may(context.matrix, Permission.LODGE):
            nav.append(("/lodge", "Lodge a complaint"))
        if user.may(context.matrix, Permission.READ_CASES):
            nav.append(("/service-requests", "Service requests"))
        if user.may(context.matrix, Permission.READ_REPORTS):
            nav.append(("/reports", "Reports"))
        if (user.may(context.matrix, Permission.MANAGE_SERVICE_CHANGES)
                or user.may(context.matrix, Permission.RECORD_SATISFACTION)):
            nav.append(("/service-changes", "Service changes"))
        if user.may(context.matrix, Permission.IMPORT_COMPLAINTS):
            nav.append(("/import", "Import"))
        if (user.may(context.matrix, Permission.ADMIN_STAFF)
                or user.may(context.matrix, Permission.MANAGE_TOKENS)):
            nav.append(("/staff", "Staff"))
    response: HTMLResponse = request.app.state.templates.TemplateResponse(
        request, template, {"user": user, "csrf": csrf_token(request), "nav": nav,
                            "path": request.url.path, **values}, status_code=status)
    return response


def _require(context: Any, who: Identity, name: str) -> None:
    refusal = who.refusal(context.matrix, name)
    if refusal is not None:
        raise Problem(403, refusal)


#: Where a person starts: the first of these pages their roles open (an administrator
#: who reads no cases starts at the reports or the staff directory, not at a refusal).
_START = ((Permission.READ_CASES, "/cases/mine"), (Permission.READ_REPORTS, "/reports"),
          (Permission.ADMIN_STAFF, "/staff"), (Permission.MANAGE_TOKENS, "/staff"),
          (Permission.IMPORT_COMPLAINTS, "/import"))


@router.get("/")
def home(user: WebUser, context: ContextDep) -> Response:
    """Start at the person's own cases, or the first page their roles open."""
    start = next((path for permission, path in _START
                  if user.may(context.matrix, permission)), "/cases/mine")
    return RedirectResponse(start, status_code=303)


_LISTS = {
    "mine": ("My cases", "Cases you handle, the most urgent first."),
    "team": ("Team queue", "Cases handled by your team, the most urgent first."),
    "unassigned": ("Unassigned cases", "Complaints not acknowledged yet, so with no "
                                       "handler: claim one to take it on."),
}


@router.get("/cases/{which}")
def case_list(which: str, request: Request, context: ContextDep, session: SessionDep,
              user: WebUser, page_no: int = 1) -> Response:
    """An inbox: mine, my team's, unassigned, or a search."""
    _require(context, user, Permission.READ_CASES)
    if which == "search":
        return search(request, context, session, user)
    if which not in _LISTS:
        raise Problem(404, f"no list {which!r}: see My cases")
    lists: dict[str, dict[str, Any]] = {
        "mine": {"handler": user.staff_id}, "team": {"team": user.team},
        "unassigned": {"unassigned": True}}
    wanted = lists[which]
    found = search_cases(session, CaseFilter(page=max(1, page_no), **wanted), context.today())
    title, intro = _LISTS[which]
    return page(request, "cases.html", user, title=title, intro=intro, found=found,
                which=which, can_claim=user.may(context.matrix, Permission.CLAIM))


def search(request: Request, context: Any, session: Any, user: Identity) -> Response:
    """Search by reference, state, handler, team, overdue or due within N working days."""
    params = {k: v for k, v in request.query_params.items() if v != "" and k != "page_no"}
    problem = None
    found = None
    if params:
        try:
            found = search_cases(session, CaseFilter.model_validate(params), context.today())
        except ValueError as exc:
            problem = str(exc).splitlines()[0]
    return page(request, "search.html", user, title="Search cases", params=params,
                found=found, problem=problem, states=[s.value for s in ComplaintState])


def _case_page(request: Request, context: Any, session: Any, user: Identity,
               reference: str, view: Any, why: str | None, status: int = 200,
               errors: dict[str, str] | None = None,
               posted: dict[str, Any] | None = None,
               shown: dict[str, Any] | None = None, **extra: Any) -> Response:
    from complaints.web.learning_pages import learning_panel

    records = case_records(session, reference, context.today())
    if records is None:
        raise Problem(404, f"no complaint {reference}")
    if records.imported_on is not None:  # no workflow runs it: nothing live, no actions
        view, why = None, None
    state = view.state if view is not None else records.summary.state
    options = [] if records.imported_on is not None else action_options(
        context.matrix, user, state, relation_to(session, user, reference))
    forms = {o.trigger: form_fields(body_model(ACTION_BY_TRIGGER[o.trigger]))
             for o in options if o.allowed}
    timeline = sorted(
        [(a.at, "action", f"{TRIGGER_TEXT.get(a.action, a.action)}", a.by,
          a.detail if not a.accepted else "", a.accepted) for a in records.audit]
        + [(x.created_at, "letter", x.subject, "", x.letter_id, True) for x in records.letters]
        + [(d.added_at, "document", d.file_name, d.added_by or "", d.kind, True)
           for d in records.documents], key=lambda item: item[0], reverse=True)
    return page(request, "case.html", user, status=status, title=reference, records=records,
                view=view, live_error=why, options=options, forms=forms, timeline=timeline,
                errors=errors or {}, posted=posted or {}, shown=shown,
                learning=learning_panel(session, context.matrix, user, reference), **extra)


@router.get("/case/{reference}")
async def case_page(reference: str, request: Request, context: ContextDep,
                    session: SessionDep, user: WebUser) -> Response:
    """A case: deadlines, parties, timeline, letters, documents, and the allowed actions."""
    _require(context, user, Permission.READ_CASES)
    records = case_records(session, reference, context.today())
    if records is None:
        raise Problem(404, f"no complaint {reference}: search for it by reference")
    session.rollback()
    await context.write(lambda w: record_view(w, user, reference, "case", "web"))
    view, why = ((None, None) if records.imported_on is not None  # no workflow to ask
                 else await live_view(context, reference))
    return _case_page(request, context, session, user, reference, view, why)


async def _action_form(request: Request, trigger: str) -> dict[str, Any]:
    """The action's body from its posted form (CSRF checked); 404 for no such action."""
    if trigger not in ACTION_BY_TRIGGER:
        raise Problem(404, f"no action {trigger!r}")
    form = await request.form()
    check_csrf(request, str(form.get("csrf", "")))
    model = body_model(ACTION_BY_TRIGGER[trigger])
    multi = {k: [str(v) for v in form.getlist(k)] for k in form}
    return payload_from_form(model, {k: form.get(k) for k in form}, multi)


@router.post("/case/{reference}/{trigger}")
async def take_action(reference: str, trigger: str, request: Request, context: ContextDep,
                      session: SessionDep, user: WebUser) -> Response:
    """Take an action from its form; a refusal is shown beside the form, as the case said."""
    payload = await _action_form(request, trigger)
    try:
        result = await perform(context, session, user, reference, trigger, payload)
    except Problem as exc:
        view, why = await live_view(context, reference)
        fragment = request.headers.get("HX-Request") == "true"
        if fragment:
            return page(request, "_refusal.html", user, status=200, trigger=trigger,
                        detail=exc.detail, errors=exc.extra.get("errors", []))
        return _case_page(request, context, session, user, reference, view, why,
                          status=exc.status, errors={trigger: exc.detail},
                          posted={"trigger": trigger})
    done = f"{TRIGGER_TEXT.get(trigger, trigger).capitalize()}: done"
    request.session["flash"] = f"{done}; the case is now {result.state.replace('_', ' ')}."
    target = f"/case/{reference}"
    if request.headers.get("HX-Request") == "true":
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


@router.post("/case/{reference}/actions/{trigger}/preview")
async def preview_action(reference: str, trigger: str, request: Request, context: ContextDep,
                         session: SessionDep, user: WebUser) -> Response:
    """Show the letters an action's form would send, under the form; nothing is sent.

    With htmx the preview (or why the case would refuse) replaces the form's preview
    region; without JavaScript the case page comes back with it under the form.
    """
    payload = await _action_form(request, trigger)
    fragment = request.headers.get("HX-Request") == "true"
    shown: dict[str, Any] = {"trigger": trigger, "preview": None, "detail": None,
                             "errors": []}
    status = 200
    try:
        shown["preview"] = await preview(context, session, user, reference, trigger, payload,
                                         via="web")
    except Problem as exc:
        if exc.status in (403, 404) and not fragment:
            raise  # the error page: there is no case page to show it on, or no form
        shown.update(detail=exc.detail, errors=exc.extra.get("errors", []))
        status = exc.status
    if fragment:  # htmx swaps only a 2xx answer into the page
        return page(request, "_preview.html", user, shown=shown)
    view, why = await live_view(context, reference)
    return _case_page(request, context, session, user, reference, view, why, status=status,
                      posted={"trigger": trigger}, shown=shown)


@router.get("/case/{reference}/letters/{letter_id}")
def letter_page(reference: str, letter_id: str, request: Request, context: ContextDep,
                session: SessionDep, user: WebUser) -> Response:
    """A letter as sent, shown in the page; the viewing is recorded."""
    _require(context, user, Permission.READ_CASES)
    row = session.get(LetterRow, letter_id)
    if row is None or row.reference != reference:
        raise Problem(404, f"no letter {letter_id} on {reference}")
    with context.session() as writer:  # a sync route: FastAPI runs it in a thread
        record_view(writer, user, reference, f"letter:{letter_id}", "web")
    return page(request, "letter.html", user, title=row.subject, letter=row,
                reference=reference)


@router.get("/case/{reference}/letters/{letter_id}/pdf")
def letter_pdf(reference: str, letter_id: str, context: ContextDep, session: SessionDep,
               user: WebUser) -> Response:
    """A letter as an accessible PDF (printed and kept on first ask); the viewing is recorded."""
    from activities.letters import LetterActivities
    from complaints.db import session_factory

    _require(context, user, Permission.READ_CASES)
    row = session.get(LetterRow, letter_id)
    if row is None or row.reference != reference:
        raise Problem(404, f"no letter {letter_id} on {reference}")
    with context.session() as writer:  # a sync route: FastAPI runs it in a thread
        record_view(writer, user, reference, f"letter:{letter_id}:pdf", "web")
    printed = LetterActivities(session_factory(context.engine),
                               context.settings.effective_outbox()).print_letter(letter_id)
    return Response(printed.pdf or b"", media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{letter_id}.pdf"'})


@router.get("/lodge")
def lodge_form(request: Request, context: ContextDep, user: WebUser) -> Response:
    """The form to lodge a complaint."""
    _require(context, user, Permission.LODGE)
    return page(request, "lodge.html", user, title="Lodge a complaint", posted={},
                problem=None, today=context.today().isoformat(), policies=_policies())


def _policies() -> list[str]:
    from complaints.policies import shipped_policy_names

    return shipped_policy_names()


@router.post("/lodge")
async def lodge(request: Request, context: ContextDep, session: SessionDep,
                user: WebUser) -> Response:
    """Lodge the complaint; the new case's page, or the form again with what to fix."""
    from pydantic import ValidationError

    from complaints.api.cases import _lodge
    from complaints.api.problems import from_validation

    _require(context, user, Permission.LODGE)
    form = {k: str(v) for k, v in (await request.form()).items()}
    check_csrf(request, form.get("csrf"))
    lines = [x.strip() for x in form.get("address", "").splitlines() if x.strip()]
    outcomes = [x.strip() for x in form.get("outcomes", "").splitlines() if x.strip()]
    resident = {"role": "resident", "name": form.get("name", "").strip(),
                "address": lines, "email": form.get("email") or None,
                "phone": form.get("phone") or None}
    data: dict[str, Any] = {
        "policy_name": form.get("policy") or "code-2024", "channel": form.get("channel"),
        "channel_reference": form.get("channel_reference") or None,
        "received_on": form.get("received_on"),
        "issue_occurred_on": form.get("issue_occurred_on") or None,
        "category": form.get("category") or "general", "parties": [resident],
        "tenure": form.get("tenure") or None,
        "description": form.get("description", "").strip(), "outcomes_sought": outcomes}
    try:
        lodged = await _lodge(context, data)
    except (Problem, ValidationError) as exc:
        problem = from_validation(exc) if isinstance(exc, ValidationError) else exc
        return page(request, "lodge.html", user, status=problem.status,
                    title="Lodge a complaint", posted=form, problem=problem.detail,
                    errors=problem.extra.get("errors", []), today=context.today().isoformat(),
                    policies=_policies())
    await recorded(context, lodged.reference)
    request.session["flash"] = (f"Lodged as {lodged.reference}." if lodged.created else
                                f"This complaint was already lodged as {lodged.reference}.")
    return RedirectResponse(f"/case/{lodged.reference}", status_code=303)


@router.get("/staff")
def staff_page(request: Request, context: ContextDep, session: SessionDep,
               user: WebUser, holder: str | None = None) -> Response:
    """The staff directory and the service tokens, each for those whose roles allow it.

    Args:
        request: The request.
        context: The app's context.
        session: A database session.
        user: The signed-in person.
        holder: The staff id a new token is for (the first step of making one), which
            decides the scopes offered.

    """
    if not user.may(context.matrix, Permission.MANAGE_TOKENS):
        _require(context, user, Permission.ADMIN_STAFF)
    return _staff(request, session, user, holder=holder)


def _staff(request: Request, session: Any, user: Identity, status: int = 200,
           problem: str | None = None, posted: dict[str, str] | None = None, *,
           holder: str | None = None, token_problem: str | None = None,
           token_posted: dict[str, Any] | None = None,
           made: dict[str, Any] | None = None) -> Response:
    """The Staff page: the directory (``admin_staff``), the tokens (``manage_tokens``).

    Args:
        request: The request.
        session: A database session.
        user: The signed-in person.
        status: The response's status.
        problem: Why a change to the directory was refused.
        posted: The directory form as sent, to fill it again.
        holder: The staff id a new token is for, if chosen.
        token_problem: Why making a token was refused.
        token_posted: The token form as sent, to fill it again.
        made: A token just made, with its ``secret``: shown in this response only.

    """
    from complaints.directory import ROLES, find_staff, list_staff, roles_of
    from complaints.identity import list_tokens
    from complaints.tokens import (
        ALL_SCOPES,
        MAX_EXPIRES_DAYS,
        allowed_scopes,
        token_json,
        token_state,
    )
    from models.tables import utcnow

    matrix = request.app.state.context.matrix
    may_staff = user.may(matrix, Permission.ADMIN_STAFF)
    may_tokens = user.may(matrix, Permission.MANAGE_TOKENS)
    everyone = list_staff(session, include_inactive=True)
    people = [(r.staff_id, r.display_name, r.job_title, r.team, ", ".join(roles_of(r)),
               r.active, r.subject) for r in everyone] if may_staff else []
    tokens: dict[str, Any] = {}
    if may_tokens:
        now = utcnow()
        chosen = find_staff(session, holder) if holder else None
        if holder and (chosen is None or not chosen.active):
            # A staff id only (never a name): say what to do, keep the first step open.
            token_problem = token_problem or (
                f"staff id '{holder[:64]}' is not an active member of staff: choose the "
                "token's holder from the list")
            chosen = None
        tokens = {
            "rows": [{**token_json(r), "state": token_state(r, now)}
                     for r in list_tokens(session)],
            "holders": [(r.staff_id, r.display_name, ", ".join(roles_of(r)))
                        for r in everyone if r.active],
            "holder": chosen.staff_id if chosen is not None else None,
            "scopes": allowed_scopes(roles_of(chosen), matrix) if chosen is not None else [],
            "all": ALL_SCOPES, "max_days": MAX_EXPIRES_DAYS, "problem": token_problem,
            "posted": token_posted or {}, "made": made}
    response = page(request, "staff.html", user, status=status, title="Staff", people=people,
                    roles=ROLES, problem=problem, posted=posted or {}, may_staff=may_staff,
                    tokens=tokens)
    if made is not None:
        response.headers["Cache-Control"] = "no-store"  # It holds a token's secret.
    return response


@router.post("/staff")
async def staff_change(request: Request, context: ContextDep, session: SessionDep,
                       user: WebUser) -> Response:
    """Add a member of staff, change one, or make one inactive or active again."""
    from complaints.directory import (
        DirectoryError,
        activate_staff,
        add_staff,
        deactivate_staff,
        update_staff,
    )

    _require(context, user, Permission.ADMIN_STAFF)
    form = await request.form()
    check_csrf(request, str(form.get("csrf", "")))
    fields = {k: str(v).strip() for k, v in form.items() if k != "roles"}
    roles = [str(r) for r in form.getlist("roles")]
    staff_id = fields.get("staff_id", "")
    what = fields.get("do", "")

    def change(writer: Any) -> str:
        if what == "add":
            add_staff(writer, staff_id, display_name=fields.get("display_name", ""),
                      job_title=fields.get("job_title", ""), team=fields.get("team", ""),
                      email=fields.get("email", ""), phone=fields.get("phone") or None,
                      roles=roles, subject=fields.get("subject") or None)
            return f"{staff_id} added."
        if what == "update":
            update_staff(writer, staff_id, roles=roles or None,
                         team=fields.get("team") or None,
                         subject=fields.get("subject") or None)
            return f"{staff_id} updated."
        if what == "deactivate":
            deactivate_staff(writer, staff_id, reason=fields.get("reason", ""))
            return f"{staff_id} can no longer sign in or act."
        if what == "activate":
            activate_staff(writer, staff_id)
            return f"{staff_id} is active again."
        raise DirectoryError("choose what to do: add, update, deactivate or activate")

    session.rollback()
    try:
        done = await context.write(change)
    except DirectoryError as exc:
        return _staff(request, session, user, status=422, problem=str(exc), posted=fields)
    request.session["flash"] = done
    return RedirectResponse("/staff", status_code=303)


@router.post("/staff/tokens")
async def staff_tokens(request: Request, context: ContextDep, session: SessionDep,
                       user: WebUser) -> Response:
    """Make a service token, shown once in this response (never redirected with), or revoke one.

    Each is logged by :mod:`complaints.identity` as the CLI's are (ids only, no secret).
    """
    from complaints.identity import AccessDenied, revoke_token
    from complaints.tokens import MAX_EXPIRES_DAYS, check_admin, make_token, token_json

    check_admin(user, context.matrix)
    form = await request.form()
    check_csrf(request, str(form.get("csrf", "")))
    what = str(form.get("do", ""))
    session.rollback()  # No read transaction held while the writer commits (SQLite).
    if what == "revoke":
        token_id = str(form.get("token_id", "")).strip()
        row = await context.write(lambda writer: revoke_token(writer, token_id,
                                                              by=user.staff_id))
        request.session["flash"] = (f"Token {row.token_id} ({row.staff_id}) is revoked: it "
                                    "is refused from now on.")
        return RedirectResponse("/staff#tokens", status_code=303)
    if what != "create":
        raise Problem(422, "choose what to do: create or revoke a token")
    fields = {k: str(form.get(k, "")).strip() for k in ("holder", "label", "expires_days")}
    wanted = [str(s) for s in form.getlist("scopes")]

    def refused(detail: str) -> Response:
        return _staff(request, session, user, status=422, holder=fields["holder"],
                      token_problem=detail, token_posted={**fields, "scopes": wanted})

    days = fields["expires_days"]
    if not fields["label"]:
        return refused("give the token a label saying what it is for, such as "
                       "'Housing system (Orchard)'")
    if not wanted:
        return refused("tick at least one scope (what the token may do), or all of the "
                       "holder's permissions")
    if days and not (days.isascii() and days.isdigit()
                     and 1 <= int(days) <= MAX_EXPIRES_DAYS):
        return refused(f"expires after: give a whole number of days from 1 to "
                       f"{MAX_EXPIRES_DAYS}, or leave it blank for never")
    try:
        row, secret = await context.write(lambda writer: make_token(
            writer, fields["holder"], wanted=wanted, label=fields["label"], by=user.staff_id,
            matrix=context.matrix, expires_days=int(days) if days else None))
    except AccessDenied as exc:
        return refused(exc.detail)
    return _staff(request, session, user, made={**token_json(row), "secret": secret})


@router.get("/reports")
def reports_page(request: Request, context: ContextDep, user: WebUser,
                 year: str | None = None) -> Response:
    """The annual report with its charts, for a reporting year (April to March)."""
    from complaints.reports.period import parse_year

    _require(context, user, Permission.READ_REPORTS)
    today = context.today()
    first = today.year if today.month >= 4 else today.year - 1
    years = [f"{y}/{str(y + 1)[2:]}" for y in range(first, first - 4, -1)]
    chosen = year or years[0]
    try:
        period = parse_year(chosen)
    except ValueError as exc:
        raise Problem(422, str(exc)) from None
    return page(request, "reports.html", user, title="Reports", year=chosen, years=years,
                report_html=report_body(annual_report_text(context, period, "html")))


# --- service requests (Code 1.4-1.6) -----------------------------------------------------


def _service_request_form(request: Request, context: Any, user: Identity, status: int = 200,
                          posted: dict[str, str] | None = None,
                          problem: str | None = None,
                          errors: list[dict[str, str]] | None = None) -> Response:
    import uuid

    today = context.today()
    return page(request, "service_request_lodge.html", user, status=status,
                title="Log a service request", posted=posted or {}, problem=problem,
                errors=errors or [], today=today.isoformat(),
                target=(today + dt.timedelta(days=10)).isoformat(),
                # A new key a form: a form sent twice (a double click) logs one request.
                form_key=(posted or {}).get("form_key") or uuid.uuid4().hex)


@router.get("/lodge/service-request")
def service_request_form(request: Request, context: ContextDep, user: WebUser) -> Response:
    """The form to log a service request (the Lodge page's second choice)."""
    _require(context, user, Permission.LOG_SERVICE_REQUESTS)
    return _service_request_form(request, context, user)


@router.post("/lodge/service-request")
async def log_service_request(request: Request, context: ContextDep, session: SessionDep,
                              user: WebUser) -> Response:
    """Log the service request; its page, or the form again with what to fix."""
    from pydantic import ValidationError

    from complaints import service_requests as sr
    from complaints.api.cases import _fingerprint
    from complaints.api.problems import from_validation

    _require(context, user, Permission.LOG_SERVICE_REQUESTS)
    form = {k: str(v) for k, v in (await request.form()).items()}
    check_csrf(request, form.get("csrf"))
    lines = [x.strip() for x in form.get("address", "").splitlines() if x.strip()]
    data: dict[str, Any] = {
        "channel": form.get("channel"), "received_on": form.get("received_on") or None,
        "category": form.get("category") or "general",
        "target_date": form.get("target_date"),
        "resident": {"name": form.get("name", "").strip(), "address": lines,
                     "email": form.get("email") or None, "phone": form.get("phone") or None},
        "description": form.get("description", "").strip()}
    try:
        body = sr.ServiceRequestIn.model_validate(data)
    except ValidationError as exc:
        problem = from_validation(exc)
        return _service_request_form(request, context, user, status=422, posted=form,
                                     problem=problem.detail,
                                     errors=problem.extra.get("errors", []))
    session.rollback()
    key = (user.staff_id, f"web:{form.get('form_key', '')}"[:255],
           _fingerprint({"service_request": body.model_dump(mode="json")}))
    today = context.today()
    try:
        row, created = await context.write(lambda w: sr.log_request(
            w, body, user.staff_id, today=today, idempotency=key))
    except sr.ServiceRequestError as exc:
        return _service_request_form(request, context, user, status=exc.status, posted=form,
                                     problem=exc.detail)
    request.session["flash"] = (f"Logged as service request {row.id}." if created else
                                f"This service request was already logged as {row.id}.")
    return RedirectResponse(f"/service-requests/{row.id}", status_code=303)


@router.get("/service-requests")
def service_requests_page(request: Request, context: ContextDep, session: SessionDep,
                          user: WebUser, page_no: int = 1) -> Response:
    """The open service requests, overdue first, with Resolve and Convert to complaint."""
    from complaints import service_requests as sr

    _require(context, user, Permission.READ_CASES)
    today = context.today()
    per_page = 50
    rows, total = sr.list_requests(session, today=today, open_only=True,
                                   page=max(1, page_no), per_page=per_page)
    return page(request, "service_requests.html", user, title="Service requests",
                rows=[(r, sr.is_overdue(r, today)) for r in rows], total=total,
                page_no=max(1, page_no), per_page=per_page, policies=_policies(),
                may_log=user.may(context.matrix, Permission.LOG_SERVICE_REQUESTS),
                may_convert=user.may(context.matrix, Permission.CONVERT_SERVICE_REQUESTS))


def _service_request_page(request: Request, context: Any, session: Any, user: Identity,
                          request_id: str, status: int = 200,
                          problem: str | None = None) -> Response:
    from complaints import service_requests as sr

    try:
        row = sr.get_request(session, request_id)
    except sr.ServiceRequestError as exc:
        raise Problem(exc.status, exc.detail) from None
    address = [x for x in row.resident_address.splitlines() if x.strip()]
    return page(request, "service_request.html", user, status=status, title=row.id, row=row,
                address=address, overdue=sr.is_overdue(row, context.today()),
                policies=_policies(), problem=problem, today=context.today().isoformat(),
                may_log=user.may(context.matrix, Permission.LOG_SERVICE_REQUESTS),
                may_convert=user.may(context.matrix, Permission.CONVERT_SERVICE_REQUESTS))


@router.get("/service-requests/{request_id}")
async def service_request_page(request_id: str, request: Request, context: ContextDep,
                               session: SessionDep, user: WebUser) -> Response:
    """A service request with the resident's details; the viewing is recorded."""
    from complaints import service_requests as sr

    _require(context, user, Permission.READ_CASES)
    try:
        sr.get_request(session, request_id)
    except sr.ServiceRequestError as exc:
        raise Problem(exc.status, exc.detail) from None
    session.rollback()
    await context.write(lambda w: record_view(w, user, request_id, "service_request", "web"))
    return _service_request_page(request, context, session, user, request_id)


@router.post("/service-requests/{request_id}/{what}")
async def service_request_action(request_id: str, what: str, request: Request,
                                 context: ContextDep, session: SessionDep,
                                 user: WebUser) -> Response:
    """Resolve, convert to a complaint, or record that the resident was told how to complain.

    A refusal comes back on the request's page, said in one line.
    """
    from complaints import service_requests as sr
    from complaints.api.service_requests import ConvertIn, convert_request

    if what not in ("resolve", "convert", "told-how-to-complain"):
        raise Problem(404, f"no service request action {what[:40]!r}")
    form = {k: str(v) for k, v in (await request.form()).items()}
    check_csrf(request, form.get("csrf"))
    back = form.get("back") == "list"
    today = context.today()
    session.rollback()
    try:
        if what == "convert":
            converted = await convert_request(context, user, request_id, ConvertIn(
                policy_name=form.get("policy") or "code-2024"))
            request.session["flash"] = (
                f"{request_id} converted to complaint {converted.reference}; the service "
                "request stays open." if converted.created else
                f"{request_id} was converted before, to {converted.reference}.")
            return RedirectResponse(f"/case/{converted.reference}", status_code=303)
        _require(context, user, Permission.LOG_SERVICE_REQUESTS)
        if what == "resolve":
            await context.write(lambda w: sr.resolve(
                w, request_id, user.staff_id, form.get("resolution", ""), today=today))
            request.session["flash"] = f"{request_id} resolved."
        else:
            await context.write(lambda w: sr.told_how_to_complain(
                w, request_id, user.staff_id, today=today))
            request.session["flash"] = f"Recorded: the resident of {request_id} was told how " \
                                       "to complain."
    except sr.ServiceRequestError as exc:
        if exc.status == 404:
            raise Problem(404, exc.detail) from None
        return _service_request_page(request, context, session, user, request_id,
                                     status=exc.status, problem=exc.detail)
    except Problem as exc:
        if exc.status in (403, 404):
            raise
        return _service_request_page(request, context, session, user, request_id,
                                     status=exc.status, problem=exc.detail)
    target = "/service-requests" if back else f"/service-requests/{request_id}"
    return RedirectResponse(target, status_code=303)
