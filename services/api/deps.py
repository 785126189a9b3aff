"""Request-scoped dependencies: the transaction, the caller, the caller's rights."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session

from services.accounts import sessions
from services.db import session_factory
from services.errors import Forbidden, NotFound, TwofaError, Unauthenticated
from services.models import Workspace


def db() -> Iterator[Session]:
    """One transaction per request; failed attempts (keep_changes errors) still commit.

    Used with scope="function" (see `DB`): the COMMIT runs before the response is sent, so a
    200 means committed, and a failing COMMIT becomes the answer instead of a lost write.
    """
    session = session_factory()()
    try:
        yield session
        session.commit()
    except TwofaError as exc:
        session.commit() if exc.keep_changes else session.rollback()
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# scope="function": FastAPI runs the cleanup (the COMMIT) before it sends the response; the
# default ("request") would commit after the client already has its 200.
DB = Annotated[Session, Depends(db, scope="function")]


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Send Authorization: Bearer <token>.", "unauthenticated")
    return token.strip()


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def any_session(session: DB, token: Annotated[str, Depends(bearer)]) -> sessions.Authenticated:
    """A session at any level: for /v1/me… and /v1/logout."""
    return sessions.authenticate(session, token)


def full_session(
    caller: Annotated[sessions.Authenticated, Depends(any_session)],
) -> sessions.Authenticated:
    if caller.level != "full":
        raise Forbidden(
            "Set up two-factor authentication first: this session may only enroll.",
            "enrollment_required",
        )
    return caller


AnySession = Annotated[sessions.Authenticated, Depends(any_session)]
FullSession = Annotated[sessions.Authenticated, Depends(full_session)]


def admin_workspace(caller: FullSession, slug: Annotated[str, Path()]) -> Workspace:
    """The workspace in the path, if the caller administers it: 404 for outsiders."""
    if caller.workspace.slug != slug:  # unknown and someone else's look the same
        raise NotFound(f"No workspace {slug!r}.", "workspace_not_found")
    if caller.teammate.role != "admin":
        raise Forbidden("Only admins of this workspace may do this.", "forbidden")
    return caller.workspace


AdminWorkspace = Annotated[Workspace, Depends(admin_workspace)]
