"""argon2id password hashing (argon2-cffi's RFC 9106 low-memory profile)."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from services.errors import InvalidInput

_hasher = PasswordHasher()
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
