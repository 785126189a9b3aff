"""Whether and from when 2FA holds a teammate: the enforcement rule (services/enforcement.py,
on plain values) applied to a teammate's and a workspace's rows. Sign-in levels, the console
and the emails that say "set it up by …" all read it here."""

from __future__ import annotations

from datetime import datetime

from services import enforcement
from services.models import Teammate, Workspace


def is_enforced_for(teammate: Teammate, workspace: Workspace) -> bool:
    deadline = enforcement.relevant_deadline(workspace.enforce_at, workspace.methods_enforce_at,
                                             workspace.allowed_methods, teammate.two_factor_enabled)
    return enforcement.is_enforced(workspace.require_two_factor, deadline, teammate.exempt_until,
                                   admin=enforcement.is_admin(teammate.role))


def held_from(teammate: Teammate, workspace: Workspace) -> datetime | None:
    """For a teammate without 2FA in a workspace that requires it but does not hold them to
    it yet (a grace period, an exemption): when it will, once both are over."""
    if (not workspace.require_two_factor or teammate.two_factor_enabled
            or is_enforced_for(teammate, workspace)):
        return None
    ends = [when for when in (workspace.enforce_at, teammate.exempt_until)
            if when is not None and enforcement.is_exempt(when)]
    return max(ends) if ends else None
