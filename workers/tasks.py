"""Thin Celery tasks: take ids, call into services, decide only about retrying.

Each is registered under its outbox topic (services/topics.py) on whichever app the process
builds (workers/celery_app.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from celery import Task, shared_task
from celery.signals import task_success

from services import handlers, outbox
from services.config import get_settings
from services.db import unit_of_work
from services.email import notifications
from services.email.message import OutgoingEmail
from services.email.smtp import SmtpMailer, TransientSendError
from services.enrollment import exemptions, fanout, reminders, sending
from services.topics import Topic

log = logging.getLogger(__name__)


@shared_task(name=Topic.DISPATCH_EVENTS)
def dispatch_events(event_seqs: list[int]) -> None:
    with unit_of_work() as session:
        handlers.dispatch(session, event_seqs)


@shared_task(name=Topic.SEND_INVITATION_BATCH, bind=True, max_retries=None)
def send_invitation_batch(self: Task, invitation_ids: list[int]) -> None:
    # The task id is the claim: a redelivery of this very message may re-take its rows.
    result = sending.send_batch(invitation_ids, claim=self.request.id)
    log.info("invitations batch: %d sent, %d failed", result.sent, result.failed)
    if result.retry_in is not None:
        raise self.retry(countdown=result.retry_in)


@shared_task(name=Topic.SWEEP_ROLLOUTS)
def sweep_rollouts() -> None:
    """Finish rollouts, send due reminders, end lapsed exemptions: each its own transaction,
    so one failing never holds back the others."""
    with unit_of_work() as session:
        exemptions.expire(session)
    with unit_of_work() as session:
        reminders.sweep(session)
    with unit_of_work() as session:
        fanout.sweep(session)


@shared_task(name=Topic.SEND_REMINDER_BATCH, bind=True)
def send_reminder_batch(self: Task, reminder_id: int, teammate_ids: list[int]) -> None:
    with unit_of_work() as session:
        built = reminders.emails(session, reminder_id, teammate_ids)
    send_emails_once(self, built)


@shared_task(name=Topic.SEND_JOIN_EMAIL, bind=True)
def send_join_email(self: Task, teammate_id: int) -> None:
    with unit_of_work() as session:
        built = notifications.join_email(session, teammate_id)
    if built:
        send_emails_once(self, [built])
        with unit_of_work() as session:  # a crash before this: the redelivery records it
            notifications.record_join_sent(session, teammate_id, built[0])


@shared_task(name=Topic.SEND_NOTIFICATION_EMAIL, bind=True)
def send_notification_email(self: Task, event_seq: int) -> None:
    with unit_of_work() as session:
        built = notifications.event_emails(session, event_seq)
    send_emails_once(self, built)


def send_emails_once(task: Task, emails: Sequence[tuple[str, OutgoingEmail]]) -> None:
    """Send each (key, email) once over one connection; transient failures retry the task on
    TWOFA_EMAIL_RETRY_SCHEDULE (past it the task fails and the outbox republishes it later)."""
    if not emails:
        return
    try:
        with SmtpMailer() as mailer:
            for key, email in emails:
                notifications.send_once(key, email, mailer)
    except TransientSendError as exc:
        schedule = get_settings().retry_schedule("email")
        delay = schedule[min(task.request.retries, len(schedule) - 1)]
        raise task.retry(countdown=delay, max_retries=len(schedule), exc=exc) from exc


@task_success.connect
def complete_outbox_messages(sender: Task | None = None, **_: Any) -> None:
    """The relay's messages are done once their task succeeded (see workers/relay.py)."""
    ids = getattr(sender.request, "outbox_ids", None) if sender is not None else None
    if ids:
        with unit_of_work() as session:
            outbox.complete(session, ids)
