"""Workspace administration: the 2FA policy, its grace period and its impact preview
(teammates: routes/teammates.py, exemptions: routes/exemptions.py, the audit log:
routes/events.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, cast

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from services.accounts import teammates
from services.api.deps import DB, AdminWorkspace, FullSession
from services.api.paging import Cursor, Page
from services.api.recent_factor import SENSITIVE_POLICY_CHANGE
from services.api.routes.teammates import TeammateOut
from services.api.schemas import PolicyIn
from services.api.types import Timestamp
from services.enrollment import reminders
from services.models import Teammate, Workspace
from services.policy import service as policy

router = APIRouter(prefix="/v1/workspaces/{slug}", tags=["admin"])
Methods = Literal["any", "security_keys"]


class RolloutOut(BaseModel):
    """Every teammate not removed, once, in the first bucket that fits; while 2FA is required
    the buckets add up to `teammates`."""

    teammates: int
    enrolled: int
    exempt: int
    invited: int
    pending: int
    failed: int


class PolicyOut(BaseModel):
    require_two_factor: bool
    version: int
    grace_period_hours: int = Field(description="kept while off, for the next time it is on")
    enforce_at: Timestamp | None = Field(
        description="when the requirement is enforced; null when off or enforced at once")
    reminders_at: list[Timestamp] = Field(description="this version's reminder emails")
    allowed_methods: Literal["any", "security_keys"] = Field(
        description="`security_keys`: only security keys and passkeys count")
    methods_enforce_at: Timestamp | None = Field(
        description="under `security_keys` while required: from when teammates with only an "
                    "app are held to adding a key")
    rollout: RolloutOut

    @classmethod
    def of(cls, session: Session, workspace: Workspace) -> PolicyOut:
        required = workspace.require_two_factor
        due: list[datetime] = reminders.due_times(session, workspace)
        return cls(require_two_factor=required, version=workspace.policy_version,
                   grace_period_hours=workspace.grace_period_hours,
                   enforce_at=workspace.enforce_at if required else None, reminders_at=due,
                   allowed_methods=cast(Methods, workspace.allowed_methods),
                   methods_enforce_at=workspace.methods_enforce_at if required else None,
                   rollout=RolloutOut(**policy.rollout(session, workspace).__dict__))


class AdminOut(BaseModel):
    id: int
    email: str
    name: str

    @classmethod
    def of(cls, teammate: Teammate) -> AdminOut:
        return cls(id=teammate.id, email=teammate.email, name=teammate.name)


class PreviewOut(Page[TeammateOut]):
    would_block: int = Field(description="teammates who would be held to enrollment now")
    admins_without_two_factor: list[AdminOut]


@router.get("/two-factor-policy")
def get_policy(workspace: AdminWorkspace, session: DB) -> PolicyOut:
    return PolicyOut.of(session, workspace)


@router.get("/two-factor-policy/preview")
def preview_policy(
    workspace: AdminWorkspace,
    session: DB,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Cursor = None,
    allowed_methods: Annotated[Literal["any", "security_keys"] | None, Query(
        description="the counts for a switch to these methods")] = None,
) -> PreviewOut:
    """Before the flip: how many teammates would be held to enrollment if it were enforced
    now (exempt teammates are not), which admins have no 2FA, and (paged) who they are."""
    impact = policy.preview(session, workspace, allowed_methods)
    views, next_id = teammates.page(session, workspace, limit, cursor,
                                    teammates.Filters(would_be_held=True, held_under=allowed_methods))
    page = Page[TeammateOut].of([TeammateOut.of(v) for v in views], next_id)
    return PreviewOut(items=page.items, next_cursor=page.next_cursor,
                      would_block=impact.would_block,
                      admins_without_two_factor=[AdminOut.of(t)
                                                 for t in impact.admins_without_two_factor])


@router.put("/two-factor-policy", dependencies=[SENSITIVE_POLICY_CHANGE])
def put_policy(
    body: PolicyIn, workspace: AdminWorkspace, caller: FullSession, session: DB
) -> PolicyOut:
    """Turn the requirement on or off, set its grace period, or both; a field left out is
    unchanged. Answers at once, whatever the team's size: the invitations go out afterwards."""
    # set_policy's locked get (populate_existing) refreshes and updates this very object:
    # the session's identity map holds one Workspace per row.
    policy.set_policy(session, workspace, body.require_two_factor, caller.teammate.id,
                      grace_period_hours=body.grace_period_hours,
                      allowed_methods=body.allowed_methods)
    return PolicyOut.of(session, workspace)
