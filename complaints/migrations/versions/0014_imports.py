"""Imported complaints: the historic year a landlord brings from its old system.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-26

Written by hand against ``models.tables`` and ``models.imports`` (``tests/test_db.py``
compares the migrated schema with the models). ``complaints`` gains ``imported``: the row
came from ``complaints import`` (no workflow ran it; the report counts it exactly as a live
one and says how many were imported). ``import_runs`` records each import (who, through
which door, the file's SHA-256, what it did) and ``imported_complaints`` the run that last
wrote each imported reference with the SHA-256 of its row, so that importing a file again
changes nothing.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``complaints.imported`` (false for every existing row) and the import tables."""
    op.add_column("complaints", sa.Column("imported", sa.Boolean(), nullable=False,
                                          server_default=sa.false()))
    op.create_table(
        "import_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("by", sa.String(length=64), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("imported", sa.Integer(), nullable=False),
        sa.Column("replaced", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "imported_complaints",
        sa.Column("reference", sa.String(length=32), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("row_sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["reference"], ["complaints.reference"],
                                name="fk_imported_complaints_reference_complaints",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_id"], ["import_runs.id"],
                                name="fk_imported_complaints_run_import_runs"),
        sa.PrimaryKeyConstraint("reference"),
    )
    op.create_index("ix_imported_complaints_run_id", "imported_complaints", ["run_id"])


def downgrade() -> None:
    """Drop the import tables and the column again."""
    op.drop_index("ix_imported_complaints_run_id", table_name="imported_complaints")
    op.drop_table("imported_complaints")
    op.drop_table("import_runs")
    # SQLite's batch mode copies the table and loses the expression index: make it again.
    op.drop_index("ix_complaints_handler_lower", table_name="complaints")
    with op.batch_alter_table("complaints") as batch:
        batch.drop_column("imported")
    op.create_index("ix_complaints_handler_lower", "complaints", [sa.text("lower(handler_id)")])
