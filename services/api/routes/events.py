"""The audit log: a workspace's events as CloudEvents, oldest first, paged by sequence."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from services.api.deps import DB, AdminWorkspace
from services.api.paging import Cursor, Page
from services.api.schemas import Text
from services.api.types import Timestamp
from services.events import audit
from services.models import Event

router = APIRouter(prefix="/v1/workspaces/{slug}", tags=["admin"])


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event, as webhooks receive it (services/events/catalog.py writes
    the webhook body; tests/test_api_shapes.py keeps the two the same)."""

    specversion: Literal["1.0"]
    id: str
    source: str = Field(description="`/workspaces/{slug}`")
    type: str = Field(description="One of the catalog's types (docs/events.md).")
    time: Timestamp
    # Absent rather than null when there is none, as in the webhook body.
    subject: str | None = Field(default=None, exclude_if=lambda v: v is None, description=(
        "`teammates/{id}` where the event is about one teammate; absent otherwise."))
    datacontenttype: Literal["application/json"]
    data: dict[str, Any]

    @classmethod
    def of(cls, event: Event, workspace_slug: str) -> CloudEvent:
        return cls(specversion="1.0", id=event.id, source=f"/workspaces/{workspace_slug}",
                   type=event.type, time=event.time, subject=event.subject,
                   datacontenttype="application/json", data=event.data)


@router.get("/events")
def list_events(
    workspace: AdminWorkspace,
    session: DB,
    type: Annotated[Annotated[str, Text] | None, Query(max_length=64)] = None,
    after: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[CloudEvent]:
    """Events in the order they were recorded; filter by `type`; pass `next_cursor` back as
    `after` for the next page."""
    events, next_seq = audit.page(session, workspace, type, after, limit)
    return Page[CloudEvent].of([CloudEvent.of(e, workspace.slug) for e in events], next_seq)
