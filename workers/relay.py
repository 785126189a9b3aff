"""The outbox relay: publishes committed outbox messages as Celery tasks, at least once.

Each task carries the ids of the outbox rows it serves in a message header; when it
succeeds, the worker marks them complete (workers/tasks.py). Rows published but never
completed are published again after TWOFA_OUTBOX_REDELIVER_SECONDS. The relay also sends the
periodic sweeps that finish rollouts and webhook retries whatever crashed.

With tracing on, each task is published in a span that continues the trace of the request
(or task) that wrote its outbox rows, and links to every row's trace: a dispatch task merges
the events of many requests. The relay's own polling makes no spans.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import timedelta

from celery import Celery

from services import outbox, tracing
from services.config import get_settings
from services.db import unit_of_work
from services.models import OutboxMessage
from services.topics import Topic

log = logging.getLogger(__name__)
KEEP_COMPLETED = timedelta(days=7)
CLAIM_LIMIT = 500  # outbox rows per loop


def _publish(app: Celery, messages: Sequence[OutboxMessage]) -> None:
    for pub in outbox.merge(messages):
        if not pub.traces:  # written outside any trace (or with tracing off): no span
            app.send_task(pub.task, kwargs=pub.kwargs, headers={"outbox_ids": pub.outbox_ids})
            continue
        # The oldest message's trace is the parent; every message's is linked.
        with tracing.span(f"outbox publish {pub.task}", parent=pub.traces[0], links=pub.traces,
                          kind="producer", attributes={"twofa.outbox.ids": pub.outbox_ids}):
            app.send_task(pub.task, kwargs=pub.kwargs, headers={"outbox_ids": pub.outbox_ids})


def relay_once(app: Celery, limit: int = CLAIM_LIMIT) -> int:
    with tracing.quiet(), unit_of_work() as session:
        messages = outbox.claim_unpublished(session, limit)
        if not messages:
            return 0
        _publish(app, messages)
        outbox.mark_published(session, [m.id for m in messages])
        return len(messages)


def republish_overdue(app: Celery, limit: int = 500) -> int:
    older_than = timedelta(seconds=get_settings().outbox_redeliver_seconds)
    with tracing.quiet(), unit_of_work() as session:
        messages = outbox.claim_overdue(session, older_than, limit)
        if messages:
            log.warning("republishing %d outbox messages whose tasks did not complete",
                        len(messages))
            _publish(app, messages)
            outbox.mark_published(session, [m.id for m in messages])
        outbox.prune(session, KEEP_COMPLETED)
        return len(messages)


def run(app: Celery, stop: threading.Event | None = None) -> None:
    settings = get_settings()
    stop = stop or threading.Event()
    next_sweep = 0.0
    log.info("relay started")
    while not stop.is_set():
        try:
            published = relay_once(app)
            now = time.monotonic()
            if now >= next_sweep:
                republish_overdue(app)
                app.send_task(Topic.SWEEP_ROLLOUTS)
                app.send_task(Topic.SWEEP_WEBHOOKS)  # retries due by next_attempt_at, lapsed leases
                next_sweep = now + settings.sweep_interval
            if settings.relay_heartbeat_file:  # healthy means a loop that reached the database
                settings.relay_heartbeat_file.touch()
        except Exception:  # a database or broker hiccup must not end the relay
            log.exception("relay iteration failed; retrying")
            published = 0
            stop.wait(1.0)
        if published < CLAIM_LIMIT:
            # Caught up: wait a poll interval even after publishing, so that the events a
            # rollout records meanwhile go out merged into a few dispatch tasks, not one
            # task per loop of a few rows each. Only a backlog loops at once.
            stop.wait(settings.relay_poll_interval)
    # SIGTERM/SIGINT set `stop`; the iteration under way finished first, so a claimed row is
    # either published and marked, or released unpublished for the next relay.
    log.info("relay stopped")
