"""Tracing for the worker and the relay (services/telemetry.py): Celery's own instrumentation
on top of the clients every process traces.

Publishing injects the current trace context into the task's headers; running a task
continues it. Nothing here imports the SDK while tracing is off.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, signals

from services import telemetry

WORKER, RELAY = "twofa-worker", "twofa-relay"


def prepare_worker() -> None:
    """Set tracing up in each pool process as it starts: the SDK's export thread does not
    survive a fork, and each process is an instance of its own."""
    if telemetry.wanted():
        signals.worker_process_init.connect(_start_pool_process, weak=False)
        # A pool process ends without atexit: export what it still holds.
        signals.worker_process_shutdown.connect(lambda **_: telemetry.flush(), weak=False)


def start_relay(app: Celery) -> None:
    if _start(RELAY):
        # The instrumentation finds a published task by name in the app's registry (else
        # it opens a span it never ends); the relay itself runs none, so load them.
        app.loader.import_default_modules()


def _start_pool_process(**_: Any) -> None:
    _start(WORKER)


def _start(service_name: str) -> bool:
    if not telemetry.start(service_name):
        return False
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    CeleryInstrumentor().instrument()
    return True
