"""Webhook endpoints of a workspace and their delivery log (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from services.api.deps import DB, AdminWorkspace
from services.api.schemas import MAX_ID, WebhookIn
from services.webhooks import service as webhooks

# Bounded so that an id past BIGINT is a 422, not a database error.
Id = Annotated[int, Path(ge=1, le=MAX_ID)]

router = APIRouter(prefix="/v1/workspaces/{slug}/webhooks", tags=["webhooks"])


@router.post("", status_code=201)
def create_webhook(body: WebhookIn, workspace: AdminWorkspace, session: DB) -> dict[str, object]:
    """Subscribe a URL; the `whsec_` secret is in this answer only."""
    endpoint, secret = webhooks.create(session, workspace, body.url, body.event_types)
    return {**webhooks.endpoint_dict(endpoint), "secret": secret}


@router.get("")
def list_webhooks(workspace: AdminWorkspace, session: DB) -> dict[str, object]:
    return {"items": [webhooks.endpoint_dict(e) for e in webhooks.list_endpoints(session, workspace)]}


@router.delete("/{endpoint_id}", status_code=204)
def delete_webhook(endpoint_id: Id, workspace: AdminWorkspace, session: DB) -> Response:
    webhooks.delete(session, workspace, endpoint_id)
    return Response(status_code=204)


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
