"""Bearer sessions and login challenges. Tokens are random; only their SHA-256 is stored.

A session's level is decided at every request, never stored: once 2FA is *enforced* for a
teammate (services/enforcement.py) and they have none, every session of theirs is at
`enrollment` level, whenever it was opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, cast

from sqlalchemy import ColumnElement, and_, inspect, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from services import enforcement
from services.config import get_settings
from services.crypto import hash_token, new_token
from services.errors import NotFound, Unauthenticated
from services.events import request_context
from services.holding import is_enforced_for
from services.models import AuthSession, Teammate, Workspace, is_compliant, utcnow

Level = Literal["full", "enrollment"]
Status = Literal["authenticated", "two_factor_required", "enrollment_required"]
Origin = Literal["password", "host"]


def began(auth: AuthSession) -> str:
    """How a session began, as a teammate's session list says it: `host` (a host
    application's sign-in), `passkey` (a passkey alone) or `password`."""
    if auth.origin == "host":
        return "host"
    return "passkey" if auth.factor == "passkey" else "password"


@dataclass(frozen=True)
class Authenticated:
    auth: AuthSession
    teammate: Teammate
    workspace: Workspace

    @property
    def level(self) -> Level:
        return level_of(self.teammate, self.workspace, self.auth.factor)

    @property
    def is_host_session(self) -> bool:
        return self.auth.origin == "host"


@dataclass(frozen=True)
class SignIn:
    """What a passed first factor leads to (services/api/routes/auth.py writes it out)."""

    status: Status
    token: str | None = None
    challenge: str | None = None


def level_of(teammate: Teammate, workspace: Workspace, factor: str | None = None) -> Level:
    return level_for(is_enforced_for(teammate, workspace),
                     is_compliant(teammate, workspace.allowed_methods), factor,
                     workspace.allowed_methods)


def level_for(enforced: bool, compliant: bool, factor: str | None = None,
              allowed_methods: str = "any") -> Level:
    """The level rule, on plain values (the read models of session_lookup use it too)."""
    return cast(Level, enforcement.level_for(enforced, compliant, factor, allowed_methods))


@dataclass(frozen=True, slots=True)
class Standing:
    """The level rule's inputs as the hot reads select them (one row, no ORM objects)."""

    required: bool
    enforce_at: datetime | None
    methods_enforce_at: datetime | None
    allowed_methods: str
    exempt_until: datetime | None
    has_app: bool
    has_key: bool
    factor: str | None
    admin: bool = False  # held at once, whatever the deadline or exemption

    @property
    def enforced(self) -> bool:
        has_any = self.has_app or self.has_key
        deadline = enforcement.relevant_deadline(self.enforce_at, self.methods_enforce_at,
                                                 self.allowed_methods, has_any)
        return enforcement.is_enforced(self.required, deadline, self.exempt_until, admin=self.admin)

    @property
    def level(self) -> Level:
        compliant = self.has_key if self.allowed_methods == "security_keys" \
            else self.has_app or self.has_key
        return level_for(self.enforced, compliant, self.factor, self.allowed_methods)


def after_first_factor(session: Session, teammate: Teammate, workspace: Workspace,
                       origin: Origin, api_key_id: int | None = None) -> SignIn:
    """The step after a password (or a host application's own first factor) checked out.

    `origin` (and the host's `api_key_id`) follow the challenge into the session it becomes:
    a sign-in that began with a host application's API key stays a host session, whatever
    factors follow, and ends when that key is revoked.
    """
    if teammate.two_factor_enabled:
        return SignIn("two_factor_required",
                      challenge=_open(session, teammate, "challenge", origin,
                                      api_key_id=api_key_id))
    token = _open(session, teammate, "session", origin, api_key_id=api_key_id)
    if is_enforced_for(teammate, workspace):
        return SignIn("enrollment_required", token=token)
    return SignIn("authenticated", token=token)


def open_session(session: Session, teammate: Teammate, origin: Origin = "password",
                 factor: str | None = None, api_key_id: int | None = None,
                 credential_id: int | None = None) -> str:
    """A new session; `factor` is the second factor that opened it, if any, and
    `credential_id` the security key (removing that key ends the session). It counts as
    verified from now, unless it was a bypass code (services/verification/recent.py)."""
    return _open(session, teammate, "session", origin, factor, api_key_id, credential_id)


