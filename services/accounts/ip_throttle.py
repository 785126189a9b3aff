"""Failed sign-ins per client address, against password spraying.

Only failures count, so a whole office signing in normally from one address is never
blocked; the window is fixed and the lock lasts until it ends.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.db import dialect_insert
from services.errors import Throttled
from services.models import LoginThrottle, utcnow

MAX_FAILURES = 30
WINDOW = timedelta(minutes=15)


def check(session: Session, client_ip: str) -> None:
    row = session.get(LoginThrottle, _key(client_ip))
    if row and row.locked_until and row.locked_until > utcnow():
        raise Throttled(
            "Too many failed sign-ins from this address; try again later.",
            int((row.locked_until - utcnow()).total_seconds()) + 1,
        )


def record_failure(session: Session, client_ip: str) -> None:
    """Count one failure; concurrent first failures of a new address all count, none fails.

    The row is created with INSERT … ON CONFLICT DO NOTHING and then locked (FOR UPDATE),
    so parallel failures serialise on it instead of racing to insert it.
    """
    now = utcnow()
    key = _key(client_ip)
    session.execute(dialect_insert(session, LoginThrottle)
                    .values(key=key, failures=0, window_start=now)
                    .on_conflict_do_nothing(index_elements=[LoginThrottle.key]))
    row = session.scalars(
        select(LoginThrottle).where(LoginThrottle.key == key)
        .with_for_update().execution_options(populate_existing=True)
    ).one()
    if now - row.window_start > WINDOW:
        row.failures, row.window_start, row.locked_until = 0, now, None
    row.failures += 1
    if row.failures >= MAX_FAILURES:
        row.locked_until = row.window_start + WINDOW


def _key(client_ip: str) -> str:
    return f"ip:{client_ip}"
