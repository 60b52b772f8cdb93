"""``complaints staff token ...`` and ``complaints permissions ...``, in-process.

The commands run through click's ``CliRunner`` against a database of the test's own; a
token made by the command is checked the way the API checks it (``token_identity``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlmodel import Session

from complaints import directory
from complaints.cli import cli
from complaints.db import make_engine, session_factory, upgrade
from complaints.identity import AccessDenied, check_token, token_identity, touch_token
from domain.permissions import load_matrix
from models.access import ServiceTokenRow

#: Staff of the tests: id, role, team.
STAFF = (("adm-1", "admin", "IT"), ("hdl-1", "handler", "North"),
         ("int-1", "integration", "Systems"))


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Settings of the test's own: a data folder and database URL (not created yet)."""
    data = tmp_path / "data"
    url = f"sqlite:///{(data / 'complaints.db').as_posix()}"
    monkeypatch.setenv("COMPLAINTS_ENV_FILE", str(tmp_path / "absent.env"))
    monkeypatch.setenv("DATA_DIR", str(data))
    monkeypatch.setenv("DATABASE_URL", url)
    for name in ("PERMISSIONS_FILE", "API_URL", "API_TOKEN", "COMPLAINTS_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return url


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    """A session on the test's migrated database, with :data:`STAFF` in the directory."""
    upgrade(db_url)
    engine = make_engine(db_url)
    with session_factory(engine)() as opened:
        for staff_id, role, team in STAFF:
            directory.add_staff(opened, staff_id, display_name=f"Staff {staff_id}",
                                job_title=role.title(), team=team,
                                email=f"{staff_id}@landlord.example", roles=(role,))
        yield opened
    engine.dispose()


def run(*args: str) -> Result:
    """Run ``complaints ARGS`` in-process."""
    return CliRunner().invoke(cli, list(args))


def assert_one_line_error(result: Result, *needles: str) -> str:
    """The command failed with exit 1 and one ``Error:`` line holding ``needles``."""
    assert result.exit_code == 1, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: ") and "Traceback" not in result.output
    for needle in needles:
        assert needle in line, line
    return line


def create(*extra: str, holder: str = "int-1", by: str = "adm-1") -> Result:
    """``complaints staff token create`` for ``holder`` with ``extra`` options."""
    return run("staff", "token", "create", holder, "--label", "Housing system",
               "--by", by, *extra)


def test_create_prints_the_token_once_and_it_works(session: Session) -> None:
    """The token is the only stdout line, stderr says it is not shown again, and it acts."""
    result = create("--scope", "lodge", "--scope", "read_cases", "--expires-days", "30")
    assert result.exit_code == 0, result.output
    [token] = result.stdout.strip().splitlines()
    assert token.startswith("cmpt_")
    assert "will not be shown again" in result.stderr
    who = token_identity(session, token)
    session.rollback()  # End the read: SQLite transactions here hold the write lock.
    assert who.staff_id == "int-1" and who.scopes == {"lodge", "read_cases"}
    listed = run("staff", "token", "list", "--json")
    [row] = json.loads(listed.stdout)
    assert row["expires_at"] is not None and row["created_by"] == "adm-1"


def test_checking_a_token_writes_nothing_and_its_use_is_stamped_coarsely(
        session: Session) -> None:
    """check_token only reads (saying a stamp is due); once stamped, none is due for a while."""
    [token] = create("--scope", "lodge").stdout.strip().splitlines()
    who, due = check_token(session, token)
    session.rollback()
    assert due and who.token_id is not None
    assert session.get(ServiceTokenRow, who.token_id).last_used_at is None  # type: ignore[union-attr]
    session.rollback()
    touch_token(session, who.token_id)
    assert check_token(session, token)[1] is False
    session.rollback()


def test_scope_all_is_everything_the_holders_roles_allow(session: Session) -> None:
    """`--scope all` gives a handler's token exactly what the matrix lets a handler do."""
    result = create("--scope", "all", holder="hdl-1")
    assert result.exit_code == 0, result.output
    who = token_identity(session, result.stdout.strip())
    matrix = load_matrix()
    assert who.scopes is not None
    assert "acknowledge" in who.scopes and "decline" not in who.scopes
    assert all(matrix.allowed(("handler",), name) for name in who.scopes)


def test_list_never_shows_a_secret(session: Session) -> None:
    """`token list` (text and JSON) names id, holder, scopes and use, never the secret."""
    token = create("--scope", "lodge").stdout.strip()
    token_id, _, secret = token.removeprefix("cmpt_").partition(".")
    text, as_json = run("staff", "token", "list"), run("staff", "token", "list", "--json")
    assert text.exit_code == 0 and as_json.exit_code == 0
    assert token_id in text.stdout and "int-1" in text.stdout and "lodge" in text.stdout
    for output in (text.stdout, as_json.stdout):
        assert secret not in output and "sha256" not in output
    [row] = json.loads(as_json.stdout)
    assert set(row) == {"token_id", "staff_id", "scopes", "label", "created_by",
                        "created_at", "expires_at", "revoked_at", "last_used_at"}


def test_revoke_stops_the_token_at_once(session: Session) -> None:
    """A revoked token is refused with 401, and the list shows it revoked."""
    token = create("--scope", "lodge").stdout.strip()
    token_id = token.removeprefix("cmpt_").partition(".")[0]
    result = run("staff", "token", "revoke", token_id)
    assert result.exit_code == 0 and "revoked" in result.stdout
    with pytest.raises(AccessDenied) as refused:
        token_identity(session, token)
    assert refused.value.status == 401 and "revoked" in refused.value.detail
    session.rollback()  # End the read: SQLite transactions here hold the write lock.
    [row] = json.loads(run("staff", "token", "list", "--json").stdout)
    assert row["revoked_at"] is not None
    assert_one_line_error(run("staff", "token", "revoke", "abc123"), "no service token")


@pytest.mark.parametrize(("by", "needle"), [
    ("hdl-1", "may not manage service tokens; that is for: admin"),
    ("ghost-9", "'ghost-9' (--by) is not in the staff directory"),
], ids=["not-an-admin", "unknown"])
def test_only_an_admin_makes_tokens(session: Session, by: str, needle: str) -> None:
    """`--by` must be an active member of staff whose roles allow manage_tokens."""
    assert_one_line_error(create("--scope", "lodge", by=by), needle)
    assert json.loads(run("staff", "token", "list", "--json").stdout) == []


def test_an_inactive_admin_is_refused(session: Session) -> None:
    """An admin made inactive can no longer make tokens."""
    directory.deactivate_staff(session, "adm-1", reason="Left the organisation")
    assert_one_line_error(create("--scope", "lodge"), "adm-1 is inactive")


@pytest.mark.parametrize(("scope", "needle"), [
    ("acknowledge", "do not allow acknowledge: a token cannot do more than its holder"),
    ("bogus", "unknown scope bogus"),
], ids=["beyond-the-holder", "unknown"])
def test_a_scope_must_be_known_and_within_the_holder(session: Session, scope: str,
                                                     needle: str) -> None:
    """A scope beyond the holder's roles, or one nobody knows, is refused in one line."""
    assert_one_line_error(create("--scope", scope), needle)


def test_a_holder_outside_the_directory_is_refused(session: Session) -> None:
    """A token for someone not in the directory is refused, naming the fix."""
    assert_one_line_error(create("--scope", "lodge", holder="nobody"),
                          "'nobody' is not in the staff directory")


# --- complaints permissions --------------------------------------------------------------


def test_permissions_show_is_the_matrix_in_force(db_url: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`permissions show --json` is the defaults, then with PERMISSIONS_FILE's roles."""
    defaults = run("permissions", "show", "--json")
    assert defaults.exit_code == 0
    assert json.loads(defaults.stdout) == {"source": "defaults",
                                           "roles": load_matrix().as_dict()}
    own = tmp_path / "landlord.toml"
    own.write_text('[roles.handler]\nscope = "own"\ncan = ["read_cases", "acknowledge"]\n')
    monkeypatch.setenv("PERMISSIONS_FILE", str(own))
    shown = json.loads(run("permissions", "show", "--json").stdout)
    assert shown["roles"]["handler"] == {"scope": "own", "can": ["acknowledge", "read_cases"]}
    assert shown["roles"]["lead"] == load_matrix().as_dict()["lead"]
    text = run("permissions", "show")
    assert text.exit_code == 0 and str(own) in text.stdout and "handler" in text.stdout


def test_permissions_check_says_valid_or_why_not(db_url: str, tmp_path: Path) -> None:
    """`permissions check` exits 0 on a valid file, 1 with one line naming the fault."""
    good = tmp_path / "good.toml"
    good.write_text('[roles.viewer]\nscope = "any"\ncan = ["read_cases"]\n')
    result = run("permissions", "check", str(good))
    assert result.exit_code == 0 and "valid" in result.stdout and "viewer" in result.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[roles.viewer]\nscope = "mine"\n')
    assert_one_line_error(run("permissions", "check", str(bad)), "scope 'mine'",
                          "own, team, any")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('[roles.viewer]\ncan = ["read_everything"]\n')
    assert_one_line_error(run("permissions", "check", str(unknown)), "read_everything")
    assert_one_line_error(run("permissions", "check", str(tmp_path / "absent.toml")),
                          "cannot read the permission file")


def test_a_bad_permissions_file_stops_token_making(session: Session, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """With a broken PERMISSIONS_FILE no token is made; the error names the file."""
    bad = tmp_path / "bad.toml"
    bad.write_text("not toml [")
    monkeypatch.setenv("PERMISSIONS_FILE", str(bad))
    assert_one_line_error(create("--scope", "lodge"), "not valid TOML")
