"""The workspace 2FA policy: flipping it commits the new version and its event together.

With a grace period the requirement is on at once (invitations go out as usual) but enforced
only from `enforce_at`; reminders are planned before it (services/enrollment/reminders.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Subquery, case, func, literal_column, select, union
from sqlalchemy.orm import Session

from services import clock, team_counts
from services.db import ROW_LOCK
from services.enforcement import MAX_GRACE_HOURS
from services.enrollment import reminders, state
from services.errors import Conflict, InvalidInput
from services.events import recorder
from services.events.catalog import EventType
from services.models import EnrollmentInvitation, Teammate, Workspace
from services.timestamps import rfc3339_or_none


@dataclass(frozen=True)
class Rollout:
    teammates: int
    enrolled: int
    exempt: int
    invited: int
    pending: int
    failed: int


ALLOWED_METHODS = ("any", "security_keys")


def set_policy(session: Session, workspace: Workspace, require: bool | None, actor_id: int,
               grace_period_hours: int | None = None, allowed_methods: str | None = None) -> None:
    """Commits nothing and sends nothing itself: the event drives the fan-out after commit.

    A field left out (None) is unchanged. Setting what is already set is a no-op, so a
    retried PUT makes no new version. Changing only the grace period keeps the version and
    sends no invitations: it moves `enforce_at` (never into the past) and re-plans reminders.
    An admin without 2FA cannot turn the requirement on (409 `admin_needs_two_factor`).

    `allowed_methods` `security_keys` counts only security keys: changing it while 2FA is
    required is a new version (app-only teammates are invited to add a key) and sets
    `methods_enforce_at` = now + the grace period. An admin without a key cannot leave the
    requirement on under it (409 `admin_needs_security_key`).
    """
    if require is None and grace_period_hours is None and allowed_methods is None:
        raise InvalidInput("Give require_two_factor, grace_period_hours, allowed_methods or "
                           "several.")
    if allowed_methods is not None and allowed_methods not in ALLOWED_METHODS:
        raise InvalidInput("allowed_methods is any or security_keys.")
    if grace_period_hours is not None and not 0 <= grace_period_hours <= MAX_GRACE_HOURS:
        raise InvalidInput("grace_period_hours is 0 to {hours}.", hours=MAX_GRACE_HOURS)
    locked = session.get(Workspace, workspace.id, with_for_update=ROW_LOCK, populate_existing=True)
    assert locked is not None
    turning_on = require is True and not locked.require_two_factor
    if turning_on:
        _check_actor_enrolled(session, actor_id)
    methods = allowed_methods or locked.allowed_methods
    if methods == "security_keys" and (require if require is not None else locked.require_two_factor):
        _check_actor_has_key(session, actor_id)
    grace_changed = grace_period_hours is not None and grace_period_hours != locked.grace_period_hours
    methods_changed = methods != locked.allowed_methods
    if grace_period_hours is not None:
        locked.grace_period_hours = grace_period_hours
    locked.allowed_methods = methods
    if require is not None and require != locked.require_two_factor:
        _flip(session, locked, require)
    elif methods_changed and locked.require_two_factor:
        locked.policy_version += 1  # a new rollout: app-only teammates are invited to add a key
        now = clock.now()
        if grace_changed:
            locked.enforce_at = _deadline(locked, now)
        _set_methods_deadline(locked, now)
        reminders.replan(session, locked, now)  # the old version's reminders would lapse
    elif grace_changed and locked.require_two_factor:
        _move_deadline(session, locked)
    elif not grace_changed and not methods_changed:
        return  # nothing changed: no event (a retried PUT is a no-op)
    recorder.record(session, locked.id, EventType.POLICY_CHANGED, {
        "require_two_factor": locked.require_two_factor, "version": locked.policy_version,
        "changed_by": actor_id, "actor_id": actor_id,
        "grace_period_hours": locked.grace_period_hours,
        "enforce_at": rfc3339_or_none(locked.enforce_at),
        "allowed_methods": locked.allowed_methods,
        "methods_enforce_at": rfc3339_or_none(locked.methods_enforce_at)})


def _check_actor_has_key(session: Session, actor_id: int) -> None:
    actor = session.get(Teammate, actor_id)
    if actor is None or actor.webauthn_enabled_at is None:
        raise Conflict("Add a security key or passkey to your own account before you allow "
                       "only security keys.", "admin_needs_security_key")


def _set_methods_deadline(workspace: Workspace, now: datetime) -> None:
    """App-only teammates are held from the switch time + the grace period (None: off, or
    every method counts)."""
    if workspace.allowed_methods != "security_keys" or not workspace.require_two_factor:
        workspace.methods_enforce_at = workspace.methods_switched_at = None
        return
    workspace.methods_switched_at = now
    workspace.methods_enforce_at = now + timedelta(hours=workspace.grace_period_hours)


def check_change(session: Session, workspace: Workspace, require: bool, actor_id: int,
                 allowed_methods: str | None = None) -> None:
    """Raise what set_policy would refuse for this change, changing nothing: the console asks
    before its confirm step, so nobody confirms a change that cannot happen."""
    if require and not workspace.require_two_factor:
        _check_actor_enrolled(session, actor_id)
    if require and (allowed_methods or workspace.allowed_methods) == "security_keys":
        _check_actor_has_key(session, actor_id)


def _check_actor_enrolled(session: Session, actor_id: int) -> None:
    actor = session.get(Teammate, actor_id)
    if actor is None or not actor.two_factor_enabled:
        # Requiring it would lock this very admin out of the setting at once (as GitHub
        # refuses too): they turn on their own 2FA first.
        raise Conflict("Turn on two-factor authentication for your own account before you "
                       "require it for everyone.", "admin_needs_two_factor")


def _flip(session: Session, workspace: Workspace, require: bool) -> None:
    workspace.require_two_factor = require
    workspace.policy_version += 1
    now = clock.now()
    _set_methods_deadline(workspace, now)
    if require:
        workspace.required_at = now
        workspace.enforce_at = _deadline(workspace, now)
        reminders.plan(session, workspace, now)
    else:
        workspace.required_at = workspace.enforce_at = None
        reminders.cancel(session, workspace.id)


def _move_deadline(session: Session, workspace: Workspace) -> None:
    """A new grace period moves both deadlines: each is its start + the period, at the
    earliest now."""
    now = clock.now()
    workspace.enforce_at = _deadline(workspace, now)
    if workspace.methods_enforce_at is not None:
        # Rows from before the switch time was kept start from the requirement's start.
        start = workspace.methods_switched_at or workspace.required_at or now
        workspace.methods_enforce_at = max(
            start + timedelta(hours=workspace.grace_period_hours), now)
    reminders.replan(session, workspace, now)


def _deadline(workspace: Workspace, now: datetime) -> datetime | None:
    """required_at + grace, at the earliest now (a shortened period enforces at once, not in
    the past); None when there is no grace period: enforced at once."""
    if not workspace.grace_period_hours:
        return None
    start = workspace.required_at or now
    return max(start + timedelta(hours=workspace.grace_period_hours), now)


def rollout(session: Session, workspace: Workspace) -> Rollout:
    """Every teammate not removed counted once, in the first bucket that fits (enrolled,
    exempt, then their invitation's state): while required the buckets sum to `teammates`.

    It reads no more rows than it must, so that a PUT answers as fast for 100,000 teammates
    as for 10: the totals come from `team_counts`, and only the teammates whose bucket
    depends on their own row are looked at one by one (an invitation of this version, not
    joined yet, an exemption). Everyone else is enrolled or, while required, pending.
    """
    buckets = state.conditions(workspace)
    names = (state.EXEMPT, state.INVITED, state.FAILED)
    kept = team_counts.columns(workspace.id, workspace.allowed_methods)
    row = session.execute(  # one statement, so the totals and the buckets are one snapshot
        select(*kept,
               *(func.coalesce(func.sum(case((buckets[name], 1), else_=0)), 0) for name in names))
        .select_from(Teammate)
        .join(_looked_at(workspace), literal_column("looked_at.id") == Teammate.id)
        .outerjoin(EnrollmentInvitation, state.current_invitation(workspace))
        .where(Teammate.status != "removed")
    ).one()
    total, enrolled, exempt, invited, failed = row
    if total is None:  # no kept counts yet (a workspace older than them): made now
        counts = team_counts.get(session, workspace.id)
        total = counts.teammates
        enrolled = counts.with_keys if workspace.allowed_methods == "security_keys" else counts.enrolled
    total, enrolled, exempt, invited, failed = (
        int(v) for v in (total, enrolled, exempt, invited, failed))
    if not workspace.require_two_factor:  # nobody waits for an invitation
        return Rollout(total, enrolled, exempt, 0, 0, 0)
    pending = total - enrolled - exempt - invited - failed
    return Rollout(total, enrolled, exempt, invited, pending, failed)


def _looked_at(workspace: Workspace) -> Subquery:
    """Ids of the teammates whose bucket their own row decides, each once (three index
    lookups: invitations by version, the partial indexes of unjoined and exempt teammates)."""
    inv = EnrollmentInvitation
    return union(
        select(inv.teammate_id.label("id"))
        .where(inv.workspace_id == workspace.id, inv.policy_version == workspace.policy_version),
        select(Teammate.id).where(Teammate.workspace_id == workspace.id,
                                  Teammate.status == "invited"),
        select(Teammate.id).where(Teammate.workspace_id == workspace.id,
                                  Teammate.exempt_until.is_not(None)),
    ).subquery("looked_at")


@dataclass(frozen=True)
class Preview:
    """Who would be held to enrollment if the requirement were enforced now."""

    would_block: int
    admins_without_two_factor: list[Teammate]


def preview(session: Session, workspace: Workspace, allowed_methods: str | None = None) -> Preview:
    """Teammates (not removed) without 2FA and without a live exemption, and which of them
    are admins; with `allowed_methods`, as it would be under those (for the switch to
    `security_keys`: who has no key, and the admins without one)."""
    held = (Teammate.workspace_id == workspace.id, Teammate.status != "removed",
            state.would_be_held(allowed_methods=allowed_methods or workspace.allowed_methods))
    count = session.scalar(select(func.count()).select_from(Teammate).where(*held)) or 0
    admins = list(session.scalars(
        select(Teammate).where(*held, Teammate.role == "admin").order_by(Teammate.id)))
    return Preview(int(count), admins)
