"""Two-factor routes: the teammate's own setup (/v1/me/two-factor…), the sign-in code step
(/v1/login/two-factor) and an admin's reset of a teammate's 2FA."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from services.accounts import teammates
from services.api.deps import DB, AdminWorkspace, AnySession, FullSession
from services.api.schemas import MAX_ID, CodeIn, ReplaceIn, TwoFactorIn
from services.verification import qr
from services.verification import service as verification

router = APIRouter(prefix="/v1", tags=["two-factor"])

# Secrets and recovery codes must not linger in browser or proxy caches.
NO_STORE = {"Cache-Control": "no-store"}


@router.post("/me/two-factor/setup")
def setup(caller: AnySession, session: DB, response: Response) -> dict[str, str]:
    response.headers.update(NO_STORE)
    started = verification.setup(session, caller.teammate, caller.workspace)
    return {"secret": started.secret, "otpauth_uri": started.otpauth_uri}


@router.get("/me/two-factor/qr.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}}})
def qr_code(caller: AnySession) -> Response:
    uri = verification.pending_uri(caller.teammate, caller.workspace)
    return Response(qr.png(uri), media_type="image/png", headers=NO_STORE)


@router.post("/me/two-factor/confirm")
def confirm(body: CodeIn, caller: AnySession, session: DB, response: Response) -> dict[str, list[str]]:
    response.headers.update(NO_STORE)
    return {"recovery_codes": verification.confirm(session, caller.teammate, body.code,
                                                   current=caller.auth)}


@router.post("/me/two-factor/replace")
def replace(body: ReplaceIn, caller: AnySession, session: DB, response: Response) -> dict[str, str]:
    """A new phone: a new pending secret after a current code; confirm with the new app's code
    to switch (the old app works until then)."""
    response.headers.update(NO_STORE)
    started = verification.replace(session, caller.teammate, caller.workspace, body.code,
                                    caller.auth)
    return {"secret": started.secret, "otpauth_uri": started.otpauth_uri}


@router.delete("/me/two-factor", status_code=204)
def disable(body: CodeIn, caller: AnySession, session: DB) -> Response:
    verification.disable_own(session, caller.teammate, caller.workspace, body.code,
                             current=caller.auth)
    return Response(status_code=204)


@router.post("/me/two-factor/recovery-codes")
def regenerate(body: CodeIn, caller: AnySession, session: DB,
               response: Response) -> dict[str, list[str]]:
    response.headers.update(NO_STORE)
    return {"recovery_codes": verification.regenerate_recovery_codes(session, caller.teammate,
                                                                      body.code)}


@router.post("/login/two-factor")
def login_two_factor(body: TwoFactorIn, session: DB) -> dict[str, str]:
    return {"status": "authenticated",
            "token": verification.verify_challenge(session, body.challenge, body.code)}


@router.post("/workspaces/{slug}/teammates/{teammate_id}/bypass-code", status_code=201)
def issue_bypass_code(teammate_id: Annotated[int, Path(ge=1, le=MAX_ID)],
                      workspace: AdminWorkspace, caller: FullSession, session: DB,
                      response: Response) -> dict[str, str]:
    """A single-use code (15 minutes) for a teammate who lost their device; issuing another
    voids the first."""
    response.headers.update(NO_STORE)
    target = teammates.get(session, workspace, teammate_id)
    code, expires_at = verification.issue_bypass_code(session, workspace, target, caller.teammate)
    return {"code": code, "expires_at": expires_at.isoformat().replace("+00:00", "Z")}


@router.delete("/workspaces/{slug}/teammates/{teammate_id}/two-factor", status_code=204)
def admin_reset(teammate_id: Annotated[int, Path(ge=1, le=MAX_ID)], workspace: AdminWorkspace,
                caller: FullSession, session: DB) -> Response:
    target = teammates.get(session, workspace, teammate_id)
    verification.admin_reset(session, workspace, target, caller.teammate)
    return Response(status_code=204)
