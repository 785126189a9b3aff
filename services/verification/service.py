"""The verification service: enrolling TOTP, checking codes at sign-in, turning 2FA off.

Services never commit; the request boundary does. Failed codes raise errors that keep their
changes (the counted failure and its audit event commit although the request fails).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from services import crypto, team_counts
from services.accounts import sessions
from services.enforcement import is_exempt
from services.enrollment import fanout
from services.errors import (
    Conflict,
    Forbidden,
    InvalidCode,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthenticated,
)
from services.events import recorder
from services.events.catalog import EventType
from services.models import AuthSession, Teammate, WebAuthnCredential, Workspace, utcnow
from services.timestamps import rfc3339
from services.verification import bypass, recovery, throttle, totp

Method = Literal["totp", "recovery_code", "bypass"]
APP_NAME = "Authenticator app"  # an app's `name` in twofa.method.* events


@dataclass(frozen=True)
class Setup:
    secret: str
    otpauth_uri: str


def setup(session: Session, teammate: Teammate, workspace: Workspace) -> Setup:
    """Start enrolling: a new pending secret, stored encrypted, active only once confirmed.

    Refused while an app is on, so a stolen session cannot swap in the thief's authenticator
    (a new phone goes through `replace`). An app may be added beside security keys.
    """
    if teammate.totp_enabled_at is not None:
        raise Conflict("Two-factor authentication is on already; turn it off first.",
                       "two_factor_already_enabled")
    secret = totp.new_secret()
    teammate.totp_pending_secret_enc = crypto.encrypt(secret)
    return Setup(secret, totp.provisioning_uri(secret, teammate.email, workspace.name))


def pending_uri(teammate: Teammate, workspace: Workspace) -> str:
    """The key URI of the setup in progress (what the QR code shows)."""
    if teammate.totp_pending_secret_enc is None:
        raise NotFound("Start with POST /v1/me/two-factor/setup.", "no_pending_setup")
    secret = crypto.decrypt(teammate.totp_pending_secret_enc)
    return totp.provisioning_uri(secret, teammate.email, workspace.name)


def confirm(session: Session, teammate: Teammate, code: str, at: float | None = None,
            current: AuthSession | None = None) -> list[str]:
    """Activate the pending secret with a code from the app; returns 10 fresh recovery codes.

    Also completes a replacement (`replace`): the new app's code switches to the new secret,
    and until then the old app keeps working. Every other session of the teammate ends
    (`current`, the caller's, lives on): one opened with the password alone must not become
    `full` without ever showing a code.
    """
    replacing = teammate.totp_enabled_at is not None
    first = not teammate.two_factor_enabled
    if teammate.totp_pending_secret_enc is None:
        if replacing:
            raise Conflict("Two-factor authentication is on already.", "two_factor_already_enabled")
        raise NotFound("Start with POST /v1/me/two-factor/setup.", "no_pending_setup")
    pending_enc = teammate.totp_pending_secret_enc
    # A replacement's codes come from another secret: the old app's last step says nothing
    # about them (the conditional UPDATE below still lets one confirm win).
    _check_totp(session, teammate, crypto.decrypt(pending_enc), code, at, new_secret=replacing)
    # One conditional UPDATE switches: of concurrent confirms (steps N and N+1 are both
    # valid) exactly one matches, so the recovery codes it returns are the ones that count.
    on = Teammate.totp_enabled_at.is_not(None) if replacing else Teammate.totp_enabled_at.is_(None)
    values: dict[str, object] = {"totp_secret_enc": pending_enc, "totp_pending_secret_enc": None}
    if not replacing:
        values["totp_enabled_at"] = utcnow()
    won = session.execute(
        update(Teammate)
        .where(Teammate.id == teammate.id, on, Teammate.totp_pending_secret_enc == pending_enc,
               Teammate.status != "removed")
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if won.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("Two-factor authentication was turned on meanwhile, or its setup was "
                       "restarted.", "two_factor_already_enabled")
    session.refresh(teammate)
    if first:
        team_counts.adjust(session, teammate.workspace_id, enrolled=1)
    sessions.end_all(session, teammate.id, keep=current)
    if first:
        recorder.record(session, teammate.workspace_id, EventType.ENABLED,
                        {"teammate_id": teammate.id}, teammate_id=teammate.id)
    if not replacing:
        recorder.record(session, teammate.workspace_id, EventType.METHOD_ADDED,
                        {"teammate_id": teammate.id, "method": "totp", "name": APP_NAME},
                        teammate_id=teammate.id)
    # Fresh codes for a first method or a new phone; an app added beside keys keeps them.
    return recovery.replace_all(session, teammate.id) if first or replacing else []


def replace(session: Session, teammate: Teammate, workspace: Workspace, code: str | None,
            current: AuthSession, at: float | None = None) -> Setup:
    """A new phone: after a code of the current app (or an unused recovery code) a new pending
    secret; `confirm` with the new app's code switches to it. A session opened with a bypass
    code may leave the code out for the code's lifetime (the device is what was lost)."""
    if teammate.totp_enabled_at is None:
        raise Conflict("Two-factor authentication is not on.", "two_factor_not_enabled")
    if code is not None:
        verify_code(session, teammate, code, at)
    elif not opened_with_fresh_bypass(current):
        raise InvalidInput("Send a code from your current authenticator app or a recovery code.",
                           "code_required")
    secret = totp.new_secret()
    teammate.totp_pending_secret_enc = crypto.encrypt(secret)
    return Setup(secret, totp.provisioning_uri(secret, teammate.email, workspace.name))


def opened_with_fresh_bypass(auth: AuthSession) -> bool:
    """A session a bypass code opened, still within the code's lifetime: it may start a new
    phone without a code (the device is what was lost)."""
    return auth.factor == "bypass" and auth.created_at > utcnow() - bypass.LIFETIME


def issue_bypass_code(session: Session, workspace: Workspace, teammate: Teammate,
                      actor: Teammate) -> tuple[str, datetime]:
    """An admin's single-use code for a teammate who lost their device (not for oneself: that
    would let an admin skip their own second factor)."""
    if teammate.id == actor.id:
        raise Forbidden("Admins cannot issue a bypass code to themselves.", "forbidden")
    if not teammate.two_factor_enabled:
        raise Conflict("This teammate has no two-factor authentication to bypass.",
                       "two_factor_not_enabled")
    code, expires_at = bypass.issue(teammate)
    recorder.record(session, workspace.id, EventType.BYPASS_CODE_ISSUED,
                    {"teammate_id": teammate.id, "actor_id": actor.id,
                     "expires_at": rfc3339(expires_at)}, teammate_id=teammate.id)
    return code, expires_at


def verify_challenge(session: Session, challenge: str, code: str, at: float | None = None) -> str:
    """Complete a sign-in: a TOTP or recovery code against a live challenge → session token."""
    auth = sessions.find_challenge(session, challenge)
    teammate = session.get(Teammate, auth.teammate_id) if auth else None
    if auth is None or teammate is None or not teammate.two_factor_enabled:
        # The contract has one 401 code for this endpoint; the message tells the two apart.
        raise Unauthenticated("The sign-in challenge is unknown, used or expired; sign in again.",
                              "invalid_code")
    method = verify_code(session, teammate, code, at, allow_bypass=True)
    if not sessions.end(session, auth):
        # Completed meanwhile by a parallel request with another valid code: a challenge serves
        # one sign-in. Not a kept failure: this rolls back, so a recovery code stays unused.
        raise Unauthenticated("The sign-in challenge was used meanwhile; sign in again.",
                              "invalid_code")
    return sessions.open_session(session, teammate, cast(sessions.Origin, auth.origin), method)


def verify_code(session: Session, teammate: Teammate, code: str, at: float | None = None,
                allow_bypass: bool = False) -> Method:
    """Check a TOTP code, a recovery code or (at sign-in) a bypass code, under the throttle."""
    code = code.strip().replace(" ", "")
    if totp.looks_like_code(code) and teammate.totp_secret_enc is None:  # keys only: no app
        throttle.check(session, teammate.id)
        raise throttle.fail(session, teammate, "invalid_code", "totp")
    if totp.looks_like_code(code):
        assert teammate.totp_secret_enc is not None
        _check_totp(session, teammate, crypto.decrypt(teammate.totp_secret_enc), code, at)
        return "totp"
    throttle.check(session, teammate.id)
    if allow_bypass and bypass.looks_like_bypass(code):
        if not bypass.consume(session, teammate.id, code):
            raise throttle.fail(session, teammate, "invalid_bypass_code", "bypass")
        _succeeded(session, teammate)
        recorder.record(session, teammate.workspace_id, EventType.BYPASS_CODE_USED,
                        {"teammate_id": teammate.id}, teammate_id=teammate.id)
        return "bypass"
    if not recovery.consume(session, teammate.id, code):
        raise throttle.fail(session, teammate, "invalid_recovery_code", "recovery_code")
    _succeeded(session, teammate)
    left = recovery.remaining(session, teammate.id)
    recorder.record(session, teammate.workspace_id, EventType.RECOVERY_CODE_USED,
                    {"teammate_id": teammate.id, "remaining": left}, teammate_id=teammate.id)
    return "recovery_code"


def _succeeded(session: Session, teammate: Teammate) -> None:
    if not throttle.succeed(session, teammate.id):
        # Locked meanwhile: RateLimited rolls back, so the code stays unused.
        throttle.check(session, teammate.id)
        raise RateLimited("Two-factor sign-in was locked meanwhile; try again.", 1)


def _check_totp(session: Session, teammate: Teammate, secret: str, code: str,
                at: float | None, new_secret: bool = False) -> None:
    throttle.check(session, teammate.id)
    step = totp.matching_step(secret, code.strip().replace(" ", ""), at)
    if step is None:
        raise throttle.fail(session, teammate, "invalid_code", "totp")
    if throttle.succeed(session, teammate.id, step, new_secret):
        return
    throttle.check(session, teammate.id)  # a parallel guess may have locked it meanwhile
    # A replay is audited but not counted: it gives a guesser nothing, and a double-submitted
    # form must not lock its owner out.
    recorder.record(session, teammate.workspace_id, EventType.VERIFICATION_FAILED,
                    {"teammate_id": teammate.id, "reason": "replayed_code", "method": "totp"},
                    teammate_id=teammate.id)
    raise InvalidCode("That code was used already; wait for the next one.")


def disable_own(session: Session, teammate: Teammate, workspace: Workspace, code: str,
                at: float | None = None, current: AuthSession | None = None) -> None:
    """A teammate turns their own 2FA off with a valid code; never while the workspace requires it.

    Their other sessions end; `current` (the caller's) lives on."""
    if workspace.require_two_factor:
        raise Forbidden(f"{workspace.name} requires two-factor authentication.",
                        "two_factor_mandatory")
    session.refresh(teammate, with_for_update=True)  # see _reset
    if not teammate.two_factor_enabled:
        raise Conflict("Two-factor authentication is not on.", "two_factor_not_enabled")
    verify_code(session, teammate, code, at)
    _clear(session, teammate)
    sessions.end_all(session, teammate.id, keep=current)
    recorder.record(session, workspace.id, EventType.DISABLED,
                    {"teammate_id": teammate.id, "by": "self", "actor_id": teammate.id},
                    teammate_id=teammate.id)


def remove_app(session: Session, teammate: Teammate, workspace: Workspace, code: str,
               at: float | None = None, current: AuthSession | None = None) -> None:
    """Remove the authenticator app alone (`DELETE /v1/me/two-factor/totp`), after a valid
    code; security keys stay. The sessions the app opened end; the last method cannot go
    while the workspace requires 2FA."""
    session.refresh(teammate, with_for_update=True)
    if teammate.totp_enabled_at is None:
        raise Conflict("No authenticator app is on.", "two_factor_not_enabled")
    if teammate.webauthn_enabled_at is None:  # the app is the last method
        if workspace.require_two_factor:
            raise Forbidden(f"{workspace.name} requires two-factor authentication.",
                            "two_factor_mandatory")
        disable_own(session, teammate, workspace, code, at, current)
        return
    verify_code(session, teammate, code, at)
    teammate.totp_secret_enc = teammate.totp_pending_secret_enc = None
    teammate.totp_enabled_at = teammate.totp_last_step = None
    session.execute(update(AuthSession)
                    .where(AuthSession.teammate_id == teammate.id, AuthSession.factor == "totp",
                           AuthSession.ended_at.is_(None))
                    .values(ended_at=utcnow()).execution_options(synchronize_session=False))
    recorder.record(session, workspace.id, EventType.METHOD_REMOVED,
                    {"teammate_id": teammate.id, "method": "totp", "name": APP_NAME},
                    teammate_id=teammate.id)


def admin_reset(session: Session, workspace: Workspace, teammate: Teammate, actor: Teammate) -> None:
    """An admin turns a (locked-out) teammate's 2FA off; while required they enroll again.

    Idempotent: a teammate without 2FA is left as is. An admin cannot reset their own, since
    that would bypass the rule that nobody turns off their own 2FA while it is required.
    """
    if teammate.id == actor.id:
        raise Forbidden("Turn your own two-factor authentication off under /v1/me/two-factor.",
                        "forbidden")
    _reset(session, workspace, teammate, by="admin", actor_id=actor.id)


def operator_reset(session: Session, workspace: Workspace, teammate: Teammate) -> bool:
    """The server's operator turns a teammate's 2FA off (`twofa teammate reset-2fa`): the way
    back in for a sole admin who lost both device and recovery codes. True if it was on."""
    return _reset(session, workspace, teammate, by="operator", actor_id=None)


def _reset(session: Session, workspace: Workspace, teammate: Teammate, by: str,
           actor_id: int | None) -> bool:
    """Turn 2FA (or a setup in progress) off and end all the teammate's sessions: one that
    survived could enroll an attacker's authenticator in the owner's place."""
    # Locked and read again: of concurrent resets (admin, operator, the teammate) one turns it
    # off, records the event and moves the kept count; the others find it off already.
    session.refresh(teammate, with_for_update=True)
    if not teammate.two_factor_enabled and teammate.totp_pending_secret_enc is None:
        return False
    was_enabled = teammate.two_factor_enabled
    _clear(session, teammate)
    sessions.end_all(session, teammate.id)
    if was_enabled:
        recorder.record(session, workspace.id, EventType.DISABLED,
                        {"teammate_id": teammate.id, "by": by, "actor_id": actor_id},
                        teammate_id=teammate.id)
    session.flush()
    if workspace.require_two_factor and not is_exempt(teammate.exempt_until):
        fanout.resend(session, workspace, teammate)
    return was_enabled


def regenerate_recovery_codes(session: Session, teammate: Teammate, code: str,
                              at: float | None = None) -> list[str]:
    """A new set of 10 (the old set dies), after a valid code."""
    if not teammate.two_factor_enabled:
        raise Conflict("Two-factor authentication is not on.", "two_factor_not_enabled")
    verify_code(session, teammate, code, at)
    return recovery.replace_all(session, teammate.id)


def _clear(session: Session, teammate: Teammate) -> None:
    """Every method off: the app, every security key, the recovery codes."""
    if teammate.two_factor_enabled:
        team_counts.adjust(session, teammate.workspace_id, enrolled=-1,
                           with_keys=-1 if teammate.webauthn_enabled_at is not None else 0)
    session.execute(delete(WebAuthnCredential)
                    .where(WebAuthnCredential.teammate_id == teammate.id))
    teammate.webauthn_enabled_at = None
    teammate.totp_secret_enc = teammate.totp_pending_secret_enc = None
    teammate.totp_enabled_at = None
    teammate.totp_last_step = None
    teammate.failed_attempts, teammate.locked_until, teammate.lockouts = 0, None, 0
    recovery.clear(session, teammate.id)
