"""Password sign-in: /v1/login."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.accounts import ip_throttle, sessions
from services.accounts.passwords import verify_password
from services.accounts.workspaces import normalize_email
from services.errors import InvalidCredentials, InvalidInput
from services.models import Teammate, Workspace


def login(session: Session, slug: str, email: str, password: str, client_ip: str) -> sessions.SignIn:
    ip_throttle.check(session, client_ip)
    teammate, workspace = _find(session, slug, email)
    if not verify_password(teammate.password_hash if teammate else None, password):
        ip_throttle.record_failure(session, client_ip)
        raise InvalidCredentials("Workspace, email or password is wrong.")
    assert teammate is not None and workspace is not None
    return sessions.after_first_factor(session, teammate, workspace)


def _find(session: Session, slug: str, email: str) -> tuple[Teammate | None, Workspace | None]:
    try:
        email = normalize_email(email)
    except InvalidInput:
        return None, None
    row = session.execute(
        select(Teammate, Workspace)
        .join(Workspace, Workspace.id == Teammate.workspace_id)
        .where(Workspace.slug == slug, Teammate.email == email, Teammate.status == "active")
    ).first()
    return (row[0], row[1]) if row else (None, None)
