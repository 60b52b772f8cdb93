"""The self-assessment evidence pack: what the records show for each Code provision.

For each provision the system enforces or records, the pack counts the cases it applies
to in the period, how many met it, and lists the exceptions with their references (up to
the report's limit, worst first), so that the annual self-assessment form can cite
evidence rather than assertion. Every count is one SQL aggregate; only the listed
exceptions come back as rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    exists,
    func,
    or_,
    select,
    true,
    union_all,
)

from complaints.reports.model import EvidenceItem, ExceptionRow, pct
from complaints.reports.queries import (
    ACTIONS,
    COMPLAINTS,
    EXTENSIONS,
    NOT_VOIDED,
    RESPONSES,
    A,
    C,
    E,
    F,
    R,
    ReportOptions,
    count_if,
    instant_in,
    responses_in_period,
    scoped,
    within_extension,
)
from complaints.workdays import WorkingCalendar
from models.tables import AuditRow, LetterRow, OmbudsmanDetailsRow, RefusalRow

__all__ = ["evidence_pack"]

L = LetterRow.__table__.c  # type: ignore[attr-defined]
O = OmbudsmanDetailsRow.__table__.c  # type: ignore[attr-defined]  # noqa: E741

#: The letter kind that carries each stage's response.
_RESPONSE_LETTER = {1: "stage1_response", 2: "final_response"}


def _item(provision: str, title: str, requirement: str, measure: str, cases: int, met: int,
          exceptions_total: int, exceptions: Sequence[ExceptionRow]) -> EvidenceItem:
    return EvidenceItem(provision=provision, title=title, requirement=requirement,
                        measure=measure, cases=cases, met=met, pct_met=pct(met, cases),
                        exceptions_total=exceptions_total, exceptions=list(exceptions))


def _wd(calendar: WorkingCalendar, start: dt.date, end: dt.date) -> int:
    return calendar.working_days_between(start, end)


def _exceptions(db: Connection, query: Select[Any], limit: int | None,
                describe: Callable[[Any], ExceptionRow], *, total: int) -> list[ExceptionRow]:
    """The first ``limit`` rows of ``query``, described; none read when ``total`` is 0.

    ``total`` is the item's count of exceptions, already worked out: a list's query reads
    the same rows as its count did (most have no index to stop early by), so a provision
    met in every case costs one read, not two.
    """
    if total == 0:
        return []
    return [describe(row) for row in db.execute(query.limit(limit))]


def _records(db: Connection, options: ReportOptions) -> EvidenceItem:
    """5.12: every response issued in the period is on record with its letter."""
    cases = met = 0
    missing: list[Any] = []
    for stage, kind in _RESPONSE_LETTER.items():
        # IN (subquery) rather than a correlated EXISTS: one hashed lookup table, not a
        # probe per response (on PostgreSQL several times faster for a large year).
        letter = R.reference.in_(select(L.reference).where(L.stage == stage, L.kind == kind))
        n, with_letter = db.execute(responses_in_period(options, func.count(), count_if(letter))
                                    .where(R.stage == stage)).one()
        cases, met = cases + int(n), met + int(with_letter)
        if int(n) > int(with_letter):
            missing.append(responses_in_period(options, R.reference, R.stage, R.responded_on)
                           .where(R.stage == stage, ~letter))
    logged = db.execute(select(func.count()).where(
        C.landlord == options.policy.landlord, NOT_VOIDED,
        C.received_on.between(options.period.start, options.period.end))).scalar_one()
    listed: list[ExceptionRow] = []
    if missing:
        both = union_all(*missing).subquery()
        listed = _exceptions(
            db, select(both).order_by(both.c.responded_on, both.c.reference), options.limit,
            lambda r: ExceptionRow(reference=r[0], detail=f"stage {r[1]} response of "
                                   f"{r[2].isoformat()} has no letter on record"),
            total=cases - met)
    return _item("5.12", "Records",
                 "A full record of each complaint: the complaint and date received, all "
                 "correspondence, and the outcome at each stage.",
                 f"{logged} complaints logged with date received, channel and category; "
                 "stage responses issued in the period with their decision and the letter "
                 "sent on record", cases, met, cases - met, listed)


def _acknowledged(db: Connection, options: ReportOptions, stage: int) -> EvidenceItem:
    """6.2 / 6.11: acknowledged within the limit (late ones and overdue ones listed)."""
    period, as_of = options.period, options.as_of
    calendar = WorkingCalendar.for_policy(options.policy)
    if stage == 1:
        start, done, due = C.received_on, C.acknowledged_on, C.acknowledgement_due
        eligible = C.excluded != true()
        declined = C.declined_at.is_not(None)
        limit_days = options.policy.limits.stage1_acknowledgement
    else:
        start, done, due = (C.escalation_requested_on, C.stage2_acknowledged_on,
                            C.stage2_acknowledgement_due)
        declined = C.escalation_refused == true()
        eligible = ~declined
        limit_days = options.policy.limits.stage2_acknowledgement
    mine = and_(C.landlord == options.policy.landlord, NOT_VOIDED,
                start.between(period.start, period.end))
    acked = and_(done.is_not(None), done <= as_of, eligible)
    late = and_(acked, done > due)
    overdue = and_(or_(done.is_(None), done > as_of), ~declined, eligible,
                   C.withdrawn_at.is_(None), C.referred_to_ombudsman_at.is_(None), due < as_of)
    acked_n, on_time, overdue_n = db.execute(select(
        count_if(acked), count_if(and_(acked, done <= due)), count_if(overdue))
        .where(mine)).one()
    what = "received" if stage == 1 else "escalation requested"

    def describe(row: Any) -> ExceptionRow:
        reference, started, due_on, done_on = row
        if done_on is None or done_on > as_of:
            return ExceptionRow(reference=reference, detail=(
                f"{what} {started.isoformat()}, due {due_on.isoformat()}, not acknowledged "
                f"by {as_of.isoformat()}"))
        return ExceptionRow(reference=reference, detail=(
            f"{what} {started.isoformat()}, due {due_on.isoformat()}, acknowledged "
            f"{done_on.isoformat()} ({_wd(calendar, started, done_on)} working days)"))

    listed = _exceptions(db, select(C.reference, start, due, done).where(
        mine, or_(late, overdue)).order_by(due, C.reference), options.limit, describe,
        total=int(acked_n) + int(overdue_n) - int(on_time))
    cases = int(acked_n) + int(overdue_n)
    title = ("Stage 1 acknowledgement" if stage == 1 else "Stage 2 acknowledgement")
    requirement = (f"Complaints acknowledged, defined and logged within {limit_days} working "
                   "days of receipt (Code: 5)." if stage == 1 else
                   f"Escalation requests acknowledged within {limit_days} working days of "
                   "the request (Code: 5).")
    return _item("6.2" if stage == 1 else "6.11", title, requirement,
                 f"{'complaints received' if stage == 1 else 'escalations requested'} in the "
                 f"period, acknowledged by {as_of.isoformat()} or overdue then",
                 cases, int(on_time), cases - int(on_time), listed)


def _responded(db: Connection, options: ReportOptions, stage: int) -> EvidenceItem:
    """6.3 / 6.14: stage responses within the Code timescale (extensions per 6.4 / 6.15)."""
    cases, met = db.execute(responses_in_period(options, func.count(), count_if(within_extension()))
                            .where(R.stage == stage)).one()
    limit_days = (options.policy.limits.stage1_response if stage == 1
                  else options.policy.limits.stage2_response)

    def describe(row: Any) -> ExceptionRow:
        reference, start, base, final, done, taken, days = row
        extended = f" (extended {days} working days to {final.isoformat()})" if days else ""
        return ExceptionRow(reference=reference, detail=(
            f"clock from {start.isoformat()}, due {base.isoformat()}{extended}, responded "
            f"{done.isoformat()} after {taken} working days"))

    listed = _exceptions(db, responses_in_period(
        options, R.reference, R.clock_start, R.due_base, R.due_final, R.responded_on,
        R.working_days_taken, R.extension_days).where(R.stage == stage, ~within_extension())
        .order_by(R.responded_on, R.reference), options.limit, describe,
        total=int(cases) - int(met))
    requirement = (f"Stage 1 responses within {limit_days} working days of the "
                   "acknowledgement (Code: 10), or within an extension that meets 6.4."
                   if stage == 1 else
                   f"Stage 2 responses within {limit_days} working days of the "
                   "acknowledgement (Code: 20), or within an extension that meets 6.15.")
    return _item("6.3" if stage == 1 else "6.14",
                 "Stage 1 response" if stage == 1 else "Stage 2 final response", requirement,
                 f"stage {stage} responses issued in the period", int(cases), int(met),
                 int(cases) - int(met), listed)


def _extension_cap(db: Connection, options: ReportOptions, stage: int) -> EvidenceItem:
    """6.4 / 6.15: extensions within the cap, or with a good reason recorded."""
    cap = options.policy.extension_cap(stage)
    extended = and_(R.stage == stage, R.extension_days > 0)
    cases, met, beyond = db.execute(responses_in_period(
        options, func.count(), count_if(R.extension_within_code == true()),
        count_if(and_(R.extension_days > cap, R.extension_within_code == true())))
        .where(extended)).one()
    listed = _exceptions(db, responses_in_period(options, R.reference, R.extension_days)
                         .where(extended, R.extension_within_code != true())
                         .order_by(R.extension_days.desc(), R.reference), options.limit,
                         lambda r: ExceptionRow(reference=r[0], detail=(
                             f"extended {r[1]} working days (cap {cap}) with no good "
                             "reason recorded")), total=int(cases) - int(met))
    return _item("6.4" if stage == 1 else "6.15", f"Stage {stage} extensions",
                 f"An extension of no more than {cap} working days without good reason "
                 f"(Code: {10 if stage == 1 else 20}); the resident told the reason and the "
                 "new date.",
                 f"extended stage {stage} responses issued in the period ({int(beyond)} "
                 f"beyond {cap} working days with a good reason recorded)", int(cases),
                 int(met), int(cases) - int(met), listed)


def _ombudsman_given(db: Connection, options: ReportOptions, stage: int) -> EvidenceItem:
    """6.5 / 6.16: the Ombudsman's details given with every extension."""
    given = exists().where(O.reference == E.reference, O.stage == E.stage,
                           O.extension_seq == E.stage_seq)
    where = (E.stage == stage, instant_in(E.granted_at, options.period))
    cases, met = db.execute(scoped(options, EXTENSIONS, E.reference, func.count(),
                                   count_if(given)).where(*where)).one()
    listed = _exceptions(db, scoped(options, EXTENSIONS, E.reference, E.reference, E.stage_seq,
                                    E.granted_at)
                         .where(*where, ~given).order_by(E.granted_at, E.reference),
                         options.limit, lambda r: ExceptionRow(reference=r[0], detail=(
                             f"extension {r[1]} granted {r[2]:%Y-%m-%d}: no record of the "
                             "Ombudsman's contact details given")), total=int(cases) - int(met))
    return _item("6.5" if stage == 1 else "6.16", f"Ombudsman details with stage {stage} "
                 "extensions", "When told of an extension the resident is given the "
                 "Housing Ombudsman's contact details.",
                 f"stage {stage} extensions granted in the period", int(cases), int(met),
                 int(cases) - int(met), listed)


