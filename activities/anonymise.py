"""What erasing one case does to its rows: every personal value replaced, the rest kept.

:func:`anonymise_case` blanks, in the caller's transaction, the parties' names, addresses,
emails and phones, the description and outcomes sought, adjustments, letters' text, HTML and
PDF (a tombstone instead), email recipients, remedies' and actions' descriptions, contact
restrictions, triage notes, documents' names and notes, the Ombudsman-details recipients,
the intake fingerprint, and every free-text value of the audit trail and of the case
record's JSON (a key whitelist keeps ids, dates, enums, amounts: :func:`scrub_json`); the
resident's details, description and resolution note of every resolved service request
converted to the complaint (:func:`erase_service_request`); and the ``lessons`` of the
case's ``response_learning`` rows (free text about the service, but a resident's name may
have been typed into it). The learning rows stay, with their themes and root causes: the
learning report counts them.

Service changes (``service_changes``) are left as they are, their ``reference`` to the case
too: they describe a change made to the service, not the case.

Used by the retention job and erasure on request (:mod:`activities.retention`), which
decide which cases are erased and when.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

from sqlmodel import Session, col, select

from models.actions import VoidReason
from models.learning import LearningRow
from models.service_requests import ServiceRequestRow
from models.tables import (
    ActionRow,
    AdjustmentRow,
    AuditRow,
    CaseRecordRow,
    ComplaintRow,
    DeliveryRow,
    DocumentRow,
    ExtensionRow,
    LetterRow,
    OmbudsmanDetailsRow,
    PartyRow,
    ReferenceRow,
    RemedyRow,
    RestrictionHistoryRow,
    RestrictionRow,
    TriageRow,
    utcnow,
)

#: What a personal field reads once erased.
ERASED = "[erased]"
#: What an erased intake's fingerprint reads: never a SHA-256, so the same channel id
#: lodged again is refused as a different complaint rather than joined to this case.
ERASED_FINGERPRINT = "erased"
#: Keys of the case record's and the audit trail's JSON whose string values are kept:
#: ids, dates, states, enums, amounts. Every other string is personal until shown not.
SAFE_KEYS = frozenset({
    "trigger", "reference", "policy_name", "state", "stage", "received_on",
    "issue_occurred_on", "received_on_as_lodged", "channel", "category",
    "stage1_handler", "stage2_handler", "by", "at", "seq", "from_state", "to_state",
    "working_days", "decision", "kind", "amount", "due_by", "action_id", "owner",
    "completed_at", "revised_due", "paid_on", "remedy", "confirmed_via", "grounds",
    "escalation_requested_on", "referred_to_ombudsman_at", "early_contact_at", "closed_at",
    "stage1_acknowledged_by", "former_stage1_handlers", "manager_id", "lead_id", "assignee",
    "letter_channels", "preferred_channel", "order_id", "source", "complied_at",
    "duplicate_of", "handler_id", "to", "role", "direction", "order", "requested_on",
    "aware_on", "respond_by", "adjustments_review_on", "ombudsman_reference", "policy",
    # The audit trail's and the contact restrictions' own bookkeeping.
    "action", "accepted", "status", "outcome", "review_on", "next_review_on", "added_by",
    "added_at", "updated_at", "lifted_at",
})
#: Keys whose string values are kept only when they are one of a closed set of words.
ENUM_KEYS: dict[str, frozenset[str]] = {
    "reason": frozenset(v.value for v in VoidReason),
    "finding": frozenset({"no_maladministration", "service_failure", "maladministration",
                          "severe_maladministration", "complaint_handling_failure",
                          "reasonable_redress"}),
}
_HTML_TOMBSTONE = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                   "<title>Erased</title></head><body><p>{text}</p></body></html>")


def scrub_json(value: Any, key: str | None = None) -> tuple[Any, int]:
    """``value`` with every personal string replaced by :data:`ERASED`, and how many were.

    Strings are kept under :data:`SAFE_KEYS`, and under :data:`ENUM_KEYS` when they are
    one of its words; empty strings, numbers, booleans and nulls are kept. Lists take the
    key they are under.

    Args:
        value: Parsed JSON.
        key: The key ``value`` is under (None at the top).

    Returns:
        The scrubbed value and the number of strings replaced.

    """
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        total = 0
        for k, v in value.items():
            out[k], n = scrub_json(v, k)
            total += n
        return out, total
    if isinstance(value, list):
        items = [scrub_json(v, key) for v in value]
        return [v for v, _ in items], sum(n for _, n in items)
    if isinstance(value, str) and value and value != ERASED:
        if key in SAFE_KEYS or (key in ENUM_KEYS and value in ENUM_KEYS[key]):
            return value, 0
        return ERASED, 1
    return value, 0


def _scrub_text(text: str) -> tuple[str, int]:
    """A stored text that may be JSON (an audit detail, a snapshot), scrubbed."""
    if not text or text == ERASED:
        return text, 0
    try:
        parsed = json.loads(text)
    except ValueError:
        return ERASED, 1
    if not isinstance(parsed, dict | list):
        return ERASED, 1
    scrubbed, n = scrub_json(parsed)
    return (json.dumps(scrubbed, sort_keys=True), n) if n else (text, 0)


def erase_service_request(request: ServiceRequestRow) -> int:
    """Blank a service request's personal fields and stamp it; how many fields changed."""
    fields = _blank(request, ("resident_name", "description", "resolution"))
    fields += _blank(request, ("resident_address",), "")
    fields += _blank(request, ("resident_email", "resident_phone"), None)
    request.erased_at = request.erased_at or utcnow()
    return fields


