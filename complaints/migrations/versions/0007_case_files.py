"""Case files: documents on a case, the unacceptable-behaviour register and triage.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27

Written by hand against ``models.tables`` (``tests/test_db.py`` compares the migrated
schema with the models). Four new tables, written by ``complaints.casefiles`` only (never
by the workflows): ``case_documents`` (5.12), ``contact_restrictions`` and its append-only
``contact_restriction_history`` (3.6), and ``case_triage`` (5.10, 6.1).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = sa.DateTime(timezone=True)


def _reference_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["reference"], ["complaints.reference"],
                                   name=f"fk_{table}_reference_complaints", ondelete="CASCADE")


def upgrade() -> None:
    """Create the four case-file tables."""
    op.create_table(
        "case_documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(), nullable=False),
        sa.Column("document_id", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("file_name", sa.String(), nullable=False),
        sa.Column("stored_name", sa.String(), nullable=False),
        sa.Column("media_type", sa.String(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("direction", sa.String(), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=True),
        sa.Column("added_by", sa.String(), nullable=True),
        sa.Column("added_at", _UTC, nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        _reference_fk("case_documents"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("reference", "sha256", name="uq_case_documents_reference_sha256"),
        sa.UniqueConstraint("reference", "document_id",
                            name="uq_case_documents_reference_document_id"),
    )

    op.create_table(
        "contact_restrictions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("proportionality", sa.Text(), nullable=False),
        sa.Column("contact_route", sa.Text(), nullable=False),
        sa.Column("review_on", sa.Date(), nullable=True),
        sa.Column("added_by", sa.String(), nullable=False),
        sa.Column("added_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.Column("lifted_at", _UTC, nullable=True),
        _reference_fk("contact_restrictions"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_contact_restrictions_reference", "contact_restrictions",
                    ["reference"])
    op.create_index("ix_contact_restrictions_status_review_on", "contact_restrictions",
                    ["status", "review_on"])

    op.create_table(
        "contact_restriction_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("restriction_id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("next_review_on", sa.Date(), nullable=True),
        sa.Column("by", sa.String(), nullable=False),
        sa.Column("at", _UTC, nullable=False),
        sa.Column("snapshot_json", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["restriction_id"], ["contact_restrictions.id"],
                                name="fk_contact_restriction_history_restriction",
                                ondelete="CASCADE"),
        _reference_fk("contact_restriction_history"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_contact_restriction_history_restriction_id",
                    "contact_restriction_history", ["restriction_id"])

    op.create_table(
        "case_triage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(), nullable=False),
        sa.Column("complexity", sa.String(), nullable=False),
        sa.Column("vulnerability", sa.String(), nullable=False),
        sa.Column("risk", sa.String(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("by", sa.String(), nullable=False),
        sa.Column("at", _UTC, nullable=False),
        _reference_fk("case_triage"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_case_triage_reference_id", "case_triage", ["reference", "id"])


def downgrade() -> None:
    """Drop the four case-file tables (the stored document files are left on disk)."""
    op.drop_index("ix_case_triage_reference_id", table_name="case_triage")
    op.drop_table("case_triage")
    op.drop_index("ix_contact_restriction_history_restriction_id",
                  table_name="contact_restriction_history")
    op.drop_table("contact_restriction_history")
    op.drop_index("ix_contact_restrictions_status_review_on",
                  table_name="contact_restrictions")
    op.drop_index("ix_contact_restrictions_reference", table_name="contact_restrictions")
    op.drop_table("contact_restrictions")
    op.drop_table("case_documents")
