"""Remedy payments as rows: ``remedy_payments``, filled from the audit trail.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-27

Written by hand against ``models.tables`` (``tests/test_db.py`` compares the migrated
schema with the models). Until now the report found each payment by reading the JSON of
every accepted ``pay_remedy`` audit entry; the writers of audit entries now add a
``remedy_payments`` row beside each (``activities.payments``). This revision makes the
table and fills it from the entries already stored, with the same reading of the JSON
(kept here, as it stood, so the migration never changes with the application).
"""

import datetime as dt
import json
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Rows inserted per statement while filling the table.
_BATCH = 5000


def _row(reference: str, seq: int, detail: str | None) -> dict[str, Any] | None:
    try:
        action = json.loads(detail or "")
        return {"reference": reference, "seq": seq, "stage": int(action["stage"]),
                "position": int(action["remedy"]),
                "paid_on": dt.date.fromisoformat(str(action["paid_on"])),
                "amount_pence": int((Decimal(str(action["amount"])) * 100)
                                    .to_integral_value())}
    except (ValueError, TypeError, KeyError, InvalidOperation):
        return None  # not a payment the report could read before either


def upgrade() -> None:
    """Create ``remedy_payments`` and fill it from the accepted ``pay_remedy`` entries."""
    payments = op.create_table(
        "remedy_payments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=False),
        sa.Column("amount_pence", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("reference", "seq", name="uq_remedy_payments_reference_seq"),
    )
    op.create_index("ix_remedy_payments_reference_stage_position", "remedy_payments",
                    ["reference", "stage", "position"])
    assert payments is not None
    audit = sa.table("audit_events", sa.column("reference", sa.String()),
                     sa.column("seq", sa.Integer()), sa.column("action", sa.String()),
                     sa.column("accepted", sa.Boolean()), sa.column("detail", sa.Text()))
    connection = op.get_bind()
    entries = connection.execute(
        sa.select(audit.c.reference, audit.c.seq, audit.c.detail)
        .where(audit.c.action == "pay_remedy", audit.c.accepted == sa.true())).all()
    batch: list[dict[str, Any]] = []
    for reference, seq, detail in entries:
        row = _row(reference, seq, detail)
        if row is not None:
            batch.append(row)
        if len(batch) >= _BATCH:
            connection.execute(sa.insert(payments), batch)
            batch = []
    if batch:
        connection.execute(sa.insert(payments), batch)


def downgrade() -> None:
    """Drop the table (the audit trail still holds every payment)."""
    op.drop_index("ix_remedy_payments_reference_stage_position", table_name="remedy_payments")
    op.drop_table("remedy_payments")
