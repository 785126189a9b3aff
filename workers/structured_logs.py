"""JSON log lines for the worker and the relay when TWOFA_LOG_FORMAT=json."""

from __future__ import annotations

from typing import Any

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


def uvicorn_config(log_format: str) -> dict[str, Any] | None:
    """uvicorn's logging as JSON lines from its first line on (None: the text default).
    The API's own twofa.request line replaces uvicorn's access line in this mode."""
    if log_format != "json":
        return None
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "services.jsonlog.JsonFormatter"}},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": "INFO"},
        "loggers": {
            "uvicorn": {"level": "INFO"},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"level": "INFO", "propagate": False},
        },
    }
