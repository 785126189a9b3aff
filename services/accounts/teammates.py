"""Teammates: an admin adds one, the join email carries an accept token, they set a password."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services import outbox
from services.accounts import sessions
from services.accounts.passwords import hash_password
from services.accounts.workspaces import normalize_email
from services.crypto import derived_token, hash_token
from services.enrollment import state
from services.errors import Conflict, InvalidCredentials, InvalidInput, NotFound
from services.models import EnrollmentInvitation, Teammate, Workspace
from services.topics import Topic

ROLES = ("admin", "member")


@dataclass(frozen=True)
class TeammateView:
    teammate: Teammate
    enrollment: str

    def as_dict(self) -> dict[str, object]:
        t = self.teammate
        return {
            "id": t.id,
            "email": t.email,
            "name": t.name,
            "role": t.role,
            "status": t.status,
            "two_factor_enabled": t.two_factor_enabled,
            "enrollment": self.enrollment,
        }


def get(session: Session, workspace: Workspace, teammate_id: int) -> Teammate:
    teammate = session.get(Teammate, teammate_id)
    if teammate is None or teammate.workspace_id != workspace.id:
        raise NotFound("No such teammate in this workspace.", "teammate_not_found")
    return teammate


def add(session: Session, workspace: Workspace, email: str, name: str, role: str) -> Teammate:
    if role not in ROLES:
        raise InvalidInput("role is 'admin' or 'member'.", "invalid_role")
    email = normalize_email(email)
    exists = select(Teammate.id).where(
        Teammate.workspace_id == workspace.id, Teammate.email == email
    )
    if session.scalar(exists) is not None:
        raise Conflict(f"{email} is already a teammate.", "teammate_exists")
    teammate = Teammate(
        workspace_id=workspace.id,
        email=email,
        name=name.strip() or email,
        role=role,
        status="invited",
        join_nonce=secrets.token_hex(16),
    )
    try:
        # A concurrent add of the same address passes the check above too; the unique
        # constraint decides, inside a savepoint so that the loser can answer 409.
        with session.begin_nested():
            session.add(teammate)
    except IntegrityError:
        raise Conflict(f"{email} is already a teammate.", "teammate_exists") from None
    teammate.join_token_hash = hash_token(join_token(teammate))
    outbox.enqueue(session, Topic.SEND_JOIN_EMAIL, teammate_id=teammate.id)
    return teammate


def join_token(teammate: Teammate) -> str:
    """Recomputed by the email task, so the token itself is never stored."""
    return derived_token("join", teammate.id, teammate.join_nonce)


def accept(session: Session, token: str, password: str, name: str | None) -> sessions.SignIn:
    teammate = session.scalar(
        select(Teammate).where(Teammate.join_token_hash == hash_token(token))
    )
    if teammate is None or teammate.status != "invited":
        # The contract gives this endpoint /v1/login's answers, whose only 401 code is this.
        raise InvalidCredentials("This invitation link is unknown or was used already; "
                                 "sign in, or ask an admin for a new invitation.")
    teammate.password_hash = hash_password(password)
    teammate.status = "active"
    teammate.join_token_hash = None
    if name and name.strip():
        teammate.name = name.strip()
    workspace = session.get(Workspace, teammate.workspace_id)
    assert workspace is not None
    return sessions.after_first_factor(session, teammate, workspace)


def page(
    session: Session, workspace: Workspace, limit: int, after_id: int | None
) -> tuple[list[TeammateView], int | None]:
    """Teammates in id order with their enrollment state; the cursor is the last id."""
    query = (
        select(Teammate, EnrollmentInvitation.status)
        .outerjoin(EnrollmentInvitation, state.current_invitation(workspace))
        .where(Teammate.workspace_id == workspace.id)
        .order_by(Teammate.id)
        .limit(limit + 1)
    )
    if after_id is not None:
        query = query.where(Teammate.id > after_id)
    rows = session.execute(query).all()
    views = [
        TeammateView(t, state.enrollment_state(workspace, t.two_factor_enabled, status))
        for t, status in rows[:limit]
    ]
    next_id = views[-1].teammate.id if len(rows) > limit else None
    return views, next_id
