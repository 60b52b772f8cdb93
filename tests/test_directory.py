"""The staff directory: ``complaints staff ...`` and the check of staff ids on actions.

The commands run in-process through click's ``CliRunner`` against a database of the
test's own (``DATA_DIR`` / ``DATABASE_URL``); none of them needs Temporal, and the one
that would send an action to it has ``complaints.staff.act`` stood in for.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import event
from sqlmodel import Session

import complaints.staff
from complaints import directory
from complaints.cli import cli
from complaints.db import make_engine, session_factory, upgrade
from complaints.staff import StaffError, build_action
from models.actions import Action
from models.tables import StaffRow

REFERENCE = "CMP-2026-000201"
DEFINITION = {"summary": "Mould not treated", "points": ["Mould reported in September"],
              "outcomes_sought": ["Treat the mould"]}


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Settings of the test's own: a data folder and database URL (not created yet)."""
    data = tmp_path / "data"
    url = f"sqlite:///{(data / 'complaints.db').as_posix()}"
    monkeypatch.setenv("COMPLAINTS_ENV_FILE", str(tmp_path / "absent.env"))
    monkeypatch.setenv("DATA_DIR", str(data))
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:9")
    monkeypatch.delenv("COMPLAINTS_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    return url


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    """A session on the test's migrated database."""
    upgrade(db_url)
    engine = make_engine(db_url)
    with session_factory(engine)() as opened:
        yield opened
    engine.dispose()


def run(*args: str) -> Result:
    """Run ``complaints ARGS`` in-process."""
    return CliRunner().invoke(cli, list(args))


def ok(result: Result) -> str:
    """The run succeeded; its standard output."""
    assert result.exit_code == 0, result.output
    return result.stdout


def refused(result: Result, *needles: str) -> str:
    """The run failed (exit 1) with one ``Error:`` line holding every needle."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def add(staff_id: str, *roles: str, name: str = "Jo Bloggs", extra: tuple[str, ...] = ()
        ) -> Result:
    """``complaints staff add`` with plausible details and the given roles."""
    role_args = [a for r in (roles or ("handler",)) for a in ("--role", r)]
    return run("staff", "add", staff_id, "--name", name, "--title", "Complaints officer",
               "--team", "Customer resolution", "--email", "jo.bloggs@example.org",
               *role_args, *extra)


def shown(staff_id: str) -> dict[str, Any]:
    """``complaints staff show ID --json``, parsed."""
    loaded: dict[str, Any] = json.loads(ok(run("staff", "show", staff_id, "--json")))
    return loaded


def listed(*flags: str) -> list[str]:
    """The staff ids ``complaints staff list --json`` prints."""
    return [e["staff_id"] for e in json.loads(ok(run("staff", "list", "--json", *flags)))]


def action(trigger: str, **fields: Any) -> Action:
    """A validated staff action, as the CLI builds it."""
    return build_action(trigger, fields)


def acknowledge(by: str, handler: str | None = None) -> Action:
    """A stage 1 acknowledgement by ``by`` naming ``handler`` (default: ``by``)."""
    return action("acknowledge", by=by, handler_id=handler or by, definition=DEFINITION)


def person(session: Session, staff_id: str, *roles: str) -> StaffRow:
    """Add someone to the directory directly."""
    return directory.add_staff(session, staff_id, display_name="Sam Example",
                               job_title="Complaints officer", team="Resolution",
                               email="sam@example.org", roles=roles or ("handler",))


# --- the commands --------------------------------------------------------------------------


def test_add_list_show_round_trip(db_url: str) -> None:
    """A member of staff added is listed and shown with every detail as given."""
    out = ok(add("mgr-1", "manager", "handler", extra=("--phone", "+44 161 555 0100")))
    assert out.strip() == "mgr-1: added (handler, manager)"
    assert listed() == ["mgr-1"]
    data = shown("mgr-1")
    assert data | {"created_at": None, "updated_at": None} == {
        "staff_id": "mgr-1", "display_name": "Jo Bloggs", "job_title": "Complaints officer",
        "team": "Customer resolution", "email": "jo.bloggs@example.org",
        "phone": "+44 161 555 0100", "roles": ["handler", "manager"], "subject": None,
        "active": True, "inactive_since": None, "deactivation_reason": None, "created_at": None,
        "updated_at": None}
    text = ok(run("staff", "show", "MGR-1"))
    assert "name:      Jo Bloggs" in text and "status:    active" in text
    line = ok(run("staff", "list")).splitlines()[0]
    assert line.startswith("mgr-1") and "roles: handler, manager" in line


def test_update_keeps_what_is_not_given(db_url: str) -> None:
    """Update changes the options given, replaces the roles, and removes the phone."""
    ok(add("rev-1", "reviewer", extra=("--phone", "0161 555 0100")))
    ok(run("staff", "update", "REV-1", "--title", "Senior reviewer", "--role", "reviewer",
           "--role", "lead"))
    data = shown("rev-1")
    assert data["job_title"] == "Senior reviewer"
    assert data["display_name"] == "Jo Bloggs" and data["phone"] == "0161 555 0100"
    assert data["roles"] == ["reviewer", "lead"]
    assert data["updated_at"] >= data["created_at"]
    ok(run("staff", "update", "rev-1", "--no-phone"))
    assert shown("rev-1")["phone"] is None
    refused(run("staff", "update", "rev-1"), "nothing to change")
    refused(run("staff", "update", "nobody", "--team", "X"), "no staff id 'nobody'")


def test_deactivate_and_activate_round_trip(db_url: str) -> None:
    """Deactivation hides someone from the default list, with when and why; activate undoes it."""
    ok(add("mgr-1"))
    ok(add("mgr-2"))
    out = ok(run("staff", "deactivate", "mgr-2", "--reason", "Left the organisation"))
    assert out.startswith("mgr-2: inactive since ")
    assert listed() == ["mgr-1"]
    assert listed("--all") == ["mgr-1", "mgr-2"]
    data = shown("mgr-2")
    assert data["active"] is False and data["deactivation_reason"] == "Left the organisation"
    assert data["inactive_since"] is not None and data["inactive_since"] in out
    refused(run("staff", "deactivate", "mgr-2", "--reason", "Again"), "already inactive")
    refused(run("staff", "deactivate", "mgr-1", "--reason", " "), "--reason")
    assert ok(run("staff", "activate", "MGR-2")).strip() == "mgr-2: active"
    data = shown("mgr-2")
    assert data["active"] is True and data["deactivation_reason"] is None
    refused(run("staff", "activate", "mgr-2"), "already active")


def test_duplicate_id_refused(db_url: str) -> None:
    """The same id added twice is refused, naming the person already there."""
    ok(add("mgr-1"))
    refused(add("mgr-1", name="Someone Else"), "'mgr-1' is already in the staff directory")
    assert shown("mgr-1")["display_name"] == "Jo Bloggs"


@pytest.mark.parametrize("variant", ["MGR-1", "mgr-1\u200b", "\u200bMgr-1", "ｍｇｒ-1"],
                         ids=["capitals", "zero-width-after", "zero-width-before", "full-width"])
def test_spellings_of_one_id_are_one_person(db_url: str, variant: str) -> None:
    """Capitals, zero-width characters and full-width forms name the person already there."""
    ok(add("mgr-1"))
    refused(add(variant), "already in the staff directory as 'mgr-1'")
    assert listed("--all") == ["mgr-1"]
    assert shown(variant)["staff_id"] == "mgr-1"


@pytest.mark.parametrize(("staff_id", "code"), [
    ("mgr\u200b1", "U+200B"), ("mgr\u202e1", "U+202E"), ("mgr\u200d1", "U+200D"),
    ("mgr\x071", "U+0007"),
], ids=["zero-width-space", "right-to-left-override", "zero-width-joiner", "control"])
def test_invisible_characters_in_an_id_refused(db_url: str, staff_id: str, code: str) -> None:
    """An id holding an invisible, bidirectional or control character is refused, named."""
    message = refused(add(staff_id), code, "type it again")
    assert staff_id not in message  # The character is written out, never printed raw.
    assert listed("--all") == []


@pytest.mark.parametrize("option", ["--name", "--title", "--team"])
def test_invisible_characters_in_details_refused(db_url: str, option: str) -> None:
    """A name, title or team with a bidirectional override is refused, naming the option."""
    args = {"--name": "Jo Bloggs", "--title": "Officer", "--team": "Resolution"}
    args[option] = "Jo \u202eBloggs"
    refused(run("staff", "add", "mgr-1", *[x for kv in args.items() for x in kv],
                "--email", "jo@example.org", "--role", "handler"), option, "U+202E")
    assert listed("--all") == []


def test_bad_email_phone_and_roles_refused(db_url: str) -> None:
    """A malformed email or phone number, or no role at all, is refused before anything is kept."""
    refused(run("staff", "add", "mgr-1", "--name", "Jo", "--title", "T", "--team", "T",
                "--email", "jo at example", "--role", "handler"), "--email")
    refused(add("mgr-1", extra=("--phone", "call me")), "--phone")
    refused(run("staff", "add", "mgr-1", "--name", "Jo", "--title", "T", "--team", "T",
                "--email", "jo@example.org"), "--role", "at least one role")
    assert listed("--all") == []


# --- the check of actions --------------------------------------------------------------


def test_empty_directory_allows_everything(session: Session) -> None:
    """With nobody in the directory, no action is refused."""
    assert directory.check_staff(session, acknowledge("anyone", "someone")) is None
    assert directory.check_staff(session, action("close", by="anyone")) is None


def test_unknown_id_refused(session: Session) -> None:
    """An id not in a directory that holds someone is refused, with how to add it."""
    person(session, "mgr-1")
    assert directory.check_staff(session, action("close", by="nobody")) == (
        "staff id 'nobody' is not in the staff directory (add it with complaints staff add)")
    refusal = directory.check_staff(session, acknowledge("mgr-1", "nobody"))
    assert refusal is not None and "'nobody' is not in the staff directory" in refusal
    refusal = directory.check_staff(session, action(
        "reassign", by="mgr-1", role="manager", to="ghost", reason="Cover"))
    assert refusal is not None and "'ghost' is not in the staff directory" in refusal


def test_inactive_id_refused(session: Session) -> None:
    """An inactive id is refused with the day it was made inactive, never the reason."""
    person(session, "mgr-1")
    row = directory.deactivate_staff(session, "mgr-1", reason="Long-term sick leave")
    since = directory.inactive_since(row)
    refusal = directory.check_staff(session, action("close", by="MGR-1"))
    assert refusal is not None
    assert refusal.startswith(f"staff id 'MGR-1' is inactive since {since}: ")
    assert "sick" not in refusal


def test_handler_without_the_role_refused(session: Session) -> None:
    """A stage 1 handler needs handler, a stage 2 reviewer reviewer, a new handler either."""
    person(session, "mgr-1", "manager")
    person(session, "off-1", "handler")
    person(session, "rev-1", "reviewer")
    refusal = directory.check_staff(session, acknowledge("mgr-1"))
    assert refusal is not None
    assert "'mgr-1' cannot be the stage 1 handler" in refusal and "handler role" in refusal
    assert directory.check_staff(session, acknowledge("mgr-1", "off-1")) is None
    escalation = action("acknowledge_escalation", by="mgr-1", handler_id="off-1",
                        definition=DEFINITION)
    refusal = directory.check_staff(session, escalation)
    assert refusal is not None and "stage 2 reviewer" in refusal
    refusal = directory.check_staff(session, action(
        "reassign", by="mgr-1", role="handler", to="mgr-1", reason="Cover"))
    assert refusal is not None and "handler or reviewer role" in refusal
    assert directory.check_staff(session, action(
        "reassign", by="mgr-1", role="handler", to="rev-1", reason="Cover")) is None


def test_valid_ids_pass(session: Session) -> None:
    """Active staff with the roles needed pass, whatever the capitals of their ids."""
    person(session, "mgr-1", "manager", "handler")
    person(session, "rev-1", "reviewer")
    assert directory.check_staff(session, acknowledge("MGR-1")) is None
    assert directory.check_staff(session, action(
        "acknowledge_escalation", by="mgr-1", handler_id="rev-1",
        definition=DEFINITION)) is None
    assert directory.check_staff(session, action(
        "reassign", by="rev-1", role="manager", to="mgr-1", reason="Cover")) is None


def test_describe_staff_gives_the_contact(session: Session) -> None:
    """describe_staff gives the details a letter prints; None for unknown or inactive ids."""
    directory.add_staff(session, "off-1", display_name="Amira Patel",
                        job_title="Complaints officer", team="Customer resolution",
                        email="amira.patel@example.org", phone="0161 555 0100",
                        roles=["handler"])
    contact = directory.describe_staff(session, "OFF-1")
    assert contact == directory.StaffContact(
        display_name="Amira Patel", job_title="Complaints officer",
        team="Customer resolution", email="amira.patel@example.org", phone="0161 555 0100")
    with pytest.raises(ValueError):
        contact.email = "other@example.org"  # type: ignore[misc]
    assert directory.describe_staff(session, "nobody") is None
    directory.deactivate_staff(session, "off-1", reason="Left")
    assert directory.describe_staff(session, "off-1") is None
    kept = directory.describe_staff(session, "off-1", include_inactive=True)
    assert kept is not None and kept.display_name == "Amira Patel"


def test_describe_staff_ids_matches_describe_staff_in_one_query(session: Session) -> None:
    """Several ids are described as describe_staff describes each, with one SELECT."""
    person(session, "off-1")
    person(session, "rev-2", "reviewer")
    person(session, "old-3")
    directory.deactivate_staff(session, "old-3", reason="Left")
    ids = ["OFF-1", "off-1\u200b", "ｏｆｆ-1", "rev-2", "old-3", "nobody", "", "\u200b"]
    selects: list[str] = []
    event.listen(session.get_bind(), "before_cursor_execute",
                 lambda *args: selects.append(args[2]) if args[2].startswith("SELECT") else None)
    for include_inactive in (False, True):
        selects.clear()
        found = directory.describe_staff_ids(session, ids, include_inactive=include_inactive)
        assert len(selects) == 1
        one_by_one = {i: c for i in ids
                      if (c := directory.describe_staff(session, i,
                                                        include_inactive=include_inactive))}
        assert found == one_by_one
        assert set(found) == {"OFF-1", "off-1\u200b", "ｏｆｆ-1", "rev-2"} | (
            {"old-3"} if include_inactive else set())
    assert directory.describe_staff_ids(session, ["", "\u200b"]) == {}


# --- the staff commands refuse before Temporal ------------------------------------------


def _temporal_must_not_be_asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Stand in for ``act``: it records the staff id it was sent and answers as Temporal down."""
    sent: list[str] = []

    async def act(reference: str, sent_action: Action) -> Any:
        sent.append(sent_action.by)
        raise StaffError("Temporal was asked")

    monkeypatch.setattr(complaints.staff, "act", act)
    return sent


def test_send_refuses_an_unknown_by_before_temporal(
        session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    """`complaints acknowledge --by nobody` is refused in one line, Temporal never asked."""
    person(session, "mgr-1")
    sent = _temporal_must_not_be_asked(monkeypatch)
    result = run("acknowledge", REFERENCE, "--by", "nobody", "--summary", "Mould",
                 "--point", "Mould not treated", "--outcome", "Treat the mould")
    assert refused(result) == ("Error: refused: staff id 'nobody' is not in the staff "
                               "directory (add it with complaints staff add)")
    assert sent == []
    refused(run("close", REFERENCE, "--by", "nobody"), "not in the staff directory")
    assert sent == []


def test_send_lets_a_known_id_through(session: Session,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """An active handler in the directory reaches Temporal (here: the stand-in)."""
    person(session, "mgr-1")
    sent = _temporal_must_not_be_asked(monkeypatch)
    refused(run("acknowledge", REFERENCE, "--by", "MGR-1", "--summary", "Mould",
                "--point", "Mould not treated", "--outcome", "Treat the mould"),
            "Temporal was asked")
    assert sent == ["MGR-1"]


def test_unreadable_directory_refuses_nothing(db_url: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """No database file (not created by the check), or one not yet migrated: nothing refused."""
    database = tmp_path / "data" / "complaints.db"
    sent = _temporal_must_not_be_asked(monkeypatch)
    refused(run("close", REFERENCE, "--by", "nobody"), "Temporal was asked")
    assert not database.exists()
    assert directory.directory_refusal(action("close", by="nobody")) is None
    upgrade(db_url, "0007")  # Before the staff table.
    assert directory.directory_refusal(action("close", by="nobody")) is None
    refused(run("close", REFERENCE, "--by", "nobody"), "Temporal was asked")
    assert sent == ["nobody", "nobody"]
