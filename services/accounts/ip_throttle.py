"""Failed sign-ins per client address, against password spraying.

Only failures count, so a whole office signing in normally from one address is never
blocked. Each attempt reserves a failure *before* its password is checked and gives it back
when the password was right: a concurrent burst cannot slip past the limit while its hashes
are still being computed. Reservations commit on their own, in short transactions, so the
password hash (~50 ms) never runs under the address's row lock. IPv6 clients are bucketed
by /64, the block one subscriber usually gets. The window is fixed and the lock lasts until
it ends.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta
from math import ceil

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.db import dialect_insert, unit_of_work
from services.errors import N_, Throttled
from services.models import LoginThrottle, utcnow

MAX_FAILURES = 30
WINDOW = timedelta(minutes=15)


def reserve(client_ip: str) -> None:
    """Count this attempt as failed until `release`; 429 once the window holds the limit.

    The row is created with INSERT … ON CONFLICT DO NOTHING and then locked (FOR UPDATE),
    so parallel attempts serialise on it for the few statements here, never longer.
    """
    _take(bucket(client_ip), MAX_FAILURES, WINDOW,
          N_("Too many failed sign-ins from this address; try again later."))


def count(client_ip: str, scope: str, limit: int, window: timedelta, message: str) -> None:
    """Count one request of another kind (`scope`, e.g. password resets) from this address,
    in a bucket of its own; 429 once `limit` requests fall in the window."""
    _take(f"{scope}:{bucket(client_ip)}", limit, window, message)


def _take(key: str, limit: int, window: timedelta, message: str) -> None:
    now = utcnow()
    with unit_of_work() as session:
        row = _locked_row(session, key)
        if now - row.window_start > window:
            row.failures, row.window_start, row.locked_until = 0, now, None
        if row.failures >= limit:
            until = row.window_start + window
            raise Throttled(message, max(1, ceil((until - now).total_seconds())))
        row.failures += 1
        if row.failures >= limit:
            row.locked_until = row.window_start + window


def full(failures: int | None, window_start: datetime | None, now: datetime) -> bool:
    """Whether a bucket read as (failures, window_start) refuses the next attempt (as
    `reserve` would, 429)."""
    return failures is not None and window_start is not None \
        and now - window_start <= WINDOW and failures >= MAX_FAILURES


def release(session: Session, client_ip: str) -> None:
    """Give back a reservation: the password was right (or was never checked)."""
    session.execute(
        update(LoginThrottle)
        .where(LoginThrottle.key == bucket(client_ip), LoginThrottle.failures > 0)
        .values(failures=LoginThrottle.failures - 1, locked_until=None))


def _locked_row(session: Session, key: str) -> LoginThrottle:
    session.execute(dialect_insert(session, LoginThrottle)
                    .values(key=key, failures=0, window_start=utcnow())
                    .on_conflict_do_nothing(index_elements=[LoginThrottle.key]))
    return session.scalars(
        select(LoginThrottle).where(LoginThrottle.key == key)
        .with_for_update().execution_options(populate_existing=True)
    ).one()


def bucket(client_ip: str) -> str:
    """The throttle key of an address: IPv4 as is, IPv6 by its /64 (v4-mapped as IPv4)."""
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return f"ip:{client_ip}"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return f"ip:{address.ipv4_mapped}"
        return f"ip:{ipaddress.IPv6Network((address, 64), strict=False)}"
    return f"ip:{address}"
