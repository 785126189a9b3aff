"""Teammates: an admin adds one, the join email carries an accept token, they set a password."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy import ColumnElement, Row, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services import clock, outbox, team_counts
from services.accounts import preferences, sessions
from services.accounts.email_address import matches, new_address, normalize_email
from services.accounts.passwords import hash_password
from services.config import get_settings
from services.crypto import derived_token, hash_token
from services.db import ROW_LOCK
from services.enrollment import exemptions, fanout, state
from services.errors import N_, Conflict, InvalidCredentials, InvalidInput, NotFound
from services.events import recorder
from services.events.catalog import EventType
from services.i18n.locales import check_locale
from services.models import (
    EnrollmentInvitation,
    Teammate,
    Workspace,
    compliant_sql,
    two_factor_enabled_sql,
    utcnow,
)
from services.topics import Topic

ROLES = ("admin", "member")


@dataclass(frozen=True)
class TeammateView:
    teammate: Teammate
    enrollment: str


def get(session: Session, workspace: Workspace, teammate_id: int) -> Teammate:
    """A teammate of this workspace who has not been removed; 404 otherwise."""
    teammate = session.get(Teammate, teammate_id)
    if teammate is None or teammate.workspace_id != workspace.id or teammate.status == "removed":
        raise NotFound("No such teammate in this workspace.", "teammate_not_found")
    return teammate


def view(session: Session, workspace: Workspace, teammate: Teammate) -> TeammateView:
    """One teammate with their enrollment state."""
    status = session.scalar(select(EnrollmentInvitation.status).where(
        EnrollmentInvitation.teammate_id == teammate.id,
        EnrollmentInvitation.policy_version == workspace.policy_version))
    return TeammateView(teammate, state.enrollment_state(workspace, teammate, status))


def change_role(session: Session, workspace: Workspace, teammate: Teammate, role: str,
                actor: Teammate) -> None:
    """Make a teammate an admin or a member; the last admin stays one (409 `last_admin`).

    A new admin is held to 2FA at once, so an exemption they had ends (`by: promotion`)."""
    if role not in ROLES:
        raise InvalidInput("role is 'admin' or 'member'.", "invalid_role")
    if teammate.role == role:
        return
    if teammate.role == "admin":
        _keep_an_admin(session, workspace, teammate, "demote")
    teammate.role = role
    recorder.record(session, workspace.id, EventType.TEAMMATE_ROLE_CHANGED,
                    {"teammate_id": teammate.id, "actor_id": actor.id, "role": role},
                    teammate_id=teammate.id)
    if role == "admin" and teammate.exempt_until is not None:
        session.flush()
        exemptions.end(session, workspace, teammate, actor, promoted=True)


def remove(session: Session, workspace: Workspace, teammate: Teammate, actor: Teammate) -> None:
    """Remove a teammate: their sessions end, their pending invitations are skipped, and the
    row stays (status `removed`) for the audit trail. The last admin cannot be removed."""
    if teammate.role == "admin":
        _keep_an_admin(session, workspace, teammate, "remove")
    # The row lock orders concurrent removals (and 2FA changes) of this teammate: the kept
    # counts move once, from the state this transaction then sees.
    session.refresh(teammate, with_for_update=ROW_LOCK)
    if teammate.status == "removed":
        return  # a concurrent removal won
    teammate.status = "removed"
    teammate.exempt_until = teammate.exempt_reason = None
    team_counts.adjust(session, workspace.id, teammates=-1,
                       enrolled=-1 if teammate.two_factor_enabled else 0,
                       with_keys=-1 if teammate.webauthn_enabled_at is not None else 0)
    teammate.join_token_hash = teammate.join_expires_at = None
    sessions.end_all(session, teammate.id)
    session.execute(
        update(EnrollmentInvitation)
        .where(EnrollmentInvitation.teammate_id == teammate.id,
               EnrollmentInvitation.status == "pending")
        .values(status="skipped", lease_owner=None, lease_until=None)
        .execution_options(synchronize_session=False))
    recorder.record(session, workspace.id, EventType.TEAMMATE_REMOVED,
                    {"teammate_id": teammate.id, "actor_id": actor.id}, teammate_id=teammate.id)


LAST_ADMIN = {
    "demote": N_("Cannot demote the last admin: make another teammate an admin first."),
    "remove": N_("Cannot remove the last admin: make another teammate an admin first."),
}


def _keep_an_admin(session: Session, workspace: Workspace, leaving: Teammate, verb: str) -> None:
    """Another admin who can act must remain: while 2FA is required, only compliant admins
    count (a method the policy allows; one without it may only enroll)."""
    # The workspace row lock serialises concurrent demotions and removals: of two admins
    # demoting each other at once, one is refused.
    session.get(Workspace, workspace.id, with_for_update=ROW_LOCK)
    compliant = [compliant_sql(workspace.allowed_methods)] if workspace.require_two_factor else []
    others = session.scalar(select(func.count()).select_from(Teammate).where(
        Teammate.workspace_id == workspace.id, Teammate.role == "admin",
        Teammate.status == "active", Teammate.id != leaving.id, *compliant))
    if not others:
        raise Conflict(LAST_ADMIN[verb], "last_admin")


def find_by_email(session: Session, workspace: Workspace, email: str) -> Teammate:
    """The teammate (not removed) with this address, whatever its case; 404 otherwise."""
    teammate = session.scalar(select(Teammate).where(
        Teammate.workspace_id == workspace.id, matches(normalize_email(email)),
        Teammate.status != "removed"))
    if teammate is None:
        raise NotFound("No teammate {email} in this workspace.", "teammate_not_found",
                       email=email)
    return teammate


def add(session: Session, workspace: Workspace, email: str, name: str, role: str,
        actor_id: int | None = None, locale: str | None = None) -> Teammate:
    """A new teammate, invited by email; `locale` is the language of that email and of
    what they read afterwards (None: taken from their browser when they join)."""
    if role not in ROLES:
        raise InvalidInput("role is 'admin' or 'member'.", "invalid_role")
    email = new_address(email)
    exists = select(Teammate.id).where(
        Teammate.workspace_id == workspace.id, matches(email), Teammate.status != "removed")
    if session.scalar(exists) is not None:
        raise Conflict("{email} is already a teammate.", "teammate_exists", email=email)
    teammate = Teammate(
        workspace_id=workspace.id,
        email=email,
        name=name.strip() or email,
        role=role,
        status="invited",
        locale=check_locale(locale) if locale is not None else None,
    )
    try:
        # A concurrent add of the same address passes the check above too; the unique
        # index on lower(email) decides, inside a savepoint so that the loser can answer 409.
        with session.begin_nested():
            session.add(teammate)
    except IntegrityError:
        raise Conflict("{email} is already a teammate.", "teammate_exists", email=email) from None
    team_counts.adjust(session, workspace.id, teammates=1)
    issue_join_link(session, teammate)
    recorder.record(session, workspace.id, EventType.TEAMMATE_ADDED,
                    {"teammate_id": teammate.id, "actor_id": actor_id}, teammate_id=teammate.id)
    return teammate


def issue_join_link(session: Session, teammate: Teammate) -> None:
    """A new join token (the previous one stops working) and the email that carries it."""
    teammate.join_nonce = secrets.token_hex(16)
    teammate.join_sent_at = None  # until this link's email is out
    teammate.join_token_hash = hash_token(join_token(teammate))
    teammate.join_expires_at = utcnow() + timedelta(seconds=get_settings().join_token_ttl)
    session.flush()
    outbox.enqueue(session, Topic.SEND_JOIN_EMAIL, teammate_id=teammate.id)


def resend_invitation(session: Session, workspace: Workspace, teammate: Teammate) -> None:
    """An admin's resend: a teammate who has not joined gets a new join link (the old one
    stops working); one who has gets the enrollment invitation again."""
    if teammate.status == "invited":
        issue_join_link(session, teammate)
    else:
        fanout.resend(session, workspace, teammate)


def join_token(teammate: Teammate) -> str:
    """Recomputed by the email task, so the token itself is never stored."""
    return derived_token("join", teammate.id, teammate.join_nonce)


def accept(session: Session, token: str, password: str, name: str | None,
           browser_locale: str | None = None) -> sessions.SignIn:
    """Set the password of an invited teammate; a token serves once, and only until it expires.

    The password is hashed first (a check that fails on a weak one should not burn the
    link); then one conditional UPDATE claims the token, so of concurrent accepts exactly
    one gets a session.
    """
    token_hash = hash_token(token)
    teammate_id = session.scalar(select(Teammate.id).where(_joinable(token_hash)))
    if teammate_id is None:
        raise _unusable_link()
    password_hash = hash_password(password)
    # The token's hash stays (no longer joinable once active), so the link, opened again,
    # can say it was used rather than that nobody knows it.
    values: dict[str, object] = {"password_hash": password_hash, "status": "active",
                                 "join_expires_at": None}
    if name and name.strip():
        values["name"] = name.strip()
    claimed = session.execute(
        update(Teammate).where(Teammate.id == teammate_id, _joinable(token_hash))
        .values(**values).execution_options(synchronize_session=False))
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise _unusable_link()
    teammate = session.get(Teammate, teammate_id, populate_existing=True)
    assert teammate is not None
    preferences.first_locale(session, teammate, browser_locale)
    workspace = session.get(Workspace, teammate.workspace_id)
    assert workspace is not None
    recorder.record(session, workspace.id, EventType.INVITATION_ACCEPTED,
                    {"teammate_id": teammate.id}, teammate_id=teammate.id)
    if workspace.require_two_factor:
        fanout.join_was_invitation(session, workspace, teammate)
    return sessions.after_first_factor(session, teammate, workspace, origin="password")


JoinState = Literal["usable", "used", "expired", "unknown"]


@dataclass(frozen=True)
class JoinLink:
    """What a join link is now, and whose it is (the join page says it before its form)."""

    state: JoinState
    teammate: Teammate | None = None
    workspace: Workspace | None = None


def join_link(session: Session, token: str) -> JoinLink:
    """A link replaced by a newer one is `unknown`: only the newest link's hash is kept."""
    teammate = session.scalar(select(Teammate).where(
        Teammate.join_token_hash == hash_token(token))) if 0 < len(token) <= 200 else None
    if teammate is None or teammate.status == "removed":
        return JoinLink("unknown")
    workspace = session.get(Workspace, teammate.workspace_id)
    if teammate.status != "invited":
        return JoinLink("used", teammate, workspace)
    expires = teammate.join_expires_at
    if expires is None or expires <= utcnow():
        return JoinLink("expired", teammate, workspace)
    return JoinLink("usable", teammate, workspace)


