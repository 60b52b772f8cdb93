"""The fingerprint of the intake each reference was handed out for.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

``references.fingerprint`` is the SHA-256 of the intake's canonical JSON without its
reference (``complaints.lodging.intake_fingerprint``). Lodging compares it to tell the same
intake lodged again (idempotent) from a different complaint that collides with an existing
reference or channel reference (refused). Rows written before this revision keep NULL:
for them Temporal's copy of the intake decides.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the nullable fingerprint column."""
    # batch mode: SQLite cannot drop a column in place on downgrade; harmless elsewhere.
    with op.batch_alter_table("references") as batch:
        batch.add_column(sa.Column("fingerprint", sa.String(), nullable=True))


def downgrade() -> None:
    """Drop the fingerprint column."""
    with op.batch_alter_table("references") as batch:
        batch.drop_column("fingerprint")
