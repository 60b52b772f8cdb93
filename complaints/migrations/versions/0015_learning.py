"""Learning from complaints (Code 8.1, 9): lessons, service changes, satisfaction.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-27

Written by hand against ``models.learning`` (``tests/test_db.py`` compares the migrated
schema with the models). Four new tables: each response's themes, root causes and
lessons; service changes; customer satisfaction with complaint handling. Nothing existing
changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the learning, tag, service change and satisfaction tables."""
    op.create_table(
        "response_learning",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=32), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("lessons", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", _UTC, nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["reference"], ["complaints.reference"],
                                name="fk_response_learning_reference_complaints",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("reference", "stage", name="uq_response_learning_reference_stage"),
    )
    op.create_table(
        "response_learning_tags",
        sa.Column("learning_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["learning_id"], ["response_learning.id"],
                                name="fk_response_learning_tags_learning",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("learning_id", "kind", "value"),
    )
    op.create_index("ix_response_learning_tags_kind_value", "response_learning_tags",
                    ["kind", "value"])
    op.create_table(
        "service_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=32), nullable=True),
        sa.Column("landlord", sa.String(length=200), nullable=False),
        sa.Column("theme", sa.String(length=64), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("done_on", sa.Date(), nullable=True),
        sa.Column("done_by", sa.String(length=64), nullable=True),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", _UTC, nullable=False),
        sa.ForeignKeyConstraint(["reference"], ["complaints.reference"],
                                name="fk_service_changes_reference_complaints",
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_service_changes_landlord", "service_changes", ["landlord"])
    op.create_index("ix_service_changes_done_on_due_on", "service_changes",
                    ["done_on", "due_on"])
    op.create_table(
        "satisfaction_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("landlord", sa.String(length=200), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("surveyed", sa.Integer(), nullable=False),
        sa.Column("satisfied", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("landlord", "period_start", "period_end",
                            name="uq_satisfaction_results_landlord_period"),
    )


def downgrade() -> None:
    """Drop the four tables."""
    op.drop_table("satisfaction_results")
    op.drop_index("ix_service_changes_done_on_due_on", table_name="service_changes")
    op.drop_index("ix_service_changes_landlord", table_name="service_changes")
    op.drop_table("service_changes")
    op.drop_index("ix_response_learning_tags_kind_value", table_name="response_learning_tags")
    op.drop_table("response_learning_tags")
    op.drop_table("response_learning")
