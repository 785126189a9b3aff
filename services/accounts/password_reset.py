"""Forgotten passwords: a reset link by email, then a new password and the usual sign-in.

Asking for a link answers the same whatever the address: the request only counts against
the address's limit and leaves a message for the worker, which looks the teammate up, so
neither the answer nor its timing tells a known address from an unknown one. The worker
makes the link for a teammate who has joined, at most `PER_TEAMMATE` an hour (the rest are
dropped without a word); a new link voids the older ones. A link serves once, for `TTL`.
Only the token's SHA-256 is stored: the email task derives the token again from the row's
nonce, like the join link. Using a link ends every session of the teammate, clears their
wrong-password bound, and signs in as /v1/login does, so a teammate with 2FA still shows
their second factor.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Literal

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.orm import Session

from services import outbox
from services.accounts import ip_throttle, password_bound, sessions
from services.accounts.email_address import matches, normalize_email
from services.accounts.passwords import hash_password
from services.crypto import derived_token, hash_token
from services.db import ROW_LOCK
from services.errors import N_, InvalidCredentials, InvalidInput
from services.events import recorder
from services.events.catalog import EventType
from services.models import PasswordReset, Teammate, Workspace, utcnow
from services.topics import Topic

TTL = timedelta(hours=1)
PER_IP = 5
PER_IP_WINDOW = timedelta(minutes=15)
PER_TEAMMATE = 3
PER_TEAMMATE_WINDOW = timedelta(hours=1)

State = Literal["usable", "used", "expired", "voided", "unknown"]
REFUSALS: dict[State, str] = {
    "used": N_("This reset link was used already. Ask for a new one if you still need it."),
    "expired": N_("This reset link has expired: links work for one hour. Ask for a new one."),
    "voided": N_("A newer reset link was sent after this one, and only the newest works. "
                 "Use the link in your latest email, or ask for a new one."),
    "unknown": N_("This reset link is not one we sent. Check that the whole link was copied, "
                  "or ask for a new one."),
    "usable": "",
}


def request(slug: str, email: str, client_ip: str, session: Session) -> None:
    """POST /v1/password-reset: count it against the address, leave the rest to the worker."""
    ip_throttle.count(client_ip, "reset", PER_IP, PER_IP_WINDOW,
                      N_("Too many password reset requests from this address; try again later."))
    outbox.enqueue(session, Topic.SEND_PASSWORD_RESET, workspace=slug[:63], email=email[:320],
                   request=secrets.token_hex(16))


def issue(session: Session, slug: str, email: str, request_id: str) -> PasswordReset | None:
    """The link of one request (the worker's side), or None: nobody who joined has this
    address, or they had `PER_TEAMMATE` links this hour. A redelivered request finds the
    link it made the first time."""
    teammate = _joined(session, slug, email)
    if teammate is None:
        return None
    # The teammate's row lock orders concurrent requests: the hour's count stays exact.
    session.refresh(teammate, with_for_update=ROW_LOCK)
    made = session.scalar(select(PasswordReset).where(
        PasswordReset.teammate_id == teammate.id, PasswordReset.nonce == request_id))
    if made is not None:
        return made
    now = utcnow()
    recent = session.scalar(select(func.count()).select_from(PasswordReset).where(
        PasswordReset.teammate_id == teammate.id,
        PasswordReset.created_at > now - PER_TEAMMATE_WINDOW))
    if (recent or 0) >= PER_TEAMMATE:
        return None
    session.execute(update(PasswordReset)
                    .where(PasswordReset.teammate_id == teammate.id, _open())
                    .values(voided_at=now).execution_options(synchronize_session=False))
    reset = PasswordReset(teammate_id=teammate.id, nonce=request_id, created_at=now,
                          expires_at=now + TTL,
                          token_hash=hash_token(token_of(teammate.id, request_id)))
    session.add(reset)
    session.flush()
    return reset


def _refused(state: State) -> InvalidCredentials:
    return InvalidCredentials(REFUSALS[state])


def token_of(teammate_id: int, nonce: str) -> str:
    return derived_token("password-reset", teammate_id, nonce)


def state(session: Session, token: str) -> State:
    """What a link is now: the reset page says it before showing its form."""
    return _state(_find(session, token))


def confirm(session: Session, token: str, password: str) -> sessions.SignIn:
    """POST /v1/password-reset/confirm: set the password, end every session of the
    teammate, then sign in as /v1/login does (a second factor is still asked for)."""
    reset = _find(session, token)
    found = _state(reset)
    if found != "usable" or reset is None:
        raise _refused(found)
    password_hash = hash_password(password)  # before claiming: a short one keeps the link
    claimed = session.execute(
        update(PasswordReset).where(PasswordReset.id == reset.id, _open())
        .values(used_at=utcnow()).execution_options(synchronize_session=False))
    if claimed.rowcount != 1:  # type: ignore[attr-defined]  # a concurrent use won
        raise _refused("used")
    teammate = session.get(Teammate, reset.teammate_id, with_for_update=ROW_LOCK)
    if teammate is None or teammate.status != "active":
        raise _refused("unknown")
    workspace = session.get(Workspace, teammate.workspace_id)
    assert workspace is not None
    teammate.password_hash = password_hash
    password_bound.clear(session, workspace.slug, teammate.email)  # wrong guesses start over
    sessions.end_all(session, teammate.id)
    recorder.record(session, workspace.id, EventType.PASSWORD_CHANGED,
                    {"teammate_id": teammate.id, "by": "reset"}, teammate_id=teammate.id)
    return sessions.after_first_factor(session, teammate, workspace, origin="password")


def _joined(session: Session, slug: str, email: str) -> Teammate | None:
    try:
        address = normalize_email(email)
    except InvalidInput:
        return None
    return session.scalar(select(Teammate).join(Workspace, Workspace.id == Teammate.workspace_id)
                          .where(Workspace.slug == slug, matches(address),
                                 Teammate.status == "active"))


def _find(session: Session, token: str) -> PasswordReset | None:
    if not token or len(token) > 200:
        return None
    return session.scalar(select(PasswordReset).where(
        PasswordReset.token_hash == hash_token(token)))


def _state(reset: PasswordReset | None) -> State:
    if reset is None:
        return "unknown"
    if reset.used_at is not None:
        return "used"
    if reset.voided_at is not None:
        return "voided"
    if reset.expires_at <= utcnow():
        return "expired"
    return "usable"


def _open() -> ColumnElement[bool]:
    return and_(PasswordReset.used_at.is_(None), PasswordReset.voided_at.is_(None),
                PasswordReset.expires_at > utcnow())
