"""One case as staff see it: its records from the database, and what they may do now.

Shared by the HTTP API and the web app. The records (parties, deadlines with how each was
computed, letters, documents, remedies, actions, the audit trail) come from the read
model; the live state comes from the workflow's query where the caller has Temporal.
:func:`action_options` says, for each action the state allows, whether this person may
take it and, if not, why, so that a page shows a reason instead of a dead button.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel
from sqlmodel import Session, col, select

from complaints.caseindex import CaseSummary, _calendar, _due_date, rag
from complaints.identity import Identity
from domain.lifecycle import TRIGGER_TEXT
from domain.machine import allowed_triggers
from domain.permissions import CaseRelation, Matrix
from models.actions import ACTION_BY_TRIGGER
from models.tables import (
    ActionRow,
    AuditRow,
    ComplaintRow,
    DeadlineRow,
    DocumentRow,
    LetterRow,
    PartyRow,
    RemedyRow,
    StaffRow,
)

__all__ = ["ActionOption", "CaseRecords", "action_options", "case_records", "summary_of"]


class DeadlineOut(BaseModel):
    """A deadline, with its date, working days left and how it was computed."""

    key: str
    kind: str
    stage: int
    label: str
    provision: str
    start: dt.date
    due: dt.date
    status: str
    working_days_left: int | None
    computed: str


class LetterOut(BaseModel):
    """A letter sent (its body is fetched on its own, and the fetch is recorded)."""

    letter_id: str
    kind: str
    stage: int
    subject: str
    created_at: dt.datetime
    has_pdf: bool


class DocumentOut(BaseModel):
    """A document on the case file."""

    document_id: str
    file_name: str
    media_type: str
    size_bytes: int
    kind: str
    direction: str
    received_on: dt.date | None
    added_by: str | None
    added_at: dt.datetime


class AuditOut(BaseModel):
    """One entry of the audit trail."""

    seq: int
    at: dt.datetime
    action: str
    by: str
    from_state: str
    to_state: str
    accepted: bool
    detail: str


class PartyOut(BaseModel):
    """A party to the complaint (personal data: viewing is recorded)."""

    role: str
    name: str
    address: list[str]
    email: str | None
    phone: str | None


class RemedyOut(BaseModel):
    """A remedy offered."""

    stage: int
    kind: str
    description: str
    amount_pence: int | None
    due_by: dt.date | None
    decision: str


class ActionItemOut(BaseModel):
    """An action promised to the resident, and whether it is done."""

    action_id: str
    stage: int
    description: str
    due_by: dt.date
    owner: str | None
    completed_on: dt.date | None


class ActionOption(BaseModel):
    """A staff action the case's state allows, and whether this person may take it."""

    trigger: str
    title: str
    allowed: bool
    reason: str | None


class CaseRecords(BaseModel):
    """A case's records from the database."""

    summary: CaseSummary
    channel: str
    description: str
    outcomes_sought: list[str]
    parties: list[PartyOut]
    deadlines: list[DeadlineOut]
    letters: list[LetterOut]
    documents: list[DocumentOut]
    remedies: list[RemedyOut]
    actions: list[ActionItemOut]
    audit: list[AuditOut]
    #: The day (London) it was imported from the landlord's previous system; None for a
    #: live case. An imported case has no workflow: no live state, no actions.
    imported_on: dt.date | None = None


def summary_of(session: Session, row: ComplaintRow, today: dt.date) -> CaseSummary:
    """The list entry of one case."""
    team = None
    if row.handler_id:
        staff = session.exec(select(StaffRow.team).where(
            StaffRow.staff_id == row.handler_id)).first()
        team = staff
    due = _due_date(row.next_deadline)
    left = (_calendar(row.policy_name).working_days_between(today, due)
            if due is not None else None)
    return CaseSummary(
        reference=row.reference, landlord=row.landlord, policy_name=row.policy_name,
        state=row.state, stage=row.stage, category=row.category, handler_id=row.handler_id,
        handler_team=team, received_on=row.received_on, next_due=due,
        working_days_left=left, rag=rag(left, row.overdue), overdue=row.overdue)


