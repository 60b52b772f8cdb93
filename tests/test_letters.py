"""Letter content models (models.letters) and their rendering (complaints.letters)."""

from __future__ import annotations

import datetime as dt
import html
import re
from decimal import Decimal
from typing import Any

import pytest
from jinja2 import UndefinedError
from pydantic import TypeAdapter, ValidationError

from complaints.letters import get_environment, render_letter
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
    LETTER_TYPES,
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
    return _squash(html.unescape(re.sub(r"<[^>]+>", " ", document)))


def _squash(value: str) -> str:
    """Collapse runs of whitespace to single spaces."""
    return re.sub(r"\s+", " ", value).strip()


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
    output = getattr(render_letter(letter), fmt)
    assert OMBUDSMAN_EMAIL in output
    assert "no longer accepts new case enquiries by email" not in output
    assert "6.5 ombudsman email" in letter.required_elements()


@pytest.mark.parametrize("letter_date", [dt.date(2026, 1, 13), dt.date(2026, 1, 14)])
@pytest.mark.parametrize("fmt", ["text", "html"])
def test_ombudsman_email_omitted_from_cutoff(fmt: str, letter_date: dt.date) -> None:
    """From 13 January 2026 the email is omitted and residents are told why."""
    letter = make_letter(LetterKind.EXTENSION, letter_date=letter_date,
                         previous_due=dt.date(2026, 1, 15), new_due=dt.date(2026, 1, 29))
    output = getattr(render_letter(letter), fmt)
    assert OMBUDSMAN_EMAIL not in output
    assert "no longer accepts new case enquiries by email" in output
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
    assert CONNEXUS_LINE in (connexus if fmt == "text" else html.unescape(connexus))
    assert "Craven Arms" not in default
    assert "Please contact us if you would like a copy" in default
    assert "Please contact us if you would like a copy" not in connexus


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
