"""The relational schema (SQLAlchemy 2 typed models). Alembic migrations mirror this file."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ColumnElement,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    or_,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# SQLite has no 64-bit autoincrement BIGINT; INTEGER PRIMARY KEY is its rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on PostgreSQL and SQLite alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class Workspace(Base):
    __tablename__ = "workspaces"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    require_two_factor: Mapped[bool] = mapped_column(Boolean, default=False)
    policy_version: Mapped[int] = mapped_column(Integer, default=0)
    # The grace period applies the next time the requirement is turned on (kept while off);
    # `required_at` is when it was, and `enforce_at` = required_at + grace (None: at once).
    grace_period_hours: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    required_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enforce_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Which second factors count: `any`, or `security_keys` (WebAuthn only). Teammates with
    # only an app are held to adding a key from `methods_enforce_at` (switch time + grace);
    # `methods_switched_at` is that switch time, so a new grace period moves it as well.
    allowed_methods: Mapped[str] = mapped_column(String(16), default="any", server_default="any")
    methods_enforce_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    methods_switched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WorkspaceCounts(Base):
    """Teammates not removed, and how many of them have 2FA (services/team_counts.py)."""

    __tablename__ = "workspace_counts"
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), primary_key=True)
    teammates: Mapped[int] = mapped_column(Integer, default=0)
    enrolled: Mapped[int] = mapped_column(Integer, default=0)
    # Of them, with at least one security key (the `enrolled` bucket under security_keys).
    with_keys: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Teammate(Base):
    __tablename__ = "teammates"
    __table_args__ = (
        # The few teammates the rollout counts one by one: those not joined yet, and those
        # with an exemption (services/policy/service.py).
        Index("ix_teammates_unjoined", "workspace_id",
              postgresql_where=text("status = 'invited'"), sqlite_where=text("status = 'invited'")),
        Index("ix_teammates_exempt", "workspace_id",
              postgresql_where=text("exempt_until IS NOT NULL"),
              sqlite_where=text("exempt_until IS NOT NULL")),
        # Addresses are compared case-insensitively: one teammate per lower(email) among those
        # not removed (sign-in and host checks look up through this index too).
        Index("ux_teammates_workspace_lower_email", "workspace_id", func.lower(text("email")),
              unique=True, postgresql_where=text("status <> 'removed'"),
              sqlite_where=text("status <> 'removed'")),
        Index("ux_teammates_webauthn_user_handle", "webauthn_user_handle", unique=True),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))  # admin | member
    status: Mapped[str] = mapped_column(String(16))  # invited | active
    password_hash: Mapped[str | None] = mapped_column(String(200))
    join_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    join_nonce: Mapped[str | None] = mapped_column(String(64))
    join_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # TOTP: the confirmed secret and the one being set up, both encrypted (Fernet).
    totp_secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_pending_secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    # A new phone's pending secret (2FA on already) belongs to the session that started it
    # and lives TWOFA_CHALLENGE_TTL_SECONDS; a first setup's has neither (any session of the
    # teammate may finish it).
    totp_pending_session_id: Mapped[int | None] = mapped_column(BigId)
    totp_pending_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    # Throttle of second-factor attempts, shared by every process through the database.
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lockouts: Mapped[int] = mapped_column(Integer, default=0)
    # An admin-issued single-use code for a lost device (SHA-256), valid until it expires.
    bypass_code_hash: Mapped[str | None] = mapped_column(String(64))
    bypass_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # An exemption is live while exempt_until is in the future; the sweep clears it after.
    exempt_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    exempt_reason: Mapped[str | None] = mapped_column(String(500))
    # An unbroken run of exemptions (the next one starting within 30 days of the last one's
    # end) ends at most 30 days after it started: renewing cannot push it further.
    exempt_run_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    exempt_last_ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the current join link's email was handed to SMTP (while 2FA is required, the join
    # email is the teammate's invitation).
    join_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # WebAuthn: the random user handle given to authenticators (never the email), and since
    # when the teammate has at least one credential (None: none).
    webauthn_user_handle: Mapped[bytes | None] = mapped_column(LargeBinary)
    webauthn_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Language (en, de, es; None until chosen or taken from the browser at join: English)
    # and IANA time zone (None: UTC) of the emails and pages they read.
    locale: Mapped[str | None] = mapped_column(String(16))
    time_zone: Mapped[str | None] = mapped_column(String(64))

    @property
    def two_factor_enabled(self) -> bool:
        """Any method: an authenticator app, a security key or passkey, or both."""
        return self.totp_enabled_at is not None or self.webauthn_enabled_at is not None

    @property
    def enrolled_at(self) -> datetime | None:
        """Since when 2FA is on (the earlier method's start)."""
        times = [t for t in (self.totp_enabled_at, self.webauthn_enabled_at) if t is not None]
        return min(times) if times else None


def two_factor_enabled_sql() -> ColumnElement[bool]:
    """`Teammate.two_factor_enabled` in SQL."""
    return or_(Teammate.totp_enabled_at.is_not(None), Teammate.webauthn_enabled_at.is_not(None))


def compliant_sql(allowed_methods: str) -> ColumnElement[bool]:
    """Holds a method the policy allows: any method, or under `security_keys` a key."""
    if allowed_methods == "security_keys":
        return Teammate.webauthn_enabled_at.is_not(None)
    return two_factor_enabled_sql()


def is_compliant(teammate: Teammate, allowed_methods: str) -> bool:
    if allowed_methods == "security_keys":
        return teammate.webauthn_enabled_at is not None
    return teammate.two_factor_enabled


class WebAuthnCredential(Base):
    """A security key or passkey of a teammate: its public key (COSE), the signature counter
    last seen, and the relying party ID it was made for (changing the public host orphans it)."""

    __tablename__ = "webauthn_credentials"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    teammate_id: Mapped[int] = mapped_column(ForeignKey("teammates.id"), index=True)
    credential_id: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    name: Mapped[str] = mapped_column(String(64))
    rp_id: Mapped[str] = mapped_column(String(253))
    transports: Mapped[list[str]] = mapped_column(JSON, default=list)
    backed_up: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebAuthnChallenge(Base):
    """A WebAuthn challenge handed out, stored as its SHA-256: single use, short lived, bound
    to what it was made for (registration, a sign-in challenge, passkey sign-in)."""

    __tablename__ = "webauthn_challenges"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    challenge_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(16))  # register | second_factor | passkey
    teammate_id: Mapped[int | None] = mapped_column(ForeignKey("teammates.id"), index=True)
    # The sign-in challenge (auth_sessions row) a second-factor assertion completes.
    auth_session_id: Mapped[int | None] = mapped_column(ForeignKey("auth_sessions.id"))
    workspace_id: Mapped[int | None] = mapped_column(ForeignKey("workspaces.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RecoveryCode(Base):
    __tablename__ = "recovery_codes"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    teammate_id: Mapped[int] = mapped_column(ForeignKey("teammates.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuthSession(Base):
    """A bearer token (stored as its SHA-256) or a login challenge awaiting a code."""

    __tablename__ = "auth_sessions"
    __table_args__ = (
        Index("ix_auth_sessions_api_key", "api_key_id",
              postgresql_where=text("api_key_id IS NOT NULL"),
              sqlite_where=text("api_key_id IS NOT NULL")),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # session | challenge
    # Where the first factor was checked: "password" (twofa's own sign-in) or "host" (a host
    # application with an API key). A host session never reaches an admin route.
    origin: Mapped[str] = mapped_column(String(16), default="password", server_default="password")
    # The second factor that opened it: totp | recovery_code | bypass | webauthn | passkey
    # (None: no second factor); with a key, which one (removing it ends the session).
    factor: Mapped[str | None] = mapped_column(String(16))
    credential_id: Mapped[int | None] = mapped_column(BigInteger)
    # When a second factor was last accepted for this session (sign-in, confirm,
    # /v1/me/reauthenticate): sensitive changes need it recent (services/verification/recent.py).
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The API key of the host application that opened it (a host session): revoking the key
    # ends them.
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    teammate_id: Mapped[int] = mapped_column(ForeignKey("teammates.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The request that opened it (the sessions page shows them; None before they were kept).
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(256))


class PasswordReset(Base):
    """A reset link: only the SHA-256 of its token is kept (the email task derives the token
    again from the row's nonce). Live while unused, unvoided and unexpired; a newer one voids
    it. Rows stay, so that a teammate's resets of the last hour can be counted."""

    __tablename__ = "password_resets"
    __table_args__ = (Index("ix_password_resets_teammate_created", "teammate_id", "created_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    teammate_id: Mapped[int] = mapped_column(ForeignKey("teammates.id"))
    nonce: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# Every state an invitation row can be in (/metrics exports each, from 0).
INVITATION_STATUSES = ("pending", "sent", "failed", "skipped")


class EnrollmentInvitation(Base):
    """One invitation per teammate and policy version: the fan-out's idempotency record."""

    __tablename__ = "enrollment_invitations"
    __table_args__ = (
        UniqueConstraint("teammate_id", "policy_version"),
        Index("ix_invitations_workspace_version_status", "workspace_id", "policy_version", "status"),
        # The stall check (services/worker_health.py) on every /metrics scrape and /readyz probe.
        Index("ix_invitations_pending", "lease_until", postgresql_where=text("status = 'pending'"),
              sqlite_where=text("status = 'pending'")),
        Index("ix_invitations_sent_at", "sent_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    teammate_id: Mapped[int] = mapped_column(ForeignKey("teammates.id"))
    policy_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sent|failed|skipped
    resends: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When a batch task was last created for it, and when a failed send may be tried again.
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    message_id: Mapped[str | None] = mapped_column(String(255))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EnrollmentReminder(Base):
    """A reminder due before a deadline, for the teammates of one policy version it holds and
    who are still not compliant: `audience` `all` (before `enforce_at`; everyone), or, under
    `security_keys` with two deadlines, `no_method` (before `enforce_at`) and `app_only`
    (before `methods_enforce_at`). The sweep sends it when due (never a broker countdown,
    which a restart could lose); each teammate's copy is sent once (`SentEmail` key
    `reminder:{id}:{teammate_id}`)."""

    __tablename__ = "enrollment_reminders"
    __table_args__ = (Index("ix_reminders_status_due", "status", "due_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), index=True)
    policy_version: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    audience: Mapped[str] = mapped_column(String(16), default="all", server_default="all")
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sent|cancelled
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Event(Base):
    """The audit log: every CloudEvent ever recorded, in order (`seq`)."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_workspace_type_seq", "workspace_id", "type", "seq"),)
    seq: Mapped[int] = mapped_column(BigId, primary_key=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), index=True)
    type: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(128))
    time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The span that recorded it (services/tracing.py): what the event sets in motion (a
    # rollout, emails, webhook deliveries) continues that trace. NULL while tracing is off.
    trace_context: Mapped[dict[str, str] | None] = mapped_column(JSON)


class OutboxMessage(Base):
    """Work committed with the change that caused it; the relay hands it to the workers.

    A message is done when the task that carried it succeeded (`completed_at`); one published
    but never completed (a lost broker message, a worker killed with it prefetched) is
    published again after a while.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_unpublished",
            "id",
            postgresql_where=text("published_at IS NULL"),
            sqlite_where=text("published_at IS NULL"),
        ),
        Index(
            "ix_outbox_incomplete",
            "published_at",
            postgresql_where=text("completed_at IS NULL"),
            sqlite_where=text("completed_at IS NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    topic: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    publish_count: Mapped[int] = mapped_column(Integer, default=0)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The span that wrote the row (a W3C traceparent carrier, services/tracing.py): the
    # relay publishes the row's task in that trace. NULL while tracing is off.
    trace_context: Mapped[dict[str, str] | None] = mapped_column(JSON)


class SentEmail(Base):
    """Idempotency record of one notification email (join, enabled, disabled, …)."""

    __tablename__ = "sent_emails"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(128), unique=True)
    message_id: Mapped[str] = mapped_column(String(255))
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LoginThrottle(Base):
    """Failed sign-ins per client address (password spraying), shared across processes."""

    __tablename__ = "login_throttle"
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PasswordFailures(Base):
    """Consecutive wrong passwords per (workspace, normalized email), known teammate or not.

    `key` is a SHA-256 of the pair, so addresses nobody has are not kept in the clear.
    """

    __tablename__ = "password_failures"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), index=True)
    url: Mapped[str] = mapped_column(Text)
    event_types: Mapped[list[str]] = mapped_column(JSON)
    secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookDelivery(Base):
    """One event for one endpoint; attempts are its children."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_seq"),
        Index("ix_deliveries_endpoint_status", "endpoint_id", "status", "event_seq"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"))
    event_seq: Mapped[int] = mapped_column(ForeignKey("events.seq"))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|succeeded|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Its event's (Event.trace_context): each attempt's span joins that trace.
    trace_context: Mapped[dict[str, str] | None] = mapped_column(JSON)


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    response_status: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    response_body: Mapped[str | None] = mapped_column(Text)


class WorkerHeartbeat(Base):
    """A `twofa worker` process says it is alive (every TWOFA_WORKER_HEARTBEAT_SECONDS); its
    row goes when it stops cleanly. A killed worker's row stays, and ages out of the count."""

    __tablename__ = "worker_heartbeats"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)  # Celery's node name
    queues: Mapped[str] = mapped_column(String(16))  # all | invitations | webhooks
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
