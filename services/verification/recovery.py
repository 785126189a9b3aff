"""Recovery codes: 10 single-use codes of 80 bits each, stored as SHA-256 hashes only."""

from __future__ import annotations

import base64
import secrets

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from services.crypto import hash_token
from services.models import RecoveryCode, utcnow

COUNT = 10
CODE_BYTES = 10  # 80 bits: well above the 64-bit floor, 16 base32 characters


def generate() -> list[str]:
    """Fresh codes shown once, grouped `xxxx-xxxx-xxxx-xxxx` for reading aloud or typing."""
    codes = []
    for _ in range(COUNT):
        raw = base64.b32encode(secrets.token_bytes(CODE_BYTES)).decode().lower()
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
    return codes


def normalize(code: str) -> str:
    """What users type differs in case, spaces and dashes; the hash is of the canonical form."""
    raw = "".join(c for c in code.lower() if c.isalnum())
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def replace_all(session: Session, teammate_id: int) -> list[str]:
    """Kill the old set and store a new one; returns the plaintext codes (never stored)."""
    clear(session, teammate_id)
    codes = generate()
    session.add_all(RecoveryCode(teammate_id=teammate_id, code_hash=hash_token(c)) for c in codes)
    session.flush()
    return codes


def clear(session: Session, teammate_id: int) -> None:
    session.execute(delete(RecoveryCode).where(RecoveryCode.teammate_id == teammate_id))


def consume(session: Session, teammate_id: int, code: str) -> bool:
    """Mark the code used, atomically: of two concurrent uses exactly one sees rowcount 1."""
    result = session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.teammate_id == teammate_id,
            RecoveryCode.code_hash == hash_token(normalize(code)),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=utcnow())
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def remaining(session: Session, teammate_id: int) -> int:
    return session.scalar(
        select(func.count()).where(
            RecoveryCode.teammate_id == teammate_id, RecoveryCode.used_at.is_(None)
        )
    ) or 0
