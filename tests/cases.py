"""Builders for cases and valid staff actions, shared by the lifecycle and workflow tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from domain.guards import Limits
from domain.lifecycle import ComplaintState
from domain.machine import ComplaintMachine
from models.actions import (
    Acknowledge,
    AcknowledgeEscalation,
    Action,
    AddIssue,
    AmendIntake,
    Assign,
    Close,
    CompleteAction,
    ComplyOrder,
    ContactDirection,
    Decline,
    DelayAction,
    Extend,
    OmbudsmanContact,
    OmbudsmanContactKind,
    OmbudsmanDetermination,
    OmbudsmanFinding,
    OmbudsmanOrderKind,
    OrderItem,
    PayRemedy,
    Reassign,
    ReassignRole,
    RecordContact,
    ReferOmbudsman,
    RefuseEscalation,
    ReopenOnOrder,
    RequestEscalation,
    Respond,
    Void,
    VoidReason,
    Withdraw,
)
from models.case import (
    CaseFile,
    Channel,
    ComplaintDefinition,
    Decision,
    ExclusionGround,
    OutstandingAction,
    Party,
    PartyRole,
    PointFinding,
    Remedy,
    RemedyKind,
)

AT = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
STAGE1_HANDLER = "staff-101"
STAGE2_HANDLER = "staff-202"

DEFINITION = ComplaintDefinition(
    summary="Repairs to a leaking roof were not completed",
    points=("The roof leak reported in August was not repaired",
            "Nobody returned the resident's calls"),
    outcomes_sought=("Repair the roof", "Compensation for damaged carpet"),
    responsible_for=("Roof repairs",), not_responsible_for=("Contents insurance",),
)


class Clock:
    """A clock a test moves by hand (the case book reads time only through it)."""

    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        """The time the test set."""
        return self.at


def new_case(**overrides: object) -> CaseFile:
    """A freshly received case."""
    fields: dict[str, object] = {
        "reference": "CMP-2026-000123", "policy_name": "code-2024",
        "received_on": dt.date(2026, 11, 20), "channel": Channel.PHONE,
    }
    fields.update(overrides)
    return CaseFile.model_validate(fields)


def respond_to(case: CaseFile, by: str, *, action_id: str = "A1") -> Respond:
    """A response answering every point of the current definition, with one action."""
    definition = (case.stage2_definition if case.stage == 2 else case.stage1_definition) \
        or DEFINITION
    points = list(definition.points)
    if case.stage == 1:
        points += [i.description for i in case.issues if i.folded_into_stage1]
    return Respond(
        by=by, decision=Decision.PARTLY_UPHELD,
        findings=tuple(PointFinding(point=p, finding="Found so", reason="Records show it")
                       for p in points),
        remedies=(Remedy(kind=RemedyKind.APOLOGY, description="We apologise for the delay"),
                  Remedy(kind=RemedyKind.FINANCIAL, description="Carpet compensation",
                         amount="150.00", due_by=dt.date(2026, 12, 18))),
        outstanding_actions=(OutstandingAction(
            action_id=action_id, description="Replace roof tiles",
            due_by=dt.date(2027, 1, 15)),),
    )


def without_money(response: Respond) -> Respond:
    """The response with no outstanding actions and no financial remedy (nothing to track)."""
    return response.model_copy(update={
        "outstanding_actions": (),
        "remedies": tuple(r for r in response.remedies if r.kind is not RemedyKind.FINANCIAL)})


#: How to reach each state from `received`: a list of action builders.
def path_to(state: ComplaintState) -> list[Callable[[Any], Any]]:
    """Builders (case -> action) that take a new case to ``state``."""
    S = ComplaintState
    ack = lambda c: Acknowledge(by=STAGE1_HANDLER, handler_id=STAGE1_HANDLER,  # noqa: E731
                                definition=DEFINITION)
    ext = lambda c: Extend(by=STAGE1_HANDLER, working_days=5,  # noqa: E731
                           reason="A surveyor must inspect the roof")
    resp1 = lambda c: respond_to(c, STAGE1_HANDLER)  # noqa: E731
    esc = lambda c: RequestEscalation(by="staff-900",  # noqa: E731
                                      requested_on=dt.date(2026, 12, 20))
    ack2 = lambda c: AcknowledgeEscalation(by=STAGE2_HANDLER,  # noqa: E731
                                           handler_id=STAGE2_HANDLER, definition=DEFINITION)
    ext2 = lambda c: Extend(by=STAGE2_HANDLER, working_days=10,  # noqa: E731
                            reason="Waiting for the contractor's report")
    resp2 = lambda c: respond_to(c, STAGE2_HANDLER, action_id="A2")  # noqa: E731
    refer = lambda c: ReferOmbudsman(by="staff-900")  # noqa: E731
    paths: dict[ComplaintState, list[Callable[[Any], Any]]] = {
        S.RECEIVED: [],
        S.DECLINED: [lambda c: Decline(by="staff-900",
                                       grounds=(ExclusionGround.LEGAL_PROCEEDINGS,),
                                       explanation="A claim was filed at court in October")],
        S.STAGE1_INVESTIGATING: [ack],
        S.STAGE1_EXTENDED: [ack, ext],
        S.STAGE1_RESPONDED: [ack, resp1],
        S.STAGE2_REQUESTED: [ack, resp1, esc],
        S.STAGE2_REVIEWING: [ack, resp1, esc, ack2],
        S.STAGE2_EXTENDED: [ack, resp1, esc, ack2, ext2],
        S.STAGE2_RESPONDED: [ack, resp1, esc, ack2, resp2],
        S.WITH_OMBUDSMAN: [ack, resp1, esc, ack2, resp2, refer],
        S.CLOSED: [ack, resp1, lambda c: CompleteAction(by=STAGE1_HANDLER, action_id="A1"),
                   lambda c: PayRemedy(by=STAGE1_HANDLER, stage=1, remedy=2,
                                       paid_on=dt.date(2026, 11, 23), amount="150.00"),
                   lambda c: Close(by=STAGE1_HANDLER)],
        S.WITHDRAWN: [ack, lambda c: withdraw()],
        S.VOIDED: [lambda c: void()],
    }
    return paths[state]


def withdraw() -> Withdraw:
    """A withdrawal with the resident's reason and how they confirmed it."""
    return Withdraw(by="staff-900", reason="The repair has been done",
                    confirmed_via=Channel.EMAIL)


