"""Host applications: API keys, /v1/checks/login, and the example host app driven end to end."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.conftest import WorkspaceHandle
from tests.stack import ROOT, Stack
from tests.twofactor import bearer, code, complete, enroll, password_login, steady, wrong_codes

MEMBER_PASSWORD = "member-password"


def member(ws: WorkspaceHandle, n: int = 1) -> str:
    return f"member-{n:05d}@{ws.slug}.test"


def new_key(ws: WorkspaceHandle, headers: dict[str, str], name: str = "host") -> dict[str, Any]:
    r = ws.client.post(f"/v1/workspaces/{ws.slug}/api-keys", headers=headers, json={"name": name})
    assert r.status_code == 201, r.text
    return dict(r.json())


def check(ws: WorkspaceHandle, key: str, email: str) -> Any:
    return ws.client.post("/v1/checks/login", headers=bearer(key), json={"email": email})


def host_app(twofa: TestClient, key: str, passwords: dict[str, str]) -> FastAPI:
    spec = importlib.util.spec_from_file_location("host_app", ROOT / "docs/examples/host_app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.create_app(twofa, key, passwords)  # type: ignore[no-any-return]


def host_token(page: str) -> str:
    """The CSRF token in the example host app's form."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def test_example_host_app_signs_a_teammate_in_end_to_end(stack: Stack, make_workspace: Any) -> None:
    steady()
    ws: WorkspaceHandle = make_workspace(teammates=1)
    key = new_key(ws, ws.admin_headers())
    member_token = password_login(ws.client, ws.slug, member(ws), MEMBER_PASSWORD)["token"]
    teammate_id = ws.client.get("/v1/me", headers=bearer(member_token)).json()["id"]
    secret = enroll(ws.client, member_token).secret

    app = host_app(ws.client, key["key"], {member(ws): "host-password"})
    host = TestClient(app)
    assert host.post("/login", data={"email": member(ws), "password": "wrong",
                                     "csrf_token": host_token(host.get("/").text)}).status_code == 401
    r = host.post("/login", data={"email": member(ws), "password": "host-password",
                                  "csrf_token": host_token(host.get("/").text)})
    assert r.status_code == 200, r.text
    challenge = re.search(r'name="challenge" value="([^"]+)"', r.text)
    assert challenge
    r = host.post("/two-factor", data={"challenge": challenge.group(1), "code": code(secret),
                                       "csrf_token": host_token(r.text)})
    assert r.status_code == 200 and r.url.path == "/private", r.text
    assert f"Welcome, teammate {teammate_id} of {ws.slug} ({member(ws)})" in r.text

    # The host's session holds a twofa session (server-side, never in the browser's cookie):
    # ending it in twofa ends it there.
    token, _ = app.state.sessions[host.cookies["session"]]
    assert token != host.cookies["session"]
    assert ws.client.post("/v1/logout", headers=bearer(token)).status_code == 204
    assert host.get("/private").url.path == "/"

    [listed] = ws.client.get(f"/v1/workspaces/{ws.slug}/api-keys",
                             headers=ws.admin_headers()).json()["items"]
    assert listed["prefix"] == key["key"][:len(listed["prefix"])] and "key" not in listed
    assert listed["last_used_at"] is not None


def test_check_answers_like_login(stack: Stack, make_workspace: Any) -> None:
    ws: WorkspaceHandle = make_workspace(teammates=2)
    admin = ws.admin_headers()
    key = new_key(ws, admin)["key"]
    assert key.startswith("twofa_sk_") and len(key) > 40

    body = check(ws, key, f"  {member(ws)} ").json()
    assert body["status"] == "authenticated"
    seen = ws.introspect(body["token"])
    assert seen["active"] and seen["level"] == "full" and seen["workspace"] == ws.slug
    assert seen["email"] == member(ws)

    for email in (f"nobody@{ws.slug}.test", "not an email", "x" * 300):
        r = check(ws, key, email)
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_teammate", email
    invited = ws.client.post(f"/v1/workspaces/{ws.slug}/teammates", headers=admin,
                             json={"email": f"new@{ws.slug}.test", "name": "New"})
    assert invited.status_code == 201
    assert check(ws, key, f"new@{ws.slug}.test").status_code == 404  # not joined yet
    assert check(ws, key, "").status_code == 422

    ws.require_two_factor()
    body = check(ws, key, member(ws, 2)).json()
    assert body["status"] == "enrollment_required"
    token = body["token"]
    # The enrollment token works for enrolling over /v1/me/two-factor/… and nothing else.
    assert ws.client.post("/v1/me/two-factor/setup", headers=bearer(token)).status_code == 200
    assert ws.client.get(f"/v1/workspaces/{ws.slug}/teammates",
                         headers=bearer(token)).status_code == 403


