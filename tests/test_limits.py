"""The documented limits and the refusal of invisible characters (``models.limits``).

Every action and intake is checked by one pure function, ``problems``, where input enters
(the CLI, ``Intake.model_validate``, the workflow's validators); the pydantic field types
stay as lenient as before, so that replay still decodes every payload accepted earlier.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import BaseModel, ValidationError

from complaints.cli import cli
from complaints.staff import StaffError, build_action
from models.actions import ACTION_BY_TRIGGER, Acknowledge, Respond
from models.limits import LIMITS, first_problem, limits_table, problems, staff_key
from models.messages import INTAKE_LIMITS, ComplaintInput, Intake

README = Path(__file__).resolve().parents[1] / "README.md"
TODAY = dt.date(2026, 11, 23)
DEFINITION: dict[str, Any] = {
    "summary": "Repairs to a leaking roof were not completed",
    "points": ["The roof leak reported in August was not repaired",
               "Nobody returned the resident's calls"],
    "outcomes_sought": ["Repair the roof"],
    "responsible_for": ["Roof repairs"], "not_responsible_for": ["Contents insurance"],
}
#: One valid payload per action, every optional text filled in (JSON-like, as sent).
SAMPLES: dict[str, dict[str, Any]] = {
    "acknowledge": {"by": "mgr-1", "handler_id": "staff-101", "definition": DEFINITION},
    "decline": {"by": "mgr-1", "grounds": ["legal_proceedings"],
                "explanation": "A claim was filed at court",
                "discretion_considered": "Considered and not applied",
                "instead": "The court will decide the matter"},
    "extend": {"by": "mgr-1", "working_days": 5, "reason": "A survey is booked",
               "good_reason": "The surveyor is ill", "update_interval": "Weekly"},
    "respond": {"by": "staff-101", "decision": "partly_upheld",
                "findings": [{"point": p, "finding": "Found so", "reason": "Records show it"}
                             for p in DEFINITION["points"]],
                "remedies": [{"kind": "financial", "description": "Carpet compensation",
                              "amount": "150.00", "due_by": "2026-12-18"}],
                "outstanding_actions": [{"action_id": "A1", "description": "Replace tiles",
                                         "due_by": "2027-01-15", "owner": "roofer-3"}]},
    "request_escalation": {"by": "mgr-1", "requested_on": "2026-12-01",
                           "reason": "Still leaking", "channel": "email"},
    "refuse_escalation": {"by": "mgr-1", "grounds": ["previously_considered"],
                          "explanation": "Already answered",
                          "discretion_considered": "Considered"},
    "acknowledge_escalation": {"by": "mgr-1", "handler_id": "staff-202",
                               "definition": DEFINITION},
    "add_issue": {"by": "mgr-1", "description": "The gutter is loose", "related": True},
    "record_contact": {"by": "mgr-1", "direction": "inbound", "channel": "phone",
                       "summary": "The resident called", "with_party": "Jo Bloggs"},
    "complete_action": {"by": "mgr-1", "action_id": "A1", "note": "Tiles replaced"},
    "withdraw": {"by": "mgr-1", "note": "Resolved informally", "reason": "Fixed",
                 "confirmed_via": "phone"},
    "refer_ombudsman": {"by": "mgr-1", "ombudsman_reference": "HOS-123"},
    "reopen_on_order": {"by": "mgr-1", "order": "take_on_complaint",
                        "details": "The Ombudsman ordered it"},
    "close": {"by": "mgr-1", "note": "All done"},
    "delay_action": {"by": "mgr-1", "action_id": "A1", "revised_due": "2027-02-15",
                     "reason": "Parts are late"},
    "pay_remedy": {"by": "mgr-1", "stage": 1, "remedy": 1, "paid_on": "2026-12-10",
                   "amount": "150.00", "method": "Bank transfer"},
    "void": {"by": "mgr-1", "reason": "duplicate", "explanation": "Lodged twice",
             "duplicate_of": "CMP-2026-000001"},
    "reassign": {"by": "mgr-1", "role": "handler", "to": "staff-303", "reason": "Leave"},
    "assign": {"by": "mgr-1", "to": "staff-303", "note": "Workload"},
    "ombudsman_contact": {"by": "mgr-1", "kind": "instruction", "details": "Respond now",
                          "ombudsman_reference": "HOS-1", "respond_by": "2026-12-10"},
    "ombudsman_determination": {"by": "mgr-1", "finding": "maladministration",
                                "details": "Delays", "ombudsman_reference": "HOS-1",
                                "orders": [{"order_id": "O1", "description": "Pay £200",
                                            "due_by": "2027-01-10"}]},
    "comply_order": {"by": "mgr-1", "order_id": "O1", "evidence": "Paid on 2 January"},
    "amend_intake": {"by": "mgr-1", "reason": "Sister now acts for her",
                     "parties": [{"role": "resident", "name": "Jo Bloggs",
                                  "address": ["2 Test Row"]},
                                 {"role": "representative", "name": "Ann Bloggs",
                                  "email": "ann@example.invalid"}],
                     "representative_authority": "Signed form, 3 December",
                     "adjustments": [{"description": "Large print letters"}],
                     "adjustments_review_on": "2027-03-01"},
}


def validated(trigger: str, payload: dict[str, Any]) -> BaseModel:
    """The action model of ``trigger`` validated from ``payload`` (the field types only)."""
    return ACTION_BY_TRIGGER[trigger].model_validate(payload)


def string_paths(value: Any, path: str = "") -> list[str]:
    """The dotted path of every string inside JSON-like ``value``."""
    if isinstance(value, str):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in string_paths(v, f"{path}.{k}" if path
                                                                     else k)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in string_paths(v, f"{path}.{i}")]
    return []


def with_text(data: Any, path: str, change: Any) -> Any:
    """A deep copy of ``data`` with the string at ``path`` replaced by ``change(old)``."""
    data = copy.deepcopy(data)
    *parents, last = path.split(".")
    holder = data
    for part in parents:
        holder = holder[int(part)] if isinstance(holder, list) else holder[part]
    key: Any = int(last) if isinstance(holder, list) else last
    holder[key] = change(holder[key])
    return data


def test_samples_cover_every_action_and_keep_every_limit() -> None:
    """Each sample is a valid action with no problems, so each refusal below is the change."""
    assert set(SAMPLES) == set(ACTION_BY_TRIGGER)
    for trigger, payload in SAMPLES.items():
        assert problems(validated(trigger, payload)) == [], trigger


@pytest.mark.parametrize("char", ["\u200b", "\u2060", "\ufeff", "\u061c", "\u200e",
                                  "\u202e", "\u2067", "\x85"],
                         ids=["ZWSP", "word-joiner", "BOM", "ALM", "LRM", "RLO", "RLI", "NEL"])
def test_invisible_characters_are_refused_in_every_text_of_every_action(char: str) -> None:
    """Any text field of any action holding ``char`` is refused, naming that field."""
    checked = 0
    for trigger, payload in SAMPLES.items():
        for path in string_paths(payload):
            changed = with_text(payload, path, lambda old: old[:1] + char + old[1:])
            try:
                action = validated(trigger, changed)
            except ValidationError:
                continue  # an enum, date or amount: not text
            found = problems(action)
            assert any(p.startswith(f"{path}: contains the ")
                       and f"U+{ord(char):04X}" in p for p in found), (trigger, path, found)
            checked += 1
    assert checked >= 40  # every by, handler_id, text and label of the fourteen samples


def test_staff_ids_refuse_every_invisible_or_spacing_trick() -> None:
    """``mgr-1`` plus a joiner, a soft hyphen, a no-break space or a tag is never accepted."""
    for trick in ("mgr-1\u200d", "mg\u200dr-1", "mgr\u00ad-1", "mgr-1\U000e0041",
                  "mgr-1\u200c"):
        action = validated("close", {"by": trick})
        assert (first_problem(action) or "").startswith("by: contains the invisible"), trick
    spaced = validated("close", {"by": "mgr\u00a01"})
    assert (first_problem(spaced) or "").startswith(
        "by: contains the special space or separator U+00A0")


def test_problems_name_the_field_by_path_without_quoting_the_text() -> None:
    """Over-long texts and lists are reported as one line each, with the path and numbers."""
    secret = "Mrs Example at 3 Demo Street."
    definition = {**DEFINITION, "points": [*DEFINITION["points"], "p", secret * 426]}
    action = validated("acknowledge", {**SAMPLES["acknowledge"], "definition": definition})
    assert len(secret) * 426 == 12_354
    assert problems(action) == ["definition.points.3: 12,354 characters, at most 4,000"]
    findings = [{"point": f"p{i}", "finding": "f", "reason": "r"} for i in range(61)]
    respond = validated("respond", {**SAMPLES["respond"], "findings": findings})
    assert problems(respond) == ["findings: 61 items, at most 60"]
    assert all("Mrs Example" not in p for p in problems(action))


def test_the_two_megabyte_acknowledgement_is_refused() -> None:
    """The acknowledgement that took a case's state over 2 MiB is refused, and why."""
    points = [f"{i} " + "x" * 19_990 for i in range(105)]
    action = validated("acknowledge", {**SAMPLES["acknowledge"], "definition": {
        **DEFINITION, "points": points}})
    assert len(action.model_dump_json()) > 2_000_000  # the field types let it through
    found = problems(action)
    assert found[0] == "definition.points: 105 items, at most 40"
    assert "definition.points.0: 19,992 characters, at most 4,000" in found
    assert re.fullmatch(r"the whole message is [\d,]+ bytes as JSON, at most 65,536: .*",
                        found[-1])


