"""The one place that reads the environment: every TWOFA_* variable lives here."""

from __future__ import annotations

import os
import secrets
from contextlib import suppress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from cryptography.fernet import Fernet
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigurationError(Exception):
    """The configuration cannot run in the requested environment."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TWOFA_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    home: Path = Field(default=Path("var"), description="state of the embedded default")
    database_url: str | None = None
    broker_url: str | None = None
    smtp_url: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    encryption_keys: str | None = None
    webhook_allow_private: bool = False
    webhook_retry_schedule: str = "5,300,1800,7200,18000,36000"
    webhook_failure_threshold: int = 5
    # Seconds between attempts to hand an email to SMTP after a transient failure.
    email_retry_schedule: str = "5,30,120,600,1800"
    mail_from: str = "twofa <no-reply@twofa.invalid>"
    queue: str = "twofa"
    fanout_batch_size: int = 100
    # A batch's claim on its invitations; after it lapses the sweep hands them to another task.
    send_lease_seconds: int = 120
    sweep_interval: float = 15.0
    relay_poll_interval: float = 0.2
    relay_heartbeat_file: Path | None = None
    # An outbox message whose task has not succeeded this long after publishing goes out again.
    outbox_redeliver_seconds: float = 600.0
    session_ttl_seconds: int = 12 * 3600
    # Seconds a join link stays valid (TWOFA_JOIN_TOKEN_TTL); a resend issues a new one.
    join_token_ttl: int = Field(default=7 * 24 * 3600, ge=60)
    # Password hashes (argon2id, 64 MiB each) computed at once, and how long a sign-in waits
    # for a free slot before it answers 503: memory stays bounded under a flood of logins.
    password_hash_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 2, ge=1)
    password_hash_wait_seconds: float = Field(default=2.0, ge=0)
    challenge_ttl_seconds: int = 300
    mailcatcher_port: int = 1025
    # Observability (docs/operations.md): JSON log lines, and the port on which a `twofa
    # worker` serves its pool's task durations (unset: none).
    log_format: Literal["text", "json"] = "text"
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    worker_concurrency: int = 2

    @property
    def home_dir(self) -> Path:
        return self.home.resolve()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_dir / 'twofa.db'}"

    @property
    def is_embedded_broker(self) -> bool:
        return self.broker_url is None or self.broker_url.startswith("filesystem")

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def broker_folder(self) -> Path:
        return self.home_dir / "broker"

    @property
    def resolved_smtp_url(self) -> str:
        return self.smtp_url or f"smtp://127.0.0.1:{self.mailcatcher_port}"

    @property
    def mail_dir(self) -> Path:
        return self.home_dir / "mail"

    def retry_schedule(self, which: Literal["email", "webhook"]) -> list[float]:
        raw = self.email_retry_schedule if which == "email" else self.webhook_retry_schedule
        return [float(part) for part in raw.split(",") if part.strip()]

    def keys(self) -> list[bytes]:
        """Encryption keys, newest first. The embedded default generates one under ./var/."""
        if self.encryption_keys:
            return [k.strip().encode() for k in self.encryption_keys.split(",") if k.strip()]
        return [_generated_key(self.home_dir / "encryption.key")]

    def check_production(self) -> None:
        """Refuse to run production on anything generated or defaulted."""
        if self.env != "production":
            return
        missing = [
            name
            for name, value in (
                ("TWOFA_ENCRYPTION_KEYS", self.encryption_keys),
                ("TWOFA_DATABASE_URL", self.database_url),
                ("TWOFA_BROKER_URL", self.broker_url),
                ("TWOFA_SMTP_URL", self.smtp_url),
            )
            if not value
        ]
        if missing:
            raise ConfigurationError(
                "TWOFA_ENV=production refuses generated keys and embedded defaults; set "
                + ", ".join(missing)
            )
        for key in self.keys():
            try:
                Fernet(key)
            except ValueError as exc:
                raise ConfigurationError(f"TWOFA_ENCRYPTION_KEYS holds an invalid key: {exc}") from exc
        if self.public_url.startswith("http://127.0.0.1"):
            raise ConfigurationError("TWOFA_PUBLIC_URL is still the development default")


def _generated_key(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
        write_private(tmp, Fernet.generate_key())
        with suppress(FileExistsError):  # atomic: processes starting at once agree on one key
            path.hardlink_to(tmp)
        tmp.unlink()
    return path.read_bytes().strip()


def write_private(path: Path, content: bytes = b"") -> None:
    """Create `path` readable by its owner only from the first byte (no chmod afterwards,
    which would leave a moment where others could open it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(content)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
