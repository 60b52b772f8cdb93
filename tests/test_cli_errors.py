"""Every CLI failure is one ``Error:`` line and a non-zero exit, never a traceback.

The commands run in-process through ``complaints.cli.main`` (the console script's own
entry point, catch-all included) with ``sys.argv`` set, so stderr is exactly what a user
sees. Nothing here needs Temporal: the paths tested fail before it is reached, or its
answers are stood in for where named (a case over Temporal's size limit, a stored letter).
"""

from __future__ import annotations

import datetime as dt
import io
import sys
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import BaseModel
from temporalio.client import WorkflowQueryFailedError

import complaints.cli
import complaints.staff
from complaints.cli import main
from models.messages import CaseView, LetterRecord

REFERENCE = "CMP-2026-000007"
LETTER_ID = f"{REFERENCE}:stage1_acknowledgement:1:1"
RESIDENT = "Amira Patel"

_Model = TypeVar("_Model", bound=BaseModel)


def partial(model: type[_Model], **fields: Any) -> _Model:
    """A stand-in ``model`` with only ``fields`` set (``model_construct`` validates nothing).

    The pydantic mypy plugin types ``model_construct`` as needing every required field;
    the stand-ins here set only those the command reads.
    """
    return model.model_construct(**fields)


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings of the test's own (an unreachable Temporal, a database in tmp_path)."""
    data = tmp_path / "data"
    monkeypatch.setenv("COMPLAINTS_ENV_FILE", str(tmp_path / "absent.env"))
    monkeypatch.setenv("DATA_DIR", str(data))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{(data / 'complaints.db').as_posix()}")
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:9")
    monkeypatch.delenv("COMPLAINTS_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    return data


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str,
        stdin: bytes = b"") -> tuple[int, str, str]:
    """Run ``complaints ARGS`` as the console script does; return (exit code, out, err)."""
    monkeypatch.setattr(sys, "argv", ["complaints", *args])
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    with pytest.raises(SystemExit) as exited:
        main()
    out, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), out, err


def one_error_line(result: tuple[int, str, str], *needles: str) -> str:
    """The run failed with exactly one ``Error:`` line on stderr (no traceback)."""
    code, _, err = result
    assert code != 0, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# --- act --json ------------------------------------------------------------------------


@pytest.mark.parametrize(("content", "kind"), [
    ("[1, 2]", "an array"), ("null", "null"), ("42", "a number"), ('"close it"', "a string"),
], ids=["array", "null", "number", "string"])
def test_act_json_that_is_not_an_object_is_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        content: str, kind: str) -> None:
    """Valid JSON that is not an object (a file or stdin) is refused naming what it is."""
    path = tmp_path / "action.json"
    path.write_text(content, encoding="utf-8")
    one_error_line(run(monkeypatch, capsys, "act", REFERENCE, "close", "--json", str(path)),
                   kind, "not a JSON object", str(path))
    one_error_line(run(monkeypatch, capsys, "act", REFERENCE, "close", "--json", "-",
                       stdin=content.encode()), "standard input", kind)


def test_act_json_file_that_cannot_be_read_is_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Non-UTF-8 bytes, a folder and a file that may not be read each name the problem."""
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('{"note": "café"}'.encode("latin-1"))
    one_error_line(run(monkeypatch, capsys, "act", REFERENCE, "close", "--json", str(latin1)),
                   "not UTF-8", "save it as UTF-8")
    one_error_line(run(monkeypatch, capsys, "act", REFERENCE, "close", "--json", "-",
                       stdin=b"\xff\xfe{}"), "standard input is not UTF-8")
    folder = tmp_path / "folder.json"
    folder.mkdir()
    one_error_line(run(monkeypatch, capsys, "act", REFERENCE, "close", "--json", str(folder)),
                   "is a folder")

    # The tests run as root, who may read any file: the refusal the kernel gives another
    # user is stood in for at the one place the command opens the file.
    secret = tmp_path / "secret.json"
    secret.write_text("{}", encoding="utf-8")

    def refuse(path: Any, *args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(complaints.staff, "open", refuse, raising=False)
    one_error_line(run(monkeypatch, capsys, "act", REFERENCE, "close", "--json", str(secret)),
                   "permission denied", str(secret))


def test_act_json_accepts_inline_json_stdin_and_a_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Inline JSON (starting with '{'), '-' and a path all give the same action."""
    sent: list[Any] = []

    async def act(reference: str, action: Any) -> CaseView:
        sent.append((reference, action.model_dump(mode="json")))
        return partial(CaseView, reference=reference, state="withdrawn", stage=1,
                       deadlines=[], overdue=False)

    monkeypatch.setattr(complaints.staff, "act", act)
    payload = '{"by": "mgr-1", "note": "by phone"}'
    path = tmp_path / "withdraw.json"
    path.write_text(payload, encoding="utf-8")
    for value, stdin in ((f"  {payload}", b""), ("-", payload.encode()), (str(path), b"")):
        code, out, err = run(monkeypatch, capsys, "act", REFERENCE, "withdraw", "--json",
                             value, stdin=stdin)
        assert code == 0, err
        assert out.strip() == f"{REFERENCE}: withdrawn (stage 1)"
    assert len(sent) == 3
    assert all(s == sent[0] for s in sent)
    assert sent[0][1]["by"] == "mgr-1" and sent[0][1]["note"] == "by phone"
    # Bad inline JSON is named as such, without echoing it (it may hold personal data).
    line = one_error_line(run(monkeypatch, capsys, "act", REFERENCE, "withdraw", "--json",
                              f'{{"by": "mgr-1", "note": "{RESIDENT}"'),
                          "the inline JSON is not valid JSON")
    assert RESIDENT not in line