def _different_person(db: Connection, options: ReportOptions) -> EvidenceItem:
    """6.13: stage 2 handled by someone not involved at stage 1.

    The same test as the workflow's: nobody who acknowledged, handled, extended or answered
    stage 1 acknowledges or answers stage 2 (staff ids compared without regard to case).
    """
    stage1 = RESPONSES.alias("stage1")
    audit = AuditRow.__table__.c  # type: ignore[attr-defined]

    def involved(who: Any) -> ColumnElement[bool]:
        person = func.lower(who)
        return or_(
            person == func.lower(C.stage1_handler),
            exists().where(stage1.c.reference == R.reference, stage1.c.stage == 1,
                           func.lower(stage1.c.by) == person),
            exists().where(E.reference == R.reference, E.stage == 1,
                           func.lower(E.granted_by) == person),
            exists().where(audit.reference == R.reference, audit.action == "acknowledge",
                           audit.accepted == true(), func.lower(audit.by) == person))

    same = or_(involved(C.stage2_handler), involved(R.by))
    cases, met = db.execute(responses_in_period(options, func.count(), count_if(~same),
                                                complaints=True).where(R.stage == 2)).one()
    listed = _exceptions(db, responses_in_period(options, R.reference, C.stage1_handler,
                                                 C.stage2_handler, R.by, complaints=True)
                         .where(R.stage == 2, same).order_by(R.responded_on, R.reference),
                         options.limit, lambda r: ExceptionRow(reference=r[0], detail=(
                             f"stage 1 handled by {r[1]}; stage 2 acknowledged by {r[2]} "
                             f"and answered by {r[3]}, someone involved at stage 1")),
                         total=int(cases) - int(met))
    return _item("6.13", "Stage 2 by a different person",
                 "The stage 2 review is handled by someone not involved at stage 1.",
                 "stage 2 responses issued in the period", int(cases), int(met),
                 int(cases) - int(met), listed)


