"""A signed-in teammate changes their password (POST /v1/me/password, /settings/password).

A sensitive change: each HTTP layer declares the rule of a recently verified second factor
on its route, checked before anything here runs (services/api/recent_factor.SENSITIVE_FIRST,
services/console/recent_factor.py), so a stolen session cannot test password guesses. The
other sessions of the teammate end; the one that made the change carries on.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from services.accounts import password_bound, sessions
from services.accounts.passwords import hash_password, verify_password
from services.db import ROW_LOCK
from services.errors import AttemptFailed, Forbidden
from services.events import recorder
from services.events.catalog import EventType
from services.models import Teammate


class WrongPassword(AttemptFailed, Forbidden):
    """A wrong current password: 403 (the session itself is fine), and the failure counts."""

    code = "wrong_password"  # noqa: S105 - an error code, no secret


def change(session: Session, caller: sessions.Authenticated, current_password: str,
           new_password: str) -> None:
    teammate_id, stored = caller.teammate.id, caller.teammate.password_hash
    slug, email = caller.workspace.slug, caller.teammate.email
    # Wrong current passwords count toward the sign-in's per-teammate bound: during its
    # wait this answers 429 unread, so a session cannot be used to keep guessing.
    failed_before = password_bound.check(session, slug, email)
    # End the read before the two hashes: on SQLite a transaction holds the one write lock.
    session.rollback()
    if not verify_password(stored, current_password):
        password_bound.fail(session, slug, email)  # commits with the 403 (keep_changes)
        raise WrongPassword("The current password is wrong.")
    if failed_before:
        password_bound.clear(session, slug, email)
    new_hash = hash_password(new_password)
    teammate = session.get(Teammate, teammate_id, with_for_update=ROW_LOCK)
    assert teammate is not None
    teammate.password_hash = new_hash
    sessions.end_all(session, teammate.id, keep=caller.auth)
    recorder.record(session, teammate.workspace_id, EventType.PASSWORD_CHANGED,
                    {"teammate_id": teammate.id, "by": "self"}, teammate_id=teammate.id)
