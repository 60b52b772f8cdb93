"""Learning from complaints in the web app: a case's Learning panel, service changes, satisfaction.

Each page acts through :mod:`complaints.learning`, as the API and the command line do, so a
refusal reads the same everywhere (one line saying what is allowed). Nothing here is
personal data: themes, lessons and changes describe the service, and the people named are
staff, by id. Who may do what is the permission matrix's: ``record_learning`` (on the
cases the role's scope reaches), ``manage_service_changes``, ``record_satisfaction``;
reading the service changes needs ``read_reports``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, select

from complaints import learning as ln
from complaints.api.deps import ContextDep, SessionDep
from complaints.api.problems import Problem
from complaints.identity import Identity, relation_to
from complaints.web.auth import WebUser, check_csrf
from domain.permissions import Matrix, Permission
from models.policy import LearningVocabulary
from models.tables import ComplaintRow, ResponseRow

__all__ = ["LearningPanel", "learning_panel", "router"]

router = APIRouter(include_in_schema=False)

#: The most landlords offered in a choice (a deployment serves one or a few).
MAX_LANDLORDS = 50


@dataclass
class StageLearning:
    """One stage's response and what it taught (None: nothing recorded yet)."""

    stage: int
    responded_on: dt.date
    learning: ln.LearningView | None


@dataclass
class LearningPanel:
    """The case page's Learning panel.

    Attributes:
        stages: Each stage with a response issued, in order.
        vocabulary: The themes and root causes offered (only when the form is shown).
        why_not: Why this person may not record learning here (None: they may).
    """

    stages: list[StageLearning] = field(default_factory=list)
    vocabulary: LearningVocabulary | None = None
    why_not: str | None = None

    @property
    def may_record(self) -> bool:
        """Whether the form is shown."""
        return self.why_not is None and self.vocabulary is not None


def learning_panel(session: Session, matrix: Matrix, user: Identity,
                   reference: str) -> LearningPanel:
    """What the case page shows of a case's learning, and whether ``user`` may record it."""
    complaint = session.get(ComplaintRow, reference)
    if complaint is None:
        return LearningPanel()
    issued: dict[int, dt.date] = {}
    for stage, responded_on in session.exec(
            select(col(ResponseRow.stage), col(ResponseRow.responded_on))
            .where(ResponseRow.reference == reference)
            .order_by(col(ResponseRow.stage), col(ResponseRow.seq))).all():
        issued.setdefault(stage, responded_on)
    if not issued:
        return LearningPanel()
    recorded = {v.stage: v for v in ln.show_learning(session, reference)}
    why_not = user.refusal(matrix, Permission.RECORD_LEARNING,
                           relation_to(session, user, reference))
    vocabulary = ln.vocabulary_for(session, complaint.policy_name) if why_not is None \
        else None
    return LearningPanel(
        stages=[StageLearning(s, on, recorded.get(s)) for s, on in sorted(issued.items())],
        vocabulary=vocabulary, why_not=why_not)


def _refuse_unless(context: Any, user: Identity, name: str, case: Any = None) -> None:
    refusal = user.refusal(context.matrix, name, case)
    if refusal is not None:
        raise Problem(403, refusal)


@router.post("/case/{reference}/learning/{stage}")
async def record_learning(reference: str, stage: str, request: Request, context: ContextDep,
                          session: SessionDep, user: WebUser) -> Response:
    """Record (or replace) what a stage response taught; a refusal shows in the panel."""
    from complaints.api.cases import live_view
    from complaints.web.pages import _case_page

    if stage not in ("1", "2"):
        raise Problem(404, f"no stage {stage[:8]!r}: learning is recorded for stage 1 or 2")
    form = await request.form()
    check_csrf(request, str(form.get("csrf", "")))
    relation = relation_to(session, user, reference)
    if relation is None:
        raise Problem(404, f"no complaint {reference}: search for it by reference")
    _refuse_unless(context, user, Permission.RECORD_LEARNING, relation)
    themes = [str(v) for v in form.getlist("themes")]
    causes = [str(v) for v in form.getlist("root_causes")]
    lessons = str(form.get("lessons", "")).replace("\r\n", "\n").strip()
    posted = {"stage": int(stage), "themes": themes, "root_causes": causes,
              "lessons": lessons}
    session.rollback()  # no read transaction held while the writer commits (SQLite)
    try:
        if not themes or not causes:
            raise ln.LearningError("tick at least one theme and at least one root cause "
                                   "from the landlord's lists")
        data = ln.parse_in(ln.LearningIn, {"stage": int(stage), "themes": themes,
                                           "root_causes": causes,
                                           "lessons": lessons or None})
        view: ln.LearningView = await context.write(
            lambda w: ln.record_learning(w, reference, data, user.staff_id))
    except ln.LearningError as exc:
        if exc.status == 404:
            raise Problem(404, exc.detail) from None
        imported = session.get(ComplaintRow, reference)
        live, why = ((None, None) if imported is not None and imported.imported
                     else await live_view(context, reference))
        return _case_page(request, context, session, user, reference, live, why,
                          status=exc.status, learning_problem={
                              "stage": int(stage), "detail": exc.detail},
                          learning_posted=posted)
    again = f", replacing what was recorded (revision {view.revision})" \
        if view.revision > 1 else ""
    request.session["flash"] = f"Learning recorded for the stage {stage} response{again}."
    return RedirectResponse(f"/case/{reference}#learning-{stage}", status_code=303)