def _joinable(token_hash: str) -> ColumnElement[bool]:
    return and_(Teammate.join_token_hash == token_hash, Teammate.status == "invited",
                Teammate.join_expires_at > utcnow())


def _unusable_link() -> InvalidCredentials:
    # The contract gives this endpoint /v1/login's answers, whose only 401 code is this.
    return InvalidCredentials("This invitation link is unknown, expired or was used already; "
                              "sign in, or ask an admin for a new invitation.")


def methods_of(teammate: Teammate) -> list[str]:
    """A teammate's second factors by kind, as lists and the CSV show them."""
    return [m for m, on in (("totp", teammate.totp_enabled_at), ("webauthn", teammate.webauthn_enabled_at))
            if on is not None]


@dataclass(frozen=True)
class Filters:
    """Who to list: by 2FA (`enabled`/`disabled`), enrollment state, and `q` on name or email."""

    two_factor: str | None = None
    enrollment: str | None = None
    q: str | None = None
    would_be_held: bool = False  # no 2FA and no live exemption (the policy preview)
    held_under: str | None = None  # would_be_held under these allowed methods (a preview)


def page(
    session: Session, workspace: Workspace, limit: int, after_id: int | None,
    filters: Filters | None = None, before_id: int | None = None,
) -> tuple[list[TeammateView], int | None]:
    """Teammates (not removed) in id order with their enrollment state; the cursor is the
    last id. With `before_id`, the page that ends just before it (a list's previous page)."""
    query = (
        select(Teammate, EnrollmentInvitation.status)
        .outerjoin(EnrollmentInvitation, state.current_invitation(workspace))
        .where(*_listed(workspace, filters))
    )
    if before_id is not None:
        earlier = session.execute(query.where(Teammate.id < before_id)
                                  .order_by(Teammate.id.desc()).limit(limit)).all()
        return _views(workspace, earlier[::-1]), before_id
    if after_id is not None:
        query = query.where(Teammate.id > after_id)
    rows = session.execute(query.order_by(Teammate.id).limit(limit + 1)).all()
    views = _views(workspace, rows[:limit])
    next_id = views[-1].teammate.id if len(rows) > limit else None
    return views, next_id


