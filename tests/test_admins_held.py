"""Admins are held to 2FA at once while the workspace requires it: no grace period, no
exemption, invitations without a deadline and no reminders; `last_admin` counts admins who
have 2FA. Over real HTTP to `twofa api`, with the real relay, worker and SMTP server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import Clock, WorkspaceHandle
from tests.stack import Stack, wait_until
from tests.trust import error_code, events, me, member, password_sign_in
from tests.twofactor import bearer


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat()


def teammate_id(ws: WorkspaceHandle, email: str) -> int:
    r = ws.client.get(f"/v1/workspaces/{ws.slug}/teammates", params={"q": email},
                      headers=ws.admin_headers())
    [item] = r.json()["items"]
    return int(item["id"])


def set_role(ws: WorkspaceHandle, target: int, role: str) -> Any:
    return ws.client.patch(f"/v1/workspaces/{ws.slug}/teammates/{target}",
                           headers=ws.admin_headers(), json={"role": role})


def require_with_grace(ws: WorkspaceHandle, hours: int = 48) -> None:
    ws.enroll_admin()
    r = ws.client.put(f"/v1/workspaces/{ws.slug}/two-factor-policy", headers=ws.admin_headers(),
                      json={"require_two_factor": True, "grace_period_hours": hours})
    assert r.status_code == 200 and r.json()["enforce_at"], r.text


def test_a_promoted_admin_without_2fa_is_held_at_once_during_a_grace_period(
        make_ws: Any) -> None:
    ws = make_ws(teammates=2)
    require_with_grace(ws)
    earlier = password_sign_in(ws, member(ws, 1))
    assert earlier["status"] == "authenticated"  # a member within the grace period
    promoted = teammate_id(ws, member(ws, 1))
    assert set_role(ws, promoted, "admin").status_code == 200

    # The password alone no longer opens a full session for them, new or old.
    now = password_sign_in(ws, member(ws, 1))
    assert now["status"] == "enrollment_required", now
    for token in (now["token"], earlier["token"]):
        mine = me(ws, token)
        assert mine["level"] == "enrollment" and mine["two_factor"]["enforced"] is True
        # The review's attack: a bypass code for the owner from the promoted admin's session.
        r = ws.client.post(f"/v1/workspaces/{ws.slug}/teammates/{ws.admin_id}/bypass-code",
                           headers=bearer(token))
        assert r.status_code == 403 and error_code(r) == "enrollment_required", r.text
        r = ws.client.put(f"/v1/workspaces/{ws.slug}/two-factor-policy", headers=bearer(token),
                          json={"require_two_factor": False})
        assert r.status_code == 403 and error_code(r) == "enrollment_required", r.text
    assert ws.introspect(now["token"])["level"] == "enrollment"
    # A member keeps the grace period.
    assert password_sign_in(ws, member(ws, 2))["status"] == "authenticated"


def test_admins_cannot_be_exempt_and_promotion_ends_an_exemption(make_ws: Any) -> None:
    ws = make_ws(teammates=2)
    second_admin = teammate_id(ws, member(ws, 2))
    assert set_role(ws, second_admin, "admin").status_code == 200
    body = {"until": iso(datetime.now(UTC) + timedelta(days=3)), "reason": "travel"}
    # Whether or not 2FA is required.
    for _ in range(2):
        r = ws.client.put(f"/v1/workspaces/{ws.slug}/teammates/{second_admin}/exemption",
                          headers=ws.admin_headers(), json=body)
        assert r.status_code == 422 and error_code(r) == "admin_cannot_be_exempt", r.text
        ws.require_two_factor()

    exempt = teammate_id(ws, member(ws, 1))
    r = ws.client.put(f"/v1/workspaces/{ws.slug}/teammates/{exempt}/exemption",
                      headers=ws.admin_headers(), json=body)
    assert r.status_code == 200, r.text
    r = set_role(ws, exempt, "admin")
    assert r.status_code == 200 and r.json()["enrollment"] != "exempt", r.text
    ended = [e["data"] for e in events(ws, "twofa.exemption.ended")]
    assert [(d["teammate_id"], d["by"], d["actor_id"]) for d in ended] == [
        (exempt, "promotion", ws.admin_id)]
    token = password_sign_in(ws, member(ws, 1))["token"]
    assert me(ws, token)["level"] == "enrollment"


def test_last_admin_counts_only_admins_with_2fa_while_required(make_ws: Any) -> None:
    ws = make_ws(teammates=1)
    ws.require_two_factor()
    other = teammate_id(ws, member(ws, 1))
    assert set_role(ws, other, "admin").status_code == 200
    # The other admin has no 2FA: demoting the owner would leave no admin able to act.
    r = set_role(ws, ws.admin_id, "member")
    assert r.status_code == 409 and error_code(r) == "last_admin", r.text
    r = ws.client.delete(f"/v1/workspaces/{ws.slug}/teammates/{ws.admin_id}",
                         headers=ws.admin_headers())
    assert r.status_code == 409 and error_code(r) == "last_admin", r.text


def invitations_to(stack: Stack, address: str) -> list[Any]:
    return [m for m in stack.smtp.to(address) if "requires two-factor" in m.subject]


def reminders_to(stack: Stack, address: str) -> list[Any]:
    return [m for m in stack.smtp.to(address) if m.subject.startswith("Reminder:")]


def test_admins_get_invitations_without_a_deadline_and_no_reminders(
        stack: Stack, make_ws: Any, clock: Clock) -> None:
    ws = make_ws(teammates=2)
    admin2 = teammate_id(ws, member(ws, 2))
    assert set_role(ws, admin2, "admin").status_code == 200
    require_with_grace(ws, hours=30)
    [to_member] = wait_until(lambda: invitations_to(stack, member(ws, 1)), 60,
                             message="the member's invitation")
    [to_admin] = wait_until(lambda: invitations_to(stack, member(ws, 2)), 60,
                            message="the admin's invitation")
    assert "set it up by" in to_member.part("plain")
    assert "set it up by" not in to_admin.part("plain")
    assert "Until you set it up, signing in only lets you set it up" in " ".join(
        to_admin.part("plain").split())
    clock.advance(hours=6, minutes=1)  # the 24-hour reminder is due
    wait_until(lambda: reminders_to(stack, member(ws, 1)), 60, message="the member's reminder")
    # Who the reminder went to is planned in one go: the admin is not among them.
    assert admin2 not in reminded_ids() and teammate_id(ws, member(ws, 1)) in reminded_ids()
    assert reminders_to(stack, member(ws, 2)) == []


def reminded_ids() -> set[int]:
    from sqlalchemy import select

    from services.db import unit_of_work
    from services.models import OutboxMessage
    from services.topics import Topic

    with unit_of_work() as session:
        payloads = session.scalars(select(OutboxMessage.payload).where(
            OutboxMessage.topic == Topic.SEND_REMINDER_BATCH.value)).all()
    return {i for p in payloads for i in p["teammate_ids"]}


def add_key(ws: WorkspaceHandle, headers: dict[str, str]) -> None:
    from tests.webauthn_authenticator import SoftKey

    key = SoftKey(rp_id="twofa.example.test", origin="https://twofa.example.test")
    options = ws.client.post("/v1/me/two-factor/webauthn/options", headers=headers).json()
    r = ws.client.post("/v1/me/two-factor/webauthn", headers=headers,
                       json={"name": "Key", "credential": key.create(options["options"])})
    assert r.status_code == 201, r.text


def test_last_admin_counts_admins_who_hold_an_allowed_method(make_ws: Any) -> None:
    from tests.twofactor import enroll

    # Under `any`, another admin with only a security key can act: the owner may step down.
    ws = make_ws(teammates=1)
    ws.require_two_factor()
    held = password_sign_in(ws, member(ws, 1))
    assert held["status"] == "enrollment_required"
    add_key(ws, bearer(held["token"]))
    assert set_role(ws, teammate_id(ws, member(ws, 1)), "admin").status_code == 200
    r = set_role(ws, ws.admin_id, "member")
    assert r.status_code == 200, r.text

    # Under `security_keys`, another admin with only an app cannot: they may only add a key.
    ws = make_ws(teammates=1)
    ws.enroll_admin()
    add_key(ws, ws.admin_headers())
    ws.require_two_factor()
    held = password_sign_in(ws, member(ws, 1))
    enroll(ws.client, held["token"])
    assert set_role(ws, teammate_id(ws, member(ws, 1)), "admin").status_code == 200
    r = ws.client.put(f"/v1/workspaces/{ws.slug}/two-factor-policy", headers=ws.admin_headers(),
                      json={"allowed_methods": "security_keys"})
    assert r.status_code == 200, r.text
    r = set_role(ws, ws.admin_id, "member")
    assert r.status_code == 409 and error_code(r) == "last_admin", r.text
