"""Learning from complaints (Code 8.1, 9): lessons, service changes, satisfaction.

What each response taught, the service changes made, and residents' satisfaction with
complaint handling are kept by the application layer in the complaints database
(``models.learning``), never through the workflow: no worker is needed and no case
history changes.

- :func:`record_learning` files a stage response under themes and root causes from the
  landlord's vocabulary (the policy file's ``[learning]``, read now: a landlord may add to
  it) with the lessons learned. Only a stage with a response issued may have learning;
  recording again replaces it (``revision`` counts the times).
- :func:`add_change` / :func:`complete_change` keep the service changes made as a result,
  each with its owner (a member of staff) and the date it is due, then done.
- :func:`record_satisfaction` keeps customer satisfaction with complaint handling per
  landlord and period (Connexus policy 4.2); periods may not overlap, so a report over any
  span adds them up honestly.

Shared by the command line (:mod:`complaints.learning_cli`), the API
(:mod:`complaints.api.learning`) and the report (:mod:`complaints.reports.learning`). Every
refusal is a :class:`LearningError`: one line for staff and an HTTP status. Log lines carry
references, stages and ids only.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import delete, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from models.case import Label, Text
from models.learning import LearningRow, LearningTagRow, SatisfactionRow, ServiceChangeRow
from models.limits import first_problem
from models.policy import LearningVocabulary
from models.tables import CaseRecordRow, ComplaintRow, ResponseRow, utcnow

__all__ = [
    "ChangeIn",
    "LearningError",
    "LearningIn",
    "LearningView",
    "SatisfactionIn",
    "add_change",
    "complete_change",
    "is_overdue",
    "landlord_of",
    "list_changes",
    "list_satisfaction",
    "record_learning",
    "record_satisfaction",
    "show_learning",
    "vocabulary_for",
]

log = structlog.wrap_logger(logging.getLogger(__name__))

#: The most themes (or root causes) one response is filed under.
MAX_TAGS = 10


class LearningError(Exception):
    """A refusal: one line for staff (what is wrong, how to fix it) and an HTTP status.

    Attributes:
        detail: The line.
        status: 404 (no such case or change), 409 (not possible now) or 422 (bad input).
    """

    def __init__(self, detail: str, status: int = 422) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LearningIn(_In):
    """What a stage response taught: its themes and root causes, and the lessons."""

    stage: int = Field(ge=1, le=2, description="The stage whose response this is.")
    themes: tuple[Label, ...] = Field(min_length=1, max_length=MAX_TAGS,
                                      description="From the landlord's vocabulary.")
    root_causes: tuple[Label, ...] = Field(min_length=1, max_length=MAX_TAGS,
                                           description="From the landlord's vocabulary.")
    lessons: Text | None = Field(default=None, description="The lessons learned.")


class ChangeIn(_In):
    """A change to the service made because of complaints."""

    description: Text
    owner: Label = Field(description="The staff id of who owns the change.")
    due_on: dt.date
    reference: Label | None = Field(default=None,
                                    description="The complaint it came from, if one.")
    theme: Label | None = Field(default=None, description="A theme of the vocabulary.")
    landlord: Label | None = Field(default=None, description="Default: the reference's, "
                                                             "else the only landlord.")


class SatisfactionIn(_In):
    """Customer satisfaction with complaint handling over one period."""

    period_start: dt.date
    period_end: dt.date
    surveyed: int = Field(ge=1, le=10_000_000)
    satisfied: int = Field(ge=0, le=10_000_000)
    source: Text | None = Field(default=None, description="The survey, and any notes.")
    landlord: Label | None = Field(default=None, description="Default: the only landlord.")


class LearningView(BaseModel):
    """A response's learning as recorded."""

    reference: str
    stage: int
    themes: list[str]
    root_causes: list[str]
    lessons: str
    recorded_by: str
    recorded_at: dt.datetime
    revision: int


def _checked(data: BaseModel) -> None:
    """Refuse input beyond the documented limits (``models.limits``), naming the field."""
    problem = first_problem(data)
    if problem is not None:
        raise LearningError(problem)


def check_staff(session: Session, staff_id: str, option: str = "--by") -> str:
    """``staff_id`` as the directory spells it, or a refusal (as for service requests)."""
    from complaints.service_requests import ServiceRequestError, check_by

    try:
        return check_by(session, staff_id, option)
    except ServiceRequestError as exc:
        raise LearningError(exc.detail, exc.status) from None


