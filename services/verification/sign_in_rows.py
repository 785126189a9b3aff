"""What the sign-in steps on the event loop share (code_step, key_step, passkey_step): the
live challenge's columns they read, the WebAuthn rows an assertion locks, the session they
open (`sessions.open_session` as one INSERT … SELECT from the challenge they end) and its
level."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CTE, String, bindparam, exists, insert, literal, null, select

from services import enforcement
from services.accounts import sessions
from services.accounts.session_lookup import NOW, utc
from services.config import get_settings
from services.db import ROW_LOCK
from services.events import request_context
from services.models import (
    AuthSession,
    Teammate,
    UTCDateTime,
    WebAuthnChallenge,
    WebAuthnCredential,
    Workspace,
)

# The live sign-in challenge and what the new session's level needs (see `level`).
COLUMNS = (AuthSession.id, Teammate.id, Teammate.workspace_id, Teammate.locked_until,
           Teammate.totp_enabled_at, Teammate.webauthn_enabled_at, Teammate.role,
           Teammate.exempt_until, Workspace.require_two_factor, Workspace.enforce_at,
           Workspace.methods_enforce_at, Workspace.allowed_methods)


def live_challenge() -> Any:
    """SELECT COLUMNS of the live challenge whose token hashes to :challenge_hash (more
    columns and joins may be added)."""
    return (select(*COLUMNS)
            .select_from(AuthSession)
            .join(Teammate, Teammate.id == AuthSession.teammate_id)
            .join(Workspace, Workspace.id == Teammate.workspace_id)
            .where(AuthSession.token_hash == bindparam("challenge_hash"),
                   AuthSession.kind == "challenge", AuthSession.ended_at.is_(None),
                   AuthSession.expires_at > NOW))


def locked_key_rows() -> tuple[CTE, CTE]:
    """CTEs locking an assertion's rows in `verify_assertion`'s order: the WebAuthn challenge
    (:webauthn_id, unused), then the key (:key_id, its counter still :old_count), each only
    if the one before it qualified."""
    webauthn = (select(WebAuthnChallenge.id)
                .where(WebAuthnChallenge.id == bindparam("webauthn_id"),
                       WebAuthnChallenge.used_at.is_(None))
                .with_for_update(**ROW_LOCK).cte("webauthn"))
    credential = (select(WebAuthnCredential.id)
                  .where(WebAuthnCredential.id == bindparam("key_id"),
                         WebAuthnCredential.sign_count == bindparam("old_count"),
                         exists(select(webauthn.c.id)))
                  .with_for_update(**ROW_LOCK).cte("credential"))
    return webauthn, credential


@dataclass(frozen=True, slots=True)
class Challenge:
    """COLUMNS as read."""

    id: int
    teammate_id: int
    workspace_id: int
    locked_until: datetime | None
    app: datetime | None
    keys: datetime | None
    role: str
    exempt_until: datetime | None
    required: bool
    enforce_at: datetime | None
    methods_enforce_at: datetime | None
    allowed_methods: str

    @classmethod
    def of(cls, row: tuple[Any, ...]) -> Challenge:
        return cls(*row[:len(COLUMNS)])

    @property
    def two_factor_enabled(self) -> bool:
        return self.app is not None or self.keys is not None

    def locked(self, now: datetime) -> datetime | None:
        until = utc(self.locked_until)
        return until if until is not None and until > now else None

    def level(self, factor: str) -> sessions.Level:
        """The level of a session this challenge opens with `factor` (`level_of`)."""
        return sessions.Standing(bool(self.required), utc(self.enforce_at),
                                 utc(self.methods_enforce_at), self.allowed_methods,
                                 utc(self.exempt_until), self.app is not None,
                                 self.keys is not None, factor,
                                 enforcement.is_admin(self.role)).level


def opened(source: CTE, factor: str, credential_id: Any = None) -> CTE:
    """INSERT the sessions of `source`'s rows (teammate_id, origin, api_key_id: the
    challenges a step ended, or a passkey's teammate), verified now with `factor`; its
    token's hash is :token_hash."""
    return (insert(AuthSession)
            .from_select(["kind", "origin", "factor", "credential_id", "verified_at",
                          "api_key_id", "token_hash", "teammate_id", "created_at", "expires_at",
                          "ip", "user_agent"],
                         select(literal("session"), source.c.origin, literal(factor),
                                null() if credential_id is None else credential_id, NOW,
                                source.c.api_key_id, bindparam("token_hash", type_=String),
                                source.c.teammate_id, NOW,
                                bindparam("expires_at", type_=UTCDateTime),
                                bindparam("ip", type_=String),
                                bindparam("user_agent", type_=String)))
            .returning(AuthSession.id).cte("opened"))


def session_params(token_hash: str, now: datetime) -> dict[str, Any]:
    """The parameters of `opened` (the request's address and browser, as `_open` keeps)."""
    opened_by = request_context.current()
    return {"token_hash": token_hash, "ip": opened_by.get("ip"),
            "user_agent": opened_by.get("user_agent"), "now": now,
            "expires_at": now + timedelta(seconds=get_settings().session_ttl_seconds)}


@dataclass(frozen=True)
class SignedIn:
    token: str
    level: sessions.Level
