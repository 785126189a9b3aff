"""Transactional outbox: work recorded in the caller's transaction, published by the relay.

A message's topic is the name of the task that will carry it out and its payload the task's
keyword arguments; the service layer names work, the workers layer does it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.models import OutboxMessage, utcnow

# Payload keys under which the relay merges many messages of one topic into one task.
MERGEABLE: dict[str, str] = {"events.dispatch": "event_seqs"}


def enqueue(session: Session, topic: str, **payload: Any) -> None:
    session.add(OutboxMessage(topic=topic, payload=payload))


def claim_unpublished(session: Session, limit: int) -> Sequence[OutboxMessage]:
    """Oldest unpublished messages, locked so that a second relay skips them."""
    query = (
        select(OutboxMessage)
        .where(OutboxMessage.published_at.is_(None))
        .order_by(OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return session.scalars(query).all()


def mark_published(session: Session, ids: Sequence[int], at: datetime | None = None) -> None:
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids))
        .values(published_at=at or utcnow())
    )


def merge(messages: Sequence[OutboxMessage], max_items: int = 100) -> list[tuple[str, dict[str, Any]]]:
    """Turn messages into (task name, kwargs) pairs, merging mergeable topics into lists."""
    tasks: list[tuple[str, dict[str, Any]]] = []
    pending: dict[str, list[Any]] = {}
    for message in messages:
        key = MERGEABLE.get(message.topic)
        if key is None:
            tasks.append((message.topic, dict(message.payload)))
            continue
        items = pending.setdefault(message.topic, [])
        items.extend(message.payload[key])
        if len(items) >= max_items:
            tasks.append((message.topic, {key: items}))
            pending[message.topic] = []
    tasks.extend((topic, {MERGEABLE[topic]: items}) for topic, items in pending.items() if items)
    return tasks
