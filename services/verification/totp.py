"""RFC 6238 TOTP as authenticator apps expect it (SHA-1, 6 digits, 30 s), wrapping pyotp.

Pure functions: the time is a parameter, so tests can pin it.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
from urllib.parse import quote, urlencode

import pyotp

DIGITS = 6
PERIOD = 30
SECRET_BYTES = 20  # 160 bits, RFC 4226's recommended HMAC-SHA1 key length
WINDOW = 1  # steps either side of now: clocks drift, people type slowly


def new_secret() -> str:
    """A fresh 160-bit secret from `secrets`, unpadded base32 (32 characters)."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode().rstrip("=")


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The Google Authenticator key URI: label `Issuer:account`, issuer repeated as a parameter.

    The Key Uri Format wants both issuers equal and without a colon (a colon splits the
    label), and pyotp refuses a URI where they differ: the colon-free name goes in both.
    """
    issuer = key_uri_issuer(issuer)
    label = f"{quote(issuer, safe='')}:{quote(account, safe='')}"
    params = urlencode(
        {"secret": secret, "issuer": issuer, "algorithm": "SHA1", "digits": DIGITS,
         "period": PERIOD},
        quote_via=quote,
    )
    return f"otpauth://totp/{label}?{params}"


def key_uri_issuer(name: str) -> str:
    """A workspace name as a key URI issuer: `R&D: Ops` → `R&D Ops`."""
    return " ".join(name.replace(":", " ").split())


def step_at(at: float) -> int:
    return int(at // PERIOD)


def hotp(secret: str, counter: int, digits: int = DIGITS) -> str:
    """RFC 4226 HOTP value for `counter`."""
    return pyotp.HOTP(secret, digits=digits).at(counter)


def code_at(secret: str, at: float, digits: int = DIGITS) -> str:
    """The TOTP code at Unix time `at`."""
    return hotp(secret, step_at(at), digits)


def looks_like_code(value: str) -> bool:
    return len(value) == DIGITS and value.isascii() and value.isdigit()


def matching_step(secret: str, code: str, at: float | None = None) -> int | None:
    """The time step (now ±WINDOW) whose code equals `code`, compared in constant time."""
    if not looks_like_code(code):
        return None
    now_step = step_at(time.time() if at is None else at)
    found: int | None = None
    for step in range(max(0, now_step - WINDOW), now_step + WINDOW + 1):
        # No early exit, so the time taken does not say which step matched.
        if hmac.compare_digest(hotp(secret, step), code) and found is None:
            found = step
    return found
