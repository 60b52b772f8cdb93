"""Access: staff sign-in subjects, service tokens, case views, idempotency keys, webhooks.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26

Written by hand against ``models.tables`` and ``models.access`` (``tests/test_db.py``
compares the migrated schema with the models). The staff directory gains ``subject``, the
OpenID Connect subject a person signs in as (unique when set); four new tables are written
by the HTTP API and the web app only.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add the staff subject, the access tables and the inbox's handler index."""
    op.create_index("ix_complaints_handler_lower", "complaints", [sa.text("lower(handler_id)")])
    with op.batch_alter_table("staff") as batch:
        batch.add_column(sa.Column("subject", sa.String(length=255), nullable=True))
        batch.create_unique_constraint("uq_staff_subject", ["subject"])
    op.create_table(
        "service_tokens",
        sa.Column("token_id", sa.String(length=32), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("staff_id", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.String(length=2000), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("expires_at", _UTC, nullable=True),
        sa.Column("revoked_at", _UTC, nullable=True),
        sa.Column("last_used_at", _UTC, nullable=True),
        sa.PrimaryKeyConstraint("token_id"),
    )
    op.create_index("ix_service_tokens_staff_id", "service_tokens", ["staff_id"])
    op.create_table(
        "case_views",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=32), nullable=False),
        sa.Column("staff_id", sa.String(length=64), nullable=False),
        sa.Column("what", sa.String(length=120), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("viewed_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_case_views_reference_at", "case_views", ["reference", "viewed_at"])
    op.create_index("ix_case_views_staff_id", "case_views", ["staff_id"])
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("reference", sa.String(length=32), nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("staff_id", "key", name="uq_idempotency_staff_key"),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("reference", sa.String(length=32), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("next_attempt_at", _UTC, nullable=True),
        sa.Column("delivered_at", _UTC, nullable=True),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index("ix_webhook_deliveries_reference", "webhook_deliveries", ["reference"])
    op.create_index("ix_webhook_deliveries_status_next", "webhook_deliveries",
                    ["status", "next_attempt_at"])


def downgrade() -> None:
    """Drop the access tables, the staff subject and the handler index."""
    op.drop_index("ix_complaints_handler_lower", table_name="complaints")
    for index, table in (("ix_webhook_deliveries_status_next", "webhook_deliveries"),
                         ("ix_webhook_deliveries_reference", "webhook_deliveries"),
                         ("ix_case_views_staff_id", "case_views"),
                         ("ix_case_views_reference_at", "case_views"),
                         ("ix_service_tokens_staff_id", "service_tokens")):
        op.drop_index(index, table_name=table)
    for table in ("webhook_deliveries", "idempotency_keys", "case_views", "service_tokens"):
        op.drop_table(table)
    with op.batch_alter_table("staff") as batch:
        batch.drop_constraint("uq_staff_subject", type_="unique")
        batch.drop_column("subject")
