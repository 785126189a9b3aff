"""The verification service: enrolling TOTP, checking codes at sign-in, turning 2FA off.

Services never commit; the request boundary does. Failed codes raise errors that keep their
changes (the counted failure and its audit event commit although the request fails).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from services import crypto, team_counts
from services.accounts import sessions
from services.config import get_settings
from services.db import ROW_LOCK
from services.enforcement import is_exempt
from services.enrollment import fanout
from services.errors import (
    Conflict,
    Forbidden,
    NotFound,
    Unauthenticated,
)
from services.events import recorder
from services.events.catalog import EventType
from services.models import AuthSession, Teammate, WebAuthnCredential, Workspace, utcnow
from services.timestamps import rfc3339
from services.verification import bypass, factors, recent, recovery, totp

APP_NAME = "Authenticator app"  # how the TOTP method is named in events and emails


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
    _set_pending(teammate, secret, owner=None)
    return Setup(secret, totp.provisioning_uri(secret, teammate.email, workspace.name))


def _set_pending(teammate: Teammate, secret: str | None, owner: AuthSession | None) -> None:
    """A first setup's secret is the teammate's; a new phone's belongs to `owner`, the session
    that started it, and lives TWOFA_CHALLENGE_TTL_SECONDS."""
    teammate.totp_pending_secret_enc = crypto.encrypt(secret) if secret else None
    teammate.totp_pending_session_id = owner.id if owner else None
    ttl = timedelta(seconds=get_settings().challenge_ttl_seconds)
    teammate.totp_pending_expires_at = utcnow() + ttl if owner else None


def _pending_for(teammate: Teammate, current: AuthSession | None) -> bytes | None:
    """The pending secret this session may see and confirm: a first setup's, or the new
    phone it started itself, before it expires."""
    pending = teammate.totp_pending_secret_enc
    if pending is None or teammate.totp_pending_session_id is None:
        return pending
    expires = teammate.totp_pending_expires_at
    if current is None or current.id != teammate.totp_pending_session_id \
            or expires is None or expires <= utcnow():
        return None
    return pending


def pending_uri(teammate: Teammate, workspace: Workspace,
                current: AuthSession | None = None) -> str:
    """The key URI of the setup in progress (what the QR code shows)."""
    pending = _pending_for(teammate, current)
    if pending is None:
        raise NotFound("Start with POST /v1/me/two-factor/setup.", "no_pending_setup")
    return totp.provisioning_uri(crypto.decrypt(pending), teammate.email, workspace.name)


def has_pending(teammate: Teammate, current: AuthSession | None) -> bool:
    return _pending_for(teammate, current) is not None


def confirm(session: Session, teammate: Teammate, code: str, at: float | None = None,
            current: AuthSession | None = None) -> list[str]:
    """Activate the pending secret with a code from the app; returns 10 fresh recovery codes.

    Also completes a replacement (`replace`), in the session that started it: the new app's
    code switches to the new secret, and until then the old app keeps working. Every other
    session of the teammate ends (`current`, the caller's, lives on and counts as verified):
    one opened with the password alone must not become `full` without ever showing a code.
    """
    replacing = teammate.totp_enabled_at is not None
    first = not teammate.two_factor_enabled
    pending_enc = _pending_for(teammate, current)
    if pending_enc is None:
        if replacing and teammate.totp_pending_secret_enc is None:
            raise Conflict("Two-factor authentication is on already.", "two_factor_already_enabled")
        raise NotFound("Start with POST /v1/me/two-factor/setup.", "no_pending_setup")
    # A replacement's codes come from another secret: the old app's last step says nothing
    # about them (the conditional UPDATE below still lets one confirm win).
    factors.check_totp(session, factors.Attempt(teammate, code, at), crypto.decrypt(pending_enc),
                       new_secret=replacing)
    # One conditional UPDATE switches: of concurrent confirms (steps N and N+1 are both
    # valid) exactly one matches, so the recovery codes it returns are the ones that count.
    on = Teammate.totp_enabled_at.is_not(None) if replacing else Teammate.totp_enabled_at.is_(None)
    now = utcnow()
    values: dict[str, object] = {"totp_secret_enc": pending_enc, "totp_pending_secret_enc": None,
                                 "totp_pending_session_id": None, "totp_pending_expires_at": None}
    if not replacing:
        values["totp_enabled_at"] = now
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
    if current is not None:
        recent.mark(current)
    if first:
        team_counts.adjust(session, teammate.workspace_id, enrolled=1)
    sessions.end_all(session, teammate.id, keep=current)
    if not first and not replacing:  # an app beside keys: its codes stay as they were
        recorder.record(session, teammate.workspace_id, EventType.METHOD_ADDED,
                        {"teammate_id": teammate.id, "method": "totp", "name": APP_NAME},
                        teammate_id=teammate.id)
        return []
    codes = recovery.replace_all(session, teammate.id)
    _record_confirmed(session, teammate, replacing, now)
    return codes


def _record_confirmed(session: Session, teammate: Teammate, replacing: bool,
                      now: datetime) -> None:
    """A new phone is `twofa.method.replaced`; a first method turns 2FA on (`twofa.enabled`)
    and adds the app (`twofa.method.added`), recorded at one time: one action, one email."""
    subject = {"teammate_id": teammate.id}
    if replacing:
        recorder.record(session, teammate.workspace_id, EventType.METHOD_REPLACED,
                        {**subject, "method": "totp"}, teammate_id=teammate.id)
        return
    recorder.record(session, teammate.workspace_id, EventType.ENABLED, subject,
                    teammate_id=teammate.id, time=now)
    recorder.record(session, teammate.workspace_id, EventType.METHOD_ADDED,
                    {**subject, "method": "totp", "name": APP_NAME}, teammate_id=teammate.id,
                    time=now)


def replace(session: Session, teammate: Teammate, workspace: Workspace, code: str | None,
            current: AuthSession, at: float | None = None) -> Setup:
    """A new phone: a new pending secret for this session; `confirm` with the new app's code
    switches to it. A sent code (of the current app, or a recovery code) is checked; without
    one the session must be recently verified (services/verification/recent.py)."""
    if teammate.totp_enabled_at is None:
        raise Conflict("Two-factor authentication is not on.", "two_factor_not_enabled")
    if code is not None:
        recent.verify(session, teammate, current, code, at)
    secret = totp.new_secret()
    _set_pending(teammate, secret, owner=current)
    return Setup(secret, totp.provisioning_uri(secret, teammate.email, workspace.name))


def opened_with_fresh_bypass(auth: AuthSession) -> bool:
    """A session a bypass code opened, still within the code's lifetime: it may start a new
    phone without a code (the device is what was lost)."""
    return recent.opened_with_fresh_bypass(auth)


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
    method = factors.check(session, factors.Attempt(teammate, code, at, at_sign_in=True),
                           allow_bypass=True)
    if not sessions.end(session, auth):
        # Completed meanwhile by a parallel request with another valid code: a challenge serves
        # one sign-in. Not a kept failure: this rolls back, so a recovery code stays unused.
        raise Unauthenticated("The sign-in challenge was used meanwhile; sign in again.",
                              "invalid_code")
    return sessions.open_session(session, teammate, cast(sessions.Origin, auth.origin), method,
                                 api_key_id=auth.api_key_id)


def disable_own(session: Session, teammate: Teammate, workspace: Workspace, code: str | None,
                current: AuthSession, at: float | None = None) -> None:
    """A teammate turns their own 2FA off; never while the workspace requires it. A sent code
    is checked (without one the session must be recently verified: recent.py).

    Their other sessions end; `current` (the caller's) lives on."""
    if workspace.require_two_factor:
        raise Forbidden("{workspace} requires two-factor authentication.",
                        "two_factor_mandatory", workspace=workspace.name)
    session.refresh(teammate, with_for_update=ROW_LOCK)  # see _reset
    if not teammate.two_factor_enabled:
        raise Conflict("Two-factor authentication is not on.", "two_factor_not_enabled")
    if code is not None:
        recent.verify(session, teammate, current, code, at)
    _clear(session, teammate)
    sessions.end_all(session, teammate.id, keep=current)
    _record_disabled(session, workspace, teammate, "self", teammate.id)


def _record_disabled(session: Session, workspace: Workspace, teammate: Teammate, by: str,
                     actor_id: int | None) -> None:
    """2FA off as a whole (`twofa.disabled`), and the app removed with it
    (`twofa.method.removed`), at one time: one action, one email ("2FA is off")."""
    now = utcnow()
    recorder.record(session, workspace.id, EventType.DISABLED,
                    {"teammate_id": teammate.id, "by": by, "actor_id": actor_id},
                    teammate_id=teammate.id, time=now)
    recorder.record(session, workspace.id, EventType.METHOD_REMOVED,
                    {"teammate_id": teammate.id, "method": "totp", "name": APP_NAME},
                    teammate_id=teammate.id, time=now)


def remove_app(session: Session, teammate: Teammate, workspace: Workspace, code: str,
               at: float | None = None, current: AuthSession | None = None) -> None:
    """Remove the authenticator app alone (`DELETE /v1/me/two-factor/totp`), after a valid
    code; security keys stay. The sessions the app opened end; the last method cannot go
    while the workspace requires 2FA."""
    session.refresh(teammate, with_for_update=ROW_LOCK)
    if teammate.totp_enabled_at is None:
        raise Conflict("No authenticator app is on.", "two_factor_not_enabled")
    if teammate.webauthn_enabled_at is None:  # the app is the last method
        if workspace.require_two_factor:
            raise Forbidden("{workspace} requires two-factor authentication.",
                            "two_factor_mandatory", workspace=workspace.name)
        assert current is not None
        disable_own(session, teammate, workspace, code, current, at)
        return
    factors.check(session, factors.Attempt(teammate, code, at))
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
    session.refresh(teammate, with_for_update=ROW_LOCK)
    if not teammate.two_factor_enabled and teammate.totp_pending_secret_enc is None:
        return False
    was_enabled = teammate.two_factor_enabled
    _clear(session, teammate)
    sessions.end_all(session, teammate.id)
    if was_enabled:
        _record_disabled(session, workspace, teammate, by, actor_id)
    session.flush()
    if workspace.require_two_factor and not is_exempt(teammate.exempt_until):
        if was_enabled:  # the notice of `twofa.disabled` asks them to set it up again
            fanout.reset_was_invitation(session, workspace, teammate)
        else:  # only a setup in progress was cleared
            fanout.resend(session, workspace, teammate)
    return was_enabled


def regenerate_recovery_codes(session: Session, teammate: Teammate, code: str | None,
                              current: AuthSession, at: float | None = None) -> list[str]:
    """A new set of 10 (the old set dies). A sent code is checked (without one the session
    must be recently verified: recent.py)."""
    if not teammate.two_factor_enabled:
        raise Conflict("Two-factor authentication is not on.", "two_factor_not_enabled")
    if code is not None:
        recent.verify(session, teammate, current, code, at)
    codes = recovery.replace_all(session, teammate.id)
    recorder.record(session, teammate.workspace_id, EventType.RECOVERY_CODES_REGENERATED,
                    {"teammate_id": teammate.id}, teammate_id=teammate.id)
    return codes


def _clear(session: Session, teammate: Teammate) -> None:
    """Every method off: the app, every security key, the recovery codes."""
    if teammate.two_factor_enabled:
        team_counts.adjust(session, teammate.workspace_id, enrolled=-1,
                           with_keys=-1 if teammate.webauthn_enabled_at is not None else 0)
    session.execute(delete(WebAuthnCredential)
                    .where(WebAuthnCredential.teammate_id == teammate.id))
    teammate.webauthn_enabled_at = None
    teammate.totp_secret_enc = None
    _set_pending(teammate, None, owner=None)
    teammate.totp_enabled_at = None
    teammate.totp_last_step = None
    teammate.failed_attempts, teammate.locked_until, teammate.lockouts = 0, None, 0
    recovery.clear(session, teammate.id)
