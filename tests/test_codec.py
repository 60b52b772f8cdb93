"""Residents' data encrypted in Temporal (issue 11 §1): the codec, its keys, and a real case."""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import build_activities
from complaints.codec import (
    ENCRYPTED,
    KEY_ID,
    EncryptionCodec,
    KeyProblem,
    load_keys,
    new_key_line,
    parse_keys,
)
from complaints.settings import Settings
from complaints.staff import lodge_intake
from models.actions import Acknowledge, Extend, Respond
from models.case import ComplaintDefinition, Party
from models.events import ActionResult
from models.messages import CaseView, Intake
from tests.cases import STAGE1_HANDLER, respond_to
from tests.conftest import CONVERTER, SEARCH_KEYS, TEMPORAL_CLI, make_intake
from worker import WORKFLOWS


def _with_base64_decoded(value: object) -> str:
    """Every string in a JSON document, each also base64-decoded where it decodes."""
    out: list[str] = []
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
        elif isinstance(item, str):
            out.append(item)
            with contextlib.suppress(binascii.Error, ValueError):
                out.append(base64.b64decode(item, validate=True).decode("utf-8", "replace"))
    return "\n".join(out)


def _keys(*ids: str) -> list[tuple[str, str]]:
    return [(key_id, new_key_line(key_id).split()[1]) for key_id in ids]


def _payload(text: str) -> Payload:
    return pydantic_data_converter.payload_converter.to_payloads([{"name": text}])[0]


async def test_payload_is_encrypted_with_key_id_and_decrypts_back() -> None:
    """A payload comes out as ciphertext naming its key, and decrypts to the same payload."""
    codec = EncryptionCodec(parse_keys(_keys("k1"), "test"))
    original = _payload("Jo Bloggs of 2 Test Row")
    [sealed] = await codec.encode([original])
    assert sealed.metadata["encoding"] == ENCRYPTED
    assert sealed.metadata[KEY_ID] == b"k1"
    assert b"Bloggs" not in sealed.SerializeToString()
    [opened] = await codec.decode([sealed])
    assert opened == original


async def test_rotation_new_key_encrypts_old_key_still_decrypts() -> None:
    """Adding a key makes it the one that encrypts; payloads under the old key still open."""
    old_pairs = _keys("2025")
    old = EncryptionCodec(parse_keys(old_pairs, "test"))
    [before] = await old.encode([_payload("before rotation")])
    rotated = EncryptionCodec(parse_keys(old_pairs + _keys("2026"), "test"))
    [after] = await rotated.encode([_payload("after rotation")])
    assert after.metadata[KEY_ID] == b"2026"
    assert (await rotated.decode([before]))[0] == _payload("before rotation")
    with pytest.raises(KeyProblem, match="'2026', which this process does not hold"):
        await old.decode([after])


async def test_plain_payloads_from_before_the_codec_pass_through() -> None:
    """A payload written before encryption (old histories) is returned unchanged."""
    codec = EncryptionCodec(parse_keys(_keys("k1"), "test"))
    plain = _payload("recorded in 2025")
    assert (await codec.decode([plain]))[0] is plain


