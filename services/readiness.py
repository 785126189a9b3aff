"""Readiness: can this installation do its work right now? (The database and the broker.)

Liveness is a different question (`/healthz`: the process answers); an orchestrator should
restart a process that is not alive, and only stop routing to one that is not ready.

A stall (invitations waiting and no worker taking them, services/worker_health.py) is a
*warning*, not a problem: the API replica can still serve, and taking every replica out of
the load balancer because the workers are gone would only add an outage.
"""

from __future__ import annotations

import tempfile

import redis
from sqlalchemy import text

from services import worker_health
from services.config import get_settings
from services.db import get_engine, unit_of_work
from services.models import utcnow

TIMEOUT_SECONDS = 2.0


def problems() -> list[str]:
    """What is unreachable, in words; empty when ready."""
    found = []
    for name, check in (("database", _database), ("broker", _broker)):
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", said in words
            found.append(f"{name}: {type(exc).__name__}")
    return found


def _database() -> None:
    with get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))


def _broker() -> None:
    settings = get_settings()
    if settings.is_embedded_broker:
        # The filesystem broker is a folder both sides write to.
        folder = settings.broker_folder
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".ready-"):
            pass
        return
    client = redis.Redis.from_url(settings.resolved_broker_url, socket_timeout=TIMEOUT_SECONDS,
                                  socket_connect_timeout=TIMEOUT_SECONDS)
    try:
        client.ping()
    finally:
        client.close()




def warnings() -> list[str]:
    """What works but needs a person: invitations that no worker is taking."""
    with unit_of_work() as session:
        now = utcnow()
        stall = worker_health.invitation_stall(session, now)
        if not stall.stalled:
            return []
        live = worker_health.live_workers(session, now)
    taking = live["all"] + live["invitations"]
    since = ("never" if stall.last_taken_age is None
             else f"for {stall.last_taken_age:.0f} s")
    return [f"invitations stalled: {stall.ready} ready to send, none taken by a worker {since}; "
            f"{taking} live invitation worker(s)"]
