"""Sensitive changes need a recently verified second factor (GitHub's "sudo mode").

A session is verified when a second factor was accepted for it: at sign-in, at `confirm`,
at POST /v1/me/reauthenticate, or as the `code` of a sensitive change. It counts for
`TWOFA_REAUTH_SECONDS`. A session a bypass code opened counts only for replacing the
authenticator or adding a method, for the bypass code's 15 minutes; a host session's own
verification never counts (an API key vouched for its first factor). A teammate without 2FA
is never asked. The HTTP layers declare the rule on their routes (services/api/recent_factor.py,
services/console/recent_factor.py); this module is the rule.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from sqlalchemy.orm import Session

from services.accounts import sessions
from services.config import get_settings
from services.enforcement import KEY_FACTORS
from services.errors import Conflict, Forbidden
from services.models import AuthSession, Teammate, utcnow
from services.verification import bypass, factors, webauthn_sign_in

# "change": any sensitive change; "new_method": replacing the authenticator or adding a
# method, which a fresh bypass-code session may do (the lost device is what it replaces).
Purpose = Literal["change", "new_method"]


def is_asked(teammate: Teammate) -> bool:
    return teammate.two_factor_enabled


def counts(auth: AuthSession, purpose: Purpose = "change") -> bool:
    """Whether the session's own verification is recent enough for a sensitive change."""
    if auth.origin == "host":
        return False
    if purpose == "new_method" and opened_with_fresh_bypass(auth):
        return True
    window = timedelta(seconds=get_settings().reauth_seconds)
    return auth.verified_at is not None and auth.verified_at > utcnow() - window


def opened_with_fresh_bypass(auth: AuthSession) -> bool:
    """A session a bypass code opened, still within the code's lifetime."""
    return auth.factor == "bypass" and auth.created_at > utcnow() - bypass.LIFETIME


def mark(auth: AuthSession) -> None:
    auth.verified_at = utcnow()


def refusal() -> Forbidden:
    return Forbidden("This change needs your second factor again: send a code with it, or "
                     "verify at POST /v1/me/reauthenticate first.", "reauthentication_required")


def verify(session: Session, teammate: Teammate, auth: AuthSession, code: str,
           at: float | None = None) -> factors.Method:
    """Check a code sent with a change (or to re-authenticate) and count it as this session's
    verification. A wrong code is 401 `invalid_code`, under the sign-in throttle."""
    method = factors.check(session, factors.Attempt(teammate, code, at))
    mark(auth)
    return method


def reauthenticate(session: Session, caller: sessions.Authenticated, code: str,
                   at: float | None = None) -> None:
    """POST /v1/me/reauthenticate and the console's /reauthenticate, with a code."""
    _must_have_two_factor(caller)
    verify(session, caller.teammate, caller.auth, code, at)


def reauthenticate_with_key(session: Session, caller: sessions.Authenticated, challenge: str,
                            credential: dict[str, Any]) -> None:
    """The same with a security key's assertion, for options this session asked for."""
    _must_have_two_factor(caller)
    webauthn_sign_in.verify_reauthentication(session, caller.teammate, caller.auth.id,
                                             challenge, credential)
    mark(caller.auth)
    if caller.auth.factor not in KEY_FACTORS:
        # Re-verified with a key: under `security_keys` the session now counts as a key's
        # (as when a key is registered in it), so an app's session held to enrollment rises.
        caller.auth.factor = "webauthn"


def key_options(session: Session, caller: sessions.Authenticated) -> tuple[str, dict[str, Any]]:
    """`POST /v1/me/reauthenticate/options`: request options for one of the caller's keys."""
    _must_have_two_factor(caller)
    return webauthn_sign_in.reauthentication_options(session, caller.teammate, caller.auth.id)


def _must_have_two_factor(caller: sessions.Authenticated) -> None:
    if not is_asked(caller.teammate):
        raise Conflict("Two-factor authentication is not on: nothing to verify.",
                       "two_factor_not_enabled")
