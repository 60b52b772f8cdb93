"""The report's passes over the data: each reads its rows once and counts in small groups.

A report over a large landlord's year is dominated by how many times it reads the
complaints and responses tables, not by how many figures it works out. So the figures
that read the same rows share one aggregate query here, grouped by the few
low-cardinality columns they break down by (channel, team, tenure, month, stage, policy,
handler): a few hundred or thousand groups, which :mod:`complaints.reports.figures` adds
up in Python into each figure. Every count is still worked out by the database (``COUNT``
and ``SUM``); no case row is loaded into Python.

The responses are not read at all: their counts are kept per day as they are written
(the tallies of :mod:`models.tallies`, kept by triggers), and the passes over them add
up a year's rows of those.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    String,
    and_,
    case,
    cast,
    distinct,
    extract,
    func,
    or_,
    select,
    true,
)

from complaints.reports.queries import (
    REMEDIES,
    C,
    M,
    R,
    ReportOptions,
    T,
    X,
    count_if,
    instant_in,
    mine,
    scoped,
)

__all__ = ["REFUSED_ON_RECEIPT", "REMEDY_COUNTS", "RESPONSE_COUNTS", "Groups", "day_pass",
           "escalation_pass", "missed_responses", "received_pass", "remedy_pass",
           "response_pass"]

#: Rows of a pass: one dict per group, its keys then its counts.
Groups = list[dict[str, Any]]

#: Refused under the exclusions when received: still refused, or taken on later by order
#: (then counted in CH01 on the day taken on, never back in the year received).
REFUSED_ON_RECEIPT = or_(C.excluded == true(), C.taken_on_on.is_not(None))

#: The counts :func:`response_pass` takes per group, in the order they are selected.
RESPONSE_COUNTS = ("responses", "within_base", "within_extension", "within_code", "extended",
                   "extended_within_new_date", "late_final", "days", "max", "upheld",
                   "partly", "not_upheld", "escalated")

#: The counts :func:`remedy_pass` takes per kind, in the order they are selected.
REMEDY_COUNTS = ("offered", "amount_pence", "financial_responses", "due_past", "due_ahead",
                 "due_none")


def _int(value: Any) -> int:
    return int(value or 0)


def _rows(db: Connection, query: Any, names: tuple[str, ...]) -> Groups:
    return [dict(zip(names, row, strict=True)) for row in db.execute(query)]


def received_pass(db: Connection, options: ReportOptions) -> Groups:
    """The landlord's complaints received in the period, in one pass.

    Grouped by channel, category, tenure and month received. Counts: ``logged`` (all),
    ``refused`` (on receipt), ``withdrawn``, ``acknowledged`` (stage 1, by the as-of date,
    not excluded) and ``acknowledged_within`` (by its due date), ``unacknowledged_overdue``
    (not acknowledged, not declined, still open, due before the as-of date) and
    ``escalated`` (escalation requested by the as-of date), ``imported`` (from
    ``complaints import``).
    """
    period, as_of = options.period, options.as_of
    acked = and_(C.acknowledged_on.is_not(None), C.acknowledged_on <= as_of)
    open_case = and_(C.withdrawn_at.is_(None), C.referred_to_ombudsman_at.is_(None))
    keys = (C.channel, C.category, C.tenure, extract("year", C.received_on),
            extract("month", C.received_on))
    query = select(
        *keys, func.count(), count_if(REFUSED_ON_RECEIPT),
        count_if(C.withdrawn_at.is_not(None)),
        count_if(and_(acked, C.excluded != true())),
        count_if(and_(acked, C.excluded != true(), C.acknowledged_on <= C.acknowledgement_due)),
        count_if(and_(~acked, C.declined_at.is_(None), open_case,
                      C.acknowledgement_due < as_of)),
        count_if(and_(C.escalation_requested_on.is_not(None),
                      C.escalation_requested_on <= as_of)),
        count_if(C.imported == true()),
    ).where(mine(options), C.received_on.between(period.start, period.end)).group_by(*keys)
    return _rows(db, query, ("channel", "category", "tenure", "year", "month", "logged",
                             "refused", "withdrawn", "acknowledged", "acknowledged_within",
                             "unacknowledged_overdue", "escalated", "imported"))


def escalation_pass(db: Connection, options: ReportOptions) -> Groups:
    """The landlord's complaints escalated, or taken on by order, in the period: one pass.

    Grouped by tenure, month escalated and month taken on. Counts: ``requested``
    (escalation requested in the period), ``stage2`` (of those, not refused),
    ``acknowledged`` (by the as-of date) and ``acknowledged_within`` (by its due date),
    ``unacknowledged_overdue`` (not refused, still open, due before the as-of date), and
    ``taken_on`` (a declined complaint taken on by order in the period). A group's
    escalation month counts only through ``requested``, its take-on month only through
    ``taken_on``.
    """
    period, as_of = options.period, options.as_of
    escalated = C.escalation_requested_on.between(period.start, period.end)
    taken_on = C.taken_on_on.between(period.start, period.end)
    acked = and_(escalated, C.stage2_acknowledged_on.is_not(None),
                 C.stage2_acknowledged_on <= as_of)
    open_case = and_(C.withdrawn_at.is_(None), C.referred_to_ombudsman_at.is_(None))
    keys = (C.tenure, extract("year", C.escalation_requested_on),
            extract("month", C.escalation_requested_on), extract("year", C.taken_on_on),
            extract("month", C.taken_on_on))
    query = select(
        *keys, count_if(escalated), count_if(and_(escalated, C.escalation_refused != true())),
        count_if(acked),
        count_if(and_(acked, C.stage2_acknowledged_on <= C.stage2_acknowledgement_due)),
        count_if(and_(escalated, ~and_(C.stage2_acknowledged_on.is_not(None),
                                       C.stage2_acknowledged_on <= as_of),
                      C.escalation_refused != true(), open_case,
                      C.stage2_acknowledgement_due < as_of)),
        count_if(taken_on),
    ).where(mine(options), or_(escalated, taken_on)).group_by(*keys)
    return _rows(db, query, ("tenure", "year", "month", "taken_year", "taken_month",
                             "requested", "stage2", "acknowledged", "acknowledged_within",
                             "unacknowledged_overdue", "taken_on"))


def _tallied(options: ReportOptions, tally: Any, *columns: Any) -> Select[Any]:
    """SELECT ``columns`` FROM a response tally's rows of the landlord's period."""
    period = options.period
    return select(*columns).where(tally.landlord == options.policy.landlord,
                                  tally.responded_on.between(period.start, period.end))


def _added(*columns: Any) -> list[ColumnElement[Any]]:
    return [func.coalesce(func.sum(column), 0) for column in columns]


def response_pass(db: Connection, options: ReportOptions) -> Groups:
    """Every count of the period's responses, from the response tally.

    Grouped by stage, tenure and policy file: a handful of groups, which the figures per
    stage, per tenure, the policies named and the late total add up. Counts (see
    :data:`RESPONSE_COUNTS`): ``days`` is the working days taken added up (the mean is
    worked out from it), ``max`` the most taken, ``escalated`` the responses whose
    complaint was escalated by the as-of date: the tally counts every escalation, and
    those requested after the as-of date (an index seek on the escalation date, then the
    complaint's responses) are taken off.
    """
    keys = (T.stage, func.nullif(T.tenure, ""), T.policy_name)
    query = _tallied(
        options, T, *keys, *_added(T.responses, T.within_base, T.within_extension,
                                   T.within_code, T.extended, T.extended_within_new_date,
                                   T.late_final, T.working_days * T.responses),
        func.max(case((T.responses > 0, T.working_days))),
        *_added(T.upheld, T.partly_upheld, T.not_upheld, T.escalated),
    ).group_by(*keys).having(func.sum(T.responses) != 0)
    groups = _rows(db, query, ("stage", "tenure", "policy", *RESPONSE_COUNTS))
    # Driven from the complaints escalated after the as-of date (their index), each one's
    # responses counted by a correlated subquery: a join lets the planner start from the
    # year's responses instead, which reads them all.
    period = options.period
    later = [select(func.count()).where(R.reference == C.reference, R.stage == stage,
                                        R.responded_on.between(period.start, period.end))
             .scalar_subquery() for stage in (1, 2)]
    query = (select(C.tenure, C.policy_name, *(func.sum(n) for n in later))
             .where(mine(options), C.escalation_requested_on > options.as_of)
             .group_by(C.tenure, C.policy_name))
    for tenure, policy, *per_stage in db.execute(query):
        for group in groups:
            if (group["tenure"], group["policy"]) == (tenure, policy):
                group["escalated"] -= _int(per_stage[int(group["stage"]) - 1])
    return groups


def missed_responses(db: Connection, options: ReportOptions) -> Groups:
    """The period's responses not within the base or a Code-compliant extended date.

    Grouped by stage, who issued the response and the team (category), from the missed
    response tally.
    """
    keys = (X.stage, X.by, X.category)
    query = (_tallied(options, X, *keys, *_added(X.missed)).group_by(*keys)
             .having(func.sum(X.missed) != 0))
    return _rows(db, query, ("stage", "by", "category", "missed"))


def day_pass(db: Connection, options: ReportOptions) -> Groups:
    """The period's responses per day issued, stage and working days taken, from the tally.

    The month-by-month figures add the days up per month, and the working-days histogram
    (with the median and 90th percentile worked out from it) adds them up per stage.
    """
    keys = (T.responded_on, T.stage, T.working_days)
    query = (_tallied(options, T, *keys, *_added(T.responses, T.within_base,
                                                 T.within_extension, T.within_code))
             .group_by(*keys).having(func.sum(T.responses) != 0))
    return _rows(db, query, ("day", "stage", "working_days", "responses", "within_base",
                             "within_extension", "within_code"))


def remedy_pass(db: Connection, options: ReportOptions) -> Groups:
    """Remedies offered in responses issued in the period, per kind: one pass.

    Counts (see :data:`REMEDY_COUNTS`): ``offered``, ``amount_pence`` (added up),
    ``financial_responses`` (of the financial group: the stage responses offering money,
    reference and stage each counted once; only for that kind, as the distinct values
    cost), and by the date promised against the as-of date ``due_past``, ``due_ahead``
    and ``due_none`` (promised with no date: responses before casework revision 2). The
    remedies figure takes every kind; the payments figure takes the financial ones, so
    the remedies are read once for both.
    """
    as_of = options.as_of
    response = M.reference + ":" + cast(M.stage, String)
    query = scoped(
        options, REMEDIES, M.reference, M.kind, func.count(),
        func.coalesce(func.sum(M.amount_pence), 0),
        func.count(distinct(case((M.kind == "financial", response)))),
        count_if(M.due_by < as_of), count_if(M.due_by >= as_of), count_if(M.due_by.is_(None)),
    ).where(instant_in(M.offered_at, options.period)).group_by(M.kind)
    return _rows(db, query, ("kind", *REMEDY_COUNTS))
