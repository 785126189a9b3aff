"""A teammate's enrollment state, derived (never stored) from 2FA, policy and invitation."""

from __future__ import annotations

from sqlalchemy import ColumnElement, false

from services.models import EnrollmentInvitation, Teammate, Workspace

ENROLLED, NOT_REQUIRED, EXEMPT, PENDING, INVITED, FAILED = (
    "enrolled", "not_required", "exempt", "pending", "invited", "failed",
)
STATES = (ENROLLED, NOT_REQUIRED, EXEMPT, PENDING, INVITED, FAILED)
_BY_INVITATION = {"sent": INVITED, "failed": FAILED}


def enrollment_state(
    workspace: Workspace, two_factor_enabled: bool, invitation_status: str | None
) -> str:
    if two_factor_enabled:
        return ENROLLED
    if not workspace.require_two_factor:
        return NOT_REQUIRED
    return _BY_INVITATION.get(invitation_status or "", PENDING)


def current_invitation(workspace: Workspace) -> ColumnElement[bool]:
    """Join condition: a teammate's invitation for the workspace's live policy version."""
    return (EnrollmentInvitation.teammate_id == Teammate.id) & (
        EnrollmentInvitation.policy_version == workspace.policy_version
    )


def is_in_state(workspace: Workspace, wanted: str) -> ColumnElement[bool]:
    """SQL for "the teammate's enrollment state is `wanted`", the same rule as
    `enrollment_state`, over a query that outer-joins `current_invitation`."""
    enabled = Teammate.totp_enabled_at.is_not(None)
    status = EnrollmentInvitation.status
    if wanted == ENROLLED:
        return enabled
    if wanted == NOT_REQUIRED:
        return ~enabled if not workspace.require_two_factor else false()
    if wanted == EXEMPT or not workspace.require_two_factor:
        return false()  # exemptions are not built yet
    if wanted in (INVITED, FAILED):
        return ~enabled & (status == ("sent" if wanted == INVITED else "failed"))
    return ~enabled & (status.is_(None) | status.not_in(("sent", "failed")))
