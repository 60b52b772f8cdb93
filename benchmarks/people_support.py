"""What ``bench_people.py`` needs around it: processes, staff, request bodies, rows, figures.

Kept apart from the benchmark so that the benchmark reads as what it measures. Nothing
here prints personal data: the people are fictional and only figures are printed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import random
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from complaints.directory import add_staff
from complaints.identity import issue_token
from domain.deadlines import london_date
from domain.permissions import Matrix, Permission
from models.actions import ACTION_BY_TRIGGER
from models.tables import ComplaintRow

ROOT = Path(__file__).resolve().parent.parent
#: The teams the handlers are spread over (five handlers each with the default 20).
TEAMS = ("North", "South", "East", "West")
#: Everyone the lodged cases name besides the handlers: a manager, the lead, an admin.
OTHERS = (("mgr-1", "manager", "North"), ("lead-1", "lead", "Quality"),
          ("adm-1", "admin", "IT"))
#: The definition every benchmark case is acknowledged with (fictional).
DEFINITION = {
    "summary": "Repairs to a leaking roof were not completed",
    "points": ["The roof leak reported in August was not repaired",
               "Nobody returned the resident's calls"],
    "outcomes_sought": ["Repair the roof"],
    "responsible_for": ["Roof repairs"],
}
#: The open states a seeded case may be in, with the stage each belongs to.
OPEN_STATES = (("stage1_investigating", 1), ("stage1_extended", 1), ("stage1_responded", 1),
               ("stage2_requested", 2), ("stage2_reviewing", 2), ("stage2_extended", 2),
               ("stage2_responded", 2))


# --- processes ----------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def product_env(folder: Path, temporal_address: str, task_queue: str,
                **extra: str) -> dict[str, str]:
    """The environment of a worker or web app on the benchmark's temp database.

    Every setting the product reads is given here; an empty env file (in ``folder``)
    stands in for the repository's ``.env``, so nothing of a developer's own setup leaks in.
    """
    from complaints.settings import Settings

    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    empty = folder / "bench.env"
    empty.touch()
    env.update({
        "COMPLAINTS_ENV_FILE": str(empty), "TEMPORAL_ADDRESS": temporal_address,
        "TEMPORAL_TASK_QUEUE": task_queue, "DATA_DIR": str(folder),
        "DATABASE_URL": database_url(folder), "OUTBOX_DIR": str(folder / "outbox"),
        "LOG_LEVEL": "WARNING", "LOG_JSON": "true", "PYTHONDONTWRITEBYTECODE": "1", **extra})
    return env


def database_url(folder: Path) -> str:
    """The benchmark's SQLite database, a file in the temp folder."""
    return f"sqlite:///{folder / 'complaints.db'}"


@dataclass
class Process:
    """A product process the benchmark started (worker or web app), with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: IO[bytes]
    log_path: Path

    def check(self) -> None:
        """Raise, with the end of its log, if the process has exited."""
        if self.popen.poll() is not None:
            raise RuntimeError(f"the {self.name} exited ({self.popen.returncode}); its log "
                               f"ends:\n{self.tail()}")

    def tail(self, lines: int = 20) -> str:
        """The last lines of its log."""
        self.log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        """SIGTERM (both stop cleanly on it), then SIGKILL after 15 s."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self.log.close()


def start(name: str, args: Sequence[str], env: dict[str, str], folder: Path) -> Process:
    """Start one of the product's own commands with ``env``, logging to ``folder``."""
    log_path = folder / f"{name.replace(' ', '-')}.log"
    log = log_path.open("wb")
    popen = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=log,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return Process(name, popen, log, log_path)


@contextlib.contextmanager
def running(processes: list[Process]) -> Iterator[list[Process]]:
    """Stop every process in ``processes`` (added to as they start) on the way out."""
    try:
        yield processes
    finally:
        for process in reversed(processes):
            process.stop()


def wait_for_http(url: str, process: Process, timeout: float = 60.0) -> None:
    """Wait until ``url`` answers 200 (the process still running), or raise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        process.check()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the {process.name} did not answer {url} in {timeout:.0f} s; its log "
                       f"ends:\n{process.tail()}")


# --- staff and their tokens ---------------------------------------------------------------


def handler_ids(count: int) -> list[str]:
    """The handlers' staff ids: ``hdl-01`` ..."""
    return [f"hdl-{n:02d}" for n in range(1, count + 1)]


def team_of(staff_id: str, handlers: Sequence[str]) -> str:
    """A handler's team: handlers are dealt round the teams in turn."""
    return TEAMS[handlers.index(staff_id) % len(TEAMS)]


def seed_staff(engine: Engine, matrix: Matrix, handlers: Sequence[str]) -> dict[str, str]:
    """Add the handlers (and a manager, lead and admin); a service token per handler."""
    from sqlmodel import Session

    tokens: dict[str, str] = {}
    with Session(engine, expire_on_commit=False) as session:
        people = [(h, "handler", team_of(h, handlers)) for h in handlers] + list(OTHERS)
        for staff_id, role, team in people:
            add_staff(session, staff_id, display_name=f"Staff {staff_id}",
                      job_title=role.title(), team=team, email=f"{staff_id}@landlord.example",
                      roles=(role,))
        names = [*ACTION_BY_TRIGGER, *(p.value for p in Permission)]
        for staff_id in handlers:
            scopes = [n for n in names if matrix.allowed(("handler",), n)]
            _row, token = issue_token(session, staff_id, scopes=scopes, label="benchmark",
                                      created_by="adm-1", matrix=matrix)
            tokens[staff_id] = token
    return tokens


# --- request bodies -----------------------------------------------------------------------