def test_an_action_within_every_field_limit_can_still_be_too_large() -> None:
    """The byte cap bounds an action whatever the field limits add up to (64 KB, 128 KB)."""
    points = ["y" * 4_000] * 17
    ack = validated("acknowledge", {**SAMPLES["acknowledge"],
                                    "definition": {**DEFINITION, "points": points}})
    assert [p.split(" is ")[0] for p in problems(ack)] == ["the whole message"]
    findings = [{"point": p, "finding": "f" * 3_000, "reason": "r"} for p in points]
    respond = validated("respond", {**SAMPLES["respond"], "findings": findings})
    assert problems(respond) == []  # a response has room to repeat the points it answers
    assert LIMITS["respond_bytes"].value == 2 * LIMITS["action_bytes"].value


def test_joiners_are_accepted_where_a_language_or_an_emoji_needs_them() -> None:
    """ZWNJ in Persian and ZWJ in an emoji family are free text; between ASCII they are not."""
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645 the roof fixed"
    family = "Our family \U0001f468\u200d\U0001f469\u200d\U0001f467 cannot sleep"
    for text in (persian, family):
        assert problems(validated("add_issue", {**SAMPLES["add_issue"],
                                                "description": text})) == []
    sneaky = validated("add_issue", {**SAMPLES["add_issue"], "description": "roo\u200df"})
    assert problems(sneaky) == ["description: contains the invisible character U+200D; type "
                                "it again rather than pasting it"]
    name = validated("record_contact", {**SAMPLES["record_contact"],
                                        "with_party": "\u0645\u06cc\u200c\u0631\u0627"})
    assert problems(name) == []


