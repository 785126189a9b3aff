"""One-off emails (join link, 2FA on/off, recovery code used, locked out), each sent once.

A `SentEmail` row keyed by what the email is about makes a redelivered task a no-op; a send
that a crash cut short before the row committed repeats with the same Message-ID.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.config import get_settings
from services.crypto import rederive_token
from services.db import dialect_insert, unit_of_work
from services.email import connections
from services.email import message as mail
from services.email.pace import get_pace
from services.email.render import render
from services.email.smtp import SmtpMailer, Throttled
from services.events.catalog import EventType
from services.models import Event, SentEmail, Teammate, Workspace, utcnow

TEMPLATE_FOR_EVENT = {
    EventType.ENABLED.value: "two-factor-enabled",
    EventType.DISABLED.value: "two-factor-disabled",
    EventType.RECOVERY_CODE_USED.value: "recovery-code-used",
    EventType.TEAMMATE_LOCKED.value: "teammate-locked",
}


def already_sent(session: Session, key: str) -> bool:
    return session.scalar(select(SentEmail.id).where(SentEmail.key == key)) is not None


def send_each_once(emails: Sequence[tuple[str, mail.OutgoingEmail]], transactional: bool
                   ) -> None:
    """Send each (key, email) once, over a connection kept by this process, each in a slot of
    the shared rate: transactional mail (join links, notices) ahead of bulk (reminders).
    Raises TransientSendError (Throttled after cutting the shared rate) for the caller to
    retry; the emails already sent are recorded and will not go again."""
    pace, mailers = get_pace(), connections.pool()
    mailer = mailers.get()
    token = [0]

    def take_slot() -> None:
        token[0] = pace.acquire(priority=transactional)

    try:
        for key, email in emails:
            if send_once(key, email, mailer, take_slot):
                pace.accepted()
    except Throttled:
        pace.throttled(token[0])
        raise
    finally:
        mailers.put(mailer)


def send_once(key: str, build: mail.OutgoingEmail, mailer: SmtpMailer,
              before_send: Callable[[], None] | None = None) -> bool:
    """Send `build` unless `key` was sent before; record it right after SMTP accepts."""
    with unit_of_work() as session:
        if already_sent(session, key):
            return False
    if before_send is not None:
        before_send()
    mailer.send(build)
    with unit_of_work() as session:  # a concurrent duplicate may have recorded it first
        session.execute(
            dialect_insert(session, SentEmail)
            .values(key=key, message_id=build.message_id, sent_at=utcnow())
            .on_conflict_do_nothing()
        )
    return True


def join_email(session: Session, teammate_id: int) -> tuple[str, mail.OutgoingEmail] | None:
    teammate = session.get(Teammate, teammate_id)
    if teammate is None or teammate.status != "invited" or teammate.join_token_hash is None:
        return None  # joined (or removed) before the email went out
    token = rederive_token(teammate.join_token_hash, "join", teammate.id, teammate.join_nonce)
    if token is None:  # made under a key that is no longer configured: the link cannot work
        return None
    workspace = session.get(Workspace, teammate.workspace_id)
    assert workspace is not None
    url = f"{get_settings().public_url.rstrip('/')}/join?token={token}"
    rendered = render("join", {
        "name": teammate.name, "workspace_name": workspace.name, "accept_url": url,
        "require_two_factor": workspace.require_two_factor,
    })
    key = _join_key(teammate)
    return mail.keyed(key, teammate.email, rendered)


def record_join_sent(session: Session, teammate_id: int, key: str) -> None:
    """The join email with this key is out: while 2FA is required it is the teammate's
    invitation (state `invited`). A newer link (another nonce) waits for its own email."""
    teammate = session.get(Teammate, teammate_id)
    if teammate is not None and key == _join_key(teammate) \
            and teammate.join_sent_at is None:
        teammate.join_sent_at = utcnow()


def _join_key(teammate: Teammate) -> str:
    """One join email per link: a resend makes a new nonce, so a new key and email."""
    return f"join:{teammate.id}:{teammate.join_nonce}"


def event_email(session: Session, event_seq: int) -> tuple[str, mail.OutgoingEmail] | None:
    event = session.get(Event, event_seq)
    if event is None or event.type not in TEMPLATE_FOR_EVENT:
        return None
    teammate = session.get(Teammate, event.data["teammate_id"])
    workspace = session.get(Workspace, event.workspace_id)
    if teammate is None or workspace is None:
        return None
    context: dict[str, Any] = {
        "name": teammate.name,
        "workspace_name": workspace.name,
        "require_two_factor": workspace.require_two_factor,
        "settings_url": f"{get_settings().public_url.rstrip('/')}/settings/two-factor",
        **event.data,
    }
    if event.type == EventType.DISABLED.value:
        actor = session.get(Teammate, event.data.get("actor_id"))
        context["actor_name"] = actor.name if actor else "an admin"
    rendered = render(TEMPLATE_FOR_EVENT[event.type], context)
    key = f"event:{event.id}"
    return mail.keyed(key, teammate.email, rendered)
