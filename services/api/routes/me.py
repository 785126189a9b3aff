"""The signed-in teammate: /v1/me (the 2FA setup routes live in routes/two_factor.py)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import func, select

from services.api.deps import DB, AnySession
from services.models import RecoveryCode

router = APIRouter(prefix="/v1", tags=["me"])


@router.get("/me")
def me(caller: AnySession, session: DB) -> dict[str, object]:
    t, w = caller.teammate, caller.workspace
    codes_left = session.scalar(
        select(func.count()).where(
            RecoveryCode.teammate_id == t.id, RecoveryCode.used_at.is_(None)
        )
    )
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
            "enrolled_at": t.totp_enabled_at.isoformat() if t.totp_enabled_at else None,
            "recovery_codes_left": codes_left or 0,
        },
    }
