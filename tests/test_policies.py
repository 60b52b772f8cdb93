"""Policies as data, checked against the Complaint Handling Code."""

from __future__ import annotations

import datetime as dt

import pytest

from complaints.policies import (
    PolicyError,
    PolicyRejected,
    check_against_code,
    load_compliant_policy,
    load_policy,
    shipped_policy_names,
)
from models.policy import Nation, Policy


def provisions(policy: Policy) -> set[str]:
    """The Code provisions a policy breaks."""
    return {b.provision for b in check_against_code(policy)}


def with_limits(policy: Policy, **limits: int) -> Policy:
    """A copy of ``policy`` with some time limits changed."""
    return policy.model_copy(update={"limits": policy.limits.model_copy(update=limits)})


def test_shipped_policies_are_addressable_by_name() -> None:
    """The three shipped policies load by name."""
    assert shipped_policy_names() == ["code-2024", "connect-2017", "connexus"]


def test_code_policy_has_the_code_limits() -> None:
    """The code-2024 policy carries exactly the Code's limits and complies."""
    policy = load_compliant_policy("code-2024")
    limits = policy.limits
    assert (limits.stage1_acknowledgement, limits.stage1_response, limits.stage1_extension_cap,
            limits.stage2_acknowledgement, limits.stage2_response,
            limits.stage2_extension_cap) == (5, 10, 10, 5, 20, 20)
    assert policy.stages == 2 and policy.exclusion_window_months == 12


def test_connexus_policy_matches_the_seeds_and_complies() -> None:
    """Connexus: contact in 3, acknowledge in 5, a calendar month after actions complete."""
    policy = load_compliant_policy("connexus")
    assert policy.limits.early_contact == 3
    assert policy.escalation_window.unit == "calendar_months"
    assert policy.escalation_window.runs_from == "actions_completed"
    assert policy.nation is Nation.ENGLAND_AND_WALES


def test_connect_2017_is_refused_with_its_reasons() -> None:
    """Connect's 2017 policy is refused for its informal stage, third stage and writing rule."""
    with pytest.raises(PolicyRejected) as refused:
        load_compliant_policy("connect-2017")
    assert {b.provision for b in refused.value.breaches} == {"5.2", "5.3", "1.2"}
    assert "informal" in str(refused.value)
    # Its 2-day acknowledgement is stricter than the Code, so it is not among the reasons.
    assert refused.value.policy.limits.stage1_acknowledgement == 2


@pytest.mark.parametrize(
    ("field", "value", "provision"),
    [
        ("stage1_acknowledgement", 6, "6.2"),
        ("stage1_response", 11, "6.3"),
        ("stage1_extension_cap", 11, "6.4"),
        ("stage2_acknowledgement", 6, "6.11"),
        ("stage2_response", 21, "6.14"),
        ("stage2_extension_cap", 21, "6.15"),
    ],
)
def test_each_looser_limit_names_its_provision(field: str, value: int, provision: str) -> None:
    """A limit one working day looser than the Code breaks exactly that provision."""
    base = load_policy("code-2024")
    assert provisions(with_limits(base, **{field: value})) == {provision}
    assert provisions(with_limits(base, **{field: value - 1})) == set()


def test_stricter_limits_are_fine() -> None:
    """Halving every limit is stricter than the Code and accepted."""
    base = load_policy("code-2024")
    strict = with_limits(base, stage1_acknowledgement=2, stage1_response=5,
                         stage1_extension_cap=5, stage2_acknowledgement=2, stage2_response=10,
                         stage2_extension_cap=10)
    assert check_against_code(strict) == []


def test_stage_counts_other_than_two_are_refused() -> None:
    """Three stages break 5.3; one stage breaks 6.10 (stage 2 must exist)."""
    base = load_policy("code-2024")
    assert provisions(base.model_copy(update={"stages": 3})) == {"5.3"}
    assert provisions(base.model_copy(update={"stages": 1})) == {"6.10"}


def test_short_exclusion_window_breaks_2_3() -> None:
    """Excluding complaints older than 3 months (Connexus 2021 wording) breaks 2.3."""
    base = load_policy("code-2024")
    assert provisions(base.model_copy(update={"exclusion_window_months": 3})) == {"2.3"}


def test_missing_ombudsman_phone_breaks_6_5() -> None:
    """Without the Ombudsman's phone number, extension letters would break 6.5."""
    base = load_policy("code-2024")
    ombudsman = base.ombudsman.model_copy(update={"phone": ""})
    assert provisions(base.model_copy(update={"ombudsman": ombudsman})) == {"6.5"}


def test_unknown_policy_name_says_what_exists() -> None:
    """An unknown name is a one-line error listing the shipped policies."""
    with pytest.raises(PolicyError, match="code-2024, connect-2017, connexus"):
        load_policy("nonesuch")


def test_malformed_policy_file_names_the_field(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A policy file with a wrong type is refused naming the field."""
    path = tmp_path / "bad.toml"
    path.write_text('name = "bad"\nlandlord = "X"\nnation = "wales"\n'
                    '[limits]\nstage1_acknowledgement = "five"\n', encoding="utf-8")
    with pytest.raises(PolicyError) as error:
        load_policy(path)
    assert "nation" in str(error.value) and "stage1_acknowledgement" in str(error.value)
    assert "\n" not in str(error.value)


def test_policy_file_with_closure_days_loads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A landlord's own policy file with closure days and one-off holidays loads by path."""
    text = (load_policy("code-2024").model_dump_json())
    assert "code-2024" in text
    path = tmp_path / "mine.toml"
    path.write_text(
        'name = "mine"\nlandlord = "Mine HA"\nnation = "scotland"\n'
        "closure_days = [2026-12-24]\none_off_bank_holidays = [2026-06-15]\n"
        "[limits]\nstage1_acknowledgement = 3\nstage1_response = 10\n"
        "stage1_extension_cap = 10\nstage2_acknowledgement = 5\nstage2_response = 20\n"
        "stage2_extension_cap = 20\n"
        '[escalation_window]\nlength = 20\nunit = "working_days"\n', encoding="utf-8")
    policy = load_compliant_policy(path)
    assert policy.nation is Nation.SCOTLAND
    assert policy.closure_days == (dt.date(2026, 12, 24),)
    # Closure days never lengthen a Code timescale: only the one-off bank holiday counts.
    assert [d.isoformat() for d in policy.non_working_days()] == ["2026-06-15"]
