"""Lodging never attaches a new complaint to someone else's case (issue 8, section 1).

Each way the old `complaints lodge` printed an existing case's reference, exited 0 and
stored the new complaint nowhere is run here through the real command against the
session's Temporal server: an explicit reference naming another resident's case, another
working directory, an explicit reference ahead of the sequence, a deleted or restored
database, and a channel reference reused for different content. Then the rules behind
them through :func:`complaints.lodging.lodge`, as an HTTP API would call it: the same
intake lodged again is the same case, a bad explicit reference is refused before anything
is stored, and the settings put the deployment's data in one absolute place.

No worker runs: lodging only starts a case, and the first event of its history holds the
intake it was started with. Each test uses a receipt year of its own (references are
numbered per year and the server is shared by the whole session) and a fresh task queue.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from complaints.db import ensure_schema, make_engine, reference_for_channel
from complaints.lodging import (
    LodgingRefused,
    ReferenceTaken,
    check_reference,
    intake_fingerprint,
    intake_of_case,
    lodge,
)
from complaints.settings import Settings
from complaints.staff import PLACEHOLDER_REFERENCE, lodge_intake
from models.messages import Intake
from tests.conftest import RUN_PAYLOAD_KEYS, Stack, make_intake

COMPLAINTS = Path(sys.executable).parent / "complaints"
CLI_TIMEOUT_S = 60


# --- through `complaints lodge` ----------------------------------------------------------


def cli_env(stack: Stack, home: Path, **settings: str) -> dict[str, str]:
    """An environment for `complaints` on the session's server, none of ours inherited."""
    ours = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items()
           if k.upper() not in ours and k not in ("XDG_DATA_HOME", "COMPLAINTS_ENV_FILE")}
    env.update(HOME=str(home), LOG_JSON="true",
               COMPLAINTS_ENV_FILE=str(home / "absent.env"),
               TEMPORAL_ADDRESS=stack.env.client.service_client.config.target_host,
               TEMPORAL_TASK_QUEUE=stack.task_queue, PAYLOAD_KEYS=RUN_PAYLOAD_KEYS,
               **settings)
    return env


