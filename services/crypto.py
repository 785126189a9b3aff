"""Secrets at rest: Fernet encryption under rotating keys, and hashes of bearer secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import lru_cache

from cryptography.fernet import Fernet, MultiFernet

from services.config import get_settings


@lru_cache(maxsize=4)
def _fernet(keys: tuple[bytes, ...]) -> MultiFernet:
    return MultiFernet([Fernet(k) for k in keys])


def fernet() -> MultiFernet:
    """MultiFernet over TWOFA_ENCRYPTION_KEYS: encrypts with the newest, decrypts with any."""
    return _fernet(tuple(get_settings().keys()))


def encrypt(plain: str) -> bytes:
    return fernet().encrypt(plain.encode())


def decrypt(token: bytes) -> str:
    return fernet().decrypt(token).decode()


def rotate(token: bytes) -> bytes:
    return fernet().rotate(token)


def hash_token(token: str) -> str:
    """SHA-256 of a high-entropy bearer secret (session, API key, recovery code)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def derived_token(purpose: str, *parts: object) -> str:
    """A token recomputable from stored facts (so only its hash needs storing)."""
    return _derive(get_settings().keys()[0], purpose, parts)


def rederive_token(stored_hash: str, purpose: str, *parts: object) -> str | None:
    """Recompute a derived token under whichever key made it (keys may have rotated since)."""
    for key in get_settings().keys():  # noqa: SIM118 - Settings.keys() lists encryption keys
        token = _derive(key, purpose, parts)
        if hmac.compare_digest(hash_token(token), stored_hash):
            return token
    return None


def _derive(key: bytes, purpose: str, parts: tuple[object, ...]) -> str:
    mac_key = hashlib.sha256(b"twofa-derive:" + key).digest()
    msg = ":".join([purpose, *map(str, parts)]).encode()
    digest = hmac.new(mac_key, msg, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
