"""Imported complaints: the historic year a landlord brings from its old system.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-26

Written by hand against ``models.tables`` (``tests/test_db.py`` compares the migrated
schema with the models). ``complaints`` gains ``imported``: the row came from
``complaints import`` (no workflow ran it; the report counts it exactly as a live one and
says how many were imported).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``complaints.imported`` (false for every existing row)."""
    op.add_column("complaints", sa.Column("imported", sa.Boolean(), nullable=False,
                                          server_default=sa.false()))


def downgrade() -> None:
    """Drop the column again."""
    # SQLite's batch mode copies the table and loses the expression index: make it again.
    op.drop_index("ix_complaints_handler_lower", table_name="complaints")
    with op.batch_alter_table("complaints") as batch:
        batch.drop_column("imported")
    op.create_index("ix_complaints_handler_lower", "complaints", [sa.text("lower(handler_id)")])
