"""Reading the audit log: a workspace's events in order, filtered by type, paged by seq."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from services.errors import InvalidInput
from services.events.catalog import ALL_TYPES, TEST_TYPE
from services.models import Event, Workspace


def page(
    session: Session, workspace: Workspace, type_: str | None, after: int | None, limit: int
) -> tuple[list[Event], int | None]:
    if type_ and type_ not in ALL_TYPES | {TEST_TYPE}:
        # A typo must not answer an empty log as if nothing had happened.
        raise InvalidInput("type: unknown event type {type} (docs/events.md lists them).",
                           type=repr(type_))
    query = select(Event).where(Event.workspace_id == workspace.id).order_by(Event.seq)
    if type_:
        query = query.where(Event.type == type_)
    if after is not None:
        query = query.where(Event.seq > after)
    rows = session.scalars(query.limit(limit + 1)).all()
    return list(rows[:limit]), rows[limit - 1].seq if len(rows) > limit else None


@dataclass(frozen=True)
class Filter:
    """What an admin narrows the log to: a type, events about or by some teammates, a time
    range [since, until)."""

    type: str | None = None
    teammate_ids: tuple[int, ...] | None = None  # None: anyone; empty: nobody matched
    since: datetime | None = None
    until: datetime | None = None


def newest_first(
    session: Session, workspace: Workspace, chosen: Filter, before: int | None, limit: int
) -> tuple[list[Event], int | None]:
    """The same log read backwards (the console shows the latest first); the cursor is the
    last seq shown, pass it back as `before`."""
    query = _filtered(workspace, chosen).order_by(Event.seq.desc())
    if before is not None:
        query = query.where(Event.seq < before)
    rows = session.scalars(query.limit(limit + 1)).all()
    return list(rows[:limit]), rows[limit - 1].seq if len(rows) > limit else None


def _filtered(workspace: Workspace, chosen: Filter) -> Select[Event]:
    query = select(Event).where(Event.workspace_id == workspace.id)
    if chosen.type:
        query = query.where(Event.type == chosen.type)
    if chosen.since is not None:
        query = query.where(Event.time >= chosen.since)
    if chosen.until is not None:
        query = query.where(Event.time < chosen.until)
    if chosen.teammate_ids is not None:
        ids = list(chosen.teammate_ids)
        query = query.where(or_(  # about them (the subject) or done by them (the actor)
            Event.subject.in_([f"teammates/{i}" for i in ids]),
            Event.data["actor_id"].as_integer().in_(ids),
            Event.data["changed_by"].as_integer().in_(ids)))
    return query
