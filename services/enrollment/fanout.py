"""Planning the enrollment fan-out: one invitation row per teammate without 2FA per version.

Rows are the idempotency record; batches of their ids become outbox messages for the workers.
Planning is safe to repeat at any time (the periodic sweep does): it adds only missing rows
and re-enqueues only pending rows that no live batch holds.

Whoever plans, the batches continue the trace of the flip they serve (services/tracing.py):
the event's dispatch plans in that trace, and the sweep resumes it for what it enqueues.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, exists, literal, or_, select, update
from sqlalchemy.orm import Session

from services import outbox, tracing
from services.config import get_settings
from services.db import dialect_insert, hash_joins_only, refresh_statistics
from services.enforcement import is_exempt
from services.enrollment import state
from services.errors import Conflict
from services.events.catalog import EventType
from services.models import EnrollmentInvitation, Event, Teammate, Workspace, is_compliant, utcnow
from services.topics import Topic

BATCHES_PER_CHUNK = 10  # invitation batches enqueued per statement while planning
# Batches from which planning refreshes the table's statistics (see plan); below them a
# stale plan costs little.
ANALYZE_FROM_BATCHES = 10


def is_current(workspace: Workspace | None, version: int) -> bool:
    return bool(workspace and workspace.require_two_factor and workspace.policy_version == version)


def plan(session: Session, workspace_id: int, version: int) -> int:
    """Create missing invitations for `version` and enqueue due batches; stale versions no-op."""
    workspace = session.get(Workspace, workspace_id)
    if workspace is None or not is_current(workspace, version):
        return 0
    _insert_missing(session, workspace, version)
    batches = enqueue_due(session, workspace, version)
    if batches >= ANALYZE_FROM_BATCHES:
        # Planned with the table's counts from before these rows, the statements that send
        # them took the partial index on pending rows (ix_invitations_pending, thought to hold
        # a few) and read every pending row for each group of sends they recorded: at 10,000
        # teammates 40,000 rows and 34 ms for 4 sends instead of 4 rows and 0.1 ms (EXPLAIN
        # ANALYZE). Autovacuum would fix the counts a minute later at best.
        refresh_statistics(session, EnrollmentInvitation.__tablename__)
    return batches


def _insert_missing(session: Session, workspace: Workspace, version: int) -> None:
    already = exists().where(
        EnrollmentInvitation.teammate_id == Teammate.id,
        EnrollmentInvitation.policy_version == version,
    )
    source = select(
        literal(workspace.id), Teammate.id, literal(version), literal("pending"),
        literal(0), literal(0), literal(utcnow()),
    ).where(state.to_enroll(workspace.id, allowed_methods=workspace.allowed_methods), ~already)
    columns = ["workspace_id", "teammate_id", "policy_version", "status", "resends",
               "attempts", "created_at"]
    stmt = dialect_insert(session, EnrollmentInvitation)
    with hash_joins_only(session):
        session.execute(stmt.from_select(columns, source).on_conflict_do_nothing())


def enqueue_due(session: Session, workspace: Workspace, version: int, now: datetime | None = None) -> int:
    """Enqueue batches for pending rows with no live lease and no recent batch.

    A chunk of rows at a time (mark and fetch in one statement each), so that however large
    the team, the worker never holds all its ids or outbox rows at once.
    """
    settings = get_settings()
    now = now or utcnow()
    stale = now - timedelta(seconds=settings.send_lease_seconds)
    inv = EnrollmentInvitation
    due = (
        inv.workspace_id == workspace.id,
        inv.policy_version == version,
        inv.status == "pending",
        or_(inv.lease_until.is_(None), inv.lease_until < now),
        or_(inv.enqueued_at.is_(None), inv.enqueued_at < stale),
        or_(inv.next_attempt_at.is_(None), inv.next_attempt_at <= now),
    )
    size = settings.fanout_batch_size
    chunk = size * BATCHES_PER_CHUNK
    batches = 0
    while True:  # a marked row is no longer due (enqueued_at = now), so this ends
        ids = sorted(session.scalars(
            update(inv)
            .where(inv.id.in_(select(inv.id).where(*due).order_by(inv.id).limit(chunk)))
            .values(enqueued_at=now)
            .returning(inv.id)
        ).all())
        outbox.enqueue_many(session, Topic.SEND_INVITATION_BATCH,
                            [{"invitation_ids": ids[start : start + size]}
                             for start in range(0, len(ids), size)])
        batches += (len(ids) + size - 1) // size
        if len(ids) < chunk:
            return batches


def sweep(session: Session) -> int:
    """Periodic safety net: finish every current rollout whatever crashed or was lost."""
    batches = 0
    for workspace in session.scalars(select(Workspace).where(Workspace.require_two_factor)):
        # Quiet: a sweep that finds nothing to do every few seconds adds no spans to the
        # flip's trace; batches it enqueues (the dispatch had not planned yet) join it.
        with tracing.resumed(_flip_trace(session, workspace)), tracing.quiet():
            batches += plan(session, workspace.id, workspace.policy_version)
    return batches


def _flip_trace(session: Session, workspace: Workspace) -> tracing.Carrier | None:
    """The trace of the policy change that started the workspace's rollout (with tracing on)."""
    if not tracing.enabled():
        return None
    return session.scalar(
        select(Event.trace_context)
        .where(Event.workspace_id == workspace.id, Event.type == EventType.POLICY_CHANGED)
        .order_by(Event.seq.desc()).limit(1))


