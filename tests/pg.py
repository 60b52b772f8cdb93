"""A real, throwaway PostgreSQL server for tests: the ``postgres_url`` fixture.

The server is Debian's PostgreSQL (``scripts/ensure_postgres.sh`` installs it; it is not
mocked). ``postgres_url`` starts one server per test session: a fresh cluster in a
temporary folder owned by the ``postgres`` user (``initdb`` refuses to run as root),
listening on 127.0.0.1 on a free port with trust authentication, durability switched off
for speed. It yields a SQLAlchemy URL to a new database and stops the server (``pg_ctl
stop -m fast``) and deletes the folder at the end.

Use it from a test module with ``from tests.pg import postgres_url  # noqa: F401`` (pytest
finds fixtures among a module's names). ``pg_stop()`` and ``pg_start()`` stop and restart
the session's server for outage tests (the data survives); ``create_database(name)`` adds
a database to it for tests that need one of their own. When the binaries are missing
the fixture fails (it never skips) with the command that installs them.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = ["PostgresServer", "create_database", "find_bin_dir", "pg_start", "pg_stop",
           "postgres_url", "running_server"]

#: What to run when the server binaries are missing.
INSTALL_HINT = "run `bash scripts/ensure_postgres.sh` (installs Debian's postgresql)"
#: The database the fixture creates.
DATABASE = "complaints_test"


def find_bin_dir() -> Path | None:
    """Return the newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb``.

    Falls back to the folder of an ``initdb`` on ``PATH``; None when there is none.
    """

    def version(path: str) -> tuple[int, ...]:
        match = re.search(r"postgresql/([\d.]+)/bin", path)
        return tuple(int(p) for p in match.group(1).split(".")) if match else ()

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).resolve().parent if on_path else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """One throwaway PostgreSQL cluster: ``init()``, ``start()``, ``stop()``, ``remove()``.

    Attributes:
        bin_dir: The folder of ``initdb``, ``pg_ctl`` and ``postgres``.
        data_dir: The cluster's folder (also the Unix socket folder).
        port: The TCP port on 127.0.0.1.
    """

    bin_dir: Path
    data_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pgtest-")))
    port: int = field(default_factory=_free_port)

    @property
    def _as_root(self) -> bool:
        return hasattr(os, "geteuid") and os.geteuid() == 0

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              check=False, cwd="/")

    def _check(self, result: subprocess.CompletedProcess[str], what: str) -> None:
        if result.returncode != 0:
            log = self.data_dir / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"PostgreSQL {what} failed ({result.returncode}): "
                               f"{result.stdout}{result.stderr}{tail}")

    def init(self) -> None:
        """Create the cluster (trust authentication, UTF-8)."""
        if self._as_root:
            shutil.chown(self.data_dir, user="postgres", group="postgres")
        self.data_dir.chmod(0o700)
        self._check(self._run("initdb", "-D", str(self.data_dir), "-A", "trust", "-U",
                              "postgres", "-E", "UTF8", "--locale=C.UTF-8"), "initdb")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._check(self._run("pg_ctl", "-D", str(self.data_dir), "-o", options, "-l",
                              str(self.data_dir / "server.log"), "-w", "-t", "60", "start"),
                    "start")

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended)."""
        self._check(self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w",
                              "stop"), "stop")

    def running(self) -> bool:
        """Whether the server is up."""
        return self._run("pg_ctl", "-D", str(self.data_dir), "status").returncode == 0

    def remove(self) -> None:
        """Delete the cluster's folder."""
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def create_database(self, name: str) -> str:
        """Create database ``name`` and return its SQLAlchemy URL (psycopg 3)."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def url(self, name: str = DATABASE) -> str:
        """The SQLAlchemy URL of database ``name``."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"


@contextlib.contextmanager
def running_server(database: str = DATABASE) -> Iterator[tuple[PostgresServer, str]]:
    """Run a throwaway server for the duration of a ``with`` block.

    Yields:
        The server and the URL of a new database ``database``.

    Raises:
        RuntimeError: If the server binaries are missing or the server fails to start.
    """
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise RuntimeError(f"PostgreSQL server binaries not found: {INSTALL_HINT}")
    server = PostgresServer(bin_dir)
    try:
        server.init()
        server.start()
        yield server, server.create_database(database)
    finally:
        with contextlib.suppress(RuntimeError, OSError, subprocess.SubprocessError):
            if server.running():
                server.stop()
        server.remove()


_SESSION: list[PostgresServer] = []


def _current() -> PostgresServer:
    if not _SESSION:
        raise RuntimeError("no PostgreSQL test server: use the postgres_url fixture first")
    return _SESSION[-1]


def create_database(name: str) -> str:
    """Create another database on the session's server (after ``postgres_url``); its URL."""
    return _current().create_database(name)


def pg_stop() -> None:
    """Stop the session's PostgreSQL server (an outage); ``pg_start()`` brings it back."""
    _current().stop()


def pg_start() -> None:
    """Start the session's PostgreSQL server again after ``pg_stop()``."""
    _current().start()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of a new database on a throwaway PostgreSQL server (one per session)."""
    if find_bin_dir() is None:
        pytest.fail(f"PostgreSQL server binaries not found (no "
                    f"/usr/lib/postgresql/*/bin/initdb): {INSTALL_HINT}", pytrace=False)
    try:
        context = running_server()
        server, url = context.__enter__()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    _SESSION.append(server)
    try:
        yield url
    finally:
        _SESSION.remove(server)
        context.__exit__(None, None, None)
