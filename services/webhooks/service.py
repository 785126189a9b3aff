"""Webhook endpoints of a workspace: subscribe, list, delete; the delivery log; redeliver."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services import crypto, outbox
from services.errors import Conflict, InvalidInput, NotFound
from services.events import recorder
from services.events.catalog import DELIVERABLE, EventType
from services.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint, Workspace, utcnow
from services.topics import Topic
from services.webhooks import signing, ssrf

WILDCARD = "*"


def validate_event_types(event_types: Sequence[str]) -> list[str]:
    """Known catalog types (deduplicated, in the given order) or exactly ["*"]."""
    if not event_types:
        raise InvalidInput('Name at least one event type, or ["*"] for all.', "invalid_event_types")
    if WILDCARD in event_types:
        if len(set(event_types)) != 1:
            raise InvalidInput('"*" stands alone: it already means every type.', "invalid_event_types")
        return [WILDCARD]
    unknown = sorted(set(event_types) - DELIVERABLE)
    if unknown:
        raise InvalidInput(
            "Unknown or audit-only event types: {types}; see docs/events.md.",
            "invalid_event_types", types=", ".join(unknown),
        )
    return list(dict.fromkeys(event_types))


def create(
    session: Session, workspace: Workspace, url: str, event_types: Sequence[str],
    actor_id: int | None = None,
) -> tuple[WebhookEndpoint, str]:
    """Subscribe `url`; returns the endpoint and its secret (shown this once)."""
    parts = ssrf.parse_url(url)
    types = validate_event_types(event_types)
    secret = signing.new_secret()
    endpoint = WebhookEndpoint(
        workspace_id=workspace.id, url=parts.geturl(), event_types=types,
        secret_enc=crypto.encrypt(secret), enabled=True, consecutive_failures=0,
    )
    session.add(endpoint)
    session.flush()
    recorder.record(session, workspace.id, EventType.WEBHOOK_CREATED,
                    {"webhook_id": endpoint.id, "url": endpoint.url, "event_types": types,
                     "actor_id": actor_id})
    return endpoint, secret


def get(session: Session, workspace: Workspace, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.workspace_id != workspace.id or endpoint.deleted_at is not None:
        raise NotFound("No webhook endpoint {id}.", "webhook_not_found", id=endpoint_id)
    return endpoint


def list_endpoints(session: Session, workspace: Workspace) -> Sequence[WebhookEndpoint]:
    return session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.workspace_id == workspace.id, WebhookEndpoint.deleted_at.is_(None))
        .order_by(WebhookEndpoint.id)
    ).all()


def delete(session: Session, workspace: Workspace, endpoint_id: int,
           actor_id: int | None = None) -> None:
    """Soft delete: the delivery log stays readable in the database; nothing more is sent."""
    endpoint = get(session, workspace, endpoint_id)
    endpoint.deleted_at = utcnow()
    endpoint.enabled = False
    endpoint.disabled_reason = "deleted"
    recorder.record(session, workspace.id, EventType.WEBHOOK_DELETED,
                    {"webhook_id": endpoint.id, "actor_id": actor_id})


@dataclass(frozen=True)
class DeliveryRecord:
    """A delivery with its event and its attempts (oldest first)."""

    delivery: WebhookDelivery
    event: Event
    attempts: list[WebhookAttempt]


def deliveries(
    session: Session, workspace: Workspace, endpoint_id: int, limit: int, cursor: int | None
) -> tuple[list[DeliveryRecord], int | None]:
    """The endpoint's deliveries, newest first, each with its attempts (oldest first)."""
    endpoint = get(session, workspace, endpoint_id)
    query = (
        select(WebhookDelivery, Event)
        .join(Event, Event.seq == WebhookDelivery.event_seq)
        .where(WebhookDelivery.endpoint_id == endpoint.id)
        .order_by(WebhookDelivery.id.desc())
    )
    if cursor is not None:
        query = query.where(WebhookDelivery.id < cursor)
    rows = session.execute(query.limit(limit + 1)).all()
    page = rows[:limit]
    attempts: dict[int, list[WebhookAttempt]] = {}
    if page:
        for attempt in session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_([d.id for d, _ in page]))
            .order_by(WebhookAttempt.id)
        ):
            attempts.setdefault(attempt.delivery_id, []).append(attempt)
    items = [DeliveryRecord(d, e, attempts.get(d.id, [])) for d, e in page]
    return items, page[-1][0].id if len(rows) > limit else None


def redeliver(session: Session, workspace: Workspace, endpoint_id: int, delivery_id: int) -> WebhookDelivery:
    """Send a delivery again, whatever its outcome so far (the receiver dedupes on webhook-id)."""
    endpoint = get(session, workspace, endpoint_id)
    if not endpoint.enabled:
        raise Conflict(
            "The endpoint is disabled ({reason}); enable it again first.",
            "webhook_disabled", reason=endpoint.disabled_reason,
        )
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.endpoint_id != endpoint.id:
        raise NotFound("No delivery {id} for this endpoint.", "delivery_not_found", id=delivery_id)
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery.id)
        .values(status="pending", attempts=0, next_attempt_at=utcnow(), finished_at=None)
    )
    outbox.enqueue(session, Topic.DELIVER_WEBHOOKS, endpoint_id=endpoint.id)
    session.refresh(delivery)
    return delivery

