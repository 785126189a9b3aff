"""Sign-in: /v1/login, /v1/invitations/accept, /v1/sessions/introspect, /v1/logout."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from services.accounts import login as login_service
from services.accounts import sessions, teammates
from services.api.deps import DB, AnySession, KeyWorkspace, client_ip
from services.api.schemas import AcceptIn, LoginIn, TokenIn
from services.errors import Unauthenticated

router = APIRouter(prefix="/v1", tags=["sign-in"])


@router.post("/login")
def login(body: LoginIn, session: DB, ip: Annotated[str, Depends(client_ip)]) -> dict[str, str]:
    return login_service.login(session, body.workspace, body.email, body.password, ip).as_dict()


@router.post("/invitations/accept")
def accept_invitation(body: AcceptIn, session: DB) -> dict[str, str]:
    """Set a password with the join email's token; then, while 2FA is required, enroll."""
    return teammates.accept(session, body.token, body.password, body.name).as_dict()


@router.post("/sessions/introspect")
def introspect(body: TokenIn, session: DB, workspace: KeyWorkspace) -> dict[str, object]:
    """"May this session in?", asked by a host application with its workspace's API key.

    A token of another workspace answers exactly like an unknown one: a key tells nothing
    about other workspaces' sessions.
    """
    try:
        caller = sessions.authenticate(session, body.token)
    except Unauthenticated:
        return {"active": False}
    if caller.workspace.id != workspace.id:
        return {"active": False}
    return {
        "active": True,
        "teammate_id": caller.teammate.id,
        "email": caller.teammate.email,
        "workspace": workspace.slug,
        "level": caller.level,
    }


@router.post("/logout", status_code=204)
def logout(caller: AnySession, session: DB) -> Response:
    sessions.end(session, caller.auth)
    return Response(status_code=204)
