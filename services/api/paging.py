"""The one shape of every list the API answers: `{items, next_cursor}`.

    from services.api.paging import Cursor, Page

    @router.get("/things")
    def list_things(…, cursor: Cursor = None) -> Page[ThingOut]:
        rows, next_id = things.page(session, …, limit, cursor)
        return Page.of([ThingOut.of(r) for r in rows], next_id)

`next_cursor` is null on the last page; otherwise pass it back (as `cursor`, or `after` for
the events) for the next one. Lists that are never long (API keys, webhooks) are one page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from services.api.schemas import MAX_ID

T = TypeVar("T")

# The position a page starts after (an id or a sequence number from `next_cursor`).
Cursor = Annotated[int | None, Query(ge=0, le=MAX_ID)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Null on the last page; otherwise pass it back to get the next one.")

    @classmethod
    def of(cls, items: Sequence[T], next_key: int | None = None) -> Page[T]:
        return cls(items=list(items), next_cursor=str(next_key) if next_key is not None else None)

