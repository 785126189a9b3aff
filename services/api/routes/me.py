"""The signed-in teammate: /v1/me (the 2FA setup routes live in routes/two_factor.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from services import jsonlog
from services.accounts import preferences, session_lookup
from services.accounts.sessions import Level
from services.api.deps import BEARER_DOCUMENTED, DB, AnySession, bearer_token
from services.api.schemas import MeIn
from services.api.types import Timestamp
from services.i18n.locales import effective
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
    locale: str = Field(description="The language of their emails and pages: `en`, `de`, `es`.")
    time_zone: str | None = Field(description="The IANA time zone their times are said in; "
                                              "`null`: UTC.")


class PreferencesOut(BaseModel):
    locale: str
    time_zone: str | None


@router.get("/me", response_model=MeOut, openapi_extra=BEARER_DOCUMENTED)
async def me(request: Request) -> Response:
    """Async and one SELECT (session, teammate, workspace, recovery codes left)."""
    m = await session_lookup.me(bearer_token(request, "unauthenticated"))
    jsonlog.bind(workspace_id=m.workspace_id, teammate_id=m.teammate_id)  # log lines
    answer = MeOut(
        id=m.teammate_id, email=m.email, name=m.name, role=m.role, workspace=m.workspace,
        level=m.level, locale=m.locale, time_zone=m.time_zone,
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
    # Serialised here, as introspection is: FastAPI would validate the model it was just
    # built from again (response_model above still documents it, schemathesis checks it).
    return Response(answer.model_dump_json(), media_type="application/json")


@router.patch("/me")
def change_me(body: MeIn, caller: AnySession, session: DB) -> PreferencesOut:
    """Change the language (`locale`) and time zone (`time_zone`, `null` for UTC) of your
    emails and pages; a field left out stays as it is. 422 `invalid_request` for a language
    twofa does not speak or a zone that is not an IANA name."""
    given = body.model_fields_set
    preferences.change(session, caller.teammate,
                       locale=body.locale if "locale" in given else preferences.UNSET,
                       time_zone=body.time_zone if "time_zone" in given else preferences.UNSET)
    return PreferencesOut(locale=effective(caller.teammate.locale),
                          time_zone=caller.teammate.time_zone)
