"""A `twofa worker` process's heartbeat: a thread in Celery's main process writes it to the
database every TWOFA_WORKER_HEARTBEAT_SECONDS from the moment the worker is ready, and
removes it when the worker stops cleanly (services/worker_health.py reads them).

The thread uses an engine of its own, made and disposed for each beat: the prefork pool
forks new children from this process, and a child must never inherit an open connection.
A beat that fails (the database restarting) is logged and tried again at the next one.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery.signals import worker_ready, worker_shutdown
from sqlalchemy.orm import Session

from services import worker_health
from services.config import get_settings
from services.db import make_engine
from services.models import utcnow

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, queues: str) -> None:
        self.queues = queues
        self.name = ""
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self, name: str) -> None:
        if self.thread is not None:  # Celery says "ready" once per process; never two threads
            return
        self.name = name
        self.thread = threading.Thread(target=self._run, name="twofa-heartbeat", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        interval = get_settings().worker_heartbeat_seconds
        while not self.stop.is_set():
            self._write(lambda session: worker_health.beat(session, self.name, self.queues, utcnow()))
            self.stop.wait(interval)

    def finish(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(10)
            self._write(lambda session: worker_health.forget(session, self.name))

    def _write(self, change: Any) -> None:
        settings = get_settings()
        engine = make_engine(settings.resolved_database_url, settings.database_statement_timeout_ms)
        try:
            with Session(engine) as session, session.begin():
                change(session)
        except Exception as exc:  # noqa: BLE001 - a missed beat must never stop the worker
            log.warning("worker heartbeat not written: %s", type(exc).__name__)
        finally:
            engine.dispose()


def install(queues: str) -> None:
    """Beat for this process once Celery says the worker is ready; stop when it shuts down."""
    heartbeat = Heartbeat(queues)

    def ready(sender: Any = None, **_: Any) -> None:
        heartbeat.start(str(getattr(sender, "hostname", "") or "worker"))

    def shutdown(**_: Any) -> None:
        heartbeat.finish()

    worker_ready.connect(ready, weak=False)
    worker_shutdown.connect(shutdown, weak=False)
