"""Delivering an endpoint's webhooks in event order, one attempt row per try.

The unit of work is an endpoint, not a delivery: a run leases a window of the endpoint's
oldest due deliveries, sends them one after the other, records the outcomes and takes the
next window, so a later event never overtakes an earlier one that is still pending (waiting
for a retry included): the window ends at the first failure and the rest is released.
Leasing happens under the endpoint's row lock, which is also what keeps two workers from
sending the same delivery at once. Retry times live in the database (`next_attempt_at`),
found by the periodic sweep, so nothing depends on a broker holding a countdown for hours.

Costs are per window, not per delivery: one transaction records a window and leases the
next, the endpoint's secret is decrypted once per run and the HTTP connection is kept alive.
A worker that dies mid-window leaves its lease to lapse: the window is sent again (at least
once; receivers dedupe on webhook-id).

Each attempt is a span in the trace of its event's dispatch (kept with the delivery,
services/tracing.py), linked to the run that sent it, which may serve many events.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from services import crypto, outbox, tracing
from services.config import get_settings
from services.db import unit_of_work
from services.events.catalog import to_cloudevent
from services.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint, Workspace, utcnow
from services.topics import Topic
from services.webhooks import signing
from services.webhooks.transport import TIMEOUT_SECONDS, Outcome, Sender

WINDOW = 100  # deliveries leased (and recorded) together
MAX_PER_RUN = 1000  # then the task hands the rest to a fresh task, so endpoints share workers
JITTER = 0.2  # ±20% on each retry delay, so endpoints failing together retry apart


@dataclass(frozen=True)
class Lease:
    """A run's claim on its window (TWOFA_WEBHOOK_LEASE_SECONDS, 60 s by default).

    A lapsed lease means its worker died, and the sweep lets another worker take the window.
    An attempt starts only while a whole attempt deadline plus `record_margin` is left on the
    lease, so a live worker's lease never lapses under it, however slowly its receiver answers.
    """

    seconds: float
    record_margin: float  # kept at the end of a lease to record the window

    @classmethod
    def from_settings(cls) -> Lease:
        seconds = get_settings().webhook_lease_seconds
        return cls(seconds=seconds, record_margin=seconds / 6)  # 10 s of the default 60 s

    @property
    def attempt_timeout(self) -> float:
        return min(TIMEOUT_SECONDS, self.seconds / 4)


@dataclass(frozen=True)
class Job:
    delivery_id: int
    endpoint_id: int
    url: str
    event_id: str
    body: str
    secret_enc: bytes  # decrypted once per run, not per delivery
    trace_context: tracing.Carrier | None = None  # its event's dispatch


@dataclass
class RunResult:
    sent: int = 0
    failed_attempts: int = 0
    more: bool = False  # stopped at MAX_PER_RUN with work left
    retry_in: float | None = None  # seconds until the head delivery is due again


@dataclass
class Sent:
    """A window after sending: outcomes in order (a failure only last), then the unsent rest."""

    done: list[tuple[Job, Outcome, datetime]]  # datetime: when the attempt started
    unsent: list[Job]


def deliver_endpoint(
    endpoint_id: int, sender_factory: Callable[[], Sender] | None = None, limit: int = MAX_PER_RUN,
    window: int = WINDOW,
) -> RunResult:
    """Send the endpoint's due deliveries in order until one must wait, or `limit` are done."""
    result = RunResult()
    handled = 0
    sent = Sent([], [])
    signers: dict[bytes, signing.Signer] = {}
    lease = Lease.from_settings()
    with (sender_factory or (lambda: Sender(timeout=lease.attempt_timeout)))() as sender:
        while True:
            leased_at = time.monotonic()  # before the lease is stamped: errs on the safe side
            # Recording one window and leasing the next share a transaction.
            with unit_of_work() as session:
                record_window(session, sent)
                size = min(window, limit - handled)
                jobs = claim_window(session, endpoint_id, size, result, lease) if size > 0 else []
            result.sent += sum(outcome.ok for _, outcome, _ in sent.done)
            result.failed_attempts += sum(not outcome.ok for _, outcome, _ in sent.done)
            if not jobs:
                break
            secret_enc = jobs[0].secret_enc
            if secret_enc not in signers:
                signers[secret_enc] = signing.Signer(crypto.decrypt(secret_enc))
            sent = send_window(sender, signers[secret_enc], jobs, leased_at, lease)
            handled += len(sent.done)
    result.more = handled >= limit
    return result


