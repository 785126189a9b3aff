"""Sending a batch of enrollment invitations: claim, send over a few connections, record each.

The batch is split over up to TWOFA_SMTP_CONNECTIONS SMTP connections at once
(services/email/parallel.py). Each accepted send is recorded (services/enrollment/recording.py)
before its connection sends again, so a pool process killed mid-batch repeats at most
TWOFA_SMTP_CONNECTIONS sends, those in flight or accepted but not yet recorded, and each
repeat carries the same Message-ID (teammate, policy version, resend count). The message is
rendered and built once per workspace, language and time zone (services/email/template.py),
not once per teammate.

The batch leases its rows (TWOFA_SEND_LEASE_SECONDS); once a lease lapses, the sweep hands
the rows to another batch. So the lease is renewed on a clock by the batch's own thread,
not only when a send is recorded (a throttling relay can pause every sender for longer than
the lease), and a row a renewal no longer found the batch's (another batch took it after
a stall, or the teammate was removed) is not sent (see _Lease).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from services.config import get_settings
from services.db import unit_of_work
from services.email import connections, links, parallel
from services.email import message as mail
from services.email.connections import Mailers
from services.email.pace import get_pace
from services.email.render import render
from services.email.smtp import PermanentSendError, SmtpMailer
from services.email.template import MessageTemplate
from services.enforcement import is_admin
from services.enrollment import recording, state
from services.i18n.dates import in_words
from services.models import EnrollmentInvitation, Teammate, Workspace, utcnow

log = logging.getLogger(__name__)

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
    enforce_at: datetime | None = None  # the end of a grace period, said in the email
    # (None for admins: they are held at once, whatever the grace period)
    template: str = "enrollment-invitation"  # or "security-key-invitation" (security_keys)
    locale: str | None = None  # the teammate's language (None: English)
    time_zone: str | None = None  # the zone their deadline is said in (None: UTC)

    @property
    def template_key(self) -> tuple[int, str, bool, str | None, str | None]:
        """Copies of one template: a workspace's invitations of one wording, with or without
        its deadline, in one language and time zone."""
        return (self.workspace_id, self.template, self.enforce_at is not None, self.locale,
                self.time_zone)


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
    mailers: Mailers | None = None,
) -> BatchResult:
    leased_at = time.monotonic()  # before the lease is stamped: errs on the safe side
    with unit_of_work() as session:
        batch = _claim(session, invitation_ids, claim)
    result = BatchResult()
    if not batch:
        return result
    run = _Run(claim, batch, result, leased_at)
    with run.recorder:
        left = parallel.send_all(batch, run.send, run.record,
                                 mailers or connections.pool(),
                                 get_settings().smtp_connections, get_pace(),
                                 run.lease.keep_alive, run.lease.look_every)
    if left:
        with unit_of_work() as session:
            if not run.current:  # the policy flipped meanwhile: the rest is not sent
                _skip(session, left, claim)
            else:  # every connection failed: the server is unreachable, defer the rest
                result.defer(*_defer(session, left, claim, run.last_error))
    return result


class _Run:
    """One batch under way: records outcomes as they arrive (in the task's thread)."""

    def __init__(self, claim: str, batch: list[Outgoing], result: BatchResult,
                 leased_at: float) -> None:
        self.claim, self.result = claim, result
        self.messages = _Messages(batch)
        self.recorder = recording.SentRecorder(claim)
        self.lease = _Lease(claim, (item.invitation_id for item in batch), leased_at)
        self.current = True
        self.last_error = ""

    def send(self, mailer: SmtpMailer, item: Outgoing) -> str | None:
        """Send one invitation unless the batch lost its row (in a connection's thread)."""
        if not self.lease.holds(item.invitation_id):
            return None
        return self.messages.send(mailer, item)

    def record(self, outcomes: list[parallel.Outcome[Outgoing]]) -> bool:
        """Record what the connections reported; False once the policy version is stale."""
        sent: dict[tuple[int, int], list[tuple[Outgoing, str]]] = {}
        for o in outcomes:
            if o.error is None and o.message_id is not None:
                sent.setdefault((o.item.workspace_id, o.item.version), []).append(
                    (o.item, o.message_id))
        for (workspace_id, version), pairs in sent.items():
            recorded, current = self.recorder.sent(workspace_id, version, pairs)
            self.result.sent += recorded
            self.current = self.current and current
        failures = [o for o in outcomes if o.error is not None]
        if failures:
            with unit_of_work() as session:
                for o in failures:
                    if isinstance(o.error, PermanentSendError):
                        _finish_failed(session, o.item, self.claim, str(o.error))
                        self.result.failed += 1
                    else:  # a transient error: this recipient or this connection, retried later
                        self.last_error = str(o.error)
                        self.result.defer(*_defer(session, [o.item], self.claim, str(o.error)))
                if not sent:  # no recording statement said whether the version is live
                    self.current = self.current and _is_current(session, failures[0].item)
        return self.current


class _Messages:
    """The batch's messages: one template per (workspace, language, zone), copies per
    teammate."""

    def __init__(self, batch: list[Outgoing]) -> None:
        self.templates: dict[tuple[int, str, bool, str | None, str | None],
                             MessageTemplate | None] = {}
        for item in batch:
            if item.template_key not in self.templates:
                template = MessageTemplate(item.template, _context(item), item.locale,
                                           item.time_zone)
                # A template that does more with the name than print it: render each in full.
                self.templates[item.template_key] = (
                    template if template.first_copy_matches(item.name) else None)

    def send(self, mailer: SmtpMailer, item: Outgoing) -> str:
        """Send one invitation (in a connection's thread); returns its Message-ID."""
        message_id = _message_id(item)
        template = self.templates[item.template_key]
        copy = template.copy(item.email, item.name, message_id) if template else None
        if copy is None:
            email = invitation_email(item)
            mailer.send(email)
            return email.message_id
        mailer.send_bytes(copy.to, copy.data)
        return message_id


def _is_current(session: Session, item: Outgoing) -> bool:
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
    """The batch's claim on its rows, renewed every third of TWOFA_SEND_LEASE_SECONDS by the
    batch's thread (`keep_alive`, which parallel.send_all runs on a clock, pauses included),
    and asked before each send (`holds`, in the connections' threads).

    A renewal extends the rows still pending and leased to the batch, and sends from then on
    only those: a row it did not find is done, or no longer the batch's (the teammate was
    removed, or the process stalled past the lease and the sweep handed the row to another
    batch, which sends it). Nothing waits on a renewal and nothing is declined for being
    slow: a row still the batch's is always sent by it. What a stall past the lease can
    still repeat is a send already in flight or taken before the renewal that follows the
    stall, at most one per connection, with the same Message-ID: the bound of a killed
    process.
    """

    def __init__(self, claim: str, held: Iterable[int], leased_at: float) -> None:
        self.claim = claim
        self.seconds = get_settings().send_lease_seconds
        self.look_every = self.seconds / 6  # how often keep_alive runs, renewing or not
        self._held = frozenset(held)
        self._renewed = leased_at  # monotonic, taken before the lease was stamped

    def keep_alive(self) -> None:
        if time.monotonic() - self._renewed < self.seconds / 3:
            return
        renewed = time.monotonic()
        try:
            with unit_of_work() as session:
                held = session.scalars(
                    update(Inv)
                    .where(Inv.lease_owner == self.claim, Inv.status == "pending",
                           Inv.lease_until.is_not(None))
                    .values(lease_until=utcnow() + timedelta(seconds=self.seconds))
                    .returning(Inv.id)
                ).all()
        except OperationalError as exc:
            # A renewal chosen as a deadlock's victim (the sweep takes the same rows once a
            # stall let the lease lapse) or a database hiccup. Raising would end the batch
            # with sends accepted but not recorded, which the next batch repeats: try again
            # at the next look. With less than a third of the lease left, the rows may be
            # another batch's by the time a send goes out: send none until a renewal says
            # which are still this one's (those it never sends lapse, and the sweep hands
            # them on).
            log.warning("the send lease of batch %s was not renewed (%s); trying again",
                        self.claim, exc.orig)
            if time.monotonic() - self._renewed >= self.seconds * 2 / 3:
                self._held = frozenset()
            return
        self._held, self._renewed = frozenset(held), renewed

    def holds(self, invitation_id: int) -> bool:
        return invitation_id in self._held


INVITATION = "enrollment-invitation"
KEY_INVITATION = "security-key-invitation"


def _context(item: Outgoing) -> dict[str, str]:
    """Everything the invitation shows but the teammate's name: the same for a workspace."""
    return {
        "workspace_name": item.workspace_name,
        "workspace_slug": item.workspace_slug,
        "enroll_url": links.enroll_url(item.workspace_slug),
        "deadline": in_words(item.enforce_at, item.locale, item.time_zone)
        if item.enforce_at else "",
    }


def _message_id(item: Outgoing) -> str:
    return mail.message_id(f"enroll.{item.teammate_id}.v{item.version}.r{item.resends}")


def invitation_email(item: Outgoing) -> mail.OutgoingEmail:
    """The invitation rendered and built in full (a copy of the template does the same)."""
    rendered = render(item.template, {**_context(item), "name": item.name}, item.locale,
                      item.time_zone)
    return mail.build(item.email, rendered, _message_id(item))


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
    rows = session.execute(  # plain rows, not ORM objects: this runs once per 100 emails
        select(Inv.id, Inv.teammate_id, Inv.workspace_id, Inv.policy_version, Inv.resends,
               Teammate.email, Teammate.name, Teammate.totp_enabled_at,
               Teammate.webauthn_enabled_at, Teammate.status,
               Teammate.exempt_until, Teammate.role, Teammate.locale, Teammate.time_zone,
               Workspace.name.label("workspace_name"), Workspace.slug,
               Workspace.require_two_factor, Workspace.policy_version.label("live_version"),
               Workspace.enforce_at, Workspace.allowed_methods, Workspace.methods_enforce_at)
        .join(Teammate, Teammate.id == Inv.teammate_id)
        .join(Workspace, Workspace.id == Inv.workspace_id)
        .where(Inv.id.in_(claimed))
        .order_by(Inv.id)
    ).all()
    batch: list[Outgoing] = []
    stale: list[int] = []
    for row in rows:
        compliant_since = row.webauthn_enabled_at if row.allowed_methods == "security_keys" \
            else row.totp_enabled_at or row.webauthn_enabled_at
        if not state.still_to_enroll(row.status, compliant_since, row.exempt_until) or not (
                row.require_two_factor and row.live_version == row.policy_version):
            stale.append(row.id)  # enrolled, exempted or removed meanwhile, or a new policy
            continue
        keys_only = row.allowed_methods == "security_keys"
        # Under security_keys their own wording; one with an app has the methods deadline.
        deadline = row.methods_enforce_at if keys_only and row.totp_enabled_at else row.enforce_at
        batch.append(Outgoing(row.id, row.teammate_id, row.workspace_id, row.email, row.name,
                              row.workspace_name, row.slug, row.policy_version, row.resends,
                              None if is_admin(row.role) else deadline,
                              KEY_INVITATION if keys_only else INVITATION,
                              row.locale, row.time_zone))
    if stale:
        session.execute(update(Inv).where(Inv.id.in_(stale))
                        .values(status="skipped", lease_owner=None, lease_until=None))
    return batch


def _finish_failed(session: Session, item: Outgoing, claim: str, error: str) -> None:
    session.execute(
        update(Inv)
        .where(Inv.id == item.invitation_id, Inv.status == "pending", Inv.lease_owner == claim)
        .values(status="failed", last_error=error, lease_owner=None, lease_until=None)
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
