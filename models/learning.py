"""The learning tables: what each response taught, what changed, and residents' satisfaction.

Learning from complaints (Code 8.1, 9) is recorded by the application layer
(``complaints.learning``), never through the workflow: the case's history is not touched.

- ``response_learning``: one row per stage response (reference, stage): the lessons
  learned, who recorded them and when; recording again replaces it (``revision`` counts).
- ``response_learning_tags``: its themes and root causes, one row each, so that the
  report groups by theme in SQL on SQLite and PostgreSQL alike (no JSON).
- ``service_changes``: a change made to the service because of complaints, with its owner
  and the date it is due or was done; ``reference`` is the complaint it came from, when
  there is one (a change may come from several).
- ``satisfaction_results``: customer satisfaction with complaint handling (Connexus
  policy 4.2), entered per period per landlord.

Themes, lessons and changes describe the service, and the people named are staff, by id;
but ``lessons`` is free text a resident's name may be typed into, so erasing a case blanks
its lessons (``activities.anonymise``) and subject access exports them
(``complaints.subject_access``).
"""

import datetime as dt

from sqlalchemy import ForeignKey, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.tables import UTCDateTime, utcnow

__all__ = ["LearningRow", "LearningTagRow", "SatisfactionRow", "ServiceChangeRow",
           "TAG_KINDS"]

#: The kinds of tag: the policy's vocabularies (``[learning] themes``, ``root_causes``).
TAG_KINDS = ("theme", "root_cause")


class LearningRow(SQLModel, table=True):
    """What a stage response taught: lessons learned; its tags in ``LearningTagRow``."""

    __tablename__ = "response_learning"
    __table_args__ = (
        UniqueConstraint("reference", "stage", name="uq_response_learning_reference_stage"),
    )

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(max_length=32, sa_column_args=[ForeignKey(
        "complaints.reference", name="fk_response_learning_reference_complaints",
        ondelete="CASCADE")])
    stage: int
    lessons: str = Field(default="", sa_type=Text)
    recorded_by: str = Field(max_length=64)
    recorded_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    #: 1 when first recorded, one more each time it is recorded again (replaced).
    revision: int = 1


class LearningTagRow(SQLModel, table=True):
    """One theme or root cause of a response's learning (``kind``: ``theme``/``root_cause``)."""

    __tablename__ = "response_learning_tags"
    __table_args__ = (
        Index("ix_response_learning_tags_kind_value", "kind", "value"),
    )

    learning_id: int = Field(primary_key=True, sa_column_args=[ForeignKey(
        "response_learning.id", name="fk_response_learning_tags_learning",
        ondelete="CASCADE")])
    kind: str = Field(primary_key=True, max_length=16)
    value: str = Field(primary_key=True, max_length=64)


class ServiceChangeRow(SQLModel, table=True):
    """A change to the service made because of complaints: what, who owns it, when."""

    __tablename__ = "service_changes"
    __table_args__ = (
        Index("ix_service_changes_done_on_due_on", "done_on", "due_on"),
    )

    id: int | None = Field(default=None, primary_key=True)
    #: The complaint it came from (None: several, or none in particular). Kept when the
    #: complaint row goes: the change was still made.
    reference: str | None = Field(default=None, max_length=32, sa_column_args=[ForeignKey(
        "complaints.reference", name="fk_service_changes_reference_complaints",
        ondelete="SET NULL")])
    #: The landlord whose service changed (from the complaint's, or given).
    landlord: str = Field(max_length=200, index=True)
    #: A theme of the landlord's vocabulary it answers, if one.
    theme: str | None = Field(default=None, max_length=64)
    description: str = Field(sa_type=Text)
    owner: str = Field(max_length=64)
    due_on: dt.date
    done_on: dt.date | None = None
    done_by: str | None = Field(default=None, max_length=64)
    recorded_by: str = Field(max_length=64)
    recorded_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SatisfactionRow(SQLModel, table=True):
    """Residents surveyed on complaint handling in a period, and how many were satisfied."""

    __tablename__ = "satisfaction_results"
    __table_args__ = (
        UniqueConstraint("landlord", "period_start", "period_end",
                         name="uq_satisfaction_results_landlord_period"),
    )

    id: int | None = Field(default=None, primary_key=True)
    landlord: str = Field(max_length=200)
    period_start: dt.date
    period_end: dt.date
    surveyed: int
    satisfied: int
    #: Where the figures come from (the survey, its provider), and any notes.
    source: str = Field(default="", sa_type=Text)
    recorded_by: str = Field(max_length=64)
    recorded_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
