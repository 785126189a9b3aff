"""Webhook endpoints of a workspace and their delivery log (admins only)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import Field

from services.api.deps import DB, AdminWorkspace, FullSession
from services.api.schemas import MAX_ID, Body, WebhookEventType, WebhookIn, WebhookUrl
from services.webhooks import manage
from services.webhooks import service as webhooks

# Bounded so that an id past BIGINT is a 422, not a database error.
Id = Annotated[int, Path(ge=1, le=MAX_ID)]

DAY = 86400


class WebhookPatchIn(Body):
    """Fields left out stay as they are."""

    url: WebhookUrl | None = None
    event_types: Annotated[list[WebhookEventType], Field(min_length=1, max_length=32)] | None = None
    enabled: bool | None = None


class RotateSecretIn(Body):
    # How long the old secret keeps signing beside the new one (default a day, at most a week).
    overlap_seconds: Annotated[int, Field(ge=0, le=7 * DAY)] = DAY


router = APIRouter(prefix="/v1/workspaces/{slug}/webhooks", tags=["webhooks"])


@router.post("", status_code=201)
def create_webhook(body: WebhookIn, workspace: AdminWorkspace, caller: FullSession,
                   session: DB) -> dict[str, object]:
    """Subscribe a URL; the `whsec_` secret is in this answer only."""
    endpoint, secret = webhooks.create(session, workspace, body.url, body.event_types,
                                       actor_id=caller.teammate.id)
    return {**webhooks.endpoint_dict(endpoint), "secret": secret}


@router.get("")
def list_webhooks(workspace: AdminWorkspace, session: DB) -> dict[str, object]:
    return {"items": [webhooks.endpoint_dict(e) for e in webhooks.list_endpoints(session, workspace)]}


@router.delete("/{endpoint_id}", status_code=204)
def delete_webhook(endpoint_id: Id, workspace: AdminWorkspace, caller: FullSession,
                   session: DB) -> Response:
    webhooks.delete(session, workspace, endpoint_id, actor_id=caller.teammate.id)
    return Response(status_code=204)


@router.patch("/{endpoint_id}")
def update_webhook(
    endpoint_id: Id, body: WebhookPatchIn, workspace: AdminWorkspace, caller: FullSession,
    session: DB,
) -> dict[str, object]:
    """Change `url`, `event_types` or `enabled`. Enabling again resumes from now: deliveries
    left pending while disabled end as `skipped`; the delivery history stays."""
    changes = manage.Changes(url=body.url, event_types=body.event_types, enabled=body.enabled)
    return webhooks.endpoint_dict(manage.update_endpoint(session, workspace, endpoint_id, changes,
                                                         actor_id=caller.teammate.id))


@router.post("/{endpoint_id}/rotate-secret")
def rotate_secret(
    endpoint_id: Id, workspace: AdminWorkspace, caller: FullSession, session: DB,
    body: RotateSecretIn | None = None,
) -> dict[str, object]:
    """A new `whsec_` secret (in this answer only). Until `previous_secret_expires_at` each
    delivery carries both signatures in its `webhook-signature` header."""
    overlap = timedelta(seconds=(body or RotateSecretIn()).overlap_seconds)
    secret, until = manage.rotate_secret(session, workspace, endpoint_id, overlap,
                                         actor_id=caller.teammate.id)
    return {"id": endpoint_id, "secret": secret,
            "previous_secret_expires_at": webhooks.iso(until)}


@router.post("/{endpoint_id}/test", status_code=202)
def send_test_event(endpoint_id: Id, workspace: AdminWorkspace, session: DB) -> dict[str, object]:
    """A `twofa.test` event to this endpoint only, through the ordinary delivery path."""
    delivery = manage.send_test(session, workspace, endpoint_id)
    return {"id": delivery.id, "status": delivery.status}


@router.get("/{endpoint_id}/deliveries")
def list_deliveries(
    endpoint_id: Id,
    workspace: AdminWorkspace,
    session: DB,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
) -> dict[str, object]:
    """Newest first, each with its attempts; pass `next_cursor` back as `cursor`."""
    items, next_id = webhooks.deliveries(session, workspace, endpoint_id, limit, cursor)
    return {"items": items, "next_cursor": str(next_id) if next_id is not None else None}


@router.post("/{endpoint_id}/deliveries/{delivery_id}/redeliver", status_code=202)
def redeliver(
    endpoint_id: Id, delivery_id: Id, workspace: AdminWorkspace, session: DB
) -> dict[str, object]:
    delivery = webhooks.redeliver(session, workspace, endpoint_id, delivery_id)
    return {"id": delivery.id, "status": delivery.status}
