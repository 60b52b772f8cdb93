"""`complaints dev` and the staff commands end to end: real processes, no mocks.

The tests run the installed ``complaints`` command as staff do. Those marked ``slow`` run it
against a ``complaints dev`` of their own (own data folder, Temporal port and UI port, found
free by binding port 0); every process they start is killed in a ``finally`` block, the
Temporal server included: it runs in a session of its own, so it is found through /proc by
the test's unique data folder. The others need no Temporal at all.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from complaints.settings import Settings

COMPLAINTS = Path(sys.executable).parent / "complaints"
READY_TIMEOUT_S = 90
STOP_TIMEOUT_S = 30
CLI_TIMEOUT_S = 60

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="finds the Temporal server through /proc")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def london_today() -> str:
    """Today in Europe/London, the landlord's day (a receipt date cannot be after it)."""
    return dt.datetime.now(ZoneInfo("Europe/London")).date().isoformat()


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def clean_env(**settings: str) -> dict[str, str]:
    """The environment without any of our settings inherited from the caller, plus ``settings``."""
    ours = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in ours}
    env.update(settings)
    return env


def pids_using(marker: str) -> list[int]:
    """Processes whose command line mentions ``marker`` (the test's own data folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(entry.name))
    return found


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The ``Error:`` lines a command printed on stderr."""
    return [line for line in result.stderr.splitlines() if line.startswith("Error:")]


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int | None,
                          *needles: str) -> str:
    """The command failed (with ``code`` if given) printing one line, no traceback."""
    assert result.returncode != 0, result.stdout
    if code is not None:
        assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines[0]
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


class Dev:
    """One ``complaints dev`` process with its data folder and ports."""

    def __init__(self, data_dir: Path, env: dict[str, str], port: int, ui_port: int,
                 web_port: int | None = None) -> None:
        self.data_dir = data_dir
        self.env = env
        self.port = port
        self.ui_port = ui_port
        self.web_port = web_port or free_port()  # never 8000, which may be taken
        env.setdefault("WEB_PORT", str(self.web_port))
        self.process: subprocess.Popen[str] | None = None
        self.stdout: list[str] = []
        self.runs = 0

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a ``complaints`` command against this stack."""
        return subprocess.run([str(COMPLAINTS), *args], capture_output=True, text=True,
                              env=self.env, cwd=self.data_dir.parent, timeout=CLI_TIMEOUT_S,
                              check=False)

    def cli_at_once(self, *commands: tuple[str, ...]) -> list[subprocess.CompletedProcess[str]]:
        """Run independent ``complaints`` commands side by side (each one is slow to start)."""
        with ThreadPoolExecutor(len(commands)) as pool:
            return list(pool.map(lambda args: self.cli(*args), commands))

    def start(self, *args: str) -> None:
        """Start ``complaints dev`` in its own process group and wait for "Ready."."""
        self.runs += 1
        self.stdout = []
        stderr = (self.data_dir.parent / f"dev-{self.runs}.stderr").open("w")
        self.process = subprocess.Popen(
            [str(COMPLAINTS), "dev", *args], stdout=subprocess.PIPE, stderr=stderr,
            stdin=subprocess.DEVNULL, text=True, env=self.env, cwd=self.data_dir.parent,
            start_new_session=True)
        stderr.close()
        ready = threading.Event()
        pipe = self.process.stdout
        assert pipe is not None

        def read() -> None:
            for line in pipe:
                self.stdout.append(line)
                if line.startswith("Ready."):
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready.wait(0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"`complaints dev` not ready (exit {self.process.poll()}):\n"
                            f"{''.join(self.stdout)}\n{self.stderr()[-3000:]}")

    def stderr(self) -> str:
        """What the latest run printed on stderr."""
        return (self.data_dir.parent / f"dev-{self.runs}.stderr").read_text(errors="replace")

    def interrupt(self) -> int:
        """Press Ctrl-C (SIGINT to the process group) and wait for the exit code."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`complaints dev` still running {STOP_TIMEOUT_S}s after Ctrl-C")

    def server_pids(self) -> list[int]:
        """The Temporal servers running on this test's data folder."""
        return pids_using(str(self.data_dir / "temporal.db"))

    def kill(self) -> None:
        """Kill whatever is left: the dev process group and the Temporal server."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(10)
        for pid in self.server_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[Dev]:
    """A stack of our own: data folder, free ports, JSON logs; nothing left running after."""
    data_dir = tmp_path / "data"
    port, ui_port, web_port = free_port(), free_port(), free_port()
    env = clean_env(DATA_DIR=str(data_dir), TEMPORAL_ADDRESS=f"127.0.0.1:{port}",
                    UI_PORT=str(ui_port), WEB_PORT=str(web_port), LOG_JSON="true")
    stack = Dev(data_dir, env, port, ui_port, web_port)
    try:
        yield stack
    finally:
        stack.kill()


def cases(dev: Dev, *args: str) -> list[dict[str, object]]:
    """`complaints list --json` as data."""
    result = dev.cli("list", "--json", *args)
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, object]] = json.loads(result.stdout)
    return rows


def eventually(check: Callable[[], None], timeout: float = 15) -> None:
    """Retry ``check`` (visibility lags the workflow) until it passes or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.mark.slow
