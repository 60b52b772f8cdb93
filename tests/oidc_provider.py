"""A real OpenID Connect provider on loopback for the tests, and a scripted staff sign-in.

``OidcProvider`` runs ``node tests/oidc/provider.mjs`` (panva's npm ``oidc-provider``,
installed from ``tests/oidc/package-lock.json`` by ``scripts/ensure_oidc_provider.sh``) on
127.0.0.1 and a free port, with the clients it is given. Nothing about the protocol is
faked: ``sign_in`` runs the authorisation code flow with PKCE (S256) over HTTP through the
provider's own development sign-in and consent pages and exchanges the code at its token
endpoint.

What the provider issues: any login name (any password) signs in as the account whose
``sub`` is that name, ``email`` ``<login>@staff.example.test`` (verified) and ``name`` the
login. Access tokens are RS256 JWTs for the API (``aud`` = ``audience``, default
``complaints-api``) that verify against ``jwks_uri``; they carry ``iss``, ``sub``, ``aud``,
``exp``, ``iat``, ``jti``, ``client_id``, ``scope``, ``email`` and ``name``. The ID token
carries ``email``, ``email_verified`` and ``name`` too. Every authorisation is for the API
by default (the provider's default resource indicator is ``resource``), so clients need
not send ``resource``; a consequence is that the userinfo endpoint refuses these access
tokens (their audience is the API), so read who signed in from the ID token.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx

__all__ = ["DEFAULT_AUDIENCE", "OidcError", "OidcProvider", "free_port", "pkce_pair",
           "sign_in"]

ROOT = Path(__file__).resolve().parent.parent
OIDC_DIR = ROOT / "tests" / "oidc"
PROVIDER_SCRIPT = OIDC_DIR / "provider.mjs"
INSTALL_HINT = "run `bash scripts/ensure_oidc_provider.sh`"
DEFAULT_AUDIENCE = "complaints-api"
#: How long the provider may take to print READY.
START_TIMEOUT = 30.0


class OidcError(RuntimeError):
    """The provider refused a step of the flow (``error`` is the OAuth error code)."""

    def __init__(self, message: str, *, error: str | None = None, status: int | None = None):
        super().__init__(message)
        self.error = error
        self.status = status


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pkce_pair() -> tuple[str, str]:
    """A fresh PKCE ``(code_verifier, code_challenge)`` pair for the S256 method."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OidcProvider:
    """The npm ``oidc-provider`` running on loopback; ``start()``/``stop()`` or ``with``.

    Attributes:
        issuer: The issuer identifier, ``http://127.0.0.1:<port>``.
        port: The port it listens on.
        audience: The ``aud`` of the access tokens it issues.
        resource: The resource indicator standing for the API (the default of every
            authorisation request).
        clients: The client metadata it was started with.
        discovery: Its ``/.well-known/openid-configuration`` document (after ``start()``).
        jwks_uri: Where its signing keys are published (after ``start()``).
    """

    def __init__(self, clients: list[dict[str, Any]], *, audience: str = DEFAULT_AUDIENCE,
                 port: int | None = None):
        self.clients = [dict(client) for client in clients]
        self.audience = audience
        self.resource = audience if urlsplit(audience).scheme else f"urn:{audience}"
        self._fixed_port = port
        self.port = port or 0
        self.issuer = ""
        self.discovery: dict[str, Any] = {}
        self.jwks_uri = ""
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=40)
        self._ready = threading.Event()
        self._threads: list[threading.Thread] = []

    def client(self, client_id: str) -> dict[str, Any]:
        """The metadata of one of the provider's clients."""
        for client in self.clients:
            if client.get("client_id") == client_id:
                return client
        raise KeyError(client_id)

    def start(self) -> OidcProvider:
        """Start the provider and wait until it answers discovery; returns itself."""
        if self._proc is not None:
            return self
        if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
            raise RuntimeError(f"the test OIDC provider is not installed: {INSTALL_HINT}")
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node not found: install Node.js (20 or later) and npm, "
                               f"then {INSTALL_HINT}")
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            try:
                self._launch(node, self._fixed_port or free_port())
                break
            except RuntimeError:
                if attempt + 1 == attempts or "EADDRINUSE" not in self._stderr_tail():
                    raise
        try:
            response = httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=10)
            response.raise_for_status()
            self.discovery = response.json()
            if self.discovery.get("issuer") != self.issuer:
                raise RuntimeError(f"discovery names issuer {self.discovery.get('issuer')!r}, "
                                   f"expected {self.issuer!r}")
            self.jwks_uri = self.discovery["jwks_uri"]
        except Exception:
            self.stop()
            raise
        return self

    def _launch(self, node: str, port: int) -> None:
        self.port = port
        self.issuer = f"http://127.0.0.1:{port}"
        self._ready.clear()
        self._stderr.clear()
        env = {
            **os.environ,
            "OIDC_PORT": str(port),
            "OIDC_ISSUER": self.issuer,
            "OIDC_CLIENTS": json.dumps(self.clients),
            "OIDC_API_AUDIENCE": self.audience,
            "OIDC_API_RESOURCE": self.resource,
            "OIDC_WATCH_STDIN": "1",
            "NO_COLOR": "1",
        }
        env.pop("DEBUG", None)
        proc = subprocess.Popen([node, str(PROVIDER_SCRIPT)], cwd=OIDC_DIR, env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self._proc = proc
        self._threads = [
            threading.Thread(target=self._read_stdout, args=(proc,), daemon=True),
            threading.Thread(target=self._read_stderr, args=(proc,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._ready.wait(0.05):
            if proc.poll() is not None or time.monotonic() > deadline:
                why = (f"exited with code {proc.returncode}" if proc.poll() is not None
                       else f"did not print READY within {START_TIMEOUT:.0f}s")
                self.stop()
                raise RuntimeError(f"the test OIDC provider {why}: {self._stderr_tail()}")

    def _read_stdout(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:  # drained to the end so the provider never blocks
            if line.startswith("READY "):
                self._ready.set()

    def _read_stderr(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.strip():
                self._stderr.append(line.rstrip())

    def _stderr_tail(self, lines: int = 5) -> str:
        for thread in self._threads:
            thread.join(timeout=1)
        tail = list(self._stderr)[-lines:]
        return " | ".join(tail) if tail else "(no output on stderr)"

    def stop(self) -> None:
        """Stop the provider (SIGTERM, then SIGKILL after 5 s) and reap it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class _Forms(HTMLParser):
    """The forms of an HTML page: each as its action, method and named input values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append({"action": attributes.get("action", ""),
                               "method": attributes.get("method", "get").lower(),
                               "fields": {}, "types": {}})
        elif tag in ("input", "button") and self.forms and attributes.get("name"):
            name = attributes["name"]
            self.forms[-1]["fields"][name] = attributes.get("value", "")
            self.forms[-1]["types"][name] = attributes.get("type", "text").lower()


def _oauth_error(where: str, response: httpx.Response) -> OidcError:
    try:
        body = response.json()
    except ValueError:
        body = {"error_description": response.text[:300]}
    error = body.get("error")
    return OidcError(f"{where} refused ({response.status_code}): {error} "
                     f"{body.get('error_description', '')}".strip(),
                     error=error, status=response.status_code)


def sign_in(provider: OidcProvider, *, client_id: str, client_secret: str, redirect_uri: str,
            login: str, scope: str = "openid profile email") -> dict[str, Any]:
    """Sign in as ``login`` with the authorisation code flow and PKCE; the token response.

    Drives the provider's development interactions as a browser would: GET the
    authorisation endpoint (S256 code challenge, state, nonce), follow its redirects to the
    sign-in page, post the form there with ``login`` and a password, follow to the consent
    page and post it, then stop at the redirect to ``redirect_uri`` (never fetched), check
    ``state`` and ``iss`` and exchange the code with the verifier at the token endpoint,
    authenticating the client the way it is registered (basic or post).

    Returns:
        The token endpoint's JSON: ``access_token`` (a JWT for the API), ``id_token``,
        ``token_type``, ``expires_in``, ``scope``.

    Raises:
        OidcError: When the provider refuses the authorisation or the code exchange.
    """
    discovery = provider.discovery
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
              "scope": scope, "state": state, "nonce": nonce,
              "code_challenge": challenge, "code_challenge_method": "S256"}
    url = f"{discovery['authorization_endpoint']}?{urlencode(params)}"
    callback: str | None = None
    with httpx.Client(follow_redirects=False, timeout=10) as browser:
        response = browser.get(url)
        for _ in range(20):
            if response.is_redirect:
                location = urljoin(str(response.url), response.headers["location"])
                if location.split("?")[0] == redirect_uri:
                    callback = location
                    break
                if not location.startswith(provider.issuer + "/"):
                    raise OidcError(f"provider redirected off to {location}")
                response = browser.get(location)
            elif response.status_code == 200 and "<form" in response.text:
                response = _submit_form(browser, response, login)
            else:
                raise OidcError(f"unexpected answer from the provider at {response.url} "
                                f"({response.status_code}): {response.text[:300]}",
                                status=response.status_code)
    if callback is None:
        raise OidcError("the sign-in did not come back to the redirect URI")
    answer = {key: values[0] for key, values in parse_qs(urlsplit(callback).query).items()}
    if "error" in answer:
        raise OidcError(f"authorisation refused: {answer['error']} "
                        f"{answer.get('error_description', '')}".strip(), error=answer["error"])
    if answer.get("state") != state:
        raise OidcError("the state in the callback does not match the request")
    if "iss" in answer and answer["iss"] != provider.issuer:
        raise OidcError(f"the callback names issuer {answer['iss']!r}")
    form = {"grant_type": "authorization_code", "code": answer["code"],
            "redirect_uri": redirect_uri, "code_verifier": verifier}
    auth: httpx.BasicAuth | None = None
    method = "client_secret_basic"
    try:
        method = provider.client(client_id).get("token_endpoint_auth_method", method)
    except KeyError:
        pass
    if method == "client_secret_post":
        form.update(client_id=client_id, client_secret=client_secret)
    else:
        auth = httpx.BasicAuth(client_id, client_secret)
    response = httpx.post(discovery["token_endpoint"], data=form, auth=auth, timeout=10)
    if response.status_code != 200:
        raise _oauth_error("token endpoint", response)
    tokens: dict[str, Any] = response.json()
    return tokens


def _submit_form(browser: httpx.Client, page: httpx.Response, login: str) -> httpx.Response:
    """Fill in and post the (only) form of a dev interaction page: sign-in or consent."""
    parser = _Forms()
    parser.feed(page.text)
    forms = [form for form in parser.forms if form["method"] == "post"]
    if not forms:
        raise OidcError(f"no form to submit at {page.url}")
    form = forms[0]
    fields = dict(form["fields"])
    for name, kind in form["types"].items():
        if name == "login":
            fields[name] = login
        elif kind == "password":
            fields[name] = "any-password"
    action = urljoin(str(page.url), form["action"])
    return browser.post(action, data=fields)