async def test_altered_ciphertext_and_swapped_key_id_are_refused() -> None:
    """A flipped byte, or a payload relabelled with another held key's id, fails to open."""
    codec = EncryptionCodec(parse_keys(_keys("a", "b"), "test"))
    [sealed] = await codec.encode([_payload("x")])
    flipped = Payload(metadata=dict(sealed.metadata),
                      data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    with pytest.raises(KeyProblem, match="fails authentication"):
        await codec.decode([flipped])
    relabelled = Payload(metadata={**sealed.metadata, KEY_ID: b"a"}, data=sealed.data)
    with pytest.raises(KeyProblem, match="fails authentication"):
        await codec.decode([relabelled])


@pytest.mark.parametrize(("pairs", "message"), [
    ([], "no key"),
    ([("k1", "c2hvcnQ=")], "not 32 bytes"),
    ([("bad id!", new_key_line().split()[1])], "is not 1-40 letters"),
    (_keys("k1") + _keys("k1"), "listed twice"),
])
def test_unusable_keys_are_refused_with_the_fix(pairs: list[tuple[str, str]],
                                                message: str) -> None:
    """Each kind of unusable key set is refused with a one-line reason and no key shown."""
    with pytest.raises(KeyProblem, match=message) as caught:
        parse_keys(pairs, "PAYLOAD_KEYS")
    for _, encoded in pairs:
        assert encoded not in str(caught.value)


def test_settings_keys_env_file_and_default(tmp_path: Path) -> None:
    """PAYLOAD_KEYS wins; a key file must be private; the default file is made once, 0600."""
    [(key_id, encoded)] = _keys("env")
    assert load_keys(f"{key_id}:{encoded}", None, tmp_path).current == "env"
    key_file = tmp_path / "keys"
    key_file.write_text("# comment\n" + new_key_line("old") + "\n" + new_key_line("new") + "\n")
    key_file.chmod(0o644)
    with pytest.raises(KeyProblem, match="chmod 600"):
        load_keys(None, key_file, tmp_path)
    key_file.chmod(0o600)
    from_file = load_keys(None, key_file, tmp_path)
    assert from_file.ids == ("old", "new") and from_file.current == "new"
    data_dir = tmp_path / "data"
    first = load_keys(None, None, data_dir)
    assert (data_dir / "payload-keys").stat().st_mode & 0o777 == 0o600
    assert load_keys(None, None, data_dir).keys == first.keys


def test_bad_keys_stop_the_worker_with_one_line(tmp_path: Path) -> None:
    """The worker refuses an unusable PAYLOAD_KEYS with exit status 2 and the fix."""
    env = {**os.environ, "PAYLOAD_KEYS": "k1:c2hvcnQ=", "DATA_DIR": str(tmp_path),
           "LOG_JSON": "true"}
    result = subprocess.run([sys.executable, "worker.py"],
                            env=env, capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 2
    assert "not 32 bytes" in result.stdout + result.stderr
    assert "c2hvcnQ" not in result.stdout + result.stderr


# -- a real case on a dev server with its database in a file ----------------------------


@pytest_asyncio.fixture(scope="module")
async def on_file(tmp_path_factory: pytest.TempPathFactory
                  ) -> AsyncIterator[tuple[WorkflowEnvironment, Path]]:
    """A dev server keeping its history in a SQLite file, as ``complaints dev`` does."""
    db = tmp_path_factory.mktemp("temporal") / "temporal.db"
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(TEMPORAL_CLI), data_converter=CONVERTER,
        search_attributes=SEARCH_KEYS, dev_server_database_filename=str(db))
    yield env, db
    await env.shutdown()


def _marked_intake(mark: str) -> Intake:
    """An intake with ``mark`` in every personal field."""
    return make_intake(
        parties=(Party(name=f"Name{mark}", address=(f"Street{mark}", f"Town{mark}"),
                       email=f"mail{mark}@example.invalid", phone=f"0700{mark}"),),
        description=f"Complaint{mark} about damp",
        outcomes_sought=(f"Outcome{mark}",),
        adjustments=({"description": f"Wheelchair{mark}", "disability_disclosed": True},),
        category=f"Category{mark}")


async def _run_case(env: WorkflowEnvironment, tmp_path: Path,
                    mark: str) -> tuple[WorkflowHandle[object, object], str]:
    """Take a marked case to a stage 1 response with an extension; its current details."""
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'c.db'}",
                        outbox_dir=tmp_path / "outbox")
    queue = f"tq-{uuid.uuid4()}"
    worker = Worker(env.client, task_queue=queue, workflows=WORKFLOWS,
                    activities=build_activities(settings),
                    activity_executor=concurrent.futures.ThreadPoolExecutor(4))
    async with worker:
        handle = await lodge_intake(env.client, _marked_intake(mark), queue)
        for _ in range(100):
            if (await handle.query("case_view", result_type=CaseView)).deadlines:
                break
            await asyncio.sleep(0.1)
        definition = ComplaintDefinition(
            summary=f"Damp{mark}", points=(f"Point{mark}",), outcomes_sought=("Repair",))
        await handle.execute_update("acknowledge", Acknowledge(
            by=STAGE1_HANDLER, handler_id=STAGE1_HANDLER, definition=definition),
            result_type=ActionResult)
        await handle.execute_update("extend", Extend.model_validate({
            "by": STAGE1_HANDLER, "working_days": 5, "reason": f"Survey{mark} needed"}),
            result_type=ActionResult)
        view = await handle.query("case_view", result_type=CaseView)
        respond: Respond = respond_to(view.case, STAGE1_HANDLER)
        await handle.execute_update("respond", respond, result_type=ActionResult)
        details = (await handle.query("__temporal_workflow_metadata")).current_details
    return handle, details


