"""Complaint references and the channel ids they were lodged under.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the references table."""
    op.create_table(
        "references",
        sa.Column("reference", sa.String(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("channel_reference", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("reference"),
        sa.UniqueConstraint("year", "seq", name="uq_references_year_seq"),
        sa.UniqueConstraint("channel", "channel_reference", name="uq_references_channel"),
    )


def downgrade() -> None:
    """Drop the references table."""
    op.drop_table("references")
