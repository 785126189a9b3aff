"""A teammate's enrollment state, derived (never stored) from 2FA, policy and invitation."""

from __future__ import annotations

from sqlalchemy import ColumnElement

from services.models import EnrollmentInvitation, Teammate, Workspace

ENROLLED, NOT_REQUIRED, PENDING, INVITED, FAILED = (
    "enrolled", "not_required", "pending", "invited", "failed",
)
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
