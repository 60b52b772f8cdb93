"""Service requests (Code 1.4, 1.5) and the complaint's link to the one it came from.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-26

Written by hand against ``models.service_requests`` (``tests/test_db.py`` compares the
migrated schema with the models). Two new tables; nothing existing changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create ``service_requests`` and ``complaint_service_requests``."""
    op.create_table(
        "service_requests",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("channel_reference", sa.String(length=200), nullable=True),
        sa.Column("category", sa.String(length=200), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("target_date", sa.Date(), nullable=False),
        sa.Column("resident_name", sa.String(length=200), nullable=False),
        sa.Column("resident_address", sa.Text(), nullable=False),
        sa.Column("resident_email", sa.String(length=200), nullable=True),
        sa.Column("resident_phone", sa.String(length=200), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("logged_by", sa.String(length=64), nullable=False),
        sa.Column("logged_at", _UTC, nullable=False),
        sa.Column("resolved_on", sa.Date(), nullable=True),
        sa.Column("resolved_by", sa.String(length=64), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.Column("complaint_reference", sa.String(length=32), nullable=True),
        sa.Column("converted_on", sa.Date(), nullable=True),
        sa.Column("converted_by", sa.String(length=64), nullable=True),
        sa.Column("told_how_to_complain_on", sa.Date(), nullable=True),
        sa.Column("told_how_to_complain_by", sa.String(length=64), nullable=True),
        sa.Column("erased_at", _UTC, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("year", "seq", name="uq_service_requests_year_seq"),
        sa.UniqueConstraint("channel", "channel_reference", name="uq_service_requests_channel"),
    )
    op.create_index("ix_service_requests_category", "service_requests", ["category"])
    op.create_index("ix_service_requests_received_on", "service_requests", ["received_on"])
    op.create_index("ix_service_requests_complaint_reference", "service_requests",
                    ["complaint_reference"])
    op.create_index("ix_service_requests_resolved_on_target_date", "service_requests",
                    ["resolved_on", "target_date"])
    op.create_table(
        "complaint_service_requests",
        sa.Column("reference", sa.String(length=32), nullable=False),
        sa.Column("service_request_id", sa.String(length=32), nullable=False),
        sa.Column("linked_by", sa.String(length=64), nullable=False),
        sa.Column("linked_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("reference"),
    )
    op.create_index("ix_complaint_service_requests_service_request_id",
                    "complaint_service_requests", ["service_request_id"])


def downgrade() -> None:
    """Drop the two tables."""
    op.drop_index("ix_complaint_service_requests_service_request_id",
                  table_name="complaint_service_requests")
    op.drop_table("complaint_service_requests")
    for name in ("ix_service_requests_resolved_on_target_date",
                 "ix_service_requests_complaint_reference",
                 "ix_service_requests_received_on", "ix_service_requests_category"):
        op.drop_index(name, table_name="service_requests")
    op.drop_table("service_requests")