# --- a database that cannot be read ------------------------------------------------------


def _stored_letter_case(monkeypatch: pytest.MonkeyPatch) -> None:
    """Temporal's answer for the case stood in: it has sent the letter asked for."""
    letter = partial(LetterRecord, letter_id=LETTER_ID, subject="Acknowledgement",
                     sent_at=dt.datetime(2026, 11, 23, tzinfo=dt.UTC),
                     delivered_to=("outbox",))

    async def query(reference: str) -> CaseView:
        return partial(CaseView, reference=reference, letters=[letter])

    monkeypatch.setattr(complaints.staff, "_query", query)


def test_commands_reading_a_corrupt_database_say_so_in_one_line(
        environment: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A file that is not a SQLite database is one line from every command that reads it."""
    environment.mkdir(mode=0o700)
    corrupt = environment / "complaints.db"
    corrupt.write_bytes(b"not a database " * 100)
    corrupt.chmod(0o600)  # private already: only the error line is expected on stderr
    _stored_letter_case(monkeypatch)
    commands = [
        ("letters", REFERENCE, "--show", LETTER_ID),
        ("report", "--year", "2025/26"),
        ("evidence", "--year", "2025/26"),
        ("db", "upgrade"),
        ("synthetic", "--year", "2025/26", "--complaints", "3"),
        ("resync", REFERENCE),
    ]
    failures = []
    for command in commands:
        result = run(monkeypatch, capsys, *command)
        try:
            one_error_line(result, "not a database")
        except AssertionError as exc:
            failures.append(f"{' '.join(command)}: {exc}")
    assert failures == []


def test_letters_show_on_a_database_without_the_letters_says_what_to_check(
        environment: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """An empty (never migrated) database is named, with DATABASE_URL / DATA_DIR to check."""
    _stored_letter_case(monkeypatch)
    line = one_error_line(run(monkeypatch, capsys, "letters", REFERENCE, "--show", LETTER_ID),
                          f"cannot read letter {LETTER_ID}", "no such table", "DATABASE_URL")
    assert "complaints.db" in line


# --- a case too large for Temporal -------------------------------------------------------


class _Handle:
    def __init__(self, failure: str) -> None:
        self.failure = failure

    async def query(self, *args: Any, **kwargs: Any) -> Any:
        raise WorkflowQueryFailedError(self.failure)


class _Client:
    def __init__(self, failure: str) -> None:
        self.failure = failure

    def get_workflow_handle(self, reference: str) -> _Handle:
        return _Handle(self.failure)


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("failure", ["Blob data size exceeds limit.", "GRPC Message too large"])
def test_status_of_a_case_too_large_for_temporal_is_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], as_json: bool,
        failure: str) -> None:
    """A case whose view is over Temporal's limits is one line saying so and what to do.

    Temporal's answer is stood in for: building a case over 2 MB needs thousands of
    actions on a live server. The two failures are the ones a 2.5 MB and a 5 MB query
    answer gave against ``temporal server start-dev`` with temporalio 1.35 (the server's
    blob limit, then gRPC's 4 MB message limit).
    """

    async def client() -> _Client:
        return _Client(failure)

    monkeypatch.setattr(complaints.staff, "client_from_settings", client)
    args = ("status", REFERENCE, *(["--json"] if as_json else []))
    one_error_line(run(monkeypatch, capsys, *args), f"{REFERENCE} is too large", failure,
                   "complaints database")


# --- the last line of defence ------------------------------------------------------------


def test_an_unforeseen_error_is_one_line_without_its_message(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """An unexpected exception gives its type, where, and the debug hint; not its text."""

    def broken() -> list[str]:
        raise KeyError(RESIDENT)

    monkeypatch.setattr(complaints.cli, "shipped_policy_names", broken)
    line = one_error_line(run(monkeypatch, capsys, "policy", "list"),
                          "unexpected KeyError", "complaints/cli.py:", "COMPLAINTS_DEBUG=1")
    assert RESIDENT not in line
    assert run(monkeypatch, capsys, "policy", "list")[0] == 1

    monkeypatch.setenv("COMPLAINTS_DEBUG", "1")
    monkeypatch.setattr(sys, "argv", ["complaints", "policy", "list"])
    with pytest.raises(KeyError):
        main()


def test_a_bad_setting_is_named_in_one_line(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A setting that does not parse names its variable; it is not reported as a bug."""
    monkeypatch.setenv("SMTP_PORT", "twenty-five")
    line = one_error_line(run(monkeypatch, capsys, "report", "--year", "2025/26"),
                          "invalid settings: SMTP_PORT", "valid integer")
    assert "bug" not in line and "twenty-five" not in line


def test_help_says_how_json_is_read(monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """`act --help` states the rule: inline when it starts with '{', '-' for stdin, a path."""
    code, out, _ = run(monkeypatch, capsys, "act", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "inline when the value starts with '{'" in text
    assert "- for standard input" in text

