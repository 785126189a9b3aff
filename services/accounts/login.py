"""Password sign-in: /v1/login."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.accounts import ip_throttle, password_bound, sessions
from services.accounts.email_address import matches, normalize_email
from services.accounts.passwords import verify_password
from services.db import unit_of_work
from services.errors import InvalidCredentials, InvalidInput
from services.models import Teammate, Workspace


def login(session: Session, slug: str, email: str, password: str, client_ip: str) -> sessions.SignIn:
    ip_throttle.reserve(client_ip)  # counted as failed until the password proves right
    try:
        # During the per-teammate wait nothing is checked: 429 whatever the password.
        failed_before = password_bound.check(session, slug, email)
        teammate, workspace = _find(session, slug, email)
        stored = teammate.password_hash if teammate else None
        # End the read before the ~50 ms hash: on SQLite any open transaction holds the one
        # write lock, which would queue every other sign-in behind this hash.
        session.rollback()
        valid = verify_password(stored, password)
    except BaseException:
        # Not a failed attempt (e.g. 503 while hashing is saturated): give the reservation
        # back in a transaction of its own, since this one rolls back. Rolling back first
        # frees SQLite's single write lock for it.
        session.rollback()
        with unit_of_work() as own:
            ip_throttle.release(own, client_ip)
        raise
    if not valid:
        password_bound.fail(session, slug, email)  # commits with the 401 (keep_changes)
        raise InvalidCredentials("Workspace, email or password is wrong.")
    ip_throttle.release(session, client_ip)
    if failed_before:
        password_bound.clear(session, slug, email)
    assert teammate is not None and workspace is not None
    return sessions.after_first_factor(session, teammate, workspace, origin="password")


def _find(session: Session, slug: str, email: str) -> tuple[Teammate | None, Workspace | None]:
    try:
        email = normalize_email(email)
    except InvalidInput:
        return None, None
    row = session.execute(
        select(Teammate, Workspace)
        .join(Workspace, Workspace.id == Teammate.workspace_id)
        .where(Workspace.slug == slug, matches(email), Teammate.status == "active")
    ).first()
    return (row[0], row[1]) if row else (None, None)
