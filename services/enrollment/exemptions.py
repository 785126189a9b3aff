"""Exemptions that expire: a teammate exempted until a date is not held to enrollment until
then. Never an admin (admins are held to 2FA at once). An unbroken run of exemptions (the
next one starting within 30 days of the last one's end) ends at most 30 days after it began,
so renewing again and again cannot push it further.

Live means `exempt_until` is in the future, so an exemption stops counting the moment it
lapses; the periodic sweep then records `twofa.exemption.ended` (`by: expiry`), clears it,
and, while 2FA is required, sends the invitation the exemption held back, unless one already
went out for the current version.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from services import clock
from services.db import ROW_LOCK
from services.enforcement import is_admin, is_exempt
from services.enrollment import fanout
from services.errors import Forbidden, InvalidInput
from services.events import recorder
from services.events.catalog import EventType
from services.models import EnrollmentInvitation, Teammate, Workspace, utcnow
from services.timestamps import rfc3339

MAX_DAYS = 30
RUN_GAP = timedelta(days=30)  # a new exemption this soon after the last one continues its run

EndedBy = Literal["admin", "expiry", "promotion"]


def grant(session: Session, workspace: Workspace, teammate: Teammate, until: datetime,
          reason: str, actor: Teammate) -> None:
    if teammate.id == actor.id:
        # An admin without 2FA could otherwise exempt themselves again and again.
        raise Forbidden("Admins cannot exempt themselves.", "forbidden")
    if is_admin(teammate.role):
        raise InvalidInput("Admins are held to two-factor authentication at once: they cannot "
                           "be exempt.", "admin_cannot_be_exempt")
    now = clock.now()
    if until.tzinfo is None:
        raise InvalidInput("until needs a UTC offset (RFC 3339).")
    if until <= now:
        raise InvalidInput("until must be in the future.")
    started = run_start(teammate, now)
    if until > started + timedelta(days=MAX_DAYS):
        raise InvalidInput("An exemption lasts {days} days at most, counted from the start "
                           "of its run ({started}): renewing cannot push it further.",
                           days=MAX_DAYS, started=rfc3339(started))
    teammate.exempt_until, teammate.exempt_reason = until, reason
    teammate.exempt_run_started_at = started
    # A not yet sent invitation of this version waits. One a batch holds (leased) is left to
    # it: it may be on its way already, and the batch records what it sends (skipping the
    # row here would leave a sent email unrecorded, and send it again after the exemption).
    inv = EnrollmentInvitation
    session.execute(update(inv)
                    .where(inv.teammate_id == teammate.id,
                           inv.policy_version == workspace.policy_version,
                           inv.status == "pending",
                           or_(inv.lease_until.is_(None), inv.lease_until < utcnow()))
                    .values(status="skipped", lease_owner=None, lease_until=None)
                    .execution_options(synchronize_session=False))
    recorder.record(session, workspace.id, EventType.EXEMPTION_GRANTED,
                    {"teammate_id": teammate.id, "until": rfc3339(until), "actor_id": actor.id,
                     "reason": reason}, teammate_id=teammate.id)


def run_start(teammate: Teammate, now: datetime) -> datetime:
    """When the teammate's run of exemptions began: a live one, or one that ended less than
    RUN_GAP ago, continues it; otherwise a new run starts now."""
    started, ended = teammate.exempt_run_started_at, teammate.exempt_last_ended_at
    if started is None:
        return now
    if is_exempt(teammate.exempt_until, now):
        return started
    last_end = teammate.exempt_until or ended
    if last_end is not None and now - last_end <= RUN_GAP:
        return started
    return now


def end(session: Session, workspace: Workspace, teammate: Teammate,
        actor: Teammate | None, plan: bool = True, promoted: bool = False) -> bool:
    """End it now (an admin, or the teammate's promotion to admin) or record that it lapsed
    (`actor` None). False if none.

    An admin ending one that has lapsed already records `by: expiry`, as the sweep would.
    """
    # Locked and read again: of an admin's DELETE and the sweep, one ends it.
    session.refresh(teammate, with_for_update=ROW_LOCK)
    if teammate.exempt_until is None:
        return False
    now = clock.now()
    live = is_exempt(teammate.exempt_until, now)
    by: EndedBy = "expiry"
    if actor is not None and live:
        by = "promotion" if promoted else "admin"
    teammate.exempt_last_ended_at = min(teammate.exempt_until, now)
    teammate.exempt_until = teammate.exempt_reason = None
    recorder.record(session, workspace.id, EventType.EXEMPTION_ENDED,
                    {"teammate_id": teammate.id, "by": by,
                     "actor_id": actor.id if by != "expiry" and actor else None},
                    teammate_id=teammate.id)
    if workspace.require_two_factor and teammate.status == "active" \
            and not teammate.two_factor_enabled:
        _release_held_invitation(session, workspace, teammate)
        if plan:
            fanout.plan(session, workspace.id, workspace.policy_version)
    return True


def _release_held_invitation(session: Session, workspace: Workspace, teammate: Teammate) -> None:
    # An invitation skipped while exempt goes out after all; one already sent stays sent.
    # (A teammate with no row for this version gets one from the next planning.)
    session.execute(update(EnrollmentInvitation)
                    .where(EnrollmentInvitation.teammate_id == teammate.id,
                           EnrollmentInvitation.policy_version == workspace.policy_version,
                           EnrollmentInvitation.status == "skipped")
                    .values(status="pending", enqueued_at=None)
                    .execution_options(synchronize_session=False))
    session.flush()


def expire(session: Session) -> int:
    """The sweep's part: end every lapsed exemption. Returns how many ended."""
    lapsed = session.scalars(
        select(Teammate)
        .where(Teammate.exempt_until.is_not(None), Teammate.exempt_until <= clock.now(),
               Teammate.status != "removed")
        .order_by(Teammate.id)
        .limit(500)
        .with_for_update(skip_locked=True)).all()
    to_plan: dict[int, Workspace] = {}
    for teammate in lapsed:
        workspace = session.get(Workspace, teammate.workspace_id)
        assert workspace is not None
        if end(session, workspace, teammate, actor=None, plan=False):
            to_plan[workspace.id] = workspace
    for workspace in to_plan.values():  # once per workspace, not once per teammate
        if workspace.require_two_factor:
            fanout.plan(session, workspace.id, workspace.policy_version)
    return len(lapsed)

