"""Every kind of background work, by name: an outbox topic is the Celery task that does it.

The service layer enqueues `Topic` members (`outbox.enqueue(session, Topic.DELIVER_WEBHOOKS,
endpoint_id=…)`) and `workers/` registers one task under each (`@shared_task(name=…)`), so
the two sides cannot drift apart; tests/test_topics.py checks that they match exactly.
The values are stored in outbox rows and sent to the broker: renaming one orphans both.
"""

from __future__ import annotations

from enum import StrEnum


class Topic(StrEnum):
    DISPATCH_EVENTS = "events.dispatch"
    SEND_INVITATION_BATCH = "enrollment.send_batch"
    SWEEP_ROLLOUTS = "enrollment.sweep"
    SEND_REMINDER_BATCH = "enrollment.send_reminders"
    SEND_JOIN_EMAIL = "email.send_join"
    SEND_NOTIFICATION_EMAIL = "email.send_notification"
    SEND_PASSWORD_RESET = "email.send_password_reset"  # noqa: S105 - a task name, no secret
    DELIVER_WEBHOOKS = "webhooks.deliver"
    SWEEP_WEBHOOKS = "webhooks.sweep"
    SEND_WEBHOOK_DISABLED_EMAIL = "webhooks.send_disabled_email"