def send_window(sender: Sender, signer: signing.Signer, jobs: list[Job], leased_at: float,
                lease: Lease | None = None) -> Sent:
    """POST the jobs in order; stop at the first failure, or when the lease has too little left."""
    lease = lease or Lease.from_settings()
    sent = Sent([], [])
    for i, job in enumerate(jobs):
        if time.monotonic() - leased_at + sender.timeout + lease.record_margin > lease.seconds:
            sent.unsent = jobs[i:]
            break
        started = utcnow()
        outcome = _post(sender, signer, job, started)
        sent.done.append((job, outcome, started))
        if not outcome.ok:  # later events wait behind this one: per-endpoint order
            sent.unsent = jobs[i + 1:]
            break
    return sent


def _post(sender: Sender, signer: signing.Signer, job: Job, started: datetime) -> Outcome:
    """One attempt, in its event's trace (the URL stays out: it may carry a secret)."""
    with tracing.span("webhook deliver", parent=job.trace_context, links=[tracing.capture()],
                      kind="client", attributes={"twofa.webhook.endpoint_id": job.endpoint_id,
                                                 "twofa.event.id": job.event_id}) as span:
        outcome = sender.post(job.url, job.body, signer.headers(job.event_id, started, job.body))
        if outcome.status is not None:
            span.set("http.response.status_code", outcome.status)
        if not outcome.ok:
            span.fail(f"HTTP {outcome.status}" if outcome.status else "no answer")
        return outcome


def claim_window(session: Session, endpoint_id: int, size: int,
                 result: RunResult | None = None, lease: Lease | None = None) -> list[Job]:
    """Lease up to `size` of the endpoint's oldest pending deliveries: due, unleased, in order.

    The window stops before the first delivery that is leased (another worker is sending it)
    or not yet due (waiting for its retry), so nothing is sent ahead of an earlier event.
    """
    endpoint = session.scalar(
        select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id).with_for_update()
    )
    if endpoint is None or not endpoint.enabled:  # a deleted endpoint is disabled too
        return []
    rows = session.execute(
        select(WebhookDelivery, Event)
        .join(Event, Event.seq == WebhookDelivery.event_seq)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == "pending")
        .order_by(WebhookDelivery.event_seq)
        .limit(size)
    ).all()
    now = utcnow()
    taken: list[tuple[WebhookDelivery, Event]] = []
    for delivery, event in rows:
        if delivery.lease_until is not None and delivery.lease_until > now:
            break
        if delivery.next_attempt_at is not None and delivery.next_attempt_at > now:
            if not taken and result is not None:
                result.retry_in = (delivery.next_attempt_at - now).total_seconds()
            break
        taken.append((delivery, event))
    if not taken:
        return []
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_([d.id for d, _ in taken]))
        .values(lease_until=now + timedelta(seconds=(lease or Lease.from_settings()).seconds))
        .execution_options(synchronize_session=False)
    )
    workspace = session.get(Workspace, endpoint.workspace_id)
    assert workspace is not None
    return [
        Job(
            delivery_id=delivery.id,
            endpoint_id=endpoint.id,
            url=endpoint.url,
            event_id=event.id,
            body=json.dumps(to_cloudevent(event, workspace.slug), separators=(",", ":")),
            secret_enc=endpoint.secret_enc,
            trace_context=delivery.trace_context,
        )
        for delivery, event in taken
    ]


