"""The case records of the ``Complaint`` workflow type (one recording per event).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the case_records table."""
    op.create_table(
        "case_records",
        sa.Column("reference", sa.String(), nullable=False),
        sa.Column("event_seq", sa.Integer(), nullable=False),
        sa.Column("policy_json", sa.Text(), nullable=False),
        sa.Column("case_json", sa.Text(), nullable=False),
        sa.Column("deadlines_json", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["reference"], ["complaints.reference"]),
        sa.PrimaryKeyConstraint("reference"),
    )


def downgrade() -> None:
    """Drop the case_records table."""
    op.drop_table("case_records")