def run_lodge(env: dict[str, str], cwd: Path, year: int, msg: str, resident: str,
              description: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run `complaints lodge` for an email received on 1 June of ``year``."""
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [str(COMPLAINTS), "lodge", "--channel", "email", "--channel-reference", msg,
         "--received", f"{year}-06-01", "--resident", resident, "--policy", "connexus",
         "--description", description, "--outcome", "Put it right", *extra],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=CLI_TIMEOUT_S, check=False)


def lodged(result: subprocess.CompletedProcess[str]) -> str:
    """The reference a successful `complaints lodge` printed."""
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def refused(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The one `Error:` line of a refused lodge (exit 1, no traceback)."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


async def case_description(stack: Stack, reference: str) -> str:
    """The description of the intake Temporal holds under ``reference``."""
    intake = await intake_of_case(stack.env.client, reference)
    assert intake is not None, reference
    return intake.description


async def test_reference_of_another_residents_case_is_refused(stack: Stack,
                                                              tmp_path: Path) -> None:
    """`--reference` naming another resident's case exits 1 naming it; that case is unchanged."""
    env = cli_env(stack, tmp_path / "home")
    first = lodged(run_lodge(env, tmp_path, 2011, "msg-a", "Ann Example", "Leaking roof"))
    assert first == "CMP-2011-000001"
    result = run_lodge(env, tmp_path, 2011, "msg-b", "Bo Other", "Broken boiler",
                       "--reference", first)
    line = refused(result, f"{first} already exists for a different complaint",
                   "without --reference")
    assert "Bo Other" not in result.stderr + result.stdout and "boiler" not in line
    assert await case_description(stack, first) == "Leaking roof"


async def test_another_working_directory_lodges_into_the_same_deployment(
        stack: Stack, tmp_path: Path) -> None:
    """Lodging from two folders numbers on from one database: two cases, none in the cwd."""
    home = tmp_path / "home"
    env = cli_env(stack, home)
    first = lodged(run_lodge(env, tmp_path / "a", 2012, "msg-1", "Ann Example", "Damp"))
    second = lodged(run_lodge(env, tmp_path / "b", 2012, "msg-2", "Bo Other", "Mould"))
    assert (first, second) == ("CMP-2012-000001", "CMP-2012-000002")
    assert [await case_description(stack, r) for r in (first, second)] == ["Damp", "Mould"]
    database = home / ".local" / "share" / "complaints-engine" / "complaints.db"
    with sqlite3.connect(database) as db:
        assert db.execute('SELECT count(*) FROM "references"').fetchone()[0] == 2
    assert not (tmp_path / "a" / ".data").exists() and not (tmp_path / "b" / ".data").exists()


async def test_a_different_database_cannot_reuse_a_reference(stack: Stack,
                                                             tmp_path: Path) -> None:
    """A second database (another DATA_DIR) starts at 000001 but Temporal moves it past."""
    one = cli_env(stack, tmp_path / "home", DATA_DIR=str(tmp_path / "one"))
    two = cli_env(stack, tmp_path / "home", DATA_DIR=str(tmp_path / "two"))
    first = lodged(run_lodge(one, tmp_path, 2013, "msg-1", "Ann Example", "Damp"))
    second = lodged(run_lodge(two, tmp_path, 2013, "msg-2", "Bo Other", "Mould"))
    assert (first, second) == ("CMP-2013-000001", "CMP-2013-000002")
    assert await case_description(stack, second) == "Mould"


async def test_explicit_reference_ahead_of_the_sequence_is_skipped(stack: Stack,
                                                                   tmp_path: Path) -> None:
    """After `--reference` 000002 (here or in another database) the sequence moves past it."""
    env = cli_env(stack, tmp_path / "home", DATA_DIR=str(tmp_path / "data"))
    elsewhere = cli_env(stack, tmp_path / "home", DATA_DIR=str(tmp_path / "host"))
    assert lodged(run_lodge(env, tmp_path, 2014, "msg-1", "Ann", "Damp")) == "CMP-2014-000001"
    assert lodged(run_lodge(env, tmp_path, 2014, "msg-2", "Bo", "Mould",
                            "--reference", "CMP-2014-000002")) == "CMP-2014-000002"
    assert lodged(run_lodge(elsewhere, tmp_path, 2014, "msg-3", "Cy", "Leak",
                            "--reference", "CMP-2014-000004")) == "CMP-2014-000004"
    assert lodged(run_lodge(env, tmp_path, 2014, "msg-4", "Di", "Rats")) == "CMP-2014-000003"
    assert lodged(run_lodge(env, tmp_path, 2014, "msg-5", "Ed", "Noise")) == "CMP-2014-000005"
    descriptions = [await case_description(stack, f"CMP-2014-00000{n}") for n in range(1, 6)]
    assert descriptions == ["Damp", "Mould", "Rats", "Leak", "Noise"]


async def test_deleted_or_restored_database_never_reuses_a_reference(stack: Stack,
                                                                     tmp_path: Path) -> None:
    """A database restored from a backup, then deleted, still gives each complaint its own case."""
    data = tmp_path / "data"
    env = cli_env(stack, tmp_path / "home", DATA_DIR=str(data))
    database, backup = data / "complaints.db", tmp_path / "backup.db"
    assert lodged(run_lodge(env, tmp_path, 2015, "msg-1", "Ann", "Damp")) == "CMP-2015-000001"
    with sqlite3.connect(database) as source, sqlite3.connect(backup) as copy:
        source.backup(copy)
    assert lodged(run_lodge(env, tmp_path, 2015, "msg-2", "Bo", "Mould")) == "CMP-2015-000002"
    assert lodged(run_lodge(env, tmp_path, 2015, "msg-3", "Cy", "Leak")) == "CMP-2015-000003"

    for path in data.glob("complaints.db*"):
        path.unlink()
    shutil.copy(backup, database)  # Restored: it knows only CMP-2015-000001.
    assert lodged(run_lodge(env, tmp_path, 2015, "msg-4", "Di", "Rats")) == "CMP-2015-000004"
    # The case found under 000002 while moving past it was recorded with its channel id.
    assert lodged(run_lodge(env, tmp_path, 2015, "msg-2", "Bo", "Mould")) == "CMP-2015-000002"

    shutil.rmtree(data)  # Deleted: it knows nothing.
    assert lodged(run_lodge(env, tmp_path, 2015, "msg-5", "Ed", "Noise")) == "CMP-2015-000005"
    descriptions = [await case_description(stack, f"CMP-2015-00000{n}") for n in range(1, 6)]
    assert descriptions == ["Damp", "Mould", "Leak", "Rats", "Noise"]


async def test_channel_reference_with_different_content_is_refused(stack: Stack,
                                                                   tmp_path: Path) -> None:
    """The same email id with other content exits 1 naming the case; the same content is it."""
    env = cli_env(stack, tmp_path / "home", DATA_DIR=str(tmp_path / "data"))
    fresh = cli_env(stack, tmp_path / "home", DATA_DIR=str(tmp_path / "fresh"))
    first = lodged(run_lodge(env, tmp_path, 2016, "msg-9", "Ann Example", "Damp"))
    assert lodged(run_lodge(env, tmp_path, 2016, "msg-9", "Ann Example", "Damp")) == first
    for environment in (env, fresh):  # Known to the database, or only to Temporal.
        result = run_lodge(environment, tmp_path, 2016, "msg-9", "Ann Example", "Mould")
        line = refused(result, f"already lodged as {first} with different content")
        assert "msg-9" not in line and "Mould" not in line
    assert await case_description(stack, first) == "Damp"
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'complaints.db'}")
    try:
        row = reference_for_channel(engine, "email", "msg-9")
    finally:
        engine.dispose()
    assert row is not None and row.fingerprint is not None
    assert row.fingerprint not in result.stderr + result.stdout  # never shown or logged


