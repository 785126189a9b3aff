"""The second deadline of `allowed_methods = security_keys`: switching while 2FA is required
holds teammates with only an app from `methods_enforce_at` (the switch time + the grace
period) and those without any method from `enforce_at`; each is reminded of their own
deadline, a new grace period moves both, and turning the requirement off cancels them all.
Over real HTTP to `twofa api` with the real relay, worker and SMTP server; hours pass by
moving the clock every process reads."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tests.conftest import Clock, WorkspaceHandle
from tests.stack import Stack, wait_until
from tests.twofactor import bearer, enroll
from tests.webauthn_authenticator import SoftKey

ORIGIN, RP_ID = "https://twofa.example.test", "twofa.example.test"
PASSWORD = "member-password"
KEY_REMINDER = "Reminder: add a security key or passkey for"


def member(ws: WorkspaceHandle, n: int) -> str:
    return f"member-{n:05d}@{ws.slug}.test"


def sign_in(ws: WorkspaceHandle, email: str) -> str:
    r = ws.client.post("/v1/login", json={"workspace": ws.slug, "email": email,
                                          "password": PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def add_key(ws: WorkspaceHandle, headers: dict[str, str]) -> SoftKey:
    key = SoftKey(rp_id=RP_ID, origin=ORIGIN)
    options = ws.client.post("/v1/me/two-factor/webauthn/options", headers=headers).json()
    r = ws.client.post("/v1/me/two-factor/webauthn", headers=headers,
                       json={"name": "Key", "credential": key.create(options["options"])})
    assert r.status_code == 201, r.text
    return key


def put_policy(ws: WorkspaceHandle, body: dict[str, Any]) -> dict[str, Any]:
    r = ws.client.put(f"/v1/workspaces/{ws.slug}/two-factor-policy", headers=ws.admin_headers(),
                      json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


def at(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text)


def in_words(when: datetime) -> str:
    return f"{when:%A} {when.day} {when:%B}, {when:%H:%M} UTC"


def reminders(stack: Stack, address: str) -> list[Any]:
    return [m for m in stack.smtp.to(address) if m.subject.startswith("Reminder:")]


def before(deadline: datetime, *hours: int) -> list[datetime]:
    return [deadline - timedelta(hours=h) for h in hours]


def test_app_only_teammates_are_reminded_of_the_methods_deadline(
        stack: Stack, make_ws: Any, clock: Clock) -> None:
    ws: WorkspaceHandle = make_ws(teammates=3)
    ws.enroll_admin()
    add_key(ws, ws.admin_headers())
    on = put_policy(ws, {"require_two_factor": True, "grace_period_hours": 48})
    enforce_at = at(on["enforce_at"])
    turned_on = enforce_at - timedelta(hours=48)
    enroll(ws.client, sign_in(ws, member(ws, 1)))  # member 1: an app only
    add_key(ws, bearer(sign_in(ws, member(ws, 3))))  # member 3: a key; member 2: nothing

    clock.advance(hours=12)
    switched = put_policy(ws, {"allowed_methods": "security_keys"})
    assert switched["version"] == 2 and switched["enforce_at"] == on["enforce_at"]
    methods_at = at(switched["methods_enforce_at"])
    assert abs(methods_at - (clock.now() + timedelta(hours=48))) < timedelta(minutes=1)
    # Those without any method keep enforce_at's reminders, the app-only get their own.
    assert [at(t) for t in switched["reminders_at"]] == sorted(
        before(enforce_at, 24, 1) + before(methods_at, 24, 1))

    # A new grace period moves both deadlines from their own starts, in the same version.
    longer = put_policy(ws, {"grace_period_hours": 72})
    assert longer["version"] == 2
    enforce_at = at(longer["enforce_at"])
    assert enforce_at == turned_on + timedelta(hours=72)
    assert at(longer["methods_enforce_at"]) == methods_at + timedelta(hours=24)
    methods_at = at(longer["methods_enforce_at"])
    assert [at(t) for t in longer["reminders_at"]] == sorted(
        before(enforce_at, 24, 1) + before(methods_at, 24, 1))
    changed = ws.client.get(f"/v1/workspaces/{ws.slug}/events",
                            params={"type": "twofa.policy.changed"},
                            headers=ws.admin_headers()).json()["items"][-1]["data"]
    assert changed["methods_enforce_at"] == longer["methods_enforce_at"]

    clock.advance(hours=36, minutes=1)  # 24 h before enforce_at: member 2's reminder
    [first] = wait_until(lambda: reminders(stack, member(ws, 2)), 60,
                         message="the reminder of enforce_at")
    assert first.subject.startswith(KEY_REMINDER)
    assert f"by {in_words(enforce_at)}" in " ".join(first.part("plain").split())
    assert reminders(stack, member(ws, 1)) == []  # their deadline is 12 hours later

    clock.advance(hours=12)  # 24 h before methods_enforce_at: member 1's reminder
    [second] = wait_until(lambda: reminders(stack, member(ws, 1)), 60,
                          message="the reminder of methods_enforce_at")
    assert second.subject.startswith(KEY_REMINDER)
    assert f"by {in_words(methods_at)}" in " ".join(second.part("plain").split())
    assert "an app alone no longer counts" in " ".join(second.part("plain").split())
    assert len(reminders(stack, member(ws, 2))) == 1  # its 1-hour one is 11 hours away
    assert reminders(stack, member(ws, 3)) == [] and reminders(stack, ws.admin_email) == []

    off = put_policy(ws, {"require_two_factor": False})
    assert off["reminders_at"] == [] and off["methods_enforce_at"] is None
    assert "pending" not in reminder_states(ws)  # both deadlines' 1-hour ones are cancelled


def reminder_states(ws: WorkspaceHandle) -> list[str]:
    """The workspace's reminders, as the operator's query shows them (docs/operations.md)."""
    from sqlalchemy import select

    from services.db import unit_of_work
    from services.models import EnrollmentReminder, Workspace

    with unit_of_work() as session:
        ws_id = session.scalar(select(Workspace.id).where(Workspace.slug == ws.slug))
        return list(session.scalars(select(EnrollmentReminder.status)
                                    .where(EnrollmentReminder.workspace_id == ws_id)))


def test_a_session_re_verified_with_a_key_is_full_under_security_keys(make_ws: Any) -> None:
    from tests.conftest import ADMIN_PASSWORD
    from tests.twofactor import code, steady

    steady()
    ws: WorkspaceHandle = make_ws()
    app = ws.enroll_admin()
    key = add_key(ws, ws.admin_headers())
    ws.require_two_factor()
    assert put_policy(ws, {"allowed_methods": "security_keys"})["allowed_methods"] == "security_keys"

    # The app still completes a sign-in, at enrollment level only: it is no allowed method.
    step = ws.client.post("/v1/login", json={"workspace": ws.slug, "email": ws.admin_email,
                                             "password": ADMIN_PASSWORD}).json()
    r = ws.client.post("/v1/login/two-factor", json={"challenge": step["challenge"],
                                                      "code": code(app.secret, 30)})
    assert r.status_code == 200 and r.json()["status"] == "enrollment_required", r.text
    held = bearer(r.json()["token"])
    assert ws.client.get("/v1/me", headers=held).json()["level"] == "enrollment"

    # Re-verified with the key, the same session is a key's: full.
    asked = ws.client.post("/v1/me/reauthenticate/options", headers=held).json()
    r = ws.client.post("/v1/me/reauthenticate", headers=held, json={
        "challenge": asked["challenge"], "webauthn": key.get(asked["options"])})
    assert r.status_code == 204, r.text
    assert ws.client.get("/v1/me", headers=held).json()["level"] == "full"
    assert ws.client.get(f"/v1/workspaces/{ws.slug}/teammates", headers=held).status_code == 200
