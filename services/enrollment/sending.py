"""Sending a batch of enrollment invitations: claim, send over one connection, record each.

Each send is recorded in its own short transaction right after SMTP accepts it, so a worker
killed mid-batch repeats at most the one send the kill cut short, and that repeat carries
the same Message-ID (teammate, policy version, resend count).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from services.config import get_settings
from services.db import unit_of_work
from services.email import message as mail
from services.email.render import render
from services.email.smtp import (
    PermanentSendError,
    RecipientDeferred,
    SmtpMailer,
    TransientSendError,
)
from services.enforcement import is_exempt
from services.enrollment.fanout import is_current
from services.events import recorder
from services.events.catalog import EventType
from services.models import EnrollmentInvitation, Teammate, Workspace, utcnow

Inv = EnrollmentInvitation


@dataclass(frozen=True)
class Outgoing:
    invitation_id: int
    teammate_id: int
    workspace_id: int
    email: str
    name: str
    workspace_name: str
    workspace_slug: str
    version: int
    resends: int


@dataclass
class BatchResult:
    sent: int = 0
    failed: int = 0
    retry_in: float | None = None  # seconds until the deferred rest should be tried again

    def defer(self, delay: float | None, gave_up: int) -> None:
        self.failed += gave_up
        if delay is not None:
            self.retry_in = delay if self.retry_in is None else min(self.retry_in, delay)


def send_batch(
    invitation_ids: Sequence[int],
    claim: str,
    mailer_factory: Callable[[], SmtpMailer] = SmtpMailer,
) -> BatchResult:
    with unit_of_work() as session:
        remaining = _claim(session, invitation_ids, claim)
    result = BatchResult()
    lease = _Lease(claim)
    try:
        with mailer_factory() as mailer:
            while remaining:
                current = _send_one(mailer, remaining[0], claim, result)
                remaining.pop(0)  # only once recorded: an unreachable server defers it too
                if not current and remaining:  # the policy flipped meanwhile: stop sending
                    with unit_of_work() as session:
                        _skip(session, remaining, claim)
                    remaining.clear()
                lease.keep_alive()
    except TransientSendError as exc:  # the server is unreachable: defer the whole rest
        with unit_of_work() as session:
            result.defer(*_defer(session, remaining, claim, str(exc)))
    return result


def _send_one(mailer: SmtpMailer, item: Outgoing, claim: str, result: BatchResult) -> bool:
    """Send one invitation and record the outcome; True while its policy version is current.

    The version is read in the recording transaction, so checking costs no extra one.
    """
    email = invitation_email(item)
    try:
        mailer.send(email)
    except RecipientDeferred as exc:  # only this recipient: the others go on
        with unit_of_work() as session:
            result.defer(*_defer(session, [item], claim, str(exc)))
            return _is_current(session, item)
    except PermanentSendError as exc:
        with unit_of_work() as session:
            _finish(session, item, claim, "failed", error=str(exc))
            result.failed += 1
            return _is_current(session, item)
    with unit_of_work() as session:
        _finish(session, item, claim, "sent", message_id=email.message_id)
        result.sent += 1
        return _is_current(session, item)


def _is_current(session: Session, item: Outgoing) -> bool:
    # A plain row read, not an ORM load: this runs once per email on the hot path.
    required, version = session.execute(
        select(Workspace.require_two_factor, Workspace.policy_version)
        .where(Workspace.id == item.workspace_id)
    ).one()
    return bool(required) and version == item.version


def _skip(session: Session, items: list[Outgoing], claim: str) -> None:
    session.execute(
        update(Inv)
        .where(Inv.id.in_([i.invitation_id for i in items]), Inv.status == "pending",
               Inv.lease_owner == claim)
        .values(status="skipped", lease_owner=None, lease_until=None)
    )


class _Lease:
    """Extends the batch's claim while it works, so a slow SMTP server never lets it lapse."""

    def __init__(self, claim: str) -> None:
        self.claim = claim
        self.seconds = get_settings().send_lease_seconds
        self.renewed = time.monotonic()

    def keep_alive(self) -> None:
        if time.monotonic() - self.renewed < self.seconds / 3:
            return
        with unit_of_work() as session:
            session.execute(
                update(Inv)
                .where(Inv.lease_owner == self.claim, Inv.status == "pending",
                       Inv.lease_until.is_not(None))
                .values(lease_until=utcnow() + timedelta(seconds=self.seconds))
            )
        self.renewed = time.monotonic()