def _complaint(session: Session, reference: str) -> ComplaintRow:
    row = session.get(ComplaintRow, reference)
    if row is None:
        raise LearningError(f"no complaint {reference} in this database: check the "
                            "reference (complaints list)", 404)
    if row.state == "voided":
        raise LearningError(f"{reference} is voided (not a complaint): record learning on "
                            "the case it duplicates", 409)
    return row


def vocabulary_for(session: Session, policy_name: str) -> LearningVocabulary:
    """The landlord's vocabulary: the policy file's as it is now.

    Falls back to the policy a case recorded when it started (a policy file given by a
    path that is gone), then to the defaults.
    """
    from complaints.policies import PolicyError, load_policy

    try:
        return load_policy(policy_name).learning
    except PolicyError:
        recorded = session.exec(select(CaseRecordRow.policy_json).join(
            ComplaintRow, col(ComplaintRow.reference) == col(CaseRecordRow.reference))
            .where(ComplaintRow.policy_name == policy_name).limit(1)).first()
        if recorded:
            learning = json.loads(recorded).get("learning")
            if learning:
                return LearningVocabulary.model_validate(learning)
    return LearningVocabulary()


def _in_vocabulary(values: tuple[str, ...], allowed: tuple[str, ...], what: str,
                   policy: str) -> list[str]:
    """``values`` once each, in order; a refusal naming the allowed ones otherwise."""
    unique = list(dict.fromkeys(v.strip() for v in values))
    unknown = [v for v in unique if v not in allowed]
    if unknown:
        raise LearningError(f"{what} '{unknown[0]}' is not in the landlord's vocabulary "
                            f"(policy {policy}, [learning]): use one of {', '.join(allowed)}")
    return unique


def _stages_answered(session: Session, reference: str) -> list[int]:
    return sorted(set(session.exec(select(ResponseRow.stage)
                                   .where(ResponseRow.reference == reference)).all()))


def record_learning(session: Session, reference: str, data: LearningIn, by: str, *,
                    now: dt.datetime | None = None) -> LearningView:
    """File a stage response under themes and root causes, with its lessons.

    Args:
        session: The complaints database.
        reference: The complaint.
        data: The stage, themes, root causes and lessons.
        by: The staff id recording it (checked against the directory).
        now: The time recorded (default: now).

    Returns:
        The learning as recorded (replacing any recorded before).

    Raises:
        LearningError: No such case, no response at that stage, an entry outside the
            vocabulary, a text beyond its limit, or an unknown member of staff.
    """
    _checked(data)
    complaint = _complaint(session, reference)
    answered = _stages_answered(session, reference)
    if data.stage not in answered:
        allowed = (f"stage {' and '.join(str(s) for s in answered)} only" if answered
                   else "none yet: record it once a response is issued")
        raise LearningError(f"{reference} has no stage {data.stage} response: learning is "
                            f"recorded against a response issued ({allowed})", 409)
    vocabulary = vocabulary_for(session, complaint.policy_name)
    themes = _in_vocabulary(data.themes, vocabulary.themes, "theme", complaint.policy_name)
    causes = _in_vocabulary(data.root_causes, vocabulary.root_causes, "root cause",
                            complaint.policy_name)
    who = check_staff(session, by)
    try:
        return _write_learning(session, reference, data, who, themes, causes, now)
    except IntegrityError:
        # Recorded at the same moment by someone else: this one replaces theirs.
        session.rollback()
        return _write_learning(session, reference, data, who, themes, causes, now)


def _write_learning(session: Session, reference: str, data: LearningIn, who: str,
                    themes: list[str], causes: list[str], now: dt.datetime | None
                    ) -> LearningView:
    """Insert or replace the learning row and its tags, in one transaction."""
    row = session.exec(select(LearningRow).where(LearningRow.reference == reference,
                                                 LearningRow.stage == data.stage)).first()
    if row is None:
        row = LearningRow(reference=reference, stage=data.stage, recorded_by=who)
    else:
        row.revision += 1
        session.execute(delete(LearningTagRow).where(
            col(LearningTagRow.learning_id) == row.id))
    row.lessons = data.lessons or ""
    row.recorded_by = who
    row.recorded_at = now or utcnow()
    session.add(row)
    session.flush()
    assert row.id is not None  # flushed: the key is known
    session.add_all([LearningTagRow(learning_id=row.id, kind="theme", value=v) for v in themes]
                    + [LearningTagRow(learning_id=row.id, kind="root_cause", value=v)
                       for v in causes])
    session.commit()
    log.info("learning_recorded", reference=reference, stage=data.stage,
             revision=row.revision)
    return _view(row, themes, causes)


