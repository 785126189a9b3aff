"""The signed-in teammate's sessions: /v1/me/sessions (list, end one, end all the others)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from services.accounts import sessions
from services.api.deps import DB, AnySession
from services.api.paging import Page
from services.api.types import Id, Timestamp
from services.models import AuthSession

router = APIRouter(prefix="/v1", tags=["me"])


class SessionOut(BaseModel):
    id: int
    created_at: Timestamp
    ip: str | None = Field(description="The address that opened it (null: not recorded).")
    user_agent: str | None = Field(description="The browser or program that opened it.")
    origin: str = Field(description="How it began: `password`, `passkey` or `host` "
                                    "(a host application's sign-in).")
    current: bool = Field(description="The session making this request.")


def _out(auth: AuthSession, current: AuthSession) -> SessionOut:
    return SessionOut(id=auth.id, created_at=auth.created_at, ip=auth.ip,
                      user_agent=auth.user_agent, origin=sessions.began(auth),
                      current=auth.id == current.id)


@router.get("/me/sessions")
def list_sessions(caller: AnySession, session: DB) -> Page[SessionOut]:
    """Live sessions, newest first: one page (`next_cursor` is always null)."""
    live = sessions.live_sessions(session, caller.teammate.id)
    return Page[SessionOut].of([_out(s, caller.auth) for s in live])


@router.delete("/me/sessions/{session_id}", status_code=204,
               responses={404: {"description": "No live session of yours has this id."}})
def end_session(session_id: Id, caller: AnySession, session: DB) -> Response:
    """Ends one session (the current one too: that is signing out)."""
    sessions.end_own(session, caller.teammate.id, session_id)
    return Response(status_code=204)


@router.delete("/me/sessions", status_code=204)
def end_other_sessions(caller: AnySession, session: DB) -> Response:
    """Ends every other session (and pending sign-in) of the teammate."""
    sessions.end_all(session, caller.teammate.id, keep=caller.auth)
    return Response(status_code=204)

