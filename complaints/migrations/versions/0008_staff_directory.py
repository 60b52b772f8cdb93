"""The staff directory: who may act on cases, with their roles and contact details.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28

Written by hand against ``models.tables`` (``tests/test_db.py`` compares the migrated
schema with the models). One new table, ``staff``, written by ``complaints.directory``
only (never by the workflows). ``staff_key`` is unique: ids that differ only in case,
compatibility forms or invisible characters name one person.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the staff table."""
    op.create_table(
        "staff",
        sa.Column("staff_id", sa.String(length=64), nullable=False),
        sa.Column("staff_key", sa.String(length=256), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("job_title", sa.String(length=200), nullable=False),
        sa.Column("team", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.Column("roles", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("deactivated_at", _UTC, nullable=True),
        sa.Column("deactivation_reason", sa.String(length=1000), nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("staff_id"),
        sa.UniqueConstraint("staff_key", name="uq_staff_staff_key"),
    )


def downgrade() -> None:
    """Drop the staff table."""
    op.drop_table("staff")
