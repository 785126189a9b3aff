"""Teammates join, sign in, and meet the enrollment-only level; the API's error contract."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.conftest import ADMIN_PASSWORD, WorkspaceHandle
from tests.stack import Stack, wait_until


def _add_teammate(ws: WorkspaceHandle, headers: dict[str, str], email: str) -> dict[str, Any]:
    r = ws.client.post(f"/v1/workspaces/{ws.slug}/teammates", headers=headers,
                       json={"email": email, "name": "New <Person>", "role": "member"})
    assert r.status_code == 201, r.text
    return r.json()


def _accept_link(stack: Stack, email: str) -> str:
    [mail] = wait_until(
        lambda: [m for m in stack.smtp.to(email) if m.subject.startswith("You have been invited")],
        30, message="join email")
    url = re.search(r"https://twofa\.example\.test/join\?token=\S+", mail.part("plain"))
    assert url, mail.part("plain")
    assert "New &lt;Person&gt;" in mail.part("html")
    return parse_qs(urlsplit(url.group(0)).query)["token"][0]


def test_new_teammate_joins_and_signs_in(stack: Stack, workspace: WorkspaceHandle) -> None:
    headers = workspace.admin_headers()
    email = f"newbie@{workspace.slug}.test"
    created = _add_teammate(workspace, headers, email)
    assert created["enrollment"] == "not_required" and created["two_factor_enabled"] is False
    token = _accept_link(stack, email)

    r = workspace.client.post("/v1/invitations/accept",
                              json={"token": token, "password": "a-good-password", "name": "Nu"})
    assert r.status_code == 200 and r.json()["status"] == "authenticated", r.text
    # The link works once.
    again = workspace.client.post("/v1/invitations/accept",
                                  json={"token": token, "password": "another-password"})
    # Same answers as /v1/login, whose only 401 code is invalid_credentials.
    assert again.status_code == 401 and again.json()["error"]["code"] == "invalid_credentials"
    assert "invitation" in again.json()["error"]["message"]

    body = workspace.login(email, "a-good-password")
    assert body["status"] == "authenticated"
    me = workspace.client.get("/v1/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.json()["name"] == "Nu" and me.json()["two_factor"]["required"] is False


def test_while_required_new_teammates_may_only_enroll(
    stack: Stack, workspace: WorkspaceHandle
) -> None:
    workspace.enroll_admin()
    headers = workspace.admin_headers()
    r = workspace.client.put(f"/v1/workspaces/{workspace.slug}/two-factor-policy",
                             headers=headers, json={"require_two_factor": True})
    assert r.status_code == 200 and r.json()["require_two_factor"] is True
    assert r.json()["rollout"]["teammates"] == r.json()["rollout"]["enrolled"] == 1
    policy = workspace.client.get(f"/v1/workspaces/{workspace.slug}/two-factor-policy",
                                  headers=headers).json()
    assert policy["version"] == r.json()["version"] and policy["require_two_factor"] is True
    email = f"late@{workspace.slug}.test"
    assert _add_teammate(workspace, headers, email)["enrollment"] == "pending"
    token = _accept_link(stack, email)
    r = workspace.client.post("/v1/invitations/accept",
                              json={"token": token, "password": "a-good-password"})
    assert r.json()["status"] == "enrollment_required"
    limited = {"Authorization": f"Bearer {r.json()['token']}"}

    me = workspace.client.get("/v1/me", headers=limited)
    assert me.status_code == 200 and me.json()["two_factor"] == {
        "enabled": False, "required": True, "enforced": True, "enforce_at": None,
        "enrolled_at": None, "recovery_codes_left": 0, "methods": []}
    denied = workspace.client.get(f"/v1/workspaces/{workspace.slug}/teammates", headers=limited)
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "enrollment_required"
    intro = workspace.introspect(r.json()["token"])
    assert intro["level"] == "enrollment" and intro["active"] is True

    again = workspace.login(email, "a-good-password")
    assert again["status"] == "enrollment_required"
    assert workspace.client.post("/v1/logout", headers=limited).status_code == 204
    assert workspace.introspect(r.json()["token"]) == {"active": False}


def test_sessions_opened_before_the_flip_drop_to_enrollment(make_workspace: Any) -> None:
    workspace = make_workspace(teammates=1)
    token = workspace.login(f"member-00001@{workspace.slug}.test", "member-password")["token"]
    assert workspace.introspect(token)["level"] == "full"
    workspace.require_two_factor()
    assert workspace.introspect(token)["level"] == "enrollment"


def test_admin_endpoints_check_role_and_workspace(make_workspace: Any) -> None:
    ours, theirs = make_workspace(), make_workspace()
    their_admin = theirs.admin_headers()
    r = ours.client.get(f"/v1/workspaces/{ours.slug}/two-factor-policy", headers=their_admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "workspace_not_found"

    from services.accounts import workspaces
    from services.db import unit_of_work

    with unit_of_work() as session:
        workspaces.seed(session, workspaces.get_by_slug(session, ours.slug), 1, "member-password")
    member = ours.login(f"member-00001@{ours.slug}.test", "member-password")
    member_headers = {"Authorization": f"Bearer {member['token']}"}
    for method, path, body in [
        ("GET", "two-factor-policy", None),
        ("PUT", "two-factor-policy", {"require_two_factor": True}),
        ("GET", "teammates", None),
        ("POST", "teammates", {"email": "x@y.test", "role": "admin"}),
        ("GET", "events", None),
    ]:
        r = ours.client.request(method, f"/v1/workspaces/{ours.slug}/{path}",
                                headers=member_headers, json=body)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", (path, r.text)


def test_bad_input_is_a_clear_4xx(workspace: WorkspaceHandle) -> None:
    c = workspace.client
    headers = workspace.admin_headers()
    cases = [
        c.post("/v1/login", content=b"{not json", headers={"content-type": "application/json"}),
        c.post("/v1/login", json={"workspace": workspace.slug}),
        c.post("/v1/login", json={"workspace": 1, "email": [], "password": None}),
        c.put(f"/v1/workspaces/{workspace.slug}/two-factor-policy", headers=headers,
              json={"require_two_factor": "perhaps"}),
        c.get(f"/v1/workspaces/{workspace.slug}/teammates?limit=0", headers=headers),
        c.get(f"/v1/workspaces/{workspace.slug}/teammates?cursor=abc", headers=headers),
        c.post(f"/v1/workspaces/{workspace.slug}/teammates", headers=headers,
               json={"email": "not-an-address", "role": "member"}),
        c.post(f"/v1/workspaces/{workspace.slug}/teammates", headers=headers,
               json={"email": "a@b.test", "role": "owner"}),
        c.post("/v1/login", json={"workspace": "x", "email": "a@b.c", "password": "p" * 5000}),
    ]
    for r in cases:
        assert 400 <= r.status_code < 500, r.text
        assert set(r.json()["error"]) == {"code", "message"} and r.json()["error"]["message"]
    assert c.get("/v1/nowhere").json()["error"]["code"] == "not_found"
    assert c.get("/v1/me").status_code == 401
    assert c.get("/v1/me", headers={"Authorization": "Bearer nope"}).status_code == 401
    dup = c.post(f"/v1/workspaces/{workspace.slug}/teammates", headers=headers,
                 json={"email": workspace.admin_email, "role": "member"})
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "teammate_exists"
    assert c.get("/healthz").status_code == 200
    assert c.get("/openapi.json").json()["info"]["title"] == "twofa"


def test_wrong_passwords_are_refused_and_throttled_per_address(
    workspace: WorkspaceHandle,
) -> None:
    from services.accounts import ip_throttle

    c = workspace.client
    wrong = {"workspace": workspace.slug, "email": workspace.admin_email, "password": "nope-nope"}
    r = c.post("/v1/login", json=wrong)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials"
    # A team signing in correctly from one address is never blocked...
    for _ in range(ip_throttle.MAX_FAILURES + 5):
        assert workspace.login()["status"] == "authenticated"
    # ...but failures from it are: the TestClient's address is "testclient".
    codes = [c.post("/v1/login", json=wrong).status_code
             for _ in range(ip_throttle.MAX_FAILURES)]
    assert codes[-1] == 429 and 401 in codes
    blocked = c.post("/v1/login", json={**wrong, "password": ADMIN_PASSWORD})
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    _reset_ip_throttle()


def _reset_ip_throttle() -> None:
    """The session shares one client address: later tests must not start blocked."""
    from sqlalchemy import delete

    from services.db import unit_of_work
    from services.models import LoginThrottle

    with unit_of_work() as session:
        session.execute(delete(LoginThrottle))
