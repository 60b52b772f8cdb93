"""Letter content models (models.letters) and their rendering (complaints.letters)."""

from __future__ import annotations

import datetime as dt
import html
import re
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from jinja2 import UndefinedError
from pydantic import TypeAdapter, ValidationError

import complaints.letters as letters_module
from complaints.letters import (
    LetterIncomplete,
    check_complete,
    get_environment,
    missing_elements,
    render_letter,
    resolve_template_set,
    squash,
    visible_text,
)
from models.case import (
    EXCLUSION_GROUND_TEXT,
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
from models.letters import (
    LATE_APOLOGY,
    LETTER_TYPES,
    REMEDY_PAYMENT,
    ActionStatus,
    Extension,
    FinalResponse,
    Letter,
    LetterBase,
    LetterKind,
    RenderedLetter,
    Stage1Response,
    describe_escalation_window,
    format_money,
    format_uk_date,
    ombudsman_email_note,
)
from models.policy import (
    EscalationWindow,
    EscalationWindowStart,
    EscalationWindowUnit,
    OmbudsmanDetails,
)

CONNEXUS_LINE = "Connexus, The Gateway, The Auction Yard, Craven Arms, SY7 9BW · 03332 31 32 33"
OMBUDSMAN_EMAIL = "info@housing-ombudsman.org.uk"
LETTER_ADAPTER: TypeAdapter[Letter] = TypeAdapter(Letter)

RESIDENT = Party(name="Amira Patel", address=("Flat 4, Mill Court", "Corve Street",
                                              "Ludlow", "SY8 1AB"))
POINTS = (
    "The repair to the leaking kitchen roof reported on 3 November 2025 has not been done.",
    "Two repair appointments were missed without notice.",
)
DEFINITION = ComplaintDefinition(
    summary="You are unhappy with how we have handled the leak in your kitchen roof.",
    points=POINTS,
    outcomes_sought=("Repair the roof permanently.", "Compensation for the damaged flooring."),
    responsible_for=("Repairs to the roof and structure of your home.",),
    not_responsible_for=("Your contents insurance claim for the flooring.",),
)
FINDINGS = (
    PointFinding(point=POINTS[0], finding="The repair was not completed on time.",
                 reason="Our repairs policy sets 20 working days for routine roof repairs; "
                        "the job was not raised with the contractor for 31 days."),
    PointFinding(point=POINTS[1], finding="One appointment was missed without notice.",
                 reason="Contractor records show the 14 November visit was cancelled by text "
                        "the day before, but the 2 December visit was missed."),
)
REMEDIES = (
    Remedy(kind=RemedyKind.APOLOGY,
           description="We apologise for the delay and the missed appointment."),
    Remedy(kind=RemedyKind.FINANCIAL,
           description="Compensation for the delay and inconvenience.",
           amount=Decimal("1250"), due_by=dt.date(2026, 3, 16)),
)
ACTIONS = (
    OutstandingAction(action_id="ACT-1", description="Replace the felt on the kitchen roof.",
                      due_by=dt.date(2026, 3, 27), owner="Repairs team"),
)


def _base(**overrides: Any) -> dict[str, Any]:
    """Return the fields every letter shares, with overrides applied."""
    fields: dict[str, Any] = {
        "reference": "CMP-2026-000123",
        "landlord": "Connexus",
        "landlord_contact": "complaints@example.org · 03332 31 32 33",
        "recipients": (RESIDENT,),
        "letter_date": dt.date(2026, 3, 2),
        "signed_by": "Sam Jones, Repairs Manager",
        "ombudsman": OmbudsmanDetails(),
    }
    fields.update(overrides)
    return fields


_SPECIFIC: dict[LetterKind, dict[str, Any]] = {
    LetterKind.STAGE1_ACKNOWLEDGEMENT: {
        "definition": DEFINITION,
        "received_on": dt.date(2026, 2, 25),
        "response_due": dt.date(2026, 3, 16),
        "handler": "Sam Jones, Repairs Manager",
        "adjustments": ("Letters in large print.",),
    },
    LetterKind.STAGE2_ACKNOWLEDGEMENT: {
        "definition": DEFINITION.model_copy(update={
            "summary": "You remain unhappy that the roof is still leaking after stage 1."}),
        "escalation_requested_on": dt.date(2026, 2, 26),
        "response_due": dt.date(2026, 3, 30),
        "reviewer": "Priya Shah, Complaints Manager",
        "stage1_handler": "Sam Jones, Repairs Manager",
    },
    LetterKind.EXTENSION: {
        "stage": 1,
        "reason": "We are waiting for a roofing survey that is booked for 9 March 2026.",
        "previous_due": dt.date(2026, 3, 4),
        "new_due": dt.date(2026, 3, 18),
        "working_days": 10,
        "update_interval": "a phone call every Friday until we respond.",
    },
    LetterKind.STAGE1_RESPONSE: {
        "definition": DEFINITION,
        "decision": Decision.PARTLY_UPHELD,
        "findings": FINDINGS,
        "remedies": REMEDIES,
        "outstanding_actions": ACTIONS,
        "escalation_window": EscalationWindow(
            length=1, unit=EscalationWindowUnit.CALENDAR_MONTHS,
            runs_from=EscalationWindowStart.ACTIONS_COMPLETED),
    },
    LetterKind.FINAL_RESPONSE: {
        "definition": DEFINITION,
        "decision": Decision.UPHELD,
        "findings": FINDINGS,
        "remedies": REMEDIES,
        "outstanding_actions": (),
    },
    LetterKind.EXCLUSION: {
        "grounds": (ExclusionGround.OLDER_THAN_12_MONTHS,),
        "explanation": "The damp you describe was repaired in June 2024 and you first "
                       "told us you were unhappy in February 2026.",
        "discretion_considered": "We looked at whether anything stopped you complaining "
                                 "sooner and found no reason to accept it late.",
        "received_on": dt.date(2026, 2, 20),
        "complaint_summary": "The damp treatment in your bathroom in 2024.",
        "other_route": "If the damp has come back, please report it as a new repair.",
    },
    LetterKind.ESCALATION_REFUSAL: {
        "grounds": (ExclusionGround.LEGAL_PROCEEDINGS, ExclusionGround.PREVIOUSLY_CONSIDERED),
        "explanation": "A disrepair claim about the same roof was filed at court on "
                       "10 February 2026.",
        "escalation_requested_on": dt.date(2026, 2, 24),
    },
    LetterKind.ACTION_UPDATE: {
        "action": ACTIONS[0],
        "status": ActionStatus.DELAYED,
        "revised_due": dt.date(2026, 4, 10),
        "note": "The roofer needs scaffolding, which cannot be put up until 6 April.",
    },
    LetterKind.WITHDRAWAL_CONFIRMATION: {
        "withdrawn_on": dt.date(2026, 3, 2),
        "confirmed_via": "by email",
        "reason": "The repair has been done and I am happy with it.",
    },
    LetterKind.HANDLER_CHANGED: {
        "stage": 1,
        "handler": "Sam Patel, Complaints Officer",
        "handler_contact": "sam.patel@example.invalid, 01234 567890",
    },
}


def make_letter(kind: LetterKind, **overrides: Any) -> Letter:
    """Build a realistic letter of ``kind`` through the discriminated union, with overrides."""
    fields = _base(**_SPECIFIC[kind])
    fields.update(overrides)
    fields["kind"] = kind
    return LETTER_ADAPTER.validate_python(fields)


def _html_text(document: str) -> str:
    """Return the visible text of an HTML document with whitespace collapsed."""
    return visible_text(document)


def _squash(value: str) -> str:
    """Collapse runs of whitespace to single spaces."""
    return squash(value)


ALL_KINDS = list(LetterKind)


@pytest.mark.parametrize("template_set", ["default", "connexus"])
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_text_contains_every_required_element(kind: LetterKind, template_set: str) -> None:
    """The plain-text letter contains every required element of its kind."""
    letter = make_letter(kind)
    text = render_letter(letter, template_set).text
    missing = {k: v for k, v in letter.required_elements().items() if v not in text}
    assert missing == {}


@pytest.mark.parametrize("template_set", ["default", "connexus"])
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_every_shipped_letter_passes_the_render_time_check(kind: LetterKind,
                                                           template_set: str) -> None:
    """check_complete accepts every kind rendered by the shipped sets, in every variant."""
    variants: list[dict[str, Any]] = [{}, {"large_print": True}]
    if kind is LetterKind.STAGE1_ACKNOWLEDGEMENT or kind is LetterKind.STAGE2_ACKNOWLEDGEMENT:
        variants.append({"late_by_working_days": 3})
    if kind is LetterKind.STAGE1_RESPONSE:
        variants.append({"outstanding_actions": (), "escalation_deadline": dt.date(2026, 4, 2)})
    for overrides in variants:
        letter = make_letter(kind, **overrides)
        rendered = render_letter(letter, template_set)
        assert missing_elements(letter.required_elements(), rendered) == {}
        check_complete(letter, rendered, template_set)


@pytest.mark.parametrize("template_set", ["default", "connexus"])
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_html_contains_every_required_element(kind: LetterKind, template_set: str) -> None:
    """The HTML letter's visible text contains every required element of its kind."""
    letter = make_letter(kind)
    visible = _html_text(render_letter(letter, template_set).html)
    missing = {k: v for k, v in letter.required_elements().items()
               if _squash(v) not in visible}
    assert missing == {}


@pytest.mark.parametrize(("kind", "labels"), [
    (LetterKind.STAGE1_ACKNOWLEDGEMENT,
     {"5.6 summary", "5.6 point 1", "5.6 outcome sought 1", "5.7 not responsible for 1",
      "6.3 response due", "5.10 reasonable adjustments", "3.7 ombudsman phone"}),
    (LetterKind.STAGE2_ACKNOWLEDGEMENT,
     {"5.6 summary", "6.12 no reasons needed", "6.14 response due", "3.7 ombudsman phone"}),
    (LetterKind.EXTENSION,
     {"6.4 reason", "6.4 new due", "6.4 length", "5.9 update interval",
      "6.5 ombudsman phone", "6.5 ombudsman online form"}),
    (LetterKind.STAGE1_RESPONSE,
     {"6.9(a) stage", "6.9(b) point 2", "6.9(c) decision", "6.9(d) reason 2",
      "6.9(e) remedy 2 amount", "6.9(f) action 1 by", "6.9(g) escalation window"}),
    (LetterKind.FINAL_RESPONSE,
     {"6.19(a) stage", "6.19(c) decision", "6.19(d) reason 1", "6.19(f) actions",
      "6.19(g) time limit", "6.19(g) contact now", "6.19(g) ombudsman phone"}),
    (LetterKind.EXCLUSION,
     {"2.4 ground 1", "2.4 explanation", "2.3 discretion considered",
      "2.4 right to ombudsman", "2.4 ombudsman phone"}),
    (LetterKind.ESCALATION_REFUSAL,
     {"5.11 ground 1", "5.11 ground 2", "5.11 explanation", "5.11 right to ombudsman"}),
    (LetterKind.ACTION_UPDATE,
     {"6.6 action", "6.6 status", "7.3 revised due", "6.6 note"}),
    (LetterKind.WITHDRAWAL_CONFIRMATION,
     {"5.12 withdrawn on", "5.12 confirmed via", "5.12 reason", "3.7 ombudsman phone"}),
    (LetterKind.HANDLER_CHANGED, {"5.9 handler", "5.9 handler contact"}),
])
def test_required_elements_cover_the_code(kind: LetterKind, labels: set[str]) -> None:
    """Each kind lists the Code provisions it must satisfy."""
    elements = make_letter(kind).required_elements()
    assert labels <= elements.keys()
    assert all(value.strip() for value in elements.values())


def test_response_elements_carry_formatted_values() -> None:
    """A response's required elements are the formatted decision, money and dates."""
    elements = make_letter(LetterKind.STAGE1_RESPONSE).required_elements()
    assert elements["6.9(a) stage"] == "This is our stage 1 response"
    assert elements["6.9(c) decision"] == "Partly upheld"
    assert elements["6.9(e) remedy 2 amount"] == "£1,250.00"
    assert elements["6.9(e) remedy 2 by"] == "Monday 16 March 2026"
    assert elements["6.9(g) escalation window"] == (
        "within 1 calendar month after any actions are completed")


def test_extension_without_ombudsman_details_cannot_be_built() -> None:
    """An extension notice must carry the Ombudsman's details (6.5)."""
    fields = _base(**_SPECIFIC[LetterKind.EXTENSION])
    del fields["ombudsman"]
    with pytest.raises(ValidationError, match="ombudsman"):
        Extension(**fields)


def test_extension_over_cap_needs_a_good_reason() -> None:
    """An extension beyond the cap without a good reason is refused (6.4)."""
    with pytest.raises(ValidationError, match="good reason"):
        make_letter(LetterKind.EXTENSION, working_days=11, new_due=dt.date(2026, 3, 20))


def test_extension_cap_counts_earlier_extensions() -> None:
    """Earlier extensions at the stage count towards the cap."""
    with pytest.raises(ValidationError, match="good reason"):
        make_letter(LetterKind.EXTENSION, working_days=5, extended_so_far=6,
                    new_due=dt.date(2026, 3, 11))


def test_extension_cap_looser_than_code_is_refused() -> None:
    """A stage 2 cap looser than the Code's 20 working days is refused (6.15)."""
    with pytest.raises(ValidationError, match="looser"):
        make_letter(LetterKind.EXTENSION, stage=2, cap=25)


def test_extension_over_cap_explains_good_reason() -> None:
    """An over-cap extension with a good reason prints the reason and the cap."""
    reason = "The structural engineer can only attend on 23 March."
    letter = make_letter(LetterKind.EXTENSION, working_days=15, new_due=dt.date(2026, 3, 25),
                         good_reason=reason)
    assert isinstance(letter, Extension) and letter.over_cap
    text = render_letter(letter).text
    assert reason in text
    assert "longer than the 10 working days we would normally allow" in text


def test_stage2_extension_uses_stage2_provisions() -> None:
    """A stage 2 extension is labelled 6.15/6.16 and allows 20 working days."""
    letter = make_letter(LetterKind.EXTENSION, stage=2, working_days=20,
                         new_due=dt.date(2026, 4, 1))
    elements = letter.required_elements()
    assert "6.16 ombudsman phone" in elements
    assert elements["6.15 length"] == "20 working days"


@pytest.mark.parametrize("fmt", ["text", "html"])
def test_ombudsman_email_printed_before_cutoff(fmt: str) -> None:
    """Before 13 January 2026 the Ombudsman email is printed as a way to start a case."""
    letter = make_letter(LetterKind.EXTENSION, letter_date=dt.date(2026, 1, 12),
                         previous_due=dt.date(2026, 1, 14), new_due=dt.date(2026, 1, 28))
    output = _squash(getattr(render_letter(letter), fmt))
    assert OMBUDSMAN_EMAIL in output
    assert ("from Tuesday 13 January 2026 the Ombudsman will no longer accept new case "
            "enquiries by email") in output
    assert "stopped accepting" not in output
    assert "6.5 ombudsman email" in letter.required_elements()
    assert "6.5 ombudsman email note" in letter.required_elements()


@pytest.mark.parametrize("letter_date", [dt.date(2026, 1, 13), dt.date(2026, 1, 14)])
@pytest.mark.parametrize("fmt", ["text", "html"])
def test_ombudsman_email_omitted_from_cutoff(fmt: str, letter_date: dt.date) -> None:
    """From 13 January 2026 the email is omitted and residents are told why."""
    letter = make_letter(LetterKind.EXTENSION, letter_date=letter_date,
                         previous_due=dt.date(2026, 1, 15), new_due=dt.date(2026, 1, 29))
    output = _squash(getattr(render_letter(letter), fmt))
    assert OMBUDSMAN_EMAIL not in output
    assert ("The Ombudsman stopped accepting new case enquiries by email on Tuesday "
            "13 January 2026, so please use the online form, phone or post.") in output
    assert "will no longer accept" not in output
    assert "6.5 ombudsman email" not in letter.required_elements()


def test_online_form_comes_before_phone_and_post() -> None:
    """The Ombudsman's online form is listed first."""
    text = render_letter(make_letter(LetterKind.FINAL_RESPONSE)).text
    ombudsman = OmbudsmanDetails()
    assert text.index(ombudsman.online_form) < text.index(ombudsman.phone)
    assert text.index(ombudsman.online_form) < text.index(ombudsman.address)


def test_group_letter_names_every_recipient() -> None:
    """A group complaint letter is addressed to every named member."""
    group = (
        Party(role=PartyRole.GROUP_MEMBER, name="Amira Patel", address=("Flat 4",)),
        Party(role=PartyRole.GROUP_MEMBER, name="Tom Evans", address=("Flat 5",)),
        Party(role=PartyRole.GROUP_MEMBER, name="Grace Okafor", address=("Flat 6",)),
    )
    letter = make_letter(LetterKind.STAGE1_ACKNOWLEDGEMENT, recipients=group)
    rendered = render_letter(letter)
    for output in (rendered.text, _html_text(rendered.html)):
        for party in group:
            assert party.name in output
            assert party.address[0] in output
        assert "Dear Amira Patel, Tom Evans and Grace Okafor," in output


def test_letter_needs_a_recipient() -> None:
    """A letter with no recipients cannot be built."""
    with pytest.raises(ValidationError, match="recipients"):
        make_letter(LetterKind.ACTION_UPDATE, recipients=())


@pytest.mark.parametrize("fmt", ["text", "html"])
def test_connexus_footer_override(fmt: str) -> None:
    """The connexus set overrides the footer; the default set does not print it."""
    letter = make_letter(LetterKind.STAGE1_RESPONSE)
    connexus = getattr(render_letter(letter, "connexus"), fmt)
    default = getattr(render_letter(letter), fmt)
    assert "Please call us on 03332 31 32 33" in connexus
    assert "Craven Arms" not in default
    assert "Please contact us if you would like a copy" in default
    assert "Please contact us if you would like a copy" not in connexus


@pytest.mark.parametrize("fmt", ["text", "html"])
def test_connexus_footer_prints_the_address_once(fmt: str) -> None:
    """The Connexus footer prints the landlord's contact line once, not twice."""
    letter = make_letter(LetterKind.STAGE1_RESPONSE, landlord_contact=CONNEXUS_LINE)
    output = getattr(render_letter(letter, "connexus"), fmt)
    visible = output if fmt == "text" else html.unescape(output)
    assert visible.count(CONNEXUS_LINE) == 1
    assert visible.count("Craven Arms") == 1


def test_connexus_footer_prints_no_address_when_none_is_given() -> None:
    """Without a landlord contact the Connexus footer hard-codes no address of its own."""
    text = render_letter(make_letter(LetterKind.EXTENSION, landlord_contact=""), "connexus").text
    assert "Craven Arms" not in text


def test_unknown_template_set_falls_back_to_default() -> None:
    """A set with no directory of its own renders exactly like the default set."""
    letter = make_letter(LetterKind.EXCLUSION)
    assert render_letter(letter, "code-2024") == render_letter(letter)


@pytest.mark.parametrize("name", ["../default", "Default", "", "a/b"])
def test_invalid_template_set_name_is_refused(name: str) -> None:
    """Template set names cannot walk out of the templates directory."""
    with pytest.raises(ValueError, match="template set"):
        get_environment(name)


def test_environment_is_cached_per_set() -> None:
    """Environments are built once per template set."""
    assert get_environment("default") is get_environment("default")
    assert get_environment("connexus") is not get_environment("default")


def test_html_is_escaped_but_text_is_literal() -> None:
    """Autoescape applies to HTML templates only."""
    payload = "<script>alert('x')</script> & more"
    letter = make_letter(LetterKind.EXCLUSION, explanation=payload)
    rendered = render_letter(letter)
    assert payload in rendered.text
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more" in rendered.html


def test_strict_undefined_catches_missing_variables() -> None:
    """A template using a variable that is not provided fails instead of printing nothing."""
    env = get_environment("default")
    with pytest.raises(UndefinedError):
        env.from_string("Dear {{ resident_name }}").render()
    with pytest.raises(UndefinedError):
        env.get_template("extension.txt.j2").render(subject="x")


def test_html_is_a_self_contained_document() -> None:
    """The HTML letter has a title and loads no external assets."""
    letter = make_letter(LetterKind.FINAL_RESPONSE)
    rendered = render_letter(letter)
    assert rendered.html.startswith("<!DOCTYPE html>")
    assert f"<title>{letter.subject()}</title>" in rendered.html
    assert rendered.subject == "Your complaint CMP-2026-000123: our stage 2 final response"
    for marker in ("<script", "<link", "src=", "@import"):
        assert marker not in rendered.html


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_rendering_is_deterministic_and_complete(kind: LetterKind) -> None:
    """Rendering twice gives the same letter, with no template syntax left over."""
    letter = make_letter(kind)
    first = render_letter(letter)
    assert first == render_letter(letter)
    assert isinstance(first, RenderedLetter)
    for marker in ("{{", "}}", "{%", "%}", "\n\n\n"):
        assert marker not in first.text


def test_ukdate_filter() -> None:
    """The ukdate filter writes the weekday, day, month name and year."""
    env = get_environment("default")
    assert env.from_string("{{ d|ukdate }}").render(d=dt.date(2026, 1, 5)) == (
        "Monday 5 January 2026")
    assert format_uk_date(dt.date(2025, 12, 25)) == "Thursday 25 December 2025"


@pytest.mark.parametrize(("amount", "expected"), [
    (Decimal("1250"), "£1,250.00"),
    (Decimal("0.005"), "£0.01"),
    (1234567.891, "£1,234,567.89"),
    (0, "£0.00"),
])
def test_money_filter(amount: Decimal | float | int, expected: str) -> None:
    """The money filter prints pounds with separators and pence, rounding half up."""
    env = get_environment("default")
    assert env.from_string("{{ a|money }}").render(a=amount) == expected
    assert format_money(amount) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (Decision.UPHELD, "Upheld"),
    (Decision.PARTLY_UPHELD, "Partly upheld"),
    ("not_upheld", "Not upheld"),
])
def test_decision_filter(value: Decision | str, expected: str) -> None:
    """The decision filter gives the human wording of a decision."""
    env = get_environment("default")
    assert env.from_string("{{ d|decision }}").render(d=value) == expected


