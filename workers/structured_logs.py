"""JSON log lines for the worker and the relay when TWOFA_LOG_FORMAT=json."""

from __future__ import annotations

from celery import signals

from services import jsonlog


def prepare_worker(log_format: str) -> None:
    """Celery configures logging itself unless a setup_logging receiver exists."""
    if log_format == "json":
        signals.setup_logging.connect(lambda **_: jsonlog.configure(), weak=False)


def configured(log_format: str) -> bool:
    """Set up JSON lines for a plain process (the relay); False leaves the text default."""
    if log_format != "json":
        return False
    jsonlog.configure()
    return True