def test_look_alike_staff_ids_are_one_person() -> None:
    """Invisible characters, case, full-width letters and decomposed accents give one key."""
    same = ["mgr-1", "mgr-1\u200b", "MGR-1", "\uff4d\uff47\uff52-1", " mgr-1 ", "\u202emgr-1"]
    assert {staff_key(s) for s in same} == {"mgr-1"}
    assert staff_key("Ren\u0065\u0301") == staff_key("Ren\u00e9")
    assert staff_key("mgr-2") != staff_key("mgr-1")


def test_staff_ids_must_be_normalised_and_the_cli_normalises_them() -> None:
    """A decomposed staff id is refused by problems(); the CLI puts it in NFKC first."""
    decomposed = "Rene\u0301"
    refused = validated("close", {"by": decomposed})
    assert (first_problem(refused) or "").startswith("by: is not in Unicode normal form")
    action = build_action("close", {"by": decomposed})
    assert action.by == unicodedata.normalize("NFC", decomposed) == "Ren\u00e9"


def test_build_action_refuses_with_one_line_naming_the_field() -> None:
    """The CLI's action builder refuses an invisible character before anything is sent."""
    with pytest.raises(StaffError) as caught:
        build_action("acknowledge", {**SAMPLES["acknowledge"], "by": "mgr-1\u200b"})
    assert caught.value.message == ("invalid acknowledge: by: contains the invisible "
                                    "character U+200B; type it again rather than pasting it")


