"""Sending invitation batches against real databases and SMTP failures."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from tests.conftest import WorkspaceHandle
from tests.stack import Stack


def _invitations(ws: WorkspaceHandle, attempts: list[int]) -> list[int]:
    """Pending invitations for the first len(attempts) members, with earlier attempt counts."""
    from services.db import unit_of_work
    from services.models import EnrollmentInvitation, Teammate, Workspace

    with unit_of_work() as session:
        workspace = session.scalars(select(Workspace).where(Workspace.slug == ws.slug)).one()
        workspace.require_two_factor, workspace.policy_version = True, 1
        members = session.scalars(select(Teammate).where(
            Teammate.workspace_id == workspace.id, Teammate.role == "member")
            .order_by(Teammate.id)).all()
        rows = [EnrollmentInvitation(workspace_id=workspace.id, teammate_id=m.id,
                                     policy_version=1, attempts=n, resends=0)
                for m, n in zip(members, attempts, strict=False)]
        session.add_all(rows)
        session.flush()
        return [r.id for r in rows]


def test_an_unreachable_server_counts_one_attempt_per_invitation(
    stack: Stack, make_workspace: Any
) -> None:
    from services.db import unit_of_work
    from services.email.connections import Fresh
    from services.email.smtp import SmtpMailer
    from services.enrollment import sending
    from services.models import EnrollmentInvitation

    ws = make_workspace(teammates=3)
    schedule_length = 3  # TWOFA_EMAIL_RETRY_SCHEDULE of the test stack: 0.5,1,1.5
    ids = _invitations(ws, [schedule_length, 0, 0])  # the first has used up its retries

    result = sending.send_batch(ids, claim="test-claim",
                                mailers=Fresh(lambda: SmtpMailer("smtp://127.0.0.1:9")))
    with unit_of_work() as session:
        rows = {r.id: r for r in session.scalars(
            select(EnrollmentInvitation).where(EnrollmentInvitation.id.in_(ids)))}
    assert [(rows[i].status, rows[i].attempts) for i in ids] == [
        ("failed", schedule_length + 1), ("pending", 1), ("pending", 1)]
    assert "cannot reach the SMTP server" in (rows[ids[1]].last_error or "")
    assert rows[ids[1]].next_attempt_at is not None and rows[ids[1]].lease_until is None
    assert result.failed == 1 and result.retry_in == 0.5  # the others' first delay


def test_a_batch_sends_over_several_connections_and_records_each_once(
    stack: Stack, make_workspace: Any
) -> None:
    """TWOFA_SMTP_CONNECTIONS messages in flight at once against a slow server (never more:
    that is the bound on repeats after a crash), every invitation sent once and recorded with
    its event, and each event in exactly one outbox message."""
    from services.db import unit_of_work
    from services.enrollment import sending
    from services.models import EnrollmentInvitation, Event, OutboxMessage

    connections = int(stack.env["TWOFA_SMTP_CONNECTIONS"])
    ws = make_workspace(teammates=24)
    with unit_of_work() as session:  # else the sweep invites the admin, a send of its own
        from services import team_counts
        from services.models import Teammate, utcnow

        admin = session.get(Teammate, ws.admin_id)
        assert admin is not None
        admin.totp_enabled_at = utcnow()
        team_counts.recount(session, admin.workspace_id)  # set directly: count again
    ids = _invitations(ws, [0] * 24)
    domain = f"{ws.slug}.test"
    with unit_of_work() as session:
        outbox_before = {m.id for m in session.scalars(select(OutboxMessage))}
    stack.smtp.delay = 0.2
    try:
        result = sending.send_batch(ids, claim="test-parallel")
    finally:
        stack.smtp.delay = 0.0
    assert stack.smtp.most_in_flight[domain] == connections
    assert result.sent == 24 and result.failed == 0 and result.retry_in is None
    for i in range(1, 25):
        [mail] = stack.smtp.to(f"member-{i:05d}@{ws.slug}.test")
        assert mail.subject == f"{ws.name} now requires two-factor authentication"
        assert mail.part("plain").startswith(f"Hi Member {i},")  # each copy its own name
    with unit_of_work() as session:
        rows = session.scalars(select(EnrollmentInvitation).where(
            EnrollmentInvitation.id.in_(ids))).all()
        assert {r.status for r in rows} == {"sent"}
        assert all(r.message_id and r.message_id.startswith(f"<enroll.{r.teammate_id}.v1.r0@")
                   for r in rows)
        events = session.scalars(select(Event).where(
            Event.type == "twofa.enrollment.invited", Event.workspace_id == rows[0].workspace_id)
        ).all()
        assert sorted(e.data["teammate_id"] for e in events) == sorted(r.teammate_id for r in rows)
        dispatch = [m for m in session.scalars(select(OutboxMessage))
                    if m.id not in outbox_before and m.topic == "events.dispatch"
                    and set(m.payload["event_seqs"]) & {e.seq for e in events}]
    # Every event dispatched exactly once (outcomes recorded together share one message).
    assert sorted(s for m in dispatch for s in m.payload["event_seqs"]) == sorted(
        e.seq for e in events)
