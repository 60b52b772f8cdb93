"""The report's passes: each adds up a period's rows of a tally, in small groups.

A report over a large landlord's year was dominated by reading the year's complaints,
responses and remedies. Their counts are now kept as the rows are written (the tallies of
:mod:`models.tallies`, kept by triggers), and each pass here adds up the period's tally
rows, grouped by the few low-cardinality columns the figures break down by (channel,
team, tenure, month, stage, policy, handler): a few hundred or thousand groups, which
:mod:`complaints.reports.figures` adds up in Python into each figure. Every count is
still worked out by the database (``SUM``); no case row is loaded into Python.

Still read from the tables themselves, through indexes: the complaints escalated after
the as-of date (taken off the tallies' "escalated", which counts every escalation), and
the stage responses offering money (distinct values do not add up).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    case,
    extract,
    func,
    select,
)

from complaints.reports.queries import (
    E2,
    FINANCIAL,
    MT,
    REMEDIES,
    TO,
    C,
    K,
    M,
    Q,
    R,
    ReportOptions,
    T,
    X,
    count_if,
    instant_in,
    mine,
    scoped,
    sum_if,
)

__all__ = ["REMEDY_COUNTS", "RESPONSE_COUNTS", "Groups", "acknowledgement_pass", "day_pass",
           "escalation_pass", "missed_responses", "received_pass", "remedy_pass",
           "response_pass"]

#: Rows of a pass: one dict per group, its keys then its counts.
Groups = list[dict[str, Any]]

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


def received_pass(db: Connection, options: ReportOptions, *,
                  escalated_by_as_of: bool = True) -> Groups:
    """The landlord's complaints received in the period, from the complaint tally.

    Grouped by channel, category, tenure, policy file and month received. Counts: ``logged`` (all),
    ``refused`` (on receipt), ``withdrawn``, ``escalated`` (escalation requested by the
    as-of date) and ``imported`` (from ``complaints import``). The tally counts every
    escalation; those requested after the as-of date are taken off (see
    :func:`_escalated_later`), unless ``escalated_by_as_of`` is False (CH01 alone, as for
    the year before, does not need them). The acknowledgements are counted by
    :func:`acknowledgement_pass`.
    """
    period = options.period
    keys = (K.channel, K.category, func.nullif(K.tenure, ""), K.policy_name,
            extract("year", K.received_on), extract("month", K.received_on))
    query = (select(*keys, *_added(K.logged, K.refused, K.withdrawn, K.escalated, K.imported))
             .where(K.landlord == options.policy.landlord,
                    K.received_on.between(period.start, period.end))
             .group_by(*keys).having(func.sum(K.logged) != 0))
    names = ("channel", "category", "tenure", "policy", "year", "month")
    groups = _rows(db, query, (*names, "logged", "refused", "withdrawn", "escalated",
                               "imported"))
    if not escalated_by_as_of:
        return groups
    later = _escalated_later(db, options, (C.channel, C.category, C.tenure, C.policy_name,
                                           extract("year", C.received_on),
                                           extract("month", C.received_on)),
                             C.received_on.between(period.start, period.end))
    for group in groups:
        group["escalated"] -= later.get(tuple(group[k] for k in names), 0)
    return groups


def _escalated_later(db: Connection, options: ReportOptions, keys: tuple[Any, ...],
                     counted: ColumnElement[bool]) -> dict[tuple[Any, ...], int]:
    """The landlord's complaints meeting ``counted`` escalated after the as-of date, per key.

    Only the escalation date is in the WHERE clause, so that the database reads the
    complaints through its index (those escalated after the as-of date: few, for a
    report as at the end of its period); the landlord and the period are counted in the
    FILTER, where an index on them would make it read the whole period instead.
    """
    query = (select(*keys, count_if(and_(mine(options), counted)))
             .where(C.escalation_requested_on > options.as_of).group_by(*keys))
    return {tuple(row[:-1]): int(row[-1]) for row in db.execute(query) if row[-1]}


def acknowledgement_pass(db: Connection, options: ReportOptions) -> dict[str, int]:
    """Stage 1 acknowledgements of the complaints received in the period, as at the as-of date.

    From the acknowledgement tally: ``acknowledged`` (by the as-of date, not excluded) and
    ``acknowledged_within`` (by its due date), ``unacknowledged_overdue`` (not
    acknowledged by the as-of date, not declined, withdrawn or referred, due before it).
    """
    period, as_of = options.period, options.as_of
    acked = and_(Q.acknowledged_on <= as_of, Q.is_excluded == 0)
    query = select(*(sum_if(Q.complaints, condition) for condition in (
        acked, and_(acked, Q.within_limit == 1),
        and_(Q.acknowledged_on > as_of, Q.pending == 1, Q.acknowledgement_due < as_of)))
    ).where(Q.landlord == options.policy.landlord,
            Q.received_on.between(period.start, period.end))
    names = ("acknowledged", "acknowledged_within", "unacknowledged_overdue")
    return dict(zip(names, (int(n) for n in db.execute(query).one()), strict=True))


def escalation_pass(db: Connection, options: ReportOptions) -> Groups:
    """The landlord's complaints escalated, or taken on by order, in the period.

    From the escalation and take-on tallies, grouped by tenure, policy file and month
    escalated (or taken on). Counts: ``requested`` (escalation requested in the period),
    ``stage2`` (of those, not refused), ``acknowledged`` (by the as-of date) and
    ``acknowledged_within`` (by its due date), ``unacknowledged_overdue`` (not refused,
    still open, due before the as-of date), and ``taken_on`` (a declined complaint taken
    on by order in the period). An escalation group has no take-on month, and a take-on
    group no escalation month.
    """
    period, as_of, landlord = options.period, options.as_of, options.policy.landlord
    acked = E2.stage2_acknowledged_on <= as_of
    not_refused = E2.is_refused == 0
    keys = (func.nullif(E2.tenure, ""), E2.policy_name,
            extract("year", E2.escalation_requested_on),
            extract("month", E2.escalation_requested_on))
    query = (select(*keys, *(sum_if(E2.requests, condition) for condition in (
        None, not_refused, acked, and_(acked, E2.within_limit == 1),
        and_(~acked, not_refused, E2.still_open == 1,
             E2.stage2_acknowledgement_due < as_of))))
             .where(E2.landlord == landlord,
                    E2.escalation_requested_on.between(period.start, period.end))
             .group_by(*keys).having(func.sum(E2.requests) != 0))
    counts = ("requested", "stage2", "acknowledged", "acknowledged_within",
              "unacknowledged_overdue")
    groups = [group | {"taken_year": None, "taken_month": None, "taken_on": 0}
              for group in _rows(db, query, ("tenure", "policy", "year", "month", *counts))]
    keys = (func.nullif(TO.tenure, ""), TO.policy_name, extract("year", TO.taken_on_on),
            extract("month", TO.taken_on_on))
    query = (select(*keys, *_added(TO.complaints))
             .where(TO.landlord == landlord, TO.taken_on_on.between(period.start, period.end))
             .group_by(*keys).having(func.sum(TO.complaints) != 0))
    groups += [group | {"year": None, "month": None} | dict.fromkeys(counts, 0)
               for group in _rows(db, query, ("tenure", "policy", "taken_year",
                                              "taken_month", "taken_on"))]
    return groups


def _added(*columns: Any) -> list[ColumnElement[Any]]:
    """Each of ``columns`` added up over the rows (:func:`sum_if` with no condition)."""
    return [sum_if(column) for column in columns]


def _tallied(options: ReportOptions, tally: Any, *columns: Any) -> Select[Any]:
    """SELECT ``columns`` FROM a response tally's rows of the landlord's period."""
    period = options.period
    return select(*columns).where(tally.landlord == options.policy.landlord,
                                  tally.responded_on.between(period.start, period.end))


def response_pass(db: Connection, options: ReportOptions) -> Groups:
    """Every count of the period's responses, from the response tally.

    Grouped by stage, tenure and policy file: a handful of groups, which the figures per
    stage, per tenure, the policies named and the late total add up. Counts (see
    :data:`RESPONSE_COUNTS`): ``days`` is the working days taken added up (the mean is
    worked out from it), ``max`` the most taken, ``escalated`` (stage 1 only: the other
    stage's is left as the tally has it, and not read) the responses whose complaint was
    escalated by the as-of date: the tally counts every escalation, and those requested
    after the as-of date (an index seek on the escalation date, then the complaint's
    stage 1 responses) are taken off.
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
    # Driven from the complaints escalated after the as-of date, as in _escalated_later
    # (only the escalation date in the WHERE clause), each one's responses counted by a
    # correlated subquery: a join lets the planner start from the year's responses. Only
    # stage 1's: "escalated" means a stage 1 response was taken further, and the figures
    # read no other stage's.
    period = options.period
    later = (select(func.count()).where(R.reference == C.reference, R.stage == 1,
                                        R.responded_on.between(period.start, period.end))
             .scalar_subquery())
    query = (select(C.tenure, C.policy_name, func.sum(later).filter(mine(options)))
             .where(C.escalation_requested_on > options.as_of)
             .group_by(C.tenure, C.policy_name))
    for tenure, policy, n in db.execute(query):
        for group in groups:
            if (group["stage"], group["tenure"], group["policy"]) == (1, tenure, policy):
                group["escalated"] -= _int(n)
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
    """The period's responses per month issued, stage and working days taken, from the tally.

    The month-by-month figures add them up per month, and the working-days histogram
    (with the median and 90th percentile worked out from it) adds them up per stage: a
    few hundred groups.
    """
    keys = (extract("year", T.responded_on), extract("month", T.responded_on), T.stage,
            T.working_days)
    query = (_tallied(options, T, *keys, *_added(T.responses, T.within_base,
                                                 T.within_extension, T.within_code))
             .group_by(*keys).having(func.sum(T.responses) != 0))
    return _rows(db, query, ("year", "month", "stage", "working_days", "responses",
                             "within_base", "within_extension", "within_code"))


def remedy_pass(db: Connection, options: ReportOptions) -> Groups:
    """Remedies offered in responses issued in the period, per kind, from the remedy tally.

    Counts (see :data:`REMEDY_COUNTS`): ``offered``, ``amount_pence`` (added up),
    ``financial_responses`` (of the financial group: the responses offering money, each
    counted once as (reference, stage, instant issued), read from the remedies themselves
    through their index, as distinct values do not add up), and by the date promised against the
    as-of date ``due_past``, ``due_ahead`` and ``due_none`` (promised with no date:
    responses before casework revision 2). The remedies figure takes every kind; the
    payments figure takes the financial ones.
    """
    as_of = options.as_of
    dated = MT.remedies - MT.undated
    query = (select(MT.kind, *_added(MT.remedies, MT.amount_pence))
             .add_columns(sum_if(MT.remedies, MT.due_by < as_of),
                          sum_if(dated, MT.due_by >= as_of))
             .add_columns(*_added(MT.undated))
             .where(MT.landlord == options.policy.landlord,
                    instant_in(MT.offered_hour, options.period))
             .group_by(MT.kind).having(func.sum(MT.remedies) != 0))
    groups = _rows(db, query, ("kind", "offered", "amount_pence", "due_past", "due_ahead",
                               "due_none"))
    # Each response once: its remedies share the instant it was issued (offered_at), so
    # (offered_at, reference, stage) names it, in the order of the remedies' index: the
    # duplicates come side by side and are dropped as the index is read, where DISTINCT
    # (reference, stage) made both databases hash or sort the year's financial remedies.
    responses = (scoped(options, REMEDIES, M.reference, M.offered_at, M.reference, M.stage)
                 .where(M.kind == FINANCIAL, instant_in(M.offered_at, options.period))
                 .distinct().subquery("financial"))
    financial = db.execute(select(func.count()).select_from(responses)).scalar_one()
    for group in groups:
        group["financial_responses"] = int(financial) if group["kind"] == "financial" else 0
    return groups
