"""The sign-in code step with an app's code, on the event loop (PostgreSQL).

Every teammate meets `/v1/login/two-factor` at every sign-in. Through the ORM in the thread
pool it made about nine round trips and cost ~100× a TOTP check in CPU
(docs/measurements.md). Here the usual outcomes take one read and one statement in a
transaction on `db_read`'s asyncpg connections:

* a right code: claim its step and reset the counts (`throttle.succeed`), end the challenge
  (`sessions.end`) and open the session (`sessions.open_session`), all or nothing;
* a wrong code: count it and record its `twofa.verification.failed` (`throttle.fail`).

The same rules as `service.verify_challenge`, which stays the one place for the rest: this
returns None (the caller runs that, in a transaction of its own) for recovery and bypass
codes, teammates without an app, a replayed step or a lock that began meanwhile (both were
rolled back here), and the failures that tell the teammate or lock them. SQLite, the
embedded default, always takes that path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import (
    JSON,
    BigInteger,
    Select,
    String,
    bindparam,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)

from services import crypto, db_read, enforcement
from services.accounts import sessions
from services.accounts.session_lookup import NOW, utc
from services.config import get_settings
from services.errors import InvalidCode, Unauthenticated
from services.events import recorder, request_context
from services.events.catalog import EventType
from services.metrics import events as event_metrics
from services.models import (
    AuthSession,
    Event,
    OutboxMessage,
    Teammate,
    UTCDateTime,
    Workspace,
    utcnow,
)
from services.topics import Topic
from services.verification import throttle, totp

FACTOR = "totp"

# The live challenge with what the check and the new session's level need.
CHALLENGE = (select(AuthSession.id, Teammate.id, Teammate.workspace_id, Teammate.totp_secret_enc,
                    Teammate.totp_enabled_at, Teammate.webauthn_enabled_at, Teammate.locked_until,
                    Teammate.role, Teammate.exempt_until, Workspace.require_two_factor,
                    Workspace.enforce_at, Workspace.methods_enforce_at, Workspace.allowed_methods)
             .select_from(AuthSession)
             .join(Teammate, Teammate.id == AuthSession.teammate_id)
             .join(Workspace, Workspace.id == Teammate.workspace_id)
             .where(AuthSession.token_hash == bindparam("challenge_hash"),
                    AuthSession.kind == "challenge", AuthSession.ended_at.is_(None),
                    AuthSession.expires_at > NOW))


def _succeed_statement() -> Select[tuple[int, int]]:
    """(steps claimed, sessions opened): 1, 1 is a sign-in; 1, 0 a challenge ended meanwhile;
    0, 0 a replayed step or a lock (the caller rolls back all but the first)."""
    claimed = (update(Teammate)
               .where(Teammate.id == bindparam("teammate_id"), throttle.unlocked(NOW),
                      (Teammate.totp_last_step.is_(None))
                      | (Teammate.totp_last_step < bindparam("step")))
               .values(failed_attempts=0, lockouts=0, totp_last_step=bindparam("step"))
               .returning(Teammate.id).cte("claimed"))
    ended = (update(AuthSession)
             .where(AuthSession.id == bindparam("challenge_id"), AuthSession.ended_at.is_(None),
                    exists(select(claimed.c.id)))
             .values(ended_at=NOW)
             .returning(AuthSession.teammate_id, AuthSession.origin, AuthSession.api_key_id)
             .cte("ended"))
    opened = (insert(AuthSession)
              .from_select(["kind", "origin", "factor", "verified_at", "api_key_id", "token_hash",
                            "teammate_id", "created_at", "expires_at", "ip", "user_agent"],
                           select(literal("session"), ended.c.origin, literal(FACTOR), NOW,
                                  ended.c.api_key_id, bindparam("token_hash", type_=String),
                                  ended.c.teammate_id, NOW,
                                  bindparam("expires_at", type_=UTCDateTime),
                                  bindparam("ip", type_=String),
                                  bindparam("user_agent", type_=String)))
              .returning(AuthSession.id).cte("opened"))
    return select(select(func.count()).select_from(claimed).scalar_subquery(),
                  select(func.count()).select_from(opened).scalar_subquery())


def _fail_statement() -> Select[tuple[int, int, int]]:
    """(failures, lockouts) after counting one, its event and outbox message recorded; no row
    when a lock began meanwhile."""
    counted = (update(Teammate)
               .where(Teammate.id == bindparam("teammate_id"), throttle.unlocked(NOW))
               .values(failed_attempts=Teammate.failed_attempts + 1)
               .returning(Teammate.failed_attempts, Teammate.lockouts).cte("counted"))
    event = (insert(Event)
             .from_select(["id", "workspace_id", "type", "subject", "time", "data"],
                          select(bindparam("event_id", type_=String),
                                 bindparam("workspace_id", type_=BigInteger),
                                 bindparam("type", type_=String),
                                 bindparam("subject", type_=String), NOW,
                                 bindparam("data", type_=JSON))
                          .where(exists(select(counted.c.failed_attempts))))
             .returning(Event.seq).cte("event"))
    # What outbox.enqueue(…, Topic.DISPATCH_EVENTS, event_seqs=[seq]) writes.
    queued = (insert(OutboxMessage)
              .from_select(["topic", "payload", "created_at", "publish_count"],
                           select(literal(Topic.DISPATCH_EVENTS.value),
                                  func.json_build_object("event_seqs",
                                                         func.json_build_array(event.c.seq)),
                                  NOW, literal(0)))
              .returning(OutboxMessage.id).cte("queued"))
    return (select(counted.c.failed_attempts, counted.c.lockouts,
                   select(func.count()).select_from(queued).scalar_subquery()))


SUCCEED = _succeed_statement()
FAIL = _fail_statement()


@dataclass(frozen=True)
class SignedIn:
    token: str
    level: sessions.Level


async def complete(challenge: str, code: str) -> SignedIn | None:
    """A sign-in challenge completed with an app's `code`, or None: `verify_challenge` decides.

    Raises as `verify_challenge` does: 401 `invalid_code` for an unknown challenge or a wrong
    code (counted), 429 while locked."""
    code = code.strip().replace(" ", "")  # as factors.check
    if not db_read.on_postgres() or not totp.looks_like_code(code):
        return None
    now = utcnow()
    row = await db_read.fetch_one(CHALLENGE, {"challenge_hash": crypto.hash_token(challenge),
                                              "now": now})
    if row is None or (row[4] is None and row[5] is None):
        raise Unauthenticated("The sign-in challenge is unknown, used or expired; sign in again.",
                              "invalid_code")
    (challenge_id, teammate_id, workspace_id, secret_enc, app, keys, locked_until, role, exempt,
     required, enforce_at, methods_enforce_at, allowed) = row
    if secret_enc is None:  # security keys only: the general path counts the attempt
        return None
    if locked_until is not None and utc(locked_until) > now:  # type: ignore[operator]
        raise throttle.refusal(utc(locked_until), now)  # type: ignore[arg-type]
    step = totp.matching_step(crypto.decrypt(bytes(secret_enc)), code)
    if step is None:
        await _fail(teammate_id, workspace_id)  # raises 401 unless it is not for this path
        return None
    token = crypto.new_token()
    opened_by = request_context.current()
    async with db_read.transaction() as tx:
        claimed, opened = await tx.fetch_one(SUCCEED, {  # type: ignore[misc]  # one row
            "teammate_id": teammate_id, "step": step, "challenge_id": challenge_id, "now": now,
            "token_hash": crypto.hash_token(token), "ip": opened_by.get("ip"),
            "user_agent": opened_by.get("user_agent"),
            "expires_at": now + timedelta(seconds=get_settings().session_ttl_seconds)})
        if claimed and not opened:  # completed meanwhile by a parallel request: roll back
            raise Unauthenticated("The sign-in challenge was used meanwhile; sign in again.",
                                  "invalid_code")
        if not claimed:  # a replayed step, or locked meanwhile: nothing was written
            return None
    standing = sessions.Standing(bool(required), utc(enforce_at), utc(methods_enforce_at),
                                 allowed, utc(exempt), app is not None, keys is not None, FACTOR,
                                 enforcement.is_admin(role))
    return SignedIn(token, standing.level)


class _Undo(Exception):
    """Rolls the transaction back: the failure is `verify_challenge`'s to count."""


async def _fail(teammate_id: int, workspace_id: int) -> None:
    """Count a wrong code with its event, then raise 401; None when the failure does more
    than that (tells the teammate, locks them) or a lock began meanwhile."""
    event = recorder.columns(workspace_id, EventType.VERIFICATION_FAILED,
                             {"teammate_id": teammate_id, "reason": "invalid_code"}, teammate_id)
    try:
        async with db_read.transaction() as tx:
            row = await tx.fetch_one(FAIL, {
                "teammate_id": teammate_id, "now": utcnow(), "event_id": event["id"],
                "workspace_id": workspace_id, "type": event["type"],
                "subject": event["subject"], "data": json.dumps(event["data"])})
            if row is None or not throttle.plain(row[0], row[1], at_sign_in=True):
                raise _Undo
    except _Undo:
        return None
    event_metrics.count(event["type"], event["data"])
    raise InvalidCode("That code is not valid.")
