"""Webhook deliveries for a batch of events: one row per (subscribed endpoint, event), then
one delivery task per endpoint that got any.

Called by the event dispatcher in its transaction, once per batch; dispatch is at least
once, so rows are inserted with ON CONFLICT DO NOTHING on (endpoint_id, event_seq) and a
repeat adds nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from services import outbox
from services.db import dialect_insert
from services.models import Event, WebhookDelivery, WebhookEndpoint, utcnow
from services.topics import Topic
from services.webhooks.service import WILDCARD

# Rows per INSERT statement (7 bound parameters each), well inside the parameter limits of
# SQLite (32766) and PostgreSQL (65535); a dispatch batch normally fits in one statement.
INSERT_ROWS = 1000


def subscribed(endpoint: WebhookEndpoint, event_type: str) -> bool:
    return WILDCARD in endpoint.event_types or event_type in endpoint.event_types


def create_deliveries(session: Session, events: Sequence[Event]) -> None:
    """One pending delivery per enabled endpoint subscribed to each event, one task per endpoint."""
    if not events:
        return
    endpoints = _endpoints_by_workspace(session, {event.workspace_id for event in events})
    now = utcnow()
    rows = []
    endpoint_ids: dict[int, None] = {}  # those that got a delivery, in first-seen order
    for event in events:
        for endpoint in endpoints.get(event.workspace_id, ()):
            if subscribed(endpoint, event.type):
                rows.append({"endpoint_id": endpoint.id, "event_seq": event.seq, "status": "pending",
                             "attempts": 0, "next_attempt_at": now, "created_at": now,
                             # Each attempt's span joins its event's trace.
                             "trace_context": event.trace_context})
                endpoint_ids[endpoint.id] = None
    for start in range(0, len(rows), INSERT_ROWS):
        session.execute(
            dialect_insert(session, WebhookDelivery)
            .values(rows[start : start + INSERT_ROWS])
            .on_conflict_do_nothing(index_elements=["endpoint_id", "event_seq"])
        )
    for endpoint_id in endpoint_ids:
        outbox.enqueue(session, Topic.DELIVER_WEBHOOKS, endpoint_id=endpoint_id)


def _endpoints_by_workspace(
    session: Session, workspace_ids: set[int]
) -> dict[int, list[WebhookEndpoint]]:
    """The enabled endpoints of each workspace (one query for all of them)."""
    found: dict[int, list[WebhookEndpoint]] = defaultdict(list)
    for endpoint in session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.workspace_id.in_(sorted(workspace_ids)), WebhookEndpoint.enabled.is_(True))
        .order_by(WebhookEndpoint.id)
    ):
        found[endpoint.workspace_id].append(endpoint)
    return found
