"""Measuring each stage response against its time limits, as the reports count them.

:func:`measure_responses` turns a case's responses and the deadlines the workflow planned
into one :class:`ResponseMeasure` per response (a ``ResponseRow``'s values): base and final
due dates, extension days, working days taken, and the strict CH02 verdict over the whole
chain (:func:`strict_verdict`). A snapshot writes them (:mod:`activities.records`); the CSV
import measures imported cases with the same functions (``complaints.import_rows``).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import structlog

from complaints.policies import PolicyError, load_compliant_policy
from complaints.workdays import LONDON, WorkingCalendar
from models.case import CaseFile, ExtensionRecord, ResponseRecord
from models.messages import Deadline, DeadlineKind, DeadlineStatus
from models.policy import Policy, ResponseClock

log = structlog.get_logger(__name__)

#: The policy used when a case's own policy can no longer be loaded (the Code's limits).
FALLBACK_POLICY = "code-2024"


def london_date(instant: dt.datetime) -> dt.date:
    """Return the Europe/London calendar date of an aware instant."""
    return instant.astimezone(LONDON).date()


@functools.lru_cache(maxsize=64)
def policy_and_calendar(name: str) -> tuple[Policy, WorkingCalendar]:
    """Load a Code-compliant policy and its working calendar, once per name.

    A policy that can no longer be loaded (renamed, or edited into breach of the Code
    since the case started) falls back to ``code-2024``: the Code's own limits.

    Args:
        name: The policy name stored with the case.

    Returns:
        The policy and its working calendar.

    """
    try:
        policy = load_compliant_policy(name)
    except PolicyError as exc:
        log.warning("policy_unavailable_using_code", policy=name, error=str(exc))
        policy = load_compliant_policy(FALLBACK_POLICY)
    return policy, WorkingCalendar.for_policy(policy)


@dataclass(frozen=True)
class ResponseMeasure:
    """One stage response measured against its time limits (a ``ResponseRow``'s values)."""

    stage: int
    seq: int
    decision: str
    responded_at: dt.datetime
    responded_on: dt.date
    by: str
    clock_start: dt.date
    due_base: dt.date
    due_final: dt.date
    extension_days: int
    extension_within_code: bool
    working_days_taken: int
    acknowledged_on: dt.date | None = None
    acknowledgement_due: dt.date | None = None
    extensions_timely: bool = True
    within_code: bool = True
    late_reason: str | None = None


RESPONSE_KIND = {1: DeadlineKind.STAGE1_RESPONSE, 2: DeadlineKind.STAGE2_RESPONSE}
_ACK_KIND = {1: DeadlineKind.STAGE1_ACKNOWLEDGEMENT, 2: DeadlineKind.STAGE2_ACKNOWLEDGEMENT}


def _days(n: int) -> str:
    return f"{n} working day{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class _Strict:
    """The strict CH02 verdict of one response (see :func:`strict_verdict`)."""

    acknowledged_on: dt.date | None
    acknowledgement_due: dt.date | None
    extensions_timely: bool
    within_code: bool
    late_reason: str | None


def strict_verdict(*, acknowledged_on: dt.date | None, acknowledgement_due: dt.date | None,
                   dues: Sequence[dt.date], extensions: Sequence[ExtensionRecord],
                   responded_on: dt.date, cap: int,
                   calendar: WorkingCalendar) -> _Strict:
    """Whether a response was within the Code timescales over its whole chain (strict CH02).

    The rule, as the report's Method states it: the stage was acknowledged on or before
    the acknowledgement's due date (receipt / the request plus the acknowledgement
    limit); each extension counts only when agreed on or before the end of the due date
    it extends (an extension agreed on the due day is in time: "within" means by the end
    of that day) and when the stage's extensions total no more than the cap, or more
    with a good reason recorded; the response was issued on or before the due date in
    force after the extensions that count (the first one that does not count ends the
    chain). Dates are London days; working days those of ``calendar`` (Monday-Friday less
    the nation's bank holidays, never lengthened by closure days).

    Args:
        acknowledged_on: The day the stage was acknowledged (None: it never was).
        acknowledgement_due: The acknowledgement's due date (None: none on record).
        dues: The response clock's due dates: the base due date, then one per extension.
        extensions: The extensions that planned ``dues[1:]``, in order.
        responded_on: The day the response was issued.
        cap: The stage's extension cap in working days (6.4, 6.15).
        calendar: The policy's working calendar.

    Returns:
        The verdict and, when not within, every reason in words.

    """
    reasons: list[str] = []
    if acknowledged_on is None:
        reasons.append("not acknowledged")
    elif acknowledgement_due is not None and acknowledged_on > acknowledgement_due:
        late = calendar.working_days_between(acknowledgement_due, acknowledged_on)
        reasons.append(f"acknowledged {_days(late)} late")
    timely = all(london_date(e.at) <= due
                 for e, due in zip(extensions, dues[:-1], strict=False))
    in_force, total, good = dues[0], 0, False
    for extension, extends, new_due in zip(extensions, dues[:-1], dues[1:], strict=False):
        if london_date(extension.at) > extends:
            reasons.append("extension agreed after the due date")
            break
        total += calendar.working_days_between(extends, new_due)
        good = good or bool(extension.good_reason)
        if total > cap and not good:
            reasons.append("extension beyond the cap without a good reason")
            break
        in_force = new_due
    if responded_on > in_force:
        late = calendar.working_days_between(in_force, responded_on)
        reasons.append(f"responded {_days(late)} after the due date")
    return _Strict(acknowledged_on=acknowledged_on, acknowledgement_due=acknowledgement_due,
                   extensions_timely=timely, within_code=not reasons,
                   late_reason="; ".join(reasons) or None)


def _acknowledgement(deadlines: Sequence[Deadline], stage: int, clock_start: dt.date
                     ) -> Deadline | None:
    """The stage's acknowledgement deadline that the response clock starting then followed.

    The last one started on or before the clock start (an order taking a declined
    complaint on plans a new one; the response's clock follows the latest).
    """
    return next((d for d in reversed(deadlines)
                 if d.kind is _ACK_KIND[stage] and d.start <= clock_start), None)


def _answered_chains(deadlines: Iterable[Deadline], kind: DeadlineKind) -> list[list[Deadline]]:
    """Group a stage's response deadlines into one chain per response clock.

    A chain is the base deadline followed by the deadlines its extensions planned; it
    ends at a deadline that was met (the response) or cancelled (withdrawn, referred).
    Only chains ending in a met deadline (on time or late) belong to a response.
    """
    chains: list[list[Deadline]] = []
    chain: list[Deadline] = []
    for deadline in deadlines:
        if deadline.kind is not kind:
            continue
        chain.append(deadline)
        if deadline.met_at is not None or deadline.status is DeadlineStatus.CANCELLED:
            chains.append(chain)
            chain = []
    return [c for c in chains if c[-1].met_at is not None]


def last_met(deadlines: Sequence[Deadline], kind: DeadlineKind) -> Deadline | None:
    """Return the latest deadline of ``kind`` that was met (on time or late), if any."""
    return next((d for d in reversed(deadlines) if d.kind is kind and d.met_at is not None),
                None)


def latest(deadlines: Sequence[Deadline], kind: DeadlineKind) -> Deadline | None:
    """Return the latest deadline of ``kind``, if any."""
    return next((d for d in reversed(deadlines) if d.kind is kind), None)


def _fallback_clock_start(stage: int, policy: Policy, case: CaseFile,
                          acknowledged_on: dt.date | None,
                          stage2_acknowledged_on: dt.date | None,
                          response: ResponseRecord) -> dt.date:
    """The clock start of a response with no deadline on record (older data, tests)."""
    if stage == 1:
        if policy.limits.stage1_response_from is ResponseClock.ACKNOWLEDGEMENT and \
                acknowledged_on is not None:
            return acknowledged_on
        return case.received_on
    requested = case.escalation_requested_on or london_date(response.at)
    if policy.limits.stage2_response_from is ResponseClock.ACKNOWLEDGEMENT and \
            stage2_acknowledged_on is not None:
        return stage2_acknowledged_on
    return requested


def measure_responses(case: CaseFile, deadlines: Sequence[Deadline], policy: Policy,
                      calendar: WorkingCalendar, acknowledged_on: dt.date | None = None,
                      stage2_acknowledged_on: dt.date | None = None) -> list[ResponseMeasure]:
    """Measure every stage response of a case against its base and final due dates.

    The dates come from the case's response deadlines, as the workflow planned them when
    the case ran (so a later change to holiday data does not rewrite history): the base
    due date is the first deadline of the response's chain, the final due date the last
    (each extension plans a new one from the previous due date), the clock start the
    base deadline's start. A response with no deadline on record is measured from the
    policy instead: its clock start (acknowledgement, or receipt / request), the stage's
    time limit, then the extensions granted at the stage.

    Args:
        case: The case file (its responses and extensions).
        deadlines: The case's deadlines, in the order they were planned.
        policy: The case's policy (time limits and extension caps).
        calendar: The policy's working calendar.
        acknowledged_on: The stage 1 acknowledgement date, when known.
        stage2_acknowledged_on: The stage 2 acknowledgement date, when known.

    Returns:
        One measure per response, in stage and issue order.

    """
    measures: list[ResponseMeasure] = []
    for stage in (1, 2):
        responses = [r for r in case.responses if r.stage == stage]
        if not responses:
            continue
        chains = _answered_chains(deadlines, RESPONSE_KIND[stage])
        limit = policy.limits.stage1_response if stage == 1 else policy.limits.stage2_response
        stage_extensions = [e for e in case.extensions if e.stage == stage]
        good_reason = any(e.good_reason for e in stage_extensions)
        # Each extension planned the next deadline of a chain: they are taken in order.
        unused = list(stage_extensions)
        for seq, response in enumerate(responses, 1):
            responded_on = london_date(response.at)
            if seq <= len(chains):
                chain = chains[seq - 1]
                clock_start, due_base, due_final = chain[0].start, chain[0].due, chain[-1].due
                dues = [d.due for d in chain]
                extensions, unused = unused[:len(chain) - 1], unused[len(chain) - 1:]
            else:
                clock_start = _fallback_clock_start(stage, policy, case, acknowledged_on,
                                                    stage2_acknowledged_on, response)
                due_base = calendar.add_working_days(clock_start, limit)
                dues = [due_base]
                for extension in stage_extensions:
                    dues.append(calendar.add_working_days(dues[-1], extension.working_days))
                due_final, extensions = dues[-1], stage_extensions
            ack = _acknowledgement(deadlines, stage, clock_start)
            if ack is not None:
                ack_on = london_date(ack.met_at) if ack.met_at else None
                ack_due: dt.date | None = ack.due
            else:  # no deadline on record (older data): the dates the case row holds
                ack_on = acknowledged_on if stage == 1 else stage2_acknowledged_on
                ack_from = case.received_on if stage == 1 else case.escalation_requested_on
                ack_due = None if ack_from is None else calendar.add_working_days(
                    ack_from, policy.limits.stage1_acknowledgement if stage == 1
                    else policy.limits.stage2_acknowledgement)
            strict = strict_verdict(
                acknowledged_on=ack_on, acknowledgement_due=ack_due, dues=dues,
                extensions=extensions, responded_on=responded_on,
                cap=policy.extension_cap(stage), calendar=calendar)
            extension_days = calendar.working_days_between(due_base, due_final)
            measures.append(ResponseMeasure(
                stage=stage, seq=seq, decision=response.decision.value,
                responded_at=response.at, responded_on=responded_on, by=response.by,
                clock_start=clock_start, due_base=due_base, due_final=due_final,
                extension_days=extension_days,
                extension_within_code=extension_days <= policy.extension_cap(stage)
                or good_reason,
                working_days_taken=calendar.working_days_between(clock_start, responded_on),
                acknowledged_on=strict.acknowledged_on,
                acknowledgement_due=strict.acknowledgement_due,
                extensions_timely=strict.extensions_timely, within_code=strict.within_code,
                late_reason=strict.late_reason))
    return measures

