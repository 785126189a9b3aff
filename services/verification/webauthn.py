"""Security keys and passkeys (WebAuthn), a second factor beside TOTP, checked with py_webauthn.

Options and responses travel in the WebAuthn Level 3 JSON forms (base64url fields), the forms
`PublicKeyCredential.parseCreationOptionsFromJSON` and `credential.toJSON()` use. Every
challenge is 256 random bits, stored as its SHA-256 with what it was made for, used once and
only within TWOFA_CHALLENGE_TTL_SECONDS (services/verification/webauthn_challenges.py).
A signature counter that does not grow (when either value is non-zero) is refused as a cloned
authenticator, and recorded.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

import webauthn as py_webauthn
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from webauthn.authentication.verify_authentication_response import VerifiedAuthentication
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url, options_to_json_dict
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from services import team_counts
from services.accounts import sessions
from services.db import ROW_LOCK
from services.enforcement import KEY_FACTORS
from services.errors import Conflict, Forbidden, InvalidInput, NotFound
from services.events import recorder
from services.events.catalog import EventType
from services.models import AuthSession, Teammate, WebAuthnCredential, Workspace, utcnow
from services.verification import recent, recovery, relying_party, throttle
from services.verification import webauthn_challenges as challenges

MAX_CREDENTIALS = 10
_TRANSPORTS = {t.value for t in AuthenticatorTransport}


class InvalidCredential(InvalidInput):
    code = "invalid_credential"


@dataclass(frozen=True)
class Registered:
    credential: WebAuthnCredential
    recovery_codes: list[str] | None  # for a first method only


# --- registration -------------------------------------------------------------------------

def registration_options(session: Session, teammate: Teammate, workspace: Workspace) -> dict[str, Any]:
    """Creation options: a random user handle kept for the teammate (never the email), their
    keys excluded, a discoverable credential preferred (so it can sign in as a passkey)."""
    relying_party.require_available()
    if teammate.webauthn_user_handle is None:
        teammate.webauthn_user_handle = secrets.token_bytes(32)
    challenge = challenges.issue(session, "register", teammate_id=teammate.id)
    options = py_webauthn.generate_registration_options(
        rp_id=relying_party.rp_id(), rp_name=workspace.name,
        user_id=teammate.webauthn_user_handle, user_name=teammate.email,
        user_display_name=teammate.name or teammate.email,
        challenge=challenge, timeout=challenges.ttl_ms(),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED),
        exclude_credentials=_descriptors(credentials(session, teammate)))
    return options_to_json_dict(options)


def register(session: Session, teammate: Teammate, name: str, credential: dict[str, Any],
             current: AuthSession | None = None) -> Registered:
    """Verify a registration response and keep the credential. The first method of either
    kind turns 2FA on: recovery codes, and every other session of the teammate ends."""
    relying_party.require_available()
    name = name.strip()
    if not 1 <= len(name) <= 64:
        raise InvalidInput("Give the key a name of 1 to 64 characters.", "invalid_request")
    session.refresh(teammate, with_for_update=ROW_LOCK)  # one count, one first method
    if len(credentials(session, teammate)) >= MAX_CREDENTIALS:
        raise Conflict("At most {count} security keys; remove one first.",
                       "too_many_credentials", count=MAX_CREDENTIALS)
    row = challenges.claim(session, _client_challenge(credential, "webauthn.create"), "register")
    if row is None or row.teammate_id != teammate.id:
        raise InvalidCredential("The registration's challenge is unknown, used or expired.")
    try:
        verified = py_webauthn.verify_registration_response(
            credential=credential, expected_challenge=challenges.raw(credential),
            expected_rp_id=relying_party.rp_id(), expected_origin=relying_party.origins())
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise InvalidCredential(f"The security key's response did not verify: {exc}") from None
    if session.scalar(select(WebAuthnCredential.id).where(
            WebAuthnCredential.credential_id == verified.credential_id)):
        raise InvalidCredential("This security key is registered already.")
    challenges.consume(session, row)
    first = not teammate.two_factor_enabled
    transports = credential.get("response", {}).get("transports") or []
    kept = WebAuthnCredential(
        teammate_id=teammate.id, credential_id=verified.credential_id,
        public_key=verified.credential_public_key, sign_count=verified.sign_count, name=name,
        rp_id=relying_party.rp_id(), backed_up=verified.credential_backed_up,
        transports=[t for t in transports if isinstance(t, str) and t in _TRANSPORTS])
    session.add(kept)
    if teammate.webauthn_enabled_at is None:
        teammate.webauthn_enabled_at = utcnow()
        team_counts.adjust(session, teammate.workspace_id, with_keys=1)
    session.flush()
    if current is not None:  # a second factor accepted: the session is verified again
        recent.mark(current)
    if current is not None and current.factor not in KEY_FACTORS:
        # A key was just verified in this session: under `security_keys` it now counts as
        # verified with a key (not opened by one, so removing the key later leaves it).
        current.factor = "webauthn"
    codes = None
    if first:
        team_counts.adjust(session, teammate.workspace_id, enrolled=1)
        sessions.end_all(session, teammate.id, keep=current)
        codes = recovery.replace_all(session, teammate.id)
        recorder.record(session, teammate.workspace_id, EventType.ENABLED,
                        {"teammate_id": teammate.id}, teammate_id=teammate.id)
    recorder.record(session, teammate.workspace_id, EventType.METHOD_ADDED,
                    {"teammate_id": teammate.id, "method": "webauthn", "name": name},
                    teammate_id=teammate.id)
    return Registered(kept, codes)


def credentials(session: Session, teammate: Teammate) -> list[WebAuthnCredential]:
    return list(session.scalars(select(WebAuthnCredential)
                                .where(WebAuthnCredential.teammate_id == teammate.id)
                                .order_by(WebAuthnCredential.id)))


def get(session: Session, teammate: Teammate, credential_id: int) -> WebAuthnCredential:
    row = session.get(WebAuthnCredential, credential_id)
    if row is None or row.teammate_id != teammate.id:
        raise NotFound("No such security key.", "not_found")
    return row


def rename(session: Session, teammate: Teammate, credential_id: int, name: str) -> WebAuthnCredential:
    row = get(session, teammate, credential_id)
    name = name.strip()
    if not 1 <= len(name) <= 64:
        raise InvalidInput("Give the key a name of 1 to 64 characters.", "invalid_request")
    row.name = name
    return row


def remove(session: Session, teammate: Teammate, workspace: Workspace, credential_id: int) -> None:
    """Remove one key; the sessions it opened end. The last method cannot go while the
    workspace requires 2FA (403 `two_factor_mandatory`)."""
    session.refresh(teammate, with_for_update=ROW_LOCK)
    row = get(session, teammate, credential_id)
    others = session.scalar(select(func.count()).select_from(WebAuthnCredential).where(
        WebAuthnCredential.teammate_id == teammate.id, WebAuthnCredential.id != row.id)) or 0
    last = others == 0 and teammate.totp_enabled_at is None
    if last and workspace.require_two_factor:
        raise Forbidden("{workspace} requires two-factor authentication: add another "
                        "method before removing your last one.", "two_factor_mandatory",
                        workspace=workspace.name)
    session.execute(update(AuthSession)
                    .where(AuthSession.credential_id == row.id, AuthSession.ended_at.is_(None))
                    .values(ended_at=utcnow()).execution_options(synchronize_session=False))
    name = row.name
    session.delete(row)
    if others == 0:
        teammate.webauthn_enabled_at = None
        team_counts.adjust(session, workspace.id, with_keys=-1)
    recorder.record(session, workspace.id, EventType.METHOD_REMOVED,
                    {"teammate_id": teammate.id, "method": "webauthn", "name": name},
                    teammate_id=teammate.id)
    if last:  # 2FA as a whole is off now
        team_counts.adjust(session, workspace.id, enrolled=-1)
        recovery.clear(session, teammate.id)
        recorder.record(session, workspace.id, EventType.DISABLED,
                        {"teammate_id": teammate.id, "by": "self", "actor_id": teammate.id},
                        teammate_id=teammate.id)


# --- assertions ---------------------------------------------------------------------------

def request_options(session: Session, teammate: Teammate | None, *, purpose: str,
                    auth_session_id: int | None = None, workspace_id: int | None = None,
                    user_verification: UserVerificationRequirement = UserVerificationRequirement.PREFERRED,
                    ) -> dict[str, Any]:
    """Request options bound to a fresh challenge; with a teammate, `allowCredentials` lists
    their keys (none for passkey sign-in: the authenticator offers what it holds)."""
    relying_party.require_available()
    challenge = challenges.issue(session, purpose, teammate_id=teammate.id if teammate else None,
                                 auth_session_id=auth_session_id, workspace_id=workspace_id)
    options = py_webauthn.generate_authentication_options(
        rp_id=relying_party.rp_id(), challenge=challenge, timeout=challenges.ttl_ms(),
        allow_credentials=_descriptors(credentials(session, teammate)) if teammate else None,
        user_verification=user_verification)
    return options_to_json_dict(options)


@dataclass(frozen=True)
class Asserted:
    credential: WebAuthnCredential
    origin: str
    user_verified: bool


def verify_assertion(session: Session, teammate: Teammate, credential: dict[str, Any],
                     row: challenges.WebAuthnChallenge, *, method: str,
                     require_user_verification: bool = False) -> Asserted:
    """Check an assertion of one of `teammate`'s keys against the claimed challenge `row`,
    under the teammate's throttle: a failure counts like a wrong code (401 `invalid_code`)."""
    throttle.check(session, teammate.id)
    kept = _own_credential(session, teammate, credential)
    if kept is None:
        raise throttle.fail(session, teammate, "unknown_credential", method=method)
    try:
        verified = check_signature(credential, kept.public_key, kept.rp_id,
                                   require_user_verification)
    except INVALID:
        raise throttle.fail(session, teammate, "invalid_assertion", method=method) from None
    new, old = verified.new_sign_count, kept.sign_count
    if cloned(new, old):
        raise throttle.fail(session, teammate, "cloned_credential", method=method)
    if not challenges.consume(session, row):  # a parallel request with the same assertion won
        raise throttle.fail(session, teammate, "replayed_assertion", method=method)
    won = session.execute(  # the counter moves forward once, whoever else races
        update(WebAuthnCredential)
        .where(WebAuthnCredential.id == kept.id, WebAuthnCredential.sign_count == old)
        .values(sign_count=new, last_used_at=utcnow(), backed_up=verified.credential_backed_up)
        .execution_options(synchronize_session=False))
    if won.rowcount != 1:  # type: ignore[attr-defined]
        raise throttle.fail(session, teammate, "replayed_assertion", method=method)
    session.refresh(kept)
    return Asserted(kept, client_origin(credential), verified.user_verified)


