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
    from services.email.smtp import SmtpMailer
    from services.enrollment import sending
    from services.models import EnrollmentInvitation

    ws = make_workspace(teammates=3)
    schedule_length = 3  # TWOFA_EMAIL_RETRY_SCHEDULE of the test stack: 0.5,1,1.5
    ids = _invitations(ws, [schedule_length, 0, 0])  # the first has used up its retries

    result = sending.send_batch(ids, claim="test-claim",
                                mailer_factory=lambda: SmtpMailer("smtp://127.0.0.1:9"))
    with unit_of_work() as session:
        rows = {r.id: r for r in session.scalars(
            select(EnrollmentInvitation).where(EnrollmentInvitation.id.in_(ids)))}
    assert [(rows[i].status, rows[i].attempts) for i in ids] == [
        ("failed", schedule_length + 1), ("pending", 1), ("pending", 1)]
    assert "cannot reach the SMTP server" in (rows[ids[1]].last_error or "")
    assert rows[ids[1]].next_attempt_at is not None and rows[ids[1]].lease_until is None
    assert result.failed == 1 and result.retry_in == 0.5  # the others' first delay