def _deadline(row: DeadlineRow, policy_name: str, today: dt.date) -> DeadlineOut:
    calendar = _calendar(policy_name)
    span = calendar.working_days_between(row.start, row.due)
    left = calendar.working_days_between(today, row.due) if row.status == "pending" else None
    computed = (f"{span} working days after {row.start.isoformat()} (Monday to Friday, "
                f"less {calendar.nation.value} bank holidays), under {row.provision}")
    return DeadlineOut(key=row.key, kind=row.kind, stage=row.stage, label=row.label,
                       provision=row.provision, start=row.start, due=row.due,
                       status=row.status, working_days_left=left, computed=computed)


def _all(session: Session, table: Any, reference: str, *order: Any) -> list[Any]:
    return list(session.exec(select(table).where(col(table.reference) == reference)
                             .order_by(*order)))


def case_records(session: Session, reference: str, today: dt.date) -> CaseRecords | None:
    """Everything the database holds on a case (None: no such case)."""
    row = session.get(ComplaintRow, reference)
    if row is None:
        return None
    return CaseRecords(
        summary=summary_of(session, row, today), channel=row.channel,
        description=row.description,
        outcomes_sought=[o for o in row.outcomes_sought.split("\n") if o],
        parties=[PartyOut(role=p.role, name=p.name,
                          address=[a for a in p.address.split("\n") if a], email=p.email,
                          phone=p.phone)
                 for p in _all(session, PartyRow, reference, PartyRow.position)],
        deadlines=[_deadline(d, row.policy_name, today)
                   for d in _all(session, DeadlineRow, reference, DeadlineRow.due)],
        letters=[LetterOut(letter_id=x.letter_id, kind=x.kind, stage=x.stage,
                           subject=x.subject, created_at=x.created_at,
                           has_pdf=x.pdf is not None)
                 for x in _all(session, LetterRow, reference, LetterRow.seq)],
        documents=[DocumentOut.model_validate(d, from_attributes=True)
                   for d in _all(session, DocumentRow, reference, DocumentRow.added_at)],
        remedies=[RemedyOut.model_validate(r, from_attributes=True)
                  for r in _all(session, RemedyRow, reference, RemedyRow.stage,
                                RemedyRow.position)],
        actions=[ActionItemOut.model_validate(a, from_attributes=True)
                 for a in _all(session, ActionRow, reference, ActionRow.due_by)],
        audit=[AuditOut.model_validate(a, from_attributes=True)
               for a in _all(session, AuditRow, reference, AuditRow.seq)],
        imported_on=_imported_on(session, row) if row.imported else None)


def _imported_on(session: Session, row: ComplaintRow) -> dt.date:
    """The London day the import run that last wrote ``row`` ran (else the row's making)."""
    from complaints.workdays import LONDON
    from models.imports import ImportedComplaintRow, ImportRunRow

    started = session.exec(select(ImportRunRow.started_at).join(
        ImportedComplaintRow, col(ImportedComplaintRow.run_id) == col(ImportRunRow.id))
        .where(ImportedComplaintRow.reference == row.reference)).first()
    when = started or row.created_at
    return when.astimezone(LONDON).date() if when.tzinfo else when.date()


def action_options(matrix: Matrix, who: Identity, state: str,
                   relation: CaseRelation | None) -> list[ActionOption]:
    """The actions ``state`` allows, each with whether ``who`` may take it and why not.

    The Code's own guards are the workflow's: an action offered here may still be
    refused by the case, and the refusal says why.
    """
    options = []
    for trigger in allowed_triggers(state):
        if trigger not in ACTION_BY_TRIGGER:
            continue
        reason = who.refusal(matrix, trigger, relation)
        if trigger == "assign" and reason is not None \
                and who.refusal(matrix, "claim", relation) is None:
            reason = None  # may claim it: the form takes their own id (assigning others: 403)
        options.append(ActionOption(trigger=trigger, title=TRIGGER_TEXT.get(trigger, trigger),
                                    allowed=reason is None, reason=reason))
    return options