# --- service changes and satisfaction ---------------------------------------------------


def _landlords(session: Session) -> list[str]:
    """The landlords whose complaints the database holds, by name."""
    return list(session.exec(select(ComplaintRow.landlord).distinct()
                             .order_by(col(ComplaintRow.landlord)).limit(MAX_LANDLORDS)).all())


def _themes(session: Session) -> list[str]:
    """The themes of every policy the complaints follow, once each (the defaults if none)."""
    names = session.exec(select(ComplaintRow.policy_name).distinct()
                         .order_by(col(ComplaintRow.policy_name)).limit(20)).all()
    vocabularies = [ln.vocabulary_for(session, n) for n in names] or [LearningVocabulary()]
    return list(dict.fromkeys(t for v in vocabularies for t in v.themes))


def _changes_page(request: Request, context: Any, session: Session, user: Identity,
                  status: int = 200, problem: dict[str, Any] | None = None,
                  posted: dict[str, str] | None = None) -> Response:
    """The service changes and satisfaction page, with a refusal on its form if any."""
    from complaints.directory import list_staff
    from complaints.web.pages import page

    today = context.today()
    may_manage = user.may(context.matrix, Permission.MANAGE_SERVICE_CHANGES)
    may_survey = user.may(context.matrix, Permission.RECORD_SATISFACTION)
    changes = ln.list_changes(session, today=today)
    staff = [(r.staff_id, r.display_name) for r in list_staff(session)] if may_manage else []
    return page(request, "service_changes.html", user, status=status,
                title="Service changes", today=today,
                changes=[(r, ln.is_overdue(r, today)) for r in changes],
                satisfaction=ln.list_satisfaction(session), may_manage=may_manage,
                may_survey=may_survey, staff=staff,
                themes=_themes(session) if may_manage else [],
                landlords=_landlords(session), problem=problem or {},
                posted=posted or {})


@router.get("/service-changes")
def service_changes(request: Request, context: ContextDep, session: SessionDep,
                    user: WebUser) -> Response:
    """Service changes made because of complaints (open first) and satisfaction results."""
    if not (user.may(context.matrix, Permission.MANAGE_SERVICE_CHANGES)
            or user.may(context.matrix, Permission.RECORD_SATISFACTION)):
        _refuse_unless(context, user, Permission.READ_REPORTS)
    return _changes_page(request, context, session, user)


async def _posted(request: Request) -> dict[str, str]:
    """The form's fields, trimmed, once its CSRF token is checked."""
    form = {k: str(v).replace("\r\n", "\n").strip() for k, v in (await request.form()).items()}
    check_csrf(request, form.get("csrf"))
    return form


def _given(form: dict[str, str], *names: str) -> dict[str, str]:
    """The named fields that were filled in (an empty one takes the model's default)."""
    return {n: form[n] for n in names if form.get(n)}


def _landlord_needed(session: Session, form: dict[str, str]) -> None:
    """Refuse in the page's words where :func:`ln.landlord_of` would name a CLI option."""
    if form.get("landlord"):
        return
    if len(_landlords(session)) != 1:
        raise ln.LearningError("choose the landlord (the database holds several, or no "
                               "complaints yet)")


