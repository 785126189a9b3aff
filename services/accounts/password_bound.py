"""The per-teammate password bound (NIST SP 800-63B, 5.2.2): after 100 consecutive wrong
passwords for one (workspace, email), each further attempt waits 30 s, doubling with every
wrong password after that, at most an hour. During a wait every attempt is refused unread,
even a right password. A success clears it (so will a password reset).

Kept per (workspace, normalized email) whether or not such a teammate exists, so the answer
never tells a known address from an unknown one. Checking is one primary-key read; counting
a failure one statement (INSERT … ON CONFLICT DO UPDATE … RETURNING); the wait is set by a
second only past the bound.
"""

from __future__ import annotations

import hashlib
from contextlib import suppress
from datetime import datetime, timedelta
from math import ceil

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from services.accounts.email_address import normalize_email
from services.db import dialect_insert
from services.errors import InvalidInput, RateLimited
from services.models import PasswordFailures, utcnow

BOUND = 100
FIRST_WAIT = timedelta(seconds=30)
LONGEST_WAIT = timedelta(hours=1)


def key(slug: str, email: str) -> str:
    """The bucket of a (workspace, email): addresses match case-insensitively, so do buckets."""
    with suppress(InvalidInput):  # not an address: still one bucket per spelling
        email = normalize_email(email)
    return hashlib.sha256(f"{slug}\n{email.strip().lower()}".encode()).hexdigest()


def wait_after(failures: int) -> timedelta:
    """30 s at the bound, doubling with each wrong password past it, at most an hour."""
    return min(FIRST_WAIT * 2 ** min(failures - BOUND, 20), LONGEST_WAIT)


def check(session: Session, slug: str, email: str) -> bool:
    """429 while a wait runs; otherwise whether wrong passwords are on record (to clear)."""
    row = session.execute(select(PasswordFailures.failures, PasswordFailures.locked_until)
                          .where(PasswordFailures.key == key(slug, email))).first()
    if row is None:
        return False
    now = utcnow()
    if row.locked_until is not None and row.locked_until > now:
        raise RateLimited("Too many wrong passwords for this account; wait before trying again.",
                          _seconds(row.locked_until, now))
    return True


def fail(session: Session, slug: str, email: str) -> None:
    """Count one wrong password; from the bound on, start the wait."""
    bucket = key(slug, email)
    failures = session.scalar(
        dialect_insert(session, PasswordFailures).values(key=bucket, failures=1)
        .on_conflict_do_update(index_elements=[PasswordFailures.key],
                               set_={"failures": PasswordFailures.failures + 1})
        .returning(PasswordFailures.failures))
    if failures is not None and failures >= BOUND:
        session.execute(update(PasswordFailures).where(PasswordFailures.key == bucket)
                        .values(locked_until=utcnow() + wait_after(failures)))


def clear(session: Session, slug: str, email: str) -> None:
    """A right password (or a reset): the count starts again from zero."""
    session.execute(delete(PasswordFailures).where(PasswordFailures.key == key(slug, email)))


def _seconds(until: datetime, now: datetime) -> int:
    return max(1, ceil((until - now).total_seconds()))
