"""Admin-issued bypass codes: for a teammate who lost their device, one sign-in without it.

Less drastic than an admin reset: 2FA stays on, and the session the code opens may start
replacing the authenticator without a current code for a while. A code is single use,
valid for 15 minutes, stored as SHA-256 only, and issuing another voids the first.
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from services.crypto import hash_token
from services.models import Teammate, utcnow

LIFETIME = timedelta(minutes=15)
CODE_BYTES = 10  # 80 bits, like a recovery code


def issue(teammate: Teammate) -> tuple[str, datetime]:
    """A fresh code (shown once) replacing any earlier one; returns it with its expiry."""
    raw = base64.b32encode(secrets.token_bytes(CODE_BYTES)).decode().lower()
    code = "bypass-" + "-".join(raw[i : i + 4] for i in range(0, 16, 4))
    teammate.bypass_code_hash = hash_token(normalize(code))
    teammate.bypass_expires_at = utcnow() + LIFETIME
    return code, teammate.bypass_expires_at


def normalize(code: str) -> str:
    return "".join(c for c in code.lower() if c.isalnum())


def looks_like_bypass(code: str) -> bool:
    return normalize(code).startswith("bypass")


def consume(session: Session, teammate_id: int, code: str) -> bool:
    """Use the code once: one conditional UPDATE, so of concurrent uses exactly one wins."""
    used = session.execute(
        update(Teammate)
        .where(Teammate.id == teammate_id,
               Teammate.bypass_code_hash == hash_token(normalize(code)),
               Teammate.bypass_expires_at > utcnow())
        .values(bypass_code_hash=None, bypass_expires_at=None)
        .execution_options(synchronize_session=False))
    return used.rowcount == 1  # type: ignore[attr-defined]
