"""Follow-through figures: remedy payments (7.1-7.3) and the Ombudsman's orders.

Both come from what the workflow's activities already record, with no table of their own:

- **Ombudsman orders and instructions** are deadlines (``deadlines``, kind ``ombudsman``,
  key ``order:<id>``), planned when a determination's orders or an instruction with a date
  are recorded, and met when ``comply-order`` records compliance (``met_at``). The label
  says which: ``Ombudsman instruction instruction-N`` or ``Ombudsman <finding> <id>``.
- **Remedy payments** are ``remedy_payments`` rows, written beside each accepted
  ``pay_remedy`` entry of the audit trail from the action as staff submitted it (stage,
  remedy number, amount, paid-on date; :mod:`activities.payments`), matched to the remedy
  offered (``remedies``: stage and position).

Every figure is one SQL aggregate on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    exists,
    func,
    select,
)

from complaints.reports.model import (
    OrderException,
    OrderFigures,
    PaymentException,
    PaymentFigures,
)
from complaints.reports.passes import Groups
from complaints.reports.period import Period
from complaints.reports.queries import (
    FINANCIAL,
    PT,
    REMEDIES,
    M,
    ReportOptions,
    count_if,
    instant_in,
    scoped,
    sum_if,
)
from models.tables import DeadlineRow, RemedyPaymentRow

__all__ = ["ORDER_LABEL_INSTRUCTION", "ombudsman_orders", "remedy_payments"]

DEADLINES = DeadlineRow.__table__  # type: ignore[attr-defined]
PAYMENTS = RemedyPaymentRow.__table__  # type: ignore[attr-defined]
DL = DEADLINES.c
P = PAYMENTS.c

#: How the case book labels an instruction's deadline (``domain.casebook``).
ORDER_LABEL_INSTRUCTION = "Ombudsman instruction "

def remedy_payments(db: Connection, options: ReportOptions, remedies: Groups
                    ) -> PaymentFigures:
    """Financial remedies offered in responses issued in the period, and their payment.

    Counted with the response that offered them (as the remedies figure is). Paid: a
    payment recorded with a paid-on date on or before the as-of date; late: paid after
    the date promised. Unpaid ones are overdue (promised before the as-of date), not yet
    due, or promised with no date (responses before casework revision 2).

    The remedies offered come counted per kind (``remedies``: the report's
    :func:`~complaints.reports.passes.remedy_pass`); their payments are counted here from
    the payment tally, and the unpaid worked out as the difference (a remedy is paid at
    most once).
    """
    as_of = options.as_of
    # The offered dates are likely: the list is read in the order of the date promised
    # (ix_remedies_financial_due), and stops at its limit.
    financial = (M.kind == FINANCIAL, instant_in(M.offered_at, options.period, likely=True))
    due_past = M.due_by < as_of
    money = next((g for g in remedies if g["kind"] == "financial"), {})
    o = [int(money.get(k) or 0)
         for k in ("offered", "amount_pence", "due_past", "due_ahead", "due_none")]
    dated = PT.payments - PT.undated
    payments = db.execute(select(
        sum_if(PT.payments), sum_if(PT.amount_pence), sum_if(PT.paid_late),
        sum_if(PT.payments, PT.due_by < as_of), sum_if(dated, PT.due_by >= as_of),
        sum_if(PT.undated)).where(
        PT.landlord == options.policy.landlord, instant_in(PT.offered_hour, options.period),
        PT.paid_on <= as_of)).one()
    p = [int(v or 0) for v in payments]
    listed: Sequence[Any] = []
    if o[2] > p[3]:  # some are unpaid past their date: list them
        # NOT EXISTS: each candidate's payment looked up through its index, the list
        # stopping at its limit (a NOT IN list would read every payment first).
        paid = select(P.id).where(P.reference == M.reference, P.stage == M.stage,
                                  P.position == M.position, P.paid_on <= as_of)
        listed = db.execute(scoped(
            options, REMEDIES, M.reference, M.reference, M.stage, M.position, M.due_by,
            M.amount_pence).where(*financial, due_past, ~exists(paid))
            .order_by(M.due_by, M.reference, M.stage, M.position).limit(options.limit)).all()
    return PaymentFigures(
        offered=o[0], amount_offered_pence=o[1], paid=p[0], amount_paid_pence=p[1],
        paid_late=p[2], unpaid_overdue=o[2] - p[3], unpaid_not_yet_due=o[3] - p[4],
        unpaid_no_date=o[4] - p[5],
        overdue=[PaymentException(reference=r, stage=int(s), remedy=int(n), due_by=d,
                                  amount_pence=a) for r, s, n, d, a in listed])


def ombudsman_orders(db: Connection, options: ReportOptions) -> OrderFigures:
    """Ombudsman orders and instructions recorded in the period, tracked to compliance.

    Complied with on time: by the end of the due date; late: after it (both by the as-of
    date). Outstanding: not complied with by the as-of date, overdue when due before it.
    Stopped: no longer tracked because the case was withdrawn.
    """
    period, as_of = options.period, options.as_of
    by_as_of = Period(as_of, as_of).end_instant
    complied = and_(DL.met_at.is_not(None), DL.met_at < by_as_of)
    open_ = and_(~complied, DL.status != "cancelled")
    where = (DL.kind == "ombudsman", DL.key.like("order:%"),
             DL.start.between(period.start, period.end))
    instruction = DL.label.like(ORDER_LABEL_INSTRUCTION + "%")
    row = db.execute(scoped(
        options, DEADLINES, DL.reference, func.count(), count_if(~instruction),
        count_if(instruction), count_if(and_(complied, DL.met_at <= DL.ends_at)),
        count_if(and_(complied, DL.met_at > DL.ends_at)),
        count_if(and_(open_, DL.due >= as_of)), count_if(and_(open_, DL.due < as_of)),
        count_if(and_(~complied, DL.status == "cancelled")),
    ).where(*where)).one()
    listed = db.execute(scoped(options, DEADLINES, DL.reference, DL.reference, DL.key, DL.due,
                               DL.label).where(*where, open_, DL.due < as_of)
                        .order_by(DL.due, DL.reference, DL.key).limit(options.limit)).all()
    n = [int(v or 0) for v in row]
    return OrderFigures(
        made=n[0], from_determinations=n[1], instructions=n[2], complied_on_time=n[3],
        complied_late=n[4], outstanding_not_yet_due=n[5], outstanding_overdue=n[6],
        stopped=n[7],
        overdue=[_order_exception(r, k, d, label) for r, k, d, label in listed])


def _order_exception(reference: str, key: str, due: Any, label: str) -> OrderException:
    """An overdue order as listed: ``what`` is the finding, or "instruction"."""
    order_id = key.removeprefix("order:")
    what = label.removeprefix("Ombudsman ").removesuffix(f" {order_id}")
    return OrderException(reference=reference, order_id=order_id, due_by=due, what=what)

