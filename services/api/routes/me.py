"""The signed-in teammate: /v1/me (the 2FA setup routes live in routes/two_factor.py)."""

from __future__ import annotations

from fastapi import APIRouter

from services.api.deps import DB, AnySession
from services.verification import recovery

router = APIRouter(prefix="/v1", tags=["me"])


@router.get("/me")
def me(caller: AnySession, session: DB) -> dict[str, object]:
    t, w = caller.teammate, caller.workspace
    return {
        "id": t.id,
        "email": t.email,
        "name": t.name,
        "role": t.role,
        "workspace": w.slug,
        "level": caller.level,
        "two_factor": {
            "enabled": t.two_factor_enabled,
            "required": w.require_two_factor,
            # Enforced = required, with no grace period (not built yet) and no exemption.
            "enforced": w.require_two_factor,
            "enforce_at": None,
            "enrolled_at": t.totp_enabled_at.isoformat() if t.totp_enabled_at else None,
            "recovery_codes_left": recovery.remaining(session, t.id),
        },
    }
