"""Remedy payments from the audit entries that record them (``pay_remedy``, 7.1-7.3).

An accepted ``pay_remedy`` entry's detail is the action as staff submitted it (JSON:
``stage``, ``remedy``, ``paid_on``, ``amount`` in pounds). Every writer of audit entries
(the case event's recording, :meth:`activities.records.RecordActivities.record_audit`,
the synthetic year) adds the rows of :func:`payment_rows` beside them, in the same
transaction, so ``remedy_payments`` always matches the audit trail.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import structlog

__all__ = ["PAY_REMEDY", "payment_rows"]

log = structlog.get_logger(__name__)

#: The audit action of a payment recorded (``models.actions.PayRemedy.trigger``).
PAY_REMEDY = "pay_remedy"


def _payment(reference: str, seq: int, detail: str | None) -> dict[str, Any] | None:
    """The ``remedy_payments`` row of one entry's detail, or None if it holds none."""
    try:
        action = json.loads(detail or "")
        pence = int((Decimal(str(action["amount"])) * 100).to_integral_value())
        return {"reference": reference, "seq": seq, "stage": int(action["stage"]),
                "position": int(action["remedy"]),
                "paid_on": dt.date.fromisoformat(str(action["paid_on"])),
                "amount_pence": pence}
    except (ValueError, TypeError, KeyError, InvalidOperation):
        # An entry written before the action's detail was stored in full: nothing to
        # count (the report never counted it either). Logged without the detail.
        log.warning("payment_detail_unreadable", reference=reference, seq=seq)
        return None


def payment_rows(reference: str, entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The payments among a case's new audit entries (dicts with the audit row's columns).

    Args:
        reference: The case.
        entries: The audit rows being inserted (``seq``, ``action``, ``accepted``,
            ``detail``).

    Returns:
        One ``remedy_payments`` row per accepted ``pay_remedy`` entry that can be read.

    """
    rows = []
    for entry in entries:
        if entry["action"] == PAY_REMEDY and entry["accepted"]:
            row = _payment(reference, int(entry["seq"]), entry.get("detail"))
            if row is not None:
                rows.append(row)
    return rows
