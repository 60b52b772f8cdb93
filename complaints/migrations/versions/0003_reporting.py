"""The reporting read model: responses, refusals and the dates reports count from.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Written by hand against ``models.tables`` (``tests/test_db.py`` compares the migrated
schema with the models):

- ``complaints`` gains the handlers, the acknowledgement dates and their due dates, the
  escalation request date, the exclusion / refusal flags and the withdrawal, decline and
  Ombudsman referral times. The two flags are NOT NULL, so existing rows get ``false``
  from a server default that is dropped again (the models have none).
- ``extensions`` gains ``stage_seq``, the extension's number at its stage, filled in here
  for existing rows (the n-th extension of a case at that stage); ``actions`` gains
  ``completed_on``, the London date of ``completed_at``, filled in here too; ``letters``
  gains an index on (reference, kind, stage) for the records evidence.
- New tables ``responses`` (one row per stage response with its base and final due
  dates and the working days taken) and ``refusals`` (one row per ground of a refused
  complaint or escalation).

Rows of cases that do not change again after the upgrade are not backfilled: the new
columns and tables fill in from each case's next snapshot.
"""

import datetime as dt
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = sa.DateTime(timezone=True)
_LONDON = ZoneInfo("Europe/London")

#: The new complaints columns, in model order.
_COMPLAINT_COLUMNS: tuple[tuple[str, sa.types.TypeEngine[Any]], ...] = (
    ("stage1_handler", sa.String()),
    ("stage2_handler", sa.String()),
    ("acknowledged_on", sa.Date()),
    ("acknowledgement_due", sa.Date()),
    ("escalation_requested_on", sa.Date()),
    ("stage2_acknowledged_on", sa.Date()),
    ("stage2_acknowledgement_due", sa.Date()),
)


def upgrade() -> None:
    """Add the reporting columns, number existing extensions, create the new tables."""
    for name, type_ in _COMPLAINT_COLUMNS:
        op.add_column("complaints", sa.Column(name, type_, nullable=True))
    op.add_column("complaints", sa.Column("excluded", sa.Boolean(), nullable=False,
                                          server_default=sa.false()))
    op.add_column("complaints", sa.Column("declined_at", _UTC, nullable=True))
    op.add_column("complaints", sa.Column("escalation_refused", sa.Boolean(), nullable=False,
                                          server_default=sa.false()))
    op.add_column("complaints", sa.Column("withdrawn_at", _UTC, nullable=True))
    op.add_column("complaints", sa.Column("referred_to_ombudsman_at", _UTC, nullable=True))
    with op.batch_alter_table("complaints") as batch:
        batch.alter_column("excluded", server_default=None)
        batch.alter_column("escalation_refused", server_default=None)
    op.create_index("ix_complaints_policy_received_on", "complaints",
                    ["policy_name", "received_on"])
    op.create_index("ix_complaints_escalation_requested_on", "complaints",
                    ["escalation_requested_on"])
    op.create_index("ix_complaints_referred_to_ombudsman_at", "complaints",
                    ["referred_to_ombudsman_at"])

    op.add_column("extensions", sa.Column("stage_seq", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE extensions SET stage_seq = (SELECT COUNT(*) FROM extensions AS earlier "
        "WHERE earlier.reference = extensions.reference "
        "AND earlier.stage = extensions.stage "
        "AND earlier.extension_seq <= extensions.extension_seq)")

    op.create_index("ix_letters_reference_kind_stage", "letters",
                    ["reference", "kind", "stage"])
    op.add_column("actions", sa.Column("completed_on", sa.Date(), nullable=True))
    _backfill_completed_on()

    op.create_table(
        "responses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(), nullable=False),
        sa.Column("responded_at", _UTC, nullable=False),
        sa.Column("responded_on", sa.Date(), nullable=False),
        sa.Column("by", sa.String(), nullable=False),
        sa.Column("clock_start", sa.Date(), nullable=False),
        sa.Column("due_base", sa.Date(), nullable=False),
        sa.Column("due_final", sa.Date(), nullable=False),
        sa.Column("extension_days", sa.Integer(), nullable=False),
        sa.Column("extension_within_code", sa.Boolean(), nullable=False),
        sa.Column("working_days_taken", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["reference"], ["complaints.reference"],
                                name="fk_responses_reference_complaints", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("reference", "stage", "seq", name="uq_responses_reference_stage_seq"),
    )
    op.create_index("ix_responses_stage_responded_on", "responses", ["stage", "responded_on"])

    op.create_table(
        "refusals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("ground", sa.String(), nullable=False),
        sa.Column("decided_at", _UTC, nullable=False),
        sa.Column("decided_on", sa.Date(), nullable=False),
        sa.Column("by", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(["reference"], ["complaints.reference"],
                                name="fk_refusals_reference_complaints", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("reference", "kind", "ground",
                            name="uq_refusals_reference_kind_ground"),
    )
    op.create_index("ix_refusals_kind_decided_on", "refusals", ["kind", "decided_on"])


def _backfill_completed_on() -> None:
    """Set ``actions.completed_on`` to the London date of ``completed_at`` (done actions)."""
    actions = sa.table("actions", sa.column("id", sa.Integer()),
                       sa.column("completed_at", _UTC), sa.column("completed_on", sa.Date()))
    bind = op.get_bind()
    done = bind.execute(sa.select(actions.c.id, actions.c.completed_at)
                        .where(actions.c.completed_at.is_not(None))).all()
    updates = []
    for action_id, completed_at in done:
        if isinstance(completed_at, str):  # SQLite without the column type's processing
            completed_at = dt.datetime.fromisoformat(completed_at)
        if completed_at.tzinfo is None:  # stored as UTC (models.tables.UTCDateTime)
            completed_at = completed_at.replace(tzinfo=dt.UTC)
        updates.append({"action_id": action_id,
                        "completed_on": completed_at.astimezone(_LONDON).date()})
    if updates:
        bind.execute(actions.update().where(actions.c.id == sa.bindparam("action_id"))
                     .values(completed_on=sa.bindparam("completed_on")), updates)


def downgrade() -> None:
    """Drop the new tables and columns."""
    op.drop_table("refusals")
    op.drop_table("responses")
    with op.batch_alter_table("actions") as batch:
        batch.drop_column("completed_on")
    op.drop_index("ix_letters_reference_kind_stage", table_name="letters")
    with op.batch_alter_table("extensions") as batch:
        batch.drop_column("stage_seq")
    op.drop_index("ix_complaints_referred_to_ombudsman_at", table_name="complaints")
    op.drop_index("ix_complaints_escalation_requested_on", table_name="complaints")
    op.drop_index("ix_complaints_policy_received_on", table_name="complaints")
    with op.batch_alter_table("complaints") as batch:
        for name in ("referred_to_ombudsman_at", "withdrawn_at", "escalation_refused",
                     "declined_at", "excluded"):
            batch.drop_column(name)
        for name, _type in reversed(_COMPLAINT_COLUMNS):
            batch.drop_column(name)
