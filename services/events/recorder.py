"""Recording an event: the audit-log row and its outbox message, in the caller's transaction.

`data` is the event type's dataclass (services/events/payloads.py) or a dict of the same
fields; either way it is checked before anything is written. An event recorded while a
request is served also carries that request's `ip` and `user_agent`, and with tracing on
every event keeps the trace context of the span that recorded it (services/tracing.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from services import outbox, tracing
from services.events import payloads, request_context
from services.events.catalog import EventType
from services.models import Event
from services.topics import Topic


def record(
    session: Session,
    workspace_id: int,
    type_: EventType,
    data: payloads.Payload | Mapping[str, Any],
    teammate_id: int | None = None,
    time: datetime | None = None,
) -> Event:
    """`time`: events of one action share it (services/events/notices.py tells people about
    an action once, from its most specific event)."""
    event = Event(**columns(workspace_id, type_, data, teammate_id))
    if time is not None:
        event.time = time
    session.add(event)
    session.flush()  # assigns seq
    outbox.enqueue(session, Topic.DISPATCH_EVENTS, event_seqs=[event.seq])
    return event


def columns(workspace_id: int, type_: EventType, data: payloads.Payload | Mapping[str, Any],
            teammate_id: int | None = None) -> dict[str, Any]:
    """An event's row but its `seq` and `time` (the sign-in code step inserts it without the
    ORM, its outbox message with the same `trace_context`: services/verification/code_step.py)."""
    return row(workspace_id, type_, payloads.checked(type_, data), teammate_id)


def row(workspace_id: int, type_: EventType, checked: dict[str, Any],
        teammate_id: int | None = None) -> dict[str, Any]:
    """`columns` of data already as `payloads.checked` returns it: for a hot path whose
    payload has one shape, checked once rather than per event (the code step's wrong codes)."""
    return {"id": str(uuid.uuid4()), "workspace_id": workspace_id, "type": type_.value,
            "subject": f"teammates/{teammate_id}" if teammate_id is not None else None,
            "data": request_context.with_request(checked),
            "trace_context": tracing.capture()}


def record_many(
    session: Session,
    workspace_id: int,
    type_: EventType,
    items: Sequence[tuple[payloads.Payload | Mapping[str, Any], int | None]],
) -> list[Event]:
    """Several events of one type, (data, teammate_id) each, dispatched by one outbox message:
    a fan-out records thousands, and one message per event would be one task per event."""
    trace = tracing.capture()
    events = [
        Event(id=str(uuid.uuid4()), workspace_id=workspace_id, type=type_.value,
              subject=f"teammates/{teammate_id}" if teammate_id is not None else None,
              data=request_context.with_request(payloads.checked(type_, data)),
              trace_context=trace)
        for data, teammate_id in items
    ]
    if not events:
        return []
    session.add_all(events)
    session.flush()  # assigns seqs
    outbox.enqueue(session, Topic.DISPATCH_EVENTS, event_seqs=[e.seq for e in events])
    return events
