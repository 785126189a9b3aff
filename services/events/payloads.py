"""What each event's `data` holds: one dataclass per event type, checked when recorded.

The classes are the catalog's `data` column (docs/events.md; tests/test_flow.py keeps the
two the same). Strict: a missing, extra or mistyped field fails in the recording
transaction instead of reaching webhooks and emails.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any, Literal, TypeVar

from pydantic import ConfigDict
from pydantic.dataclasses import dataclass

from services.events import request_context
from services.events.catalog import EventType
from services.models import Event

STRICT = ConfigDict(extra="forbid", strict=True)


@dataclass(frozen=True, config=STRICT)
class PolicyChanged:
    require_two_factor: bool
    version: int
    changed_by: int  # the admin's teammate id (kept for older receivers; = actor_id)
    # The grace period in force and when the requirement is enforced (None: at once or off).
    # Recorded since migration 0005: older events lack them.
    grace_period_hours: int = 0
    enforce_at: str | None = None  # RFC 3339, UTC
    actor_id: int | None = None  # the same admin; recorded since migration 0007
    # Which second factors count, and when app-only teammates are held (security keys).
    allowed_methods: Literal["any", "security_keys"] = "any"
    methods_enforce_at: str | None = None  # RFC 3339, UTC


@dataclass(frozen=True, config=STRICT)
class EnrollmentInvited:
    teammate_id: int
    email: str
    policy_version: int


@dataclass(frozen=True, config=STRICT)
class Enabled:
    teammate_id: int


@dataclass(frozen=True, config=STRICT)
class Disabled:
    teammate_id: int
    by: Literal["self", "admin", "operator"]  # operator: `twofa teammate reset-2fa`
    actor_id: int | None  # None for the operator


@dataclass(frozen=True, config=STRICT)
class VerificationFailed:
    teammate_id: int
    reason: str
    # totp | recovery_code | bypass | webauthn | passkey; recorded since security keys came.
    method: str | None = None


@dataclass(frozen=True, config=STRICT)
class TeammateLocked:
    teammate_id: int
    until: str  # RFC 3339, UTC, `Z` (services/timestamps.py)


@dataclass(frozen=True, config=STRICT)
class RecoveryCodeUsed:
    teammate_id: int
    remaining: int


@dataclass(frozen=True, config=STRICT)
class TeammateAdded:
    teammate_id: int
    actor_id: int | None  # None when added from the command line


@dataclass(frozen=True, config=STRICT)
class TeammateRemoved:
    teammate_id: int
    actor_id: int


@dataclass(frozen=True, config=STRICT)
class TeammateRoleChanged:
    teammate_id: int
    actor_id: int
    role: Literal["admin", "member"]


@dataclass(frozen=True, config=STRICT)
class BypassCodeIssued:
    teammate_id: int
    actor_id: int
    expires_at: str  # RFC 3339, UTC, `Z` (services/timestamps.py)


@dataclass(frozen=True, config=STRICT)
class BypassCodeUsed:
    teammate_id: int


@dataclass(frozen=True, config=STRICT)
class ExemptionGranted:
    teammate_id: int
    until: str  # RFC 3339, UTC
    actor_id: int
    reason: str


@dataclass(frozen=True, config=STRICT)
class ExemptionEnded:
    teammate_id: int
    by: Literal["admin", "expiry", "promotion"]  # promotion: made an admin
    actor_id: int | None  # None when it expired


@dataclass(frozen=True, config=STRICT)
class MethodAdded:
    teammate_id: int
    method: Literal["totp", "webauthn"]
    name: str  # "Authenticator app", or a security key's name


@dataclass(frozen=True, config=STRICT)
class MethodRemoved:
    teammate_id: int
    method: Literal["totp", "webauthn"]
    name: str


@dataclass(frozen=True, config=STRICT)
class MethodReplaced:
    teammate_id: int
    method: Literal["totp", "webauthn"]  # a new phone: the app's secret replaced


@dataclass(frozen=True, config=STRICT)
class RecoveryCodesRegenerated:
    teammate_id: int


@dataclass(frozen=True, config=STRICT)
class PasswordChanged:
    teammate_id: int
    by: Literal["self", "reset"]


@dataclass(frozen=True, config=STRICT)
class VerificationSuspicious:
    """A right password (or a host's check) followed by wrong second factors in a row."""

    teammate_id: int
    failures: int
    ip: str
    user_agent: str


@dataclass(frozen=True, config=STRICT)
class InvitationAccepted:
    teammate_id: int  # joined: set their password through the join link


@dataclass(frozen=True, config=STRICT)
class ApiKeyCreated:
    api_key_id: int
    name: str
    actor_id: int | None  # None when made from the command line


@dataclass(frozen=True, config=STRICT)
class ApiKeyRevoked:
    api_key_id: int
    actor_id: int | None


@dataclass(frozen=True, config=STRICT)
class WebhookCreated:
    webhook_id: int
    url: str
    event_types: list[str]
    actor_id: int | None


@dataclass(frozen=True, config=STRICT)
class WebhookChanged:
    webhook_id: int
    changed: list[str]  # which of url, event_types, enabled, secret
    actor_id: int | None


@dataclass(frozen=True, config=STRICT)
class WebhookDeleted:
    webhook_id: int
    actor_id: int | None


Payload = (PolicyChanged | EnrollmentInvited | Enabled | Disabled | VerificationFailed
           | TeammateLocked | RecoveryCodeUsed | TeammateAdded | TeammateRemoved
           | TeammateRoleChanged | BypassCodeIssued | BypassCodeUsed | ExemptionGranted
           | ExemptionEnded | MethodAdded | MethodRemoved | MethodReplaced
           | RecoveryCodesRegenerated | PasswordChanged | VerificationSuspicious
           | InvitationAccepted | ApiKeyCreated | ApiKeyRevoked | WebhookCreated
           | WebhookChanged | WebhookDeleted)

PAYLOADS: dict[EventType, type[Payload]] = {
    EventType.POLICY_CHANGED: PolicyChanged,
    EventType.ENROLLMENT_INVITED: EnrollmentInvited,
    EventType.ENABLED: Enabled,
    EventType.DISABLED: Disabled,
    EventType.VERIFICATION_FAILED: VerificationFailed,
    EventType.TEAMMATE_LOCKED: TeammateLocked,
    EventType.RECOVERY_CODE_USED: RecoveryCodeUsed,
    EventType.TEAMMATE_ADDED: TeammateAdded,
    EventType.TEAMMATE_REMOVED: TeammateRemoved,
    EventType.TEAMMATE_ROLE_CHANGED: TeammateRoleChanged,
    EventType.BYPASS_CODE_ISSUED: BypassCodeIssued,
    EventType.BYPASS_CODE_USED: BypassCodeUsed,
    EventType.EXEMPTION_GRANTED: ExemptionGranted,
    EventType.EXEMPTION_ENDED: ExemptionEnded,
    EventType.METHOD_ADDED: MethodAdded,
    EventType.METHOD_REMOVED: MethodRemoved,
    EventType.METHOD_REPLACED: MethodReplaced,
    EventType.RECOVERY_CODES_REGENERATED: RecoveryCodesRegenerated,
    EventType.PASSWORD_CHANGED: PasswordChanged,
    EventType.VERIFICATION_SUSPICIOUS: VerificationSuspicious,
    EventType.INVITATION_ACCEPTED: InvitationAccepted,
    EventType.API_KEY_CREATED: ApiKeyCreated,
    EventType.API_KEY_REVOKED: ApiKeyRevoked,
    EventType.WEBHOOK_CREATED: WebhookCreated,
    EventType.WEBHOOK_CHANGED: WebhookChanged,
    EventType.WEBHOOK_DELETED: WebhookDeleted,
}


P = TypeVar("P", bound=Payload)


def checked(type_: EventType, data: Payload | Mapping[str, Any]) -> dict[str, Any]:
    """`data` as stored, once it fits its type's dataclass (a dict is checked field by field:
    pydantic's ValidationError names what is missing, extra or of the wrong type)."""
    cls = PAYLOADS[type_]
    if isinstance(data, Mapping):
        data = cls(**data)
    if not isinstance(data, cls):
        raise TypeError(f"{type_} carries {cls.__name__}, not {type(data).__name__}")
    # asdict deep-copies every value; a payload of plain values (most are) needs only its
    # fields read. A rollout records one payload per email, and asdict was 70% of this.
    shallow = {f.name: getattr(data, f.name) for f in fields(data)}
    if all(type(v) in _PLAIN for v in shallow.values()):
        return shallow
    return asdict(data)


_PLAIN = (str, int, float, bool, type(None))


def of(event: Event, cls: type[P]) -> P:
    """A recorded event's data as its dataclass."""
    if PAYLOADS[EventType(event.type)] is not cls:
        raise TypeError(f"{event.type} carries {PAYLOADS[EventType(event.type)].__name__}")
    return cls(**request_context.without_request(event.data))
