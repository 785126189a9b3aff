"""Structured logs (TWOFA_LOG_FORMAT=json): one JSON object per line, with the request id and
the workspace and teammate ids where known, the `trace_id` and `span_id` of the current span
when tracing is on (services/tracing.py), and nothing secret.

The request context is a dict held in a ContextVar and filled in place: FastAPI runs sync
dependencies in worker threads with a copy of the context, so a new value set there would
not reach the request's own log line, while a change to the shared dict does.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from services import tracing

_context: ContextVar[dict[str, Any] | None] = ContextVar("twofa_log_context", default=None)

# Whatever a message carries, these never reach a log line: webhook secrets, API keys,
# bearer tokens, and the values of query parameters or key=value pairs named like secrets.
SECRET_PATTERNS = [
    (re.compile(r"whsec_[A-Za-z0-9+/=]+"), "whsec_…"),
    (re.compile(r"twofa_sk_[A-Za-z0-9_\-]+"), "twofa_sk_…"),
    (re.compile(r"(?i)(bearer\s+)\S+"), r"\1…"),
    (re.compile(r"(?i)\b(token|code|secret|password|challenge|key)=[^&\s\"']+"), r"\1=…"),
]
SECRET_FIELDS = {"password", "code", "secret", "token", "challenge", "recovery_codes", "key"}
RECORD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "color_message"}  # uvicorn's ANSI-coloured copy of the message


def redact(text: str) -> str:
    for pattern, replacement in SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def new_context(**values: Any) -> dict[str, Any]:
    """Start a fresh context (one per request); returns it so the caller can fill it."""
    context = dict(values)
    _context.set(context)
    return context


def bind(**values: Any) -> None:
    """Add ids to the current request's context (no-op outside a request)."""
    context = _context.get()
    if context is not None:
        context.update(values)


def current() -> dict[str, Any]:
    return dict(_context.get() or {})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        entry.update(current())
        entry.update(tracing.log_ids())
        for name, value in vars(record).items():
            if name not in RECORD_ATTRIBUTES and not name.startswith("_"):
                entry[name] = "…" if name in SECRET_FIELDS else value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(level: int = logging.INFO) -> None:
    """Every logger (uvicorn's and Celery's included) writes JSON lines to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