def _view(row: LearningRow, themes: list[str], causes: list[str]) -> LearningView:
    return LearningView(reference=row.reference, stage=row.stage, themes=themes,
                        root_causes=causes, lessons=row.lessons, recorded_by=row.recorded_by,
                        recorded_at=row.recorded_at, revision=row.revision)


def show_learning(session: Session, reference: str) -> list[LearningView]:
    """The learning recorded on a case, stage by stage (empty when none)."""
    if session.get(ComplaintRow, reference) is None:
        raise LearningError(f"no complaint {reference} in this database: check the "
                            "reference (complaints list)", 404)
    rows = session.exec(select(LearningRow).where(LearningRow.reference == reference)
                        .order_by(col(LearningRow.stage))).all()
    views = []
    for row in rows:
        tags = session.exec(select(LearningTagRow).where(LearningTagRow.learning_id == row.id)
                            .order_by(col(LearningTagRow.kind), col(LearningTagRow.value))).all()
        views.append(_view(row, [t.value for t in tags if t.kind == "theme"],
                           [t.value for t in tags if t.kind == "root_cause"]))
    return views


def landlord_of(session: Session, given: str | None, option: str = "--landlord") -> str:
    """The landlord named, else the only one whose complaints the database holds."""
    if given:
        return given.strip()
    names = session.exec(select(ComplaintRow.landlord).distinct()
                         .order_by(col(ComplaintRow.landlord)).limit(6)).all()
    if len(names) == 1:
        return names[0]
    if not names:
        raise LearningError(f"the database holds no complaints yet: give {option}")
    listed = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    raise LearningError(f"the database holds several landlords' complaints ({listed}): "
                        f"give {option}")


def _landlord_vocabulary(session: Session, landlord: str) -> tuple[str, LearningVocabulary]:
    """The policy most of the landlord's complaints follow, and its vocabulary."""
    name = session.exec(select(ComplaintRow.policy_name)
                        .where(ComplaintRow.landlord == landlord)
                        .group_by(col(ComplaintRow.policy_name))
                        .order_by(func.count().desc()).limit(1)).first()
    if name is None:
        return "(defaults)", LearningVocabulary()
    return name, vocabulary_for(session, name)


def add_change(session: Session, data: ChangeIn, by: str) -> ServiceChangeRow:
    """Record a service change made because of complaints; its owner and due date.

    Raises:
        LearningError: No such case, a theme outside the vocabulary, an unknown owner or
            member of staff, or a text beyond its limit.
    """
    _checked(data)
    if data.reference is not None:
        complaint = _complaint(session, data.reference)
        landlord = complaint.landlord
        if data.landlord and data.landlord.strip() != landlord:
            raise LearningError(f"{data.reference} is {landlord}'s complaint, not "
                                f"{data.landlord.strip()}'s: leave out --landlord")
        policy, vocabulary = complaint.policy_name, vocabulary_for(session,
                                                                   complaint.policy_name)
    else:
        landlord = landlord_of(session, data.landlord)
        policy, vocabulary = _landlord_vocabulary(session, landlord)
    theme = None
    if data.theme is not None:
        theme = _in_vocabulary((data.theme,), vocabulary.themes, "theme", policy)[0]
    owner = check_staff(session, data.owner, "--owner")
    row = ServiceChangeRow(reference=data.reference, landlord=landlord, theme=theme,
                           description=data.description, owner=owner, due_on=data.due_on,
                           recorded_by=check_staff(session, by))
    session.add(row)
    session.commit()
    log.info("service_change_recorded", change_id=row.id, reference=data.reference)
    return row


