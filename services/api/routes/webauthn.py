"""Security keys and passkeys: a teammate's own keys (/v1/me/two-factor/webauthn…), fresh
request options for a sign-in challenge, and passkey sign-in (/v1/login/passkey…)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from services.api.deps import DB, AnySession, client_ip
from services.api.paging import Page
from services.api.recent_factor import SENSITIVE, SENSITIVE_NEW_METHOD
from services.api.routes.auth import Authenticated
from services.api.schemas import ChallengeIn, KeyIn, KeyNameIn, PasskeyIn, PasskeyOptionsIn
from services.api.types import Id, Timestamp
from services.db import unit_of_work
from services.models import WebAuthnCredential
from services.verification import passkey_step, webauthn_sign_in
from services.verification import webauthn as keys

router = APIRouter(prefix="/v1", tags=["security keys"])

NO_STORE = {"Cache-Control": "no-store"}
Options = Annotated[dict[str, Any], Field(
    description="WebAuthn options in their JSON form (`parseCreationOptionsFromJSON` / "
                "`parseRequestOptionsFromJSON`).")]


class OptionsOut(BaseModel):
    options: Options


class PasskeyOptionsOut(BaseModel):
    challenge: str = Field(description="Send it back with the assertion to /v1/login/passkey.")
    options: Options


class KeyOut(BaseModel):
    id: int
    name: str
    created_at: Timestamp
    last_used_at: Timestamp | None
    backed_up: bool = Field(description="A synced passkey (backed up by its provider).")

    @classmethod
    def of(cls, row: WebAuthnCredential) -> KeyOut:
        return cls(id=row.id, name=row.name, created_at=row.created_at,
                   last_used_at=row.last_used_at, backed_up=row.backed_up)


class NewKeyOut(KeyOut):
    recovery_codes: list[str] | None = Field(
        default=None, description="10 single-use codes, when this key is the first method.")


@router.post("/me/two-factor/webauthn/options")
def registration_options(caller: AnySession, session: DB) -> OptionsOut:
    return OptionsOut(options=keys.registration_options(session, caller.teammate, caller.workspace))


@router.post("/me/two-factor/webauthn", status_code=201, response_model_exclude_unset=True,
             dependencies=[SENSITIVE_NEW_METHOD])
def register(body: KeyIn, caller: AnySession, session: DB, response: Response) -> NewKeyOut:
    """Keep a security key or passkey; the first method turns 2FA on (recovery codes)."""
    response.headers.update(NO_STORE)
    done = keys.register(session, caller.teammate, body.name, body.credential.as_json(),
                         current=caller.auth)
    out = KeyOut.of(done.credential).model_dump()
    if done.recovery_codes is not None:  # a first method only: the field is left out otherwise
        out["recovery_codes"] = done.recovery_codes
    return NewKeyOut(**out)


@router.get("/me/two-factor/webauthn")
def list_keys(caller: AnySession, session: DB) -> Page[KeyOut]:
    return Page[KeyOut].of([KeyOut.of(r) for r in keys.credentials(session, caller.teammate)])


@router.patch("/me/two-factor/webauthn/{credential_id}")
def rename(credential_id: Id, body: KeyNameIn, caller: AnySession, session: DB) -> KeyOut:
    return KeyOut.of(keys.rename(session, caller.teammate, credential_id, body.name))


@router.delete("/me/two-factor/webauthn/{credential_id}", status_code=204,
               dependencies=[SENSITIVE])
def remove(credential_id: Id, caller: AnySession, session: DB) -> Response:
    keys.remove(session, caller.teammate, caller.workspace, credential_id)
    return Response(status_code=204)


@router.post("/login/two-factor/options", tags=["sign-in"])
def second_factor_options(body: ChallengeIn, session: DB) -> OptionsOut:
    """Fresh request options for a live sign-in challenge (the first ones timed out)."""
    return OptionsOut(options=webauthn_sign_in.fresh_options(session, body.challenge))


@router.post("/login/passkey/options", tags=["sign-in"])
def passkey_options(body: PasskeyOptionsIn, session: DB,
                    ip: Annotated[str, Depends(client_ip)]) -> PasskeyOptionsOut:
    challenge, options = webauthn_sign_in.passkey_options(session, body.workspace, ip)
    return PasskeyOptionsOut(challenge=challenge, options=options)


@router.post("/login/passkey", tags=["sign-in"])
async def passkey_login(body: PasskeyIn, request: Request, response: Response) -> Authenticated:
    """No password: a user-verifying passkey is both factors."""
    response.headers.update(NO_STORE)
    # Async: a passkey that verifies, the usual case, is checked on the event loop
    # (passkey_step); the rest goes to the thread pool, in one transaction.
    ip = client_ip(request)
    done = await passkey_step.complete(body.challenge, body.webauthn.as_json(), body.workspace,
                                       ip)
    token = done.token if done is not None else await run_in_threadpool(_passkey_login, body, ip)
    return Authenticated(status="authenticated", token=token)


def _passkey_login(body: PasskeyIn, ip: str) -> str:
    with unit_of_work() as session:
        return webauthn_sign_in.passkey_login(session, body.challenge, body.webauthn.as_json(),
                                              body.workspace, ip)
