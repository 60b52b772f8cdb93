"""Named commands for the casework a team does every day, beyond the two stages' main steps.

Each sends one staff action to the case's workflow (see :mod:`complaints.staff`), which
refuses it with the reason and what is allowed when the state, the Code or the case's own
rules do not allow it. Operators script against these names: keep them stable.
"""

from __future__ import annotations

from typing import Any

import click

from complaints import remote
from complaints.staff import (
    BY,
    OneLine,
    StaffError,
    _payload,
    _query,
    _send,
    _split,
    run_async,
)
from models.actions import (
    ContactDirection,
    OmbudsmanContactKind,
    OmbudsmanFinding,
    OmbudsmanOrderKind,
    ReassignRole,
    VoidReason,
)
from models.case import Channel

CHANNELS = click.Choice([c.value for c in Channel])


def register(cli: click.Group, date_type: click.ParamType) -> None:
    """Add the casework commands to the ``complaints`` group."""
    date_type = OneLine(date_type)

    @cli.command()
    @click.argument("reference")
    @BY
    @click.option("--note", default=None, help="Anything the file should say about closing.")
    def close(reference: str, by: str, note: str | None) -> None:
        """Close the case once every action is done and every payment made (Code 7.3)."""
        _send(reference, "close", _payload(None, by=by, note=note))

    @cli.command("record-contact")
    @click.argument("reference")
    @BY
    @click.option("--direction", type=click.Choice([d.value for d in ContactDirection]),
                  required=True, help="inbound (from them), outbound (from us) or internal.")
    @click.option("--channel", type=CHANNELS, required=True, help="How the contact was made.")
    @click.option("--summary", required=True, help="What was said or agreed, briefly.")
    @click.option("--with", "with_party", default=None,
                  help="Who the contact was with (the resident, a representative, a contractor).")
    def record_contact(reference: str, by: str, direction: str, channel: str, summary: str,
                       with_party: str | None) -> None:
        """Put a call, email, letter or visit on the case's record (Code 5.12)."""
        _send(reference, "record_contact", _payload(
            None, by=by, direction=direction, channel=channel, summary=summary,
            with_party=with_party))

    @cli.command("early-contact")
    @click.argument("reference")
    @BY
    @click.option("--channel", type=CHANNELS, required=True, help="How you reached them.")
    @click.option("--summary", required=True, help="What you discussed and agreed.")
    @click.option("--with", "with_party", default=None, help="Who you spoke to.")
    def early_contact(reference: str, by: str, channel: str, summary: str,
                      with_party: str | None) -> None:
        """Record the first contact with the resident the policy promises (e.g. 3 working days).

        This meets the policy's early-contact deadline; later contacts use record-contact.
        """
        _send(reference, "record_contact", _payload(
            None, by=by, direction=ContactDirection.OUTBOUND.value, channel=channel,
            summary=summary, with_party=with_party, early_contact=True))

    @cli.command("add-issue")
    @click.argument("reference")
    @BY
    @click.option("--description", required=True, help="The new issue, in the resident's terms.")
    @click.option("--unrelated", is_flag=True,
                  help="Not related to the complaint: to be logged as a new complaint (6.8).")
    @click.option("--would-delay", is_flag=True,
                  help="Related, but adding it would unreasonably delay the response (6.8).")
    def add_issue(reference: str, by: str, description: str, unrelated: bool,
                  would_delay: bool) -> None:
        """Add an issue raised during the complaint: answered in stage 1, or logged anew (6.8)."""
        _send(reference, "add_issue", _payload(None, by=by, description=description,
                                               related=not unrelated,
                                               would_unreasonably_delay=would_delay or None))

    @cli.command()
    @click.argument("reference")
    @BY
    @click.option("--reason", type=click.Choice([VoidReason.DUPLICATE.value,
                                                 VoidReason.CREATED_IN_ERROR.value]),
                  required=True, help="duplicate (lodged twice) or created_in_error.")
    @click.option("--explanation", required=True, help="Why, for the record.")
    @click.option("--duplicate-of", default=None,
                  help="The case that carries on (needed for a duplicate).")
    def void(reference: str, by: str, reason: str, explanation: str,
             duplicate_of: str | None) -> None:
        """Void a duplicate or a case created in error: no letter, not counted, not an exclusion.

        To decline a real complaint on a Code ground use decline instead.
        """
        _send(reference, "void", _payload(None, by=by, reason=reason, explanation=explanation,
                                          duplicate_of=duplicate_of))

    @cli.command()
    @click.argument("reference")
    @click.option("--into", "into", required=True, help="The case that carries on.")
    @BY
    @click.option("--explanation", required=True, help="Why they are the same matter.")
    def merge(reference: str, into: str, by: str, explanation: str) -> None:
        """Merge a case into another about the same matter: it is voided, the other notes it.

        The other case must exist and answer; nothing is changed if it does not.
        """
        if into == reference:
            raise StaffError(f"cannot merge {reference} into itself: name the case that "
                             "carries on with --into")
        # Refused here, before anything changes, if it cannot answer (with API_URL: asked
        # through the API, as the actions are; no Temporal is reachable from here then).
        if remote.api_url() is not None:
            remote.case_view(into)
        else:
            run_async(_query)(into)
        _send(reference, "void", _payload(None, by=by, reason=VoidReason.MERGED.value,
                                          explanation=explanation, duplicate_of=into))
        _send(into, "record_contact", _payload(
            None, by=by, direction=ContactDirection.INTERNAL.value,
            channel=Channel.OTHER.value,
            summary=f"{reference} was merged into this case: {explanation}"))

    @cli.command()
    @click.argument("reference")
    @BY
    @click.option("--role", type=click.Choice([r.value for r in ReassignRole]), required=True,
                  help="handler (the resident is told) or manager (reminders and breaches).")
    @click.option("--to", "to", required=True, help="The staff id taking it over.")
    @click.option("--reason", required=True, help="Why, for the record.")
    def reassign(reference: str, by: str, role: str, to: str, reason: str) -> None:
        """Give the case's handler or manager role to someone else.

        A new handler is introduced to the resident by letter. Stage 2 never goes to anyone
        who acknowledged, extended or answered stage 1 (Code 6.13).
        """
        _send(reference, "reassign", _payload(None, by=by, role=role, to=to, reason=reason))

    @cli.command("delay-action")
    @click.argument("reference")
    @click.argument("action_id")
    @BY
    @click.option("--revised-due", type=date_type, required=True,
                  help="The new date it will be done by.")
    @click.option("--reason", required=True, help="Why it is late, as the resident will read it.")
    def delay_action(reference: str, action_id: str, by: str, revised_due: Any,
                     reason: str) -> None:
        """Report a promised action delayed; the resident gets an update letter (6.6, 7.3)."""
        _send(reference, "delay_action", _payload(None, by=by, action_id=action_id,
                                                  revised_due=revised_due.isoformat(),
                                                  reason=reason))

    @cli.command("pay-remedy")
    @click.argument("reference")
    @BY
    @click.option("--stage", type=click.IntRange(1, 2), required=True,
                  help="The stage whose response promised it.")
    @click.option("--remedy", type=click.IntRange(1, 100), required=True,
                  help="Its number in that response's list of remedies (1 = first).")
    @click.option("--amount", required=True, help="The amount paid, e.g. 150.00.")
    @click.option("--paid-on", type=date_type, required=True, help="The day it was paid.")
    @click.option("--method", default=None, help="How: bank transfer, rent account credit, ...")
    def pay_remedy(reference: str, by: str, stage: int, remedy: int, amount: str,
                   paid_on: Any, method: str | None) -> None:
        """Record a financial remedy paid; the case closes only when every one is (7.3)."""
        _send(reference, "pay_remedy", _payload(None, by=by, stage=stage, remedy=remedy,
                                                amount=amount, paid_on=paid_on.isoformat(),
                                                method=method))

    @cli.command("ombudsman-order")
    @click.argument("reference")
    @BY
    @click.option("--order", type=click.Choice([o.value for o in OmbudsmanOrderKind]),
                  required=True,
                  help="take_on_complaint (2.4) or escalate_to_stage2 (5.11).")
    @click.option("--details", required=True, help="The Ombudsman's reference and wording.")
    def ombudsman_order(reference: str, by: str, order: str, details: str) -> None:
        """Act on the Ombudsman's order: take on a declined complaint, or escalate to stage 2."""
        _send(reference, "reopen_on_order", _payload(None, by=by, order=order,
                                                     details=details))

    @cli.command("ombudsman-contact")
    @click.argument("reference")
    @BY
    @click.option("--kind", type=click.Choice([k.value for k in OmbudsmanContactKind]),
                  required=True,
                  help="enquiry (they asked about it) or instruction (they told you to act).")
    @click.option("--details", required=True, help="What the Ombudsman asked or instructed.")
    @click.option("--ombudsman-reference", default=None, help="The Ombudsman's own reference.")
    @click.option("--respond-by", type=date_type, default=None,
                  help="For an instruction: the date it must be done by (tracked).")
    def ombudsman_contact(reference: str, by: str, kind: str, details: str,
                          ombudsman_reference: str | None, respond_by: Any) -> None:
        """Record the Ombudsman's contact while your own process carries on.

        The case's clocks keep running. An instruction is tracked to its date until you
        record compliance with comply-order (its id is shown by status). A formal
        investigation is refer-ombudsman instead.
        """
        _send(reference, "ombudsman_contact", _payload(
            None, by=by, kind=kind, details=details, ombudsman_reference=ombudsman_reference,
            respond_by=respond_by.isoformat() if respond_by else None))

    @cli.command("ombudsman-determination")
    @click.argument("reference")
    @BY
    @click.option("--finding", type=click.Choice([f.value for f in OmbudsmanFinding]),
                  required=True, help="What the Ombudsman found.")
    @click.option("--details", required=True, help="A summary of the determination.")
    @click.option("--ombudsman-reference", default=None)
    @click.option("--order", "orders", multiple=True,
                  help="ID::WHAT WAS ORDERED::DUE YYYY-MM-DD (repeatable); each is tracked.")
    def ombudsman_determination(reference: str, by: str, finding: str, details: str,
                                ombudsman_reference: str | None,
                                orders: tuple[str, ...]) -> None:
        """Record the Ombudsman's determination and its orders, each tracked to its date.

        The case cannot close until every order is complied with (comply-order).
        """
        items = [dict(zip(("order_id", "description", "due_by"), _split(o, 3, "order"),
                          strict=False)) for o in orders]
        _send(reference, "ombudsman_determination", _payload(
            None, by=by, finding=finding, details=details,
            ombudsman_reference=ombudsman_reference, orders=items))

    @cli.command("comply-order")
    @click.argument("reference")
    @click.argument("order_id")
    @BY
    @click.option("--evidence", required=True,
                  help="What was done and how it can be shown (kept on the record).")
    def comply_order(reference: str, order_id: str, by: str, evidence: str) -> None:
        """Record that an Ombudsman order or instruction was complied with, and the evidence."""
        _send(reference, "comply_order", _payload(None, by=by, order_id=order_id,
                                                  evidence=evidence))

    @cli.command("amend-intake")
    @click.argument("reference")
    @BY
    @click.option("--reason", required=True, help="Why the record is corrected (audited).")
    @click.option("--json", "json_path", required=True,
                  help="The new values as JSON: parties (the full list), adjustments (the "
                       "full list), adjustments_review_on, representative_authority.")
    def amend_intake(reference: str, by: str, reason: str, json_path: str) -> None:
        """Correct who the complaint is from or what they need; lists given replace the old.

        Letters go to the parties recorded from then on. Refused if it would leave no
        resident, or add a representative without the resident's authority (Code 3.6).
        """
        _send(reference, "amend_intake", _payload(json_path, by=by, reason=reason))

    @cli.command("add-representative")
    @click.argument("reference")
    @BY
    @click.option("--name", required=True, help="The representative's name.")
    @click.option("--address", multiple=True, help="An address line (repeatable).")
    @click.option("--email", default=None)
    @click.option("--phone", default=None)
    @click.option("--authority", required=True,
                  help="How and when the resident authorised them (e.g. signed form, 3 Dec).")
    def add_representative(reference: str, by: str, name: str, address: tuple[str, ...],
                           email: str | None, phone: str | None, authority: str) -> None:
        """Add someone acting for the resident; they receive the letters too (Code 3.6)."""
        parties = [*_recorded_parties(reference), {
            "role": "representative", "name": name, "address": list(address),
            "email": email, "phone": phone}]
        _send(reference, "amend_intake", _payload(
            None, by=by, reason=f"representative added: {authority}"[:500], parties=parties,
            representative_authority=authority))

    @cli.command("adjustments")
    @click.argument("reference")
    @BY
    @click.option("--adjustment", "adjustments", multiple=True, required=True,
                  help="A reasonable adjustment, e.g. 'Large print letters' (repeatable; "
                       "the list replaces the recorded one).")
    @click.option("--disability-disclosed", is_flag=True,
                  help="The resident disclosed a disability (Equality Act 2010).")
    @click.option("--review-on", type=date_type, required=True,
                  help="When to review them with the resident (a reminder comes first).")
    @click.option("--reason", required=True, help="Why they were added or changed.")
    def adjustments_command(reference: str, by: str, adjustments: tuple[str, ...],
                            disability_disclosed: bool, review_on: Any, reason: str) -> None:
        """Record or change reasonable adjustments and when to review them (Code 5.10).

        "Large print" in an adjustment makes the letters' PDF large print.
        """
        _send(reference, "amend_intake", _payload(
            None, by=by, reason=reason, adjustments_review_on=review_on.isoformat(),
            adjustments=[{"description": a, "disability_disclosed": disability_disclosed}
                         for a in adjustments]))