def test_dev_serves_staff_and_resumes_after_ctrl_c(dev: Dev) -> None:
    """`complaints dev` serves the UI, the web app and the CLI, stops on Ctrl-C and resumes."""
    dev.start()
    with urllib.request.urlopen(f"http://127.0.0.1:{dev.ui_port}/", timeout=10) as page:
        assert page.status == 200
    web = f"http://127.0.0.1:{dev.web_port}/"
    assert any(line.strip().startswith(f"Web app: {web}") for line in dev.stdout), dev.stdout
    # The Web UI asks the web app's codec server to decrypt payloads for operators.
    with urllib.request.urlopen(f"http://127.0.0.1:{dev.ui_port}/api/v1/settings",
                                timeout=10) as ui_settings:
        codec = json.loads(ui_settings.read())["Codec"]
    assert codec["Endpoint"] == f"{web}codec"
    assert any(f"{web}codec for an operator" in line for line in dev.stdout), dev.stdout
    with urllib.request.urlopen(f"{web}api/v1/health", timeout=10) as health:
        assert health.status == 200 and json.loads(health.read()) == {"status": "ok"}
    staff = dev.cli("staff", "list", "--json")
    assert staff.returncode == 0, staff.stderr
    seeded = {row["staff_id"]: row["roles"] for row in json.loads(staff.stdout)}
    assert set(seeded) == {"hdl-1", "hdl-2", "mgr-1", "lead-1", "view-1", "adm-1"}
    assert "handler" in seeded["mgr-1"] and seeded["adm-1"] == ["admin", "operator"]

    [demo] = cases(dev)
    assert demo["state"] == "received"
    ref = str(demo["reference"])

    result = dev.cli("acknowledge", ref, "--by", "mgr-1", "--summary", "Leak not repaired",
                     "--point", "The bathroom leak was not repaired",
                     "--outcome", "Repair the leak")
    assert result.returncode == 0, result.stderr
    assert "stage1_investigating" in result.stdout

    result = dev.cli("extend", ref, "--by", "mgr-1", "--working-days", "5",
                     "--reason", "The roofer cannot inspect until next week")
    assert result.returncode == 0, result.stderr
    assert "stage1_extended" in result.stdout

    status, letters, refused, unknown = dev.cli_at_once(
        ("status", ref, "--json"), ("letters", ref), ("escalate", ref, "--by", "hdl-2"),
        ("status", "CMP-2026-999999"))
    assert status.returncode == 0, status.stderr
    view = json.loads(status.stdout)
    assert view["reference"] == ref and view["state"] == "stage1_extended"
    responses = {d["status"] for d in view["deadlines"] if d["kind"] == "stage1_response"}
    assert responses == {"extended", "pending"}

    assert letters.returncode == 0, letters.stderr
    *listed, total = letters.stdout.strip().splitlines()
    assert total == "2 letters" and len(listed) == 2
    [extension] = [line.split()[0] for line in listed if ":extension:" in line.split()[0]]
    result = dev.cli("letters", ref, "--show", extension)
    assert result.returncode == 0, result.stderr
    assert "0300 111 3000" in result.stdout
    assert "The roofer cannot inspect until next week" in result.stdout

    assert_one_line_error(refused, 1, "Error: refused:", "stage1_extended")
    assert_one_line_error(unknown, None, "CMP-2026-999999")
    eventually(lambda: assert_refs(cases(dev, "--state", "stage1_extended"), [ref]))

    assert dev.interrupt() == 0, dev.stderr()[-3000:]
    assert "stopped cleanly" in "".join(dev.stdout)
    assert dev.server_pids() == []
    assert not listening(dev.port) and not listening(dev.ui_port)
    assert not listening(dev.web_port)

    dev.start()
    assert any("no demo staff added" in line for line in dev.stdout)  # seeded once only
    listed_again, status = dev.cli_at_once(("list", "--json"), ("status", ref, "--json"))
    assert listed_again.returncode == 0, listed_again.stderr
    assert_refs(json.loads(listed_again.stdout), [ref])  # the demo was not lodged twice
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["state"] == "stage1_extended"  # resumed where it was

    lodge = ("lodge", "--channel", "email", "--channel-reference", "msg-42",
             "--received", london_today(), "--resident", "Sam Example",
             "--description", "Black mould in the back bedroom since October",
             "--outcome", "Treat the mould and redecorate")
    first, second = dev.cli(*lodge), dev.cli(*lodge)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    new_ref = first.stdout.strip()
    assert new_ref.startswith("CMP-") and new_ref != ref
    assert second.stdout.strip() == new_ref  # the same channel reference is the same case
    eventually(lambda: assert_refs(cases(dev), [ref, new_ref]))

    assert dev.interrupt() == 0, dev.stderr()[-3000:]
    assert dev.server_pids() == []