def record_window(session: Session, sent: Sent) -> None:
    """Write a window's attempt rows, move its deliveries on and release the unsent ones.

    Successes are settled with one statement; a failure (only ever the last outcome) goes
    through `_record_failure` for its retry schedule and the endpoint's health.
    """
    jobs = [job for job, _, _ in sent.done] + sent.unsent
    if not jobs:
        return
    now = utcnow()
    # Endpoint first, then deliveries: the same lock order as claim_window, so no deadlock.
    endpoint = session.scalar(
        select(WebhookEndpoint).where(WebhookEndpoint.id == jobs[0].endpoint_id).with_for_update()
    )
    assert endpoint is not None
    d = WebhookDelivery
    session.execute(
        update(d).where(d.id.in_([job.delivery_id for job in jobs])).values(lease_until=None)
        .execution_options(synchronize_session=False)
    )
    succeeded = [(job, outcome, at) for job, outcome, at in sent.done if outcome.ok]
    if succeeded:
        session.execute(insert(WebhookAttempt), [_attempt(*done) for done in succeeded])
        moved = session.execute(
            update(d)
            .where(d.id.in_([job.delivery_id for job, _, _ in succeeded]), d.status == "pending")
            .values(status="succeeded", attempts=d.attempts + 1, finished_at=now, next_attempt_at=None)
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount:  # type: ignore[attr-defined]  # CursorResult
            endpoint.consecutive_failures = 0
    for job, outcome, at in sent.done:
        if not outcome.ok:
            _record_failure(session, endpoint, job, outcome, now, attempted_at=at)


def _record_failure(session: Session, endpoint: WebhookEndpoint, job: Job, outcome: Outcome,
                    now: datetime, attempted_at: datetime) -> None:
    """Write the failed attempt's row; schedule the retry, or fail the delivery (and maybe
    disable the endpoint). The caller holds the endpoint's lock and released the lease."""
    delivery = session.get(WebhookDelivery, job.delivery_id)
    assert delivery is not None
    session.add(WebhookAttempt(**_attempt(job, outcome, attempted_at)))
    if delivery.status != "pending":
        return  # finished meanwhile (a lapsed lease taken over): keep the log, change nothing
    delivery.attempts += 1
    if outcome.status == 410:
        _finish(delivery, "failed", now)
        disable(session, endpoint, "the receiver answered 410 Gone")
        return
    schedule = get_settings().retry_schedule("webhook")
    if delivery.attempts <= len(schedule):
        delay = schedule[delivery.attempts - 1] * random.uniform(1 - JITTER, 1 + JITTER)
        delivery.next_attempt_at = now + timedelta(seconds=delay)
        return
    _finish(delivery, "failed", now)
    endpoint.consecutive_failures += 1
    threshold = get_settings().webhook_failure_threshold
    if endpoint.consecutive_failures >= threshold:
        disable(session, endpoint, f"{endpoint.consecutive_failures} events in a row failed every retry")


def _attempt(job: Job, outcome: Outcome, attempted_at: datetime) -> dict[str, object]:
    return {
        "delivery_id": job.delivery_id, "attempted_at": attempted_at, "response_status": outcome.status,
        "duration_ms": outcome.duration_ms, "error": outcome.error, "response_body": outcome.body,
    }


def disable(session: Session, endpoint: WebhookEndpoint, reason: str) -> None:
    """Stop sending to the endpoint and tell the workspace admins (once, by email)."""
    if not endpoint.enabled:
        return
    endpoint.enabled = False
    endpoint.disabled_reason = reason[:200]
    outbox.enqueue(session, Topic.SEND_WEBHOOK_DISABLED_EMAIL, endpoint_id=endpoint.id)


def due_endpoints(session: Session, now: datetime | None = None) -> Sequence[int]:
    """Endpoints whose oldest pending delivery is due and unleased: what the sweep wakes up.

    Only the head counts: deliveries queued behind one that waits for its retry, or behind
    one a worker is sending, are not work yet (they would only wake a task to find nothing).
    """
    now = now or utcnow()
    d = WebhookDelivery
    heads = (
        select(d.endpoint_id, func.min(d.event_seq).label("event_seq"))
        .where(d.status == "pending")
        .group_by(d.endpoint_id)
        .subquery()
    )
    return session.scalars(
        select(d.endpoint_id)
        .join(heads, and_(d.endpoint_id == heads.c.endpoint_id, d.event_seq == heads.c.event_seq))
        .join(WebhookEndpoint, WebhookEndpoint.id == d.endpoint_id)
        .where(
            or_(d.next_attempt_at.is_(None), d.next_attempt_at <= now),
            or_(d.lease_until.is_(None), d.lease_until <= now),
            WebhookEndpoint.enabled.is_(True),
        )
    ).all()


def _finish(delivery: WebhookDelivery, status: str, now: datetime) -> None:
    delivery.status = status
    delivery.finished_at = now
    delivery.next_attempt_at = None