def _recorded_parties(reference: str) -> list[dict[str, Any]]:
    """The parties recorded for a case, as the amendment's JSON (one-line error if none)."""
    if remote.api_url() is not None:  # the API's records, not a database on this machine
        from complaints.remote_reports import recorded_parties

        return recorded_parties(reference)
    from sqlalchemy.exc import SQLAlchemyError
    from sqlmodel import col, select

    from complaints.db import make_engine, session_factory
    from complaints.settings import Settings
    from models.tables import PartyRow

    url = Settings().effective_database_url()
    try:
        engine = make_engine(url)
        try:
            with session_factory(engine)() as session:
                rows = session.exec(select(PartyRow).where(PartyRow.reference == reference)
                                    .order_by(col(PartyRow.position))).all()
        finally:
            engine.dispose()
    except (SQLAlchemyError, OSError) as exc:
        raise StaffError(f"cannot read the parties of {reference} from the database "
                         f"({type(exc).__name__}): check DATABASE_URL or DATA_DIR") from None
    if not rows:
        raise StaffError(f"no parties recorded for {reference} in this database: check the "
                         "reference, or run `complaints resync` after a restore")
    return [{"role": r.role, "name": r.name, "address": [ln for ln in r.address.split("\n")
                                                         if ln],
             "email": r.email, "phone": r.phone} for r in rows]
