"""The building blocks the report's queries share: tables, options, conditions.

Both the figures (:mod:`complaints.reports.figures`) and the evidence pack
(:mod:`complaints.reports.evidence`) build their SQL from these; keeping them here lets
``figures`` use ``evidence`` without the two importing each other.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BindParameter,
    Boolean,
    ColumnElement,
    Select,
    and_,
    bindparam,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from complaints.reports.model import Ch02Basis
from complaints.reports.period import Period
from models.policy import Policy
from models.tables import (
    ActionRow,
    ComplaintRow,
    ExtensionRow,
    RefusalRow,
    ResponseRow,
)
from models.tables import RemedyRow as RemedyTable
from models.tallies import (
    AcknowledgementTallyRow,
    ComplaintTallyRow,
    EscalationTallyRow,
    LateAcknowledgementTallyRow,
    MissedResponseTallyRow,
    PaymentTallyRow,
    RemedyTallyRow,
    ResponseTallyRow,
    TakenOnTallyRow,
)

__all__ = ["ACTIONS", "COMPLAINTS", "EXTENSIONS", "FINANCIAL", "NOT_VOIDED", "REFUSALS", "REMEDIES",
           "RESPONSES", "A", "C", "E", "E2", "F", "K", "L", "M", "MT", "PT", "Q", "R", "T", "TO",
           "X", "ReportOptions", "count_if", "instant_in", "mine", "not_voided",
           "responses_in_period", "scoped", "sum_if", "within_base", "within_code",
           "within_extension"]

C = ComplaintRow.__table__.c  # type: ignore[attr-defined]
R = ResponseRow.__table__.c  # type: ignore[attr-defined]
F = RefusalRow.__table__.c  # type: ignore[attr-defined]
E = ExtensionRow.__table__.c  # type: ignore[attr-defined]
M = RemedyTable.__table__.c  # type: ignore[attr-defined]
A = ActionRow.__table__.c  # type: ignore[attr-defined]
# The tallies (models.tallies): responses (T), missed responses (X), complaints received
# (K), their acknowledgements (Q), acknowledgements made late (L), remedies offered (MT)
# and their payments (PT), escalation requests (E2) and complaints taken on by order (TO).
T = ResponseTallyRow.__table__.c  # type: ignore[attr-defined]
X = MissedResponseTallyRow.__table__.c  # type: ignore[attr-defined]
K = ComplaintTallyRow.__table__.c  # type: ignore[attr-defined]
Q = AcknowledgementTallyRow.__table__.c  # type: ignore[attr-defined]
L = LateAcknowledgementTallyRow.__table__.c  # type: ignore[attr-defined]
MT = RemedyTallyRow.__table__.c  # type: ignore[attr-defined]
PT = PaymentTallyRow.__table__.c  # type: ignore[attr-defined]
E2 = EscalationTallyRow.__table__.c  # type: ignore[attr-defined]
TO = TakenOnTallyRow.__table__.c  # type: ignore[attr-defined]
COMPLAINTS = ComplaintRow.__table__  # type: ignore[attr-defined]
RESPONSES = ResponseRow.__table__  # type: ignore[attr-defined]
REFUSALS = RefusalRow.__table__  # type: ignore[attr-defined]
EXTENSIONS = ExtensionRow.__table__  # type: ignore[attr-defined]
REMEDIES = RemedyTable.__table__  # type: ignore[attr-defined]
ACTIONS = ActionRow.__table__  # type: ignore[attr-defined]
#: The financial kind of remedy, written into the SQL as a literal rather than bound, so
#: that both databases can use the partial index on the financial remedies (revision
#: 0020), whose WHERE clause a bound parameter cannot be proved to match.
FINANCIAL: BindParameter[str] = bindparam("financial_kind", "financial", literal_execute=True)


class ReportOptions:
    """How to report: the period, policy, homes, as-of date, CH02 basis, list lengths.

    Attributes:
        period: The days covered.
        policy: The landlord's policy (time limits, homes, calendar).
        homes: Homes owned for CH01 (unless overridden: the policy's homes per tenure as
            at 31 March of the year added up, else its ``homes_owned``).
        as_of: The date "overdue" and "not yet" figures are taken at.
        basis: Which CH02 figure is the headline.
        exceptions: How many exceptions to list per item (0: all).
    """

    def __init__(self, period: Period, policy: Policy, *, homes: int | None = None,
                 as_of: dt.date | None = None, basis: Ch02Basis = Ch02Basis.STRICT,
                 exceptions: int = 50) -> None:
        self.period = period
        self.policy = policy
        # Homes as at 31 March of the reporting year the period starts in.
        year = period.start.year if period.start.month >= 4 else period.start.year - 1
        #: Homes per tenure for the year (None: the policy gives none for it).
        self.homes_by_tenure = policy.homes_in(year)
        if homes is None:
            homes = (self.homes_by_tenure.total if self.homes_by_tenure is not None
                     else policy.homes_owned)
        self.homes = homes
        self.as_of = as_of or min(period.end, dt.date.today())
        self.basis = basis
        self.exceptions = exceptions
        #: Whether rows must be joined to their complaint to keep to the landlord's; False
        #: when every complaint in the database is the landlord's (the usual case).
        self.join_policy = True

    @property
    def limit(self) -> int | None:
        """The LIMIT for exception lists (None for all)."""
        return self.exceptions or None


def count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """How many rows meet ``condition`` (0, not NULL, when there are none).

    ``COUNT(*) FILTER (WHERE ...)`` (SQLite 3.30+, PostgreSQL 9.4+): a row that does not
    meet the condition skips the aggregate step, where ``SUM(CASE ...)`` takes a step for
    every row (about a quarter of a response pass's time on SQLite).
    """
    return func.count().filter(condition)


def sum_if(value: Any, condition: ColumnElement[bool] | None = None) -> ColumnElement[int]:
    """``value`` added up over the rows that meet ``condition`` (all when None); 0 for none.

    How the report adds up its tallies' counts (:mod:`models.tallies`).
    """
    total = func.sum(value) if condition is None else func.sum(value).filter(condition)
    return func.coalesce(total, 0)


def within_base() -> ColumnElement[bool]:
    """A response issued on or before its base due date."""
    return R.responded_on <= R.due_base


def within_code() -> ColumnElement[bool]:
    """A response within the Code timescales over its whole chain (strict CH02).

    The verdict is worked out when the case's snapshot is recorded
    (``activities.records.strict_verdict``); a row with none (recorded before revision
    0012 and not resynced since) is not counted as within.
    """
    return R.within_code == true()


def within_extension() -> ColumnElement[bool]:
    """A response within the base date, or within a Code-compliant extended date."""
    return or_(R.responded_on <= R.due_base,
               and_(R.extension_within_code == true(), R.responded_on <= R.due_final))


#: Voided cases (duplicates, merged, created in error) are not complaints: never counted.
NOT_VOIDED = C.state != "voided"


def mine(options: ReportOptions) -> ColumnElement[bool]:
    """The landlord's complaints, whatever policy file each was handled under, not voided."""
    return and_(C.landlord == options.policy.landlord, NOT_VOIDED)


def not_voided(reference: Any) -> ColumnElement[bool]:
    """A row whose case (``reference``) is not voided, without joining ``complaints``.

    ``NOT IN`` a subquery: the voided references are read once (the state index) and
    looked up per row, where a join would read every complaint row.
    """
    return reference.not_in(select(C.reference).where(C.state == "voided"))


def scoped(options: ReportOptions, table: Any, reference: Any, *columns: Any,
           complaints: bool = False) -> Select[Any]:
    """SELECT ``columns`` FROM ``table``, keeping to the landlord's complaints, not voided.

    The join to ``complaints`` is made only when it is needed: when the database holds
    other landlords' complaints too, or when ``complaints`` says the columns need it.
    Without it, rows of voided cases are left out by :func:`not_voided`: every figure
    built on this (responses, extensions, refusals, remedies, actions, deadlines, payments)
    leaves them out, as the complaint counts do.
    """
    if options.join_policy:
        return (select(*columns).select_from(table.join(COMPLAINTS, reference == C.reference))
                .where(mine(options)))
    if complaints:
        return (select(*columns).select_from(table.join(COMPLAINTS, reference == C.reference))
                .where(NOT_VOIDED))
    return select(*columns).select_from(table).where(not_voided(reference))


def responses_in_period(options: ReportOptions, *columns: Any,
                        complaints: bool = False) -> Select[Any]:
    """SELECT ``columns`` FROM responses of the landlord's complaints issued in the period."""
    period = options.period
    return (scoped(options, RESPONSES, R.reference, *columns, complaints=complaints)
            .where(R.responded_on.between(period.start, period.end)))


def instant_in(column: Any, period: Period, *, likely: bool = False) -> ColumnElement[bool]:
    """An instant (a UTC timestamp column) that falls in ``period``'s London days.

    ``likely``: tell SQLite's planner that most rows it is asked about meet both bounds
    (:class:`Likely`), so that it reads them through another index.
    """
    bounds = (column >= period.start_instant, column < period.end_instant)
    return and_(*(Likely(bound) for bound in bounds)) if likely else and_(*bounds)


class Likely(FunctionElement[bool]):
    """A condition most rows meet: ``likely(...)`` on SQLite, the condition elsewhere.

    SQLite's planner, without statistics of a column's values, takes a range on both
    ends as selective and reads through that column's index; ``likely()`` (a no-op at
    run time) says it is not. PostgreSQL's planner has the statistics and needs no hint.
    """

    type = Boolean()
    inherit_cache = True
    name = "likely"


@compiles(Likely)
def _likely(element: Likely, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(Likely, "sqlite")
def _likely_sqlite(element: Likely, compiler: Any, **kw: Any) -> str:
    return f"likely({compiler.process(element.clauses, **kw)})"