def test_response_must_answer_every_point() -> None:
    """A response that leaves a point of the definition unanswered is refused (6.7)."""
    with pytest.raises(ValidationError, match="no finding"):
        make_letter(LetterKind.STAGE1_RESPONSE, findings=FINDINGS[:1])


def test_response_findings_must_match_the_definition() -> None:
    """A finding for a point that is not in the definition is refused."""
    extra = PointFinding(point="Something else.", finding="x", reason="y")
    with pytest.raises(ValidationError, match="not in the complaint definition"):
        make_letter(LetterKind.FINAL_RESPONSE, findings=(*FINDINGS, extra))


def test_upheld_response_needs_a_remedy() -> None:
    """An upheld complaint without a remedy is refused (7.1)."""
    with pytest.raises(ValidationError, match="7.1"):
        make_letter(LetterKind.FINAL_RESPONSE, remedies=())


def test_financial_remedy_needs_an_amount() -> None:
    """A financial remedy without an amount is refused (7.3)."""
    remedy = Remedy(kind=RemedyKind.FINANCIAL, description="Compensation.")
    with pytest.raises(ValidationError, match="amount"):
        make_letter(LetterKind.STAGE1_RESPONSE, remedies=(remedy,))


def test_not_upheld_response_says_no_remedy() -> None:
    """A not-upheld response without remedies says so and lists no outstanding actions."""
    letter = make_letter(LetterKind.STAGE1_RESPONSE, decision=Decision.NOT_UPHELD,
                         remedies=(), outstanding_actions=())
    text = render_letter(letter).text
    assert "We are not offering a remedy" in text
    assert "There are no outstanding actions." in text
    assert "Not upheld" in text
    assert "within 1 calendar month of the date of this letter" in text


