"""Delivering an endpoint's webhooks in event order, one attempt row per try.

The unit of work is an endpoint, not a delivery: a run takes the endpoint's oldest pending
delivery, sends it, records the outcome and takes the next, so a later event never overtakes
an earlier one that is still pending (waiting for a retry included). Taking the head means
leasing it under the endpoint's row lock, which is also what keeps two workers from sending
the same delivery at once. Retry times live in the database (`next_attempt_at`), found by
the periodic sweep, so nothing depends on a broker holding a countdown for hours.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from services import crypto, outbox
from services.config import get_settings
from services.db import unit_of_work
from services.events.catalog import to_cloudevent
from services.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint, Workspace, utcnow
from services.webhooks import signing
from services.webhooks.transport import TIMEOUT_SECONDS, Outcome, Sender

# Longer than one attempt can take (timeout plus bookkeeping): a lease that lapses means its
# worker died, and the sweep lets another worker take the delivery.
LEASE_SECONDS = TIMEOUT_SECONDS * 2
MAX_PER_RUN = 200  # then the task hands the rest to a fresh task, so endpoints share workers
JITTER = 0.2  # ±20% on each retry delay, so endpoints failing together retry apart
SEND_DISABLED_EMAIL = "webhooks.send_disabled_email"


@dataclass(frozen=True)
class Job:
    delivery_id: int
    endpoint_id: int
    url: str
    event_id: str
    body: str
    secret: str


@dataclass
class RunResult:
    sent: int = 0
    failed_attempts: int = 0
    more: bool = False  # stopped at MAX_PER_RUN with work left
    retry_in: float | None = None  # seconds until the head delivery is due again


def deliver_endpoint(
    endpoint_id: int, sender_factory: Callable[[], Sender] = Sender, limit: int = MAX_PER_RUN
) -> RunResult:
    """Send the endpoint's due deliveries in order until one must wait, or `limit` are done."""
    result = RunResult()
    handled = 0
    done: tuple[Job, Outcome] | None = None
    with sender_factory() as sender:
        while True:
            # Recording one outcome and taking the next delivery share a transaction.
            with unit_of_work() as session:
                if done is not None:
                    record(session, *done)
                job = claim_head(session, endpoint_id, result) if handled < limit else None
            if done is not None:
                result.sent += done[1].ok
                result.failed_attempts += not done[1].ok
            if job is None:
                break
            handled += 1
            headers = signing.headers(job.secret, job.event_id, utcnow(), job.body)
            done = (job, sender.post(job.url, job.body, headers))
    result.more = handled >= limit
    return result


def claim_head(session: Session, endpoint_id: int, result: RunResult | None = None) -> Job | None:
    """Lease the endpoint's oldest pending delivery if it is due and nobody holds it."""
    endpoint = session.scalar(
        select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id).with_for_update()
    )
    if endpoint is None or not endpoint.enabled or endpoint.deleted_at is not None:
        return None
    row = session.execute(
        select(WebhookDelivery, Event)
        .join(Event, Event.seq == WebhookDelivery.event_seq)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == "pending")
        .order_by(WebhookDelivery.event_seq)
        .limit(1)
    ).first()
    if row is None:
        return None
    delivery, event = row
    now = utcnow()
    if delivery.lease_until is not None and delivery.lease_until > now:
        return None  # another worker is sending it; it takes the next one after
    if delivery.next_attempt_at is not None and delivery.next_attempt_at > now:
        if result is not None:
            result.retry_in = (delivery.next_attempt_at - now).total_seconds()
        return None  # later events wait behind it: per-endpoint order
    delivery.lease_until = now + timedelta(seconds=LEASE_SECONDS)
    workspace = session.get(Workspace, endpoint.workspace_id)
    assert workspace is not None
    return Job(
        delivery_id=delivery.id,
        endpoint_id=endpoint.id,
        url=endpoint.url,
        event_id=event.id,
        body=json.dumps(to_cloudevent(event, workspace.slug), separators=(",", ":")),
        secret=crypto.decrypt(endpoint.secret_enc),
    )


def record(session: Session, job: Job, outcome: Outcome, now: datetime | None = None) -> None:
    """Write the attempt row and move the delivery (and the endpoint's health) on."""
    now = now or utcnow()
    # Endpoint first, then delivery: the same lock order as claim_head, so no deadlock.
    endpoint = session.scalar(
        select(WebhookEndpoint).where(WebhookEndpoint.id == job.endpoint_id).with_for_update()
    )
    delivery = session.get(WebhookDelivery, job.delivery_id)
    assert endpoint is not None and delivery is not None
    session.add(WebhookAttempt(
        delivery_id=delivery.id, attempted_at=now, response_status=outcome.status,
        duration_ms=outcome.duration_ms, error=outcome.error, response_body=outcome.body,
    ))
    delivery.lease_until = None
    if delivery.status != "pending":
        return  # finished meanwhile (a lapsed lease taken over): keep the log, change nothing
    delivery.attempts += 1
    if outcome.ok:
        _finish(delivery, "succeeded", now)
        endpoint.consecutive_failures = 0
        return
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


def disable(session: Session, endpoint: WebhookEndpoint, reason: str) -> None:
    """Stop sending to the endpoint and tell the workspace admins (once, by email)."""
    if not endpoint.enabled:
        return
    endpoint.enabled = False
    endpoint.disabled_reason = reason[:200]
    outbox.enqueue(session, SEND_DISABLED_EMAIL, endpoint_id=endpoint.id)


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
            WebhookEndpoint.deleted_at.is_(None),
        )
    ).all()


def _finish(delivery: WebhookDelivery, status: str, now: datetime) -> None:
    delivery.status = status
    delivery.finished_at = now
    delivery.next_attempt_at = None
