"""The policy `allowed_methods = security_keys` through the real API, relay, Celery worker and
SMTP server: who counts as enrolled (compliant), the admin's guard, the preview, the rollout
that invites every app-only teammate once in their own wording, and what their app still
opens once they are held to it."""

from __future__ import annotations

from typing import Any

from tests.conftest import ADMIN_PASSWORD, WorkspaceHandle
from tests.stack import Stack, wait_until
from tests.twofactor import bearer, code, enroll, password_login, steady
from tests.webauthn_authenticator import SoftKey

ORIGIN, RP_ID = "https://twofa.example.test", "twofa.example.test"
MEMBER_PASSWORD = "member-password"


def member(ws: WorkspaceHandle, n: int) -> str:
    return f"member-{n:05d}@{ws.slug}.test"


def add_key(ws: WorkspaceHandle, token: str) -> SoftKey:
    key = SoftKey(rp_id=RP_ID, origin=ORIGIN)
    options = ws.client.post("/v1/me/two-factor/webauthn/options", headers=bearer(token)).json()
    r = ws.client.post("/v1/me/two-factor/webauthn", headers=bearer(token),
                       json={"name": "Key", "credential": key.create(options["options"])})
    assert r.status_code == 201, r.text
    return key


def put_policy(ws: WorkspaceHandle, token: str, body: dict[str, Any], status: int = 200) -> Any:
    r = ws.client.put(f"/v1/workspaces/{ws.slug}/two-factor-policy", headers=bearer(token), json=body)
    assert r.status_code == status, r.text
    return r.json()


def test_security_keys_only_rollout(stack: Stack, make_workspace: Any) -> None:
    steady()
    ws: WorkspaceHandle = make_workspace(teammates=6, password=MEMBER_PASSWORD)
    admin = ws.login()["token"]
    admin_app = enroll(ws.client, admin)  # the admin has an app, no key yet
    put_policy(ws, admin, {"require_two_factor": True})
    # Members 1–3 have an app only, member 4 a key, members 5 and 6 nothing yet.
    apps = {}
    for n in (1, 2, 3):
        token = password_login(ws.client, ws.slug, member(ws, n), MEMBER_PASSWORD)["token"]
        apps[n] = enroll(ws.client, token).secret
    member4 = password_login(ws.client, ws.slug, member(ws, 4), MEMBER_PASSWORD)["token"]
    add_key(ws, member4)

    refused = put_policy(ws, admin, {"allowed_methods": "security_keys"}, 409)
    assert refused["error"]["code"] == "admin_needs_security_key"
    preview = ws.client.get(f"/v1/workspaces/{ws.slug}/two-factor-policy/preview",
                            params={"allowed_methods": "security_keys"}, headers=bearer(admin)).json()
    assert preview["would_block"] == 6  # the admin, members 1–3, 5 and 6
    assert [a["email"] for a in preview["admins_without_two_factor"]] == [ws.admin_email]

    add_key(ws, admin)
    body = put_policy(ws, admin, {"allowed_methods": "security_keys"})
    assert body["allowed_methods"] == "security_keys" and body["version"] == 2
    assert body["methods_enforce_at"] is not None
    assert body["rollout"]["teammates"] == 7 and body["rollout"]["enrolled"] == 2  # admin, 4

    # Every app-only teammate is invited once, in the security-key wording; 5 and 6 too.
    subject = f"{ws.name} now requires a security key or passkey"

    def key_invitations(address: str) -> list[Any]:
        return [m for m in stack.smtp.to(address) if m.subject == subject]

    wanted = [member(ws, n) for n in (1, 2, 3, 5, 6)]
    wait_until(lambda: all(key_invitations(a) for a in wanted), 90,
               message="the security-key invitations")
    wait_until(lambda: ws.client.get(f"/v1/workspaces/{ws.slug}/two-factor-policy",
                                     headers=bearer(admin)).json()["rollout"]["pending"] == 0, 60,
               message="the rollout to finish")
    for address in wanted:
        [invitation] = key_invitations(address)
        assert "Add a security key" in invitation.part("html")
        assert "an app alone no longer counts" in invitation.part("plain")
    assert not key_invitations(member(ws, 4)) and not key_invitations(ws.admin_email)
    rollout = ws.client.get(f"/v1/workspaces/{ws.slug}/two-factor-policy",
                            headers=bearer(admin)).json()["rollout"]
    assert rollout == {"teammates": 7, "enrolled": 2, "exempt": 0, "invited": 5, "pending": 0,
                       "failed": 0}

    listed = ws.client.get(f"/v1/workspaces/{ws.slug}/teammates", params={"two_factor": "app_only"},
                           headers=bearer(admin)).json()["items"]
    assert sorted(t["email"] for t in listed) == sorted(member(ws, n) for n in (1, 2, 3))
    assert all(t["methods"] == ["totp"] and t["enrollment"] == "invited" for t in listed)
    csv = ws.client.get(f"/v1/workspaces/{ws.slug}/teammates/export.csv", headers=bearer(admin)).text
    assert csv.splitlines()[0].endswith(",methods") and "totp webauthn" in csv  # the admin

    # Held at once (no grace period): the app opens an enrollment-level session only.
    step = password_login(ws.client, ws.slug, member(ws, 1), MEMBER_PASSWORD)
    r = ws.client.post("/v1/login/two-factor", json={"challenge": step["challenge"],
                                                      "code": code(apps[1])})
    assert r.status_code == 200 and r.json()["status"] == "enrollment_required", r.text
    held = r.json()["token"]
    assert ws.client.get(f"/v1/workspaces/{ws.slug}/events", headers=bearer(held)).status_code == 403
    add_key(ws, held)  # adding a key is what it may do; then the session is full
    me = ws.client.get("/v1/me", headers=bearer(held)).json()
    assert me["level"] == "full" and me["two_factor"]["methods"] == ["totp", "webauthn"]

    # The admin's own app no longer makes a full session either; the key does.
    step = password_login(ws.client, ws.slug, ws.admin_email, ADMIN_PASSWORD)
    r = ws.client.post("/v1/login/two-factor", json={"challenge": step["challenge"],
                                                      "code": code(admin_app.secret, 30)})
    assert r.json()["status"] == "enrollment_required", r.text
    events = ws.client.get(f"/v1/workspaces/{ws.slug}/events", params={"type": "twofa.policy.changed"},
                           headers=bearer(admin)).json()["items"]
    assert [e["data"]["allowed_methods"] for e in events] == ["any", "security_keys"]
