"""Task durations from a `twofa worker`, served on TWOFA_WORKER_METRICS_PORT.

Celery's prefork pool runs tasks in child processes, so prometheus-client's multiprocess mode
is used: each child writes its samples under PROMETHEUS_MULTIPROC_DIR (a fresh folder per
worker), and the worker's main process serves their sum on its port. The installation-wide
series (invitations, outbox lag, deliveries) are the API's `/metrics`, not these.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

from celery import signals

STARTED = "_twofa_started"


def prepare(port: int | None) -> None:
    """Called by `twofa worker` before anything imports prometheus_client."""
    if port is None:
        return
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="twofa-worker-metrics-")
    signals.worker_init.connect(lambda **_: _serve(port), weak=False)
    signals.worker_process_shutdown.connect(_child_gone, weak=False)
    signals.task_prerun.connect(_started, weak=False)
    signals.task_postrun.connect(_finished, weak=False)


def _serve(port: int) -> None:
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    start_http_server(port, addr="127.0.0.1", registry=registry)


def _started(task: Any = None, **_: Any) -> None:
    if task is not None:
        setattr(task.request, STARTED, time.perf_counter())


def _finished(task: Any = None, state: str | None = None, **_: Any) -> None:
    from services.metrics.registry import TASK_SECONDS

    started = getattr(task.request, STARTED, None) if task is not None else None
    if started is not None:
        TASK_SECONDS.labels(task.name, (state or "unknown").lower()).observe(
            time.perf_counter() - started)


def _child_gone(pid: int | None = None, **_: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid or os.getpid())
