"""Signing in with a security key: the second step after a password (or a host's first
factor), and passkey sign-in, where a user-verifying passkey is both factors.

A sign-in challenge (an `auth_sessions` row of kind `challenge`) gets WebAuthn request options
of its own, bound to it; it is consumed only by success, and failures count toward the
teammate's throttle like wrong codes. Passkey sign-in shares /v1/login's per-address failure
bucket, and its options are limited per address.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from math import ceil
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.structs import UserVerificationRequirement

from services.accounts import ip_throttle, password_bound, sessions
from services.db import dialect_insert, unit_of_work
from services.errors import Conflict, InvalidCode, InvalidCredentials, RateLimited, Unauthenticated
from services.models import LoginThrottle, Teammate, Workspace, utcnow
from services.verification import relying_party, throttle
from services.verification import webauthn as keys
from services.verification import webauthn_challenges as challenges

OPTIONS_PER_MINUTE = 60  # passkey options per client address


@dataclass(frozen=True)
class SecondStep:
    """What a `two_factor_required` answer adds: the teammate's methods and, with keys,
    request options bound to the sign-in challenge."""

    methods: list[str]
    webauthn: dict[str, Any] | None


def methods_of(session: Session, teammate: Teammate) -> list[str]:
    """The teammate's second factors by kind (`webauthn` only while WebAuthn is available)."""
    methods = ["totp"] if teammate.totp_enabled_at is not None else []
    if teammate.webauthn_enabled_at is not None and relying_party.available():
        methods.append("webauthn")
    return methods


def second_step(session: Session, challenge: str) -> SecondStep:
    auth = sessions.find_challenge(session, challenge)
    teammate = session.get(Teammate, auth.teammate_id) if auth else None
    if auth is None or teammate is None:
        return SecondStep(["recovery_code"], None)
    methods = methods_of(session, teammate)
    options = None
    if "webauthn" in methods:
        options = keys.request_options(session, teammate, purpose="second_factor",
                                       auth_session_id=auth.id)
    return SecondStep([*methods, "recovery_code"], options)


def fresh_options(session: Session, challenge: str) -> dict[str, Any]:
    """New request options for a live sign-in challenge (`/v1/login/two-factor/options`)."""
    relying_party.require_available()
    step = second_step(session, challenge)
    if step.webauthn is None:
        raise Unauthenticated("The sign-in challenge is unknown, used or expired, or its "
                              "teammate has no security key; sign in again.", "invalid_code")
    return step.webauthn


def verify_second_factor(session: Session, challenge: str, credential: dict[str, Any]) -> str:
    """Complete a sign-in challenge with an assertion of one of the teammate's keys."""
    relying_party.require_available()
    auth = sessions.find_challenge(session, challenge)
    teammate = session.get(Teammate, auth.teammate_id) if auth else None
    if auth is None or teammate is None or not teammate.two_factor_enabled:
        raise Unauthenticated("The sign-in challenge is unknown, used or expired; sign in again.",
                              "invalid_code")
    row = challenges.claim(session, challenges.challenge_of(credential, "webauthn.get"),
                           "second_factor")
    if row is None or row.auth_session_id != auth.id:
        throttle.check(session, teammate.id)
        raise throttle.fail(session, teammate, "invalid_challenge", method="webauthn")
    asserted = keys.verify_assertion(session, teammate, credential, row, method="webauthn")
    if not sessions.end(session, auth):
        raise Unauthenticated("The sign-in challenge was used meanwhile; sign in again.",
                              "invalid_code")
    return sessions.open_session(session, teammate, cast(sessions.Origin, auth.origin),
                                 "webauthn", api_key_id=auth.api_key_id,
                                 credential_id=asserted.credential.id)


# --- re-authentication (sensitive changes) --------------------------------------------------

REAUTHENTICATE = "reauthenticate"


def reauthentication_options(session: Session, teammate: Teammate,
                             auth_session_id: int) -> tuple[str, dict[str, Any]]:
    """Request options for one of the teammate's keys, bound to this session; the challenge
    (base64url) names them in `POST /v1/me/reauthenticate`."""
    relying_party.require_available()
    if not keys.credentials(session, teammate):
        raise Conflict("You have no security key: verify with a code instead.",
                       "no_security_key")
    options = keys.request_options(session, teammate, purpose=REAUTHENTICATE,
                                   auth_session_id=auth_session_id)
    return str(options["challenge"]), options