def _required(form: Any, *fields: tuple[str, str]) -> None:
    """Refuse with the first empty field's words (``(name, what to do)`` pairs, in order)."""
    for name, what in fields:
        if not form.get(name):
            raise ln.LearningError(what)


@router.post("/service-changes")
async def add_change(request: Request, context: ContextDep, session: SessionDep,
                     user: WebUser) -> Response:
    """Record a service change: what, its owner, when due, and the case or theme if any."""
    form = await _posted(request)
    _refuse_unless(context, user, Permission.MANAGE_SERVICE_CHANGES)
    try:
        _required(form, ("description", "describe the change"),
                  ("owner", "choose who owns the change"),
                  ("due_on", "give the date the change is due"))
        # A change from a case is that case's landlord's: the landlord is asked otherwise.
        where = "reference" if form.get("reference") else "landlord"
        if where == "landlord":
            _landlord_needed(session, form)
        data = ln.parse_in(ln.ChangeIn, _given(form, "description", "owner", "due_on",
                                                  "theme", where))
        session.rollback()
        row = await context.write(lambda w: ln.add_change(w, data, user.staff_id))
    except ln.LearningError as exc:
        session.rollback()
        return _changes_page(request, context, session, user, status=exc.status,
                             problem={"form": "change", "detail": exc.detail}, posted=form)
    request.session["flash"] = (f"Service change {row.id} recorded: due "
                                f"{row.due_on.strftime('%-d %B %Y')}, owned by {row.owner}.")
    return RedirectResponse("/service-changes", status_code=303)


@router.post("/service-changes/{change_id}/done")
async def complete_change(change_id: int, request: Request, context: ContextDep,
                          session: SessionDep, user: WebUser) -> Response:
    """Record the day a service change was made (today unless given; never in the future)."""
    form = await _posted(request)
    _refuse_unless(context, user, Permission.MANAGE_SERVICE_CHANGES)
    today = context.today()
    session.rollback()
    try:
        try:
            done_on = dt.date.fromisoformat(form["done_on"]) if form.get("done_on") else today
        except ValueError:
            raise ln.LearningError("give the day the change was made as a date "
                                   "(YYYY-MM-DD)") from None
        row = await context.write(lambda w: ln.complete_change(
            w, change_id, user.staff_id, done_on=done_on, today=today))
    except ln.LearningError as exc:
        if exc.status == 404:
            raise Problem(404, exc.detail) from None
        return _changes_page(request, context, session, user, status=exc.status,
                             problem={"form": f"done-{change_id}", "detail": exc.detail},
                             posted=form)
    request.session["flash"] = (f"Service change {row.id} done on "
                                f"{row.done_on.strftime('%-d %B %Y') if row.done_on else ''}.")
    return RedirectResponse("/service-changes", status_code=303)


@router.post("/satisfaction")
async def record_satisfaction(request: Request, context: ContextDep, session: SessionDep,
                              user: WebUser) -> Response:
    """Record customer satisfaction with complaint handling for a period (the same replaces)."""
    form = await _posted(request)
    _refuse_unless(context, user, Permission.RECORD_SATISFACTION)
    try:
        _required(form, ("period_start", "give the day the period starts"),
                  ("period_end", "give the day the period ends"),
                  ("surveyed", "give how many residents were surveyed"),
                  ("satisfied", "give how many were satisfied"))
        for name in ("surveyed", "satisfied"):
            if not form[name].isascii() or not form[name].isdigit():
                raise ln.LearningError(f"{name}: give a whole number, such as 40")
        _landlord_needed(session, form)
        data = ln.parse_in(ln.SatisfactionIn, _given(
            form, "period_start", "period_end", "surveyed", "satisfied", "source",
            "landlord"))
        session.rollback()
        row = await context.write(lambda w: ln.record_satisfaction(w, data, user.staff_id))
    except ln.LearningError as exc:
        session.rollback()
        return _changes_page(request, context, session, user, status=exc.status,
                             problem={"form": "satisfaction", "detail": exc.detail},
                             posted=form)
    share = f"{100 * row.satisfied / row.surveyed:.1f}%" if row.surveyed else "–"
    request.session["flash"] = (
        f"Satisfaction recorded for {row.landlord}, {row.period_start.isoformat()} to "
        f"{row.period_end.isoformat()}: {row.satisfied} of {row.surveyed} ({share}).")
    return RedirectResponse("/service-changes#satisfaction", status_code=303)