def _refused(db: Connection, options: ReportOptions, kind: str) -> EvidenceItem:
    """2.x / 5.11: refusals on recorded grounds, explained in a letter."""
    period = options.period
    letter_kind = "exclusion" if kind == "complaint" else "escalation_refusal"
    refused = (select(F.reference).select_from(RefusalRow.__table__)  # type: ignore[attr-defined]
               .where(F.kind == kind, F.decided_on.between(period.start, period.end))
               .distinct().subquery())
    letter = exists().where(L.reference == refused.c.reference, L.kind == letter_kind)
    joined = refused.join(COMPLAINTS, refused.c.reference == C.reference)
    mine = and_(C.landlord == options.policy.landlord, NOT_VOIDED)
    cases, met = db.execute(select(func.count(), count_if(letter)).select_from(joined)
                            .where(mine)).one()
    listed = _exceptions(db, select(refused.c.reference).select_from(joined)
                         .where(mine, ~letter).order_by(refused.c.reference), options.limit,
                         lambda r: ExceptionRow(reference=r[0], detail=(
                             f"refused with no {letter_kind.replace('_', ' ')} letter on "
                             "record")), total=int(cases) - int(met))
    if kind == "complaint":
        return _item("2.1-2.5", "Complaints refused (exclusions)",
                     "A complaint is refused only on a ground the policy sets out, decided "
                     "on its merits, and the decision and the right to take it to the "
                     "Ombudsman explained in writing.",
                     "complaints refused in the period, with the exclusion letter on record",
                     int(cases), int(met), int(cases) - int(met), listed)
    return _item("5.11 / 8.1(b)", "Escalations refused",
                 "Escalation refused only on a valid section 2 ground, explained in "
                 "writing; refusals reported with their reasons.",
                 "escalations refused in the period, with the refusal letter on record",
                 int(cases), int(met), int(cases) - int(met), listed)