def verify_reauthentication(session: Session, teammate: Teammate, auth_session_id: int,
                            challenge: str, credential: dict[str, Any]) -> None:
    """An assertion of one of the teammate's keys, for a challenge this session asked for;
    anything else counts as a wrong code (401 `invalid_code`, under the throttle)."""
    relying_party.require_available()
    asked = challenges.challenge_of(credential, "webauthn.get")
    row = challenges.claim(session, asked, REAUTHENTICATE)
    if row is None or row.auth_session_id != auth_session_id or asked is None \
            or bytes_to_base64url(asked) != challenge:
        throttle.check(session, teammate.id)
        raise throttle.fail(session, teammate, "invalid_challenge", method="webauthn")
    keys.verify_assertion(session, teammate, credential, row, method="webauthn")


# --- passkey sign-in ----------------------------------------------------------------------

def passkey_options(session: Session, slug: str | None, client_ip: str) -> tuple[str, dict[str, Any]]:
    """Options without `allowCredentials` (the authenticator offers its passkeys), user
    verification required. An unknown workspace gets the same answer as a known one."""
    relying_party.require_available()
    _limit_options(client_ip)
    workspace_id = session.scalar(select(Workspace.id).where(Workspace.slug == slug)) if slug else None
    # An unknown workspace's options look the same, but no sign-in can ever claim them.
    purpose = "passkey" if workspace_id is not None or not slug else "passkey_void"
    options = keys.request_options(session, None, purpose=purpose, workspace_id=workspace_id,
                                   user_verification=UserVerificationRequirement.REQUIRED)
    return str(options["challenge"]), options


def passkey_login(session: Session, challenge: str, credential: dict[str, Any],
                  slug: str | None, client_ip: str) -> str:
    """A user-verified assertion of an active teammate's passkey → a full session (a host
    session when the page was a host application's). Anything else: 401 invalid_credentials."""
    relying_party.require_available()
    ip_throttle.reserve(client_ip)  # a failure until it verifies, as a password is
    refused = InvalidCredentials("That passkey did not sign you in.")
    sent = challenges.challenge_of(credential, "webauthn.get")
    if sent is None or bytes_to_base64url(sent) != challenge:
        raise refused
    row = challenges.claim(session, sent, "passkey")
    teammate = keys.owner_of(session, credential)
    if row is None or teammate is None or teammate.status != "active":
        raise refused
    workspace = session.get(Workspace, teammate.workspace_id)
    if workspace is None or (row.workspace_id is not None and row.workspace_id != workspace.id) \
            or (slug and workspace.slug != slug):
        raise refused
    try:
        asserted = keys.verify_assertion(session, teammate, credential, row, method="passkey",
                                         require_user_verification=True)
    except InvalidCode:
        raise refused from None
    ip_throttle.release(session, client_ip)
    # A passkey is both factors: the wrong passwords before it were not its owner's.
    password_bound.clear(session, workspace.slug, teammate.email)
    origin: sessions.Origin = "host" if relying_party.is_host_origin(asserted.origin) else "password"
    return sessions.open_session(session, teammate, origin, "passkey",
                                 credential_id=asserted.credential.id)


def _limit_options(client_ip: str) -> None:
    """At most OPTIONS_PER_MINUTE options per address and minute (their own bucket)."""
    key = "passkey-options:" + ip_throttle.bucket(client_ip)
    now = utcnow()
    with unit_of_work() as own:
        own.execute(dialect_insert(own, LoginThrottle)
                    .values(key=key, failures=0, window_start=now)
                    .on_conflict_do_nothing(index_elements=[LoginThrottle.key]))
        row = own.scalars(select(LoginThrottle).where(LoginThrottle.key == key)
                          .with_for_update().execution_options(populate_existing=True)).one()
        if now - row.window_start > timedelta(minutes=1):
            row.failures, row.window_start = 0, now
        if row.failures >= OPTIONS_PER_MINUTE:
            left = row.window_start + timedelta(minutes=1) - now
            raise RateLimited("Too many passkey sign-ins from this address; try again shortly.",
                              max(1, ceil(left.total_seconds())))
        row.failures += 1
