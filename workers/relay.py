"""The outbox relay: publishes committed outbox messages as Celery tasks, at least once.

It also enqueues the periodic sweep that finishes any rollout a crash left behind.
A crash between publishing and marking republishes; every task is idempotent.
"""

from __future__ import annotations

import logging
import threading
import time

from celery import Celery

from services import outbox
from services.config import get_settings
from services.db import unit_of_work

log = logging.getLogger(__name__)


def relay_once(app: Celery, limit: int = 500) -> int:
    with unit_of_work() as session:
        messages = outbox.claim_unpublished(session, limit)
        if not messages:
            return 0
        for name, kwargs in outbox.merge(messages):
            app.send_task(name, kwargs=kwargs)
        outbox.mark_published(session, [m.id for m in messages])
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
                app.send_task("enrollment.sweep")
                app.send_task("webhooks.sweep")  # retries due by next_attempt_at, lapsed leases
                next_sweep = now + settings.sweep_interval
            if settings.relay_heartbeat_file:  # healthy means a loop that reached the database
                settings.relay_heartbeat_file.touch()
        except Exception:  # a database or broker hiccup must not end the relay
            log.exception("relay iteration failed; retrying")
            published = 0
            stop.wait(1.0)
        if not published:
            stop.wait(settings.relay_poll_interval)
