"""Indexes for the report's lists and the responses offering money.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-27

Written by hand against ``models.tables`` (``tests/test_db.py`` compares the migrated
schema with the models). Measured on a synthetic year of 200,000 complaints on
PostgreSQL, where the report was still 2.7-3.6 times the raw CH01/CH02 query:

- the unpaid remedies past their date were listed by sorting the year's financial
  remedies (60,000) to keep the first 50: ``ix_remedies_financial_due`` (partial, the
  financial ones) hands them over in the list's order, each checked for a payment,
  and the list stops at its limit;
- the responses offering money were counted by hashing the same remedies:
  ``ix_remedies_financial_offered`` (partial) has them in (offered_at, reference,
  stage) order, so that a response's remedies come side by side and the distinct ones
  are counted as the index is read. They replace ``ix_remedies_kind_offered_at``
  (revision 0019), which served both less well and every kind of remedy;
- the overdue actions were found by reading every action: ``ix_actions_completed_on_due_by``
  finds the open ones (no completion date, or one after the as-of date) directly. It
  replaces ``ix_actions_completed_at_due_by``, on the completion instant, which no query
  reads.

A partial index's WHERE clause is written as SQL that both databases accept.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The remedies the report's partial indexes hold (``models.tables.FINANCIAL_REMEDY``).
FINANCIAL = "kind = 'financial'"


def upgrade() -> None:
    """Create the partial and the actions' indexes, drop the two they replace."""
    for name, columns in (
            ("ix_remedies_financial_due",
             ["due_by", "reference", "stage", "position", "offered_at"]),
            ("ix_remedies_financial_offered", ["offered_at", "reference", "stage"])):
        op.create_index(name, "remedies", columns, postgresql_where=sa.text(FINANCIAL),
                        sqlite_where=sa.text(FINANCIAL))
    op.drop_index("ix_remedies_kind_offered_at", table_name="remedies")
    op.create_index("ix_actions_completed_on_due_by", "actions", ["completed_on", "due_by"])
    op.drop_index("ix_actions_completed_at_due_by", table_name="actions")


def downgrade() -> None:
    """Put back the indexes of revision 0019."""
    op.create_index("ix_actions_completed_at_due_by", "actions", ["completed_at", "due_by"])
    op.drop_index("ix_actions_completed_on_due_by", table_name="actions")
    op.create_index("ix_remedies_kind_offered_at", "remedies",
                    ["kind", "offered_at", "reference", "stage", "position", "due_by"])
    op.drop_index("ix_remedies_financial_offered", table_name="remedies")
    op.drop_index("ix_remedies_financial_due", table_name="remedies")
