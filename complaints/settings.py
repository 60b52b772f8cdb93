"""Settings, read from the environment (prefix-free names, as operators expect).

Read by ``worker.py``, the CLI and activities only: never imported by ``workflows/``.

Every path is absolute once the settings are loaded, so the CLI, the worker, ``complaints
dev`` and any other program agree on one data folder, one database and one outbox for the
deployment whatever folder each was started from (a complaint reference allocated from a
database relative to the working directory is how two complaints came to share one case):

- ``DATA_DIR`` defaults to ``$XDG_DATA_HOME/complaints-engine``, else
  ``~/.local/share/complaints-engine``; a relative ``DATA_DIR`` (and ``OUTBOX_DIR``, the TLS
  files, a relative SQLite ``DATABASE_URL``) is resolved once, when the settings load:
  against the working directory when it comes from the environment, against the env
  file's folder when it comes from the env file.
- The env file is ``COMPLAINTS_ENV_FILE`` when set, else ``.env`` in the source checkout
  (the folder holding ``pyproject.toml`` and ``docker-compose.yml``), never ``./.env``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

#: The application's folder name under the XDG data home.
APP_DIR_NAME = "complaints-engine"
#: Names the env file chosen by :func:`deployment_env_file` (replaced on every load).
_DEPLOYMENT_ENV_FILE = "<complaints deployment env file>"
#: Settings holding a filesystem path, made absolute on load.
_PATH_FIELDS = ("data_dir", "outbox_dir", "temporal_tls_ca", "temporal_tls_cert",
                "temporal_tls_key", "payload_keys_file")


def default_data_dir() -> Path:
    """The data folder when ``DATA_DIR`` is not set: per user, never the working directory.

    ``$XDG_DATA_HOME/complaints-engine`` when ``XDG_DATA_HOME`` is an absolute path (the
    XDG Base Directory rule: a relative one is ignored), else
    ``~/.local/share/complaints-engine``.
    """
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / APP_DIR_NAME


def deployment_env_file() -> Path | None:
    """The env file settings are read from, or None when there is none to read.

    ``COMPLAINTS_ENV_FILE`` (a relative value is taken from the working directory, once),
    else ``.env`` beside ``pyproject.toml`` when this package runs from a source checkout
    (``scripts/dev.sh`` and docker compose use that folder); an installed package has no
    default env file.
    """
    named = os.environ.get("COMPLAINTS_ENV_FILE", "")
    if named:
        return Path(named).expanduser().absolute()
    checkout = Path(__file__).resolve().parent.parent
    return checkout / ".env" if (checkout / "pyproject.toml").is_file() else None


def absolute_path(path: Path, base: Path | None = None) -> Path:
    """``path`` with ``~`` expanded, made absolute against ``base`` (default: the cwd)."""
    path = path.expanduser()
    if path.is_absolute():
        return path
    return (base / path) if base is not None else path.absolute()


def absolute_sqlite_url(url: str, base: Path | None = None) -> str:
    """A SQLite URL whose relative database file is made absolute; other URLs unchanged."""
    if not url.startswith("sqlite"):
        return url  # Only SQLite names a local file; leave others (and passwords) untouched.
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    database = parsed.database
    if (not database or database == ":memory:" or database.startswith("file:")
            or parsed.query.get("mode") == "memory"):
        return url
    resolved = absolute_path(Path(database), base)
    if str(resolved) == database:
        return url
    return parsed.set(database=str(resolved)).render_as_string(hide_password=False)


class _EnvFileRelative(PydanticBaseSettingsSource):
    """The env file's values, with relative paths taken from the env file's folder."""

    def __init__(self, inner: DotEnvSettingsSource) -> None:
        super().__init__(inner.settings_cls)
        self.inner = inner

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        """Unused: :meth:`__call__` delegates to the wrapped source."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        """The wrapped source's values, relative paths resolved against its file's folder."""
        data = self.inner()
        env_file = self.inner.env_file
        if not isinstance(env_file, str | os.PathLike):
            return data  # Several files (only if a caller passes them): the cwd rule applies.
        base = Path(env_file).expanduser().absolute().parent
        for name in _PATH_FIELDS:
            if isinstance(data.get(name), str | Path) and str(data[name]):
                data[name] = absolute_path(Path(data[name]), base)
        if isinstance(data.get("database_url"), str):
            data["database_url"] = absolute_sqlite_url(data["database_url"], base)
        return data


class Settings(BaseSettings):
    """Everything the worker and the staff CLI need to know about their surroundings."""

    model_config = SettingsConfigDict(env_file=_DEPLOYMENT_ENV_FILE, env_file_encoding="utf-8",
                                      extra="ignore", env_ignore_empty=True)

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "complaints"
    #: TLS to Temporal's frontend. Any of the four below turns it on (TEMPORAL_TLS=true
    #: alone: TLS with the system's CAs). The server's CA (None: the system's), the name its
    #: certificate is checked against (None: the host of TEMPORAL_ADDRESS), and the client
    #: certificate with its key for mTLS: both or neither (see ``_client_cert_pair``).
    temporal_tls: bool = False
    temporal_tls_ca: Path | None = None
    temporal_tls_server_name: str | None = None
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_api_key: str | None = None

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str = Field(default="", description="SQLAlchemy URL; default SQLite in data_dir")
    #: How often a running worker checks that its database is still there (seconds).
    database_check_seconds: float = Field(default=10.0, gt=0)
    #: Helper processes the worker records cases in (``activities.recording_processes``);
    #: 0 records in the worker's own threads (a one-core machine).
    recording_processes: int = Field(default=2, ge=0, le=32)
    outbox_dir: Path | None = None

    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_sender: str = "complaints@landlord.example"
    staff_email_domain: str = "landlord.example"
    webhook_url: str | None = None
    #: Signed webhooks for integrations (case lodged, deadline breached, response issued):
    #: where they are POSTed, and the Standard Webhooks secret that signs them.
    integration_webhook_url: str | None = None
    integration_webhook_secret: str | None = None

    ui_port: int = 8233
    #: Payload encryption (complaints.codec): ``id:base64key`` pairs, the last encrypts;
    #: or a key file of ``id base64key`` lines. Neither: ``payload-keys`` in data_dir.
    payload_keys: SecretStr | None = None
    payload_keys_file: Path | None = None
    #: How long a resolved service request that never became a complaint is kept (years):
    #: the retention job then erases its resident's details (complaints follow their policy).
    service_request_retention_years: int = Field(default=6, ge=1, le=50)
    #: The Temporal UI's origins (comma separated) allowed to call the codec at /codec;
    #: None: the dev UI on this machine (http://localhost:UI_PORT, http://127.0.0.1:UI_PORT).
    codec_cors_origins: str | None = None

    # -- the web app and HTTP API (complaints.api, complaints.web) -------------------------
    web_host: str = "127.0.0.1"
    web_port: int = 8000
    #: The app's public URL (for sign-in redirects), e.g. https://complaints.landlord.org.
    public_url: str | None = None
    #: OpenID Connect: the issuer URL (Entra ID: https://login.microsoftonline.com/TENANT/v2.0),
    #: this app's client id and secret, and the audience of access tokens for the API.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_audience: str | None = None
    #: The claim that names a person (staff directory ``subject``): ``sub``; Entra ID ``oid``.
    oidc_subject_claim: str = "sub"
    #: Signs the web app's session cookies; required unless dev sign-in is on.
    session_secret: str | None = None
    #: A local sign-in that picks a seeded member of staff, for ``complaints dev`` only.
    dev_sign_in: bool = False
    #: A landlord's permission matrix (domain/permissions.toml's shape); None: the defaults.
    permissions_file: Path | None = None
    #: Where the CLI's remote mode reaches the HTTP API, and the bearer token it sends.
    api_url: str | None = None
    api_token: str | None = None
    log_json: bool | None = None
    log_level: str = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The usual sources; the env file is the deployment's, with paths relative to it."""
        if isinstance(dotenv_settings, DotEnvSettingsSource):
            if dotenv_settings.env_file == _DEPLOYMENT_ENV_FILE:
                # Chosen at each load (not at import) so COMPLAINTS_ENV_FILE set later counts;
                # an explicit ``_env_file=`` (tests pass None) is left alone.
                dotenv_settings.env_file = deployment_env_file()
                dotenv_settings.env_vars = dotenv_settings._load_env_vars()
            dotenv_settings = _EnvFileRelative(dotenv_settings)
        return init_settings, env_settings, dotenv_settings, file_secret_settings

    @field_validator("temporal_tls_key")
    @classmethod
    def _client_cert_pair(cls, key: Path | None, info: ValidationInfo) -> Path | None:
        """Refuse a client certificate without its key, or a key without its certificate.

        Either alone used to be dropped in silence, so the worker connected without the
        client certificate a deployment thought it presented. Runs for an unset key too
        (settings validate defaults), and names both settings, never their values.
        """
        cert = info.data.get("temporal_tls_cert")
        if (cert is None) != (key is None):
            given, missing = (("TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY") if key is None
                              else ("TEMPORAL_TLS_KEY", "TEMPORAL_TLS_CERT"))
            raise PydanticCustomError(
                "tls_client_cert_pair",
                f"{given} is set but {missing} is not: the client certificate "
                "(TEMPORAL_TLS_CERT) and its private key (TEMPORAL_TLS_KEY) go together; set "
                "both, or neither")
        return key

    @model_validator(mode="after")
    def _absolute_paths(self) -> Settings:
        """Resolve relative paths once, here, so that every later use agrees."""
        self.data_dir = absolute_path(self.data_dir)
        if self.outbox_dir is not None:
            self.outbox_dir = absolute_path(self.outbox_dir)
        if self.temporal_tls_ca is not None:
            self.temporal_tls_ca = absolute_path(self.temporal_tls_ca)
        if self.temporal_tls_cert is not None:
            self.temporal_tls_cert = absolute_path(self.temporal_tls_cert)
        if self.temporal_tls_key is not None:
            self.temporal_tls_key = absolute_path(self.temporal_tls_key)
        if self.permissions_file is not None:
            self.permissions_file = absolute_path(self.permissions_file)
        self.database_url = absolute_sqlite_url(self.database_url)
        return self

    def effective_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data folder."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'complaints.db').as_posix()}"

    def effective_outbox(self) -> Path:
        """Where letters are written as .txt/.html files."""
        return self.outbox_dir or self.data_dir / "outbox"
