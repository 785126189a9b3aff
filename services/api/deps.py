"""Request-scoped dependencies: the transaction, the caller, the caller's rights."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from services import jsonlog
from services.accounts import sessions
from services.db import unit_of_work
from services.errors import Forbidden, NotFound, Unauthenticated
from services.host_checks import api_keys
from services.models import Workspace


def db() -> Iterator[Session]:
    """One transaction per request (`unit_of_work`: failed attempts, keep_changes errors,
    still commit).

    Used with scope="function" (see `DB`): the COMMIT runs before the response is sent, so a
    200 means committed, and a failing COMMIT becomes the answer instead of a lost write.
    """
    with unit_of_work() as session:
        yield session


# scope="function": FastAPI runs the cleanup (the COMMIT) before it sends the response; the
# default ("request") would commit after the client already has its 200.
DB = Annotated[Session, Depends(db, scope="function")]


def bearer_token(request: Request, code: str, hint: str = "<token>") -> str:
    """The token of `Authorization: Bearer …`; a 401 with `code` when there is none."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Send Authorization: Bearer {hint}.", code, hint=hint)
    return token.strip()


# Declares the bearer scheme in the OpenAPI document (/docs' "Authorize" button). It never
# answers itself (auto_error=False): bearer_token below keeps the error format.
BEARER_SCHEME = HTTPBearer(auto_error=False, description=(
    "A session token from /v1/login; for /v1/checks/… and introspection, a workspace API key."))
BearerDeclared = Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER_SCHEME)]


def bearer(request: Request, _: BearerDeclared) -> str:
    return bearer_token(request, "unauthenticated")


# The hot checks (/v1/me, introspection) read their token with `bearer_token` in the route,
# first thing, before any body is read: two dependencies (the scheme and the header check)
# cost ~25 µs of CPU per request in FastAPI's solver (docs/measurements.md). This declares
# the same security requirement in the OpenAPI document as BearerDeclared does.
BEARER_DOCUMENTED: dict[str, Any] = {"security": [{BEARER_SCHEME.scheme_name: []}]}


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def any_session(session: DB, token: Annotated[str, Depends(bearer)]) -> sessions.Authenticated:
    """A session at any level: for /v1/me… and /v1/logout."""
    caller = sessions.authenticate(session, token)
    jsonlog.bind(workspace_id=caller.workspace.id, teammate_id=caller.teammate.id)  # log lines
    return caller


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


def admin_workspace(caller: AnySession, slug: Annotated[str, Path()]) -> Workspace:
    """The workspace in the path, if the caller administers it: 404 for outsiders.

    A host session (begun with an API key at /v1/checks/login) is refused whatever the
    teammate's role: an API key vouches for a first factor, never for admin powers.
    """
    if caller.workspace.slug != slug:  # unknown and someone else's look the same
        raise NotFound("No workspace {slug}.", "workspace_not_found", slug=repr(slug))
    if caller.is_host_session:
        raise Forbidden("A session begun by a host application cannot administer the "
                        "workspace; sign in to twofa itself.", "forbidden")
    full_session(caller)
    if caller.teammate.role != "admin":
        raise Forbidden("Only admins of this workspace may do this.", "forbidden")
    return caller.workspace


AdminWorkspace = Annotated[Workspace, Depends(admin_workspace)]


def key_holder(session: DB, request: Request, _: BearerDeclared) -> api_keys.KeyHolder:
    """The API key in `Authorization: Bearer twofa_sk_…`, with its workspace."""
    holder = api_keys.authenticate(session, bearer_token(request, "invalid_api_key", "twofa_sk_…"))
    jsonlog.bind(workspace_id=holder.workspace.id)  # log lines
    return holder


KeyHolder = Annotated[api_keys.KeyHolder, Depends(key_holder)]
