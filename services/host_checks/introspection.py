"""Read model of POST /v1/sessions/introspect, the host applications' hot check: the API key
by its hash with its workspace, and the live session of the token if it belongs to a
teammate of that same workspace, in one indexed SELECT.

Same rules as `api_keys.authenticate` and `sessions.authenticate`, without the ORM: a host
application asks on every request it serves, so this runs on the event loop through
`db_read`, outside any transaction. Only the key's last use is written, at most once a minute
per key (`api_keys.LAST_USE_PRECISION`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, bindparam, or_, select, update

from services import db_read, enforcement
from services.accounts.session_lookup import live_session, utc
from services.accounts.sessions import Level, Standing
from services.crypto import hash_token
from services.errors import Unauthenticated
from services.host_checks.api_keys import LAST_USE_PRECISION, PREFIX
from services.models import ApiKey, AuthSession, Teammate, Workspace, utcnow

# Left joins: a known key with an unknown token, or with another workspace's, still gives
# its row (the key is good, the session is not active for it).
INTROSPECT = (select(ApiKey.id, ApiKey.revoked_at, ApiKey.last_used_at, Workspace.slug,
                     Workspace.require_two_factor, Workspace.enforce_at, Teammate.id,
                     Teammate.email, Teammate.totp_enabled_at, Teammate.webauthn_enabled_at,
                     Teammate.exempt_until, Workspace.methods_enforce_at,
                     Workspace.allowed_methods, AuthSession.factor, Teammate.role)
              .select_from(ApiKey)
              .join(Workspace, Workspace.id == ApiKey.workspace_id)
              .outerjoin(AuthSession, live_session())
              .outerjoin(Teammate, and_(Teammate.id == AuthSession.teammate_id,
                                        Teammate.workspace_id == ApiKey.workspace_id))
              .where(ApiKey.key_hash == bindparam("key_hash")))

TOUCH_KEY = (update(ApiKey)
             .where(ApiKey.id == bindparam("key_id"),
                    or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < bindparam("stale")))
             .values(last_used_at=bindparam("used_at")))


@dataclass(frozen=True, slots=True)
class Introspection:
    """What a workspace's API key may know of a token: `active` only for its own teammates."""

    workspace: str
    teammate_id: int | None = None
    email: str | None = None
    level: Level | None = None


async def introspect(key: str, token: str) -> Introspection:
    """`token`'s session as `key`'s workspace sees it; 401 invalid_api_key for a bad key."""
    if not key.startswith(PREFIX):  # a session token or garbage: no lookup needed
        raise Unauthenticated("The API key is unknown or revoked.", "invalid_api_key")
    now = utcnow()
    row = await db_read.fetch_one(INTROSPECT, {"key_hash": hash_token(key),
                                               "token_hash": hash_token(token), "now": now})
    if row is None or row[1] is not None:
        raise Unauthenticated("The API key is unknown or revoked.", "invalid_api_key")
    (key_id, _, last_used, slug, required, enforce_at, tid, email, app, keys, exempt,
     methods_enforce_at, allowed, factor, role) = row
    await _record_use(key_id, utc(last_used), now)
    if tid is None:
        return Introspection(slug)
    standing = Standing(bool(required), utc(enforce_at), utc(methods_enforce_at), allowed,
                        utc(exempt), app is not None, keys is not None, factor,
                        enforcement.is_admin(role or ""))
    return Introspection(slug, tid, email, standing.level)


async def _record_use(key_id: int, last_used: datetime | None, now: datetime) -> None:
    """Conditional, so that of the requests seeing the same stale value one writes."""
    stale = now - LAST_USE_PRECISION
    if last_used is None or last_used < stale:
        await db_read.execute(TOUCH_KEY, {"key_id": key_id, "stale": stale, "used_at": now})
