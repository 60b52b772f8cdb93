"""``complaints serve``: the web app and HTTP API under uvicorn, refusing unsafe settings.

:func:`startup_problems` is the one check of the secrets a deployment runs with: the
command refuses to start on any of them, and the web app may call it too. It refuses a
missing, short or placeholder ``SESSION_SECRET`` (cookies signed with a guessable key can
be forged, so anyone could sign in as anyone), a placeholder ``OIDC_CLIENT_SECRET``, and
the dev sign-in (pick any member of staff, no password) on anything but loopback.
:func:`startup_warnings` names what is allowed but probably a mistake; the worker, which
sends the mail, logs :func:`mail_warnings` too.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import click

from complaints.settings import Settings

__all__ = ["MIN_SESSION_SECRET", "PLACEHOLDER_WORDS", "is_loopback", "is_placeholder",
           "mail_warnings", "register", "startup_problems", "startup_warnings"]

#: The shortest session secret accepted: 32 characters (``openssl rand -hex 32`` gives 64).
MIN_SESSION_SECRET = 32
#: Words that mark a value copied from an example rather than generated (any case).
PLACEHOLDER_WORDS = ("change-me", "changeme", "change_me", "placeholder", "example",
                     "secret", "password", "replace", "your-", "dummy")
#: Fewer distinct characters than this is a typed pattern, not a generated key.
_MIN_DISTINCT = 10
#: How to make a good secret, for every refusal that needs one.
_MAKE_ONE = "make one with `openssl rand -hex 32`"


def is_placeholder(value: str) -> bool:
    """Whether ``value`` looks like an example value rather than a generated secret."""
    lowered = value.strip().lower()
    return (not lowered or any(word in lowered for word in PLACEHOLDER_WORDS)
            or len(set(lowered)) < _MIN_DISTINCT)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address, IPv6 with or without brackets) is this machine only."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def startup_problems(settings: Settings) -> list[str]:
    """Why the web app must not start with ``settings``, one line each (empty: it may).

    Args:
        settings: The settings it would run with (``web_host`` as it will listen).

    Returns:
        One line per problem: what is wrong and how to fix it.

    """
    problems: list[str] = []
    secret = settings.session_secret
    if secret is None:
        if not settings.dev_sign_in:
            problems.append("SESSION_SECRET is not set: it signs the sign-in cookies; "
                            f"{_MAKE_ONE}")
    elif len(secret) < MIN_SESSION_SECRET:
        problems.append(f"SESSION_SECRET is {len(secret)} characters, fewer than "
                        f"{MIN_SESSION_SECRET}: a short key can be guessed; {_MAKE_ONE}")
    elif is_placeholder(secret):
        problems.append(f"SESSION_SECRET is a placeholder, not a generated key: {_MAKE_ONE}")
    client_secret = settings.oidc_client_secret
    if client_secret is not None and is_placeholder(client_secret):
        problems.append("OIDC_CLIENT_SECRET is a placeholder: set the secret your sign-in "
                        "provider issued for this app (Entra ID: Certificates & secrets)")
    if settings.oidc_issuer and not settings.oidc_client_id:
        problems.append("OIDC_ISSUER is set but OIDC_CLIENT_ID is not: set the client id "
                        "your sign-in provider issued for this app")
    if settings.dev_sign_in and not is_loopback(settings.web_host):
        problems.append(f"DEV_SIGN_IN is on while the app listens on {settings.web_host}: "
                        "the dev sign-in lets anyone pick any member of staff, so it serves "
                        "127.0.0.1 only; turn DEV_SIGN_IN off or listen on 127.0.0.1")
    return problems


def startup_warnings(settings: Settings) -> list[str]:
    """What is allowed but probably a mistake, one line each.

    A plain ``http://`` ``PUBLIC_URL`` on another machine's name is expected only behind a
    reverse proxy that terminates TLS and forwards to this app; staff's browsers must
    reach it over HTTPS, or session cookies and tokens cross the network in clear.
    """
    warnings: list[str] = []
    if settings.public_url:
        parts = urlsplit(settings.public_url)
        if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
            warnings.append(f"PUBLIC_URL {settings.public_url} is http:// on a non-loopback "
                            "host: serve it over HTTPS (TLS at a reverse proxy, which sends "
                            "X-Forwarded-Proto; set FORWARDED_ALLOW_IPS to its address)")
    warnings.extend(mail_warnings(settings))
    return warnings


def mail_warnings(settings: Settings) -> list[str]:
    """What is allowed about sending mail but probably a mistake, one line each.

    ``SMTP_STARTTLS`` defaults to off so that the local test and dev SMTP server (aiosmtpd
    on loopback, which offers no STARTTLS) works as it is; docker-compose turns it on. To
    any other host, letters (residents' names, addresses, complaints) and the SMTP
    password would cross the network in clear.
    """
    host = settings.smtp_host
    if host and not settings.smtp_starttls and not is_loopback(host):
        return [f"SMTP_HOST {host} is not this machine and SMTP_STARTTLS is off: letters and "
                "the SMTP password would cross the network unencrypted; set "
                "SMTP_STARTTLS=true (the server must offer STARTTLS)"]
    return []


def register(cli: click.Group) -> None:
    """Add ``complaints serve`` to the ``complaints`` group."""

    @cli.command("serve", short_help="Run the web app and the HTTP API.")
    @click.option("--host", default=None,
                  help="The address to listen on (default: WEB_HOST, 127.0.0.1).")
    @click.option("--port", type=click.IntRange(1, 65535), default=None,
                  help="The port to listen on (default: WEB_PORT, 8000).")
    def serve(host: str | None, port: int | None) -> None:
        """Run the staff web app and the HTTP API (/api/v1, /docs) with uvicorn.

        Refuses to start with a missing or placeholder SESSION_SECRET or
        OIDC_CLIENT_SECRET, or with DEV_SIGN_IN on a non-loopback address. Behind a
        reverse proxy that terminates TLS, set FORWARDED_ALLOW_IPS to the proxy's address
        so that its X-Forwarded-Proto and X-Forwarded-For are believed.
        """
        import os

        import uvicorn

        from complaints.files import private_umask
        from complaints.logs import configure_logging
        from complaints.web.app import create_web_app

        settings = Settings()
        update = {k: v for k, v in (("web_host", host), ("web_port", port)) if v is not None}
        settings = settings.model_copy(update=update)
        problems = startup_problems(settings)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise click.ClickException(f"refusing to start: {problems[0]}{more}")
        for warning in startup_warnings(settings):
            click.echo(f"warning: {warning}", err=True)
        configure_logging(json=settings.log_json, level=settings.log_level)
        level = settings.log_level.lower()
        level = level if level in uvicorn.config.LOG_LEVELS else "info"
        with private_umask():  # uploaded documents and printed letters: the user's alone
            app = create_web_app(settings)
            click.echo(f"serving on http://{settings.web_host}:{settings.web_port} "
                       "(API at /api/v1, its documentation at /docs; Ctrl-C stops)", err=True)
            # Forwarded headers are believed only from FORWARDED_ALLOW_IPS (uvicorn's
            # default, 127.0.0.1): anyone else could claim to be HTTPS or another address.
            uvicorn.run(app, host=settings.web_host, port=settings.web_port,
                        proxy_headers=True,
                        forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS"),
                        server_header=False, log_level=level,
                        log_config=None)  # uvicorn's lines through ours (JSON, one shape)
