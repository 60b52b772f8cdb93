"""Building the rows of synthetic complaints, one after another, from a seed.

:class:`Builder` draws each complaint's life (acknowledgement, extensions, responses,
remedies and payments, escalation, refusals, referral and orders) from the proportions in
:mod:`complaints.synthetic_rates`, on the policy's working calendar, and keeps the rows
per table until :mod:`complaints.synthetic` inserts them; :class:`SyntheticSummary` counts
what it generated, for the tests to check the reports against.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import itertools
import json
import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import Table

from activities.payments import payment_rows
from complaints.reports.period import Period
from complaints.synthetic_rates import (
    ACK_LAG,
    CATEGORIES,
    CHANNELS,
    DECISIONS,
    ESCALATION_GROUNDS,
    EXCLUSION_GROUNDS,
    EXTENSION_DAYS,
    EXTENSION_REASONS,
    FINANCIAL_POUNDS,
    LETTER_HTML,
    LETTER_SHA,
    LETTER_TEXT,
    P_ACK_LATE,
    P_ACTION,
    P_ACTION_LATE,
    P_ACTION_OPEN,
    P_DETERMINATION,
    P_ESCALATE,
    P_ESCALATION_REFUSED,
    P_EXCLUDED,
    P_EXCLUDED_REFERRED,
    P_EXTENDED,
    P_EXTENSION_PAST_CAP,
    P_FINANCIAL,
    P_LATE,
    P_LATE_AFTER_EXTENSION,
    P_ORDER_LATE,
    P_ORDER_OPEN,
    P_REFERRED_AFTER_REFUSAL,
    P_REFERRED_AFTER_STAGE2,
    P_REMEDY_LATE,
    P_REMEDY_UNPAID,
    P_STAGE2_ACK_LATE,
    P_WITHDRAWN,
    PREFIX,
    REMEDY_PAY_DAYS,
    SEASON,
)
from complaints.workdays import LONDON, WorkingCalendar, end_of_day_utc
from models.actions import PayRemedy
from models.policy import Policy, ResponseClock
from models.tables import (
    ActionRow,
    AuditRow,
    ComplaintRow,
    DeadlineRow,
    ExtensionRow,
    LetterRow,
    OmbudsmanDetailsRow,
    RefusalRow,
    RemedyPaymentRow,
    RemedyRow,
    ResponseRow,
)

T = TypeVar("T")

def _strict(row: dict[str, Any], stage: int, response_in_time: bool) -> dict[str, Any]:
    """The strict CH02 columns of a synthetic response (extensions are agreed in time)."""
    prefix = "" if stage == 1 else "stage2_"
    acked, due = row[f"{prefix}acknowledged_on"], row[f"{prefix}acknowledgement_due"]
    reasons = []
    if acked is None or due is None or acked > due:
        reasons.append("acknowledged late")
    if not response_in_time:
        reasons.append("responded after the due date")
    return {"acknowledged_on": acked, "acknowledgement_due": due, "extensions_timely": True,
            "within_code": not reasons, "late_reason": "; ".join(reasons) or None}


@dataclass
class StageTruth:
    """What the generator did at one stage, for responses issued in the year."""

    responses: int = 0
    within_base: int = 0
    within_extension: int = 0
    extended: int = 0


@dataclass
class SyntheticSummary:
    """What was generated: the counts the year's report should show.

    Attributes:
        complaints: Complaints written (received in the year).
        excluded: Refused under the exclusions (decided by the as-of date).
        withdrawn: Withdrawn (by the as-of date).
        acknowledged_late: Stage 1 acknowledgements made after the due date.
        stage2_received: Escalation requests in the year that were not refused.
        escalations_refused: Escalations refused in the year.
        referred: Referred to the Ombudsman in the year.
        financial_offered: Financial remedies offered in responses issued in the year.
        financial_paid: Of those, paid by the as-of date; ``financial_paid_late``: after
            the date promised.
        orders: Ombudsman orders recorded in the year; ``orders_on_time``: complied with
            by their due date.
        stages: Per stage, responses issued in the year and how many were on time.
        rows: Rows written per table.
        seconds: How long loading took.
    """

    complaints: int = 0
    excluded: int = 0
    withdrawn: int = 0
    acknowledged_late: int = 0
    stage2_received: int = 0
    escalations_refused: int = 0
    referred: int = 0
    financial_offered: int = 0
    financial_paid: int = 0
    financial_paid_late: int = 0
    orders: int = 0
    orders_on_time: int = 0
    stages: dict[int, StageTruth] = field(default_factory=lambda: {1: StageTruth(),
                                                                   2: StageTruth()})
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def table_of(model: Any) -> Table:
    """The table of a ``table=True`` model."""
    return model.__table__  # type: ignore[no-any-return]


#: The tables a synthetic year writes, by name, parents first (the order of insertion).
TABLES: dict[str, Table] = {
    "complaints": table_of(ComplaintRow), "responses": table_of(ResponseRow),
    "refusals": table_of(RefusalRow), "extensions": table_of(ExtensionRow),
    "ombudsman_details": table_of(OmbudsmanDetailsRow), "remedies": table_of(RemedyRow),
    "actions": table_of(ActionRow), "letters": table_of(LetterRow),
    "audit_events": table_of(AuditRow), "remedy_payments": table_of(RemedyPaymentRow),
    "deadlines": table_of(DeadlineRow),
}


@functools.lru_cache(maxsize=4096)
def _london_offset(day: dt.date) -> dt.timedelta:
    """London's UTC offset in office hours on ``day`` (clocks change at 01:00)."""
    offset = dt.datetime.combine(day, dt.time(12), tzinfo=LONDON).utcoffset()
    return offset or dt.timedelta(0)


