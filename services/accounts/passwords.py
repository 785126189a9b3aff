"""argon2id password hashing (argon2-cffi's RFC 9106 low-memory profile), bounded.

Each hash takes 64 MiB and ~50 ms of a core. Without a bound, 40 concurrent wrong sign-ins
hashed at once (2 GB); so at most `password_hash_concurrency` hashes run at a time and a
caller that cannot get a slot within `password_hash_wait_seconds` is told to come back
(503 `unavailable` with Retry-After) instead of queueing without bound.

TWOFA_ARGON2_PROFILE=cheapest picks argon2-cffi's cheapest parameters instead, for test
suites that create thousands of teammates; production refuses it (services/config.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cache, cached_property
from typing import TypeVar

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

from services.config import get_settings
from services.errors import InvalidInput, Unavailable

PROFILES = {"rfc9106-low-memory": profiles.RFC_9106_LOW_MEMORY, "cheapest": profiles.CHEAPEST}


class _ConfiguredHasher:
    """A PasswordHasher with the parameters the settings name, chosen on first use."""

    @cached_property
    def _hasher(self) -> PasswordHasher:
        return PasswordHasher.from_parameters(PROFILES[get_settings().argon2_profile])

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored: str, password: str) -> bool:
        return self._hasher.verify(stored, password)


_hasher = _ConfiguredHasher()
MIN_LENGTH = 8
MAX_LENGTH = 1024  # for a password being chosen; one being checked may be any length
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
        raise InvalidInput("Passwords need at least {length} characters.", "weak_password",
                           length=MIN_LENGTH)
    if len(password) > MAX_LENGTH:
        raise InvalidInput("Passwords have at most {length} characters.", length=MAX_LENGTH)
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
