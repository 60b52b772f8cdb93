"""Letters keep their accessible PDF beside the text and HTML.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30

Written by hand against ``models.tables`` (``tests/test_db.py`` compares the migrated
schema with the models). Two nullable columns on ``letters``: ``pdf``, the letter printed
from its HTML by WeasyPrint (PDF/UA-1), and ``pdf_sha256``. Letters stored before this
revision keep NULL: one already delivered is never printed again (it is the record of
what the resident received); one not yet delivered gets its PDF when it is sent.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the PDF and its SHA-256 to letters."""
    op.add_column("letters", sa.Column("pdf", sa.LargeBinary(), nullable=True))
    op.add_column("letters", sa.Column("pdf_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    """Drop the PDF columns."""
    with op.batch_alter_table("letters") as batch:
        batch.drop_column("pdf_sha256")
        batch.drop_column("pdf")