def test_keys_are_workspace_bound_revocable_and_only_for_checks(
        stack: Stack, make_workspace: Any) -> None:
    a: WorkspaceHandle = make_workspace(teammates=1)
    b: WorkspaceHandle = make_workspace(teammates=1)
    a_admin = a.admin_headers()
    key_a = new_key(a, a_admin)

    # A key of A cannot check B's teammates, nor reach anything but the check endpoints.
    r = check(a, key_a["key"], member(b))
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_teammate"
    assert a.client.get("/v1/me", headers=bearer(key_a["key"])).status_code == 401
    assert a.client.get(f"/v1/workspaces/{a.slug}/api-keys",
                        headers=bearer(key_a["key"])).status_code == 401

    # Bad keys: 401 invalid_api_key.
    session_token = a.login()["token"]
    for headers in ({}, bearer("twofa_sk_nope"), bearer(session_token), {"Authorization": "Basic x"}):
        r = a.client.post("/v1/checks/login", headers=headers, json={"email": member(a)})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key", headers

    # Only A's admins manage A's keys.
    member_token = password_login(a.client, a.slug, member(a), MEMBER_PASSWORD)["token"]
    assert a.client.post(f"/v1/workspaces/{a.slug}/api-keys", headers=bearer(member_token),
                         json={"name": "x"}).status_code == 403
    url = f"/v1/workspaces/{a.slug}/api-keys/{key_a['id']}"
    assert a.client.delete(url, headers=b.admin_headers()).status_code == 404
    assert a.client.delete(f"/v1/workspaces/{b.slug}/api-keys/{key_a['id']}",
                           headers=b.admin_headers()).status_code == 404
    assert a.client.delete(f"/v1/workspaces/{a.slug}/api-keys/abc", headers=a_admin).status_code == 422

    assert check(a, key_a["key"], member(a)).status_code == 200
    assert a.client.delete(url, headers=a_admin).status_code == 204
    r = check(a, key_a["key"], member(a))
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    [listed] = a.client.get(f"/v1/workspaces/{a.slug}/api-keys", headers=a_admin).json()["items"]
    assert listed["revoked_at"] is not None


def test_last_use_is_recorded_at_most_once_a_minute(stack: Stack, make_workspace: Any) -> None:
    from services.db import unit_of_work
    from services.host_checks.api_keys import LAST_USE_PRECISION
    from services.models import ApiKey, utcnow

    ws: WorkspaceHandle = make_workspace(teammates=1)
    admin = ws.admin_headers()
    key = new_key(ws, admin)

    def last_used() -> str | None:
        [listed] = ws.client.get(f"/v1/workspaces/{ws.slug}/api-keys",
                                 headers=admin).json()["items"]
        return listed["last_used_at"]  # type: ignore[no-any-return]

    assert last_used() is None
    assert check(ws, key["key"], member(ws)).status_code == 200
    first = last_used()
    assert first is not None  # the first use is recorded
    assert check(ws, key["key"], member(ws)).status_code == 200
    assert last_used() == first  # within the minute: no UPDATE of the key's row

    with unit_of_work() as session:  # the recorded use is now over a minute old
        row = session.get(ApiKey, key["id"])
        assert row is not None
        aged = row.last_used_at = utcnow() - LAST_USE_PRECISION - timedelta(seconds=1)
    assert check(ws, key["key"], member(ws)).status_code == 200
    again = last_used()
    assert again is not None and datetime.fromisoformat(again) > aged + LAST_USE_PRECISION


def test_throttle_and_replay_hold_through_the_check_path(stack: Stack, make_workspace: Any) -> None:
    steady(5)
    ws: WorkspaceHandle = make_workspace(teammates=1)
    key = new_key(ws, ws.admin_headers())["key"]
    member_token = password_login(ws.client, ws.slug, member(ws), MEMBER_PASSWORD)["token"]
    enrolled = enroll(ws.client, member_token)

    def challenge() -> str:
        body = check(ws, key, member(ws)).json()
        assert body["status"] == "two_factor_required", body
        return str(body["challenge"])

    value = code(enrolled.secret)
    assert complete(ws.client, challenge(), value).status_code == 200
    replay = complete(ws.client, challenge(), value)
    assert replay.status_code == 401 and replay.json()["error"]["code"] == "invalid_code"

    used = complete(ws.client, challenge(), enrolled.recovery_codes[0])
    assert used.status_code == 200
    assert complete(ws.client, challenge(), enrolled.recovery_codes[0]).status_code == 401

    # The recovery-code reuse above was failure 1; nine more wrong codes lock.
    answers = [complete(ws.client, challenge(), guess).status_code
               for guess in wrong_codes(enrolled.secret, 9)]
    assert answers == [401] * 9
    right = complete(ws.client, challenge(), code(enrolled.secret, 30))
    assert right.status_code == 429 and int(right.headers["retry-after"]) >= 1


def test_cli_creates_a_working_key(stack: Stack, make_workspace: Any) -> None:
    ws: WorkspaceHandle = make_workspace(teammates=1)
    done = subprocess.run([sys.executable, "-m", "workers.cli", "apikey", "create", ws.slug, "sso"],
                          env={**os.environ, **stack.env}, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    assert key.startswith("twofa_sk_")
    assert check(ws, key, member(ws)).json()["status"] == "authenticated"
    missing = subprocess.run([sys.executable, "-m", "workers.cli", "apikey", "create", "no-such", "x"],
                             env={**os.environ, **stack.env}, cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
    assert missing.returncode == 1 and "no-such" in missing.stderr
