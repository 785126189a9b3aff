"""Webhook deliveries for an event: one row per subscribed endpoint, then delivery work.

Called by the event dispatcher in its transaction; dispatch is at least once, so rows are
inserted with ON CONFLICT DO NOTHING on (endpoint_id, event_seq) and a repeat adds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from services import outbox
from services.models import Event, WebhookDelivery, WebhookEndpoint, utcnow
from services.webhooks.service import DELIVER, WILDCARD

# Per-transaction memo: a dispatch of 100 events queries each workspace's endpoints once and
# enqueues one delivery task per endpoint, not one per event.
_MEMO = "webhooks.fanout"


@dataclass
class _Memo:
    transaction: object
    endpoints: dict[int, Sequence[WebhookEndpoint]] = field(default_factory=dict)
    enqueued: set[int] = field(default_factory=set)


def _memo(session: Session) -> _Memo:
    transaction = session.get_transaction()
    memo = session.info.get(_MEMO)
    if memo is None or memo.transaction is not transaction:
        memo = session.info[_MEMO] = _Memo(transaction)
    return memo


def subscribed(endpoint: WebhookEndpoint, event_type: str) -> bool:
    return WILDCARD in endpoint.event_types or event_type in endpoint.event_types


def create_deliveries(session: Session, event: Event) -> None:
    """One pending delivery per enabled, subscribed endpoint of the event's workspace."""
    endpoint_ids = [e.id for e in _endpoints(session, event.workspace_id) if subscribed(e, event.type)]
    if not endpoint_ids:
        return
    now = utcnow()
    rows = [
        {"endpoint_id": eid, "event_seq": event.seq, "status": "pending", "attempts": 0,
         "next_attempt_at": now, "created_at": now}
        for eid in endpoint_ids
    ]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(WebhookDelivery).values(rows).on_conflict_do_nothing(
            index_elements=["endpoint_id", "event_seq"]
        )
    )
    enqueued = _memo(session).enqueued
    for eid in endpoint_ids:
        if eid not in enqueued:
            enqueued.add(eid)
            outbox.enqueue(session, DELIVER, endpoint_id=eid)


def _endpoints(session: Session, workspace_id: int) -> Sequence[WebhookEndpoint]:
    memo = _memo(session).endpoints
    if workspace_id not in memo:
        memo[workspace_id] = session.scalars(
            select(WebhookEndpoint).where(
                WebhookEndpoint.workspace_id == workspace_id,
                WebhookEndpoint.enabled.is_(True),
                WebhookEndpoint.deleted_at.is_(None),
            )
        ).all()
    return memo[workspace_id]
