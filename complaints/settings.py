"""Settings, read from the environment (prefix-free names, as operators expect).

Read by ``worker.py``, the CLI and activities only: never imported by ``workflows/``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the worker and the staff CLI need to know about their surroundings."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8",
                                      extra="ignore", env_ignore_empty=True)

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "complaints"
    temporal_tls: bool = False
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_api_key: str | None = None

    data_dir: Path = Path(".data")
    database_url: str = Field(default="", description="SQLAlchemy URL; default SQLite in data_dir")
    outbox_dir: Path | None = None

    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_sender: str = "complaints@landlord.example"
    staff_email_domain: str = "landlord.example"
    webhook_url: str | None = None

    ui_port: int = 8233
    log_json: bool | None = None
    log_level: str = "INFO"

    def effective_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data folder."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'complaints.db').as_posix()}"

    def effective_outbox(self) -> Path:
        """Where letters are written as .txt/.html files."""
        return self.outbox_dir or self.data_dir / "outbox"
