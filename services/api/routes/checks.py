"""Host-application checks (/v1/checks/…, with a workspace API key) and the admins' API keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from services.api.deps import DB, AdminWorkspace, FullSession, KeyHolder
from services.api.paging import Page
from services.api.recent_factor import SENSITIVE
from services.api.routes.auth import SignIn, sign_in
from services.api.schemas import Body, Short, Text
from services.api.types import Id, Timestamp
from services.host_checks import api_keys, login_check
from services.models import ApiKey

router = APIRouter(prefix="/v1")


class CheckLoginIn(Body):
    email: Short


class ApiKeyIn(Body):
    name: Annotated[str, Field(min_length=1, max_length=200), Text]


class ApiKeyOut(BaseModel):
    id: int
    name: str
    prefix: str = Field(description="The key's first characters, to tell keys apart.")
    created_at: Timestamp
    last_used_at: Timestamp | None = Field(
        description="Written at most once a minute per key, so up to a minute behind.")
    revoked_at: Timestamp | None

    @classmethod
    def of(cls, row: ApiKey) -> ApiKeyOut:
        return cls(id=row.id, name=row.name, prefix=row.prefix, created_at=row.created_at,
                   last_used_at=row.last_used_at, revoked_at=row.revoked_at)


class NewApiKeyOut(ApiKeyOut):
    key: str = Field(description="The key itself (`twofa_sk_…`), in this answer only.")


@router.post("/checks/login", tags=["host checks"], response_model_exclude_none=True)
def check_login(body: CheckLoginIn, session: DB, holder: KeyHolder) -> SignIn:
    return sign_in(login_check.check_login(session, holder, body.email), session)


@router.post("/workspaces/{slug}/api-keys", status_code=201, tags=["admin"],
             dependencies=[SENSITIVE])
def create_api_key(body: ApiKeyIn, workspace: AdminWorkspace, caller: FullSession, session: DB,
                   response: Response) -> NewApiKeyOut:
    response.headers["Cache-Control"] = "no-store"
    row, key = api_keys.create(session, workspace, body.name, actor_id=caller.teammate.id)
    return NewApiKeyOut(**ApiKeyOut.of(row).model_dump(), key=key)


@router.get("/workspaces/{slug}/api-keys", tags=["admin"])
def list_api_keys(workspace: AdminWorkspace, session: DB) -> Page[ApiKeyOut]:
    """Every key of the workspace, revoked ones included, oldest first (one page)."""
    return Page[ApiKeyOut].of([ApiKeyOut.of(k) for k in api_keys.list_keys(session, workspace)])


@router.delete("/workspaces/{slug}/api-keys/{key_id}", status_code=204, tags=["admin"])
def revoke_api_key(key_id: Id, workspace: AdminWorkspace, caller: FullSession,
                   session: DB) -> Response:
    api_keys.revoke(session, workspace, key_id, actor_id=caller.teammate.id)
    return Response(status_code=204)
