"""WebAuthn challenges: random (256 bits), kept server-side as their SHA-256 with what they
were made for, single use, living TWOFA_CHALLENGE_TTL_SECONDS.

A response names its challenge inside clientDataJSON; `claim` finds the live row for it, and
`consume` uses it up with one conditional UPDATE, so of two requests carrying the same
response exactly one succeeds.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session
from webauthn.helpers import base64url_to_bytes

from services.config import get_settings
from services.models import WebAuthnChallenge, utcnow

CHALLENGE_BYTES = 32

__all__ = ["WebAuthnChallenge", "challenge_of", "claim", "consume", "issue", "raw", "ttl_ms"]


def ttl_ms() -> int:
    return get_settings().challenge_ttl_seconds * 1000


def hash_of(challenge: bytes) -> str:
    return hashlib.sha256(challenge).hexdigest()


def issue(session: Session, purpose: str, *, teammate_id: int | None = None,
          auth_session_id: int | None = None, workspace_id: int | None = None) -> bytes:
    now = utcnow()
    # Expired rows of the past go with each new one: the table stays the size of a TTL.
    session.execute(delete(WebAuthnChallenge).where(
        WebAuthnChallenge.expires_at < now - timedelta(hours=1)))
    challenge = secrets.token_bytes(CHALLENGE_BYTES)
    session.add(WebAuthnChallenge(
        challenge_hash=hash_of(challenge), purpose=purpose, teammate_id=teammate_id,
        auth_session_id=auth_session_id, workspace_id=workspace_id, created_at=now,
        expires_at=now + timedelta(seconds=get_settings().challenge_ttl_seconds)))
    session.flush()
    return challenge


def challenge_of(credential: dict[str, Any], ceremony: str) -> bytes | None:
    """The challenge a response was made for (clientDataJSON), if it is of `ceremony`."""
    try:
        client = json.loads(base64url_to_bytes(credential["response"]["clientDataJSON"]))
        if client.get("type") != ceremony:
            return None
        return base64url_to_bytes(client["challenge"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def raw(credential: dict[str, Any]) -> bytes:
    """The challenge of a response already matched to a live row (see `claim`)."""
    client = json.loads(base64url_to_bytes(credential["response"]["clientDataJSON"]))
    return base64url_to_bytes(client["challenge"])


def claim(session: Session, challenge: bytes | None, purpose: str) -> WebAuthnChallenge | None:
    """The live, unused challenge row of `purpose`; None for anything else."""
    if challenge is None:
        return None
    return session.scalar(select(WebAuthnChallenge).where(
        WebAuthnChallenge.challenge_hash == hash_of(challenge), WebAuthnChallenge.purpose == purpose,
        WebAuthnChallenge.used_at.is_(None), WebAuthnChallenge.expires_at > utcnow()))


def consume(session: Session, row: WebAuthnChallenge) -> bool:
    result = session.execute(
        update(WebAuthnChallenge)
        .where(WebAuthnChallenge.id == row.id, WebAuthnChallenge.used_at.is_(None))
        .values(used_at=utcnow()).execution_options(synchronize_session=False))
    return result.rowcount == 1  # type: ignore[attr-defined]
