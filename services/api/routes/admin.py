"""Workspace administration: the 2FA policy and the audit log (teammates: routes/teammates.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.api.deps import DB, AdminWorkspace, FullSession
from services.api.schemas import MAX_ID, PolicyIn, Text
from services.events import audit
from services.policy import service as policy

Cursor = Annotated[int | None, Query(ge=0, le=MAX_ID)]

router = APIRouter(prefix="/v1/workspaces/{slug}", tags=["admin"])


@router.get("/two-factor-policy")
def get_policy(workspace: AdminWorkspace, session: DB) -> dict[str, object]:
    return policy.as_dict(workspace, policy.rollout(session, workspace))


@router.put("/two-factor-policy")
def put_policy(
    body: PolicyIn, workspace: AdminWorkspace, caller: FullSession, session: DB
) -> dict[str, object]:
    # set_policy's locked get (populate_existing) refreshes and updates this very object:
    # the session's identity map holds one Workspace per row.
    policy.set_policy(session, workspace, body.require_two_factor, caller.teammate.id)
    return policy.as_dict(workspace, policy.rollout(session, workspace))


@router.get("/events")
def list_events(
    workspace: AdminWorkspace,
    session: DB,
    type: Annotated[Annotated[str, Text] | None, Query(max_length=64)] = None,
    after: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, object]:
    items, next_seq = audit.page(session, workspace, type, after, limit)
    return {"items": items, "next_cursor": str(next_seq) if next_seq is not None else None}
