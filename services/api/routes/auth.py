"""Sign-in: /v1/login, /v1/invitations/accept, /v1/sessions/introspect, /v1/logout."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from services.accounts import login as login_service
from services.accounts import sessions, teammates
from services.api.deps import DB, AnySession, ApiKeyToken, client_ip
from services.api.schemas import AcceptIn, LoginIn, TokenIn
from services.host_checks import introspection

router = APIRouter(prefix="/v1", tags=["sign-in"])


@router.post("/login")
def login(body: LoginIn, session: DB, ip: Annotated[str, Depends(client_ip)]) -> dict[str, str]:
    return login_service.login(session, body.workspace, body.email, body.password, ip).as_dict()


@router.post("/invitations/accept")
def accept_invitation(body: AcceptIn, session: DB) -> dict[str, str]:
    """Set a password with the join email's token; then, while 2FA is required, enroll."""
    return teammates.accept(session, body.token, body.password, body.name).as_dict()


@router.post("/sessions/introspect")
async def introspect(body: TokenIn, key: ApiKeyToken) -> dict[str, object]:
    """"May this session in?", asked by a host application with its workspace's API key.

    A token of another workspace answers exactly like an unknown one: a key tells nothing
    about other workspaces' sessions. Async and one SELECT: hosts call it on every request.
    """
    return (await introspection.introspect(key, body.token)).as_dict()


@router.post("/logout", status_code=204)
def logout(caller: AnySession, session: DB) -> Response:
    sessions.end(session, caller.auth)
    return Response(status_code=204)
