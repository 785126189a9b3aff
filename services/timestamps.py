"""The one written form of a point in time, in API responses, events and webhook bodies:
RFC 3339 in UTC with microseconds and a `Z`, e.g. `2026-11-28T19:44:53.123456Z`.

Always six fractional digits (isoformat drops them when they are zero) and always `Z`
(isoformat writes `+00:00`): a reader can compare the strings, and one parser fits all.
"""

from __future__ import annotations

from datetime import UTC, datetime

FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# What every timestamp written by twofa matches (documented in the OpenAPI schema too).
PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"


def rfc3339(value: datetime) -> str:
    """`value` in UTC as `YYYY-MM-DDTHH:MM:SS.ffffffZ`. A naive datetime is refused: its zone
    is unknown (the database layer hands out aware UTC values only)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: its time zone is unknown")
    return value.astimezone(UTC).strftime(FORMAT)


def rfc3339_or_none(value: datetime | None) -> str | None:
    return rfc3339(value) if value is not None else None


def in_words(value: datetime) -> str:
    """The form people read, in emails and pages: "Tuesday 2 December, 14:00 UTC"."""
    value = value.astimezone(UTC)
    return f"{value:%A} {value.day} {value:%B}, {value:%H:%M} UTC"
