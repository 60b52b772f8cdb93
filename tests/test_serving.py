"""``complaints serve``: the refusal of unsafe settings, and the app served for real."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from complaints.cli import cli
from complaints.serving import is_loopback, startup_problems, startup_warnings
from complaints.settings import Settings
from tests.test_cli_dev import clean_env, free_port

COMPLAINTS = Path(sys.executable).parent / "complaints"
GOOD_SECRET = "9f1c2b7e4d8a6035e1b9c7d2f4a80613b5e9d7c1a2f4086e3b1d9c5a7e2f4b60"


@pytest.fixture(autouse=True)
def no_inherited_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """None of the caller's settings leak into the ones these tests build."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def settings(**values: Any) -> Settings:
    """Settings from ``values`` only (no environment, no env file)."""
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_good_settings_have_no_problem() -> None:
    """A long random session secret and a real client secret start, on any address."""
    good = settings(session_secret=GOOD_SECRET, web_host="0.0.0.0",
                    oidc_issuer="https://login.microsoftonline.com/t/v2.0",
                    oidc_client_id="3f2a", oidc_client_secret="Qx8~vT2bL9mN4rP7sW1yZ5cF")
    assert startup_problems(good) == []


@pytest.mark.parametrize(("values", "needle"), [
    ({}, "SESSION_SECRET is not set"),
    ({"session_secret": "k3Y9pQ2x"}, "SESSION_SECRET is 8 characters, fewer than 32"),
    ({"session_secret": "change-me-change-me-change-me-change-me"}, "placeholder"),
    ({"session_secret": "please-replace-this-with-a-real-random-value"}, "placeholder"),
    ({"session_secret": "ab" * 20}, "placeholder"),
    ({"session_secret": GOOD_SECRET, "oidc_client_secret": "your-client-secret"},
     "OIDC_CLIENT_SECRET is a placeholder"),
    ({"session_secret": GOOD_SECRET, "oidc_issuer": "https://idp.example.org"},
     "OIDC_CLIENT_ID is not"),
    ({"dev_sign_in": True, "web_host": "0.0.0.0"}, "DEV_SIGN_IN is on while the app listens"),
], ids=["no-secret", "short", "change-me", "replace", "pattern", "client-placeholder",
        "no-client-id", "dev-sign-in-exposed"])
def test_unsafe_settings_are_refused(values: dict[str, Any], needle: str) -> None:
    """Each unsafe setting is named, in one line that says how to fix it."""
    problems = startup_problems(settings(**values))
    assert any(needle in p for p in problems), problems
    assert all("\n" not in p for p in problems)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"])
def test_dev_sign_in_is_allowed_on_loopback_without_a_secret(host: str) -> None:
    """`complaints dev`'s dev sign-in needs no session secret on a loopback address."""
    assert is_loopback(host)
    assert startup_problems(settings(dev_sign_in=True, web_host=host)) == []


@pytest.mark.parametrize(("url", "warned"), [
    ("http://complaints.landlord.org", True), ("https://complaints.landlord.org", False),
    ("http://127.0.0.1:8000", False), ("http://localhost:8000", False),
])
def test_plain_http_public_url_is_warned_about(url: str, warned: bool) -> None:
    """PUBLIC_URL on http:// for another machine is a warning (TLS belongs at the proxy)."""
    warnings = startup_warnings(settings(session_secret=GOOD_SECRET, public_url=url))
    assert bool(warnings) is warned
    assert all("HTTPS" in w for w in warnings)


def test_serve_refuses_a_placeholder_secret_in_one_line(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """`complaints serve` with SESSION_SECRET=change-me exits 1 before serving anything."""
    for name, value in clean_env(DATA_DIR=str(tmp_path / "data"),
                                 SESSION_SECRET="change-me").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COMPLAINTS_ENV_FILE", str(tmp_path / "absent.env"))
    monkeypatch.delenv("DEV_SIGN_IN", raising=False)
    result = CliRunner().invoke(cli, ["serve", "--port", str(free_port())])
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: refusing to start: SESSION_SECRET is 9 characters")
    assert not (tmp_path / "data").exists()  # refused before the database was touched


def test_serve_answers_health_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    """`complaints serve` serves /api/v1/health and /openapi.json, and Ctrl-C stops it."""
    port = free_port()
    env = clean_env(DATA_DIR=str(tmp_path / "data"), SESSION_SECRET=GOOD_SECRET,
                    COMPLAINTS_ENV_FILE=str(tmp_path / "absent.env"),
                    TEMPORAL_ADDRESS="127.0.0.1:9", LOG_JSON="true")
    process = subprocess.Popen([str(COMPLAINTS), "serve", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env, cwd=tmp_path, start_new_session=True)
    try:
        health = None
        deadline = time.monotonic() + 30
        while health is None and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[1][-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health",
                                            timeout=2) as answer:
                    health = (answer.status, answer.read())
            except OSError:
                time.sleep(0.2)
        assert health == (200, b'{"status":"ok"}')
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json",
                                    timeout=5) as answer:
            assert b"/api/v1/complaints" in answer.read()
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(20) == 0
        assert "Traceback" not in process.communicate()[1]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
