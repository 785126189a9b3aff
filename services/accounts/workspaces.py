"""Workspaces: creation, lookup and bulk seeding of demo teammates."""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from services import team_counts
from services.accounts.email_address import normalize_email
from services.accounts.passwords import hash_password
from services.errors import Conflict, InvalidInput, NotFound
from services.models import Teammate, Workspace, utcnow

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def get_by_slug(session: Session, slug: str) -> Workspace:
    workspace = session.scalar(select(Workspace).where(Workspace.slug == slug))
    if workspace is None:
        raise NotFound("No workspace {slug}.", "workspace_not_found", slug=repr(slug))
    return workspace


def create(
    session: Session, slug: str, name: str, admin_email: str, admin_password: str
) -> tuple[Workspace, Teammate]:
    if not SLUG.match(slug):
        raise InvalidInput("A slug is lowercase letters, digits and dashes.", "invalid_slug")
    if session.scalar(select(Workspace.id).where(Workspace.slug == slug)) is not None:
        raise Conflict("Workspace {slug} exists already.", "workspace_exists", slug=repr(slug))
    workspace = Workspace(slug=slug, name=name.strip() or slug)
    session.add(workspace)
    session.flush()
    team_counts.start(session, workspace.id)
    admin = Teammate(
        workspace_id=workspace.id,
        email=normalize_email(admin_email),
        name="Admin",
        role="admin",
        status="active",
        password_hash=hash_password(admin_password),
    )
    session.add(admin)
    session.flush()
    team_counts.adjust(session, workspace.id, teammates=1)
    return workspace, admin


def seed(
    session: Session,
    workspace: Workspace,
    count: int,
    password: str,
    progress: Callable[[int], None] | None = None,
    chunk: int = 1000,
) -> int:
    """Add `count` active members member-00001@SLUG.test …, continuing any earlier seed.

    One argon2 hash serves every seeded member: hashing 10,000 passwords would take minutes,
    and these are demo accounts that share a password anyway.
    """
    password_hash = hash_password(password)
    start = session.scalar(
        select(func.count()).select_from(Teammate).where(
            Teammate.workspace_id == workspace.id, Teammate.email.like("member-%")
        )
    ) or 0
    now = utcnow()
    for offset in range(0, count, chunk):
        rows = [
            {
                "workspace_id": workspace.id,
                "email": f"member-{start + i + 1:05d}@{workspace.slug}.test",
                "name": f"Member {start + i + 1}",
                "role": "member",
                "status": "active",
                "password_hash": password_hash,
                "created_at": now,
                "failed_attempts": 0,
                "lockouts": 0,
            }
            for i in range(offset, min(offset + chunk, count))
        ]
        session.execute(insert(Teammate), rows)
        team_counts.adjust(session, workspace.id, teammates=len(rows))
        if progress:
            progress(len(rows))
    return count
