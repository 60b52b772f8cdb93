"""Strict CH02, tenure and take-on by order: the columns the Regulator's figures need.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26

Written by hand against ``models.tables`` (``tests/test_db.py`` compares the migrated
schema with the models):

- ``responses`` gains what the strict CH02 rule needs, worked out when the case's
  snapshot is recorded (``activities.records.measure_responses``): the stage's
  acknowledgement date and its due date, whether every extension was agreed on or before
  the date it extends, the strict verdict ``within_code`` and the ``late_reason``.
- ``complaints`` gains ``tenure`` (``lcra`` / ``lcho`` / ``other``) and ``taken_on_on``,
  the day a declined complaint was taken on by the Ombudsman's order.

Existing rows are not backfilled here: the new columns stay NULL until ``complaints
resync`` re-applies every case's snapshots (or the case's next snapshot is recorded).
The report counts a response with no strict verdict as not within the Code timescales
and lists it with the reason "not measured under the strict rule", so an un-resynced
database never overstates CH02.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The new responses columns, in model order.
_RESPONSE_COLUMNS: tuple[tuple[str, sa.types.TypeEngine[Any]], ...] = (
    ("acknowledged_on", sa.Date()),
    ("acknowledgement_due", sa.Date()),
    ("extensions_timely", sa.Boolean()),
    ("within_code", sa.Boolean()),
    ("late_reason", sa.String()),
)
#: The new complaints columns, in model order.
_COMPLAINT_COLUMNS: tuple[tuple[str, sa.types.TypeEngine[Any]], ...] = (
    ("tenure", sa.String()),
    ("taken_on_on", sa.Date()),
)


def upgrade() -> None:
    """Add the strict CH02 columns to ``responses`` and tenure / take-on to ``complaints``."""
    for name, type_ in _RESPONSE_COLUMNS:
        op.add_column("responses", sa.Column(name, type_, nullable=True))
    for name, type_ in _COMPLAINT_COLUMNS:
        op.add_column("complaints", sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    """Drop the columns again."""
    # SQLite's batch mode copies the table and loses the expression index: make it again.
    op.drop_index("ix_complaints_handler_lower", table_name="complaints")
    with op.batch_alter_table("complaints") as batch:
        for name, _ in reversed(_COMPLAINT_COLUMNS):
            batch.drop_column(name)
    op.create_index("ix_complaints_handler_lower", "complaints", [sa.text("lower(handler_id)")])
    with op.batch_alter_table("responses") as batch:
        for name, _ in reversed(_RESPONSE_COLUMNS):
            batch.drop_column(name)