def test_acknowledge_command_refuses_a_right_to_left_override(tmp_path: Path) -> None:
    """``complaints acknowledge`` exits 1 with one line when a point holds U+202E."""
    result = CliRunner().invoke(cli, [
        "acknowledge", "CMP-2026-000001", "--by", "mgr-1", "--summary", "Mould",
        "--point", "Mould \u202eni", "--outcome", "Treat it"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: invalid acknowledge: definition.points.0: contains the bidirectional "
        "control character U+202E; type it again rather than pasting it"]


def intake_data(**overrides: Any) -> dict[str, Any]:
    """A valid intake as JSON-like data."""
    data: dict[str, Any] = {
        "reference": "CMP-2026-000321", "policy_name": "connexus", "channel": "email",
        "received_on": "2026-11-20", "parties": [{"name": "Jo Bloggs"}],
        "description": "The roof has leaked into the bedroom since August.",
        "manager_id": "mgr-1",
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize(("field", "value"), [
    ("manager_id", "mgr-1\u200b"), ("lead_id", "\u2060lead"), ("description", "leak\u200bhere"),
    ("category", "repairs\u200d"), ("parties", [{"name": "Jo\u180eBloggs"}]),
])
def test_lodging_refuses_zero_width_characters(field: str, value: Any) -> None:
    """Intake.model_validate outside Temporal refuses a zero-width character, naming the field."""
    with pytest.raises(ValidationError) as caught:
        Intake.model_validate(intake_data(**{field: value}), context={"today": TODAY})
    assert [e["loc"][0] for e in caught.value.errors()] == [field]
    assert problems(Intake.model_validate(intake_data(**{field: value}),
                                          context={"lodging": False}))


def test_lodging_accepts_a_persian_description() -> None:
    """A resident writing Persian with ZWNJ can lodge a complaint."""
    text = "\u0633\u0642\u0641 \u0646\u0634\u062a \u0645\u06cc\u200c\u06a9\u0646\u062f"
    intake = Intake.model_validate(intake_data(description=text), context={"today": TODAY})
    assert intake.description == text and problems(intake) == []


def test_replay_still_decodes_what_the_limits_refuse() -> None:
    """Payloads problems() refuses still decode with the field types, as replay needs."""
    action = Acknowledge.model_validate({**SAMPLES["acknowledge"], "by": "mgr-1\u200b",
                                         "definition": {**DEFINITION,
                                                        "points": ["z" * 19_000] * 50}})
    assert len(problems(action)) >= 3
    carried = ComplaintInput.model_validate({"intake": intake_data(
        manager_id="mgr\u202e-1", description="d\u200be")})
    assert carried.intake.manager_id == "mgr\u202e-1"
    assert Respond.model_validate({**SAMPLES["respond"], "findings": [
        {"point": "p", "finding": "f", "reason": "r"}] * 61}).by == "staff-101"


def test_intake_limits_agree_with_the_lodging_rules() -> None:
    """LIMITS states the numbers the intake's lodging rules apply, and bounds its bytes."""
    assert LIMITS["Intake.outcomes_sought"].value == INTAKE_LIMITS["outcomes_sought"]
    assert LIMITS["Intake.adjustments"].value == INTAKE_LIMITS["adjustments"]
    assert LIMITS["Party.address"].value == INTAKE_LIMITS["address_lines"]
    assert LIMITS["intake_bytes"].value == INTAKE_LIMITS["json_bytes"]
    big = Intake.model_validate(intake_data(outcomes_sought=["o"] * 21,
                                            parties=[{"name": "J", "address": ["l"] * 11}]),
                                context={"lodging": False})
    assert problems(big) == ["parties.0.address: 11 items, at most 10",
                             "outcomes_sought: 21 items, at most 20"]


def test_every_limit_has_a_reason_and_the_readme_lists_them() -> None:
    """Each limit says why; the README's Limits section is the table made from LIMITS."""
    assert all(len(limit.reason) > 20 and limit.value > 0 for limit in LIMITS.values())
    found = re.search(r"<!-- limits:start -->\n(.*?)<!-- limits:end -->",
                      README.read_text(encoding="utf-8"), re.S)
    assert found is not None, "README lacks the Limits table"
    assert found.group(1) == limits_table()


def test_json_file_action_is_checked_too(tmp_path: Path) -> None:
    """``complaints act REF close --json FILE`` refuses a note over the free-text limit."""
    path = tmp_path / "close.json"
    path.write_text(json.dumps({"by": "mgr-1", "note": "n" * 10_001}), encoding="utf-8")
    result = CliRunner().invoke(cli, ["act", "CMP-2026-000001", "close", "--json", str(path)])
    assert result.exit_code == 1
    assert "note: 10,001 characters, at most 10,000" in result.stderr