# --- the rules, as any entry point calls them ------------------------------------------


def new_intake(year: int, **overrides: Any) -> Intake:
    """An intake received on 1 June of ``year``, with no reference of its own yet."""
    return make_intake(received_on=dt.date(year, 6, 1), reference=PLACEHOLDER_REFERENCE,
                       **overrides)


def database(tmp_path: Path, name: str = "c.db") -> str:
    """A migrated SQLite database in ``tmp_path``."""
    url = f"sqlite:///{tmp_path / name}"
    ensure_schema(url)
    return url


async def test_same_intake_lodged_again_is_the_same_case(stack: Stack, tmp_path: Path) -> None:
    """Lodging one intake twice, allocated or explicit, gives its case back, not a new one."""
    url, client = database(tmp_path), stack.env.client
    intake = new_intake(2017, channel_reference="call-1")
    first = await lodge(client, url, intake, stack.task_queue)
    again = await lodge(client, url, intake, stack.task_queue)
    assert (first.reference, first.created) == ("CMP-2017-000001", True)
    assert (again.reference, again.created) == ("CMP-2017-000001", False)
    assert again.handle.result_run_id == first.handle.result_run_id

    explicit = new_intake(2017, description="A second, different complaint")
    made = await lodge(client, url, explicit, stack.task_queue, reference="CMP-2017-000050")
    repeat = await lodge(client, url, explicit, stack.task_queue, reference="CMP-2017-000050")
    assert (made.created, repeat.created, repeat.reference) == (True, False, "CMP-2017-000050")
    # Without a channel reference, lodging with no --reference is a new complaint each time.
    assert (await lodge(client, url, explicit, stack.task_queue)).reference == "CMP-2017-000051"


