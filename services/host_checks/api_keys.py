"""Workspace API keys: `twofa_sk_…`, shown once, stored as SHA-256, revocable, last use kept.

A key identifies a workspace, not a person: it opens only the check endpoints, since it is
no session token (`sessions.authenticate` never accepts it).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from services.accounts import sessions
from services.crypto import hash_token
from services.errors import NotFound, Unauthenticated
from services.events import recorder
from services.events.catalog import EventType
from services.models import ApiKey, Workspace, utcnow

PREFIX = "twofa_sk_"
SHOWN_PREFIX = len(PREFIX) + 6  # enough to tell keys apart in a list, far too little to guess
LAST_USE_PRECISION = timedelta(seconds=60)  # last_used_at is rewritten at most this often


@dataclass(frozen=True)
class KeyHolder:
    """A live API key and its workspace: a host application's call."""

    api_key_id: int
    workspace: Workspace


def create(session: Session, workspace: Workspace, name: str,
           actor_id: int | None = None) -> tuple[ApiKey, str]:
    """A new key; the plaintext is returned once and never stored."""
    key = PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(workspace_id=workspace.id, name=name.strip() or "API key",
                 key_hash=hash_token(key), prefix=key[:SHOWN_PREFIX])
    session.add(row)
    session.flush()
    recorder.record(session, workspace.id, EventType.API_KEY_CREATED,
                    {"api_key_id": row.id, "name": row.name, "actor_id": actor_id})
    return row, key


def list_keys(session: Session, workspace: Workspace) -> list[ApiKey]:
    return list(session.scalars(
        select(ApiKey).where(ApiKey.workspace_id == workspace.id).order_by(ApiKey.id)))


def revoke(session: Session, workspace: Workspace, key_id: int,
           actor_id: int | None = None) -> None:
    """Revoke a key of this workspace (idempotent; another workspace's key is not found).

    The host sessions it opened end with it: they were vouched for by the key alone."""
    row = session.get(ApiKey, key_id)
    if row is None or row.workspace_id != workspace.id:
        raise NotFound("No such API key in this workspace.", "api_key_not_found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        sessions.end_opened_by_key(session, row.id)
        recorder.record(session, workspace.id, EventType.API_KEY_REVOKED,
                        {"api_key_id": row.id, "actor_id": actor_id})


def authenticate(session: Session, key: str) -> KeyHolder:
    """The live key with its workspace; records the use. 401 invalid_api_key otherwise.

    `last_used_at` is written at most once a minute (LAST_USE_PRECISION) per key: a host
    application checks many logins with one key, and an UPDATE per check would make every
    concurrent check queue on that key's row lock. So the recorded last use may be up to a
    minute older than the actual one.
    """
    if not key.startswith(PREFIX):  # a session token or garbage: no lookup needed
        raise Unauthenticated("The API key is unknown or revoked.", "invalid_api_key")
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_token(key)))
    if row is None or row.revoked_at is not None:
        raise Unauthenticated("The API key is unknown or revoked.", "invalid_api_key")
    now = utcnow()
    stale = now - LAST_USE_PRECISION
    if row.last_used_at is None or row.last_used_at < stale:
        # Conditional, so that of concurrent checks seeing the same old value one writes.
        session.execute(
            update(ApiKey)
            .where(ApiKey.id == row.id,
                   or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < stale))
            .values(last_used_at=now)
            .execution_options(synchronize_session=False))
    workspace = session.get(Workspace, row.workspace_id)
    assert workspace is not None
    return KeyHolder(row.id, workspace)

