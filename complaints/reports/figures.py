"""The report's figures, each worked out by one SQL aggregate (SQLite and PostgreSQL).

Nothing here loads case rows into Python: every query groups and counts in the database
(``GROUP BY``, ``CASE``, ``COUNT``, ``SUM``, window functions for percentiles) and returns
a handful of rows. The definitions are the report's "method" (:data:`METHOD`), and each
function's docstring says which rows it counts.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import re
from collections.abc import Iterator
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    distinct,
    exists,
    func,
    or_,
    select,
    true,
)

from complaints.reports.evidence import evidence_pack
from complaints.reports.follow_through import ombudsman_orders, remedy_payments
from complaints.reports.learning import learning_figures
from complaints.reports.method import METHOD
from complaints.reports.model import (
    AckFigures,
    ActionException,
    ActionFigures,
    BreachRow,
    Ch01,
    Ch02,
    Ch02Basis,
    Ch02Late,
    ExtensionReason,
    MonthRow,
    ReferralFigures,
    RefusalFigures,
    RemedyRow,
    Report,
    Resolution,
    StageFigures,
    TenureFigures,
    VolumeRow,
    WorkingDaysCount,
    pct,
)
from complaints.reports.passes import (
    RESPONSE_COUNTS,
    Groups,
    acknowledgement_pass,
    day_pass,
    escalation_pass,
    missed_responses,
    received_pass,
    remedy_pass,
    response_pass,
)
from complaints.reports.queries import (
    ACTIONS,
    EXTENSIONS,
    REFUSALS,
    A,
    C,
    E,
    F,
    L,
    R,
    ReportOptions,
    count_if,
    instant_in,
    mine,
    responses_in_period,
    scoped,
    within_base,
    within_code,
    within_extension,
)
from complaints.service_requests import report as service_request_report

# METHOD (in ``method``), ReportOptions, scoped and the within_* conditions (in ``queries``,
# shared with the evidence pack) are re-exported here, where callers have always found them.
__all__ = ["METHOD", "ReportOptions", "build_report", "scoped", "within_base",
           "within_code", "within_extension"]


def _int(value: Any) -> int:
    return int(value or 0)


def _total(groups: Groups, field: str) -> int:
    return sum(_int(g[field]) for g in groups)


# -- the figures ---------------------------------------------------------------------------


def _received_from(received: Groups, escalations: Groups) -> dict[str, int]:
    """Complaints logged, excluded, withdrawn in the period, and stage 2 received.

    Stage 1 (CH01): received in the period and not refused on receipt, plus declined
    complaints taken on by the Ombudsman's order in the period.
    """
    logged, refused = _total(received, "logged"), _total(received, "refused")
    return {"logged": logged, "excluded": refused, "withdrawn": _total(received, "withdrawn"),
            "imported": _total(received, "imported"),
            "stage1": logged - refused + _total(escalations, "taken_on"),
            "stage2": _total(escalations, "stage2")}


def _received(db: Connection, options: ReportOptions) -> dict[str, int]:
    """Complaints logged, excluded, withdrawn in the period, and stage 2 received (alone)."""
    return _received_from(received_pass(db, options, escalated_by_as_of=False),
                          escalation_pass(db, options))


def _stage_rows(groups: Groups) -> dict[int, dict[str, Any]]:
    """Per stage: responses issued in the period and how they were counted.

    ``escalated`` (stage 1 only): stage 1 responses whose complaint was escalated by the
    as-of date; ``days`` is the working days taken added up (the mean is worked out from
    it), ``max`` the most taken.
    """
    stages: dict[int, dict[str, Any]] = {}
    for group in groups:
        totals = stages.setdefault(int(group["stage"]), {})
        for name in RESPONSE_COUNTS:
            value = _int(group[name])
            totals[name] = (max(totals.get(name, 0), value) if name == "max"
                            else totals.get(name, 0) + value)
    stages.setdefault(1, {}).setdefault("escalated", 0)
    stages.get(2, {}).pop("escalated", None)
    return stages


def _percentiles(histogram: list[WorkingDaysCount]) -> dict[int, tuple[float, int]]:
    """Per stage: the median and the nearest-rank 90th percentile of working days taken.

    Exact, from the histogram of responses per number of working days (a few dozen
    rows, already read for the report): the value at rank k is the smallest number of
    days whose cumulative count reaches k. The ranks are the middle one(s),
    ``(n + 1) // 2`` and ``(n + 2) // 2``, and ``ceil(0.9 n)``.
    """
    by_stage: dict[int, list[tuple[int, int]]] = {}
    for row in histogram:  # sorted by stage, then working days
        by_stage.setdefault(row.stage, []).append((row.working_days, row.responses))
    result: dict[int, tuple[float, int]] = {}
    for stage, counts in by_stage.items():
        total = sum(n for _, n in counts)

        def value_at(rank: int, counts: list[tuple[int, int]] = counts) -> int:
            upto = 0
            for days, n in counts:
                upto += n
                if upto >= rank:
                    return days
            raise AssertionError("rank beyond the histogram")  # pragma: no cover

        lo, hi = value_at((total + 1) // 2), value_at((total + 2) // 2)
        result[stage] = ((lo + hi) / 2, value_at((9 * total + 9) // 10))
    return result


def _acknowledgements(received: dict[str, int], escalations: Groups) -> list[AckFigures]:
    """Stage 1 and stage 2 acknowledgements of complaints / requests in the period.

    Stage 1 from :func:`~complaints.reports.passes.acknowledgement_pass`, stage 2 from the
    escalation pass's groups.
    """
    figures = []
    for stage, groups in ((1, [received]), (2, escalations)):
        acked, within = _total(groups, "acknowledged"), _total(groups, "acknowledged_within")
        figures.append(AckFigures(stage=stage, acknowledged=acked, within_limit=within,
                                  pct_within_limit=pct(within, acked),
                                  unacknowledged_overdue=_total(groups,
                                                                "unacknowledged_overdue")))
    return figures


def _volumes(received: Groups, key: str) -> list[VolumeRow]:
    """Complaints received in the period grouped by ``key`` (channel or category)."""
    volumes: dict[str, list[int]] = {}
    for group in received:
        counts = volumes.setdefault(str(group[key]), [0, 0, 0])
        for i, field in enumerate(("logged", "refused", "escalated")):
            counts[i] += _int(group[field])
    rows = [VolumeRow(name=name, received=n, excluded=refused, escalated=escalated)
            for name, (n, refused, escalated) in volumes.items()]
    return sorted(rows, key=lambda r: (-r.received, r.name))


def _monthly(options: ReportOptions, received: Groups, escalations: Groups,
             days: Groups) -> list[MonthRow]:
    """Per calendar month: complaints received (both stages) and responses issued."""
    data: dict[tuple[int, int], dict[str, int]] = {m: {} for m in options.period.months()}

    def add(year: Any, month: Any, field: str, n: int) -> None:
        if n:
            entry = data[(int(year), int(month))]
            entry[field] = entry.get(field, 0) + n

    for group in received:
        add(group["year"], group["month"], "stage1_received",
            _int(group["logged"]) - _int(group["refused"]))
    for group in escalations:
        add(group["taken_year"], group["taken_month"], "stage1_received",
            _int(group["taken_on"]))
        add(group["year"], group["month"], "stage2_received", _int(group["stage2"]))
    for group in days:  # responses per month, stage and working days taken
        for field in ("responses", "within_base", "within_extension", "within_code"):
            add(group["year"], group["month"], f"stage{group['stage']}_{field}",
                _int(group[field]))
    fields = ("stage1_received", "stage2_received", "stage1_responses", "stage1_within_base",
              "stage1_within_extension", "stage2_responses", "stage2_within_base",
              "stage2_within_extension", "stage1_within_code", "stage2_within_code")
    return [MonthRow(month=f"{y:04d}-{m:02d}", **{f: data[(y, m)].get(f, 0) for f in fields})
            for (y, m) in sorted(data)]


def _working_days(days: Groups) -> list[WorkingDaysCount]:
    """How many responses took each number of working days, per stage."""
    counts: dict[tuple[int, int], int] = {}
    for group in days:
        key = (int(group["stage"]), int(group["working_days"]))
        counts[key] = counts.get(key, 0) + _int(group["responses"])
    return [WorkingDaysCount(stage=stage, working_days=wd, responses=n)
            for (stage, wd), n in sorted(counts.items())]


def _extension_reasons(db: Connection, options: ReportOptions,
                       top: int = 10) -> list[ExtensionReason]:
    """The most frequent reasons for extensions granted in the period, per stage.

    One read of the period's extensions for both stages: each stage's reasons are ranked
    in the database (a window over the groups) and the first ``top`` kept.
    """
    count = func.count()
    rank = func.row_number().over(partition_by=E.stage, order_by=(count.desc(), E.reason))
    ranked = (scoped(options, EXTENSIONS, E.reference, E.stage, E.reason,
                     count.label("n"), rank.label("rank"))
              .where(instant_in(E.granted_at, options.period))
              .group_by(E.stage, E.reason).subquery("ranked"))
    query = (select(ranked.c.stage, ranked.c.reason, ranked.c.n)
             .where(ranked.c.rank <= top).order_by(ranked.c.stage, ranked.c.rank))
    return [ExtensionReason(stage=int(stage), reason=str(reason), extensions=int(n))
            for stage, reason, n in db.execute(query)]


def _refusals(db: Connection, options: ReportOptions) -> list[RefusalFigures]:
    """Complaints and escalations refused in the period: cases, and cases per ground."""
    period = options.period
    in_period = F.decided_on.between(period.start, period.end)
    cases: dict[str, int] = dict(db.execute(scoped(options, REFUSALS, F.reference, F.kind,
                                   func.count(distinct(F.reference)))
                            .where(in_period).group_by(F.kind)).all())
    grounds: dict[str, dict[str, int]] = {"complaint": {}, "escalation": {}}
    query = (scoped(options, REFUSALS, F.reference, F.kind, F.ground, func.count())
             .where(in_period).group_by(F.kind, F.ground)
             .order_by(F.kind, func.count().desc(), F.ground))
    for kind, ground, n in db.execute(query):
        grounds.setdefault(str(kind), {})[str(ground)] = int(n)
    return [RefusalFigures(kind=kind, cases=_int(cases.get(kind)), by_ground=by_ground)
            for kind, by_ground in grounds.items()]


def _remedies(remedies: Groups) -> tuple[list[RemedyRow], int]:
    """Remedies offered in responses issued in the period, by kind; financial responses.

    From :func:`~complaints.reports.passes.remedy_pass`: most offered first.
    """
    rows = [RemedyRow(kind=str(g["kind"]), offered=_int(g["offered"]),
                      amount_pence=_int(g["amount_pence"])) for g in remedies]
    with_money = sum(_int(g["financial_responses"]) for g in remedies)
    return sorted(rows, key=lambda r: (-r.offered, r.kind)), with_money


def _actions(db: Connection, options: ReportOptions) -> ActionFigures:
    """Actions due in the period (done on time?) and overdue at the as-of date."""
    period, as_of = options.period, options.as_of
    due, on_time = db.execute(
        scoped(options, ACTIONS, A.reference, func.count(),
               count_if(and_(A.completed_on.is_not(None), A.completed_on <= A.due_by)))
        .where(A.due_by.between(period.start, period.end))).one()
    overdue = and_(A.due_by < as_of, or_(A.completed_on.is_(None), A.completed_on > as_of))
    total = db.execute(scoped(options, ACTIONS, A.reference, func.count())
                       .where(overdue)).scalar_one()
    listed = db.execute(scoped(options, ACTIONS, A.reference, A.reference, A.action_id,
                               A.stage, A.due_by, A.owner).where(overdue)
                        .order_by(A.due_by, A.reference, A.action_id)
                        .limit(options.limit)).all()
    return ActionFigures(
        due_in_period=_int(due), completed_by_due_date=_int(on_time),
        overdue_at_as_of=_int(total),
        overdue=[ActionException(reference=r, action_id=a, stage=int(s), due_by=d, owner=o)
                 for r, a, s, d, o in listed])


def _ombudsman(db: Connection, options: ReportOptions) -> ReferralFigures:
    """Cases referred to the Housing Ombudsman in the period."""
    where = (mine(options), instant_in(C.referred_to_ombudsman_at, options.period))
    total = db.execute(select(func.count()).where(*where)).scalar_one()
    listed = db.execute(select(C.reference).where(*where)
                        .order_by(C.referred_to_ombudsman_at, C.reference)
                        .limit(options.limit)).scalars().all()
    return ReferralFigures(referred=int(total), references=[str(r) for r in listed])


def _breaches(db: Connection, options: ReportOptions
              ) -> tuple[list[BreachRow], list[BreachRow]]:
    """Missed acknowledgements and responses in the period, per handler and per team.

    The acknowledgements made late in the period (both stages) come from the late
    acknowledgement tally, by each stage's handler and the team (category); the missed
    responses from :func:`~complaints.reports.passes.missed_responses`, by who issued each.
    """
    period = options.period
    by_handler: dict[str, dict[str, int]] = {}
    by_team: dict[str, dict[str, int]] = {}

    def add(into: dict[str, dict[str, int]], name: Any, field: str, n: int) -> None:
        if n:
            entry = into.setdefault(str(name or "(not recorded)"), {})
            entry[field] = entry.get(field, 0) + n

    keys = (L.stage, L.handler, L.category)
    query = (select(*keys, func.sum(L.acknowledgements))
             .where(L.landlord == options.policy.landlord,
                    L.acknowledged_on.between(period.start, period.end))
             .group_by(*keys).having(func.sum(L.acknowledgements) != 0))
    for stage, handler, team, n in db.execute(query):
        add(by_handler, handler, f"stage{stage}_acknowledgements", _int(n))
        add(by_team, team, f"stage{stage}_acknowledgements", _int(n))
    for group in missed_responses(db, options):
        field = f"stage{group['stage']}_responses"
        add(by_handler, group["by"], field, _int(group["missed"]))
        add(by_team, group["category"], field, _int(group["missed"]))
    fields = ("stage1_acknowledgements", "stage1_responses", "stage2_acknowledgements",
              "stage2_responses")

    def rows(counts: dict[str, dict[str, int]]) -> list[BreachRow]:
        listed = [BreachRow(name=name, **{f: c.get(f, 0) for f in fields},
                            total=sum(c.values())) for name, c in counts.items()]
        return sorted(listed, key=lambda r: (-r.total, r.name))

    return rows(by_handler), rows(by_team)


#: The tenures always shown, then any other value found; None is "not recorded".
TENURES = ("lcra", "lcho")
NOT_RECORDED = "not recorded"


def _tenures(options: ReportOptions, received: Groups, escalations: Groups,
             responses: Groups) -> list[TenureFigures]:
    """CH01 and CH02 per tenure: LCRA and LCHO always, other / not recorded when found."""
    counts: dict[str, dict[str, int]] = {t: {} for t in TENURES}

    def add(tenure: Any, field: str, n: int) -> None:
        entry = counts.setdefault(str(tenure or NOT_RECORDED), {})
        entry[field] = entry.get(field, 0) + n

    for group in received:
        add(group["tenure"], "ch01_1", _int(group["logged"]) - _int(group["refused"]))
    for group in escalations:
        add(group["tenure"], "ch01_1", _int(group["taken_on"]))
        add(group["tenure"], "ch01_2", _int(group["stage2"]))
    for group in responses:
        for field, name in (("n", "responses"), ("base", "within_base"),
                            ("ext", "within_extension"), ("code", "within_code")):
            add(group["tenure"], f"{field}{group['stage']}", _int(group[name]))
    by_year = options.homes_by_tenure
    figures: list[TenureFigures] = []
    for tenure, c in counts.items():
        homes = getattr(by_year, tenure) if by_year is not None and tenure in TENURES \
            else None
        figures.append(TenureFigures(
            tenure=tenure, homes=homes,
            ch01=[Ch01(stage=s, received=c.get(f"ch01_{s}", 0), homes=homes or 0,
                       per_1000_homes=round(c.get(f"ch01_{s}", 0) * 1000 / homes, 2)
                       if homes else None) for s in (1, 2)],
            ch02=[_ch02(s, c.get(f"n{s}", 0), c.get(f"base{s}", 0), c.get(f"ext{s}", 0),
                        c.get(f"code{s}", 0), options.basis) for s in (1, 2)]))
    order = {t: i for i, t in enumerate((*TENURES, "other", NOT_RECORDED))}
    return sorted(figures, key=lambda f: (order.get(f.tenure, len(order)), f.tenure))


def _ch02(stage: int, n: int, base: int, ext: int, strict: int, basis: Ch02Basis) -> Ch02:
    """CH02 for one stage from its counts, the headline by ``basis``."""
    headline = {Ch02Basis.STRICT: strict, Ch02Basis.WITH_EXTENSION: ext,
                Ch02Basis.BASE: base}[basis]
    return Ch02(stage=stage, responses=n, within_base=base, within_extension=ext,
                pct_within_base=pct(base, n), pct_within_extension=pct(ext, n),
                headline_pct=pct(headline, n), within_code=strict,
                pct_within_code=pct(strict, n))


def _late(db: Connection, options: ReportOptions, stages: dict[int, dict[str, Any]]
          ) -> tuple[list[Ch02Late], int]:
    """Responses issued in the period not within the Code timescales, with the reason each.

    The total is every response less those within (:func:`_stage_rows`); a response with
    no strict verdict is not within, so it is counted and listed.
    """
    late = or_(R.within_code.is_(None), R.within_code != true())
    total = sum(_int(s.get("responses")) - _int(s.get("within_code"))
                for s in stages.values())
    listed = db.execute(
        responses_in_period(options, R.reference, R.stage, R.responded_on, R.late_reason)
        .where(late).order_by(R.stage, R.responded_on, R.reference, R.seq)
        .limit(options.limit)).all()
    return [Ch02Late(reference=str(r), stage=int(s), responded_on=d,
                     reason=reason or "not measured under the strict rule: run complaints "
                                      "resync")
            for r, s, d, reason in listed], _int(total)


def _policies(received: Groups, responses: Groups, escalations: Groups) -> list[str]:
    """Every policy file the landlord's complaints counted in the period were handled under.

    From the passes over those received, escalated or taken on, and answered in the period.
    """
    names = {str(g["policy"]) for g in received}
    names |= {str(g["policy"]) for g in escalations if _int(g["requested"]) + _int(g["taken_on"])}
    return sorted(names | {str(group["policy"]) for group in responses})


def build_report(engine: Engine | Connection, options: ReportOptions, *,
                 evidence: bool = False) -> Report:
    """Work out every figure of the report for ``options`` in the database.

    Given an engine on PostgreSQL, the figures that need none of the passes (see
    :func:`_beside`) are worked out on a second connection at the same time, reading the
    same snapshot of the database (:func:`_two_readers`); otherwise (SQLite, which a
    second reader would not speed up, or a connection given) one after the other.

    Args:
        engine: The complaints database (an engine, or an open connection).
        options: The period, policy, homes, as-of date and CH02 basis.
        evidence: Whether to add the self-assessment evidence pack.

    Returns:
        The report.

    """
    if isinstance(engine, Connection):
        return _build(engine, None, options, evidence)
    if engine.dialect.name != "postgresql":
        with engine.connect() as db:
            return _build(db, None, options, evidence)
    with _two_readers(engine) as (db, side):
        return _build(db, side, options, evidence)


#: What ``pg_export_snapshot()`` returns (checked before it is written into SET TRANSACTION
#: SNAPSHOT, which takes no bound parameter).
_SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+(-[0-9]+)?")


@contextlib.contextmanager
def _two_readers(engine: Engine) -> Iterator[tuple[Connection, Connection]]:
    """Two PostgreSQL connections reading one snapshot of the database.

    The first opens a REPEATABLE READ transaction and exports its snapshot; the second
    imports it before reading anything, so both see the database as of the same moment
    (and so does every statement of each, as REPEATABLE READ keeps one snapshot for the
    transaction). Both only read, so neither can fail to serialise.
    """
    with engine.connect() as db, engine.connect() as side:
        db = db.execution_options(isolation_level="REPEATABLE READ")
        side = side.execution_options(isolation_level="REPEATABLE READ")
        snapshot = str(db.execute(select(func.pg_export_snapshot())).scalar_one())
        if not _SNAPSHOT_ID.fullmatch(snapshot):  # pragma: no cover - PostgreSQL's own format
            raise RuntimeError(f"unexpected snapshot id from PostgreSQL: {snapshot!r}")
        side.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        yield db, side


def _beside(db: Connection, options: ReportOptions, evidence: bool) -> dict[str, Any]:
    """The report's figures that need none of the passes, by :class:`Report` field.

    Worked out on the second reader while :func:`_build` makes the passes: together
    about half the report's statements and, on a large landlord's year on PostgreSQL,
    about as long as the passes take (the remedies' pass is here, and learning from
    complaints with the passes, for that balance).
    """
    period = options.period
    remedy_groups = remedy_pass(db, options)
    remedies, with_money = _remedies(remedy_groups)
    return {"remedies": remedies, "remedies_total_pence": sum(r.amount_pence for r in remedies),
            "responses_with_financial_remedy": with_money,
            "remedy_payments": remedy_payments(db, options, remedy_groups),
            "extension_reasons": _extension_reasons(db, options),
            "refusals": _refusals(db, options), "actions": _actions(db, options),
            "ombudsman": _ombudsman(db, options),
            "ombudsman_orders": ombudsman_orders(db, options),
            "service_requests": service_request_report(db, period.start, period.end),
            "evidence": evidence_pack(db, options) if evidence else None}


def _build(db: Connection, side: Connection | None, options: ReportOptions,
           evidence: bool) -> Report:
    """The report from ``db``, with :func:`_beside` on ``side`` at the same time if given.

    The two give disjoint fields of the report (a field given twice is a TypeError).
    """
    _decide_join(db, options)
    if side is None:
        return Report(**_passes(db, options), **_beside(db, options, evidence))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        beside = pool.submit(_beside, side, options, evidence)
        return Report(**_passes(db, options), **beside.result())


def _decide_join(db: Connection, options: ReportOptions) -> None:
    """Whether any other landlord's complaint is here (``options.join_policy``).

    Two seeks on the landlord index (reading every complaint to count landlords cost as
    much as a figure).
    """
    landlord = options.policy.landlord
    options.join_policy = any(
        db.execute(select(exists().where(other))).scalar_one()
        for other in (C.landlord < landlord, C.landlord > landlord))


def _passes(db: Connection, options: ReportOptions) -> dict[str, Any]:
    """The report's figures from the passes (the others: :func:`_beside`), by field."""
    policy, homes = options.policy, options.homes
    received_groups = received_pass(db, options)
    escalations = escalation_pass(db, options)
    received = _received_from(received_groups, escalations)
    responses = response_pass(db, options)
    stages = _stage_rows(responses)
    days = day_pass(db, options)
    working_days = _working_days(days)
    percentiles = _percentiles(working_days)
    breaches_by_handler, breaches_by_team = _breaches(db, options)
    ch01 = [Ch01(stage=s, received=received[f"stage{s}"], homes=homes,
                 per_1000_homes=round(received[f"stage{s}"] * 1000 / homes, 2)
                 if homes else None) for s in (1, 2)]
    ch02: list[Ch02] = []
    stage_figures: list[StageFigures] = []
    for stage in (1, 2):
        s = stages.get(stage, {})
        n = _int(s.get("responses"))
        ch02.append(_ch02(stage, n, _int(s.get("within_base")),
                          _int(s.get("within_extension")), _int(s.get("within_code")),
                          options.basis))
        median, p90 = percentiles.get(stage, (None, None))
        up, partly, notup = (_int(s.get(k)) for k in ("upheld", "partly", "not_upheld"))
        stage_figures.append(StageFigures(
            stage=stage, responses=n, extended=_int(s.get("extended")),
            pct_extended=pct(_int(s.get("extended")), n),
            extended_within_new_date=_int(s.get("extended_within_new_date")),
            late_against_final_due=_int(s.get("late_final")),
            median_working_days=median, p90_working_days=p90,
            mean_working_days=round(_int(s.get("days")) / n, 1) if n else None,
            max_working_days=_int(s.get("max")) if n else None,
            upheld=up, partly_upheld=partly, not_upheld=notup, pct_upheld=pct(up, n),
            pct_partly_upheld=pct(partly, n), pct_not_upheld=pct(notup, n)))
    s1 = stages.get(1, {})
    resolved1 = _int(s1.get("responses")) - _int(s1.get("escalated"))
    resolved2 = _int(stages.get(2, {}).get("responses"))
    limits = policy.limits
    late, late_total = _late(db, options, stages)
    return dict(
        landlord=policy.landlord, policy=policy.name, period_label=options.period.label,
        period_start=options.period.start, period_end=options.period.end,
        as_of=options.as_of, homes=homes, ch02_basis=options.basis,
        complaints_logged=received["logged"], complaints_excluded=received["excluded"],
        complaints_withdrawn=received["withdrawn"],
        complaints_imported=received["imported"], ch01=ch01, ch02=ch02,
        stages=stage_figures,
        acknowledgements=_acknowledgements(acknowledgement_pass(db, options), escalations),
        resolution=Resolution(
            resolved_stage1=resolved1, resolved_stage2=resolved2,
            pct_stage1=pct(resolved1, resolved1 + resolved2),
            pct_stage2=pct(resolved2, resolved1 + resolved2),
            escalated_after_stage1=_int(s1.get("escalated"))),
        channels=_volumes(received_groups, "channel"),
        categories=_volumes(received_groups, "category"),
        monthly=_monthly(options, received_groups, escalations, days),
        working_days=working_days,
        breaches_by_handler=breaches_by_handler, breaches_by_team=breaches_by_team,
        limits={"stage1_acknowledgement": limits.stage1_acknowledgement,
                "stage1_response": limits.stage1_response,
                "stage1_extension_cap": limits.stage1_extension_cap,
                "stage2_acknowledgement": limits.stage2_acknowledgement,
                "stage2_response": limits.stage2_response,
                "stage2_extension_cap": limits.stage2_extension_cap},
        method=METHOD, policies=_policies(received_groups, responses, escalations), ch02_late=late,
        ch02_late_total=late_total, tenures=_tenures(options, received_groups, escalations,
                                                        responses),
        learning=learning_figures(db, options, received=_received))
