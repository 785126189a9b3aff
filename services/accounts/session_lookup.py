"""Read model of GET /v1/me, one indexed SELECT of the columns needed: a live session by its
token's hash, with its teammate, workspace and the count of unused recovery codes.

Same rules as `sessions.authenticate`, without the ORM: it runs on the event loop through
`db_read`, outside any transaction. (Introspection, the host applications' hot check, is
services/host_checks/introspection.py.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, and_, bindparam, func, select

from services import db_read, enforcement
from services.accounts.sessions import Level, Standing
from services.crypto import hash_token
from services.errors import Unauthenticated
from services.i18n.locales import effective
from services.models import AuthSession, RecoveryCode, Teammate, UTCDateTime, Workspace, utcnow

NOW = bindparam("now", type_=UTCDateTime)


def live_session() -> ColumnElement[bool]:
    return and_(AuthSession.token_hash == bindparam("token_hash"), AuthSession.kind == "session",
                AuthSession.ended_at.is_(None), AuthSession.expires_at > NOW)


_RECOVERY_LEFT = (select(func.count()).where(RecoveryCode.teammate_id == Teammate.id,
                                             RecoveryCode.used_at.is_(None))
                  .scalar_subquery())

ME = (select(Teammate.id, Teammate.email, Teammate.name, Teammate.role, Teammate.totp_enabled_at,
             Teammate.webauthn_enabled_at,
             AuthSession.origin, Workspace.id, Workspace.slug, Workspace.require_two_factor,
             Workspace.enforce_at, Teammate.exempt_until, _RECOVERY_LEFT,
             Workspace.methods_enforce_at, Workspace.allowed_methods, AuthSession.factor,
             Teammate.locale, Teammate.time_zone)
      .select_from(AuthSession)
      .join(Teammate, Teammate.id == AuthSession.teammate_id)
      .join(Workspace, Workspace.id == Teammate.workspace_id)
      .where(live_session()))

@dataclass(frozen=True, slots=True)
class Me:
    teammate_id: int
    email: str
    name: str
    role: str
    enrolled_at: datetime | None
    origin: str
    workspace_id: int
    workspace: str
    require_two_factor: bool
    enforce_at: datetime | None
    enforced: bool
    recovery_codes_left: int
    methods: tuple[str, ...] = ()

    level: Level = "full"
    locale: str = "en"
    time_zone: str | None = None


async def me(token: str) -> Me:
    """The signed-in teammate of a live session token; 401 invalid_token otherwise."""
    row = await db_read.fetch_one(ME, {"token_hash": hash_token(token), "now": utcnow()}) \
        if token else None
    if row is None:
        raise Unauthenticated("The session is unknown, expired or ended.", "invalid_token")
    (tid, email, name, role, app, keys, origin, wid, slug, required, enforce_at, exempt, left,
     methods_enforce_at, allowed, factor, locale, time_zone) = row
    enforce_at, exempt, app, keys = utc(enforce_at), utc(exempt), utc(app), utc(keys)
    standing = Standing(bool(required), enforce_at, utc(methods_enforce_at), allowed, exempt,
                        app is not None, keys is not None, factor, enforcement.is_admin(role))
    enrolled = min((t for t in (app, keys) if t is not None), default=None)
    methods = tuple(m for m, on in (("totp", app), ("webauthn", keys)) if on is not None)
    return Me(tid, email, name, role, enrolled, origin, wid, slug, bool(required),
              enforce_at if required else None, standing.enforced, int(left), methods,
              standing.level, effective(locale), time_zone)


def utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None