async def test_no_personal_string_in_raw_history_database_or_operator_fields(
        on_file: tuple[WorkflowEnvironment, Path], tmp_path: Path) -> None:
    """A marked case's strings appear nowhere Temporal keeps them, yet decrypt for the engine."""
    env, db = on_file
    mark = uuid.uuid4().hex[:12].upper()
    handle, current_details = await _run_case(env, tmp_path, mark)
    # The engine (holding the key) reads them back: the check below could fail.
    # (The case's own recordings are local activities: their inputs are not in history,
    # so the intake is read back from the workflow's input.)
    events = (await handle.fetch_history()).events
    started = events[0].workflow_execution_started_event_attributes.input.payloads
    assert mark in str(await CONVERTER.decode(list(started)))
    # 1. The raw history, as anyone with the Temporal CLI sees it (no codec).
    address = env.client.service_client.config.target_host
    shown = subprocess.run(
        [str(TEMPORAL_CLI), "workflow", "show", "--workflow-id", handle.id, "--address",
         address, "--output", "json"], capture_output=True, text=True, timeout=60, check=True)
    readable = _with_base64_decoded(json.loads(shown.stdout))
    assert "EVENT_TYPE_MARKER_RECORDED" in readable and ENCRYPTED.decode() in readable
    assert mark not in readable
    # 2. The dev server's database file (and its write-ahead log).
    raw = b"".join(p.read_bytes() for p in db.parent.iterdir() if p.name.startswith(db.name))
    assert handle.id.encode() in raw and b"record_case_event" in raw  # the history is here
    assert mark.encode() not in raw and mark.lower().encode() not in raw
    # 3. What Temporal never encrypts: search attributes, memo, summaries, details, ids.
    description = await handle.describe()
    visible = " ".join([
        handle.id, str(description.typed_search_attributes), str(await description.memo()),
        str(await description.static_summary()), str(await description.static_details()),
        current_details])
    assert "stage1_" in visible or "closed" in visible
    assert mark not in visible


def test_keys_cli_makes_a_usable_key_and_shows_ids_only(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """`keys new` prints a key line the codec takes; `keys show` names ids, never keys."""
    from click.testing import CliRunner

    from complaints.cli import cli

    runner = CliRunner()
    made = runner.invoke(cli, ["keys", "new", "--id", "2027"])
    assert made.exit_code == 0
    key_id, encoded = made.output.split()
    assert parse_keys([(key_id, encoded)], "test").current == "2027"
    key_file = tmp_path / "keys"
    key_file.write_text(new_key_line("old") + "\n" + made.output)
    key_file.chmod(0o600)
    monkeypatch.delenv("PAYLOAD_KEYS", raising=False)
    monkeypatch.setenv("PAYLOAD_KEYS_FILE", str(key_file))
    shown = runner.invoke(cli, ["keys", "show"])
    assert shown.exit_code == 0
    assert "old" in shown.output and "2027  (encrypts new payloads)" in shown.output
    assert encoded not in shown.output
    bad = runner.invoke(cli, ["keys", "new", "--id", "bad id"])
    assert bad.exit_code == 1 and "is not 1-40 letters" in bad.output
