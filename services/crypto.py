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
    key = hashlib.sha256(b"twofa-derive:" + get_settings().keys()[0]).digest()
    msg = ":".join([purpose, *map(str, parts)]).encode()
    digest = hmac.new(key, msg, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
