"""The permission matrix: the defaults cell by cell, scopes, and a landlord's own file."""

from __future__ import annotations

from pathlib import Path

import pytest

from domain.permissions import CaseRelation, MatrixError, load_matrix, parse_matrix
from models.actions import ACTION_BY_TRIGGER

MATRIX = load_matrix()
MINE = CaseRelation(handler_id="hdl-1", handler_team="North", own=True, same_team=True)
TEAMS = CaseRelation(handler_id="hdl-3", handler_team="North", own=False, same_team=True)
OTHER = CaseRelation(handler_id="hdl-2", handler_team="South", own=False, same_team=False)
NOBODY = CaseRelation(handler_id=None, handler_team=None, own=False, same_team=False)

#: The cells the issue names, and the ones a complaints team relies on.
CELLS = [
    ("handler", "acknowledge", True), ("handler", "respond", True),
    ("handler", "extend", True), ("handler", "decline", False), ("handler", "void", False),
    ("handler", "reassign", False), ("handler", "refuse_escalation", False),
    ("handler", "lodge", True), ("handler", "admin_staff", False),
    ("reviewer", "acknowledge_escalation", True), ("reviewer", "decline", False),
    ("manager", "decline", True), ("manager", "void", True), ("manager", "reassign", True),
    ("manager", "assign", True), ("manager", "refuse_escalation", False),
    ("lead", "refuse_escalation", True), ("lead", "decline", True),
    ("viewer", "read_cases", True), ("viewer", "read_reports", True),
    ("integration", "lodge", True), ("integration", "record_contact", True),
    ("integration", "respond", False), ("integration", "read_reports", False),
    ("admin", "admin_staff", True), ("admin", "manage_tokens", True),
    ("admin", "read_cases", False), ("admin", "respond", False),
    ("handler", "triage", True), ("reviewer", "triage", True), ("manager", "triage", True),
    ("lead", "triage", True), ("viewer", "triage", False), ("integration", "triage", False),
    *[(role, name, True) for role in ("handler", "reviewer", "manager", "lead")
      for name in ("log_service_requests", "convert_service_requests")],
    ("integration", "log_service_requests", True),
    ("integration", "convert_service_requests", False),
    ("viewer", "log_service_requests", False), ("admin", "convert_service_requests", False),
]


@pytest.mark.parametrize(("role", "name", "allowed"), CELLS)
def test_each_cell_of_the_default_matrix(role: str, name: str, allowed: bool) -> None:
    """Each named cell of the defaults allows or refuses as the issue asks."""
    refusal = MATRIX.refusal([role], name)
    assert (refusal is None) is allowed, refusal


@pytest.mark.parametrize("trigger", sorted(ACTION_BY_TRIGGER))
def test_the_read_only_role_never_acts(trigger: str) -> None:
    """A viewer is refused every staff action, with the roles that may take it."""
    refusal = MATRIX.refusal(["viewer"], trigger)
    assert refusal is not None and refusal.startswith("your roles (viewer) may not")


def test_every_action_is_open_to_someone() -> None:
    """No staff action is left with no role allowed to take it."""
    assert [t for t in ACTION_BY_TRIGGER if not MATRIX.who_may(t)] == []


@pytest.mark.parametrize(("case", "allowed"), [(MINE, True), (TEAMS, True), (OTHER, False),
                                              (NOBODY, True)])
def test_handlers_act_on_their_own_and_their_teams_cases(case: CaseRelation,
                                                         allowed: bool) -> None:
    """A handler's scope is their team: another team's case is refused, naming its handler."""
    refusal = MATRIX.refusal(["handler"], "respond", case)
    assert (refusal is None) is allowed
    if not allowed:
        assert refusal is not None and "handled by hdl-2 of team South" in refusal


def test_a_manager_reaches_every_case() -> None:
    """A manager's scope is any case, so another team's case is allowed."""
    assert MATRIX.refusal(["manager"], "reassign", OTHER) is None


def test_a_landlord_file_replaces_only_the_roles_it_names(tmp_path: Path) -> None:
    """A landlord lets handlers decline; other roles keep their defaults."""
    path = tmp_path / "permissions.toml"
    path.write_text('[roles.handler]\nscope = "own"\ncan = ["read_cases", "decline"]\n')
    matrix = load_matrix(path)
    assert matrix.refusal(["handler"], "decline") is None
    assert matrix.refusal(["handler"], "respond") is not None
    assert "your own cases only" in (matrix.refusal(["handler"], "decline", TEAMS) or "")
    assert matrix.refusal(["lead"], "refuse_escalation") is None


@pytest.mark.parametrize(("text", "says"), [
    ('[roles.handler]\ncan = ["fly"]\n', "unknown fly"),
    ('[roles.handler]\nscope = "everywhere"\n', "must be one of own, team, any"),
    ('[roles.handler]\ncan = "respond"\n', "must be a list"),
    ('[roles.handler]\nwho = 1\n', "unknown keys who"),
    ("roles = 3\n", "needs a [roles.NAME] table"),
    ("[roles.handler\n", "not valid TOML"),
])
def test_a_bad_file_is_refused_with_what_to_fix(text: str, says: str) -> None:
    """Each mistake in a permission file is refused with one line saying what is wrong."""
    with pytest.raises(MatrixError, match=says.replace("[", r"\[")):
        parse_matrix(text, "landlord.toml")
