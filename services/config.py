"""The one place that reads the environment: every TWOFA_* variable lives here.

Everything is parsed and checked when Settings load (retry schedules, keys, URLs), so a bad
value stops a process at start with the variable's name, never later inside a task.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from contextlib import suppress
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Seconds between attempts, from "5,30,120": each a number ≥ 0, at least one.
Schedule = Annotated[tuple[float, ...], NoDecode]
# Comma-separated lists ("a, b"): TWOFA_FORWARDED_ALLOW_IPS, TWOFA_ALLOWED_HOSTS.
Listed = Annotated[tuple[str, ...], NoDecode]
SMTP_SCHEMES = ("smtp", "smtp+starttls", "smtps")


class ConfigurationError(Exception):
    """The configuration cannot run in the requested environment."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TWOFA_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    home: Path = Field(default=Path("var"), description="state of the embedded default")
    database_url: str | None = None
    # PostgreSQL cancels any statement running longer than this (waiting on a lock included):
    # a request answers 503 `unavailable` instead of hanging. 0 turns it off. Migrations run
    # without it (an index build on a large table may take longer).
    database_statement_timeout_ms: int = Field(default=30_000, ge=0)
    broker_url: str | None = None
    smtp_url: str | None = None
    # `localhost`, not 127.0.0.1: browsers refuse an IP address as a WebAuthn relying party.
    public_url: str = "http://localhost:8000"
    # WebAuthn (services/verification/relying_party.py): the relying party ID (default: the
    # public URL's host; may be a registrable suffix of it) and host applications' origins
    # allowed to run the ceremony besides the public URL's own.
    webauthn_rp_id: str | None = None
    webauthn_origins: Annotated[tuple[str, ...], NoDecode] = ()
    # Reverse proxies whose X-Forwarded-For is believed (addresses or networks, "*" for any);
    # none by default: the per-IP limits and events use the connection's address.
    forwarded_allow_ips: Listed = ()
    # Host names the console answers besides TWOFA_PUBLIC_URL's host and loopback names.
    allowed_hosts: Listed = ()
    encryption_keys: str | None = None
    webhook_allow_private: bool = False
    # Short steps first: a receiver back from a short outage (a deploy, a restart) gets its
    # backlog moving within a minute, since a later event waits for the head of its
    # endpoint's queue; the long steps follow for a receiver that stays down (17 h in all).
    webhook_retry_schedule: Schedule = (5, 15, 30, 60, 300, 1800, 7200, 18000, 36000)
    webhook_failure_threshold: int = Field(default=5, ge=1)
    # A delivery run's claim on its window; a killed worker's window is sent again once it
    # lapses. Each attempt gets a quarter of it (15 s at most), see services/webhooks/delivery.py.
    webhook_lease_seconds: float = Field(default=60.0, ge=4.0)
    # Seconds between attempts to hand an email to SMTP after a transient failure.
    email_retry_schedule: Schedule = (5, 30, 120, 600, 1800)
    # argon2id parameters: "cheapest" keeps test suites fast and is refused in production.
    argon2_profile: Literal["rfc9106-low-memory", "cheapest"] = "rfc9106-low-memory"
    mail_from: str = "twofa <no-reply@twofa.invalid>"
    queue: str = "twofa"
    fanout_batch_size: int = Field(default=100, ge=1)
    # A batch's claim on its invitations; after it lapses the sweep hands them to another task.
    send_lease_seconds: int = Field(default=120, ge=1)
    # SMTP connections one batch keeps in flight at once (each send is recorded before its
    # connection sends again), so a SIGKILLed pool process repeats at most this many sends.
    smtp_connections: int = Field(default=8, ge=1, le=64)
    # Messages per second handed to SMTP by the whole installation (every worker, every
    # host: one budget, services/email/pace.py). Unset: no limit until the relay answers
    # 421/451, which slows the shared rate down.
    smtp_max_rate: float | None = Field(default=None, gt=0)
    # A PEM file of certificates to trust for smtp+starttls:// and smtps:// (a relay with a
    # private or self-signed certificate); unset: the system's trust store.
    smtp_ca_file: Path | None = None
    # A worker process keeps its SMTP connections between batches; one unused this long
    # is closed (relays drop idle clients after a few minutes anyway).
    smtp_idle_seconds: float = Field(default=30.0, gt=0)
    sweep_interval: float = Field(default=15.0, gt=0)
    relay_poll_interval: float = Field(default=0.2, gt=0)
    relay_heartbeat_file: Path | None = None
    # An outbox message whose task has not succeeded this long after publishing goes out again.
    outbox_redeliver_seconds: float = Field(default=600.0, gt=0)
    session_ttl_seconds: int = 12 * 3600
    # Seconds a join link stays valid (TWOFA_JOIN_TOKEN_TTL); a resend issues a new one.
    join_token_ttl: int = Field(default=7 * 24 * 3600, ge=60)
    # Password hashes (argon2id, 64 MiB each) computed at once, and how long a sign-in waits
    # for a free slot before it answers 503: memory stays bounded under a flood of logins.
    password_hash_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 2, ge=1)
    password_hash_wait_seconds: float = Field(default=2.0, ge=0)
    challenge_ttl_seconds: int = 300
    # Sensitive changes need a second factor verified this recently, or a code with them.
    reauth_seconds: int = Field(default=600, ge=0)
    mailcatcher_port: int = 1025
    # Observability (docs/operations.md): JSON log lines, and the port on which a `twofa
    # worker` serves its pool's task durations (unset: none).
    log_format: Literal["text", "json"] = "text"
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    worker_concurrency: int = 2
    # Each worker process writes a heartbeat this often; invitations ready to send that no
    # worker has taken for `stall_seconds` are a stall (/metrics, /readyz; docs/operations.md).
    worker_heartbeat_seconds: float = Field(default=10.0, gt=0)
    stall_seconds: float = Field(default=120.0, gt=0)
    # Tests move the clock that enforcement reads (services/clock.py); production refuses it.
    test_clock_file: Path | None = None

    @field_validator("email_retry_schedule", "webhook_retry_schedule", mode="before")
    @classmethod
    def _parse_schedule(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(float(part) for part in value.split(",") if part.strip())
        if isinstance(value, tuple | list) and not value:
            raise ValueError("needs at least one delay")
        return value

    @field_validator("email_retry_schedule", "webhook_retry_schedule")
    @classmethod
    def _check_schedule(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(delay < 0 for delay in value):
            raise ValueError("delays are seconds, never negative")
        return value

    @field_validator("forwarded_allow_ips", "allowed_hosts", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip().lower() for part in value.split(",") if part.strip())
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _check_proxies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            if entry != "*":
                ipaddress.ip_network(entry, strict=False)  # ValueError: not an address or network
        return value

    @field_validator("encryption_keys")
    @classmethod
    def _check_keys(cls, value: str | None) -> str | None:
        for key in (value or "").split(","):
            if key.strip():
                Fernet(key.strip().encode())  # ValueError: not 32 url-safe base64-encoded bytes
        return value

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in SMTP_SCHEMES:
            raise ValueError(f"the scheme must be one of {', '.join(SMTP_SCHEMES)}")
        return value

    @field_validator("smtp_ca_file")
    @classmethod
    def _check_ca_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a readable file")
        return value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL with a host")
        return value

    @field_validator("webauthn_origins", mode="before")
    @classmethod
    def _parse_origins(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(part.strip().rstrip("/") for part in value.split(",") if part.strip())
        return value

    @field_validator("webauthn_origins")
    @classmethod
    def _check_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path:
                raise ValueError(f"{origin!r} is not an origin (scheme://host[:port])")
        return value

    @model_validator(mode="after")
    def _check_relying_party(self) -> Settings:
        """Every WebAuthn origin must be covered by the RP ID, or a browser would refuse the
        ceremony there (and we would accept what no browser sends)."""
        host = (urlsplit(self.public_url).hostname or "").lower()
        rp_id = (self.webauthn_rp_id or host).lower()
        if not covers(rp_id, host):
            raise ValueError(f"TWOFA_WEBAUTHN_RP_ID {rp_id!r} is not {host!r} or a suffix of it")
        for origin in self.webauthn_origins:
            if not covers(rp_id, (urlsplit(origin).hostname or "").lower()):
                raise ValueError(f"TWOFA_WEBAUTHN_ORIGINS: {origin!r} is not covered by the "
                                 f"relying party ID {rp_id!r}")
        return self

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
        return list(self.email_retry_schedule if which == "email" else self.webhook_retry_schedule)

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
        if self.public_url.startswith(("http://127.0.0.1", "http://localhost")):
            raise ConfigurationError("TWOFA_PUBLIC_URL is still the development default")
        if self.test_clock_file is not None:
            raise ConfigurationError(
                "TWOFA_ENV=production refuses TWOFA_TEST_CLOCK_FILE (a test setting)"
            )
        if self.argon2_profile == "cheapest":
            raise ConfigurationError(
                "TWOFA_ENV=production refuses TWOFA_ARGON2_PROFILE=cheapest (a test setting)"
            )


def covers(rp_id: str, host: str) -> bool:
    """Whether a relying party ID is the host or a parent domain of it (WebAuthn's rule)."""
    return host == rp_id or host.endswith("." + rp_id)


def _generated_key(path: Path) -> bytes:
    if not path.exists():
        private_folder(path.parent)
        tmp = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
        write_private(tmp, Fernet.generate_key())
        with suppress(FileExistsError):  # atomic: processes starting at once agree on one key
            path.hardlink_to(tmp)
        tmp.unlink()
    return path.read_bytes().strip()


def private_folder(path: Path) -> None:
    """Create `path` 0700, or make an existing one 0700: it holds keys, the database and caught
    mail (join links), which nobody else on the machine may list or read."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_mode & 0o077 and info.st_uid == os.geteuid():
        path.chmod(0o700)


def write_private(path: Path, content: bytes = b"") -> None:
    """Create `path` readable by its owner only from the first byte (no chmod afterwards,
    which would leave a moment where others could open it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(content)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, parsed once; a bad value raises ConfigurationError."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    """One line per bad variable, by its environment name, without echoing its value (keys)."""
    lines = []
    for error in exc.errors():
        if not error["loc"]:  # a rule across variables names them in its message
            lines.append(str(error["msg"]).removeprefix("Value error, "))
            continue
        field = str(error["loc"][0])
        lines.append(f"TWOFA_{field.upper()}: {error['msg']}")
    return "invalid settings: " + "; ".join(lines)
