"""Are the workers doing the work? Heartbeats per worker, and the invitation stall.

Each `twofa worker` process writes a heartbeat row every TWOFA_WORKER_HEARTBEAT_SECONDS; a
worker counts as live while its last beat is younger than three intervals. Invitations
*stall* when some are ready to be taken (pending, not leased by a batch, not waiting for a
retry) and no worker has taken or sent one for TWOFA_STALL_SECONDS: every worker is gone,
stuck, or consumes other queues. Mail server trouble is not a stall (the batches keep taking
their rows to retry them). `/metrics` and `/readyz` report both (services/metrics/database.py,
services/readiness.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session

from services.config import get_settings
from services.db import dialect_insert
from services.models import EnrollmentInvitation, WorkerHeartbeat, Workspace

LIVE_INTERVALS = 3  # beats a worker may miss before it no longer counts as live
FORGET_AFTER = timedelta(days=1)  # rows of workers that died without saying goodbye


def beat(session: Session, name: str, queues: str, now: datetime) -> None:
    """Record that worker `name` is alive; drop rows of workers long gone."""
    insert = dialect_insert(session, WorkerHeartbeat)
    session.execute(
        insert.values(name=name, queues=queues, started_at=now, beat_at=now)
        .on_conflict_do_update(index_elements=["name"], set_={"beat_at": now, "queues": queues})
    )
    session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.beat_at < now - FORGET_AFTER))


def forget(session: Session, name: str) -> None:
    """A worker stopping cleanly leaves the count at once."""
    session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.name == name))


def live_workers(session: Session, now: datetime) -> dict[str, int]:
    """Live workers by the queues they consume (`all`, `invitations`, `webhooks`)."""
    since = now - timedelta(seconds=LIVE_INTERVALS * get_settings().worker_heartbeat_seconds)
    counts = {"all": 0, "invitations": 0, "webhooks": 0}
    rows = session.execute(
        select(WorkerHeartbeat.queues, func.count()).where(WorkerHeartbeat.beat_at >= since)
        .group_by(WorkerHeartbeat.queues))
    for queues, count in rows:
        counts[queues] = count
    return counts


@dataclass(frozen=True)
class InvitationStall:
    ready: int  # pending invitations no batch holds and no retry waits for
    last_taken_age: float | None  # seconds since a worker last took or sent one (None: never)
    stalled: bool


def invitation_stall(session: Session, now: datetime) -> InvitationStall:
    settings = get_settings()
    i = EnrollmentInvitation
    # Only the rollouts under way count: a row of an older version, or of a workspace that no
    # longer requires 2FA, is no work any more (the sweep leaves it alone too).
    current = (select(func.count()).select_from(i)
               .join(Workspace, and_(Workspace.id == i.workspace_id,
                                     Workspace.policy_version == i.policy_version))
               .where(Workspace.require_two_factor.is_(True), i.status == "pending"))
    ready = session.scalar(current.where(
        or_(i.lease_until.is_(None), i.lease_until <= now),
        or_(i.next_attempt_at.is_(None), i.next_attempt_at <= now),
    )) or 0
    if not ready:
        return InvitationStall(0, None, False)
    # A batch leases its rows for TWOFA_SEND_LEASE_SECONDS when it takes them (and renews
    # the lease while it works), so the latest lease end dates the latest take.
    leased_until = session.scalar(select(func.max(i.lease_until)).where(i.status == "pending"))
    last_sent = session.scalar(select(func.max(i.sent_at)))
    taken = [t for t in (
        leased_until - timedelta(seconds=settings.send_lease_seconds) if leased_until else None,
        last_sent,
    ) if t is not None]
    oldest_ready = session.scalar(current.with_only_columns(
        func.min(func.coalesce(i.next_attempt_at, i.created_at))))
    # Measured from the later of the last take and the oldest waiting row: a rollout that has
    # only just begun is not a stall, however long ago the previous one ended.
    since = max([*taken, *([oldest_ready] if oldest_ready else [])])
    age = max(0.0, (now - since).total_seconds())
    return InvitationStall(ready, (now - max(taken)).total_seconds() if taken else None,
                           age >= settings.stall_seconds)