def _actions_done(db: Connection, options: ReportOptions) -> EvidenceItem:
    """6.6 / 7.3: outstanding actions completed by the date promised."""
    period, as_of = options.period, options.as_of
    in_period = A.due_by.between(period.start, period.end)
    on_time = and_(A.completed_on.is_not(None), A.completed_on <= A.due_by)
    cases, met = db.execute(scoped(options, ACTIONS, A.reference, func.count(),
                                   count_if(on_time)).where(in_period)).one()

    def describe(row: Any) -> ExceptionRow:
        reference, action_id, due, completed = row
        if completed is None or completed > as_of:
            state = f"not completed by {as_of.isoformat()}"
        else:
            state = f"completed {completed.isoformat()}"
        return ExceptionRow(reference=reference,
                            detail=f"action {action_id} due {due.isoformat()}, {state}")

    listed = _exceptions(db, scoped(options, ACTIONS, A.reference, A.reference, A.action_id,
                                    A.due_by, A.completed_on).where(in_period, ~on_time)
                         .order_by(A.due_by, A.reference, A.action_id), options.limit,
                         describe, total=int(cases) - int(met))
    return _item("6.6 / 7.3", "Outstanding actions",
                 "Actions promised in a response are tracked and completed, the resident "
                 "kept updated.", "actions due in the period", int(cases), int(met),
                 int(cases) - int(met), listed)


def evidence_pack(db: Connection, options: ReportOptions) -> list[EvidenceItem]:
    """Draw the evidence for each provision from the records, in Code order.

    Args:
        db: An open connection to the complaints database.
        options: The period, policy, as-of date and how many exceptions to list.

    Returns:
        One item per provision: cases, how many met it, and the exceptions.

    """
    return [
        _refused(db, options, "complaint"), _refused(db, options, "escalation"),
        _records(db, options),
        _acknowledged(db, options, 1), _responded(db, options, 1),
        _extension_cap(db, options, 1), _ombudsman_given(db, options, 1),
        _acknowledged(db, options, 2), _different_person(db, options),
        _responded(db, options, 2), _extension_cap(db, options, 2),
        _ombudsman_given(db, options, 2), _actions_done(db, options),
    ]