def complete_change(session: Session, change_id: int, by: str, *, done_on: dt.date,
                    today: dt.date) -> ServiceChangeRow:
    """Record that a service change was made, on ``done_on`` (not after today).

    Recording the same day again changes nothing; another day is refused.

    Raises:
        LearningError: No such change, a day in the future, or already done on another.
    """
    row = session.get(ServiceChangeRow, change_id)
    if row is None:
        raise LearningError(f"no service change {change_id}: see complaints changes list", 404)
    if done_on > today:
        raise LearningError(f"done on {done_on.isoformat()} is after today "
                            f"({today.isoformat()}): record it once it is done")
    if row.done_on is not None:
        if row.done_on == done_on:
            return row
        raise LearningError(f"service change {change_id} was done on "
                            f"{row.done_on.isoformat()} already", 409)
    row.done_on = done_on
    row.done_by = check_staff(session, by)
    session.add(row)
    session.commit()
    log.info("service_change_done", change_id=row.id)
    return row


def is_overdue(row: ServiceChangeRow, today: dt.date) -> bool:
    """Whether a change is not done and its due date has passed."""
    return row.done_on is None and row.due_on < today


def list_changes(session: Session, *, today: dt.date, open_only: bool = False,
                 overdue: bool = False, landlord: str | None = None) -> list[ServiceChangeRow]:
    """Service changes: open ones first by due date, then done ones, latest first."""
    query = select(ServiceChangeRow)
    if landlord:
        query = query.where(ServiceChangeRow.landlord == landlord)
    if open_only or overdue:
        query = query.where(col(ServiceChangeRow.done_on).is_(None))
    if overdue:
        query = query.where(col(ServiceChangeRow.due_on) < today)
    rows = session.exec(query.order_by(col(ServiceChangeRow.due_on),
                                       col(ServiceChangeRow.id))).all()
    return ([r for r in rows if r.done_on is None]
            + sorted((r for r in rows if r.done_on is not None),
                     key=lambda r: (r.done_on, r.id or 0), reverse=True))


def record_satisfaction(session: Session, data: SatisfactionIn, by: str) -> SatisfactionRow:
    """Record satisfaction with complaint handling for a period; the same period replaces.

    Raises:
        LearningError: Dates out of order, more satisfied than surveyed, a period that
            overlaps another already recorded, or an unknown member of staff.
    """
    _checked(data)
    if data.period_end < data.period_start:
        raise LearningError(f"the period ends ({data.period_end.isoformat()}) before it "
                            f"starts ({data.period_start.isoformat()}): swap --start and --end")
    if data.satisfied > data.surveyed:
        raise LearningError(f"{data.satisfied:,} satisfied of {data.surveyed:,} surveyed: "
                            "satisfied can be at most the number surveyed")
    landlord = landlord_of(session, data.landlord)
    who = check_staff(session, by)
    same = (SatisfactionRow.landlord == landlord,
            SatisfactionRow.period_start == data.period_start,
            SatisfactionRow.period_end == data.period_end)
    clash = session.exec(select(SatisfactionRow).where(
        SatisfactionRow.landlord == landlord,
        col(SatisfactionRow.period_start) <= data.period_end,
        col(SatisfactionRow.period_end) >= data.period_start)).all()
    for other in clash:
        if (other.period_start, other.period_end) != (data.period_start, data.period_end):
            raise LearningError(
                f"{landlord}'s results for {other.period_start.isoformat()} to "
                f"{other.period_end.isoformat()} overlap this period: record that period "
                "again to replace it, or periods that do not overlap", 409)
    row = session.exec(select(SatisfactionRow).where(*same)).first()
    if row is None:
        row = SatisfactionRow(landlord=landlord, period_start=data.period_start,
                              period_end=data.period_end, surveyed=0, satisfied=0,
                              recorded_by=who)
    row.surveyed, row.satisfied = data.surveyed, data.satisfied
    row.source = data.source or ""
    row.recorded_by, row.recorded_at = who, utcnow()
    session.add(row)
    session.commit()
    log.info("satisfaction_recorded", satisfaction_id=row.id)
    return row


def list_satisfaction(session: Session, landlord: str | None = None) -> list[SatisfactionRow]:
    """Satisfaction results recorded, by landlord and period."""
    query = select(SatisfactionRow)
    if landlord:
        query = query.where(SatisfactionRow.landlord == landlord)
    return list(session.exec(query.order_by(col(SatisfactionRow.landlord),
                                            col(SatisfactionRow.period_start))).all())


def parse_in(model: type[BaseModel], data: dict[str, Any]) -> Any:
    """``data`` as ``model``, or a refusal naming each field wrong (never quoting it)."""
    from complaints.staff import one_line

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise LearningError(one_line(exc)) from None
