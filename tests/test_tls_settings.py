"""Transport security settings: mTLS to Temporal, and STARTTLS to the mail server.

Temporal's settings are a CA, a server name and a client certificate with its key. A
certificate without its key (or the reverse) is refused when the settings load, naming
both settings: the CLI says so in one line, the worker in one log line and exit 2.
``worker.connect`` turns the settings into temporalio's ``TLSConfig``; the certificates
``deploy/make-tls.sh`` makes are used for real through a TLS proxy that requires a client
certificate, in front of the tests' Temporal dev server.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import ValidationError
from temporalio.client import Client, TLSConfig
from temporalio.testing import WorkflowEnvironment

import worker
from complaints.cli import main as cli_main
from complaints.serving import mail_warnings, startup_warnings
from complaints.settings import Settings
from tests.test_cli_dev import clean_env

ROOT = Path(__file__).resolve().parents[1]
MAKE_TLS = ROOT / "deploy" / "make-tls.sh"
BOTH = ("TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY")


@pytest.fixture(autouse=True)
def no_inherited_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """None of the caller's settings (or env file) leak into the ones these tests build."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("COMPLAINTS_ENV_FILE", str(tmp_path / "absent.env"))


def settings(tmp_path: Path, **values: Any) -> Settings:
    """Settings from ``values`` only, with a data folder of the test's own."""
    return Settings(_env_file=None, data_dir=tmp_path / "data", **values)  # type: ignore[call-arg]


# --- half a client certificate is refused -----------------------------------------------


@pytest.mark.parametrize("given", BOTH)
def test_half_a_client_certificate_is_refused(tmp_path: Path, given: str) -> None:
    """Only the certificate, or only the key, fails validation naming both settings."""
    secret_path = tmp_path / "very-private-name.pem"
    with pytest.raises(ValidationError) as refused:
        settings(tmp_path, **{given.lower(): secret_path})
    [error] = refused.value.errors()
    assert error["loc"] == ("temporal_tls_key",)
    assert all(name in error["msg"] for name in BOTH)
    assert error["msg"].startswith(f"{given} is set but ")
    assert "very-private-name" not in error["msg"]


