"""argon2id password hashing (argon2-cffi's RFC 9106 low-memory profile), bounded.

Each hash takes 64 MiB and ~50 ms of a core. Without a bound, 40 concurrent wrong sign-ins
hashed at once (2 GB); so at most `password_hash_concurrency` hashes run at a time and a
caller that cannot get a slot within `password_hash_wait_seconds` is told to come back
(503 `unavailable` with Retry-After) instead of queueing without bound.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cache
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from services.config import get_settings
from services.errors import InvalidInput, Unavailable

_hasher = PasswordHasher()
MIN_LENGTH = 8
T = TypeVar("T")


@cache
def _slots() -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(get_settings().password_hash_concurrency)


def _bounded(work: Callable[[], T]) -> T:
    if not _slots().acquire(timeout=get_settings().password_hash_wait_seconds):
        raise Unavailable("Too many sign-ins at once; try again in a moment.", 1)
    try:
        return work()
    finally:
        _slots().release()


@cache
def _dummy() -> str:
    """A hash to verify against when there is no teammate; made on first use, not at import
    (an argon2 hash costs ~0.1 s, which every `twofa` command would otherwise pay)."""
    return _hasher.hash("twofa-timing-equaliser")


def hash_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"Passwords need at least {MIN_LENGTH} characters.", "weak_password")
    return _bounded(lambda: _hasher.hash(password))


def verify_password(stored: str | None, password: str) -> bool:
    """Constant work whether or not the teammate exists, so timing reveals nothing."""
    target = stored or _dummy()

    def verify() -> bool:
        try:
            return _hasher.verify(target, password)
        except (VerificationError, InvalidHashError):
            return False

    return _bounded(verify) and stored is not None
