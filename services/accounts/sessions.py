"""Bearer sessions and login challenges. Tokens are random; only their SHA-256 is stored.

A session's level is decided at every request, never stored: once the workspace requires
2FA, a teammate without it is at `enrollment` level whenever the session was opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy import ColumnElement, and_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from services.config import get_settings
from services.crypto import hash_token, new_token
from services.errors import Unauthenticated
from services.models import AuthSession, Teammate, Workspace, utcnow

Level = Literal["full", "enrollment"]
Status = Literal["authenticated", "two_factor_required", "enrollment_required"]


@dataclass(frozen=True)
class Authenticated:
    auth: AuthSession
    teammate: Teammate
    workspace: Workspace

    @property
    def level(self) -> Level:
        return level_of(self.teammate, self.workspace)


@dataclass(frozen=True)
class SignIn:
    """What a passed first factor leads to: the body of /v1/login's 200 answer."""

    status: Status
    token: str | None = None
    challenge: str | None = None

    def as_dict(self) -> dict[str, str]:
        body: dict[str, str] = {"status": self.status}
        if self.token:
            body["token"] = self.token
        if self.challenge:
            body["challenge"] = self.challenge
        return body


def level_of(teammate: Teammate, workspace: Workspace) -> Level:
    if workspace.require_two_factor and not teammate.two_factor_enabled:
        return "enrollment"
    return "full"


def after_first_factor(session: Session, teammate: Teammate, workspace: Workspace) -> SignIn:
    """The step after a password (or a host application's own first factor) checked out."""
    if teammate.two_factor_enabled:
        return SignIn("two_factor_required", challenge=_open(session, teammate, "challenge"))
    token = _open(session, teammate, "session")
    if workspace.require_two_factor:
        return SignIn("enrollment_required", token=token)
    return SignIn("authenticated", token=token)


def open_session(session: Session, teammate: Teammate) -> str:
    return _open(session, teammate, "session")


def _open(session: Session, teammate: Teammate, kind: str) -> str:
    settings = get_settings()
    ttl = settings.challenge_ttl_seconds if kind == "challenge" else settings.session_ttl_seconds
    token = new_token()
    session.add(
        AuthSession(
            kind=kind,
            token_hash=hash_token(token),
            teammate_id=teammate.id,
            expires_at=utcnow() + timedelta(seconds=ttl),
        )
    )
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


def end_all(session: Session, teammate_id: int, kind: str = "challenge") -> None:
    session.execute(
        update(AuthSession)
        .where(
            AuthSession.teammate_id == teammate_id,
            AuthSession.kind == kind,
            AuthSession.ended_at.is_(None),
        )
        .values(ended_at=utcnow())
    )
