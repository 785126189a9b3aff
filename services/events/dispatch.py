"""What each recorded event sets in motion, as outbox work in the dispatching transaction.

The map below is the whole story of the event flow; handlers are small and idempotent, since
an event may be dispatched more than once (the relay is at-least-once).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from services import outbox
from services.email.notifications import TEMPLATE_FOR_EVENT
from services.enrollment import fanout
from services.events.catalog import EventType
from services.models import Event
from services.webhooks import fanout as webhook_fanout

Handler = Callable[[Session, Event], None]


def start_enrollment_rollout(session: Session, event: Event) -> None:
    if event.data["require_two_factor"]:
        fanout.plan(session, event.workspace_id, event.data["version"])


def send_notification_email(session: Session, event: Event) -> None:
    outbox.enqueue(session, "email.send_notification", event_seq=event.seq)


HANDLERS: dict[str, list[Handler]] = {
    EventType.POLICY_CHANGED: [start_enrollment_rollout],
    **{type_: [send_notification_email] for type_ in TEMPLATE_FOR_EVENT},
}


def dispatch(session: Session, event_seqs: Sequence[int]) -> None:
    events = session.scalars(
        select(Event).where(Event.seq.in_(list(event_seqs))).order_by(Event.seq)
    ).all()
    for event in events:
        for handler in HANDLERS.get(event.type, []):
            handler(session, event)
    webhook_fanout.create_deliveries(session, events)
