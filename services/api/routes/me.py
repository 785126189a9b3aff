"""The signed-in teammate: /v1/me (the 2FA setup routes live in routes/two_factor.py)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from services import jsonlog
from services.accounts import session_lookup
from services.accounts.sessions import Level
from services.api.deps import SessionToken
from services.api.types import Timestamp
from services.verification import relying_party

router = APIRouter(prefix="/v1", tags=["me"])


class TwoFactorStateOut(BaseModel):
    enabled: bool
    required: bool = Field(description="The workspace requires 2FA.")
    enforced: bool = Field(description="Required, and held to it now (no grace, no exemption).")
    enforce_at: Timestamp | None = Field(description="When a grace period ends, if one runs.")
    enrolled_at: Timestamp | None
    recovery_codes_left: int
    methods: list[str] = Field(description="`totp` (an authenticator app), `webauthn` "
                                           "(security keys and passkeys).")


class MeOut(BaseModel):
    id: int
    email: str
    name: str
    role: str
    workspace: str = Field(description="The workspace's slug.")
    level: Level = Field(description="`enrollment`: this session may only set up 2FA.")
    two_factor: TwoFactorStateOut


@router.get("/me")
async def me(token: SessionToken) -> MeOut:
    """Async and one SELECT (session, teammate, workspace, recovery codes left)."""
    m = await session_lookup.me(token)
    jsonlog.bind(workspace_id=m.workspace_id, teammate_id=m.teammate_id)  # log lines
    return MeOut(
        id=m.teammate_id, email=m.email, name=m.name, role=m.role, workspace=m.workspace,
        level=m.level,
        two_factor=TwoFactorStateOut(
            enabled=m.enrolled_at is not None,
            required=m.require_two_factor,
            enforced=m.enforced,
            enforce_at=m.enforce_at,
            enrolled_at=m.enrolled_at,
            recovery_codes_left=m.recovery_codes_left,
            methods=[x for x in m.methods if x != "webauthn" or relying_party.available()],
        ),
    )
