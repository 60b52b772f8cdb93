"""Learning from complaints in the report (Code 8.1, 9): SQL aggregates on both databases.

What the application layer recorded (:mod:`complaints.learning`, tables in
``models.learning``) counted for the report's landlord and period:

- **themes and root causes** of responses issued in the period (a response's date is its
  stage's first response), by name and per month of the response (the trend);
- **year on year**: the same for the period a year earlier, with that period's CH01 and
  strict CH02 headline (the report's own queries over the earlier dates) and satisfaction;
- **what changed**: service changes done in the period, and those open at the as-of date
  with their owner and due date (overdue when due before it);
- **the Ombudsman's determinations** recorded in the period, by finding (the audit trail's
  accepted ``ombudsman_determination`` entries, whose detail is the action's JSON); the
  orders and compliance with them are the report's ``ombudsman_orders``;
- **customer satisfaction** with complaint handling for each period surveyed that lies
  within the report's period, added up.

Every figure is a grouped count or sum in the database; only the named lists (changes,
satisfaction periods) come back as rows, the changes at most ``exceptions`` of each.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    case,
    cast,
    extract,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB

from complaints.reports.learning_model import (
    ChangeItem,
    LearningFigures,
    PreviousPeriod,
    SatisfactionItem,
    TagCount,
    ThemeMonth,
)
from complaints.reports.period import Period
from complaints.reports.queries import (
    R,
    ReportOptions,
    count_if,
    responses_in_period,
    scoped,
    within_code,
)
from models.learning import LearningRow, LearningTagRow, SatisfactionRow, ServiceChangeRow
from models.tables import AuditRow

__all__ = ["learning_figures", "previous_period"]

LEARNING = LearningRow.__table__  # type: ignore[attr-defined]
TAGS = LearningTagRow.__table__  # type: ignore[attr-defined]
CHANGES = ServiceChangeRow.__table__  # type: ignore[attr-defined]
SATISFACTION = SatisfactionRow.__table__  # type: ignore[attr-defined]
AUDIT = AuditRow.__table__  # type: ignore[attr-defined]
L, T, SC, S, AU = LEARNING.c, TAGS.c, CHANGES.c, SATISFACTION.c, AUDIT.c

#: The audit action of a determination recorded (``models.actions.OmbudsmanDetermination``).
_DETERMINATION = "ombudsman_determination"
_YEAR_LABEL = re.compile(r"^(\d{4})/(\d{2})$")
#: The report's CH01 query: complaints received (``stage1``, ``stage2``...) for options.
Received = Callable[[Connection, ReportOptions], dict[str, int]]


def _pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def _year_back(day: dt.date) -> dt.date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


def previous_period(period: Period) -> Period:
    """The same days a year earlier (``2025/26`` -> ``2024/25``)."""
    start, end = _year_back(period.start), _year_back(period.end)
    match = _YEAR_LABEL.match(period.label)
    label = (f"{int(match.group(1)) - 1}/{int(match.group(1)) % 100:02d}" if match else "")
    return Period(start, end, label)


def _answered(options: ReportOptions, period: Period) -> Any:
    """Learning rows of the landlord's responses issued in ``period``, with that date.

    A stage's response date is its first response (one in practice), looked up per
    learning row through the responses' (reference, stage) key.
    """
    first = (select(func.min(R.responded_on)).where(R.reference == L.reference,
                                                    R.stage == L.stage)
             .scalar_subquery())
    # Kept to the landlord's cases as every figure is (``scoped``: no join to the
    # complaints unless the database holds another landlord's, as that join made the
    # database read every complaint to find the few learning rows).
    rows = scoped(options, LEARNING, L.reference, L.id.label("learning_id"),
                  first.label("responded_on")).subquery("learned")
    return (select(rows.c.learning_id, rows.c.responded_on)
            .where(rows.c.responded_on.between(period.start, period.end))
            .subquery("answered"))


def _tags(db: Connection, options: ReportOptions, period: Period
          ) -> tuple[int, dict[str, list[TagCount]]]:
    """Responses with learning in ``period``, and their counts by theme and root cause."""
    answered = _answered(options, period)
    total = db.execute(select(func.count()).select_from(answered)).scalar_one()
    count = func.count()
    query = (select(T.kind, T.value, count)
             .select_from(TAGS.join(answered, T.learning_id == answered.c.learning_id))
             .group_by(T.kind, T.value).order_by(T.kind, count.desc(), T.value))
    by_kind: dict[str, list[TagCount]] = {"theme": [], "root_cause": []}
    for kind, value, n in db.execute(query):
        by_kind.setdefault(str(kind), []).append(TagCount(name=str(value), count=int(n)))
    return int(total or 0), by_kind


def _trend(db: Connection, options: ReportOptions) -> list[ThemeMonth]:
    """Responses with learning in the period, per month of the response and theme."""
    answered = _answered(options, options.period)
    year = extract("year", answered.c.responded_on)
    month = extract("month", answered.c.responded_on)
    query = (select(year, month, T.value, func.count())
             .select_from(TAGS.join(answered, T.learning_id == answered.c.learning_id))
             .where(T.kind == "theme").group_by(year, month, T.value)
             .order_by(year, month, T.value))
    return [ThemeMonth(month=f"{int(y):04d}-{int(m):02d}", name=str(v), count=int(n))
            for y, m, v, n in db.execute(query)]


def _change_item(row: Any, as_of: dt.date) -> ChangeItem:
    return ChangeItem(id=int(row.id), reference=row.reference, theme=row.theme,
                      description=row.description, owner=row.owner, due_on=row.due_on,
                      done_on=row.done_on,
                      overdue=(row.done_on is None or row.done_on > as_of)
                      and row.due_on < as_of)


def _changes(db: Connection, options: ReportOptions) -> dict[str, Any]:
    """Service changes done in the period, and open at the as-of date (overdue ones)."""
    period, as_of = options.period, options.as_of
    landlord = SC.landlord == options.policy.landlord
    done = and_(SC.done_on.is_not(None), SC.done_on.between(period.start, period.end))
    # Open at the as-of date: recorded by then and not done by then, so that a past
    # period's report does not change when it is run again later.
    recorded = SC.recorded_at < Period(as_of, as_of).end_instant
    open_ = and_(recorded, or_(SC.done_on.is_(None), SC.done_on > as_of))
    overdue = and_(open_, SC.due_on < as_of)

    totals = db.execute(select(count_if(done), count_if(open_), count_if(overdue))
                        .where(landlord)).one()
    columns = (SC.id, SC.reference, SC.theme, SC.description, SC.owner, SC.due_on, SC.done_on)
    listed_done = db.execute(select(*columns).where(landlord, done)
                             .order_by(SC.done_on, SC.id).limit(options.limit)).all()
    listed_open = db.execute(select(*columns).where(landlord, open_)
                             .order_by(SC.due_on, SC.id).limit(options.limit)).all()
    return {"changes_done": [_change_item(r, as_of) for r in listed_done],
            "changes_done_total": int(totals[0]),
            "changes_open": [_change_item(r, as_of) for r in listed_open],
            "changes_open_total": int(totals[1]), "changes_overdue_total": int(totals[2])}


def _satisfaction(db: Connection, options: ReportOptions, period: Period
                  ) -> tuple[list[SatisfactionItem], int, int]:
    """Each period surveyed within ``period`` (the landlord's), and the sums."""
    where = (S.landlord == options.policy.landlord, S.period_start >= period.start,
             S.period_end <= period.end)
    sums = db.execute(select(func.coalesce(func.sum(S.surveyed), 0),
                             func.coalesce(func.sum(S.satisfied), 0)).where(*where)).one()
    rows = db.execute(select(S.period_start, S.period_end, S.surveyed, S.satisfied, S.source)
                      .where(*where).order_by(S.period_start)).all()
    items = [SatisfactionItem(period_start=a, period_end=b, surveyed=int(n), satisfied=int(k),
                              pct_satisfied=_pct(int(k), int(n)), source=str(src or ""))
             for a, b, n, k, src in rows]
    return items, int(sums[0]), int(sums[1])


def _determinations(db: Connection, options: ReportOptions) -> list[TagCount]:
    """The Ombudsman's determinations recorded in the period, by finding.

    The finding is read from the entry's JSON; an entry whose detail is not JSON (a
    history recorded before the detail was kept) counts as ``not recorded``.
    """
    period = options.period
    postgres = db.dialect.name == "postgresql"
    if postgres:
        found: ColumnElement[Any] = cast(AU.detail, JSONB)["finding"].astext
    else:
        found = func.json_extract(AU.detail, "$.finding")
    finding = func.coalesce(case((AU.detail.like("{%"), found), else_=None), "not_recorded")
    count = func.count()
    query = (scoped(options, AUDIT, AU.reference, finding, count)
             .where(AU.action == _DETERMINATION, AU.accepted == true(),
                    AU.at >= period.start_instant, AU.at < period.end_instant)
             .group_by(finding).order_by(count.desc(), finding))
    return [TagCount(name=str(name), count=int(n)) for name, n in db.execute(query)]


def _previous(db: Connection, options: ReportOptions, received_by: Received
              ) -> PreviousPeriod:
    """The period a year earlier: CH01, strict CH02, themes and satisfaction.

    CH01 by the report's own query (``received_by``) over the earlier dates, so the same
    rules; CH02 by one grouped count of the earlier responses with the strict condition.
    """
    period = previous_period(options.period)
    # Homes as the policy gives them for the earlier year, unless the report was given
    # its own figure (--homes): then the same figure, so the rates compare like for like.
    given = options.homes != ReportOptions(options.period, options.policy).homes
    earlier = ReportOptions(period, options.policy, homes=options.homes if given else None,
                            as_of=min(period.end, options.as_of), basis=options.basis,
                            exceptions=options.exceptions)
    earlier.join_policy = options.join_policy
    received = received_by(db, earlier)
    stages = {int(stage): (int(n or 0), int(strict or 0)) for stage, n, strict in db.execute(
        responses_in_period(earlier, R.stage, func.count(), count_if(within_code()))
        .group_by(R.stage))}
    with_learning, tags = _tags(db, earlier, period)
    _items, surveyed, satisfied = _satisfaction(db, earlier, period)
    homes = earlier.homes
    (n1, s1), (n2, s2) = stages.get(1, (0, 0)), stages.get(2, (0, 0))
    return PreviousPeriod(
        label=period.label, period_start=period.start, period_end=period.end, homes=homes,
        stage1_received=received["stage1"], stage2_received=received["stage2"],
        stage1_per_1000_homes=round(received["stage1"] * 1000 / homes, 2) if homes else None,
        stage2_per_1000_homes=round(received["stage2"] * 1000 / homes, 2) if homes else None,
        stage1_responses=n1, stage1_within_code=s1, stage1_pct_within_code=_pct(s1, n1),
        stage2_responses=n2, stage2_within_code=s2, stage2_pct_within_code=_pct(s2, n2),
        responses_with_learning=with_learning, themes=tags["theme"],
        root_causes=tags["root_cause"], surveyed=surveyed, satisfied=satisfied,
        pct_satisfied=_pct(satisfied, surveyed))


def learning_figures(db: Connection, options: ReportOptions, *,
                     received: Received) -> LearningFigures:
    """Learning from complaints for the report's landlord and period (see the module).

    Args:
        db: An open connection to the complaints database.
        options: The report's options (``join_policy`` already decided).
        received: The report's CH01 query (``figures._received``: given, not imported,
            as ``figures`` imports this module), for the year-on-year comparison.

    Returns:
        The figures.

    """
    with_learning, tags = _tags(db, options, options.period)
    items, surveyed, satisfied = _satisfaction(db, options, options.period)
    return LearningFigures(
        responses_with_learning=with_learning, themes=tags["theme"],
        root_causes=tags["root_cause"], trend=_trend(db, options),
        previous=_previous(db, options, received), **_changes(db, options),
        determinations=_determinations(db, options), satisfaction=items,
        surveyed=surveyed, satisfied=satisfied, pct_satisfied=_pct(satisfied, surveyed))

