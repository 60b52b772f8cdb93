"""The complaint lifecycle: its states and the transition table, as data.

The table :data:`TRANSITIONS` is the whole BPMN-style lifecycle, declared in one place;
:data:`CLOCKS` says which deadlines run in each state. The Code's guards on top of it are
in :mod:`domain.guards`, and :class:`domain.machine.ComplaintMachine` drives a case file
through it with ``transitions``. Everything here is pure and deterministic (no clock, no
I/O), so the Temporal workflow can run it and replay it.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from enum import StrEnum
from typing import Any

from models.messages import DeadlineKind

# transitions logs every trigger at INFO, replays included: keep only its warnings.
logging.getLogger("transitions").setLevel(logging.WARNING)


class ComplaintState(StrEnum):
    """Where a complaint is in the Code's two-stage process.

    Attributes:
        RECEIVED: Logged, awaiting the stage 1 acknowledgement and definition (6.2: 5 WD).
        DECLINED: Not accepted as a complaint on a section 2 ground, explained in writing
            with the right to go to the Ombudsman (2.4).
        STAGE1_INVESTIGATING: Acknowledged and defined; stage 1 response due (6.3).
        STAGE1_EXTENDED: As above with the response date extended (6.4, 6.5).
        STAGE1_RESPONDED: Stage 1 response issued (6.9); outstanding actions tracked; the
            resident may escalate within the policy's window.
        STAGE2_REQUESTED: The resident asked for stage 2; acknowledgement due (6.11: 5 WD).
        STAGE2_REVIEWING: Stage 2 acknowledged by a different person (6.13); final
            response due (6.14).
        STAGE2_EXTENDED: As above with the final response date extended (6.15, 6.16).
        STAGE2_RESPONDED: Final response issued (6.19); actions tracked to completion.
        WITH_OMBUDSMAN: The Housing Ombudsman has taken the complaint; the landlord stops
            resolving directly unless asked, and complies with any order.
        CLOSED: Finished: every remedy and action followed through (7.3), the escalation
            window lapsed, or escalation was refused (5.11).
        WITHDRAWN: The resident withdrew the complaint (how they confirmed it is recorded,
            and a letter confirms it).
        VOIDED: Not a complaint to count: a duplicate, merged into another case, or created
            in error. No letter goes to the resident and reports leave it out.
    """

    RECEIVED = "received"
    DECLINED = "declined"
    STAGE1_INVESTIGATING = "stage1_investigating"
    STAGE1_EXTENDED = "stage1_extended"
    STAGE1_RESPONDED = "stage1_responded"
    STAGE2_REQUESTED = "stage2_requested"
    STAGE2_REVIEWING = "stage2_reviewing"
    STAGE2_EXTENDED = "stage2_extended"
    STAGE2_RESPONDED = "stage2_responded"
    WITH_OMBUDSMAN = "with_ombudsman"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"
    VOIDED = "voided"


S = ComplaintState
STAGE1_OPEN = [S.STAGE1_INVESTIGATING, S.STAGE1_EXTENDED]
STAGE2_OPEN = [S.STAGE2_REVIEWING, S.STAGE2_EXTENDED]
ACTIVE = [S.RECEIVED, *STAGE1_OPEN, S.STAGE1_RESPONDED, S.STAGE2_REQUESTED, *STAGE2_OPEN,
          S.STAGE2_RESPONDED]
#: States where remedies and outstanding actions may still be open.
ACTIONS_TRACKED = [S.STAGE1_RESPONDED, S.STAGE2_REQUESTED, *STAGE2_OPEN, S.STAGE2_RESPONDED,
                   S.WITH_OMBUDSMAN, S.CLOSED]

# The lifecycle. Every transition also has the condition "code_allows" (added below), so the
# machine itself never moves when a guard of the Code refuses. `dest: None` is an internal
# transition: the action is recorded and the state stays.
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "acknowledge", "source": S.RECEIVED, "dest": S.STAGE1_INVESTIGATING,
     "after": "on_acknowledge"},
    {"trigger": "decline", "source": [S.RECEIVED, *STAGE1_OPEN], "dest": S.DECLINED,
     "after": "on_decline"},
    {"trigger": "extend", "source": [S.STAGE1_INVESTIGATING, S.STAGE1_EXTENDED],
     "dest": S.STAGE1_EXTENDED, "after": "on_extend"},
    {"trigger": "extend", "source": [S.STAGE2_REVIEWING, S.STAGE2_EXTENDED],
     "dest": S.STAGE2_EXTENDED, "after": "on_extend"},
    {"trigger": "respond", "source": STAGE1_OPEN, "dest": S.STAGE1_RESPONDED,
     "after": "on_respond"},
    {"trigger": "respond", "source": STAGE2_OPEN, "dest": S.STAGE2_RESPONDED,
     "after": "on_respond"},
    {"trigger": "request_escalation", "source": [S.STAGE1_RESPONDED, S.CLOSED],
     "dest": S.STAGE2_REQUESTED, "after": "on_request_escalation"},
    {"trigger": "refuse_escalation", "source": S.STAGE2_REQUESTED, "dest": S.CLOSED,
     "after": "on_refuse_escalation"},
    {"trigger": "acknowledge_escalation", "source": S.STAGE2_REQUESTED,
     "dest": S.STAGE2_REVIEWING, "after": "on_acknowledge_escalation"},
    {"trigger": "add_issue", "source": STAGE1_OPEN, "dest": None,
     "conditions": "issue_folds", "after": "on_add_issue"},
    {"trigger": "add_issue", "source": ACTIVE, "dest": None, "after": "on_add_issue"},
    {"trigger": "record_contact", "source": list(S), "dest": None, "after": "on_record_contact"},
    {"trigger": "complete_action", "source": ACTIONS_TRACKED, "dest": None,
     "after": "on_complete_action"},
    {"trigger": "withdraw", "source": [s for s in ACTIVE if s is not S.STAGE2_RESPONDED],
     "dest": S.WITHDRAWN, "after": "on_withdraw"},
    {"trigger": "refer_ombudsman", "source": [*ACTIVE, S.DECLINED, S.CLOSED],
     "dest": S.WITH_OMBUDSMAN, "after": "on_refer_ombudsman"},
    {"trigger": "reopen_on_order", "source": [S.DECLINED, S.WITH_OMBUDSMAN], "dest": S.RECEIVED,
     "conditions": "order_takes_on_complaint", "after": "on_reopen"},
    {"trigger": "reopen_on_order", "source": [S.CLOSED, S.WITH_OMBUDSMAN, S.STAGE1_RESPONDED],
     "dest": S.STAGE2_REQUESTED, "conditions": "order_escalates", "after": "on_reopen"},
    {"trigger": "close", "source": [S.STAGE1_RESPONDED, S.STAGE2_RESPONDED, S.WITH_OMBUDSMAN],
     "dest": S.CLOSED, "after": "on_close"},
    {"trigger": "delay_action", "source": ACTIONS_TRACKED, "dest": None,
     "after": "on_delay_action"},
    {"trigger": "pay_remedy", "source": ACTIONS_TRACKED, "dest": None, "after": "on_pay_remedy"},
    {"trigger": "void", "source": ACTIVE, "dest": S.VOIDED, "after": "on_void"},
    {"trigger": "reassign", "source": [*ACTIVE, S.WITH_OMBUDSMAN], "dest": None,
     "after": "on_reassign"},
    {"trigger": "amend_intake", "source": [*ACTIVE, S.WITH_OMBUDSMAN], "dest": None,
     "after": "on_amend_intake"},
    {"trigger": "ombudsman_contact", "source": [*ACTIVE, S.DECLINED, S.CLOSED], "dest": None,
     "after": "on_ombudsman_contact"},
    {"trigger": "ombudsman_determination", "source": [*ACTIVE, S.WITH_OMBUDSMAN, S.DECLINED,
                                                      S.CLOSED],
     "dest": None, "after": "on_ombudsman_determination"},
    {"trigger": "comply_order", "source": [*ACTIVE, S.WITH_OMBUDSMAN, S.DECLINED, S.CLOSED],
     "dest": None, "after": "on_comply_order"},
    {"trigger": "assign", "source": [S.RECEIVED, S.STAGE2_REQUESTED], "dest": None,
     "after": "on_assign"},
]
for _transition in TRANSITIONS:
    _conditions = _transition.get("conditions", [])
    _transition["conditions"] = ["code_allows", *([_conditions] if isinstance(_conditions, str)
                                                  else _conditions)]

K = DeadlineKind
#: The clocks that may run in each state. Whenever a case enters a state, every pending
#: deadline whose kind is not listed is cancelled: leaving a stage (or ending the case)
#: stops that stage's clocks, so nothing can breach on a stage the case has left. Action
#: deadlines (7.3) outlive the responses that set them, until the actions are done; a
#: withdrawn case takes no more actions, so they stop there too.
CLOCKS: dict[ComplaintState, frozenset[DeadlineKind]] = {
    S.RECEIVED: frozenset({K.EARLY_CONTACT, K.STAGE1_ACKNOWLEDGEMENT}),
    S.DECLINED: frozenset(),
    S.STAGE1_INVESTIGATING: frozenset({K.EARLY_CONTACT, K.STAGE1_RESPONSE}),
    S.STAGE1_EXTENDED: frozenset({K.EARLY_CONTACT, K.STAGE1_RESPONSE}),
    S.STAGE1_RESPONDED: frozenset({K.ESCALATION_WINDOW, K.ACTION}),
    S.STAGE2_REQUESTED: frozenset({K.STAGE2_ACKNOWLEDGEMENT, K.ACTION}),
    S.STAGE2_REVIEWING: frozenset({K.STAGE2_RESPONSE, K.ACTION}),
    S.STAGE2_EXTENDED: frozenset({K.STAGE2_RESPONSE, K.ACTION}),
    S.STAGE2_RESPONDED: frozenset({K.ACTION}),
    S.WITH_OMBUDSMAN: frozenset({K.ACTION}),
    S.CLOSED: frozenset({K.ACTION}),
    S.WITHDRAWN: frozenset(),
    S.VOIDED: frozenset(),
}
# An adjustments review (5.10) runs while the complaint is open or with the Ombudsman.
for _state in (*ACTIVE, S.WITH_OMBUDSMAN):
    CLOCKS[_state] = CLOCKS[_state] | {K.REVIEW}
# An Ombudsman instruction or order runs whatever the landlord's process does, until it is
# complied with; only withdrawing or voiding the case stops it.
for _state in S:
    if _state not in (S.WITHDRAWN, S.VOIDED):
        CLOCKS[_state] = CLOCKS[_state] | {K.OMBUDSMAN}
#: States in which the case is over: no clock of the Code runs (actions aside, see CLOCKS).
ENDED = frozenset({S.CLOSED, S.DECLINED, S.WITHDRAWN, S.VOIDED})

TRIGGERS: tuple[str, ...] = tuple(dict.fromkeys(t["trigger"] for t in TRANSITIONS))

#: What each trigger does, in words, for refusals and the CLI.
TRIGGER_TEXT: dict[str, str] = {
    "acknowledge": "acknowledge the complaint",
    "decline": "decline the complaint",
    "extend": "extend the response time",
    "respond": "issue a response",
    "request_escalation": "request stage 2",
    "refuse_escalation": "refuse escalation",
    "acknowledge_escalation": "acknowledge the stage 2 request",
    "add_issue": "add an issue",
    "record_contact": "record contact",
    "complete_action": "complete an action",
    "withdraw": "withdraw the complaint",
    "refer_ombudsman": "refer to the Ombudsman",
    "reopen_on_order": "reopen on the Ombudsman's order",
    "close": "close the case",
    "delay_action": "report an action delayed",
    "pay_remedy": "record a remedy paid",
    "void": "void the case",
    "reassign": "reassign the case",
    "amend_intake": "amend who the complaint is from or what they need",
    "ombudsman_contact": "record contact from the Ombudsman",
    "ombudsman_determination": "record the Ombudsman's determination",
    "comply_order": "record compliance with an Ombudsman order",
    "assign": "assign or claim the case",
}


#: The ``workflow.patched`` id under which a case takes casework revision 2 (see Limits).
CASEWORK_PATCH = "casework-2"
#: The patch id of casework revision 3: an order to escalate overrides a late request.
CASEWORK_3_PATCH = "casework-3"
#: The patch id under which a case numbers its letters counting the event being recorded:
#: before it, a letter accepted while an earlier one of the same kind and stage was being
#: recorded took that one's number (and id), so it was never sent.
IN_FLIGHT_LETTERS_PATCH = "letters-in-flight"
#: The patch id under which a case opens and records its events as *local* activities:
#: run by the worker that handles the workflow task, with no activity task through the
#: server (no three events, no second workflow task per action). Before it they were
#: ordinary activities, and cases that started then keep them for the rest of their run.
LOCAL_RECORDING_PATCH = "local-recording"
#: The patch id of cases started from revision 6 on. It stands for every patch above
#: (:data:`REVISION_6_COVERS`), so that a new case records one patch marker, not four:
#: each ``workflow.patched`` call also upserts the ``TemporalChangeVersion`` search
#: attribute, so the four cost a new case eight events and four visibility writes. A later
#: patch is checked on its own, after this one.
REVISION_6_PATCH = "revision-6"
#: The patches a case under :data:`REVISION_6_PATCH` takes without their own markers.
REVISION_6_COVERS = (CASEWORK_PATCH, CASEWORK_3_PATCH, IN_FLIGHT_LETTERS_PATCH,
                     LOCAL_RECORDING_PATCH)
#: The patch id under which a case records in *ordinary* activities while signals are
#: arriving (one in the last :data:`SIGNALS_SETTLE`), never in local ones: a local
#: activity keeps the workflow task open, the server buffers the signals behind it, and
#: past 100 buffered events it fails the task. Under a flood on a loaded machine every
#: retry was failed again, until one retry had to take thousands of signals at once and
#: the case was stuck. Asked only when a case records while signals are arriving, so a
#: case that is never signalled records no marker, and a running case takes it too.
SIGNALLED_RECORDING_PATCH = "signalled-recording"
#: How long after its last signal a case keeps recording in ordinary activities.
SIGNALS_SETTLE = timedelta(minutes=1)
#: The patch id of cases started from revision 8 on. It stands for everything
#: :data:`REVISION_6_PATCH` does and for :data:`SIGNALLED_RECORDING_PATCH` (still one
#: marker a case), and it keeps the case's timer while its wake time stays the same.
#: Before it, the main loop started a timer each time it waited and cancelled it when an
#: action came: two events, a timer task and a workflow-task command each time, half of
#: them for a wake time that had not moved (6 of the 11 timers in a two-stage case).
REVISION_8_PATCH = "revision-8"
#: The patches a case under :data:`REVISION_8_PATCH` takes without their own markers.
REVISION_8_COVERS = (*REVISION_6_COVERS, REVISION_6_PATCH, SIGNALLED_RECORDING_PATCH)
#: The triggers revision 3 adds: refused on cases that started before it.
CASEWORK_3_TRIGGERS = frozenset({"assign"})
#: The triggers revision 2 adds: refused on cases that started before it.
CASEWORK_2_TRIGGERS = frozenset({"delay_action", "pay_remedy", "void", "reassign",
                                 "ombudsman_contact", "ombudsman_determination",
                                 "comply_order", "amend_intake"})


class ActionRefused(Exception):
    """An action the state or the Code does not allow; the message says what is allowed."""


def mermaid_diagram() -> str:
    """The lifecycle as a Mermaid state diagram, generated from :data:`TRANSITIONS`.

    Internal transitions (recording contact, issues, completing actions) stay off the
    diagram to keep it readable; the README lists them.
    """
    from transitions.extensions import GraphMachine

    class _Model:
        pass

    def values(states: Any) -> Any:
        return [s.value for s in states] if isinstance(states, list) else states.value

    # Drawn with the state values (what operators filter on), not the Enum member names.
    drawn = [{"trigger": t["trigger"], "source": values(t["source"]), "dest": t["dest"].value}
             for t in TRANSITIONS if t["dest"] is not None]
    model = _Model()
    GraphMachine(model=model, states=[s.value for s in ComplaintState], transitions=drawn,
                 initial=ComplaintState.RECEIVED.value, auto_transitions=False,
                 graph_engine="mermaid", title="Complaint lifecycle")
    text: str = model.get_graph().draw(None)  # type: ignore[attr-defined]
    # Drop the styling lines that mark the "active" state: the diagram is of the process.
    lines = [ln for ln in text.splitlines()
             if not ln.strip().startswith(("classDef", "Class "))]
    return "\n".join(ln.rstrip() for ln in lines).strip() + "\n"
