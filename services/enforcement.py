"""The one rule of *enforced*, shared by the level of a session, sign-in, the console and
host checks: the workspace requires 2FA and the teammate is an admin, or `enforce_at` is
unset or past and the teammate has no live exemption. Admins are held at once: a grace period
or an exemption never lets an admin without 2FA use admin powers. `two_factor.required` and
the ban on turning one's own 2FA off follow the workspace's `require_two_factor` instead (a
grace period does not let anyone opt out).
"""

from __future__ import annotations

from datetime import datetime

from services import clock

MAX_GRACE_HOURS = 2160  # 90 days


def is_enforced(require_two_factor: bool, enforce_at: datetime | None,
                exempt_until: datetime | None, now: datetime | None = None, *,
                admin: bool) -> bool:
    if not require_two_factor:
        return False
    if admin:
        return True  # no grace period, no exemption
    now = now or clock.now()
    if enforce_at is not None and enforce_at > now:
        return False  # still within the grace period
    return not is_exempt(exempt_until, now)


# Second factors that count under `allowed_methods = security_keys`.
KEY_FACTORS = ("webauthn", "passkey")


def relevant_deadline(enforce_at: datetime | None, methods_enforce_at: datetime | None,
                      allowed_methods: str, has_any_method: bool) -> datetime | None:
    """The deadline that holds a teammate: under `security_keys`, one with only an app is
    held from `methods_enforce_at`; anyone without any method from `enforce_at`."""
    if allowed_methods == "security_keys" and has_any_method:
        return methods_enforce_at
    return enforce_at


def level_for(enforced: bool, compliant: bool, factor: str | None = None,
              allowed_methods: str = "any") -> str:
    """`enrollment` while enforced and the teammate holds no allowed method, or (under
    `security_keys`) the session was not opened or verified with a key."""
    session_counts = allowed_methods != "security_keys" or factor in KEY_FACTORS
    return "full" if not enforced or (compliant and session_counts) else "enrollment"


def is_exempt(exempt_until: datetime | None, now: datetime | None = None) -> bool:
    """An exemption is live until `exempt_until`; the sweep clears it afterwards."""
    return exempt_until is not None and exempt_until > (now or clock.now())


def is_admin(role: str) -> bool:
    return role == "admin"
