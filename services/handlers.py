"""What each recorded event sets in motion: the whole event flow in one map.

This module sits above the domain packages it calls (enrollment, email, webhooks), as
cosmicpython's `handlers` does; `services/events/` below it only names and records events.
A handler gets the events of its types from one dispatched batch, in order, and turns them
into outbox work in the dispatching transaction. Dispatch is at least once (the relay
republishes), so every handler is idempotent.

One dispatch may serve the events of many requests; what each event sets in motion continues
that event's own trace (services/tracing.py), so one trace still shows a flip to its emails.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from services import outbox, tracing
from services.enrollment import fanout
from services.events import payloads
from services.events.catalog import EventType
from services.events.notices import NOTICES
from services.models import Event
from services.topics import Topic
from services.webhooks import fanout as webhook_fanout

Handler = Callable[[Session, Sequence[Event]], None]


def start_enrollment_rollout(session: Session, events: Sequence[Event]) -> None:
    for event in events:
        policy = payloads.of(event, payloads.PolicyChanged)
        if policy.require_two_factor:
            with tracing.span("enrollment plan", parent=event.trace_context,
                              links=[tracing.capture()],
                              attributes={"twofa.policy.version": policy.version}):
                fanout.plan(session, event.workspace_id, policy.version)


def send_notification_email(session: Session, events: Sequence[Event]) -> None:
    for event in events:
        with tracing.resumed(event.trace_context):
            outbox.enqueue(session, Topic.SEND_NOTIFICATION_EMAIL, event_seq=event.seq)


def deliver_webhooks(session: Session, events: Sequence[Event]) -> None:
    """One delivery per subscribed endpoint and event; one task per endpoint for the batch."""
    webhook_fanout.create_deliveries(session, events)


# Who is told by email is the table beside the catalog (services/events/notices.py): every
# type it names gets `send_notification_email` first, below.
_FLOW: dict[str, list[Handler]] = {
    EventType.POLICY_CHANGED: [start_enrollment_rollout, deliver_webhooks],
    EventType.ENROLLMENT_INVITED: [deliver_webhooks],
    EventType.ENABLED: [deliver_webhooks],
    EventType.DISABLED: [deliver_webhooks],
    EventType.METHOD_ADDED: [deliver_webhooks],
    EventType.METHOD_REMOVED: [deliver_webhooks],
    EventType.METHOD_REPLACED: [deliver_webhooks],
    EventType.RECOVERY_CODES_REGENERATED: [deliver_webhooks],
    EventType.PASSWORD_CHANGED: [deliver_webhooks],
    EventType.VERIFICATION_FAILED: [deliver_webhooks],
    EventType.VERIFICATION_SUSPICIOUS: [deliver_webhooks],
    EventType.TEAMMATE_LOCKED: [deliver_webhooks],
    EventType.RECOVERY_CODE_USED: [deliver_webhooks],
    EventType.TEAMMATE_ADDED: [deliver_webhooks],  # the join email goes out from teammates.add
    EventType.TEAMMATE_REMOVED: [deliver_webhooks],
    EventType.TEAMMATE_ROLE_CHANGED: [deliver_webhooks],
    EventType.BYPASS_CODE_ISSUED: [deliver_webhooks],
    EventType.BYPASS_CODE_USED: [deliver_webhooks],
    EventType.EXEMPTION_GRANTED: [deliver_webhooks],
    # An ended exemption sends the invitation the exemption held back (exemptions.end does
    # that in the ending transaction, so that the rollout counts never lag behind).
    EventType.EXEMPTION_ENDED: [deliver_webhooks],
    EventType.INVITATION_ACCEPTED: [deliver_webhooks],
    # Audit only (catalog.AUDIT_ONLY): the log keeps them, nothing else follows.
    EventType.API_KEY_CREATED: [],
    EventType.API_KEY_REVOKED: [],
    EventType.WEBHOOK_CREATED: [],
    EventType.WEBHOOK_CHANGED: [],
    EventType.WEBHOOK_DELETED: [],
}
HANDLERS: dict[str, list[Handler]] = {
    type_: ([send_notification_email] if type_ in NOTICES else []) + handlers
    for type_, handlers in _FLOW.items()
}


def dispatch(session: Session, event_seqs: Sequence[int]) -> None:
    """Run every handler once over the events of its types in this batch (in seq order)."""
    events = session.scalars(
        select(Event).where(Event.seq.in_(list(event_seqs))).order_by(Event.seq)
    ).all()
    batches: dict[Handler, list[Event]] = {}
    for event in events:
        for handler in HANDLERS.get(event.type, []):
            batches.setdefault(handler, []).append(event)
    for handler, handled in batches.items():
        handler(session, handled)