def test_escalation_window_descriptions() -> None:
    """The escalation window reads naturally for each unit and start."""
    months = EscalationWindow(length=1, unit=EscalationWindowUnit.CALENDAR_MONTHS,
                              runs_from=EscalationWindowStart.ACTIONS_COMPLETED)
    days = EscalationWindow(length=15, unit=EscalationWindowUnit.WORKING_DAYS)
    assert describe_escalation_window(months, has_actions=True) == (
        "within 1 calendar month after any actions are completed")
    assert describe_escalation_window(months, has_actions=False) == (
        "within 1 calendar month of the date of this letter")
    assert describe_escalation_window(days, has_actions=True) == (
        "within 15 working days of the date of this letter")


def test_stage1_response_custom_escalation_route() -> None:
    """A stage 1 response prints the landlord's own escalation instructions when given."""
    how = "Reply to this letter or call 03332 31 32 33 and ask for a Review."
    letter = make_letter(LetterKind.STAGE1_RESPONSE, how_to_escalate=how)
    assert isinstance(letter, Stage1Response)
    text = render_letter(letter).text
    assert how in text
    assert "You can ask by phone, email, letter or in person" not in text


def test_final_response_points_to_the_ombudsman() -> None:
    """The final response gives the Ombudsman route with the 12-month time limit."""
    letter = make_letter(LetterKind.FINAL_RESPONSE)
    assert isinstance(letter, FinalResponse)
    text = render_letter(letter).text
    assert "within 12 months of this final response" in text
    assert "You can contact the Ombudsman now" in text
    assert "stage 2" not in text.split("7. If you are still not satisfied")[1].lower()


