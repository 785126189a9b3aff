"""The email telling a workspace's admins that one of its webhook endpoints was disabled."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.email import message as mail
from services.email.render import render
from services.errors import N_
from services.i18n.catalogs import translate
from services.models import Teammate, WebhookEndpoint, Workspace

KEPT_FAILING = N_("it kept failing")


def disabled_emails(session: Session, endpoint_id: int) -> list[tuple[str, mail.OutgoingEmail]]:
    """(idempotency key, email) for each active admin; empty if the endpoint is enabled again."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.enabled or endpoint.deleted_at is not None:
        return []
    workspace = session.get(Workspace, endpoint.workspace_id)
    assert workspace is not None
    admins = session.scalars(
        select(Teammate).where(
            Teammate.workspace_id == workspace.id, Teammate.role == "admin",
            Teammate.status == "active",
        ).order_by(Teammate.id)
    ).all()
    emails = []
    for admin in admins:
        rendered = render("webhook-endpoint-disabled", {
            "name": admin.name, "workspace_name": workspace.name, "url": endpoint.url,
            "reason": endpoint.disabled_reason or translate(admin.locale, KEPT_FAILING),
        }, admin.locale, admin.time_zone)
        key = f"webhook-disabled:{endpoint.id}:{admin.id}"
        emails.append(mail.keyed(key, admin.email, rendered))
    return emails