def intake_body(channel_reference: str) -> dict[str, Any]:
    """A lodging body received today (fictional people; unique by channel reference)."""
    return {
        "policy_name": "connexus", "channel": "phone", "channel_reference": channel_reference,
        "received_on": london_date(dt.datetime.now(dt.UTC)).isoformat(),
        "parties": [{"name": "Jo Bloggs", "address": ["2 Test Row", "Ludlow", "SY8 1AA"],
                     "email": "jo@example.invalid"}],
        "description": "The roof has leaked into the bedroom since August.",
        "outcomes_sought": ["Fix the roof"], "manager_id": "mgr-1", "lead_id": "lead-1",
    }


def stage1_bodies(handler: str) -> list[tuple[str, dict[str, Any]]]:
    """The three stage 1 actions after lodging, in order: acknowledge, extend, respond."""
    return [
        ("acknowledge", {"handler_id": handler, "definition": DEFINITION}),
        ("extend", {"working_days": 5, "reason": "A roofer must inspect the roof"}),
        ("respond", {
            "decision": "partly_upheld",
            "findings": [{"point": p, "finding": "Found so", "reason": "The repairs log "
                          "shows it"} for p in DEFINITION["points"]],
            "remedies": [{"kind": "apology", "description": "We apologise for the delay"}]}),
    ]


def csrf_of(html: str) -> str:
    """The CSRF token in a page's form."""
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    if match is None:
        raise RuntimeError("no CSRF token on the sign-in page")
    return match.group(1)


# --- the read model: many open cases, inserted directly -----------------------------------


def insert_open_cases(engine: Engine, count: int, handlers: Sequence[str], focus: str,
                      focus_share: int = 500, seed: int = 1) -> dict[str, int]:
    """Insert ``count`` open cases straight into ``complaints`` (no workflows), in one go.

    10% are unassigned (``received``, stage 0); ``focus`` handles ``focus_share`` of them
    (scaled down when ``count`` is small); the rest are dealt round the other handlers.
    Next deadlines fall over the next 30 days; one case in eight is overdue (deadline up
    to 10 days ago, marked ``overdue``) as the workflow would mark it.

    Returns:
        How many cases each handler (and ``None``: unassigned) holds.
    """
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    today = london_date(now)
    unassigned = count // 10
    focus_count = min(focus_share, (count - unassigned) // 2) if len(handlers) > 1 else \
        count - unassigned
    others = [h for h in handlers if h != focus] or [focus]
    held: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    for number in range(count):
        if number < unassigned:
            handler, state, stage = None, "received", 0
        else:
            handler = focus if number < unassigned + focus_count else \
                others[number % len(others)]
            state, stage = OPEN_STATES[rng.randrange(len(OPEN_STATES))]
        overdue = rng.random() < 0.125
        offset = -rng.uniform(0, 10) if overdue else rng.uniform(0.1, 30)
        received = today - dt.timedelta(days=rng.randrange(1, 60))
        rows.append({
            "reference": f"BEN-{today.year}-{number + 1:06d}", "landlord": "Connexus",
            "policy_name": "connexus", "channel": "phone", "channel_reference": None,
            "category": ("repairs", "anti-social behaviour", "staff conduct")[number % 3],
            "received_on": received, "description": "Benchmark case (no resident).",
            "outcomes_sought": "", "state": state, "stage": stage, "handler_id": handler,
            "stage1_handler": handler if stage >= 1 else None,
            "next_deadline": now + dt.timedelta(days=offset), "overdue": overdue,
            "created_at": now, "updated_at": now, "excluded": False,
            "escalation_refused": False})
        key = handler or "unassigned"
        held[key] = held.get(key, 0) + 1
    with engine.begin() as connection:
        connection.execute(insert(ComplaintRow.__table__), rows)  # type: ignore[attr-defined]
    return held


# --- figures ------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (``q`` from 0 to 1)."""
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(q * len(ordered) - 1e-9)))
    return ordered[rank - 1]


@dataclass
class Figures:
    """Latencies of one measure, in seconds, with its target and the baseline it is set against."""

    name: str
    seconds: list[float]
    baseline: Figures | None = None
    target_p99_ms: float | None = None

    def at(self, q: float) -> float:
        """The ``q`` percentile in milliseconds (``q`` = 1: the maximum)."""
        return (max(self.seconds) if q >= 1 else percentile(self.seconds, q)) * 1e3

    def met(self) -> bool | None:
        """Whether the p99 meets the target (None: no target)."""
        if self.target_p99_ms is None:
            return None
        return self.at(0.99) <= self.target_p99_ms

    def cell(self, q: float) -> str:
        """``123`` ms, with the ratio to the baseline's same figure: ``123 (4.1x)``."""
        value = self.at(q)
        if self.baseline is None:
            return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"
        ratio = value / self.baseline.at(q)
        return f"{value:,.0f} ({ratio:.1f}x)"


def table(rows: Sequence[Figures]) -> str:
    """The Markdown table of ``rows``: count, p50, p95, p99, max, target and whether met."""
    lines = ["| measure | n | p50 ms | p95 ms | p99 ms | max ms | target | met |",
             "|---|---:|---:|---:|---:|---:|---|---|"]
    for row in rows:
        verdict = {None: "", True: "met", False: "**missed**"}[row.met()]
        target = f"p99 <= {row.target_p99_ms:.0f} ms" if row.target_p99_ms else (
            "baseline" if row.baseline is None else "")
        lines.append(f"| {row.name} | {len(row.seconds)} | {row.cell(0.5)} | "
                     f"{row.cell(0.95)} | {row.cell(0.99)} | {row.cell(1)} | {target} | "
                     f"{verdict} |")
    return "\n".join(lines)
