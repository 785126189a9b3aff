"""The per-process series. Each process counts what it did itself.

Workers run Celery's prefork pool, so their series use prometheus-client's multiprocess mode
(PROMETHEUS_MULTIPROC_DIR, set by `twofa worker` before anything imports prometheus_client):
every pool process writes its own file and the worker's main process serves their sum.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter(
    "twofa_http_requests", "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "twofa_http_request_duration_seconds", "Time to answer an HTTP request, by route template.",
    ["route", "method"], buckets=LATENCY_BUCKETS,
)
VERIFICATIONS = Counter(
    "twofa_verification_outcomes",
    "Second-factor checks by outcome: accepted, or the reason a code was refused.",
    ["outcome"],
)
LOCKOUTS = Counter("twofa_lockouts", "Teammates locked out after too many wrong codes.")
EVENTS = Counter("twofa_events_recorded", "Events committed to the audit log, by type.", ["type"])
TASK_SECONDS = Histogram(
    "twofa_task_duration_seconds", "Celery task run time, by task name and outcome.",
    ["task", "outcome"], buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