@pytest.mark.parametrize(("reference", "needle"), [
    ("CMP-2018-000000", "a number from 000001"),
    ("CMP-2017-000001", "does not fit a complaint received in 2018"),
    ("CMP-18-1", "is not a complaint reference"),
])
async def test_bad_explicit_reference_is_refused_before_anything_is_stored(
        stack: Stack, tmp_path: Path, reference: str, needle: str) -> None:
    """An explicit reference of the wrong form, year or number stores no row and no case."""
    url = database(tmp_path)
    with pytest.raises(LodgingRefused) as caught:
        await lodge(stack.env.client, url, new_intake(2018), stack.task_queue,
                    reference=reference)
    assert needle in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(LodgingRefused):
        check_reference(reference, 2018)
    with sqlite3.connect(tmp_path / "c.db") as db:
        assert db.execute('SELECT count(*) FROM "references"').fetchone()[0] == 0
    assert [wf async for wf in stack.env.client.list_workflows(
        "WorkflowId STARTS_WITH 'CMP-2018-'")] == []


async def test_lodge_intake_never_merges_a_different_intake(stack: Stack) -> None:
    """`lodge_intake` (a caller's own reference) returns the same intake's case, refuses another."""
    intake = make_intake(received_on=dt.date(2019, 6, 1), reference="CMP-2019-000007")
    first = await lodge_intake(stack.env.client, intake, stack.task_queue)
    second = await lodge_intake(stack.env.client, intake, stack.task_queue)
    assert first.result_run_id == second.result_run_id
    other = intake.model_copy(update={"description": "Someone else's complaint"})
    with pytest.raises(ReferenceTaken) as caught:
        await lodge_intake(stack.env.client, other, stack.task_queue)
    assert caught.value.existing is not None
    assert intake_fingerprint(caught.value.existing) == intake_fingerprint(intake)


def test_fingerprint_ignores_the_reference_and_sees_the_content() -> None:
    """Two copies of an intake under other references match; a changed description does not."""
    intake = new_intake(2020, channel_reference="msg-1")
    moved = intake.model_copy(update={"reference": "CMP-2020-000009"})
    changed = intake.model_copy(update={"description": "Another complaint"})
    assert intake_fingerprint(intake) == intake_fingerprint(moved)
    assert intake_fingerprint(intake) != intake_fingerprint(changed)
    assert len(intake_fingerprint(intake)) == 64


# --- one place for the deployment ------------------------------------------------------


@pytest.fixture
def no_settings_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No settings from the caller's environment or env file; HOME is ``tmp_path / 'home'``."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("COMPLAINTS_ENV_FILE", str(tmp_path / "absent.env"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_data_folder_does_not_depend_on_the_working_directory(
        no_settings_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default data folder and a relative DATA_DIR are absolute; ./.env is not read."""
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / ".env").write_text(f"DATA_DIR={folder}-data\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path / "a")
    from_a = Settings()
    monkeypatch.chdir(tmp_path / "b")
    from_b = Settings()
    expected = no_settings_env / ".local" / "share" / "complaints-engine"
    assert from_a.data_dir == from_b.data_dir == expected
    assert from_a.effective_database_url() == f"sqlite:///{expected / 'complaints.db'}"

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Settings().data_dir == tmp_path / "xdg" / "complaints-engine"
    monkeypatch.setenv("DATA_DIR", "relative")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///relative.db")
    explicit = Settings()
    assert explicit.data_dir == tmp_path / "b" / "relative"
    assert explicit.database_url == f"sqlite:///{tmp_path / 'b' / 'relative.db'}"


def test_env_file_is_the_deployments_and_its_paths_are_relative_to_it(
        no_settings_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """COMPLAINTS_ENV_FILE is read from any folder; its relative paths start at its folder."""
    config = tmp_path / "etc"
    config.mkdir()
    (config / "complaints.env").write_text(
        "DATA_DIR=data\nOUTBOX_DIR=letters\nDATABASE_URL=sqlite:///db/c.db\n", encoding="utf-8")
    monkeypatch.setenv("COMPLAINTS_ENV_FILE", str(config / "complaints.env"))
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.data_dir == config / "data"
    assert settings.effective_outbox() == config / "letters"
    assert settings.effective_database_url() == f"sqlite:///{config / 'db' / 'c.db'}"