def test_exclusion_over_12_months_needs_discretion_considered() -> None:
    """Refusing an out-of-time complaint requires recording the discretion considered (2.3)."""
    with pytest.raises(ValidationError, match="2.3"):
        make_letter(LetterKind.EXCLUSION, discretion_considered=None)


def test_exclusion_needs_a_ground() -> None:
    """A refusal without any ground is refused (2.1)."""
    with pytest.raises(ValidationError, match="grounds"):
        make_letter(LetterKind.ESCALATION_REFUSAL, grounds=())


def test_escalation_refusal_lists_each_ground() -> None:
    """An escalation refusal prints every ground in plain words (5.11)."""
    text = render_letter(make_letter(LetterKind.ESCALATION_REFUSAL)).text
    assert EXCLUSION_GROUND_TEXT[ExclusionGround.LEGAL_PROCEEDINGS] in text
    assert EXCLUSION_GROUND_TEXT[ExclusionGround.PREVIOUSLY_CONSIDERED] in text
    assert "You have the right to take this decision to the Housing Ombudsman Service" in text


def test_stage2_reviewer_must_differ_from_stage1_handler() -> None:
    """The stage 2 reviewer cannot be the person who handled stage 1 (6.13)."""
    with pytest.raises(ValidationError, match="6.13"):
        make_letter(LetterKind.STAGE2_ACKNOWLEDGEMENT, reviewer="sam jones, repairs manager")


