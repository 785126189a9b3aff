"""Changing an endpoint after subscription: edit, re-enable, rotate its secret, send a test."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from services import crypto, outbox, tracing
from services.errors import Conflict
from services.events import recorder
from services.events.catalog import TEST_TYPE, EventType
from services.models import Event, WebhookDelivery, WebhookEndpoint, Workspace, utcnow
from services.topics import Topic
from services.webhooks import signing, ssrf
from services.webhooks.service import get, validate_event_types

TEST_EVENT_TYPE = TEST_TYPE
DISABLED_BY_ADMIN = "disabled by an admin"
# Deliveries left pending while an endpoint was disabled end with this status when it is
# enabled again: the endpoint resumes from now instead of receiving a backlog of stale events.
SKIPPED = "skipped"


@dataclass(frozen=True)
class Changes:
    """What a PATCH names; None leaves the field as it is."""

    url: str | None = None
    event_types: Sequence[str] | None = None
    enabled: bool | None = None


def update_endpoint(session: Session, workspace: Workspace, endpoint_id: int,
                    changes: Changes, actor_id: int | None = None) -> WebhookEndpoint:
    """Apply the changes; the URL passes the same SSRF and port checks as at subscription."""
    # Input first: a bad URL is a 422 whether or not the endpoint exists.
    url = ssrf.parse_url(changes.url).geturl() if changes.url is not None else None
    types = validate_event_types(changes.event_types) if changes.event_types is not None else None
    endpoint = get(session, workspace, endpoint_id)
    changed = []
    if url is not None and url != endpoint.url:
        endpoint.url = url
        changed.append("url")
    if types is not None and types != endpoint.event_types:
        endpoint.event_types = types
        changed.append("event_types")
    if changes.enabled is True and not endpoint.enabled:
        _enable(session, endpoint)
        changed.append("enabled")
    elif changes.enabled is False and endpoint.enabled:
        endpoint.enabled = False
        endpoint.disabled_reason = DISABLED_BY_ADMIN
        changed.append("enabled")
    session.flush()
    if changed:
        _record_change(session, workspace, endpoint, changed, actor_id)
    return endpoint


def _record_change(session: Session, workspace: Workspace, endpoint: WebhookEndpoint,
                   changed: list[str], actor_id: int | None) -> None:
    recorder.record(session, workspace.id, EventType.WEBHOOK_CHANGED,
                    {"webhook_id": endpoint.id, "changed": changed, "actor_id": actor_id})


def _enable(session: Session, endpoint: WebhookEndpoint) -> None:
    """Resume from now: what piled up while disabled is skipped, the history stays listed."""
    now = utcnow()
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.status == "pending")
        .values(status=SKIPPED, finished_at=now, next_attempt_at=None, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    endpoint.enabled = True
    endpoint.disabled_reason = None
    endpoint.consecutive_failures = 0


def rotate_secret(session: Session, workspace: Workspace, endpoint_id: int,
                  overlap: timedelta, actor_id: int | None = None) -> tuple[str, datetime | None]:
    """A new `whsec_` secret signs from now on; the old one also signs until the overlap ends.

    Returns the new secret (shown this once) and when the old one stops signing.
    """
    endpoint = get(session, workspace, endpoint_id)
    now = utcnow()
    ring = signing.KeyRing.loads(crypto.decrypt(endpoint.secret_enc))
    secret = signing.new_secret()
    rotated = ring.rotated(secret, now, now + overlap)
    endpoint.secret_enc = crypto.encrypt(rotated.dumps())
    session.flush()
    _record_change(session, workspace, endpoint, ["secret"], actor_id)
    return secret, rotated.previous_until


def send_test(session: Session, workspace: Workspace, endpoint_id: int) -> WebhookDelivery:
    """A `twofa.test` event for this endpoint only, sent by the ordinary delivery task.

    The event skips the dispatcher (which would hand it to every `*` subscriber): its one
    delivery row is written here, queued behind the endpoint's earlier deliveries.
    """
    endpoint = get(session, workspace, endpoint_id)
    if not endpoint.enabled:
        raise Conflict("The endpoint is disabled ({reason}); enable it first.",
                       "webhook_disabled", reason=endpoint.disabled_reason)
    event = Event(id=str(uuid.uuid4()), workspace_id=workspace.id, type=TEST_EVENT_TYPE,
                  subject=f"webhooks/{endpoint.id}",
                  data={"endpoint_id": endpoint.id, "message": "A test event sent by an admin."},
                  trace_context=tracing.capture())
    session.add(event)
    session.flush()
    now = utcnow()
    delivery = WebhookDelivery(endpoint_id=endpoint.id, event_seq=event.seq, status="pending",
                               attempts=0, next_attempt_at=now, created_at=now,
                               trace_context=event.trace_context)  # the request's trace
    session.add(delivery)
    session.flush()
    outbox.enqueue(session, Topic.DELIVER_WEBHOOKS, endpoint_id=endpoint.id)
    return delivery
