"""Workspace administration: the 2FA policy (teammates: routes/teammates.py, the audit log:
routes/events.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.accounts import teammates
from services.api.deps import DB, AdminWorkspace, FullSession
from services.api.schemas import MAX_ID, PolicyIn
from services.policy import service as policy

Cursor = Annotated[int | None, Query(ge=0, le=MAX_ID)]

router = APIRouter(prefix="/v1/workspaces/{slug}", tags=["admin"])


@router.get("/two-factor-policy")
def get_policy(workspace: AdminWorkspace, session: DB) -> dict[str, object]:
    return policy.as_dict(workspace, policy.rollout(session, workspace))


@router.get("/two-factor-policy/preview")
def preview_policy(
    workspace: AdminWorkspace,
    session: DB,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Cursor = None,
) -> dict[str, object]:
    """Before the flip: how many teammates would be held to enrollment, which admins have no
    2FA, and (paged) who they are."""
    impact = policy.preview(session, workspace)
    views, next_id = teammates.page(session, workspace, limit, cursor,
                                    teammates.Filters(two_factor="disabled"))
    return {
        "would_block": impact.would_block,
        "admins_without_two_factor": [{"id": t.id, "email": t.email, "name": t.name}
                                      for t in impact.admins_without_two_factor],
        "items": [v.as_dict() for v in views],
        "next_cursor": str(next_id) if next_id is not None else None,
    }


@router.put("/two-factor-policy")
def put_policy(
    body: PolicyIn, workspace: AdminWorkspace, caller: FullSession, session: DB
) -> dict[str, object]:
    # set_policy's locked get (populate_existing) refreshes and updates this very object:
    # the session's identity map holds one Workspace per row.
    policy.set_policy(session, workspace, body.require_two_factor, caller.teammate.id)
    return policy.as_dict(workspace, policy.rollout(session, workspace))

