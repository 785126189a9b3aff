"""argon2id password hashing (argon2-cffi's RFC 9106 low-memory profile).

TWOFA_ARGON2_PROFILE=cheapest picks argon2-cffi's cheapest parameters instead, for test
suites that create thousands of teammates; production refuses it (services/config.py).
"""

from __future__ import annotations

from functools import cache, cached_property

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

from services.config import get_settings
from services.errors import InvalidInput

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


@cache
def _dummy() -> str:
    """A hash to verify against when there is no teammate; made on first use, not at import
    (an argon2 hash costs ~0.1 s, which every `twofa` command would otherwise pay)."""
    return _hasher.hash("twofa-timing-equaliser")


def hash_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"Passwords need at least {MIN_LENGTH} characters.", "weak_password")
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Constant work whether or not the teammate exists, so timing reveals nothing."""
    try:
        return _hasher.verify(stored or _dummy(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False