@pytest.mark.parametrize(("overrides", "message"), [
    ({"revised_due": None}, "revised_due"),
    ({"note": None}, "note"),
    ({"status": ActionStatus.COMPLETED}, "completed"),
])
def test_action_update_consistency(overrides: dict[str, Any], message: str) -> None:
    """A delayed update needs a later date and a note; a completed one has no new date."""
    with pytest.raises(ValidationError, match=message):
        make_letter(LetterKind.ACTION_UPDATE, **overrides)


def test_completed_action_update_renders() -> None:
    """A completed-action update says so and prints no revised date."""
    letter = make_letter(LetterKind.ACTION_UPDATE, status=ActionStatus.COMPLETED,
                         revised_due=None, note=None)
    text = render_letter(letter).text
    assert "This action has now been completed." in text
    assert "We now expect" not in text


def test_acknowledgement_dates_must_be_in_order() -> None:
    """An acknowledgement whose response is due before the letter date is refused."""
    with pytest.raises(ValidationError, match="response_due"):
        make_letter(LetterKind.STAGE1_ACKNOWLEDGEMENT, response_due=dt.date(2026, 3, 1))


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_every_kind_has_a_model_and_templates(kind: LetterKind) -> None:
    """Each kind maps to its own model and has default text and HTML templates."""
    model = LETTER_TYPES[kind]
    assert issubclass(model, LetterBase)
    assert model.model_fields["kind"].default == kind
    env = get_environment("default")
    assert env.get_template(f"{kind.value}.txt.j2").filename is not None
    assert env.get_template(f"{kind.value}.html.j2").filename is not None


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_letter_round_trips_through_the_union(kind: LetterKind) -> None:
    """Every letter survives a JSON round trip through the discriminated union."""
    letter = make_letter(kind)
    again = LETTER_ADAPTER.validate_json(letter.model_dump_json())
    assert type(again) is type(letter)
    assert again == letter
    assert again.kind == kind


