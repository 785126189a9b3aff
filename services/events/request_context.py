"""Who caused an event: the client address and user agent of the request being served.

The HTTP layer sets it for the duration of a request; the recorder adds it to the `data` of
every event that request records. Events recorded outside a request (workers, the command
line) carry neither. A context variable, so the domain needs no request object: FastAPI
copies it into the thread that runs a sync route.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

FIELDS = ("ip", "user_agent")
MAX_USER_AGENT = 256

_current: ContextVar[dict[str, str] | None] = ContextVar("twofa_request_context", default=None)


@contextmanager
def caused_by(ip: str, user_agent: str) -> Iterator[None]:
    printable = "".join(c for c in user_agent if c.isprintable())[:MAX_USER_AGENT]
    token = _current.set({"ip": ip, "user_agent": printable})
    try:
        yield
    finally:
        _current.reset(token)


def current() -> dict[str, str]:
    """The `ip` and `user_agent` of the request being served (empty outside one)."""
    return dict(_current.get() or {})


def with_request(data: dict[str, Any]) -> dict[str, Any]:
    """`data` plus the current request's `ip` and `user_agent`, if an event is recorded in one."""
    current = _current.get()
    return {**data, **current} if current else data


def without_request(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in FIELDS}
