"""Who is told about an event, with which email template: one table beside the catalog.

One email per action, from its most specific event: an action that records several events
at one time (2FA turned on records `twofa.enabled` and `twofa.method.added`) is told once;
a notice with `told_by` stays silent when the same action also recorded that event for the
same teammate (services/email/notifications.py reads this table to build the emails, and
services/handlers.py to send them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from services.events.catalog import EventType

# "teammate": the one the event is about; "other_admins": every other active admin of the
# workspace, the one who acted included (a stolen admin session shows to its owner too).
Audience = Literal["teammate", "other_admins"]


@dataclass(frozen=True)
class Notice:
    template: str  # a folder of templates/emails/
    to: Audience = "teammate"
    told_by: EventType | None = None  # silent when the same action recorded this one too


NOTICES: dict[EventType, tuple[Notice, ...]] = {
    EventType.ENABLED: (Notice("two-factor-enabled"),),
    EventType.DISABLED: (Notice("two-factor-disabled"),),
    EventType.METHOD_ADDED: (Notice("method-added", told_by=EventType.ENABLED),),
    EventType.METHOD_REMOVED: (Notice("method-removed", told_by=EventType.DISABLED),),
    EventType.METHOD_REPLACED: (Notice("method-replaced"),),
    EventType.RECOVERY_CODE_USED: (Notice("recovery-code-used"),),
    EventType.RECOVERY_CODES_REGENERATED: (Notice("recovery-codes-regenerated"),),
    EventType.TEAMMATE_LOCKED: (Notice("teammate-locked"),),
    EventType.VERIFICATION_SUSPICIOUS: (Notice("verification-suspicious"),),
    EventType.BYPASS_CODE_ISSUED: (Notice("bypass-code-issued"),),
    EventType.BYPASS_CODE_USED: (Notice("bypass-code-used"),),
    EventType.TEAMMATE_ROLE_CHANGED: (Notice("role-changed"),
                                      Notice("teammate-role-changed", to="other_admins")),
    EventType.PASSWORD_CHANGED: (Notice("password-changed"),),
}