def _at(day: dt.date, rng: random.Random) -> dt.datetime:
    """A time in office hours on ``day`` (London), as an aware UTC instant."""
    minutes = rng.randint(9 * 60, 16 * 60 + 59)
    local = dt.datetime(day.year, day.month, day.day, minutes // 60, minutes % 60,
                        tzinfo=dt.UTC)
    return local - _london_offset(day)


class Builder:
    """Builds the rows of one synthetic complaint after another."""

    def __init__(self, policy: Policy, period: Period, seed: int, as_of: dt.date,
                 complaints: int) -> None:
        self.policy = policy
        self.period = period
        self.seed = seed
        self.as_of = as_of
        self.calendar = WorkingCalendar.for_policy(policy)
        self.rng = random.Random(seed)
        #: Payments and orders draw from their own stream (see the module docstring).
        self.follow = random.Random(f"{seed}:follow-through")
        self.summary = SyntheticSummary()
        self.rows: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
        self.handlers = {team: max(2, min(40, round(complaints * share / 100 / 300)))
                         for team, share in CATEGORIES.items()}
        self.reviewers = max(2, min(20, complaints // 2500))
        self._cumulative: dict[int, tuple[list[Any], list[float]]] = {}

    # -- helpers -------------------------------------------------------------------------
    def pick(self, weights: dict[T, float] | dict[T, int]) -> T:
        """Choose a key by weight (the cumulative weights are worked out once per table)."""
        table = self._cumulative.get(id(weights))
        if table is None:
            table = self._cumulative[id(weights)] = (
                list(weights), list(itertools.accumulate(float(w) for w in weights.values())))
        keys, cumulative = table
        return keys[bisect.bisect_right(cumulative, self.rng.random() * cumulative[-1])]  # type: ignore[no-any-return]

    def chance(self, p: float) -> bool:
        """True with probability ``p``."""
        return self.rng.random() < p

    def wd(self, start: dt.date, n: int) -> dt.date:
        """The ``n``-th working day after ``start``."""
        return self.calendar.add_working_days(start, n)

    def in_year(self, day: dt.date) -> bool:
        """Whether ``day`` is in the reporting period."""
        return self.period.start <= day <= self.period.end

    def letter(self, reference: str, kind: str, stage: int, seq: int,
               at: dt.datetime) -> str:
        """Add a placeholder letter; return its id."""
        letter_id = f"{reference}:{kind}:{stage}:{seq}"
        self.rows["letters"].append({
            "letter_id": letter_id, "reference": reference, "kind": kind, "stage": stage,
            "seq": seq, "subject": f"{kind.replace('_', ' ').capitalize()} {reference}",
            "text": LETTER_TEXT, "html": LETTER_HTML, "sha256": LETTER_SHA,
            "created_at": at})
        return letter_id

    def refusal(self, reference: str, kind: str, grounds: dict[str, int], day: dt.date,
                by: str) -> dt.datetime:
        """Add the refusal rows (one or two grounds) and the letter; return when."""
        at = _at(day, self.rng)
        chosen = {self.pick(grounds)}
        if self.chance(0.15):
            chosen.add(self.pick(grounds))
        for ground in sorted(chosen):
            self.rows["refusals"].append({"reference": reference, "kind": kind,
                                          "ground": ground, "decided_at": at,
                                          "decided_on": day, "by": by})
        self.letter(reference, "exclusion" if kind == "complaint" else "escalation_refusal",
                    1 if kind == "complaint" else 2, 1, at)
        return at

    # -- one complaint -------------------------------------------------------------------
    def complaint(self, seq: int, received: dt.date) -> None:
        """Build every row of complaint number ``seq``, received on ``received``."""
        rng, policy, limits = self.rng, self.policy, self.policy.limits
        reference = f"{PREFIX}-{self.period.start.year}-{seq:06d}"
        team = self.pick(CATEGORIES)
        handler = f"{team}-{rng.randint(1, self.handlers[team]):02d}"
        received_at = _at(received, rng)
        row: dict[str, Any] = {
            "reference": reference, "landlord": policy.landlord, "policy_name": policy.name,
            "channel": self.pick(CHANNELS), "channel_reference": f"synthetic:{self.seed}:{seq}",
            "category": team, "received_on": received, "issue_occurred_on": None,
            "description": f"Synthetic complaint {reference}", "outcomes_sought": "",
            "state": "received", "stage": 0, "handler_id": None, "next_deadline": None,
            "overdue": False, "created_at": received_at, "updated_at": received_at,
            "closed_at": None, "snapshot_at": received_at, "stage1_handler": None,
            "stage2_handler": None, "acknowledged_on": None,
            "acknowledgement_due": self.wd(received, limits.stage1_acknowledgement),
            "escalation_requested_on": None, "stage2_acknowledged_on": None,
            "stage2_acknowledgement_due": None, "excluded": False, "declined_at": None,
            "escalation_refused": False, "withdrawn_at": None,
            "referred_to_ombudsman_at": None,
        }
        self.rows["complaints"].append(row)
        self.summary.complaints += 1
        try:
            self._lifecycle(reference, received, row, handler, team)
        finally:
            row["updated_at"] = row["snapshot_at"]

    def _touch(self, row: dict[str, Any], at: dt.datetime, **changes: Any) -> None:
        row.update(changes)
        row["snapshot_at"] = max(row["snapshot_at"], at)

    def _refer(self, row: dict[str, Any], after: dt.date, p: float) -> None:
        day = after + dt.timedelta(days=self.rng.randint(10, 120))
        if self.chance(p) and day <= self.as_of:
            at = _at(day, self.rng)
            self._touch(row, at, referred_to_ombudsman_at=at, state="with_ombudsman")
            self.summary.referred += self.in_year(day)
            self._orders(row, day)

    def _orders(self, row: dict[str, Any], referred: dt.date) -> None:
        """Maybe a determination some weeks after a referral, with orders tracked to the end.

        Written as the case book plans them: a deadline ``order:<id>`` of kind ``ombudsman``,
        met when compliance is recorded.
        """
        rng = self.follow
        day = referred + dt.timedelta(days=rng.randint(30, 120))
        if rng.random() >= P_DETERMINATION or day > self.as_of:
            return
        for n in range(1, rng.randint(1, 2) + 1):
            due = day + dt.timedelta(days=rng.randint(28, 56))
            ends_at = end_of_day_utc(due)
            draw = rng.random()
            done: dt.date | None = (
                None if draw < P_ORDER_OPEN
                else due + dt.timedelta(days=rng.randint(1, 20)) if draw < P_ORDER_OPEN
                + P_ORDER_LATE else max(day, due - dt.timedelta(days=rng.randint(0, 20))))
            if done is not None and done > self.as_of:
                done = None
            late = (done is not None and done > due) or (done is None and due < self.as_of)
            self.rows["deadlines"].append({
                "reference": row["reference"], "key": f"order:O{n}", "kind": "ombudsman",
                "stage": max(row["stage"], 1), "label": f"Ombudsman maladministration O{n}",
                "provision": "Ombudsman", "start": day, "due": due, "ends_at": ends_at,
                "status": "breached" if late else "met" if done else "pending",
                "met_at": _at(done, rng) if done else None,
                "breached_at": ends_at if late else None})
            if self.in_year(day):
                self.summary.orders += 1
                self.summary.orders_on_time += done is not None and done <= due

    def _lifecycle(self, reference: str, received: dt.date, row: dict[str, Any],
                   handler: str, team: str) -> None:
        rng, limits, as_of = self.rng, self.policy.limits, self.as_of
        if self.chance(P_EXCLUDED):
            day = self.wd(received, rng.randint(1, limits.stage1_acknowledgement))
            if day > as_of:
                row["overdue"] = row["acknowledgement_due"] < as_of
                return
            at = self.refusal(reference, "complaint", EXCLUSION_GROUNDS, day, handler)
            self._touch(row, at, state="declined", excluded=True, declined_at=at)
            self.summary.excluded += 1
            self._refer(row, day, P_EXCLUDED_REFERRED)
            return
        late_ack = self.chance(P_ACK_LATE)
        lag = (limits.stage1_acknowledgement + rng.randint(1, 4) if late_ack
               else min(self.pick(ACK_LAG), limits.stage1_acknowledgement))
        acked = self.wd(received, lag) if lag else received
        if acked > as_of:
            row["overdue"] = row["acknowledgement_due"] < as_of
            return
        self.summary.acknowledged_late += late_ack
        self._touch(row, _at(acked, rng), state="stage1_investigating", stage=1,
                    handler_id=handler, stage1_handler=handler, acknowledged_on=acked)
        if self.chance(P_WITHDRAWN):
            day = self.wd(acked, rng.randint(1, 8))
            if day <= as_of:
                at = _at(day, rng)
                self._touch(row, at, state="withdrawn", withdrawn_at=at, closed_at=None)
                self.summary.withdrawn += 1
            return
        clock = acked if limits.stage1_response_from is ResponseClock.ACKNOWLEDGEMENT \
            else received
        answered = self._stage(reference, 1, clock, row, handler, team)
        if answered is None:
            return
        decision, responded = answered
        requested = responded + dt.timedelta(days=rng.randint(2, 25))
        if not self.chance(P_ESCALATE[decision]) or requested > as_of:
            closed = responded + dt.timedelta(days=rng.randint(20, 45))
            if closed <= as_of:
                at = _at(closed, rng)
                self._touch(row, at, state="closed", closed_at=at)
            return
        ack2_due = self.wd(requested, limits.stage2_acknowledgement)
        self._touch(row, _at(requested, rng), state="stage2_requested", stage=1,
                    escalation_requested_on=requested, stage2_acknowledgement_due=ack2_due)
        if self.chance(P_ESCALATION_REFUSED):
            day = self.wd(requested, rng.randint(1, limits.stage2_acknowledgement))
            if day > as_of:
                return
            at = self.refusal(reference, "escalation", ESCALATION_GROUNDS, day, handler)
            self._touch(row, at, state="closed", escalation_refused=True, closed_at=at)
            self.summary.escalations_refused += self.in_year(day)
            self._refer(row, day, P_REFERRED_AFTER_REFUSAL)
            return
        if self.in_year(requested):
            self.summary.stage2_received += 1
        late2 = self.chance(P_STAGE2_ACK_LATE)
        acked2 = self.wd(requested, limits.stage2_acknowledgement + rng.randint(1, 3)
                         if late2 else rng.randint(1, limits.stage2_acknowledgement))
        if acked2 > as_of:
            row["overdue"] = ack2_due < as_of
            return
        reviewer = f"review-{rng.randint(1, self.reviewers):02d}"
        self._touch(row, _at(acked2, rng), state="stage2_reviewing", stage=2,
                    handler_id=reviewer, stage2_handler=reviewer,
                    stage2_acknowledged_on=acked2)
        clock2 = acked2 if limits.stage2_response_from is ResponseClock.ACKNOWLEDGEMENT \
            else requested
        answered = self._stage(reference, 2, clock2, row, reviewer, team)
        if answered is None:
            return
        _, responded2 = answered
        self._refer(row, responded2, P_REFERRED_AFTER_STAGE2)
        if row["state"] != "with_ombudsman":
            closed = responded2 + dt.timedelta(days=rng.randint(20, 45))
            if closed <= as_of:
                at = _at(closed, rng)
                self._touch(row, at, state="closed", closed_at=at)

    def _stage(self, reference: str, stage: int, clock: dt.date, row: dict[str, Any],
               handler: str, team: str) -> tuple[str, dt.date] | None:
        """Extend (maybe) and answer one stage; None when still open at the as-of date."""
        rng, policy, as_of = self.rng, self.policy, self.as_of
        limit = policy.limits.stage1_response if stage == 1 else policy.limits.stage2_response
        cap = policy.extension_cap(stage)
        due_base = self.wd(clock, limit)
        extension = 0
        good_reason: str | None = None
        if self.chance(P_EXTENDED[stage]):
            granted = self.wd(clock, rng.randint(max(1, limit - 4), limit - 1))
            if granted > as_of:
                row["overdue"] = due_base < as_of
                return None
            extension = rng.choice(EXTENSION_DAYS[stage])
            extension = min(extension, cap)
            if self.chance(P_EXTENSION_PAST_CAP):
                extension = cap + 5
                good_reason = "Independent expert evidence is needed (good reason)"
            at = _at(granted, rng)
            seq = 1 + sum(1 for e in self.rows["extensions"] if e["reference"] == reference)
            letter_id = self.letter(reference, "extension", stage, 1, at)
            self.rows["extensions"].append({
                "reference": reference, "extension_seq": seq, "stage": stage,
                "working_days": extension, "reason": rng.choice(EXTENSION_REASONS),
                "good_reason": good_reason, "granted_by": handler, "granted_at": at,
                "stage_seq": 1})
            details = policy.ombudsman
            self.rows["ombudsman_details"].append({
                "record_id": f"{reference}:ombudsman:{stage}:1", "reference": reference,
                "stage": stage, "extension_seq": 1, "letter_id": letter_id,
                "given_to": "Synthetic resident", "given_at": at, "name": details.name,
                "address": details.address, "phone": details.phone,
                "phone_hours": details.phone_hours, "online_form": details.online_form,
                "email": details.email, "email_new_cases_until": details.email_new_cases_until})
            self._touch(row, at, state=f"stage{stage}_extended")
        due_final = self.wd(due_base, extension) if extension else due_base
        if extension:
            late = self.chance(P_LATE_AFTER_EXTENSION[stage])
            early = not late and self.chance(0.1)
            if late:
                responded = self.wd(due_final, rng.randint(1, 5))
            elif early:
                responded = self.wd(clock, rng.randint(limit - 2, limit))
            else:
                responded = self.wd(due_base, rng.randint(1, extension))
            on_base, on_ext = early, not late
        else:
            late = self.chance(P_LATE[stage])
            responded = (self.wd(due_base, rng.randint(1, 6)) if late
                         else self.wd(clock, round(rng.triangular(1, limit, limit * 0.7))))
            on_base = on_ext = not late
        if responded > as_of:
            row["overdue"] = due_final < as_of
            return None
        decision = self.pick(DECISIONS[stage])
        at = _at(responded, rng)
        if self.in_year(responded):
            truth = self.summary.stages[stage]
            truth.responses += 1
            truth.within_base += on_base
            truth.within_extension += on_ext
            truth.extended += extension > 0
        self.rows["responses"].append({
            "reference": reference, "stage": stage, "seq": 1, "decision": decision,
            "responded_at": at, "responded_on": responded, "by": handler,
            "clock_start": clock, "due_base": due_base, "due_final": due_final,
            "extension_days": extension,
            "extension_within_code": extension <= cap or good_reason is not None,
            "working_days_taken": self.calendar.working_days_between(clock, responded),
            **_strict(row, stage, responded <= due_base or (
                on_ext and (extension <= cap or good_reason is not None))),
        })
        self.letter(reference, "stage1_response" if stage == 1 else "final_response", stage,
                    1, at)
        self._touch(row, at, state=f"stage{stage}_responded")
        if decision != "not_upheld":
            self._remedies(reference, stage, decision, responded, at, handler, team)
        return decision, responded

    def _remedies(self, reference: str, stage: int, decision: str, responded: dt.date,
                  at: dt.datetime, handler: str, team: str) -> None:
        rng = self.rng
        remedies: list[tuple[str, str, int | None, dt.date | None]] = [
            ("apology", "We apologise for the failings identified", None, None)]
        if self.chance(P_FINANCIAL):
            pence = rng.choice(FINANCIAL_POUNDS) * 100
            due_by = responded + dt.timedelta(days=REMEDY_PAY_DAYS)
            remedies.append(("financial", "Compensation for time and trouble", pence, due_by))
            self._payment(reference, stage, len(remedies), pence, responded, due_by, handler)
        if self.chance(P_ACTION):
            due = responded + dt.timedelta(days=rng.randint(10, 40))
            remedies.append(("action", "Complete the outstanding work", None, due))
            if self.chance(P_ACTION_OPEN):
                done: dt.date | None = None
            elif self.chance(P_ACTION_LATE / (1 - P_ACTION_OPEN)):
                done = due + dt.timedelta(days=rng.randint(1, 20))
            else:
                done = max(responded, due - dt.timedelta(days=rng.randint(0, 10)))
            if done is not None and done > self.as_of:
                done = None
            self.rows["actions"].append({
                "reference": reference, "action_id": f"A{stage}", "stage": stage,
                "description": "Complete the outstanding work", "due_by": due,
                "owner": f"{team}-team", "completed_at": _at(done, rng) if done else None,
                "completed_on": done})
        # Names of their own: ``pence`` and ``due_by`` above are never None.
        for position, (kind, text, amount, due_on) in enumerate(remedies, 1):
            self.rows["remedies"].append({
                "reference": reference, "stage": stage, "position": position, "kind": kind,
                "description": text, "amount_pence": amount, "due_by": due_on,
                "decision": decision, "offered_by": handler, "offered_at": at})

    def _payment(self, reference: str, stage: int, remedy: int, pence: int,
                 responded: dt.date, due_by: dt.date, by: str) -> None:
        """Pay a financial remedy (maybe late, maybe not yet), as ``pay-remedy`` records it.

        The audit entry's detail is the action as submitted, which the report reads.
        """
        rng = self.follow
        draw = rng.random()
        if draw < P_REMEDY_UNPAID:
            paid_on = None
        elif draw < P_REMEDY_UNPAID + P_REMEDY_LATE:
            paid_on = due_by + dt.timedelta(days=rng.randint(1, 30))
        else:
            paid_on = responded + dt.timedelta(days=rng.randint(1, REMEDY_PAY_DAYS))
        if self.in_year(responded):
            self.summary.financial_offered += 1
        if paid_on is None or paid_on > self.as_of:
            return
        action = PayRemedy(by=by, stage=stage, remedy=remedy, paid_on=paid_on,
                           amount=Decimal(pence).scaleb(-2), method="bank transfer")
        state = f"stage{stage}_responded"
        # The only audit entries written: at most one payment per stage, numbered by it.
        entry = {
            "reference": reference, "seq": stage, "at": _at(paid_on, rng),
            "action": action.trigger, "by": by, "from_state": state, "to_state": state,
            "accepted": True, "detail": json.dumps(
                action.model_dump(mode="json") | {"trigger": action.trigger}, sort_keys=True)}
        self.rows["audit_events"].append(entry)
        self.rows["remedy_payments"] += payment_rows(reference, [entry])
        if self.in_year(responded):
            self.summary.financial_paid += 1
            self.summary.financial_paid_late += paid_on > due_by

    def take_rows(self) -> dict[str, list[dict[str, Any]]]:
        """Hand over the rows built so far and start again."""
        rows, self.rows = self.rows, {name: [] for name in TABLES}
        return rows


def received_dates(rng: random.Random, period: Period, calendar: WorkingCalendar,
                   n: int, as_of: dt.date) -> list[dt.date]:
    """``n`` receipt dates in the period up to ``as_of``, weighted to working days and winter."""
    last = min(period.end, as_of)
    days = [period.start + dt.timedelta(days=i) for i in range((last - period.start).days + 1)]
    weights = [SEASON[d.month] * (1.0 if calendar.is_working_day(d) else 0.2) for d in days]
    return sorted(rng.choices(days, weights=weights, k=n))
