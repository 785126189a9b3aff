"""The workspace 2FA policy: flipping it commits the new version and its event together."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from services.enrollment import state
from services.errors import Conflict
from services.events import recorder
from services.events.catalog import EventType
from services.models import EnrollmentInvitation, Teammate, Workspace


@dataclass(frozen=True)
class Rollout:
    teammates: int
    enrolled: int
    invited: int
    pending: int
    failed: int
    exempt: int = 0  # exemptions are not built yet: nobody is exempt


def set_policy(session: Session, workspace: Workspace, require: bool, actor_id: int) -> None:
    """Commits nothing and sends nothing itself: the event drives the fan-out after commit.

    Setting the policy it already has is a no-op, so a retried PUT makes no new version. An
    admin without 2FA cannot turn the requirement on (409 `admin_needs_two_factor`).
    """
    locked = session.get(Workspace, workspace.id, with_for_update=True, populate_existing=True)
    assert locked is not None
    if locked.require_two_factor == require:
        return
    actor = session.get(Teammate, actor_id)
    if require and (actor is None or not actor.two_factor_enabled):
        # Requiring it would lock this very admin out of the setting at once (as GitHub
        # refuses too): they turn on their own 2FA first.
        raise Conflict("Turn on two-factor authentication for your own account before you "
                       "require it for everyone.", "admin_needs_two_factor")
    locked.require_two_factor = require
    locked.policy_version += 1
    recorder.record(
        session,
        locked.id,
        EventType.POLICY_CHANGED,
        {"require_two_factor": require, "version": locked.policy_version, "changed_by": actor_id},
    )


def rollout(session: Session, workspace: Workspace) -> Rollout:
    """Every teammate counted once: enrolled + invited + pending + failed = teammates."""
    enabled = Teammate.totp_enabled_at.is_not(None)
    status = EnrollmentInvitation.status
    row = session.execute(
        select(
            func.count(Teammate.id),
            func.sum(case((enabled, 1), else_=0)),
            func.sum(case((~enabled & (status == "sent"), 1), else_=0)),
            func.sum(case((~enabled & (status == "failed"), 1), else_=0)),
        )
        .select_from(Teammate)
        .outerjoin(EnrollmentInvitation, state.current_invitation(workspace))
        .where(Teammate.workspace_id == workspace.id, Teammate.status != "removed")
    ).one()
    total, enrolled, invited, failed = (int(v or 0) for v in row)
    if not workspace.require_two_factor:  # nobody waits for an invitation
        return Rollout(total, enrolled, 0, 0, 0)
    return Rollout(total, enrolled, invited, total - enrolled - invited - failed, failed)


def as_dict(workspace: Workspace, counts: Rollout) -> dict[str, object]:
    return {
        "require_two_factor": workspace.require_two_factor,
        "version": workspace.policy_version,
        # No grace period yet: a requirement is enforced the moment it is on.
        "enforce_at": None,
        "reminders_at": [],
        "rollout": counts.__dict__,
    }


@dataclass(frozen=True)
class Preview:
    """Who would be held to enrollment if the requirement were enforced now."""

    would_block: int
    admins_without_two_factor: list[Teammate]


def preview(session: Session, workspace: Workspace) -> Preview:
    """Teammates (not removed) without 2FA, and which of them are admins (exemptions are not
    built yet, so nobody is excluded as exempt)."""
    without = (Teammate.workspace_id == workspace.id, Teammate.status != "removed",
               Teammate.totp_enabled_at.is_(None))
    count = session.scalar(select(func.count()).select_from(Teammate).where(*without)) or 0
    admins = list(session.scalars(
        select(Teammate).where(*without, Teammate.role == "admin").order_by(Teammate.id)))
    return Preview(int(count), admins)
