"""Passkey sign-in on the event loop (PostgreSQL): a user-verified assertion of an active
teammate's passkey that verifies → a session, in one read and one statement.

`webauthn_sign_in.passkey_login` keeps the rules and every other outcome: this returns None,
having written nothing, when the assertion does not verify or does not match, the teammate
is not active or locked, the address's failure bucket is full, or a row changed meanwhile;
that path then reserves, counts and refuses as it always has. A passkey that verifies
reserves nothing here: `passkey_login` reserves a failure only to give it back on success,
and the bucket's refusal is kept (a full bucket goes that way and answers 429).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Select,
    String,
    and_,
    bindparam,
    cast,
    delete,
    exists,
    func,
    null,
    select,
    update,
)
from webauthn.helpers import bytes_to_base64url

from services import crypto, db_read
from services.accounts import ip_throttle, password_bound, sessions
from services.accounts.session_lookup import NOW, utc
from services.models import (
    LoginThrottle,
    PasswordFailures,
    Teammate,
    WebAuthnChallenge,
    WebAuthnCredential,
    Workspace,
    utcnow,
)
from services.verification import relying_party, sign_in_rows
from services.verification import webauthn as keys
from services.verification import webauthn_challenges as challenges
from services.verification.sign_in_rows import SignedIn

FACTOR = PURPOSE = "passkey"

# The key by its id, its teammate and workspace, the challenge the response names, and the
# address's failure bucket.
LOOKUP = (select(WebAuthnCredential.id, WebAuthnCredential.public_key,
                 WebAuthnCredential.sign_count, WebAuthnCredential.rp_id, Teammate.id,
                 Teammate.email, Teammate.status, Teammate.webauthn_user_handle, Teammate.locked_until,
                 Workspace.id, Workspace.slug, WebAuthnChallenge.id,
                 WebAuthnChallenge.workspace_id, LoginThrottle.failures,
                 LoginThrottle.window_start)
          .select_from(WebAuthnCredential)
          .join(Teammate, Teammate.id == WebAuthnCredential.teammate_id)
          .join(Workspace, Workspace.id == Teammate.workspace_id)
          .outerjoin(WebAuthnChallenge, and_(
              WebAuthnChallenge.challenge_hash == bindparam("webauthn_hash"),
              WebAuthnChallenge.purpose == PURPOSE, WebAuthnChallenge.used_at.is_(None),
              WebAuthnChallenge.expires_at > NOW))
          .outerjoin(LoginThrottle, LoginThrottle.key == bindparam("bucket"))
          .where(WebAuthnCredential.credential_id == bindparam("credential_id")))


def _succeed_statement() -> Select[tuple[int, int, int]]:
    """(sessions opened, challenges used, password buckets cleared): 1, 1, 0 or 1; or 0, 0, 0
    having written nothing. The challenge and the key are locked in `verify_assertion`'s
    order and checked as locked (unused, the counter as read), then both move, the password
    bound of the teammate's address clears and the session opens."""
    webauthn, credential = sign_in_rows.locked_key_rows()
    used = (update(WebAuthnChallenge)
            .where(WebAuthnChallenge.id.in_(select(webauthn.c.id)),
                   exists(select(credential.c.id)))
            .values(used_at=NOW).returning(WebAuthnChallenge.id).cte("used"))
    counted = (update(WebAuthnCredential)
               .where(WebAuthnCredential.id.in_(select(credential.c.id)))
               .values(sign_count=bindparam("new_count", type_=BigInteger), last_used_at=NOW,
                       backed_up=bindparam("backed_up", type_=Boolean))
               .returning(WebAuthnCredential.id).cte("counted"))
    # A passkey is both factors: the wrong passwords before it were not its owner's
    # (password_bound.clear).
    cleared = (delete(PasswordFailures)
               .where(PasswordFailures.key == bindparam("password_bucket"),
                      exists(select(counted.c.id)))
               .returning(PasswordFailures.key).cte("cleared"))
    source = (select(bindparam("teammate_id", type_=BigInteger).label("teammate_id"),
                     bindparam("origin", type_=String).label("origin"),
                     cast(null(), BigInteger).label("api_key_id"))
              .where(exists(select(counted.c.id))).cte("source"))
    opened = sign_in_rows.opened(source, FACTOR, bindparam("key_id", type_=BigInteger))
    return select(select(func.count()).select_from(opened).scalar_subquery(),
                  select(func.count()).select_from(used).scalar_subquery(),
                  select(func.count()).select_from(cleared).scalar_subquery())


SUCCEED = _succeed_statement()


async def complete(challenge: str, credential: dict[str, Any], slug: str | None,
                   client_ip: str) -> SignedIn | None:
    """A session for a passkey's assertion, or None: `passkey_login` decides."""
    if not db_read.on_postgres() or not relying_party.available():
        return None
    sent = challenges.challenge_of(credential, "webauthn.get")
    raw_id = keys.raw_id(credential)
    if sent is None or raw_id is None or bytes_to_base64url(sent) != challenge:
        return None
    now = utcnow()
    row = await db_read.fetch_one(LOOKUP, {
        "credential_id": raw_id, "webauthn_hash": challenges.hash_of(sent), "now": now,
        "bucket": ip_throttle.bucket(client_ip)})
    if row is None:
        return None
    (key_id, public_key, old, rp_id, teammate_id, email, status, handle, locked_until,
     workspace_id, workspace_slug, webauthn_id, bound_to, failures, window_start) = row
    sent_handle = credential.get("response", {}).get("userHandle")
    locked = locked_until is not None and utc(locked_until) > now  # type: ignore[operator]
    if webauthn_id is None or status != "active" or locked \
            or (sent_handle and keys.b64(sent_handle) != bytes(handle or b"")) \
            or (bound_to is not None and bound_to != workspace_id) \
            or (slug and workspace_slug != slug) \
            or ip_throttle.full(failures, utc(window_start), now):
        return None
    try:
        verified = keys.check_signature(credential, bytes(public_key), rp_id, True)
    except keys.INVALID:
        return None
    if keys.cloned(verified.new_sign_count, old):
        return None
    origin: sessions.Origin = ("host" if relying_party.is_host_origin(keys.client_origin(credential))
                               else "password")
    token = crypto.new_token()
    opened, _, _ = await db_read.fetch_one(SUCCEED, {  # type: ignore[misc]  # always one row
        **sign_in_rows.session_params(crypto.hash_token(token), now),
        "webauthn_id": webauthn_id, "key_id": key_id, "old_count": old,
        "new_count": verified.new_sign_count, "backed_up": verified.credential_backed_up,
        "teammate_id": teammate_id, "origin": origin,
        "password_bucket": password_bound.key(workspace_slug, email)})
    return SignedIn(token, "full") if opened else None
