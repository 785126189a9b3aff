"""The enforcement rollout through the real API, relay, Celery worker and SMTP server."""

from __future__ import annotations

from typing import Any

from tests.conftest import WorkspaceHandle
from tests.stack import Stack, wait_until


def policy(ws: WorkspaceHandle, headers: dict[str, str]) -> dict[str, Any]:
    r = ws.client.get(f"/v1/workspaces/{ws.slug}/two-factor-policy", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def flip(ws: WorkspaceHandle, headers: dict[str, str], on: bool) -> dict[str, Any]:
    r = ws.client.put(f"/v1/workspaces/{ws.slug}/two-factor-policy", headers=headers,
                      json={"require_two_factor": on})
    assert r.status_code == 200, r.text
    return r.json()


def test_flip_invites_every_teammate_once(stack: Stack, make_workspace: Any) -> None:
    ws = make_workspace(teammates=120)
    headers = ws.admin_headers()
    body = flip(ws, headers, True)
    assert body["require_two_factor"] is True and body["version"] == 1
    assert body["rollout"]["teammates"] == 121

    # The admin has no 2FA either: from now on their session may only enroll.
    assert ws.client.get(f"/v1/workspaces/{ws.slug}/two-factor-policy",
                         headers=headers).json()["error"]["code"] == "enrollment_required"

    addresses = [f"member-{i:05d}@{ws.slug}.test" for i in range(1, 121)] + [ws.admin_email]
    wait_until(lambda: all(stack.smtp.to(a) for a in addresses), 90, message="all invitations")
    for address in addresses:
        [mail] = stack.smtp.to(address)
        assert mail.subject == f"{ws.name} now requires two-factor authentication"
        assert "https://twofa.example.test/enroll" in mail.part("plain")
        assert "Acme &amp; Co &lt;Team&gt;" in mail.part("html")  # escaped in HTML


def test_rollout_counts_and_states_follow_the_sends(stack: Stack, make_workspace: Any) -> None:
    from services.db import unit_of_work
    from services.models import Teammate

    ws = make_workspace(teammates=30)
    with unit_of_work() as session:  # two teammates already have 2FA
        from sqlalchemy import select

        from services.models import utcnow

        for t in session.scalars(select(Teammate).where(Teammate.email.in_(
                [f"member-00001@{ws.slug}.test", ws.admin_email]))):
            t.totp_enabled_at = utcnow()
    headers = {"Authorization": f"Bearer {_challenge_bypass_token(ws)}"}
    flip(ws, headers, True)

    def done() -> dict[str, Any] | None:
        counts = policy(ws, headers)["rollout"]
        return counts if counts["pending"] == 0 else None

    counts = wait_until(done, 60, message="rollout to finish")
    assert counts == {"teammates": 31, "enrolled": 2, "invited": 29, "pending": 0, "failed": 0}
    assert not stack.smtp.to(f"member-00001@{ws.slug}.test")  # enrolled: no invitation

    items = ws.client.get(f"/v1/workspaces/{ws.slug}/teammates?limit=500",
                          headers=headers).json()["items"]
    states = {i["email"]: i["enrollment"] for i in items}
    assert states[f"member-00001@{ws.slug}.test"] == "enrolled"
    assert states[f"member-00002@{ws.slug}.test"] == "invited"
    assert len(items) == 31

    events = ws.client.get(f"/v1/workspaces/{ws.slug}/events?type=twofa.enrollment.invited"
                           "&limit=500", headers=headers).json()["items"]
    assert len(events) == 29
    assert {e["data"]["policy_version"] for e in events} == {1}
    assert all(e["source"] == f"/workspaces/{ws.slug}" for e in events)


def _challenge_bypass_token(ws: WorkspaceHandle) -> str:
    """A full session for an admin who has 2FA (set directly above) without a TOTP secret."""
    from services.accounts import sessions
    from services.db import unit_of_work
    from services.models import Teammate

    with unit_of_work() as session:
        admin = session.get(Teammate, ws.admin_id)
        assert admin is not None
        return sessions.open_session(session, admin)