def invitation_email(item: Outgoing) -> mail.OutgoingEmail:
    settings = get_settings()
    rendered = render(
        "enrollment-invitation",
        {
            "name": item.name,
            "workspace_name": item.workspace_name,
            "workspace_slug": item.workspace_slug,
            # The console's sign-in needs the slug; the link fills it in.
            "enroll_url": f"{settings.public_url.rstrip('/')}/enroll?"
                          + urlencode({"workspace": item.workspace_slug}),
        },
    )
    msg_id = mail.message_id(f"enroll.{item.teammate_id}.v{item.version}.r{item.resends}")
    return mail.build(item.email, rendered, msg_id)


def _claim(session: Session, ids: Sequence[int], claim: str) -> list[Outgoing]:
    """Lease the batch's pending rows to `claim`; a redelivered task (same id) re-takes its own."""
    now = utcnow()
    lease = now + timedelta(seconds=get_settings().send_lease_seconds)
    claimed = session.scalars(
        update(Inv)
        .where(
            Inv.id.in_(list(ids)),
            Inv.status == "pending",
            or_(Inv.lease_until.is_(None), Inv.lease_until < now, Inv.lease_owner == claim),
            or_(Inv.next_attempt_at.is_(None), Inv.next_attempt_at <= now),
        )
        .values(lease_owner=claim, lease_until=lease)
        .returning(Inv.id)
    ).all()
    if not claimed:
        return []
    rows = session.execute(
        select(Inv, Teammate, Workspace)
        .join(Teammate, Teammate.id == Inv.teammate_id)
        .join(Workspace, Workspace.id == Inv.workspace_id)
        .where(Inv.id.in_(claimed))
        .order_by(Inv.id)
    ).all()
    batch: list[Outgoing] = []
    for inv, teammate, workspace in rows:
        if not still_needed(teammate) or not is_current(workspace, inv.policy_version):
            inv.status, inv.lease_owner, inv.lease_until = "skipped", None, None
            continue
        batch.append(
            Outgoing(inv.id, teammate.id, workspace.id, teammate.email, teammate.name,
                     workspace.name, workspace.slug, inv.policy_version, inv.resends)
        )
    return batch


def still_needed(teammate: Teammate) -> bool:
    """Enrolled, exempted or removed since the invitation was planned: skip it."""
    return (teammate.status == "active" and not teammate.two_factor_enabled
            and not is_exempt(teammate.exempt_until))


def _finish(
    session: Session, item: Outgoing, claim: str, status: str,
    message_id: str | None = None, error: str | None = None,
) -> None:
    changed = session.execute(  # type: ignore[attr-defined]  # CursorResult
        update(Inv)
        .where(Inv.id == item.invitation_id, Inv.status == "pending", Inv.lease_owner == claim)
        .values(status=status, message_id=message_id, last_error=error,
                sent_at=utcnow() if status == "sent" else None,
                lease_owner=None, lease_until=None)
    ).rowcount
    if changed and status == "sent":
        recorder.record(
            session, item.workspace_id, EventType.ENROLLMENT_INVITED,
            {"teammate_id": item.teammate_id, "email": item.email,
             "policy_version": item.version},
            teammate_id=item.teammate_id,
        )


def _defer(
    session: Session, items: list[Outgoing], claim: str, error: str
) -> tuple[float | None, int]:
    """Count a transient failure for each row; past the retry schedule a row ends as failed.

    Each row keeps its own count (one recipient's earlier 4xx replies must not use up the
    others' retries). Returns (seconds until the soonest next try or None, how many gave up).
    """
    if not items:
        return None, 0
    schedule = get_settings().retry_schedule("email")
    counted = session.execute(
        update(Inv)
        .where(Inv.id.in_([i.invitation_id for i in items]), Inv.status == "pending",
               Inv.lease_owner == claim)
        .values(attempts=Inv.attempts + 1, last_error=error, lease_until=None)
        .returning(Inv.id, Inv.attempts)
    ).all()
    by_attempt: dict[int, list[int]] = {}
    for row_id, attempt in counted:
        by_attempt.setdefault(min(attempt, len(schedule) + 1), []).append(row_id)
    gave_up = by_attempt.pop(len(schedule) + 1, [])
    if gave_up:
        session.execute(update(Inv).where(Inv.id.in_(gave_up))
                        .values(status="failed", lease_owner=None))
    now = utcnow()
    for attempt, ids in by_attempt.items():
        session.execute(update(Inv).where(Inv.id.in_(ids)).values(
            next_attempt_at=now + timedelta(seconds=schedule[attempt - 1])))
    delay = min((schedule[a - 1] for a in by_attempt), default=None)
    return delay, len(gave_up)
