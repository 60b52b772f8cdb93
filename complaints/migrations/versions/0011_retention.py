"""Retention: the erasure runs, each case's erasure, and subject access requests.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26

Written by hand against ``models.tables`` (``tests/test_db.py`` compares the migrated
schema with the models). Three new tables, written by the retention job
(``activities.retention``), erasure requests and subject access exports
(``complaints.subject_access``); none holds personal data.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = sa.DateTime(timezone=True)
#: The counts an erasure run and each case's erasure keep, in this order.
_COUNTS = ("fields", "letters", "documents", "files", "histories")


def _counts() -> list[sa.Column]:  # type: ignore[type-arg]
    return [sa.Column(name, sa.Integer(), nullable=False) for name in _COUNTS]


def upgrade() -> None:
    """Create ``erasure_runs``, ``erasures`` and ``subject_access_requests``."""
    op.create_table(
        "erasure_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_key", sa.String(length=200), nullable=False),
        sa.Column("started_at", _UTC, nullable=False),
        sa.Column("finished_at", _UTC, nullable=True),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("cases_erased", sa.Integer(), nullable=False),
        sa.Column("cases_skipped", sa.Integer(), nullable=False),
        *_counts(),
        sa.Column("skipped_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_key", name="uq_erasure_runs_run_key"),
    )
    op.create_table(
        "erasures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=32), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("request_id", sa.String(length=36), nullable=True),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=True),
        sa.Column("request_note", sa.Text(), nullable=True),
        sa.Column("erased_at", _UTC, nullable=False),
        *_counts(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("reference", name="uq_erasures_reference"),
    )
    op.create_index("ix_erasures_run_id", "erasures", ["run_id"])
    op.create_table(
        "subject_access_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.String(length=64), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("requested_at", _UTC, nullable=False),
        sa.Column("cases", sa.Integer(), nullable=False),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("terms_sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    """Drop the three tables."""
    op.drop_index("ix_erasures_run_id", table_name="erasures")
    for table in ("subject_access_requests", "erasures", "erasure_runs"):
        op.drop_table(table)
