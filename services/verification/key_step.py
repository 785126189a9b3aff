"""A security key's assertion at the sign-in code step, on the event loop (PostgreSQL).

As `code_step` does for an app's code: one read (the live challenge, the WebAuthn challenge
the response names and the teammate's credential it comes from), the signature checked,
then one statement that consumes the WebAuthn challenge, moves the key's counter, ends the
challenge and opens the session, all or nothing. `webauthn_sign_in.verify_second_factor`
keeps the rules and every other outcome: this returns None, having written nothing, for a
response that does not verify or is not for this challenge, an unknown key, a cloned
counter, and whatever changed meanwhile; that path then counts the failure exactly.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Boolean, Select, and_, bindparam, exists, func, select, update

from services import crypto, db_read
from services.accounts.session_lookup import NOW
from services.db import ROW_LOCK
from services.errors import Unauthenticated
from services.models import AuthSession, Teammate, WebAuthnChallenge, WebAuthnCredential, utcnow
from services.verification import relying_party, sign_in_rows, throttle
from services.verification import webauthn as keys
from services.verification import webauthn_challenges as challenges
from services.verification.sign_in_rows import SignedIn

FACTOR = "webauthn"
PURPOSE = "second_factor"

CHALLENGE = (sign_in_rows.live_challenge()
             .add_columns(WebAuthnChallenge.id, WebAuthnChallenge.auth_session_id,
                          WebAuthnCredential.id, WebAuthnCredential.public_key,
                          WebAuthnCredential.sign_count, WebAuthnCredential.rp_id)
             .outerjoin(WebAuthnChallenge, and_(
                 WebAuthnChallenge.challenge_hash == bindparam("webauthn_hash"),
                 WebAuthnChallenge.purpose == PURPOSE, WebAuthnChallenge.used_at.is_(None),
                 WebAuthnChallenge.expires_at > NOW))
             .outerjoin(WebAuthnCredential, and_(
                 WebAuthnCredential.credential_id == bindparam("credential_id"),
                 WebAuthnCredential.teammate_id == Teammate.id)))


def _succeed_statement() -> Select[tuple[int, int, int]]:
    """(sessions opened, challenges used, counters moved): 1, 1, 1, or 0, 0, 0 having
    written nothing. The rows are locked in
    `verify_assertion`'s order (WebAuthn challenge, key, sign-in challenge) and checked as
    locked: unused, the counter as read, not ended."""
    webauthn, key = sign_in_rows.locked_key_rows()
    challenge = (select(AuthSession.id)
                 .where(AuthSession.id == bindparam("challenge_id"),
                        AuthSession.ended_at.is_(None), exists(select(key.c.id)))
                 .with_for_update(**ROW_LOCK).cte("challenge"))
    used = (update(WebAuthnChallenge)
            .where(WebAuthnChallenge.id.in_(select(webauthn.c.id)), exists(select(challenge.c.id)))
            .values(used_at=NOW).returning(WebAuthnChallenge.id).cte("used"))
    counted = (update(WebAuthnCredential)
               .where(WebAuthnCredential.id.in_(select(key.c.id)), exists(select(challenge.c.id)))
               .values(sign_count=bindparam("new_count", type_=BigInteger), last_used_at=NOW,
                       backed_up=bindparam("backed_up", type_=Boolean))
               .returning(WebAuthnCredential.id).cte("counted"))
    ended = (update(AuthSession)
             .where(AuthSession.id.in_(select(challenge.c.id)))
             .values(ended_at=NOW)
             .returning(AuthSession.teammate_id, AuthSession.origin, AuthSession.api_key_id)
             .cte("ended"))
    opened = sign_in_rows.opened(ended, FACTOR, bindparam("key_id", type_=BigInteger))
    return select(select(func.count()).select_from(opened).scalar_subquery(),
                  select(func.count()).select_from(used).scalar_subquery(),
                  select(func.count()).select_from(counted).scalar_subquery())


SUCCEED = _succeed_statement()


async def complete(challenge: str, credential: dict[str, Any]) -> SignedIn | None:
    """A sign-in challenge completed with a security key's assertion, or None:
    `verify_second_factor` decides. Raises as it does for an unknown challenge (401
    `invalid_code`) and while locked (429)."""
    if not db_read.on_postgres() or not relying_party.available():
        return None
    asked = challenges.challenge_of(credential, "webauthn.get")
    raw_id = keys.raw_id(credential)
    if asked is None or raw_id is None:
        return None
    now = utcnow()
    row = await db_read.fetch_one(CHALLENGE, {
        "challenge_hash": crypto.hash_token(challenge), "now": now,
        "webauthn_hash": challenges.hash_of(asked), "credential_id": raw_id})
    found = sign_in_rows.Challenge.of(row) if row is not None else None
    if row is None or found is None or not found.two_factor_enabled:
        raise Unauthenticated("The sign-in challenge is unknown, used or expired; sign in again.",
                              "invalid_code")
    webauthn_id, bound_to, key_id, public_key, old, rp_id = row[len(sign_in_rows.COLUMNS):]
    if webauthn_id is None or bound_to != found.id or key_id is None:
        return None
    until = found.locked(now)
    if until is not None:
        raise throttle.refusal(until, now)
    try:
        verified = keys.check_signature(credential, bytes(public_key), rp_id, False)
    except keys.INVALID:
        return None
    if keys.cloned(verified.new_sign_count, old):
        return None
    token = crypto.new_token()
    opened, _, _ = await db_read.fetch_one(SUCCEED, {  # type: ignore[misc]  # always one row
        **sign_in_rows.session_params(crypto.hash_token(token), now),
        "webauthn_id": webauthn_id, "key_id": key_id, "old_count": old,
        "new_count": verified.new_sign_count, "backed_up": verified.credential_backed_up,
        "challenge_id": found.id})
    if not opened:
        return None
    return SignedIn(token, found.level(FACTOR))
