"""Host-application checks (/v1/checks/…, with a workspace API key) and the admins' API keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import Field

from services.api.deps import DB, AdminWorkspace, FullSession, KeyWorkspace
from services.api.schemas import MAX_ID, Body, Short, Text
from services.host_checks import api_keys, login_check

router = APIRouter(prefix="/v1")
KeyId = Annotated[int, Path(ge=1, le=MAX_ID)]


class CheckLoginIn(Body):
    email: Short


class ApiKeyIn(Body):
    name: Annotated[str, Field(min_length=1, max_length=200), Text]


@router.post("/checks/login", tags=["host checks"])
def check_login(body: CheckLoginIn, session: DB, workspace: KeyWorkspace) -> dict[str, str]:
    return login_check.check_login(session, workspace, body.email).as_dict()


@router.post("/workspaces/{slug}/api-keys", status_code=201, tags=["admin"])
def create_api_key(body: ApiKeyIn, workspace: AdminWorkspace, caller: FullSession, session: DB,
                   response: Response) -> dict[str, object]:
    response.headers["Cache-Control"] = "no-store"
    row, key = api_keys.create(session, workspace, body.name, actor_id=caller.teammate.id)
    return {**api_keys.as_dict(row), "key": key}


@router.get("/workspaces/{slug}/api-keys", tags=["admin"])
def list_api_keys(workspace: AdminWorkspace, session: DB) -> dict[str, object]:
    return {"items": [api_keys.as_dict(k) for k in api_keys.list_keys(session, workspace)]}


@router.delete("/workspaces/{slug}/api-keys/{key_id}", status_code=204, tags=["admin"])
def revoke_api_key(key_id: KeyId, workspace: AdminWorkspace, caller: FullSession,
                   session: DB) -> Response:
    api_keys.revoke(session, workspace, key_id, actor_id=caller.teammate.id)
    return Response(status_code=204)
