"""A teammate's enrollment state, derived (never stored) from 2FA, exemption, policy, whether
they joined, and their invitation for the live policy version.

The states, in the order the rollout counts them (each teammate in the first that fits):
`enrolled` (compliant: has 2FA, or under `security_keys` a security key), `exempt` (a live
exemption), `not_required` (policy off), then while 2FA is required `invited`, `failed` or
`pending`. A teammate who has not joined yet is `invited` once their join email is out:
while 2FA is required the join email is their invitation. `enrollment_state` (Python, one
row) and `conditions` (SQL, whole lists and counts) are the same rule twice;
tests/test_enforcement.py checks they agree.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, false, or_

from services import clock
from services.enforcement import is_exempt
from services.models import (
    EnrollmentInvitation,
    Teammate,
    Workspace,
    compliant_sql,
    is_compliant,
)

ENROLLED, NOT_REQUIRED, EXEMPT, PENDING, INVITED, FAILED = (
    "enrolled", "not_required", "exempt", "pending", "invited", "failed",
)
STATES = (ENROLLED, NOT_REQUIRED, EXEMPT, PENDING, INVITED, FAILED)
_BY_INVITATION = {"sent": INVITED, "failed": FAILED}


def enrollment_state(workspace: Workspace, teammate: Teammate, invitation_status: str | None,
                     now: datetime | None = None) -> str:
    if is_compliant(teammate, workspace.allowed_methods):
        return ENROLLED
    if is_exempt(teammate.exempt_until, now):
        return EXEMPT
    if not workspace.require_two_factor:
        return NOT_REQUIRED
    if teammate.status == "invited":  # not joined: the join email is the invitation
        return INVITED if teammate.join_sent_at is not None else PENDING
    return _BY_INVITATION.get(invitation_status or "", PENDING)


def current_invitation(workspace: Workspace) -> ColumnElement[bool]:
    """Join condition: a teammate's invitation for the workspace's live policy version."""
    return (EnrollmentInvitation.teammate_id == Teammate.id) & (
        EnrollmentInvitation.policy_version == workspace.policy_version
    )


def conditions(workspace: Workspace, now: datetime | None = None) -> dict[str, ColumnElement[bool]]:
    """SQL for "the teammate is in this state", the same rule as `enrollment_state`, over a
    query of Teammate that outer-joins `current_invitation`; exactly one holds per row."""
    now = now or clock.now()
    enabled = compliant_sql(workspace.allowed_methods)
    exempt = and_(~enabled, Teammate.exempt_until.is_not(None), Teammate.exempt_until > now)
    rest = would_be_held(now, workspace.allowed_methods)
    if not workspace.require_two_factor:
        return {ENROLLED: enabled, EXEMPT: exempt, NOT_REQUIRED: rest,
                INVITED: false(), FAILED: false(), PENDING: false()}
    unjoined, status = Teammate.status == "invited", EnrollmentInvitation.status
    joined = ~unjoined
    return {
        ENROLLED: enabled,
        EXEMPT: exempt,
        NOT_REQUIRED: false(),
        INVITED: and_(rest, or_(and_(unjoined, Teammate.join_sent_at.is_not(None)),
                                and_(joined, status == "sent"))),
        FAILED: and_(rest, joined, status == "failed"),
        PENDING: and_(rest, or_(and_(unjoined, Teammate.join_sent_at.is_(None)),
                                and_(joined, or_(status.is_(None),
                                                 status.not_in(("sent", "failed")))))),
    }


def would_be_held(now: datetime | None = None, allowed_methods: str = "any") -> ColumnElement[bool]:
    """Not compliant (no 2FA; under `security_keys`, no key) and no live exemption: held to
    enrollment once the requirement is enforced."""
    now = now or clock.now()
    return and_(~compliant_sql(allowed_methods),
                or_(Teammate.exempt_until.is_(None), Teammate.exempt_until <= now))


def to_enroll(workspace_id: int, now: datetime | None = None,
              allowed_methods: str = "any") -> ColumnElement[bool]:
    """Who invitations and reminders are for: joined teammates would be held. Who has not
    joined yet is left out: their join email is their invitation and leads to setup."""
    return and_(Teammate.workspace_id == workspace_id, Teammate.status == "active",
                would_be_held(now, allowed_methods))


def still_to_enroll(status: str, enabled_at: datetime | None,
                    exempt_until: datetime | None) -> bool:
    """`to_enroll` for one row read earlier: enrolled, exempted or removed meanwhile is not."""
    return status == "active" and enabled_at is None and not is_exempt(exempt_until)


def is_in_state(workspace: Workspace, wanted: str) -> ColumnElement[bool]:
    return conditions(workspace)[wanted]