def count(session: Session, workspace: Workspace, filters: Filters | None = None,
          below_id: int | None = None) -> int:
    """How many teammates a list with these filters holds (those before `below_id` only)."""
    query = (select(func.count()).select_from(Teammate)
             .outerjoin(EnrollmentInvitation, state.current_invitation(workspace))
             .where(*_listed(workspace, filters)))
    if below_id is not None:
        query = query.where(Teammate.id < below_id)
    return session.scalar(query) or 0


def _listed(workspace: Workspace, filters: Filters | None) -> list[ColumnElement[bool]]:
    return [Teammate.workspace_id == workspace.id, Teammate.status != "removed",
            *_conditions(workspace, filters or Filters())]


def _views(workspace: Workspace, rows: Sequence[Row[Teammate, str]]) -> list[TeammateView]:
    now = clock.now()
    return [TeammateView(t, state.enrollment_state(workspace, t, status, now)) for t, status in rows]


def _conditions(workspace: Workspace, filters: Filters) -> list[ColumnElement[bool]]:
    enabled = two_factor_enabled_sql()
    conditions: list[ColumnElement[bool]] = []
    if filters.two_factor == "app_only":  # an app and no security key
        conditions.append(and_(Teammate.totp_enabled_at.is_not(None),
                               Teammate.webauthn_enabled_at.is_(None)))
    elif filters.two_factor is not None:
        conditions.append(enabled if filters.two_factor == "enabled" else ~enabled)
    if filters.would_be_held:
        conditions.append(state.would_be_held(
            allowed_methods=filters.held_under or workspace.allowed_methods))
    if filters.enrollment is not None:
        conditions.append(state.is_in_state(workspace, filters.enrollment))
    if filters.q:
        needle = filters.q.strip().lower()
        conditions.append(or_(func.lower(Teammate.email).contains(needle, autoescape=True),
                              func.lower(Teammate.name).contains(needle, autoescape=True)))
    return conditions


def matching(session: Session, workspace: Workspace, text: str, limit: int = 50) -> list[int]:
    """Ids of the teammates whose email or name contains `text`, removed ones included (the
    audit log keeps what they did)."""
    literal = text.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{literal}%"
    return list(session.scalars(
        select(Teammate.id).where(Teammate.workspace_id == workspace.id,
                                  or_(func.lower(Teammate.email).like(pattern, escape="\\"),
                                      func.lower(Teammate.name).like(pattern, escape="\\")))
        .order_by(Teammate.id).limit(limit)))


def by_ids(session: Session, workspace: Workspace, ids: set[int]) -> dict[int, Teammate]:
    """The workspace's teammates with these ids, removed ones included."""
    if not ids:
        return {}
    rows = session.scalars(select(Teammate).where(Teammate.workspace_id == workspace.id,
                                                  Teammate.id.in_(sorted(ids))))
    return {t.id: t for t in rows}
