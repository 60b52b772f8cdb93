"""Indexes for the report: the responses' join to complaints, take-on dates, audit actions.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-27

Written by hand against ``models.tables`` (``tests/test_db.py`` compares the migrated
schema with the models). Indexes only; no data changes:

- ``ix_complaints_report_join`` covers the complaint columns the report's pass over the
  responses reads through its join, so the join is one index seek per response;
- ``ix_complaints_taken_on_on``: complaints taken on by order in a period (CH01);
- ``ix_audit_events_action_at``: accepted actions of one kind in a period (determinations).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = (
    ("ix_complaints_report_join", "complaints",
     ["reference", "state", "landlord", "tenure", "policy_name", "category",
      "escalation_requested_on"]),
    ("ix_complaints_taken_on_on", "complaints", ["taken_on_on"]),
    ("ix_audit_events_action_at", "audit_events", ["action", "at"]),
)


def upgrade() -> None:
    """Create the indexes."""
    for name, table, columns in _INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    """Drop them."""
    for name, table, _ in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
