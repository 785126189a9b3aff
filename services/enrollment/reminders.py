"""Reminder emails before a grace period ends.

A reminder is a row with a due time for one policy version, planned when the requirement is
turned on (or its grace period or allowed methods change) and cancelled when it is turned
off. Each teammate is reminded of the deadline that holds them (`enforcement.
relevant_deadline`): under `security_keys`, one with only an app of `methods_enforce_at`,
one without any method of `enforce_at`; a row's `audience` says which of them it is for. The
periodic sweep sends the due ones: never a broker countdown, which a restart loses or a
visibility timeout duplicates. Each teammate's copy is sent once, keyed by (reminder,
teammate): the reminder row carries the version, so that is once per (teammate, version,
reminder).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, select, true, update
from sqlalchemy.orm import Session

from services import clock, outbox
from services.config import get_settings
from services.email import links
from services.email import message as mail
from services.email.render import Rendered, render
from services.email.template import MessageTemplate
from services.enrollment import state
from services.i18n.dates import in_words
from services.models import EnrollmentReminder, Teammate, Workspace, two_factor_enabled_sql
from services.topics import Topic

# Hours before enforce_at; only those still ahead when planned are kept, so a period of more
# than 24 hours always gets the 24-hour one.
HOURS_BEFORE = (72, 24, 1)

REMINDER = "enrollment-reminder"
KEY_REMINDER = "security-key-reminder"


def schedule(enforce_at: datetime, now: datetime) -> list[datetime]:
    return sorted(due for hours in HOURS_BEFORE
                  if (due := enforce_at - timedelta(hours=hours)) > now)


# Who a reminder is for: everyone still to enroll (one deadline), or, under `security_keys`
# with two, the teammates without any method (held from `enforce_at`) or with only an app
# (held from `methods_enforce_at`).
ALL, NO_METHOD, APP_ONLY = "all", "no_method", "app_only"


def deadlines(workspace: Workspace) -> dict[str, datetime]:
    """Each audience's deadline still to plan reminders for (none when enforced at once)."""
    keys_only = workspace.allowed_methods == "security_keys"
    if not keys_only or workspace.methods_enforce_at == workspace.enforce_at:
        return {ALL: workspace.enforce_at} if workspace.enforce_at else {}
    planned = {NO_METHOD: workspace.enforce_at, APP_ONLY: workspace.methods_enforce_at}
    return {audience: when for audience, when in planned.items() if when is not None}


def deadline_of(workspace: Workspace, audience: str) -> datetime | None:
    return workspace.methods_enforce_at if audience == APP_ONLY else workspace.enforce_at


def plan(session: Session, workspace: Workspace, now: datetime) -> None:
    for audience, deadline in deadlines(workspace).items():
        for due in schedule(deadline, now):
            session.add(EnrollmentReminder(workspace_id=workspace.id, due_at=due,
                                           status="pending", audience=audience,
                                           policy_version=workspace.policy_version))


def replan(session: Session, workspace: Workspace, now: datetime) -> None:
    """A deadline moved or the allowed methods changed: the pending reminders give way."""
    cancel(session, workspace.id)
    plan(session, workspace, now)


def cancel(session: Session, workspace_id: int) -> None:
    session.execute(update(EnrollmentReminder)
                    .where(EnrollmentReminder.workspace_id == workspace_id,
                           EnrollmentReminder.status == "pending")
                    .values(status="cancelled")
                    .execution_options(synchronize_session=False))


def due_times(session: Session, workspace: Workspace) -> list[datetime]:
    """The current version's reminders, sent or still to come."""
    if not workspace.require_two_factor:
        return []
    return list(session.scalars(
        select(EnrollmentReminder.due_at).distinct()
        .where(EnrollmentReminder.workspace_id == workspace.id,
               EnrollmentReminder.policy_version == workspace.policy_version,
               EnrollmentReminder.status != "cancelled")
        .order_by(EnrollmentReminder.due_at)))


def sweep(session: Session) -> int:
    """Fan out every due reminder: batches of teammate ids become outbox messages in the
    transaction that marks the reminder sent. Returns how many reminders went out."""
    now = clock.now()
    due = session.scalars(
        select(EnrollmentReminder)
        .where(EnrollmentReminder.status == "pending", EnrollmentReminder.due_at <= now)
        .order_by(EnrollmentReminder.due_at)
        .limit(100)
        .with_for_update(skip_locked=True)).all()
    latest = {(r.workspace_id, r.policy_version, r.audience): r.id for r in due}  # by due_at
    for reminder in due:
        workspace = session.get(Workspace, reminder.workspace_id)
        if workspace is None or not _is_current(workspace, reminder, now):
            reminder.status = "cancelled"  # a later version or a deadline already passed
            continue
        if latest[(reminder.workspace_id, reminder.policy_version, reminder.audience)] \
                != reminder.id:
            # Late (the sweep was down): a later reminder is due too, and one email will do.
            reminder.status = "cancelled"
            continue
        size = get_settings().fanout_batch_size
        for ids in _chunks(_still_to_enroll(session, workspace, reminder.audience, now), size):
            outbox.enqueue(session, Topic.SEND_REMINDER_BATCH, reminder_id=reminder.id,
                           teammate_ids=ids)
        reminder.status, reminder.sent_at = "sent", now
    return len(due)


