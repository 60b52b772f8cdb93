"""One endpoint per staff action: ``POST /api/v1/complaints/{reference}/{trigger}``.

Each endpoint's body is the action's own pydantic model (the one the workflow's update
validates) less ``by``, which is always the signed-in identity: a body that names ``by``
is refused as an unknown field. The routes are made from :data:`ACTION_BY_TRIGGER`, so
a new action appears in the API (and its OpenAPI document) with no new code here.

What a request goes through, in order, each with its own status:

1. the body against the action's model and documented limits (422, fields by pointer);
2. the permission matrix for this person and this case (403, with who may);
3. the staff directory for every staff id the action names (409);
4. the workflow's validator: the state and the Code (409, with the case's reason).

Beside each, ``POST /api/v1/complaints/{reference}/{trigger}/preview`` takes the same body
through the same first three checks, then asks the workflow's ``preview`` query (the case's
own decision, on a copy of the case) and renders the letters the action would send, as
they would be sent: nothing is stored, sent or changed (:func:`preview`).

(No ``from __future__ import annotations`` here: FastAPI reads each endpoint's body type
from its annotation at run time, and the type is a local made per action.)
"""


import asyncio
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from temporalio.client import (
    RPCTimeoutOrCancelledError,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from complaints.api.deps import ContextDep, CurrentUser, SessionDep, require
from complaints.api.problems import Problem, from_validation
from complaints.directory import check_staff
from complaints.identity import Identity, record_view, relation_to
from complaints.updates import execute_update
from domain.lifecycle import TRIGGER_TEXT
from domain.permissions import Permission
from models.actions import ACTION_BY_TRIGGER, Action, Assign
from models.events import ActionResult, PreviewAnswer, PreviewInput
from models.letters import RenderedLetter
from models.limits import first_problem, normalise_staff_ids, staff_key

__all__ = ["Preview", "PreviewLetter", "body_model", "checked_action", "perform", "preview",
           "router"]

router = APIRouter(prefix="/complaints", tags=["actions"])

#: How long an action waits for the case to take it.
ANSWER_TIMEOUT = dt.timedelta(seconds=20)
#: What every preview says: it is only a preview.
PREVIEW_NOTE = "nothing has been sent"


def body_model(action: type[Action]) -> type[BaseModel]:
    """The request body of ``action``: its fields less ``by`` (the identity's)."""
    fields: dict[str, Any] = {name: (info.annotation, info)
                              for name, info in action.model_fields.items() if name != "by"}
    return create_model(f"{action.__name__}Request", __doc__=action.__doc__,
                        __config__=ConfigDict(extra="forbid", hide_input_in_errors=True),
                        **fields)


async def perform(context: Any, session: Any, who: Identity, reference: str, trigger: str,
                  payload: dict[str, Any]) -> ActionResult:
    """Take ``trigger`` on a case as ``who``: the checks above, then the workflow's update.

    Shared by the API and the web app.

    Raises:
        Problem: 404, 422, 403, 409, 503 or 504, each with what to do.

    """
    action = checked_action(context, session, who, reference, trigger, payload)
    client = await context.temporal()
    handle = client.get_workflow_handle(reference)
    try:
        answer = await asyncio.wait_for(
            execute_update(handle, trigger, action, rpc_timeout=ANSWER_TIMEOUT),
            ANSWER_TIMEOUT.total_seconds())
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause)
        raise Problem(409, f"refused: {message}") from None
    except (TimeoutError, RPCTimeoutOrCancelledError):
        raise Problem(504, f"{reference} did not take {trigger} in time (it may still be "
                           "applied when a worker picks it up): check the case before "
                           "sending it again") from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise Problem(409, f"{reference} has finished in Temporal and takes no more "
                               "actions") from None
        status = exc.status.name if exc.status else "error"
        raise Problem(503, f"Temporal refused the request ({status}): try again") from None
    if isinstance(answer, dict) and "case" in answer:  # a first-type case: its whole view
        return ActionResult(reference=reference, seq=0, state=answer["state"],
                            stage=answer["stage"])
    return ActionResult.model_validate(answer)


def _imported(session: Any, reference: str) -> bool:
    """Whether the case came from an import (no workflow: it takes no actions)."""
    from models.tables import ComplaintRow

    row = session.get(ComplaintRow, reference)
    return row is not None and bool(row.imported)


def checked_action(context: Any, session: Any, who: Identity, reference: str, trigger: str,
                   payload: dict[str, Any]) -> Action:
    """``payload`` as ``trigger``'s action by ``who``, through every check before the case's.

    The body (422), the case (404; 409 for an imported one, which no workflow runs), the
    permission matrix (403) and the staff directory (409), in that order; the read is
    ended before the caller waits on the case.

    Raises:
        Problem: 422, 404, 403 or 409, each with what to do.

    """
    model = ACTION_BY_TRIGGER[trigger]
    try:
        action = model.model_validate(normalise_staff_ids({**payload, "by": who.staff_id}))
    except ValidationError as exc:
        raise from_validation(exc) from None
    problem = first_problem(action)
    if problem is not None:
        raise Problem(422, f"the body is not valid: {problem}")
    relation = relation_to(session, who, reference)
    if relation is None:
        raise Problem(404, f"no complaint {reference}: GET /api/v1/complaints lists them")
    if _imported(session, reference):
        raise Problem(409, f"{reference} was imported from the landlord's previous system: "
                           "no workflow runs it, so it takes no actions (import it again "
                           "to change it)")
    require(context, who, permission_for(action, who), relation)
    refusal = check_staff(session, action)
    session.rollback()  # End the read before waiting on the case (see release_database).
    if refusal is not None:
        raise Problem(409, f"refused: {refusal}")
    return action


