"""The case book's checks: whether an action may be taken now, and why not.

:class:`CaseBookChecks` adds the refusals to :class:`domain.casebook_record.CaseBookRecord`:
the lifecycle's guards first, then each action's own limits, the case file's bounds
(:data:`domain.casebook_state.CASE_BOUNDS`) and the checks that need the case's clock.
:func:`validation_fields` words a validation error without the values given. The workflow
imports both through :mod:`domain.casebook`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from domain.casebook_record import CaseBookRecord
from domain.casebook_state import ACTION_HORIZON_DAYS, CASE_BOUNDS, MAX_REASON, response_kind
from domain.deadlines import london_date
from domain.lifecycle import ComplaintState
from models.actions import (
    Action,
    AddIssue,
    AmendIntake,
    DelayAction,
    Extend,
    OmbudsmanContact,
    OmbudsmanDetermination,
    PayRemedy,
    Reassign,
    RequestEscalation,
    Respond,
)
from models.limits import first_problem
from models.messages import DeadlineStatus

S = ComplaintState


class CaseBookChecks(CaseBookRecord):
    """Why an action may not be taken now (see the module docstring)."""

    def refusal(self, action: Action) -> str | None:
        """Why ``action`` may not be taken now (the Code, the state, the clock), or None."""
        try:
            # The state first: it is the cheapest check, and a flood of refused signals
            # must stay cheap (every one is checked within a workflow task's time).
            return (self.machine.refusal(action) or first_problem(action)
                    or self._bounds_refusal(action) or self._dated_refusal(action))
        except Exception as exc:  # a bug in a check must refuse, never fail the task
            return (f"the action could not be checked ({type(exc).__name__}); nothing was "
                    "changed: report this to the system's operators")

    def _bounds_refusal(self, action: Action) -> str | None:
        """The case file's lists are bounded: past a bound an action is refused, named."""
        case = self.case
        if isinstance(action, AddIssue):
            folded = sum(1 for i in case.issues if i.folded_into_stage1)
            if len(case.issues) >= CASE_BOUNDS["issues"]:
                return (f"issues: the case has {len(case.issues)}, at most "
                        f"{CASE_BOUNDS['issues']}: log further matters as a new complaint")
            if folded >= CASE_BOUNDS["folded_issues"] and action.related \
                    and self.machine.state in (S.STAGE1_INVESTIGATING, S.STAGE1_EXTENDED):
                return (f"issues: {folded} already folded into stage 1, at most "
                        f"{CASE_BOUNDS['folded_issues']}: log this one as a new complaint "
                        "(related: false)")
        if isinstance(action, Extend):
            made = sum(1 for e in case.extensions if e.stage == case.stage)
            if made >= CASE_BOUNDS["extensions_per_stage"]:
                return (f"extensions: {made} at stage {case.stage}, at most "
                        f"{CASE_BOUNDS['extensions_per_stage']}: respond instead")
        if isinstance(action, DelayAction):
            record = next((a for a in case.actions if a.action.action_id == action.action_id),
                          None)
            if record is not None and len(record.delays) >= CASE_BOUNDS["delays_per_action"]:
                return (f"delays: action {action.action_id} was delayed {len(record.delays)} "
                        f"times, at most {CASE_BOUNDS['delays_per_action']}: tell the "
                        "complaints lead, and complete or close it")
        if isinstance(action, OmbudsmanContact) and \
                case.ombudsman_contacts >= CASE_BOUNDS["ombudsman_contacts"]:
            return (f"ombudsman contacts: {case.ombudsman_contacts} on this case, at most "
                    f"{CASE_BOUNDS['ombudsman_contacts']}: record further ones as contacts")
        if isinstance(action, OmbudsmanDetermination) and \
                len(case.orders) + len(action.orders) > CASE_BOUNDS["orders"]:
            return (f"orders: the case would have {len(case.orders) + len(action.orders)}, "
                    f"at most {CASE_BOUNDS['orders']}")
        if isinstance(action, Reassign) and case.reassignments >= CASE_BOUNDS["reassignments"]:
            return (f"reassignments: {case.reassignments} on this case, at most "
                    f"{CASE_BOUNDS['reassignments']}")
        if isinstance(action, Respond) and \
                len(case.actions) + len(action.outstanding_actions) > CASE_BOUNDS["actions"]:
            return (f"outstanding_actions: the case would have "
                    f"{len(case.actions) + len(action.outstanding_actions)}, at most "
                    f"{CASE_BOUNDS['actions']}")
        return None

    def _dated_refusal(self, action: Action) -> str | None:
        """The checks that need the case's clock."""
        now = self.now()
        today = london_date(now)
        if isinstance(action, Extend):
            current = self._latest(response_kind(self.case.stage))
            if current is not None and current.met_at is None and (
                    current.status is DeadlineStatus.BREACHED or current.ends_at <= now):
                provision = "6.4" if self.case.stage == 1 else "6.15"
                return (f"the stage {self.case.stage} response was due on "
                        f"{current.due.isoformat()} and is overdue: an extension must be "
                        f"agreed and explained before the due date (Code {provision}); send "
                        "the response now")
        horizon = today + timedelta(days=ACTION_HORIZON_DAYS)
        if isinstance(action, Respond):
            late = [a.action_id for a in action.outstanding_actions if a.due_by > horizon]
            if late:
                return (f"outstanding actions must be due by {horizon.isoformat()} (at most "
                        f"five years ahead, Code 7.3 'by when'): {', '.join(late)}")
            if self.casework >= 2 and any(r.due_by is not None and r.due_by > horizon
                                          for r in action.remedies):
                return (f"remedies must be due by {horizon.isoformat()} (at most five years "
                        "ahead, Code 7.3)")
        if isinstance(action, DelayAction):
            if action.revised_due <= today:
                return (f"revised_due {action.revised_due.isoformat()} is not after today "
                        f"({today.isoformat()}): give the new date the action will be done by")
            if action.revised_due > horizon:
                return (f"revised_due must be by {horizon.isoformat()} (at most five years "
                        "ahead, Code 7.3)")
        if isinstance(action, OmbudsmanContact) and action.respond_by is not None and \
                not today <= action.respond_by <= horizon:
            return (f"respond_by must be from today ({today.isoformat()}) to "
                    f"{horizon.isoformat()}")
        if isinstance(action, OmbudsmanDetermination) and any(
                o.due_by > horizon for o in action.orders):
            return f"orders must be due by {horizon.isoformat()} (at most five years ahead)"
        if isinstance(action, AmendIntake) and action.adjustments_review_on is not None and \
                not today < action.adjustments_review_on <= horizon:
            return (f"adjustments_review_on must be after today ({today.isoformat()}) and by "
                    f"{horizon.isoformat()}")
        if isinstance(action, PayRemedy) and action.paid_on > today:
            return (f"paid_on {action.paid_on.isoformat()} is in the future: record a payment "
                    f"once it is made (today is {today.isoformat()})")
        if isinstance(action, RequestEscalation):
            responded = next((r.at for r in self.case.responses if r.stage == 1), None)
            if action.requested_on > today:
                return (f"requested_on {action.requested_on.isoformat()} is in the future; "
                        f"give the day the request was received (today is {today.isoformat()})")
            if responded is not None and action.requested_on < london_date(responded):
                return ("requested_on is before the stage 1 response was issued on "
                        f"{london_date(responded).isoformat()}")
        return None


def validation_fields(exc: ValidationError) -> str:
    """A validation error as field paths and messages, never the values given.

    The one place a path holds what the sender wrote is an unknown field's name: it is
    shown as ``<unknown field>``.
    """
    def path(error: Any) -> str:
        loc = [str(p) for p in error["loc"]]
        if error["type"] == "extra_forbidden" and loc:
            loc[-1] = "<unknown field>"
        return ".".join(loc) or "input"

    return "; ".join(f"{path(e)}: {e['msg']}" for e in exc.errors()[:5])[:MAX_REASON]