def test_certificate_and_key_together_are_accepted(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Both set is fine, and the CA, certificate and key paths are made absolute."""
    monkeypatch.chdir(tmp_path)
    loaded = settings(tmp_path, temporal_tls_ca="tls/ca.pem", temporal_tls_cert="tls/cert.pem",
                      temporal_tls_key="tls/key.pem", temporal_tls_server_name="temporal")
    assert loaded.temporal_tls_ca == tmp_path / "tls" / "ca.pem"
    assert loaded.temporal_tls_cert == tmp_path / "tls" / "cert.pem"
    assert loaded.temporal_tls_key == tmp_path / "tls" / "key.pem"
    assert loaded.temporal_tls_server_name == "temporal"


def test_the_cli_says_it_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """`complaints` with only TEMPORAL_TLS_KEY prints one Error line naming both, exits 1."""
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TEMPORAL_TLS_KEY", str(tmp_path / "key.pem"))
    monkeypatch.delenv("COMPLAINTS_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["complaints", "report", "--year", "2025/26"])
    with pytest.raises(SystemExit) as exited:
        cli_main()
    assert exited.value.code == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: invalid settings: TEMPORAL_TLS_KEY: ")
    assert all(name in lines[0] for name in BOTH) and "Traceback" not in lines[0]


def test_serve_refuses_before_serving(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`complaints serve` with only TEMPORAL_TLS_CERT stops before touching the data folder."""
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TEMPORAL_TLS_CERT", str(tmp_path / "cert.pem"))
    from complaints.cli import cli

    result = CliRunner().invoke(cli, ["serve", "--port", "1"])
    assert result.exit_code != 0
    assert isinstance(result.exception, ValidationError)  # main() turns it into one line
    assert not (tmp_path / "data").exists()


def test_the_worker_exits_2_with_one_line(tmp_path: Path) -> None:
    """`python worker.py` with only TEMPORAL_TLS_CERT logs one refusal naming both, exit 2."""
    env = clean_env(COMPLAINTS_ENV_FILE=str(tmp_path / "absent.env"),
                    DATA_DIR=str(tmp_path / "data"), TEMPORAL_TLS_CERT=str(tmp_path / "c.pem"))
    done = subprocess.run([sys.executable, str(ROOT / "worker.py")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == worker.SETTINGS_PROBLEM_EXIT == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "settings_refused" in lines[0] and all(name in lines[0] for name in BOTH)
    assert not (tmp_path / "data").exists()


# --- connect builds the TLSConfig --------------------------------------------------------


@pytest.fixture
def connect_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record what ``Client.connect`` is given, instead of connecting."""
    calls: list[dict[str, Any]] = []

    async def fake_connect(target_host: str, **kwargs: Any) -> str:
        calls.append({"target_host": target_host, **kwargs})
        return "client"

    monkeypatch.setattr(Client, "connect", staticmethod(fake_connect))
    return calls


def _tls_files(tmp_path: Path) -> dict[str, Path]:
    files = {}
    for name in ("ca", "cert", "key"):
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_bytes(f"-- {name} bytes --".encode())
    return files


def test_connect_passes_ca_server_name_and_client_certificate(
        tmp_path: Path, connect_calls: list[dict[str, Any]]) -> None:
    """`connect` builds TLSConfig from the four settings (only Client.connect is mocked)."""
    files = _tls_files(tmp_path)
    loaded = settings(tmp_path, temporal_address="temporal:7233", temporal_tls_ca=files["ca"],
                      temporal_tls_server_name="temporal", temporal_tls_cert=files["cert"],
                      temporal_tls_key=files["key"])
    assert asyncio.run(worker.connect(loaded)) == "client"
    [call] = connect_calls
    assert call["target_host"] == "temporal:7233"
    tls = call["tls"]
    assert isinstance(tls, TLSConfig)
    assert tls.server_root_ca_cert == b"-- ca bytes --"
    assert tls.domain == "temporal"
    assert tls.client_cert == b"-- cert bytes --"
    assert tls.client_private_key == b"-- key bytes --"
    assert call["data_converter"].payload_codec is not None  # still the encrypting converter


def test_connect_with_a_ca_alone_uses_tls_without_a_client_certificate(
        tmp_path: Path, connect_calls: list[dict[str, Any]]) -> None:
    """TEMPORAL_TLS_CA alone turns TLS on, checking against it, with no client certificate."""
    files = _tls_files(tmp_path)
    asyncio.run(worker.connect(settings(tmp_path, temporal_tls_ca=files["ca"])))
    tls = connect_calls[0]["tls"]
    assert isinstance(tls, TLSConfig)
    assert tls.server_root_ca_cert == b"-- ca bytes --"
    assert (tls.domain, tls.client_cert, tls.client_private_key) == (None, None, None)


@pytest.mark.parametrize("flag", [False, True])
def test_connect_without_tls_files_follows_temporal_tls(
        tmp_path: Path, connect_calls: list[dict[str, Any]], flag: bool) -> None:
    """With no CA, name or certificate, TLS is TEMPORAL_TLS as before (system CAs when on)."""
    asyncio.run(worker.connect(settings(tmp_path, temporal_tls=flag)))
    assert connect_calls[0]["tls"] is flag


# --- SMTP without STARTTLS is warned about ----------------------------------------------


@pytest.mark.parametrize(("host", "starttls", "warned"), [
    ("smtp.landlord.org", False, True), ("smtp.landlord.org", True, False),
    ("127.0.0.1", False, False), ("localhost", False, False), (None, False, False),
])
def test_plain_smtp_to_another_host_is_warned_about(tmp_path: Path, host: str | None,
                                                    starttls: bool, warned: bool) -> None:
    """SMTP to another machine without STARTTLS is a warning for serve and the worker."""
    loaded = settings(tmp_path, smtp_host=host, smtp_starttls=starttls)
    warnings = mail_warnings(loaded)
    assert bool(warnings) is warned
    assert all("SMTP_STARTTLS=true" in w for w in warnings)
    assert all(w in startup_warnings(loaded) for w in warnings)


def test_smtp_starttls_still_defaults_off_for_the_local_server(tmp_path: Path) -> None:
    """Settings keep STARTTLS off by default (aiosmtpd on loopback); compose turns it on."""
    assert settings(tmp_path).smtp_starttls is False


# --- the certificates deploy/make-tls.sh makes, used for real ---------------------------


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CA and certificates, made by deploy/make-tls.sh in a folder of the test's own."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    out = tmp_path_factory.mktemp("deploy") / "tls"
    subprocess.run(["sh", str(MAKE_TLS), str(out)], check=True, capture_output=True,
                   timeout=60)
    return out


def test_make_tls_keeps_keys_private_and_the_ca_in_place(tls_dir: Path) -> None:
    """Keys are 0600 in 0700 folders, and a second run refuses to replace the CA."""
    for party in ("temporal", "admin", "ui", "complaints", "operator"):
        assert {p.name for p in (tls_dir / party).iterdir()} == {"ca.pem", "cert.pem",
                                                                "key.pem"}
        assert (tls_dir / party).stat().st_mode & 0o777 == 0o700
        assert (tls_dir / party / "key.pem").stat().st_mode & 0o777 == 0o600
    before = (tls_dir / "ca" / "ca.pem").read_bytes()
    again = subprocess.run(["sh", str(MAKE_TLS), str(tls_dir)], capture_output=True, text=True,
                           timeout=60)
    assert again.returncode != 0 and "already holds a CA" in again.stderr
    assert (tls_dir / "ca" / "ca.pem").read_bytes() == before


@contextlib.asynccontextmanager
async def mtls_proxy(tls_dir: Path, upstream: str) -> AsyncIterator[int]:
    """A TLS front for ``upstream`` (host:port) that requires a client certificate; its port.

    It presents the server certificate and requires one from the CA, as Temporal's frontend
    does in docker-compose, then passes bytes both ways to the dev server.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH,
                                         cafile=tls_dir / "temporal" / "ca.pem")
    context.load_cert_chain(tls_dir / "temporal" / "cert.pem", tls_dir / "temporal" / "key.pem")
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])
    host, _, port = upstream.rpartition(":")
    pipes: set[asyncio.Task[None]] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        for task in (pipe(reader, up_writer), pipe(up_reader, writer)):
            pipes.add(asyncio.ensure_future(task))

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in pipes:
            task.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)


