"""Thin webhook tasks: deliver an endpoint's due events, sweep for due ones, tell admins."""

from __future__ import annotations

import logging

from celery import Task, shared_task

from services.db import unit_of_work
from services.topics import Topic
from services.webhooks import delivery, notify
from workers.tasks import send_emails_once

log = logging.getLogger(__name__)

# A retry due this soon gets a countdown task as well, so short retries do not wait for the
# sweep; longer ones rely on the sweep alone (next_attempt_at is the truth, not the broker).
ACCELERATE_SECONDS = 60.0


@shared_task(name=Topic.DELIVER_WEBHOOKS)
def deliver(endpoint_id: int) -> None:
    result = delivery.deliver_endpoint(endpoint_id)
    log.info("webhooks endpoint %d: %d delivered, %d failed attempts",
             endpoint_id, result.sent, result.failed_attempts)
    if result.more:
        deliver.delay(endpoint_id)  # a fresh task, so other endpoints get a turn meanwhile
    elif result.retry_in is not None and result.retry_in <= ACCELERATE_SECONDS:
        deliver.apply_async((endpoint_id,), countdown=result.retry_in)


@shared_task(name=Topic.SWEEP_WEBHOOKS)
def sweep() -> None:
    with unit_of_work() as session:
        endpoint_ids = delivery.due_endpoints(session)
    for endpoint_id in endpoint_ids:
        deliver.delay(endpoint_id)


@shared_task(name=Topic.SEND_WEBHOOK_DISABLED_EMAIL, bind=True)
def send_disabled_email(self: Task, endpoint_id: int) -> None:
    with unit_of_work() as session:
        emails = notify.disabled_emails(session, endpoint_id)
    send_emails_once(self, emails)
