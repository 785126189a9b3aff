"""Webhook endpoints of a workspace and their delivery log (admins only)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from services.api.deps import DB, AdminWorkspace, FullSession
from services.api.paging import Cursor, Page
from services.api.recent_factor import SENSITIVE
from services.api.schemas import Body, WebhookEventType, WebhookIn, WebhookUrl
from services.api.types import Id, Timestamp
from services.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from services.webhooks import manage
from services.webhooks import service as webhooks

DAY = 86400


class WebhookPatchIn(Body):
    """Fields left out stay as they are."""

    url: WebhookUrl | None = None
    event_types: Annotated[list[WebhookEventType], Field(min_length=1, max_length=32)] | None = None
    enabled: bool | None = None


class RotateSecretIn(Body):
    # How long the old secret keeps signing beside the new one (default a day, at most a week).
    overlap_seconds: Annotated[int, Field(ge=0, le=7 * DAY)] = DAY


class WebhookOut(BaseModel):
    id: int
    url: str
    event_types: list[str] = Field(description='Event types delivered; `["*"]` is all of them.')
    enabled: bool
    disabled_reason: str | None
    created_at: Timestamp

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> WebhookOut:
        return cls(id=endpoint.id, url=endpoint.url, event_types=endpoint.event_types,
                   enabled=endpoint.enabled, disabled_reason=endpoint.disabled_reason,
                   created_at=endpoint.created_at)


class NewWebhookOut(WebhookOut):
    secret: str = Field(description="The `whsec_…` signing secret, in this answer only.")


class RotatedSecretOut(BaseModel):
    id: int
    secret: str = Field(description="The new `whsec_…` signing secret, in this answer only.")
    previous_secret_expires_at: Timestamp | None = Field(
        description="Until then deliveries carry both signatures; null without an overlap.")


class DeliveryQueuedOut(BaseModel):
    id: int
    status: str

    @classmethod
    def of(cls, delivery: WebhookDelivery) -> DeliveryQueuedOut:
        return cls(id=delivery.id, status=delivery.status)


class AttemptOut(BaseModel):
    attempted_at: Timestamp
    response_status: int | None
    duration_ms: int | None
    error: str | None
    response_body: str | None

    @classmethod
    def of(cls, attempt: WebhookAttempt) -> AttemptOut:
        return cls(attempted_at=attempt.attempted_at, response_status=attempt.response_status,
                   duration_ms=attempt.duration_ms, error=attempt.error,
                   response_body=attempt.response_body)


class DeliveryOut(BaseModel):
    id: int
    event_id: str
    event_type: str
    status: str = Field(description="`pending`, `succeeded`, `failed` or `skipped`.")
    attempt_count: int = Field(description="The attempts listed (a redelivery adds to them).")
    next_attempt_at: Timestamp | None = Field(description="While `pending` only.")
    created_at: Timestamp
    finished_at: Timestamp | None
    attempts: list[AttemptOut] = Field(description="Oldest first.")

    @classmethod
    def of(cls, record: webhooks.DeliveryRecord) -> DeliveryOut:
        d = record.delivery
        return cls(id=d.id, event_id=record.event.id, event_type=record.event.type,
                   status=d.status, attempt_count=len(record.attempts),
                   next_attempt_at=d.next_attempt_at if d.status == "pending" else None,
                   created_at=d.created_at, finished_at=d.finished_at,
                   attempts=[AttemptOut.of(a) for a in record.attempts])


router = APIRouter(prefix="/v1/workspaces/{slug}/webhooks", tags=["webhooks"])


@router.post("", status_code=201, dependencies=[SENSITIVE])
def create_webhook(body: WebhookIn, workspace: AdminWorkspace, caller: FullSession,
                   session: DB) -> NewWebhookOut:
    """Subscribe a URL; the `whsec_` secret is in this answer only."""
    endpoint, secret = webhooks.create(session, workspace, body.url, body.event_types,
                                       actor_id=caller.teammate.id)
    return NewWebhookOut(**WebhookOut.of(endpoint).model_dump(), secret=secret)


@router.get("")
def list_webhooks(workspace: AdminWorkspace, session: DB) -> Page[WebhookOut]:
    """Every endpoint of the workspace, oldest first (one page)."""
    endpoints = webhooks.list_endpoints(session, workspace)
    return Page[WebhookOut].of([WebhookOut.of(e) for e in endpoints])


@router.delete("/{endpoint_id}", status_code=204)
def delete_webhook(endpoint_id: Id, workspace: AdminWorkspace, caller: FullSession,
                   session: DB) -> Response:
    webhooks.delete(session, workspace, endpoint_id, actor_id=caller.teammate.id)
    return Response(status_code=204)


@router.patch("/{endpoint_id}")
def update_webhook(
    endpoint_id: Id, body: WebhookPatchIn, workspace: AdminWorkspace, caller: FullSession,
    session: DB,
) -> WebhookOut:
    """Change `url`, `event_types` or `enabled`. Enabling again resumes from now: deliveries
    left pending while disabled end as `skipped`; the delivery history stays."""
    changes = manage.Changes(url=body.url, event_types=body.event_types, enabled=body.enabled)
    return WebhookOut.of(manage.update_endpoint(session, workspace, endpoint_id, changes,
                                                actor_id=caller.teammate.id))


@router.post("/{endpoint_id}/rotate-secret")
def rotate_secret(
    endpoint_id: Id, workspace: AdminWorkspace, caller: FullSession, session: DB,
    body: RotateSecretIn | None = None,
) -> RotatedSecretOut:
    """A new `whsec_` secret (in this answer only). Until `previous_secret_expires_at` each
    delivery carries both signatures in its `webhook-signature` header."""
    overlap = timedelta(seconds=(body or RotateSecretIn()).overlap_seconds)
    secret, until = manage.rotate_secret(session, workspace, endpoint_id, overlap,
                                         actor_id=caller.teammate.id)
    return RotatedSecretOut(id=endpoint_id, secret=secret, previous_secret_expires_at=until)


@router.post("/{endpoint_id}/test", status_code=202)
def send_test_event(endpoint_id: Id, workspace: AdminWorkspace, session: DB) -> DeliveryQueuedOut:
    """A `twofa.test` event to this endpoint only, through the ordinary delivery path."""
    return DeliveryQueuedOut.of(manage.send_test(session, workspace, endpoint_id))


@router.get("/{endpoint_id}/deliveries")
def list_deliveries(
    endpoint_id: Id,
    workspace: AdminWorkspace,
    session: DB,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Cursor = None,
) -> Page[DeliveryOut]:
    """Newest first, each with its attempts; pass `next_cursor` back as `cursor`."""
    records, next_id = webhooks.deliveries(session, workspace, endpoint_id, limit, cursor)
    return Page[DeliveryOut].of([DeliveryOut.of(r) for r in records], next_id)


@router.post("/{endpoint_id}/deliveries/{delivery_id}/redeliver", status_code=202)
def redeliver(
    endpoint_id: Id, delivery_id: Id, workspace: AdminWorkspace, session: DB
) -> DeliveryQueuedOut:
    return DeliveryQueuedOut.of(webhooks.redeliver(session, workspace, endpoint_id, delivery_id))
