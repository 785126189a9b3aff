"""Counting committed events (verification failures by reason, lockouts, every type).

A SQLAlchemy listener on every session: events added in a transaction are counted when it
commits, and forgotten when it rolls back, so a refused request that kept its failed attempt
(those commit) is counted and a request that rolled back is not.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from services.metrics import registry
from services.models import Event

PENDING = "twofa_metrics_events"
VERIFICATION_FAILED = "twofa.verification.failed"
TEAMMATE_LOCKED = "twofa.teammate.locked"


def _collect(session: Session, _context: Any, _instances: Any) -> None:
    new = [obj for obj in session.new if isinstance(obj, Event)]
    if new:
        session.info.setdefault(PENDING, []).extend((e.type, dict(e.data or {})) for e in new)


def _count(session: Session) -> None:
    for type_, data in session.info.pop(PENDING, []):
        count(type_, data)


def count(type_: str, data: dict[str, Any]) -> None:
    """One committed event (also for events written without the ORM: the sign-in code step)."""
    _recorded(type_).inc()
    if type_ == VERIFICATION_FAILED:
        _outcome(str(data.get("reason", "unknown"))).inc()
    elif type_ == TEAMMATE_LOCKED:
        registry.LOCKOUTS.inc()


# The series' children, looked up once per label value (a few dozen types and reasons):
# `labels()` takes a lock and checks its values on every call, ~5 µs each, and a wrong code
# at sign-in counts two. Nothing removes these children, so a kept one stays the live one.
@cache
def _recorded(type_: str) -> Any:
    return registry.EVENTS.labels(type_)


@cache
def _outcome(reason: str) -> Any:
    return registry.VERIFICATIONS.labels(reason)


def _forget(session: Session) -> None:
    session.info.pop(PENDING, None)


def install() -> None:
    """Idempotent: SQLAlchemy ignores a listener already registered."""
    if not event.contains(Session, "before_flush", _collect):
        event.listen(Session, "before_flush", _collect)
        event.listen(Session, "after_commit", _count)
        event.listen(Session, "after_rollback", _forget)