# What py_webauthn raises for a response that does not verify.
INVALID = (WebAuthnException, ValueError, KeyError, TypeError)


def check_signature(credential: dict[str, Any], public_key: bytes, rp_id: str,
                    require_user_verification: bool) -> VerifiedAuthentication:
    """py_webauthn's checks of an assertion (challenge, origin, RP ID, flags, signature);
    raises one of INVALID."""
    # Counter 0 here: the library's own check cannot tell a clone from a bad signature;
    # `cloned` runs only on a verified signature, so a forged response is no "clone".
    return py_webauthn.verify_authentication_response(
        credential=credential, expected_challenge=challenges.raw(credential),
        expected_rp_id=rp_id, expected_origin=relying_party.origins(),
        credential_public_key=public_key, credential_current_sign_count=0,
        require_user_verification=require_user_verification)


def client_origin(credential: dict[str, Any]) -> str:
    """The origin in a response's clientDataJSON (check_signature checks it is one of ours)."""
    return str(json.loads(base64url_to_bytes(credential["response"]["clientDataJSON"]))["origin"])


def cloned(new: int, old: int) -> bool:
    """A signature counter that did not grow (when either value is non-zero)."""
    return bool(new or old) and new <= old


def _own_credential(session: Session, teammate: Teammate,
                    credential: dict[str, Any]) -> WebAuthnCredential | None:
    sent = raw_id(credential)
    if sent is None:
        return None
    return session.scalar(select(WebAuthnCredential).where(
        WebAuthnCredential.credential_id == sent, WebAuthnCredential.teammate_id == teammate.id))


