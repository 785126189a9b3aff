"""Webhook deliveries for an event: one per subscribed endpoint (issue 4; not built yet)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from services.models import Event


def create_deliveries(session: Session, event: Event) -> None:
    """Placeholder until webhooks land: events are kept in the audit log meanwhile."""
    return None
