"""The retention job's messages: what a run is asked to do and what it did.

Pydantic messages that cross Temporal boundaries (the ``RetentionWorkflow`` input and
result, the ``erase_expired`` activity's argument and return value) and the CLI's and
API's answers. They carry references, dates, counts and reasons only: never personal
data, so a run's history in Temporal holds none either.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CaseErased", "CaseSkipped", "ErasureRequestInput", "RetentionRunInput",
           "RetentionRunResult"]

#: The most cases a run's result lists by name (the counts cover them all; the run's
#: row in ``erasure_runs`` and each case's in ``erasures`` are the full record).
LISTED = 200


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RetentionRunInput(_Message):
    """One run of the retention job.

    Attributes:
        as_of: The day retention periods are measured to (None: today in London; the
            workflow fills it in from its own clock, so a retried activity keeps it).
        dry_run: Report what would be erased, erasing nothing.
        run_key: Names the run once, so a retried activity finishes the same run
            (None: the activity's workflow run id, or a fresh id outside an activity).
    """

    as_of: dt.date | None = None
    dry_run: bool = False
    run_key: str | None = Field(default=None, max_length=200)


class CaseErased(_Message):
    """What was (or, in a dry run, would be) erased of one case."""

    reference: str
    fields: int = 0
    letters: int = 0
    documents: int = 0
    files: int = 0
    histories: int = 0


class CaseSkipped(_Message):
    """A case past its retention period that was not erased, and why (no personal data)."""

    reference: str
    reason: str


class RetentionRunResult(_Message):
    """What one run did: its record's id, the counts, and the cases by name (the first 200).

    Attributes:
        run_id: The run's row in ``erasure_runs``.
        as_of: The day retention was measured to.
        dry_run: Whether nothing was erased.
        cases_erased: Cases erased (in a dry run: that would be).
        cases_skipped: Cases past retention left alone, each with its reason.
        erased: The cases erased, with what of each (the first 200).
        skipped: The cases skipped, with why (the first 200).
    """

    run_id: int
    as_of: dt.date
    dry_run: bool
    cases_erased: int = 0
    cases_skipped: int = 0
    fields: int = 0
    letters: int = 0
    documents: int = 0
    files: int = 0
    histories: int = 0
    #: Resolved service requests that never became complaints, erased past their period.
    service_requests_erased: int = 0
    erased: tuple[CaseErased, ...] = ()
    skipped: tuple[CaseSkipped, ...] = ()


class ErasureRequestInput(_Message):
    """A resident's request to erase one case, as recorded by staff.

    Attributes:
        reference: The case.
        by: The member of staff recording it.
        note: Why, for the file (how the request came; no personal data).
    """

    reference: str = Field(min_length=1, max_length=32)
    by: str = Field(min_length=1, max_length=64)
    note: str = Field(min_length=1, max_length=2000)
