"""One-off emails (the join link, and the notices of services/events/notices.py: 2FA on or
off, methods, recovery codes, bypass codes, roles, a lockout, wrong codes), each sent once.

A `SentEmail` row keyed by what the email is about makes a redelivered task a no-op; a send
that a crash cut short before the row committed repeats with the same Message-ID.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services import browsers, holding
from services.config import get_settings
from services.crypto import rederive_token
from services.db import dialect_insert, unit_of_work
from services.email import connections
from services.email import message as mail
from services.email.pace import get_pace
from services.email.render import render
from services.email.smtp import SmtpMailer, Throttled
from services.errors import N_
from services.events.catalog import EventType
from services.events.notices import NOTICES, Notice
from services.i18n.catalogs import translate
from services.i18n.dates import in_words
from services.models import Event, PasswordReset, SentEmail, Teammate, Workspace, utcnow

METHOD_IN_WORDS = {"totp": N_("An authenticator app"), "webauthn": N_("A security key")}
SOME_METHOD = N_("A sign-in method")
SOME_ADMIN = N_("an admin")
TEMPLATE_FOR_EVENT = {type_.value: notices[0].template for type_, notices in NOTICES.items()}


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
                pace.accepted(token[0])
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
    }, teammate.locale, teammate.time_zone)
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


def password_reset_email(session: Session, reset: PasswordReset,
                         token: str) -> tuple[str, mail.OutgoingEmail] | None:
    """The email carrying a reset link (services/accounts/password_reset.py made it), once
    per link; None once the link was used or voided (a late redelivery sends nothing)."""
    if reset.used_at is not None or reset.voided_at is not None:
        return None
    teammate = session.get(Teammate, reset.teammate_id)
    assert teammate is not None
    workspace = session.get(Workspace, teammate.workspace_id)
    assert workspace is not None
    rendered = render("password-reset", {
        "name": teammate.name, "workspace_name": workspace.name,
        "reset_url": f"{get_settings().public_url.rstrip('/')}/reset-password?token={token}",
        "two_factor": teammate.two_factor_enabled,
    }, teammate.locale, teammate.time_zone)
    return mail.keyed(f"reset:{reset.id}", teammate.email, rendered)


def event_emails(session: Session, event_seq: int) -> list[tuple[str, mail.OutgoingEmail]]:
    """The notices of one event (services/events/notices.py), keyed for sending once."""
    event = session.get(Event, event_seq)
    notices = NOTICES.get(EventType(event.type), ()) if event is not None else ()
    if event is None or not notices:
        return []
    teammate = session.get(Teammate, event.data["teammate_id"])
    workspace = session.get(Workspace, event.workspace_id)
    if teammate is None or workspace is None:
        return []
    context = _context(session, event, teammate, workspace)
    held = holding.held_from(teammate, workspace)
    built = []
    for notice in notices:
        if notice.told_by is not None and _same_action(session, event, notice.told_by):
            continue  # the action's more specific event tells it
        for recipient in _audience(session, notice, event, teammate):
            key = f"event:{event.id}" if recipient.id == teammate.id \
                else f"event:{event.id}:{recipient.id}"
            rendered = render(notice.template,
                              {**context, **_worded(context, event, recipient, held),
                               "name": recipient.name},
                              recipient.locale, recipient.time_zone)
            built.append(mail.keyed(key, recipient.email, rendered))
    return built


def _context(session: Session, event: Event, teammate: Teammate,
             workspace: Workspace) -> dict[str, Any]:
    actor = session.get(Teammate, event.data["actor_id"]) if event.data.get("actor_id") else None
    return {
        "workspace_name": workspace.name,
        "require_two_factor": workspace.require_two_factor,
        "settings_url": f"{get_settings().public_url.rstrip('/')}/settings/two-factor",
        **event.data,
        "teammate_name": teammate.name, "teammate_email": teammate.email,
        "actor_name": actor.name if actor else None,
        # A method's own name; `name` is the recipient's in every template.
        "name_of_method": event.data.get("name", ""),
    }


def _worded(context: dict[str, Any], event: Event, recipient: Teammate,
            held: datetime | None) -> dict[str, Any]:
    """What an event's notice says in the recipient's language and time zone (`held`: when
    2FA will hold the event's teammate, within a grace period or an exemption)."""
    locale, zone = recipient.locale, recipient.time_zone
    return {
        "when": in_words(event.time, locale, zone),
        "browser": browsers.in_words(str(event.data.get("user_agent", "")), locale),
        "method_name": translate(locale, METHOD_IN_WORDS.get(str(event.data.get("method")),
                                                           SOME_METHOD)),
        "expires_words": in_words(datetime.fromisoformat(expires), locale, zone) if (
            expires := event.data.get("expires_at")) else "",
        "actor_name": context["actor_name"] or translate(locale, SOME_ADMIN),
        # Within a grace period or an exemption: when 2FA will hold them (else "").
        "set_up_by": in_words(held, locale, zone) if held else "",
    }


def _same_action(session: Session, event: Event, other: EventType) -> bool:
    """Whether the action that recorded `event` also recorded `other` for the same teammate
    (events of one action share their time: services/events/recorder.py)."""
    return session.scalar(select(Event.seq).where(
        Event.workspace_id == event.workspace_id, Event.type == other.value,
        Event.subject == event.subject, Event.time == event.time).limit(1)) is not None


def _audience(session: Session, notice: Notice, event: Event,
              teammate: Teammate) -> list[Teammate]:
    if notice.to == "teammate":
        return [teammate]
    return list(session.scalars(select(Teammate).where(
        Teammate.workspace_id == event.workspace_id, Teammate.role == "admin",
        Teammate.status == "active", Teammate.id != teammate.id).order_by(Teammate.id)))
