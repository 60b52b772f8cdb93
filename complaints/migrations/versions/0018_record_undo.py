"""What each case record's latest event replaced: ``case_records.undo_json``.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-27

Written by hand against ``models.tables`` (``tests/test_db.py`` compares the migrated
schema with the models). A case's latest event can be recorded again in another version
(a workflow task refused after its local activity stored the event is replayed with
more in it), so the record keeps what that event replaced, to take it back first
(``activities.casework``). Records already stored start with nothing to take back
(``{}``): their latest event, if recorded again, is merged as it was before.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the column, ``{}`` for the records already stored (and by default).

    The server default stays: dropping it would take a batch (copy) of the table on
    SQLite, which reflects ``complaints`` and warns about its expression index on every
    first run of the command line.
    """
    op.add_column("case_records", sa.Column("undo_json", sa.Text(), nullable=False,
                                            server_default="{}"))


def downgrade() -> None:
    """Drop it."""
    with op.batch_alter_table("case_records") as batch:
        batch.drop_column("undo_json")
