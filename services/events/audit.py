"""Reading the audit log: a workspace's events in order, filtered by type, paged by seq."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.errors import InvalidInput
from services.events.catalog import ALL_TYPES, TEST_TYPE
from services.models import Event, Workspace


def page(
    session: Session, workspace: Workspace, type_: str | None, after: int | None, limit: int
) -> tuple[list[Event], int | None]:
    if type_ and type_ not in ALL_TYPES | {TEST_TYPE}:
        # A typo must not answer an empty log as if nothing had happened.
        raise InvalidInput(f"type: unknown event type {type_!r} (docs/events.md lists them).")
    query = select(Event).where(Event.workspace_id == workspace.id).order_by(Event.seq)
    if type_:
        query = query.where(Event.type == type_)
    if after is not None:
        query = query.where(Event.seq > after)
    rows = session.scalars(query.limit(limit + 1)).all()
    return list(rows[:limit]), rows[limit - 1].seq if len(rows) > limit else None


def newest_first(
    session: Session, workspace: Workspace, type_: str | None, before: int | None, limit: int
) -> tuple[list[Event], int | None]:
    """The same log read backwards (the console shows the latest first); the cursor is the
    last seq shown, pass it back as `before`."""
    query = select(Event).where(Event.workspace_id == workspace.id).order_by(Event.seq.desc())
    if type_:
        query = query.where(Event.type == type_)
    if before is not None:
        query = query.where(Event.seq < before)
    rows = session.scalars(query.limit(limit + 1)).all()
    return list(rows[:limit]), rows[limit - 1].seq if len(rows) > limit else None