def owner_of(session: Session, credential: dict[str, Any]) -> Teammate | None:
    """The teammate whose key made this assertion, by credential id and user handle."""
    sent = raw_id(credential)
    if sent is None:
        return None
    teammate = session.scalar(select(Teammate).join(
        WebAuthnCredential, WebAuthnCredential.teammate_id == Teammate.id)
        .where(WebAuthnCredential.credential_id == sent))
    handle = credential.get("response", {}).get("userHandle")
    if teammate is None or (handle and b64(handle) != teammate.webauthn_user_handle):
        return None
    return teammate


def raw_id(credential: dict[str, Any]) -> bytes | None:
    value = credential.get("rawId") or credential.get("id")
    return b64(value) if isinstance(value, str) else None


def b64(value: str) -> bytes | None:
    try:
        return base64url_to_bytes(value)
    except (ValueError, TypeError):
        return None


def _client_challenge(credential: dict[str, Any], ceremony: str) -> bytes | None:
    return challenges.challenge_of(credential, ceremony)


def _descriptors(rows: list[WebAuthnCredential]) -> list[PublicKeyCredentialDescriptor]:
    return [PublicKeyCredentialDescriptor(
        id=r.credential_id, transports=[AuthenticatorTransport(t) for t in r.transports or []])
        for r in rows]


def as_json_id(row: WebAuthnCredential) -> str:
    return bytes_to_base64url(row.credential_id)
