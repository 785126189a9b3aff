"""The event catalog: the CloudEvents `type` strings of the public contract."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from services.models import Event
from services.timestamps import rfc3339


class EventType(StrEnum):
    POLICY_CHANGED = "twofa.policy.changed"
    ENROLLMENT_INVITED = "twofa.enrollment.invited"
    ENABLED = "twofa.enabled"
    DISABLED = "twofa.disabled"
    VERIFICATION_FAILED = "twofa.verification.failed"
    TEAMMATE_LOCKED = "twofa.teammate.locked"
    RECOVERY_CODE_USED = "twofa.recovery_code.used"
    TEAMMATE_ADDED = "twofa.teammate.added"
    TEAMMATE_REMOVED = "twofa.teammate.removed"
    TEAMMATE_ROLE_CHANGED = "twofa.teammate.role_changed"
    BYPASS_CODE_ISSUED = "twofa.bypass_code.issued"
    BYPASS_CODE_USED = "twofa.bypass_code.used"
    EXEMPTION_GRANTED = "twofa.exemption.granted"
    EXEMPTION_ENDED = "twofa.exemption.ended"
    METHOD_ADDED = "twofa.method.added"
    METHOD_REMOVED = "twofa.method.removed"
    METHOD_REPLACED = "twofa.method.replaced"
    RECOVERY_CODES_REGENERATED = "twofa.recovery_codes.regenerated"
    PASSWORD_CHANGED = "twofa.password.changed"  # noqa: S105 - an event type, no secret
    VERIFICATION_SUSPICIOUS = "twofa.verification.suspicious"
    INVITATION_ACCEPTED = "twofa.invitation.accepted"
    API_KEY_CREATED = "twofa.api_key.created"
    API_KEY_REVOKED = "twofa.api_key.revoked"
    WEBHOOK_CREATED = "twofa.webhook.created"
    WEBHOOK_CHANGED = "twofa.webhook.changed"
    WEBHOOK_DELETED = "twofa.webhook.deleted"


ALL_TYPES: frozenset[str] = frozenset(t.value for t in EventType)
# Changes to the workspace's own integrations are kept in the audit log but not delivered to
# webhooks: an endpoint's first delivery would be its own creation, and a receiver has no use
# for news of the keys and endpoints it is configured by.
AUDIT_ONLY: frozenset[str] = frozenset({
    EventType.API_KEY_CREATED, EventType.API_KEY_REVOKED, EventType.WEBHOOK_CREATED,
    EventType.WEBHOOK_CHANGED, EventType.WEBHOOK_DELETED})
DELIVERABLE: frozenset[str] = ALL_TYPES - AUDIT_ONLY
# An admin's webhook test (POST …/webhooks/{id}/test): kept in the log, delivered to that
# endpoint only, never dispatched.
TEST_TYPE = "twofa.test"


def to_cloudevent(event: Event, workspace_slug: str) -> dict[str, Any]:
    """The CloudEvents 1.0 JSON form, as stored, listed and delivered to webhooks."""
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": event.id,
        "source": f"/workspaces/{workspace_slug}",
        "type": event.type,
        "time": rfc3339(event.time),
        "datacontenttype": "application/json",
        "data": event.data,
    }
    if event.subject:
        body["subject"] = event.subject
    return body