def join_was_invitation(session: Session, workspace: Workspace, teammate: Teammate) -> None:
    """A teammate joins while 2FA is required: their join link led them through the password
    straight to setup, so it stands as this version's invitation and no second email follows
    (the row is the planner's record that they were invited)."""
    session.execute(
        dialect_insert(session, EnrollmentInvitation)
        .values(workspace_id=workspace.id, teammate_id=teammate.id,
                policy_version=workspace.policy_version, status="sent", resends=0, attempts=0,
                sent_at=teammate.join_sent_at or utcnow(), created_at=utcnow())
        .on_conflict_do_nothing())


def reset_was_invitation(session: Session, workspace: Workspace, teammate: Teammate) -> None:
    """An admin (or the operator) turned a teammate's 2FA off while it is required: the
    "2FA was turned off" email asks them to set it up again, so it stands as this version's
    invitation. Without this row the planner would add one and send a second email as if
    the policy were new."""
    now = utcnow()
    insert = dialect_insert(session, EnrollmentInvitation).values(
        workspace_id=workspace.id, teammate_id=teammate.id,
        policy_version=workspace.policy_version, status="sent", resends=0, attempts=0,
        sent_at=now, created_at=now)
    # A row there already may be one the sender skipped (they enrolled before it went out)
    # or one not yet sent: either way the notice is now their invitation.
    session.execute(insert.on_conflict_do_update(
        index_elements=["teammate_id", "policy_version"],
        set_={"status": "sent", "sent_at": now, "lease_owner": None, "lease_until": None,
              "next_attempt_at": None, "last_error": None},
        where=EnrollmentInvitation.status != "sent"))


def resend(session: Session, workspace: Workspace, teammate: Teammate) -> None:
    """An admin's resend: a new message (new Message-ID) for the current version."""
    if is_compliant(teammate, workspace.allowed_methods):
        raise Conflict("This teammate has two-factor authentication already.", "already_enrolled")
    if not workspace.require_two_factor:
        raise Conflict("The workspace does not require two-factor authentication.",
                       "two_factor_not_required")
    if is_exempt(teammate.exempt_until):
        raise Conflict("This teammate is exempt from two-factor authentication; end the "
                       "exemption first.", "teammate_exempt")
    row = session.scalar(
        select(EnrollmentInvitation).where(
            and_(EnrollmentInvitation.teammate_id == teammate.id,
                 EnrollmentInvitation.policy_version == workspace.policy_version)
        ).with_for_update()
    )
    if row is None:
        row = EnrollmentInvitation(workspace_id=workspace.id, teammate_id=teammate.id,
                                   policy_version=workspace.policy_version, resends=0, attempts=0)
        session.add(row)
    else:
        row.resends += 1
    row.status, row.attempts, row.last_error = "pending", 0, None
    row.lease_owner = row.lease_until = row.next_attempt_at = None
    row.enqueued_at = utcnow()
    session.flush()
    outbox.enqueue(session, Topic.SEND_INVITATION_BATCH, invitation_ids=[row.id])
