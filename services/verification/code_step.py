"""The sign-in code step with an app's code, on the event loop (PostgreSQL).

Every teammate meets `/v1/login/two-factor` at every sign-in. Through the ORM in the thread
pool it made nine round trips and cost ~2,500× a TOTP check in CPU
(docs/measurements.md). Here the usual outcomes take one read and one statement on
`db_read`'s asyncpg connections, the statement atomic on its own (no BEGIN, no COMMIT):

* a right code: claim its step and reset the counts (`throttle.succeed`), end the challenge
  (`sessions.end`) and open the session (`sessions.open_session`), all or nothing;
* a wrong code: count it and record its `twofa.verification.failed` (`throttle.fail`).

The same rules as `service.verify_challenge`, which stays the one place for the rest: this
returns None, having written nothing, and the caller runs that in a transaction of its own,
for recovery and bypass codes, teammates without an app, a replayed step, a lock or a
used challenge met meanwhile, and the failures that tell the teammate or lock them. SQLite,
the embedded default, always takes that path.
"""

from __future__ import annotations

import json

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

from services import crypto, db_read
from services.accounts.session_lookup import NOW
from services.db import ROW_LOCK
from services.errors import InvalidCode, Unauthenticated
from services.events import payloads, recorder
from services.events.catalog import EventType
from services.metrics import events as event_metrics
from services.models import (
    AuthSession,
    Event,
    OutboxMessage,
    Teammate,
    utcnow,
)
from services.topics import Topic
from services.verification import sign_in_rows, throttle, totp
from services.verification.sign_in_rows import SignedIn

FACTOR = "totp"

# The live challenge, and the app's secret.
CHALLENGE = sign_in_rows.live_challenge().add_columns(Teammate.totp_secret_enc)


def _succeed_statement() -> Select[tuple[int, int]]:
    """(steps claimed, sessions opened): 1, 1 or, having written nothing, 0, 0.

    Both rows are locked first, in `verify_challenge`'s order (teammate, then challenge), and
    their conditions checked on the rows as locked (FOR UPDATE reads the latest committed
    version): so the step is claimed exactly when the challenge ends, and of concurrent
    submissions exactly one does both."""
    teammate = (select(Teammate.id)
                .where(Teammate.id == bindparam("teammate_id"), throttle.unlocked(NOW),
                       (Teammate.totp_last_step.is_(None))
                       | (Teammate.totp_last_step < bindparam("step")))
                .with_for_update(**ROW_LOCK).cte("teammate"))
    challenge = (select(AuthSession.id)
                 .where(AuthSession.id == bindparam("challenge_id"),
                        AuthSession.ended_at.is_(None), exists(select(teammate.c.id)))
                 .with_for_update(**ROW_LOCK).cte("challenge"))
    claimed = (update(Teammate)
               .where(Teammate.id.in_(select(teammate.c.id)), exists(select(challenge.c.id)))
               .values(failed_attempts=0, lockouts=0, totp_last_step=bindparam("step"))
               .returning(Teammate.id).cte("claimed"))
    ended = (update(AuthSession)
             .where(AuthSession.id.in_(select(challenge.c.id)))
             .values(ended_at=NOW)
             .returning(AuthSession.teammate_id, AuthSession.origin, AuthSession.api_key_id)
             .cte("ended"))
    opened = sign_in_rows.opened(ended, FACTOR)
    return select(select(func.count()).select_from(claimed).scalar_subquery(),
                  select(func.count()).select_from(opened).scalar_subquery())


def _fail_statement() -> Select[tuple[int, int]]:
    """(seq of the event, outbox messages) when the failure was counted and recorded; no row,
    having written nothing, when it is not a plain one or a lock began meanwhile (the UPDATE
    checks both on the row as locked)."""
    counted = (update(Teammate)
               .where(Teammate.id == bindparam("teammate_id"), throttle.unlocked(NOW),
                      throttle.next_is_plain())
               .values(failed_attempts=Teammate.failed_attempts + 1)
               .returning(Teammate.id).cte("counted"))
    event = (insert(Event)
             .from_select(["id", "workspace_id", "type", "subject", "time", "data",
                           "trace_context"],
                          select(bindparam("event_id", type_=String),
                                 bindparam("workspace_id", type_=BigInteger),
                                 bindparam("type", type_=String),
                                 bindparam("subject", type_=String), NOW,
                                 bindparam("data", type_=JSON),
                                 bindparam("trace_context", type_=JSON))
                          .where(exists(select(counted.c.id))))
             .returning(Event.seq).cte("event"))
    # What outbox.enqueue(…, Topic.DISPATCH_EVENTS, event_seqs=[seq]) writes.
    queued = (insert(OutboxMessage)
              .from_select(["topic", "payload", "created_at", "publish_count", "trace_context"],
                           select(literal(Topic.DISPATCH_EVENTS.value),
                                  func.json_build_object("event_seqs",
                                                         func.json_build_array(event.c.seq)),
                                  NOW, literal(0), bindparam("trace_context", type_=JSON)))
              .returning(OutboxMessage.id).cte("queued"))
    return select(event.c.seq, select(func.count()).select_from(queued).scalar_subquery())


SUCCEED = _succeed_statement()
FAIL = _fail_statement()
# The data of every failure this step records, checked against its payload class here, once:
# per wrong code the check and its asdict cost ~5 µs, and only `teammate_id` (an int, the
# row's id) changes.
_FAILED = payloads.checked(EventType.VERIFICATION_FAILED,
                           {"teammate_id": 0, "reason": "invalid_code", "method": FACTOR})


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
    found = sign_in_rows.Challenge.of(row) if row is not None else None
    if found is None or not found.two_factor_enabled:
        raise Unauthenticated("The sign-in challenge is unknown, used or expired; sign in again.",
                              "invalid_code")
    secret_enc = row[-1]  # type: ignore[index]
    if secret_enc is None:  # security keys only: the general path counts the attempt
        return None
    until = found.locked(now)
    if until is not None:
        raise throttle.refusal(until, now)
    step = totp.matching_step(crypto.decrypt(bytes(secret_enc)), code)
    if step is None:
        await _fail(found.teammate_id, found.workspace_id)  # 401 unless not for this path
        return None
    token = crypto.new_token()
    claimed, _ = await db_read.fetch_one(SUCCEED, {  # type: ignore[misc]  # always one row
        **sign_in_rows.session_params(crypto.hash_token(token), now),
        "teammate_id": found.teammate_id, "step": step, "challenge_id": found.id})
    if not claimed:
        return None
    return SignedIn(token, found.level(FACTOR))


async def _fail(teammate_id: int, workspace_id: int) -> None:
    """Count a wrong code with its event, then raise 401; return (having written nothing)
    when the failure does more than that or a lock began meanwhile."""
    event = recorder.row(workspace_id, EventType.VERIFICATION_FAILED,
                         {**_FAILED, "teammate_id": teammate_id}, teammate_id)
    row = await db_read.fetch_one(FAIL, {
        "teammate_id": teammate_id, "now": utcnow(), "event_id": event["id"],
        "workspace_id": workspace_id, "type": event["type"], "subject": event["subject"],
        "data": json.dumps(event["data"]),
        "trace_context": json.dumps(trace) if (trace := event["trace_context"]) else None})
    if row is None:
        return
    event_metrics.count(event["type"], event["data"])
    raise InvalidCode("That code is not valid.")