def assert_refs(rows: list[dict[str, object]], refs: list[str]) -> None:
    """The listed cases are exactly ``refs``."""
    assert sorted(str(r["reference"]) for r in rows) == sorted(refs), rows


@pytest.mark.parametrize(("args", "field"), [
    (("--received", "{today}"), "description"),
    (("--received", "23/11/2026", "--description", "Mould"), "--received"),
], ids=["missing-description", "received-not-iso"])
def test_lodge_refuses_bad_intake_in_one_line(tmp_path: Path, args: tuple[str, ...],
                                              field: str) -> None:
    """A lodge missing its description or with a non-ISO receipt date is one line naming it."""
    env = clean_env(DATA_DIR=str(tmp_path / "data"), TEMPORAL_ADDRESS="127.0.0.1:9")
    result = subprocess.run(
        [str(COMPLAINTS), "lodge", "--channel", "email", "--channel-reference", "msg-7",
         "--resident", "Sam Example", *(a.format(today=london_today()) for a in args)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=CLI_TIMEOUT_S,
        check=False)
    line = assert_one_line_error(result, None, field)
    assert "cannot reach Temporal" not in line  # refused before Temporal was tried
    assert not (tmp_path / "data" / "complaints.db").exists()  # and no reference taken


def test_malformed_date_names_the_option_without_a_traceback(tmp_path: Path) -> None:
    """`complaints deadlines --from 2026-02-30` exits 2 with one error naming --from."""
    result = subprocess.run(
        [str(COMPLAINTS), "deadlines", "--from", "2026-02-30", "--working-days", "5"],
        capture_output=True, text=True, env=clean_env(), cwd=tmp_path,
        timeout=CLI_TIMEOUT_S, check=False)
    assert result.returncode == 2
    [line] = error_lines(result)
    assert "'--from'" in line and "2026-02-30" in line and "YYYY-MM-DD" in line
    assert "Traceback" not in result.stderr
