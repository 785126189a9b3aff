"""Two-factor routes: the teammate's own setup (/v1/me/two-factor…), the sign-in code step
(/v1/login/two-factor) and an admin's reset of a teammate's 2FA."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from services.accounts import sessions, teammates
from services.api import errors
from services.api.deps import DB, AdminWorkspace, AnySession, FullSession
from services.api.recent_factor import SENSITIVE, SENSITIVE_NEW_METHOD
from services.api.routes.auth import Authenticated, EnrollmentRequired
from services.api.schemas import CodeIn, MaybeCodeIn, ReauthenticateIn, TwoFactorIn
from services.api.types import Id, Timestamp
from services.db import unit_of_work
from services.errors import TwofaError
from services.verification import code_step, key_step, qr, recent, webauthn_sign_in
from services.verification import service as verification

router = APIRouter(prefix="/v1", tags=["two-factor"])
SecondFactorAnswer = Annotated[Authenticated | EnrollmentRequired, Field(discriminator="status")]

# Secrets and recovery codes must not linger in browser or proxy caches.
NO_STORE = {"Cache-Control": "no-store"}


class SecretOut(BaseModel):
    secret: str = Field(description="Base32, for typing into an authenticator app.")
    otpauth_uri: str = Field(description="The same as an `otpauth://totp/…` URI (the QR code).")


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str] = Field(description="10 single-use codes, shown this once.")


class BypassCodeOut(BaseModel):
    code: str = Field(description="Accepted once as `code` at /v1/login/two-factor.")
    expires_at: Timestamp


@router.post("/me/two-factor/setup", dependencies=[SENSITIVE_NEW_METHOD])
def setup(caller: AnySession, session: DB, response: Response) -> SecretOut:
    response.headers.update(NO_STORE)
    started = verification.setup(session, caller.teammate, caller.workspace)
    return SecretOut(secret=started.secret, otpauth_uri=started.otpauth_uri)


@router.get("/me/two-factor/qr.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}}})
def qr_code(caller: AnySession) -> Response:
    uri = verification.pending_uri(caller.teammate, caller.workspace, caller.auth)
    return Response(qr.png(uri), media_type="image/png", headers=NO_STORE)


class ConfirmedOut(BaseModel):
    recovery_codes: list[str] | None = Field(
        default=None, description="10 single-use codes, for a first method or a replacement; "
                                  "left out for an app added beside keys (their codes stay).")


@router.post("/me/two-factor/confirm", response_model_exclude_unset=True)
def confirm(body: CodeIn, caller: AnySession, session: DB, response: Response) -> ConfirmedOut:
    response.headers.update(NO_STORE)
    codes = verification.confirm(session, caller.teammate, body.code, current=caller.auth)
    return ConfirmedOut(recovery_codes=codes) if codes else ConfirmedOut()


@router.post("/me/two-factor/replace", dependencies=[SENSITIVE_NEW_METHOD])
def replace(body: MaybeCodeIn, caller: AnySession, session: DB, response: Response) -> SecretOut:
    """A new phone: a new pending secret for this session (a code of the current app or a
    recovery code, or a recently verified session); confirm with the new app's code to switch
    (the old app works until then)."""
    response.headers.update(NO_STORE)
    started = verification.replace(session, caller.teammate, caller.workspace, body.code,
                                    caller.auth)
    return SecretOut(secret=started.secret, otpauth_uri=started.otpauth_uri)


@router.delete("/me/two-factor", status_code=204, dependencies=[SENSITIVE])
def disable(caller: AnySession, session: DB, body: MaybeCodeIn | None = None) -> Response:
    verification.disable_own(session, caller.teammate, caller.workspace,
                             body.code if body else None, current=caller.auth)
    return Response(status_code=204)


@router.delete("/me/two-factor/totp", status_code=204)
def remove_app(body: CodeIn, caller: AnySession, session: DB) -> Response:
    """Remove the authenticator app alone; security keys stay (with none, as DELETE
    /v1/me/two-factor). Its code is always checked."""
    verification.remove_app(session, caller.teammate, caller.workspace, body.code,
                            current=caller.auth)
    return Response(status_code=204)


@router.post("/me/two-factor/recovery-codes", dependencies=[SENSITIVE])
def regenerate(caller: AnySession, session: DB, response: Response,
               body: MaybeCodeIn | None = None) -> RecoveryCodesOut:
    response.headers.update(NO_STORE)
    return RecoveryCodesOut(recovery_codes=verification.regenerate_recovery_codes(
        session, caller.teammate, body.code if body else None, current=caller.auth))


@router.post("/me/reauthenticate", status_code=204)
def reauthenticate(body: ReauthenticateIn, caller: AnySession, session: DB) -> Response:
    """Verify a second factor again (a TOTP or recovery code, or a security key's assertion
    for the options of `/v1/me/reauthenticate/options`, under the sign-in throttle): for
    TWOFA_REAUTH_SECONDS this session may make sensitive changes without a code."""
    if body.code is not None:
        recent.reauthenticate(session, caller, body.code)
    else:
        assert body.challenge is not None and body.webauthn is not None
        recent.reauthenticate_with_key(session, caller, body.challenge, body.webauthn.as_json())
    return Response(status_code=204)


class ReauthOptionsOut(BaseModel):
    challenge: str = Field(description="Send it back with the assertion to /v1/me/reauthenticate.")
    options: dict[str, Any] = Field(description="PublicKeyCredentialRequestOptions (JSON form) "
                                                "for the caller's keys, bound to this session.")


@router.post("/me/reauthenticate/options")
def reauthenticate_options(caller: AnySession, session: DB) -> ReauthOptionsOut:
    """Request options to re-authenticate with one of your security keys. 409
    `no_security_key` without one; 409 `webauthn_unavailable` when WebAuthn is off."""
    challenge, options = recent.key_options(session, caller)
    return ReauthOptionsOut(challenge=challenge, options=options)


@router.post("/login/two-factor", response_model=SecondFactorAnswer)
async def login_two_factor(body: TwoFactorIn, request: Request) -> Any:
    """Complete a sign-in challenge with `code` or with a security key (`webauthn`). Under
    `security_keys`, once held to it, an app's code or a recovery code opens a session at
    enrollment level only (`enrollment_required`), to add a key."""
    # Async: an app's code or a key's assertion that verifies, the usual cases, are checked
    # on the event loop (code_step, key_step); the rest goes to the thread pool, in one
    # transaction as a sync route has.
    try:
        if body.webauthn is not None:
            done = await key_step.complete(body.challenge, body.webauthn.as_json())
        else:
            assert body.code is not None
            done = await code_step.complete(body.challenge, body.code)
    except TwofaError as exc:
        # A refused code, the answer a guesser gets, is answered here: raised through the
        # framework's middlewares it cost ~0.8 ms of CPU more (docs/measurements.md).
        return errors.response_for(request, exc)
    if done is None:
        token, level = await run_in_threadpool(_complete, body)
    else:
        token, level = done.token, done.level
    if level == "enrollment":
        return EnrollmentRequired(status="enrollment_required", token=token)
    return Authenticated(status="authenticated", token=token)


def _complete(body: TwoFactorIn) -> tuple[str, sessions.Level]:
    with unit_of_work() as session:
        if body.webauthn is not None:
            token = webauthn_sign_in.verify_second_factor(session, body.challenge,
                                                          body.webauthn.as_json())
        else:
            assert body.code is not None
            token = verification.verify_challenge(session, body.challenge, body.code)
        return token, sessions.authenticate(session, token).level


@router.post("/workspaces/{slug}/teammates/{teammate_id}/bypass-code", status_code=201,
             dependencies=[SENSITIVE])
def issue_bypass_code(teammate_id: Id, workspace: AdminWorkspace, caller: FullSession,
                      session: DB, response: Response) -> BypassCodeOut:
    """A single-use code (15 minutes) for a teammate who lost their device; issuing another
    voids the first."""
    response.headers.update(NO_STORE)
    target = teammates.get(session, workspace, teammate_id)
    code, expires_at = verification.issue_bypass_code(session, workspace, target, caller.teammate)
    return BypassCodeOut(code=code, expires_at=expires_at)


@router.delete("/workspaces/{slug}/teammates/{teammate_id}/two-factor", status_code=204,
               dependencies=[SENSITIVE])
def admin_reset(teammate_id: Id, workspace: AdminWorkspace, caller: FullSession,
                session: DB) -> Response:
    target = teammates.get(session, workspace, teammate_id)
    verification.admin_reset(session, workspace, target, caller.teammate)
    return Response(status_code=204)
