"""Workspace administration: the 2FA policy, teammates, the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from services.accounts import teammates
from services.api.deps import DB, AdminWorkspace, FullSession
from services.api.schemas import MAX_ID, PolicyIn, TeammateIn, Text
from services.enrollment import state
from services.events import audit
from services.policy import service as policy

TeammateId = Annotated[int, Path(ge=1, le=MAX_ID)]
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


@router.get("/teammates")
def list_teammates(
    workspace: AdminWorkspace,
    session: DB,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Cursor = None,
) -> dict[str, object]:
    views, next_id = teammates.page(session, workspace, limit, cursor)
    return {
        "items": [v.as_dict() for v in views],
        "next_cursor": str(next_id) if next_id is not None else None,
    }


@router.post("/teammates", status_code=201)
def add_teammate(body: TeammateIn, workspace: AdminWorkspace, session: DB) -> dict[str, object]:
    teammate = teammates.add(session, workspace, body.email, body.name, body.role)
    # Brand new, so no invitation of the current policy version yet: while 2FA is required
    # the teammate is `pending`, otherwise `not_required`.
    enrollment = state.enrollment_state(workspace, teammate.two_factor_enabled, None)
    return teammates.TeammateView(teammate, enrollment).as_dict()


@router.post("/teammates/{teammate_id}/enrollment-invitation", status_code=202)
def resend_invitation(
    teammate_id: TeammateId, workspace: AdminWorkspace, session: DB
) -> Response:
    teammates.resend_invitation(session, workspace, teammates.get(session, workspace, teammate_id))
    return Response(status_code=202)


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
