"""Types shared by the routes: the id path parameter and the timestamp of every response.

    from services.api.types import Id, Timestamp

    @router.get("/things/{thing_id}")
    def get_thing(thing_id: Id, …) -> ThingOut: …

    class ThingOut(BaseModel):
        created_at: Timestamp
        ended_at: Timestamp | None
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path
from pydantic import PlainSerializer, WithJsonSchema

from services.api.schemas import MAX_ID
from services.timestamps import PATTERN, rfc3339

# Every `{…_id}` path parameter: a positive integer within BIGINT, so 0, -1 and 2**64 are a
# 422 before any lookup (and never a database overflow).
Id = Annotated[int, Path(ge=1, le=MAX_ID, description="A positive integer id.")]

# A datetime written the one way (services/timestamps.py): RFC 3339, UTC, microseconds, `Z`.
# The schema carries the pattern, so schemathesis holds every response to it too.
Timestamp = Annotated[
    datetime,
    PlainSerializer(rfc3339, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": PATTERN,
                    "examples": ["2026-11-28T19:44:53.123456Z"]}),
]