@pytest.fixture
def party(tls_dir: Path) -> Iterator[Any]:
    """Settings values for one party's folder of certificates."""
    def values(name: str, **more: Any) -> dict[str, Any]:
        folder = tls_dir / name
        return {"temporal_tls_ca": folder / "ca.pem", "temporal_tls_server_name": "temporal",
                "temporal_tls_cert": folder / "cert.pem", "temporal_tls_key": folder / "key.pem",
                **more}
    yield values


async def test_connect_completes_mtls_with_the_made_certificates(
        env: WorkflowEnvironment, tls_dir: Path, tmp_path: Path, party: Any) -> None:
    """The worker's certificate passes a front requiring one; none, or a wrong name, fails."""
    upstream = env.client.service_client.config.target_host
    async with mtls_proxy(tls_dir, upstream) as port:
        address = f"127.0.0.1:{port}"
        client = await worker.connect(settings(tmp_path, **party(
            "complaints", temporal_address=address)))
        assert await client.service_client.check_health()
        without_certificate = party("complaints", temporal_address=address,
                                    temporal_tls_cert=None, temporal_tls_key=None)
        with pytest.raises(RuntimeError):
            await worker.connect(settings(tmp_path, **without_certificate))
        with pytest.raises(RuntimeError, match="(?i)certificate"):
            await worker.connect(settings(tmp_path, **party(
                "complaints", temporal_address=address, temporal_tls_server_name="elsewhere")))
