"""Passwords: a signed-in teammate's change (/v1/me/password) and the forgotten-password
reset by email (/v1/password-reset, /v1/password-reset/confirm)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from services.accounts import password_change, password_reset
from services.api.deps import DB, AnySession, client_ip
from services.api.recent_factor import SENSITIVE_FIRST
from services.api.routes.auth import SignIn, sign_in
from services.api.schemas import PasswordChangeIn, PasswordResetConfirmIn, PasswordResetIn

router = APIRouter(prefix="/v1", tags=["passwords"])


@router.post("/me/password", status_code=204, dependencies=[SENSITIVE_FIRST])
def change_password(body: PasswordChangeIn, caller: AnySession, session: DB) -> Response:
    """A sensitive change (a recently verified second factor), checked before the current
    password so a stale session learns nothing about it; ends the other sessions. A wrong
    `current_password` is 403 `wrong_password`."""
    password_change.change(session, caller, body.current_password, body.new_password)
    return Response(status_code=204)


@router.post("/password-reset", status_code=202, response_class=Response, responses={
    202: {"description": "Accepted, whatever the address; no body."}})
def request_reset(body: PasswordResetIn, session: DB,
                  ip: Annotated[str, Depends(client_ip)]) -> Response:
    """202 whatever the address: a teammate who joined gets a link by email (one hour,
    single use, voided by a newer one). 5 requests per address per 15 minutes (429); at
    most 3 emails per teammate an hour, the rest dropped silently."""
    password_reset.request(body.workspace, body.email, ip, session)
    return Response(status_code=202)


@router.post("/password-reset/confirm")
def confirm_reset(body: PasswordResetConfirmIn, session: DB) -> SignIn:
    """The same answers as /v1/login: a teammate with 2FA gets `two_factor_required`.
    Every session of the teammate ends."""
    return sign_in(password_reset.confirm(session, body.token, body.password), session)