def _open(session: Session, teammate: Teammate, kind: str, origin: Origin,
          factor: str | None = None, api_key_id: int | None = None,
          credential_id: int | None = None) -> str:
    settings = get_settings()
    ttl = settings.challenge_ttl_seconds if kind == "challenge" else settings.session_ttl_seconds
    token = new_token()
    now = utcnow()
    opened_by = request_context.current()  # the request's address and browser, if in one
    session.add(
        AuthSession(
            ip=opened_by.get("ip"),
            user_agent=opened_by.get("user_agent"),
            kind=kind,
            origin=origin,
            factor=factor,
            verified_at=now if factor is not None and factor != "bypass" else None,
            api_key_id=api_key_id,
            credential_id=credential_id,
            token_hash=hash_token(token),
            teammate_id=teammate.id,
            expires_at=now + timedelta(seconds=ttl),
        )
    )
    return token


def renew(session: Session, auth: AuthSession) -> str:
    """The same session under a new token (when its level rises): a copy of every column but
    the token, and the old row ends."""
    token = new_token()
    kept = {attr.key: getattr(auth, attr.key) for attr in inspect(AuthSession).column_attrs
            if attr.key not in ("id", "token_hash", "ended_at")}
    session.add(AuthSession(**kept, token_hash=hash_token(token)))
    end(session, auth)
    return token


def _is_live(token: str, kind: str) -> ColumnElement[bool]:
    return and_(
        AuthSession.token_hash == hash_token(token),
        AuthSession.kind == kind,
        AuthSession.ended_at.is_(None),
        AuthSession.expires_at > utcnow(),
    )


def _live(session: Session, token: str, kind: str) -> AuthSession | None:
    return session.scalar(select(AuthSession).where(_is_live(token, kind)))


def authenticate(session: Session, token: str) -> Authenticated:
    """The live session of `token` with its teammate and workspace, in one query."""
    row = session.execute(
        select(AuthSession, Teammate, Workspace)
        .join(Teammate, Teammate.id == AuthSession.teammate_id)
        .join(Workspace, Workspace.id == Teammate.workspace_id)
        .where(_is_live(token, "session"))
    ).one_or_none() if token else None
    if row is None:
        raise Unauthenticated("The session is unknown, expired or ended.", "invalid_token")
    return Authenticated(*row)


def find_challenge(session: Session, challenge: str) -> AuthSession | None:
    return _live(session, challenge, "challenge") if challenge else None


def end(session: Session, auth: AuthSession) -> bool:
    """End a session or challenge if it is still live: one conditional UPDATE, so of two
    concurrent ends exactly one gets True (the row lock orders them)."""
    now = utcnow()
    result = session.execute(
        update(AuthSession)
        .where(AuthSession.id == auth.id, AuthSession.ended_at.is_(None))
        .values(ended_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    set_committed_value(auth, "ended_at", now)
    return True


def live_sessions(session: Session, teammate_id: int) -> list[AuthSession]:
    """A teammate's live sessions (not sign-in challenges), newest first."""
    return list(session.scalars(
        select(AuthSession).where(AuthSession.teammate_id == teammate_id,
                                  AuthSession.kind == "session",
                                  AuthSession.ended_at.is_(None),
                                  AuthSession.expires_at > utcnow())
        .order_by(AuthSession.created_at.desc(), AuthSession.id.desc())))


def end_own(session: Session, teammate_id: int, session_id: int) -> None:
    """End one of the teammate's own live sessions; 404 for anyone else's, or one already
    ended (either way nothing of theirs is live under that id)."""
    ended = session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.teammate_id == teammate_id,
               AuthSession.kind == "session", AuthSession.ended_at.is_(None),
               AuthSession.expires_at > utcnow())
        .values(ended_at=utcnow()).execution_options(synchronize_session=False))
    if ended.rowcount != 1:  # type: ignore[attr-defined]
        raise NotFound("You have no live session with this id.", "session_not_found")


def end_opened_by_key(session: Session, api_key_id: int) -> None:
    """End every live session and challenge a host application opened with this API key."""
    session.execute(update(AuthSession)
                    .where(AuthSession.api_key_id == api_key_id, AuthSession.ended_at.is_(None))
                    .values(ended_at=utcnow())
                    .execution_options(synchronize_session=False))


def end_all(session: Session, teammate_id: int, keep: AuthSession | None = None) -> None:
    """End every live session and challenge of a teammate, except `keep` (the caller's own).

    Called whenever the teammate's 2FA changes, so that no session opened under the old
    factors carries on under the new ones.
    """
    stmt = update(AuthSession).where(
        AuthSession.teammate_id == teammate_id, AuthSession.ended_at.is_(None))
    if keep is not None:
        stmt = stmt.where(AuthSession.id != keep.id)
    session.execute(stmt.values(ended_at=utcnow()).execution_options(synchronize_session=False))