def _blank(row: Any, names: Iterable[str], value: Any = ERASED) -> int:
    """Replace each non-empty field of ``row`` named in ``names``; how many there were."""
    count = 0
    for name in names:
        current = getattr(row, name)
        if current not in (None, "", ERASED) and current != value:
            setattr(row, name, value)
            count += 1
    return count


def anonymise_case(session: Session, reference: str, today: dt.date,
                   why: str) -> dict[str, int]:
    """Replace every personal value of one case in the session (the caller commits).

    Args:
        session: A writing session (its transaction holds the whole case).
        reference: The case.
        today: The date the letters' tombstone gives.
        why: ``retention`` or ``a request``, for the tombstone.

    Returns:
        ``fields`` (personal values replaced), ``letters`` and ``documents`` (tombstoned).

    """
    fields = letters = documents = 0

    def rows(model: Any) -> list[Any]:
        found: list[Any] = list(session.exec(select(model).where(
            model.reference == reference)).all())
        return found

    complaint = session.get(ComplaintRow, reference)
    if complaint is not None:
        fields += _blank(complaint, ("description", "outcomes_sought"))
        session.add(complaint)
    for party in rows(PartyRow):
        fields += _blank(party, ("name",)) + _blank(party, ("address",), "")
        fields += _blank(party, ("email", "phone"), None)
        session.add(party)
    for adjustment in rows(AdjustmentRow):
        fields += _blank(adjustment, ("description",))
        session.add(adjustment)
    text = (f"[erased on {today.isoformat()} under {why}: this letter's text is no longer "
            "kept; its date, kind and stage are]")
    letter_ids = []
    for letter in rows(LetterRow):
        letter_ids.append(letter.letter_id)
        if letter.text != text and not letter.text.startswith("[erased on "):
            letters += 1
            letter.text, letter.html = text, _HTML_TOMBSTONE.format(text=text)
            letter.pdf = letter.pdf_sha256 = None
            session.add(letter)
    if letter_ids:
        for delivery in session.exec(select(DeliveryRow).where(
                col(DeliveryRow.letter_id).in_(letter_ids),
                DeliveryRow.channel != "outbox")).all():
            fields += _blank(delivery, ("recipient",), f"erased-{delivery.id}")
            session.add(delivery)
    for extension in rows(ExtensionRow):
        # ``reason`` is kept: the annual report lists the most frequent reasons.
        fields += _blank(extension, ("good_reason",))
        session.add(extension)
    for given in rows(OmbudsmanDetailsRow):
        fields += _blank(given, ("given_to",))
        session.add(given)
    for remedy in rows(RemedyRow):
        fields += _blank(remedy, ("description",))
        session.add(remedy)
    for action in rows(ActionRow):
        fields += _blank(action, ("description",))
        session.add(action)
    for entry in rows(AuditRow):
        entry.detail, n = _scrub_text(entry.detail)
        fields += n
        session.add(entry)
    record = session.get(CaseRecordRow, reference)
    if record is not None:
        record.case_json, n = _scrub_text(record.case_json)
        fields += n
        session.add(record)
    for document in rows(DocumentRow):
        if document.file_name != ERASED:
            documents += 1
        fields += _blank(document, ("file_name",)) + _blank(document, ("note",), None)
        session.add(document)
    for restriction in rows(RestrictionRow):
        fields += _blank(restriction, ("reason", "evidence", "proportionality",
                                       "contact_route"))
        session.add(restriction)
    for history in rows(RestrictionHistoryRow):
        fields += _blank(history, ("note",), None)
        history.snapshot_json, n = _scrub_text(history.snapshot_json)
        fields += n
        session.add(history)
    for triage in rows(TriageRow):
        fields += _blank(triage, ("note",), None)
        session.add(triage)
    for learning in rows(LearningRow):
        # Only the free text: the row, its themes and root causes are what reports count.
        fields += _blank(learning, ("lessons",))
        session.add(learning)
    for request in session.exec(select(ServiceRequestRow).where(
            ServiceRequestRow.complaint_reference == reference,
            col(ServiceRequestRow.resolved_on).is_not(None))).all():
        # The same resident's data, on the request the complaint was raised from (1.5).
        fields += erase_service_request(request)
        session.add(request)
    issued = session.get(ReferenceRow, reference)
    if issued is not None and issued.fingerprint not in (None, ERASED_FINGERPRINT):
        issued.fingerprint = ERASED_FINGERPRINT
        fields += 1
        session.add(issued)
    session.flush()
    return {"fields": fields, "letters": letters, "documents": documents}