class PreviewLetter(BaseModel):
    """One letter an action would send, rendered as it would be sent (not sent)."""

    letter_id: str
    kind: str
    subject: str
    text: str
    html: str


class Preview(BaseModel):
    """The letters an action would send to the resident; nothing was stored or sent."""

    letters: list[PreviewLetter]
    note: str = PREVIEW_NOTE


async def preview(context: Any, session: Any, who: Identity, reference: str, trigger: str,
                  payload: dict[str, Any], *, via: str) -> Preview:
    """The letters ``trigger`` would send if ``who`` took it now; nothing is changed.

    The checks of :func:`perform`, then the workflow's ``preview`` query (the case's own
    decision, on a copy of the case), then the letters rendered from the database in a
    read. Showing letters shows personal data: the viewing is recorded (``via``: api or
    web) as ``preview:<trigger>``. Shared by the API and the web app.

    Raises:
        Problem: 404, 422, 403, 409 (the case's reason), 503 or 504, each with what to do.

    """
    from activities.casework import preview_letters

    action = checked_action(context, session, who, reference, trigger, payload)
    client = await context.temporal()
    handle = client.get_workflow_handle(reference)
    question = PreviewInput(trigger=trigger, action=action.model_dump(mode="json"),
                            at=dt.datetime.now(dt.UTC))
    try:
        answer = await asyncio.wait_for(
            handle.query("preview", question, result_type=PreviewAnswer,
                         rpc_timeout=ANSWER_TIMEOUT),
            ANSWER_TIMEOUT.total_seconds())
    except WorkflowQueryFailedError:
        # A case of the first workflow type has no preview (and says so in its own words).
        raise Problem(409, f"{reference} cannot preview letters: it runs an older "
                           "workflow type; take the action to see its letter") from None
    except (TimeoutError, RPCTimeoutOrCancelledError):
        raise Problem(504, f"{reference} did not answer the preview in time: try again "
                           "when a worker is running") from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise Problem(409, f"{reference} has finished in Temporal and takes no more "
                               "actions") from None
        status = exc.status.name if exc.status else "error"
        raise Problem(503, f"Temporal refused the request ({status}): try again") from None
    if answer.refusal is not None:
        raise Problem(409, f"refused: {answer.refusal}")
    event, case = answer.event, answer.case
    if event is None or case is None or not event.letters:
        return Preview(letters=[])

    def render() -> list[RenderedLetter]:
        with context.read_session() as reader:
            return preview_letters(reader, event, case)

    try:
        rendered = await asyncio.to_thread(render)
    except LookupError as exc:
        raise Problem(409, f"{reference}: {exc}") from None
    await context.write(lambda w: record_view(w, who, reference, f"preview:{trigger}", via))
    return Preview(letters=[
        PreviewLetter(letter_id=spec.letter_id, kind=spec.kind.value, subject=letter.subject,
                      text=letter.text, html=letter.html)
        for spec, letter in zip(event.letters, rendered, strict=True)])


def permission_for(action: Action, who: Identity) -> str:
    """The matrix entry an action needs: taking a case for oneself is ``claim``."""
    if isinstance(action, Assign) and staff_key(action.to) == staff_key(who.staff_id):
        return Permission.CLAIM.value
    return action.trigger


def _route(trigger: str, action: type[Action], *, preview_only: bool) -> None:
    """Add the action's endpoint, or (``preview_only``) the endpoint previewing its letters."""
    request_model = body_model(action)
    text = TRIGGER_TEXT.get(trigger, trigger)

    async def endpoint(reference: str, context: ContextDep, session: SessionDep,
                       who: CurrentUser,
                       body: Annotated[request_model, Body()],  # type: ignore[valid-type]
                       ) -> ActionResult | Preview:
        payload = body.model_dump(exclude_unset=True)  # type: ignore[attr-defined]
        if preview_only:
            return await preview(context, session, who, reference, trigger, payload,
                                 via="api")
        return await perform(context, session, who, reference, trigger, payload)

    if preview_only:
        endpoint.__doc__ = (f"The letters {text} would send, rendered as they would be "
                            "sent; nothing is stored, sent or changed.")
        path, name, summary = (f"/{{reference}}/{trigger}/preview", f"{trigger}_preview",
                               f"Preview the letters: {text}")
    else:
        endpoint.__doc__ = action.__doc__
        path, name, summary = f"/{{reference}}/{trigger}", trigger, text.capitalize()
    router.add_api_route(
        path, endpoint, methods=["POST"], name=name, operation_id=name, summary=summary,
        response_model=Preview if preview_only else ActionResult,
        responses={403: {"description": "Your roles or scope do not allow it"},
                   404: {"description": "No such case"},
                   409: {"description": "Refused by the case (state or Code)"},
                   422: {"description": "The body is not valid"}})


for _trigger, _action in ACTION_BY_TRIGGER.items():
    _route(_trigger, _action, preview_only=False)
    _route(_trigger, _action, preview_only=True)
