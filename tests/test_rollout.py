"""The enforcement rollout through the real API, relay, Celery worker and SMTP server."""

from __future__ import annotations

from typing import Any

from tests.conftest import WorkspaceHandle
from tests.stack import Stack, wait_until
from tests.twofactor import enroll_in_session


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
    ws.enroll_admin()  # an admin turns on their own 2FA before requiring it
    headers = ws.admin_headers()
    body = flip(ws, headers, True)
    assert body["require_two_factor"] is True and body["version"] == 1
    assert body["rollout"]["teammates"] == 121 and body["rollout"]["enrolled"] == 1

    addresses = [f"member-{i:05d}@{ws.slug}.test" for i in range(1, 121)]
    wait_until(lambda: all(stack.smtp.to(a) for a in addresses), 90, message="all invitations")
    for address in addresses:
        [mail] = stack.smtp.to(address)
        assert mail.subject == f"{ws.name} now requires two-factor authentication"
        assert "https://twofa.example.test/enroll" in mail.part("plain")
        assert "Acme &amp; Co &lt;Team&gt;" in mail.part("html")  # escaped in HTML
    # Enrolled already: the admin's only email says their 2FA is on, no invitation.
    assert all("now requires" not in m.subject for m in stack.smtp.to(ws.admin_email))


def test_rollout_counts_and_states_follow_the_sends(stack: Stack, make_workspace: Any) -> None:
    from services.db import unit_of_work
    from services.models import Teammate

    ws = make_workspace(teammates=30)
    with unit_of_work() as session:  # two teammates already have 2FA
        from sqlalchemy import select

        for t in session.scalars(select(Teammate).where(Teammate.email.in_(
                [f"member-00001@{ws.slug}.test", ws.admin_email]))).all():
            enroll_in_session(session, t.id)
    headers = {"Authorization": f"Bearer {_challenge_bypass_token(ws)}"}
    flip(ws, headers, True)

    def done() -> dict[str, Any] | None:
        counts = policy(ws, headers)["rollout"]
        return counts if counts["pending"] == 0 else None

    counts = wait_until(done, 60, message="rollout to finish")
    assert counts == {"teammates": 31, "enrolled": 2, "invited": 29, "pending": 0, "failed": 0,
                      "exempt": 0}
    # Enrolled: their only email says 2FA is on, no invitation.
    assert all("now requires" not in m.subject for m in stack.smtp.to(f"member-00001@{ws.slug}.test"))

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
        return sessions.open_session(session, admin, factor="totp")  # as if the app signed in


def test_flip_off_then_on_makes_a_new_version_and_old_tasks_do_nothing(
    stack: Stack, make_workspace: Any
) -> None:
    ws = make_workspace(teammates=40)
    _give_admin_2fa(ws)  # first: turning 2FA on ends the teammate's other sessions
    headers = {"Authorization": f"Bearer {_challenge_bypass_token(ws)}"}
    assert flip(ws, headers, True)["version"] == 1
    assert flip(ws, headers, False)["version"] == 2
    off = policy(ws, headers)
    assert off["require_two_factor"] is False
    assert off["rollout"] == {"teammates": 41, "enrolled": 1, "invited": 0, "pending": 0,
                              "failed": 0, "exempt": 0}
    assert flip(ws, headers, True)["version"] == 3
    assert flip(ws, headers, True)["version"] == 3  # the same answer again makes no version

    wait_until(lambda: policy(ws, headers)["rollout"]["pending"] == 0, 60, message="rollout")
    for i in range(1, 41):
        ids = [m.message_id for m in stack.smtp.to(f"member-{i:05d}@{ws.slug}.test")]
        assert sum(".v3." in x for x in ids) == 1, ids  # exactly one for the live version
        assert not any(".v2." in x for x in ids)  # v2 turned 2FA off: nothing to send
        assert len(ids) == len(set(ids))  # never the same message twice
    items = ws.client.get(f"/v1/workspaces/{ws.slug}/teammates?limit=100",
                          headers=headers).json()["items"]
    assert {i["enrollment"] for i in items} == {"invited", "enrolled"}


def test_admin_resend_is_a_new_message(stack: Stack, make_workspace: Any) -> None:
    ws = make_workspace(teammates=3)
    _give_admin_2fa(ws)
    headers = {"Authorization": f"Bearer {_challenge_bypass_token(ws)}"}
    flip(ws, headers, True)
    target = f"member-00002@{ws.slug}.test"
    wait_until(lambda: stack.smtp.to(target), 30, message="first invitation")
    items = ws.client.get(f"/v1/workspaces/{ws.slug}/teammates", headers=headers).json()["items"]
    teammate_id = next(i["id"] for i in items if i["email"] == target)
    r = ws.client.post(f"/v1/workspaces/{ws.slug}/teammates/{teammate_id}/enrollment-invitation",
                       headers=headers)
    assert r.status_code == 202, r.text
    wait_until(lambda: len(stack.smtp.to(target)) == 2, 30, message="the resend")
    first, second = stack.smtp.to(target)
    assert first.message_id != second.message_id


def test_undeliverable_invitations_end_as_failed(stack: Stack, make_workspace: Any) -> None:
    ws = make_workspace(teammates=6)
    _give_admin_2fa(ws)
    refused, deferred = f"member-00002@{ws.slug}.test", f"member-00004@{ws.slug}.test"
    stack.smtp.refuse.add(refused)  # 550: permanent, fails at once
    stack.smtp.defer.add(deferred)  # 451 forever: retried on the schedule, then failed
    headers = {"Authorization": f"Bearer {_challenge_bypass_token(ws)}"}
    flip(ws, headers, True)
    counts = wait_until(
        lambda: (c := policy(ws, headers)["rollout"])["pending"] == 0 and c, 60,
        message="rollout to settle")
    assert counts == {"teammates": 7, "enrolled": 1, "invited": 4, "pending": 0, "failed": 2,
                      "exempt": 0}
    items = ws.client.get(f"/v1/workspaces/{ws.slug}/teammates", headers=headers).json()["items"]
    states = {i["email"]: i["enrollment"] for i in items}
    assert states[refused] == states[deferred] == "failed"
    assert stack.smtp.to(f"member-00005@{ws.slug}.test")  # the rest of the batch went out


def _give_admin_2fa(ws: WorkspaceHandle) -> None:
    from services.db import unit_of_work
    with unit_of_work() as session:
        enroll_in_session(session, ws.admin_id)