def void() -> Void:
    """Void a case lodged twice."""
    return Void(by="staff-900", reason=VoidReason.DUPLICATE, explanation="Lodged twice by phone",
                duplicate_of="CMP-2026-000100")


def case_in(state: ComplaintState, *, casework: int = 3) -> ComplaintMachine:
    """A machine whose case has been driven to ``state`` by valid actions (current rules)."""
    machine = ComplaintMachine(new_case(), Limits(casework=casework))
    for build in path_to(state):
        action = build(machine.case)
        if casework < 2 and isinstance(action, PayRemedy):
            continue  # the first rules neither track payments nor need them to close
        machine.apply(action, AT)
    assert machine.state is state
    return machine


def valid_action(trigger: str, machine: ComplaintMachine) -> Action:
    """An action for ``trigger`` that the Code allows on ``machine``'s case where the state does."""
    case = machine.case
    handler = STAGE2_HANDLER if case.stage == 2 else STAGE1_HANDLER
    open_ids = [a.action.action_id for a in case.open_actions()]
    unpaid = case.unpaid_remedies()
    open_orders = [o.order_id for o in case.open_orders()]
    builders = {
        "acknowledge": lambda: Acknowledge(by=STAGE1_HANDLER, handler_id=STAGE1_HANDLER,
                                           definition=DEFINITION),
        "decline": lambda: Decline(by="staff-900", grounds=(ExclusionGround.OTHER_POLICY,),
                                   explanation="This is a neighbour dispute for the ASB team"),
        "extend": lambda: Extend(by=handler, working_days=3, reason="Awaiting a survey"),
        "respond": lambda: respond_to(case, handler, action_id=f"A{len(case.actions) + 1}"),
        "request_escalation": lambda: RequestEscalation(by="staff-900",
                                                        requested_on=dt.date(2026, 12, 21)),
        "refuse_escalation": lambda: RefuseEscalation(
            by="staff-900", grounds=(ExclusionGround.LEGAL_PROCEEDINGS,),
            explanation="A claim about the same matter has been filed at court"),
        "acknowledge_escalation": lambda: AcknowledgeEscalation(
            by=STAGE2_HANDLER, handler_id=STAGE2_HANDLER, definition=DEFINITION),
        "add_issue": lambda: AddIssue(by=handler, description="The gutter also leaks",
                                      related=True),
        "record_contact": lambda: RecordContact(by=handler, direction=ContactDirection.OUTBOUND,
                                                channel=Channel.PHONE,
                                                summary="Called to agree a visit"),
        "complete_action": lambda: CompleteAction(by=handler,
                                                  action_id=open_ids[0] if open_ids else "A1"),
        "withdraw": withdraw,
        "refer_ombudsman": lambda: ReferOmbudsman(by="staff-900"),
        "reopen_on_order": lambda: ReopenOnOrder(
            by="staff-900",
            order=(OmbudsmanOrderKind.TAKE_ON_COMPLAINT if case.declined is not None
                   else OmbudsmanOrderKind.ESCALATE_TO_STAGE2),
            details="Ombudsman order 2026/123"),
        "close": lambda: Close(by=handler),
        "delay_action": lambda: DelayAction(
            by=handler, action_id=open_ids[0] if open_ids else "A1",
            revised_due=dt.date(2027, 3, 1), reason="The roofer is booked later"),
        "pay_remedy": lambda: PayRemedy(
            by=handler, stage=unpaid[0][0] if unpaid else 1,
            remedy=unpaid[0][1] if unpaid else 2, paid_on=dt.date(2026, 11, 23),
            amount="150.00"),
        "void": void,
        "assign": lambda: Assign(by="staff-900", to=STAGE2_HANDLER
                                 if case.state == ComplaintState.STAGE2_REQUESTED.value
                                 else STAGE1_HANDLER),
        "amend_intake": lambda: AmendIntake(
            by="staff-900", reason="Her sister now acts for her",
            parties=(Party(name="Jo Bloggs"),
                     Party(role=PartyRole.REPRESENTATIVE, name="Ann Bloggs")),
            representative_authority="Signed authority form received"),
        "ombudsman_contact": lambda: OmbudsmanContact(
            by="staff-900", kind=OmbudsmanContactKind.ENQUIRY,
            details="Dispute support asked when the response is due"),
        "ombudsman_determination": lambda: OmbudsmanDetermination(
            by="staff-900", finding=OmbudsmanFinding.COMPLAINT_HANDLING_FAILURE,
            details="Late acknowledgement", orders=(OrderItem(
                order_id=f"O{len(case.orders) + 1}", description="Pay £100",
                due_by=dt.date(2027, 1, 31)),)),
        "comply_order": lambda: ComplyOrder(
            by="staff-900", order_id=open_orders[0] if open_orders else "O1",
            evidence="Paid on 3 January"),
        "reassign": lambda: Reassign(
            by="staff-900", role=ReassignRole.HANDLER, to="staff-303",
            reason="Handler on leave") if case.stage1_handler or case.stage2_handler
        else Reassign(by="staff-900", role=ReassignRole.MANAGER, to="mgr-9",
                      reason="Team change"),
    }
    return builders[trigger]()