@pytest.mark.parametrize("template_set", ["default", "connexus"])
def test_not_upheld_with_a_remedy_says_what_went_wrong(template_set: str) -> None:
    """A not-upheld response that remedies our own handling never says we did nothing wrong."""
    apology = Remedy(kind=RemedyKind.APOLOGY, description="We apologise for the late reply")
    letter = make_letter(LetterKind.STAGE1_RESPONSE, decision=Decision.NOT_UPHELD,
                         remedies=(apology,))
    rendered = render_letter(letter, template_set)
    for body in (rendered.text, _html_text(rendered.html)):
        assert "did not handle it as well as we should have" in body
        assert "not found that we did anything wrong" not in body
    bare = render_letter(make_letter(LetterKind.STAGE1_RESPONSE, decision=Decision.NOT_UPHELD,
                                     remedies=()), template_set)
    assert "not found that we did anything wrong" in bare.text


# --- the render-time check ---------------------------------------------------------------


def test_visible_text_leaves_out_what_a_reader_cannot_see() -> None:
    """The head, styles, scripts and hidden elements are not visible; entities are decoded."""
    document = (
        "<html><head><title>Title only</title><style>p { color: red }</style></head><body>"
        "<p>Seen &amp; read</p><p hidden>Hidden one</p><div aria-hidden=\"true\">Two</div>"
        "<p style=\"display: none\">Three</p><script>var x = 'Four';</script>"
        "<p>Bo<strong>ld</strong> words</p><ul><li>One</li><li>Two items</li></ul>"
        "<p>Line<br>break</p></body></html>")
    shown = visible_text(document)
    assert shown == "Seen & read Bold words One Two items Line break"
    for hidden in ("Title only", "color", "Hidden one", "Three", "Four"):
        assert hidden not in shown


def test_a_letter_missing_an_element_is_refused_with_labels_only() -> None:
    """A rendering that leaves out required elements names their labels, never the values."""
    letter = make_letter(LetterKind.STAGE1_RESPONSE, escalation_deadline=None)
    rendered = render_letter(letter, "connexus")
    window = letter.required_elements()["6.9(g) escalation window"]
    broken = RenderedLetter(subject=rendered.subject,
                            text=rendered.text.replace(window, "soon"),
                            html=rendered.html.replace(RESIDENT.name, ""))
    with pytest.raises(LetterIncomplete) as caught:
        check_complete(letter, broken, "connexus")
    assert caught.value.missing == {"6.9(g) escalation window": ("text",),
                                    "recipient 1 name": ("html",)}
    message = str(caught.value)
    assert message == ("stage1_response letter from template set 'connexus' lacks 2 required "
                       "element(s), by label: from text only: 6.9(g) escalation window; "
                       "from HTML only: recipient 1 name")
    for value in (window, RESIDENT.name, "calendar month"):
        assert value not in message


def test_whitespace_and_line_breaks_never_count_as_missing() -> None:
    """A value whose line breaks or spacing the templates change still counts as present."""
    letter = make_letter(LetterKind.EXCLUSION,
                         explanation="The damp was repaired.\n\n\n   We checked   it twice.")
    rendered = render_letter(letter)
    assert "\n\n\n" not in rendered.text  # tidied by the renderer
    check_complete(letter, rendered)


def _override_set(tmp_path: Path, name: str, files: dict[str, str]) -> Path:
    """A templates folder holding the shipped default set and an override set ``name``."""
    root = tmp_path / "templates"
    (root / name).mkdir(parents=True)
    (root / "default").symlink_to(letters_module.TEMPLATES_DIR / "default")
    for filename, content in files.items():
        (root / name / filename).write_text(content, encoding="utf-8")
    return root


BROKEN_RESPONSE_TEXT = """{% extends "_layout.txt.j2" %}
{% block body %}
{% include "_response.txt.j2" %}
Please get in touch if you are unhappy.
{% include "_ombudsman.txt.j2" %}
{% endblock %}
"""


