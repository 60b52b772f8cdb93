"""Lodging a complaint: one new case per new intake, never someone else's case.

Shared by ``complaints lodge``, ``complaints dev`` and any other entry point (an HTTP API):
each calls :func:`lodge` and turns :class:`LodgingRefused` into its own one-line error.

The rules:

- **Same intake, same case.** Lodging is idempotent only for the same intake: the same
  channel reference *and* the same content, compared by :func:`intake_fingerprint` (never
  by the reference). Lodging it again returns the existing case.
- **A different intake is never merged.** One that arrives under an existing reference or
  channel reference is refused (:class:`LodgingRefused`, naming the existing case).
- **Temporal has the last word** on which references exist. The database
  (``references``) hands out numbers and remembers channel ids and fingerprints, but it
  can be behind: deleted, restored from a backup, another deployment's file, or an
  explicit reference ahead of the sequence. So every case starts with
  ``REJECT_DUPLICATE`` / ``FAIL``; when the id is taken, the intake it was started with
  (the first event of its history) decides: the same fingerprint is this intake again;
  a different one refuses an explicit reference, and moves an allocated one past every
  number Temporal has for the year (one visibility listing) and tries again.

Fingerprints are compared, stored in ``references.fingerprint``, and never logged or shown.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from complaints.db import (
    MAX_SEQ,
    ReferencesExhausted,
    allocate_row,
    ensure_schema,
    make_engine,
    parse_reference,
    record_reference,
    reference_for_channel,
    reserve_reference,
)
from models.events import CaseInput
from models.limits import first_problem
from models.messages import Intake

if TYPE_CHECKING:
    from models.tables import ReferenceRow

__all__ = [
    "Lodged",
    "LodgingRefused",
    "ReferenceTaken",
    "check_reference",
    "intake_fingerprint",
    "intake_of_case",
    "lodge",
    "start_case",
    "static_summary",
]

log = logging.getLogger("complaints.lodging")

#: How many references an automatic allocation tries before giving up.
MAX_ATTEMPTS = 10
#: The channel recorded for a number whose case's intake cannot be read.
UNKNOWN_CHANNEL = "unknown"


class LodgingRefused(Exception):
    """A complaint that cannot be lodged as given; the message is one line for staff.

    Attributes:
        reference: The existing case the refusal names, if any.

    """

    def __init__(self, message: str, reference: str | None = None) -> None:
        super().__init__(message)
        self.reference = reference


class ReferenceTaken(LodgingRefused):
    """Temporal already has a different complaint under this reference.

    Attributes:
        reference: The reference, taken.
        existing: The intake that case was started with (None if it cannot be read).

    """

    def __init__(self, reference: str, existing: Intake | None) -> None:
        super().__init__(f"{reference} already exists for a different complaint: lodge "
                         "without --reference, or give an unused one", reference)
        self.existing = existing


@dataclass(frozen=True)
class Lodged:
    """The outcome of lodging: the case, and whether this call created it."""

    reference: str
    handle: WorkflowHandle[Any, Any]
    created: bool


def intake_fingerprint(intake: Intake) -> str:
    """SHA-256 (hex) of the intake's canonical JSON without its reference.

    Canonical: ``model_dump(mode="json")`` with sorted keys and fixed separators. Fields
    left at their defaults are dropped, so that adding a field with a default to
    :class:`Intake` later does not make every earlier intake look different.
    """
    data = intake.model_dump(mode="json", exclude={"reference"}, exclude_defaults=True)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def check_reference(reference: str, received_on_year: int) -> None:
    """Refuse an explicit reference that is not a usable ``CMP-YYYY-NNNNNN``.

    The year must be the year the complaint was received (the sequence runs per year) and
    the number from 000001 (000000 is never handed out).

    Raises:
        LodgingRefused: If it is not.

    """
    try:
        year, seq = parse_reference(reference)
    except ValueError:
        raise LodgingRefused(f"{reference!r} is not a complaint reference: write it as "
                             f"CMP-{received_on_year}-NNNNNN, or lodge without --reference"
                             ) from None
    if year != received_on_year or not 1 <= seq <= MAX_SEQ:
        raise LodgingRefused(f"{reference} does not fit a complaint received in "
                             f"{received_on_year}: use CMP-{received_on_year}-NNNNNN with "
                             "a number from 000001, or lodge without --reference")


def static_summary(intake: Intake) -> str:
    """What the Web UI shows for the workflow: no personal data.

    Never the category: it is free text, and a caller may put anything in it.
    """
    return (f"Complaint {intake.reference} via {intake.channel.value}, "
            f"received {intake.received_on.isoformat()}, policy {intake.policy_name}")


async def intake_of_case(client: Client, reference: str,
                         run_id: str | None = None) -> Intake | None:
    """The intake a case's workflow was started with, from the first event of its history.

    Only the input's ``intake`` field is read, so any workflow type whose input carries
    the intake there will do. None when the input has no readable intake.
    """
    handle = client.get_workflow_handle(reference, run_id=run_id)
    async for event in handle.fetch_history_events(page_size=1):
        payloads = event.workflow_execution_started_event_attributes.input.payloads
        if not payloads:
            return None
        [data] = await client.data_converter.decode([payloads[0]], [dict[str, Any]])
        if not isinstance(data, dict) or not isinstance(data.get("intake"), dict):
            return None
        try:
            # Accepted when it was lodged: the lodging rules (e.g. "not in the future") are
            # about the day it came in, not today.
            return Intake.model_validate(data["intake"], context={"lodging": False})
        except ValueError:
            return None
    return None


async def start_case(client: Client, intake: Intake,
                     task_queue: str) -> tuple[WorkflowHandle[Any, Any], bool]:
    """Start the complaint's workflow under ``intake.reference``, or find the same intake's.

    ``REJECT_DUPLICATE`` and ``FAIL``: Temporal refuses the id whether its case is running
    or finished, and the existing case's own intake decides what that means.

    Returns:
        The case's handle, and True when this call started it.

    Raises:
        ReferenceTaken: If the reference holds a different complaint.

    """
    from complaints.policies import load_compliant_policy
    from workflows.complaint import SA_LANDLORD, SA_STAGE, SA_STATE, ComplaintWorkflow

    policy = load_compliant_policy(intake.policy_name)
    try:
        handle = await client.start_workflow(
            ComplaintWorkflow.run, CaseInput(intake=intake), id=intake.reference,
            task_queue=task_queue, id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=static_summary(intake),
            static_details=f"Landlord: {policy.landlord}. Deadlines and state are in the "
                           "search attributes and current details.",
            search_attributes=TypedSearchAttributes([
                SearchAttributePair(SA_STATE, "received"), SearchAttributePair(SA_STAGE, 0),
                SearchAttributePair(SA_LANDLORD, policy.landlord)]),
        )
        return handle, True
    except WorkflowAlreadyStartedError as exc:
        existing = await intake_of_case(client, intake.reference, exc.run_id or None)
        if existing is None or intake_fingerprint(existing) != intake_fingerprint(intake):
            raise ReferenceTaken(intake.reference, existing) from None
        # The same handle a start with USE_EXISTING returns: bound to no run for calls,
        # to the existing run for its result.
        return WorkflowHandle(client, intake.reference, result_run_id=exc.run_id or None,
                              first_execution_run_id=exc.first_run_id), False


async def lodge(client: Client, database: Engine | str, intake: Intake, task_queue: str, *,
                reference: str | None = None) -> Lodged:
    """Lodge ``intake`` as a new case, or return its case if this very intake was lodged.

    Args:
        client: The Temporal client (with the project's data converter).
        database: The complaints database: an engine, or a URL (migrated if needed).
        intake: The validated intake; its own ``reference`` is ignored.
        task_queue: The complaints task queue.
        reference: An explicit reference to lodge under; None to allocate the next one.

    Returns:
        The case, and whether this call created it.

    Raises:
        LodgingRefused: A bad explicit reference, or a different intake colliding with an
            existing reference or channel reference (the message names the case).
        PolicyError: The intake's policy is missing or breaks the Code.

    """
    from complaints.policies import load_compliant_policy

    problem = first_problem(intake)  # the documented limits (models.limits)
    if problem is not None:
        raise LodgingRefused(f"cannot lodge: {problem}")
    if reference is not None:
        check_reference(reference, intake.received_on.year)
    load_compliant_policy(intake.policy_name)  # A refused policy takes no reference number.
    if isinstance(database, Engine):
        return await _lodge(client, database, intake, task_queue, reference)
    await asyncio.to_thread(ensure_schema, database)
    engine = make_engine(database)
    try:
        return await _lodge(client, engine, intake, task_queue, reference)
    finally:
        engine.dispose()


def _channel_taken(channel: str, reference: str) -> LodgingRefused:
    return LodgingRefused(
        f"this {channel} channel reference was already lodged as {reference} with "
        f"different content: if it is the same complaint, act on {reference}; if not, "
        "give it a channel reference of its own", reference)


async def _reserve(engine: Engine, intake: Intake, fingerprint: str,
                   reference: str | None) -> ReferenceRow:
    """The database row this intake is to be started under (found, reserved or allocated)."""
    channel, channel_reference = intake.channel.value, intake.channel_reference
    row = None
    if channel_reference is not None:
        row = await asyncio.to_thread(reference_for_channel, engine, channel, channel_reference)
    if row is None and reference is not None:
        row = await asyncio.to_thread(reserve_reference, engine, reference, channel,
                                      channel_reference, fingerprint)
        if row.reference == reference and row.fingerprint not in (None, fingerprint):
            raise ReferenceTaken(reference, None)
    elif row is None:
        row = await asyncio.to_thread(allocate_row, engine, channel, channel_reference,
                                      intake.received_on.year, fingerprint)
    # A row found through the channel id (or won by a concurrent lodging of it).
    if row.fingerprint not in (None, fingerprint):
        raise _channel_taken(row.channel, row.reference)
    if reference is not None and row.reference != reference:
        raise LodgingRefused(
            f"this {channel} channel reference was already lodged as {row.reference}: lodge "
            f"without --reference to get that case, or give another channel reference",
            row.reference)
    return row


async def _used_numbers(client: Client, year: int) -> set[int]:
    """The sequence numbers of ``year`` Temporal has cases for (any workflow type)."""
    used = set()
    async for execution in client.list_workflows(f"WorkflowId STARTS_WITH 'CMP-{year:04d}-'"):
        try:
            found_year, seq = parse_reference(execution.id)
        except ValueError:
            continue
        if found_year == year:
            used.add(seq)
    return used


async def _lodge(client: Client, engine: Engine, intake: Intake, task_queue: str,
                 reference: str | None) -> Lodged:
    fingerprint = intake_fingerprint(intake)
    row = await _reserve(engine, intake, fingerprint, reference)
    for _ in range(MAX_ATTEMPTS):
        candidate = intake.model_copy(update={"reference": row.reference})
        try:
            handle, created = await start_case(client, candidate, task_queue)
        except ReferenceTaken as taken:
            # Correct the row: the number is that case's (whose intake may be unreadable).
            existing = taken.existing
            await asyncio.to_thread(
                record_reference, engine, row.reference,
                existing.channel.value if existing else UNKNOWN_CHANNEL,
                existing.channel_reference if existing else None,
                intake_fingerprint(existing) if existing else None)
            if reference is not None:
                raise
            if (existing is not None and intake.channel_reference is not None
                    and (existing.channel, existing.channel_reference)
                    == (intake.channel, intake.channel_reference)):
                # This channel id's case, with other content: the database had lost it.
                raise _channel_taken(intake.channel.value, row.reference) from None
        else:
            if row.fingerprint != fingerprint:  # A row from before fingerprints: fill it in.
                await asyncio.to_thread(record_reference, engine, row.reference,
                                        intake.channel.value, intake.channel_reference,
                                        fingerprint)
            return Lodged(row.reference, handle, created)
        # The database is behind Temporal: move past every number Temporal has this year.
        year, seq = parse_reference(row.reference)
        log.warning("the complaints database is behind Temporal, which has %s already (was "
                    "the database deleted or restored?); lodging under a later reference",
                    row.reference)
        used = await _used_numbers(client, year) | {seq}
        try:
            row = await asyncio.to_thread(
                allocate_row, engine, intake.channel.value, intake.channel_reference, year,
                fingerprint, at_least=max(used) + 1, skip=used)
        except ReferencesExhausted:
            raise LodgingRefused(f"every reference of {year} is taken") from None
        if row.fingerprint not in (None, fingerprint):
            raise _channel_taken(row.channel, row.reference)
    raise LodgingRefused(f"no free reference found after {MAX_ATTEMPTS} tries (other "
                         "lodgings are racing for them): lodge it again")
