"""The signed-in teammate: /v1/me (the 2FA setup routes live in routes/two_factor.py)."""

from __future__ import annotations

from fastapi import APIRouter

from services import jsonlog
from services.accounts import session_lookup
from services.api.deps import SessionToken

router = APIRouter(prefix="/v1", tags=["me"])


@router.get("/me")
async def me(token: SessionToken) -> dict[str, object]:
    """Async and one SELECT (session, teammate, workspace, recovery codes left)."""
    m = await session_lookup.me(token)
    jsonlog.bind(workspace_id=m.workspace_id, teammate_id=m.teammate_id)  # log lines
    return {
        "id": m.teammate_id,
        "email": m.email,
        "name": m.name,
        "role": m.role,
        "workspace": m.workspace,
        "level": m.level,
        "two_factor": {
            "enabled": m.enrolled_at is not None,
            "required": m.require_two_factor,
            "enforced": m.enforced,
            "enforce_at": m.enforce_at.isoformat().replace("+00:00", "Z") if m.enforce_at else None,
            "enrolled_at": m.enrolled_at.isoformat() if m.enrolled_at else None,
            "recovery_codes_left": m.recovery_codes_left,
        },
    }