def test_a_broken_override_set_is_caught(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """An override that drops the escalation route (6.9(g)) or hides its footer fails."""
    root = _override_set(tmp_path, "brokenset", {
        "stage1_response.txt.j2": BROKEN_RESPONSE_TEXT,
        "_footer.html.j2": "<p hidden>{{ letter.signed_by }}</p><p>Yours, us.</p>"})
    monkeypatch.setattr(letters_module, "TEMPLATES_DIR", root)
    assert resolve_template_set("brokenset") == "brokenset"
    letter = make_letter(LetterKind.STAGE1_RESPONSE)
    rendered = render_letter(letter, "brokenset")
    with pytest.raises(LetterIncomplete) as caught:
        check_complete(letter, rendered, "brokenset")
    assert caught.value.missing == {
        "6.9(g) escalation window": ("text",), "6.9(g) no reasons needed": ("text",),
        "footer signed by": ("html",), "footer other formats": ("html",),
        "footer landlord contact": ("html",)}
    # The shipped sets are untouched by the override folder's existence.
    monkeypatch.undo()
    check_complete(letter, render_letter(letter, "connexus"), "connexus")


def test_template_sets_resolve_to_a_folder_or_the_default() -> None:
    """A set with a folder is used; any other name (or an unsafe one) means the default."""
    assert resolve_template_set("connexus") == "connexus"
    assert resolve_template_set("code-2024") == "default"
    assert resolve_template_set("../connexus") == "default"


# --- the Ombudsman's email, in the tense of the letter's date ------------------------------


@pytest.mark.parametrize(("on", "expected"), [
    (dt.date(2026, 1, 12), "from Tuesday 13 January 2026 the Ombudsman will no longer accept "
                           "new case enquiries by email"),
    (dt.date(2026, 1, 13), "The Ombudsman stopped accepting new case enquiries by email on "
                           "Tuesday 13 January 2026, so please use the online form, phone or "
                           "post"),
    (dt.date(2027, 6, 1), "The Ombudsman stopped accepting new case enquiries by email on "
                          "Tuesday 13 January 2026, so please use the online form, phone or "
                          "post"),
])
def test_ombudsman_email_note_follows_the_letter_date(on: dt.date, expected: str) -> None:
    """Before the cut-off the change is to come; on and after it, it has happened."""
    assert ombudsman_email_note(OmbudsmanDetails(), on) == expected


def test_no_email_note_without_an_email_or_a_cut_off() -> None:
    """Details with no email, or an email with no cut-off, carry no note."""
    assert ombudsman_email_note(OmbudsmanDetails(email=None), dt.date(2026, 3, 2)) is None
    assert ombudsman_email_note(OmbudsmanDetails(email_new_cases_until=None),
                                dt.date(2026, 3, 2)) is None


# --- financial remedies: how much, by when, how --------------------------------------------


@pytest.mark.parametrize("kind", [LetterKind.STAGE1_RESPONSE, LetterKind.FINAL_RESPONSE])
@pytest.mark.parametrize("template_set", ["default", "connexus"])
def test_financial_remedy_says_amount_date_and_how(kind: LetterKind, template_set: str) -> None:
    """A financial remedy gives the amount, the date it is paid by and how it is paid."""
    letter = make_letter(kind)
    rendered = render_letter(letter, template_set)
    expected = ("Compensation for the delay and inconvenience. Amount: £1,250.00. We will pay "
                f"it by Monday 16 March 2026. {REMEDY_PAYMENT}")
    for body in (_squash(rendered.text), _html_text(rendered.html)):
        assert expected in body
        assert body.count(REMEDY_PAYMENT) == 1  # the apology is not paid
    elements = letter.required_elements()
    provision = "6.9" if kind is LetterKind.STAGE1_RESPONSE else "6.19"
    assert elements[f"{provision}(e) remedy 2 payment"] == REMEDY_PAYMENT
    assert f"{provision}(e) remedy 1 payment" not in elements


def test_non_financial_remedy_is_not_paid() -> None:
    """A dated remedy that is not money says when it is done, with no payment wording."""
    repair = Remedy(kind=RemedyKind.ACTION, description="Replace the felt.",
                    due_by=dt.date(2026, 3, 20))
    text = _squash(render_letter(make_letter(LetterKind.FINAL_RESPONSE,
                                             remedies=(repair,))).text)
    assert "Replace the felt. We will do this by Friday 20 March 2026." in text
    assert "bank transfer" not in text and "We will pay" not in text


def test_financial_remedy_without_a_date_still_says_how() -> None:
    """A financial remedy of an older case (no date) says how it is paid, and no date."""
    money = Remedy(kind=RemedyKind.FINANCIAL, description="Compensation.",
                   amount=Decimal("75"))
    letter = make_letter(LetterKind.FINAL_RESPONSE, remedies=(money,))
    text = _squash(render_letter(letter).text)
    assert f"Compensation. Amount: £75.00. {REMEDY_PAYMENT}" in text
    assert "We will pay it by" not in text
    assert "6.19(e) remedy 1 by" not in letter.required_elements()


def test_landlord_payment_wording_replaces_the_default() -> None:
    """A letter given the landlord's own payment wording prints it instead of the default."""
    wording = "We will credit your rent account within 10 working days."
    letter = make_letter(LetterKind.FINAL_RESPONSE, remedy_payment=wording)
    text = render_letter(letter).text
    assert wording in text and REMEDY_PAYMENT not in text
    check_complete(letter, render_letter(letter))


def test_not_upheld_response_lists_the_remedies_it_offers() -> None:
    """A not-upheld response with a remedy lists it (it used to print only the heading)."""
    apology = Remedy(kind=RemedyKind.APOLOGY, description="We apologise for the late reply")
    letter = make_letter(LetterKind.STAGE1_RESPONSE, decision=Decision.NOT_UPHELD,
                         remedies=(apology,))
    rendered = render_letter(letter)
    for body in (rendered.text, _html_text(rendered.html)):
        assert "Apology: We apologise for the late reply" in body
    check_complete(letter, rendered)


# --- the escalation window's last day ------------------------------------------------------


@pytest.mark.parametrize("template_set", ["default", "connexus"])
def test_escalation_deadline_is_printed_when_the_window_runs_from_the_letter(
        template_set: str) -> None:
    """A window that runs from the response gives its last day as a date (6.9(g))."""
    letter = make_letter(LetterKind.STAGE1_RESPONSE, outstanding_actions=(),
                         escalation_deadline=dt.date(2026, 4, 2))
    rendered = render_letter(letter, template_set)
    sentence = ("Please ask within 1 calendar month of the date of this letter, by Thursday "
                "2 April 2026 at the latest.")
    assert sentence in rendered.text
    assert sentence in _html_text(rendered.html)
    assert letter.required_elements()["6.9(g) escalation deadline"] == "Thursday 2 April 2026"


def test_escalation_window_without_a_date_keeps_its_words() -> None:
    """With no date known the window is described in words only, and no date is required."""
    letter = make_letter(LetterKind.STAGE1_RESPONSE, outstanding_actions=())
    text = render_letter(letter).text
    assert "Please ask within 1 calendar month of the date of this letter." in text
    assert "at the latest" not in text
    assert "6.9(g) escalation deadline" not in letter.required_elements()


@pytest.mark.parametrize(("overrides", "message"), [
    ({}, "completion of actions"),  # the sample window runs from actions, and has one
    ({"outstanding_actions": (), "escalation_deadline": dt.date(2026, 3, 1)}, "letter_date"),
])
def test_escalation_deadline_must_be_consistent(overrides: dict[str, Any],
                                                message: str) -> None:
    """No date for a window still waiting on actions, nor one before the letter."""
    fields = {"escalation_deadline": dt.date(2026, 4, 2), **overrides}
    with pytest.raises(ValidationError, match=message):
        make_letter(LetterKind.STAGE1_RESPONSE, **fields)


# --- a late acknowledgement says sorry -----------------------------------------------------


@pytest.mark.parametrize("kind", [LetterKind.STAGE1_ACKNOWLEDGEMENT,
                                  LetterKind.STAGE2_ACKNOWLEDGEMENT])
@pytest.mark.parametrize("template_set", ["default", "connexus"])
def test_late_acknowledgement_apologises(kind: LetterKind, template_set: str) -> None:
    """An acknowledgement sent after its due date says sorry and by how much it is late."""
    letter = make_letter(kind, late_by_working_days=3)
    rendered = render_letter(letter, template_set)
    sentence = f"{LATE_APOLOGY} We should have sent it 3 working days earlier."
    assert rendered.text.count(LATE_APOLOGY) == 1
    assert sentence in rendered.text and sentence in _html_text(rendered.html)
    provision = "6.2" if kind is LetterKind.STAGE1_ACKNOWLEDGEMENT else "6.11"
    assert letter.required_elements()[f"{provision} late apology"] == LATE_APOLOGY
    assert letter.required_elements()[f"{provision} late by"] == "3 working days"


@pytest.mark.parametrize("kind", [LetterKind.STAGE1_ACKNOWLEDGEMENT,
                                  LetterKind.STAGE2_ACKNOWLEDGEMENT])
def test_acknowledgement_on_time_makes_no_apology(kind: LetterKind) -> None:
    """An acknowledgement sent on time has no apology and requires none."""
    letter = make_letter(kind)
    rendered = render_letter(letter)
    assert "sorry" not in rendered.text.lower()
    assert not any("late" in label for label in letter.required_elements())


def test_one_working_day_late_is_singular() -> None:
    """One working day late reads "1 working day", not "1 working days"."""
    text = render_letter(make_letter(LetterKind.STAGE1_ACKNOWLEDGEMENT,
                                     late_by_working_days=1)).text
    assert "We should have sent it 1 working day earlier." in text


# --- large print -------------------------------------------------------------------------


def test_large_print_letters_use_the_large_print_layout() -> None:
    """A large-print letter's HTML root has the large-print class, set at 16pt or more."""
    large = render_letter(make_letter(LetterKind.EXTENSION, large_print=True)).html
    normal = render_letter(make_letter(LetterKind.EXTENSION)).html
    assert '<html lang="en-GB" class="large-print">' in large
    assert '<html lang="en-GB">' in normal
    assert "html.large-print { font-size: 16pt; }" in normal  # the rule is always there
    assert visible_text(large) == visible_text(normal)


def test_squash_collapses_exactly_what_a_regex_collapses() -> None:
    """str.split() and the regex for whitespace agree on every code point: squash is unchanged."""
    everything = "".join(map(chr, range(sys.maxunicode + 1)))
    regex_space = re.findall(r"\s", everything)
    assert regex_space == [c for c in everything if c.isspace()]
    assert len(regex_space) > 20  # the Unicode spaces, not just ASCII ones
    sample = "".join(f"{c}a{c}{c}b" for c in regex_space) + "\u200b c \n"
    assert squash(sample) == re.sub(r"\s+", " ", sample).strip()
