"""Failed second-factor codes per teammate, counted in the database across every process.

Ten consecutive failures lock the teammate for a time that doubles with each lockout; during
the lock even a right code is refused. Counting is an atomic UPDATE (``+ 1`` in SQL), so
parallel guesses from many processes cannot slip past the limit. A success resets the count.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from math import ceil

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from services.errors import N_, InvalidCode, RateLimited, Throttled
from services.events import recorder, request_context
from services.events.catalog import EventType
from services.models import Teammate, utcnow
from services.timestamps import rfc3339

MAX_FAILURES = 10
# Wrong codes in a row after a right password (or a host's check) before the teammate is told:
# once per streak, which a success ends (a lock in between keeps `lockouts` above 0).
SUSPICIOUS_FAILURES = 3
BASE_LOCK = timedelta(seconds=30)
MAX_LOCK = timedelta(hours=24)
_NO_SYNC = {"synchronize_session": False}


def lock_duration(lockouts: int) -> timedelta:
    """30 s, 1 min, 2 min, … doubling with each earlier lockout, capped at a day."""
    return min(BASE_LOCK * 2 ** min(lockouts, 20), MAX_LOCK)


def locked_until(session: Session, teammate_id: int, now: datetime | None = None) -> datetime | None:
    """The end of the current lock, read fresh from the database (another process may lock)."""
    until = session.scalar(select(Teammate.locked_until).where(Teammate.id == teammate_id))
    return until if until and until > (now or utcnow()) else None


def check(session: Session, teammate_id: int) -> None:
    """Refuse any code, right or wrong, while the teammate is locked."""
    now = utcnow()
    until = locked_until(session, teammate_id, now)
    if until:
        raise refusal(until, now)


def succeed(session: Session, teammate_id: int, step: int | None = None,
            new_secret: bool = False) -> bool:
    """Reset the counts, unless a lock started meanwhile; with `step`, also claim that TOTP step.

    One conditional UPDATE does both, so of concurrent submissions of one code exactly one
    gets rowcount 1 (the row lock orders them; the losers see the new `totp_last_step`).
    """
    now = utcnow()
    stmt = update(Teammate).where(Teammate.id == teammate_id, unlocked(now))
    # A success also forgets earlier lockouts: otherwise anyone who knows the password could
    # keep doubling the owner's lock (and its email) for good.
    values: dict[str, object] = {"failed_attempts": 0, "lockouts": 0}
    if step is not None:
        if not new_secret:  # a replacement secret's first code starts its own count
            stmt = stmt.where(or_(Teammate.totp_last_step.is_(None),
                                  Teammate.totp_last_step < step))
        values["totp_last_step"] = step
    result = session.execute(stmt.values(**values).execution_options(**_NO_SYNC))
    return result.rowcount == 1  # type: ignore[attr-defined]


def fail(session: Session, teammate: Teammate, reason: str,
         at_sign_in: bool = False, method: str | None = None) -> InvalidCode | Throttled:
    """Count one failure (audited) and return the error to raise: 401, or 429 once locked.

    The tenth failure itself answers 401 and starts the lock; later ones answer 429. At
    sign-in, the third of a streak is recorded as suspicious (the teammate is told).
    """
    now = utcnow()
    counted = session.execute(
        update(Teammate)
        .where(Teammate.id == teammate.id, unlocked(now))
        .values(failed_attempts=Teammate.failed_attempts + 1)
        .execution_options(**_NO_SYNC)
    )
    if counted.rowcount == 0:  # type: ignore[attr-defined]
        # A parallel guess locked it after our check: refused like any attempt during a lock.
        until = locked_until(session, teammate.id, now) or now
        return Throttled(_locked_message(), _seconds(until - now))
    # Our UPDATE holds the row lock until commit, so this read is the serialized truth.
    count, lockouts = session.execute(
        select(Teammate.failed_attempts, Teammate.lockouts).where(Teammate.id == teammate.id)
    ).one()
    recorder.record(session, teammate.workspace_id, EventType.VERIFICATION_FAILED,
                    {"teammate_id": teammate.id, "reason": reason, "method": method},
                    teammate_id=teammate.id)
    if suspicious(count, lockouts, at_sign_in):
        caused_by = request_context.current()
        recorder.record(session, teammate.workspace_id, EventType.VERIFICATION_SUSPICIOUS,
                        {"teammate_id": teammate.id, "failures": count,
                         "ip": caused_by.get("ip", "unknown"),
                         "user_agent": caused_by.get("user_agent", "")},
                        teammate_id=teammate.id)
    if count >= MAX_FAILURES:
        until = now + lock_duration(lockouts)
        session.execute(
            update(Teammate)
            .where(Teammate.id == teammate.id)
            .values(locked_until=until, lockouts=Teammate.lockouts + 1, failed_attempts=0)
            .execution_options(**_NO_SYNC)
        )
        recorder.record(session, teammate.workspace_id, EventType.TEAMMATE_LOCKED,
                        {"teammate_id": teammate.id, "until": rfc3339(until)},
                        teammate_id=teammate.id)
    return InvalidCode("That code is not valid.")


def suspicious(count: int, lockouts: int, at_sign_in: bool) -> bool:
    """Whether this failure is the one the teammate is told about (see `fail`)."""
    return at_sign_in and count == SUSPICIOUS_FAILURES and lockouts == 0


def next_is_plain() -> ColumnElement[bool]:
    """Whether the failure about to be counted at sign-in, in SQL on the row, is a plain one:
    it neither tells the teammate (`suspicious`) nor starts a lock, so that its
    `twofa.verification.failed` event is all that `fail` would record."""
    count = Teammate.failed_attempts + 1
    return and_(count < MAX_FAILURES,
                or_(count != SUSPICIOUS_FAILURES, Teammate.lockouts != 0))


def refusal(until: datetime, now: datetime) -> RateLimited:
    """The answer to any code while locked until `until` (as `check` raises it)."""
    return RateLimited(_locked_message(), _seconds(until - now))


def unlocked(now: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
    return or_(Teammate.locked_until.is_(None), Teammate.locked_until <= now)


def _locked_message() -> str:
    return N_("Too many wrong codes: two-factor sign-in is locked for a while.")


def _seconds(delta: timedelta) -> int:
    return max(1, ceil(delta.total_seconds()))
