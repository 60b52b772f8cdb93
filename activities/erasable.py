"""Whether a case may be erased yet: ended, past its period, free of Ombudsman orders.

The rules the retention job and erasure on request (:mod:`activities.retention`) share:
which states a case has ended in, when it ended, whether an Ombudsman order on it is still
open, why a request to erase it is refused now, and the errors a person must act on.
"""

from __future__ import annotations

import datetime as dt
import json

from sqlmodel import Session, col, select

from domain.lifecycle import ENDED
from models.tables import CaseRecordRow, ComplaintRow, DeadlineRow

#: The states a case has ended in (only these are ever erased).
ENDED_STATES = tuple(sorted(s.value for s in ENDED))


class RetentionError(Exception):
    """A retention problem a person must fix (the message says how); never retried."""


class ErasureRefused(RetentionError):
    """An erasure request the law lets the landlord refuse now; the message says when not."""


def add_years(day: dt.date, years: int) -> dt.date:
    """``day`` ``years`` later (29 February becomes 28 February in a common year)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def ended_at(row: ComplaintRow) -> dt.datetime | None:
    """When a case ended (closed, withdrawn, voided: ``closed_at``; declined: ``declined_at``)."""
    return row.closed_at or row.declined_at or row.withdrawn_at


def open_orders(session: Session, reference: str) -> bool:
    """Whether an Ombudsman order or instruction on the case is not yet complied with."""
    record = session.get(CaseRecordRow, reference)
    if record is not None:
        try:
            orders = json.loads(record.case_json).get("orders") or []
        except ValueError:
            orders = []
        if any(isinstance(o, dict) and o.get("complied_at") is None for o in orders):
            return True
    pending = session.exec(select(DeadlineRow.id).where(
        DeadlineRow.reference == reference, DeadlineRow.kind == "ombudsman",
        col(DeadlineRow.met_at).is_(None),
        col(DeadlineRow.status).in_(("pending", "breached")))).first()
    return pending is not None


def erasable_refusal(session: Session, reference: str) -> str | None:
    """Why a case's data may not be erased on request now (one line), or None.

    The law lets a landlord keep what it needs to defend a complaint: nothing is erased
    while the case is open, with the Ombudsman, or under an Ombudsman order not complied
    with.
    """
    row = session.get(ComplaintRow, reference)
    if row is None:
        return (f"no complaint {reference} in this database: check the reference with "
                "`complaints list`")
    if row.state == "with_ombudsman":
        return (f"{reference} is with the Housing Ombudsman: its data is kept for the "
                "complaint's defence; erase it once the Ombudsman's part is over and the "
                "case has ended")
    if row.state not in ENDED_STATES or ended_at(row) is None:
        return (f"{reference} is still open ({row.state}): its data is kept while the "
                "complaint is handled; erase it once the case is closed, declined, "
                "withdrawn or voided")
    if open_orders(session, reference):
        return (f"{reference} has an Ombudsman order not yet complied with: its data is "
                "kept for the complaint's defence; erase it once every order is complied "
                "with")
    return None