def _is_current(workspace: Workspace, reminder: EnrollmentReminder, now: datetime) -> bool:
    deadline = deadline_of(workspace, reminder.audience)
    return (workspace.require_two_factor and workspace.policy_version == reminder.policy_version
            and deadline is not None and deadline > now)


def _in_audience(audience: str) -> ColumnElement[bool]:
    """Under `security_keys` a teammate still to enroll with any method has only an app."""
    if audience == NO_METHOD:
        return ~two_factor_enabled_sql()
    if audience == APP_ONLY:
        return two_factor_enabled_sql()
    return true()


def _fits(audience: str, teammate: Teammate) -> bool:
    """`_in_audience` for one row read now: one who added an app meanwhile has the other
    deadline."""
    if audience == NO_METHOD:
        return not teammate.two_factor_enabled
    return audience != APP_ONLY or teammate.two_factor_enabled


def _still_to_enroll(session: Session, workspace: Workspace, audience: str,
                     now: datetime) -> Iterator[int]:
    """`state.to_enroll`, streamed: a team of any size never sits in memory. Admins are
    held at once, so no deadline is theirs to be reminded of."""
    return iter(session.scalars(
        select(Teammate.id)
        .where(state.to_enroll(workspace.id, now, workspace.allowed_methods),
               _in_audience(audience), Teammate.role != "admin")
        .order_by(Teammate.id)
        .execution_options(yield_per=1000)))


def _chunks(ids: Iterator[int], size: int) -> Iterator[list[int]]:
    chunk: list[int] = []
    for teammate_id in ids:
        chunk.append(teammate_id)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def emails(session: Session, reminder_id: int,
           teammate_ids: Sequence[int]) -> list[tuple[str, mail.OutgoingEmail]]:
    """The batch's reminder emails, for those who still need one when it is sent."""
    reminder = session.get(EnrollmentReminder, reminder_id)
    workspace = session.get(Workspace, reminder.workspace_id) if reminder else None
    now = clock.now()
    if reminder is None or workspace is None or not _is_current(workspace, reminder, now):
        return []
    deadline = deadline_of(workspace, reminder.audience)
    assert deadline is not None
    keys_only = workspace.allowed_methods == "security_keys"
    built = []
    # Under security_keys an app no longer counts: the reminder asks for a key.
    templates = _Templates(workspace, KEY_REMINDER if keys_only else REMINDER, deadline)
    for teammate in session.scalars(select(Teammate).where(Teammate.id.in_(list(teammate_ids)))
                                    .order_by(Teammate.id)):
        compliant_since = teammate.webauthn_enabled_at if keys_only else teammate.enrolled_at
        if not state.still_to_enroll(teammate.status, compliant_since, teammate.exempt_until) \
                or teammate.role == "admin" or not _fits(reminder.audience, teammate):
            continue
        built.append(mail.keyed(f"reminder:{reminder.id}:{teammate.id}", teammate.email,
                                templates.rendered(teammate)))
    return built


class _Templates:
    """The reminder rendered once per (language, time zone) of the batch, then only the name
    substituted per teammate (services/email/template.py); a template that does more with
    the name than print it is rendered in full for each."""

    def __init__(self, workspace: Workspace, template: str, deadline: datetime) -> None:
        self.workspace, self.template, self.deadline = workspace, template, deadline
        self.made: dict[tuple[str | None, str | None], MessageTemplate | None] = {}

    def context(self, locale: str | None, zone: str | None) -> dict[str, str]:
        w = self.workspace
        return {"workspace_name": w.name, "workspace_slug": w.slug,
                "enroll_url": links.enroll_url(w.slug),
                "deadline": in_words(self.deadline, locale, zone)}

    def rendered(self, teammate: Teammate) -> Rendered:
        key = (teammate.locale, teammate.time_zone)
        if key not in self.made:
            made = MessageTemplate(self.template, self.context(*key), *key)
            self.made[key] = made if made.first_copy_matches(teammate.name) else None
        template = self.made[key]
        if template is None:
            return render(self.template, {**self.context(*key), "name": teammate.name}, *key)
        return Rendered(template.subject, *template.bodies(teammate.name))

