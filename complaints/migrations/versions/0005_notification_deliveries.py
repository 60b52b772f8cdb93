"""Staff notification emails, claimed before they are sent.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26

New table ``notification_deliveries``: one row per staff notification email, written with
status ``sending`` before the email is handed to the SMTP server and marked ``sent`` (or
``resent`` / ``unconfirmed``) after, as ``deliveries`` does for letters
(``activities.email_once``). A retried notification that finds a delivered row does not
email again. Notifications recorded before this revision have no rows: their
``notifications`` row already says they are done.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``notification_deliveries``."""
    op.create_table(
        "notification_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("notification_id", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("notification_id", "channel", "recipient",
                            name="uq_notification_deliveries_notification_channel_recipient"),
    )


def downgrade() -> None:
    """Drop ``notification_deliveries``."""
    op.drop_table("notification_deliveries")
