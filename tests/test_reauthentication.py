"""Sensitive changes need a fresh second factor (GitHub's "sudo mode"): a session verified
within TWOFA_REAUTH_SECONDS, or the code in the request; POST /v1/me/reauthenticate renews it.
Over real HTTP to `twofa api`; a session's verification is aged in the database, as if the
time had passed."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import WorkspaceHandle
from tests.stack import Stack
from tests.test_console_pages import console_client, session_cookie, token_of
from tests.test_console_pages import enroll as console_enroll
from tests.test_console_pages import sign_in as console_sign_in
from tests.trust import (
    age_verification,
    enrolled_member,
    error_code,
    member,
    password_sign_in,
    reauthenticate,
    sign_in_with_code,
)
from tests.twofactor import bearer, code, steady, wrong_codes


def admin_token(ws: WorkspaceHandle) -> str:
    ws.enroll_admin()
    return ws.admin_headers()["Authorization"].split()[1]


def sensitive_admin_calls(ws: WorkspaceHandle, target: int) -> list[tuple[str, str, Any]]:
    base = f"/v1/workspaces/{ws.slug}"
    return [
        ("post", f"{base}/teammates/{target}/bypass-code", None),
        ("patch", f"{base}/teammates/{target}", {"role": "admin"}),
        ("delete", f"{base}/teammates/{target}/two-factor", None),
        ("put", f"{base}/two-factor-policy", {"require_two_factor": False}),
        ("post", f"{base}/api-keys", {"name": "ci"}),
        ("post", f"{base}/webhooks", {"url": "https://hooks.example.com/x", "event_types": ["*"]}),
    ]


def test_a_stale_admin_session_must_reauthenticate_for_every_sensitive_change(
        make_ws: Any) -> None:
    steady(8)
    ws = make_ws(teammates=1)
    token = admin_token(ws)
    ws.require_two_factor()
    _, _, target = enrolled_member(ws)
    age_verification(token)
    for method, path, body in sensitive_admin_calls(ws, target):
        r = ws.client.request(method, path, headers=bearer(token), json=body)
        assert r.status_code == 403 and error_code(r) == "reauthentication_required", (path, r.text)
    # Nothing changed: the member still has 2FA and is no admin; the policy is still on.
    r = ws.client.get(f"/v1/workspaces/{ws.slug}/teammates/{target}", headers=bearer(token))
    assert r.json()["role"] == "member" and r.json()["two_factor_enabled"] is True
    # Not sensitive: demoting, reading, setting only the grace period.
    assert ws.client.put(f"/v1/workspaces/{ws.slug}/two-factor-policy", headers=bearer(token),
                         json={"grace_period_hours": 0}).status_code == 200

    assert ws.admin_secret
    wrong = ws.client.post("/v1/me/reauthenticate", headers=bearer(token),
                           json={"code": wrong_codes(ws.admin_secret, 1)[0]})
    assert wrong.status_code == 401 and error_code(wrong) == "invalid_code"
    reauthenticate(ws, token, ws.admin_secret)
    for method, path, body in sensitive_admin_calls(ws, target):
        r = ws.client.request(method, path, headers=bearer(token), json=body)
        assert r.status_code in (200, 201, 204), (path, r.text)


def test_refusals_that_come_before_reauthentication(make_ws: Any) -> None:
    steady(8)
    ws = make_ws(teammates=1)
    token = admin_token(ws)
    ws.require_two_factor()
    age_verification(token)
    base = f"/v1/workspaces/{ws.slug}"
    r = ws.client.patch(f"{base}/teammates/999999", headers=bearer(token), json={"role": "admin"})
    assert r.status_code == 404, r.text
    r = ws.client.patch(f"{base}/teammates/{ws.admin_id}", headers=bearer(token),
                        json={"role": "owner"})
    assert r.status_code == 422, r.text
    r = ws.client.request("delete", "/v1/me/two-factor", headers=bearer(token), json={})
    assert r.status_code == 403 and error_code(r) == "two_factor_mandatory", r.text
    r = ws.client.patch(f"{base}/teammates/{ws.admin_id}", headers=bearer(token),
                        json={"role": "member"})
    assert r.status_code == 409 and error_code(r) == "last_admin", r.text


def test_own_2fa_changes_take_a_code_or_a_fresh_session(make_ws: Any) -> None:
    steady(12)
    ws = make_ws(teammates=1)
    token, secret, _ = enrolled_member(ws)
    age_verification(token)
    for method, path in (("post", "/v1/me/two-factor/recovery-codes"),
                         ("post", "/v1/me/two-factor/replace"),
                         ("delete", "/v1/me/two-factor")):
        r = ws.client.request(method, path, headers=bearer(token), json={})
        assert r.status_code == 403 and error_code(r) == "reauthentication_required", (path, r.text)
        # A code that is sent is always checked.
        r = ws.client.request(method, path, headers=bearer(token),
                              json={"code": wrong_codes(secret, 1)[0]})
        assert r.status_code == 401 and error_code(r) == "invalid_code", (path, r.text)
    r = ws.client.post("/v1/me/two-factor/recovery-codes", headers=bearer(token),
                       json={"code": code(secret)})
    assert r.status_code == 200, r.text
    # That code verified the session: the next change needs none for a while.
    r = ws.client.post("/v1/me/two-factor/recovery-codes", headers=bearer(token), json={})
    assert r.status_code == 200, r.text
    age_verification(token)
    reauthenticate(ws, token, secret, 30)
    r = ws.client.request("delete", "/v1/me/two-factor", headers=bearer(token), json={})
    assert r.status_code == 204, r.text


def test_a_teammate_without_2fa_is_never_asked(make_ws: Any) -> None:
    ws = make_ws(teammates=1)
    token = ws.admin_headers()["Authorization"].split()[1]  # no 2FA, not required
    age_verification(token)
    r = ws.client.post(f"/v1/workspaces/{ws.slug}/api-keys", headers=bearer(token),
                       json={"name": "ci"})
    assert r.status_code == 201, r.text
    r = ws.client.post("/v1/me/reauthenticate", headers=bearer(token), json={"code": "123456"})
    assert r.status_code == 409 and error_code(r) == "two_factor_not_enabled", r.text


def test_a_bypass_session_counts_only_for_a_new_phone_and_a_host_session_never(
        make_ws: Any) -> None:
    steady(8)
    ws = make_ws(teammates=1)
    _, secret, target = enrolled_member(ws)
    issued = ws.client.post(f"/v1/workspaces/{ws.slug}/teammates/{target}/bypass-code",
                            headers=ws.admin_headers())
    assert issued.status_code == 201, issued.text
    bypassed = sign_in_with_code(ws, member(ws), issued.json()["code"])
    r = ws.client.post("/v1/me/two-factor/recovery-codes", headers=bearer(bypassed), json={})
    assert r.status_code == 403 and error_code(r) == "reauthentication_required", r.text
    r = ws.client.post("/v1/me/two-factor/replace", headers=bearer(bypassed), json={})
    assert r.status_code == 200, r.text

    # A host session: the host vouched for the password, the code it completed never counts.
    host = ws.client.post("/v1/checks/login", headers=bearer(ws.api_key()),
                          json={"email": member(ws)}).json()
    done = ws.client.post("/v1/login/two-factor", json={"challenge": host["challenge"],
                                                        "code": code(secret, 30)})
    host_token = done.json()["token"]
    r = ws.client.post("/v1/me/two-factor/recovery-codes", headers=bearer(host_token), json={})
    assert r.status_code == 403 and error_code(r) == "reauthentication_required", r.text


@pytest.fixture
def browser(stack: Stack) -> Iterator[TestClient]:
    from services.asgi import create_app

    with console_client(create_app()) as c:
        yield c


def test_the_console_sends_a_stale_session_to_reauthenticate_and_back(
        browser: TestClient, make_workspace: Any) -> None:
    steady(8)
    ws: WorkspaceHandle = make_workspace(teammates=1)
    console_sign_in(browser, ws)
    totp, _ = console_enroll(browser)
    member_token = password_sign_in(ws, member(ws))["token"]
    target = int(ws.client.get("/v1/me", headers=bearer(member_token)).json()["id"])
    cookie = session_cookie(browser)
    assert cookie
    age_verification(cookie)

    r = browser.post(f"/admin/teammates/{target}/role",
                     data={"csrf_token": token_of(browser, "/admin/teammates"), "role": "admin"})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/reauthenticate?next=/admin/teammates"
    page = browser.get(r.headers["location"]).text
    assert re.search(r'<label for="code">Code</label>', page) and ">Verify</button>" in page
    r = browser.post("/reauthenticate", data={
        "csrf_token": token_of(browser, "/reauthenticate?next=/admin/teammates"),
        "code": "000000" if totp.now() != "000000" else "111111", "next": "/admin/teammates"})
    assert r.status_code == 400 and "not valid" in r.text
    r = browser.post("/reauthenticate", data={
        "csrf_token": token_of(browser, "/reauthenticate"), "code": totp.at(time.time() + 30),
        "next": "//evil.example/"})
    assert r.status_code == 303 and r.headers["location"] == "/", r.text
    r = browser.post(f"/admin/teammates/{target}/role",
                     data={"csrf_token": token_of(browser, "/admin/teammates"), "role": "admin"})
    assert r.status_code == 303 and "notice=role" in r.headers["location"], r.text


def test_changing_the_allowed_methods_is_a_sensitive_change(make_ws: Any) -> None:
    from tests.webauthn_authenticator import SoftKey

    steady(8)
    ws = make_ws(teammates=1)
    token = admin_token(ws)
    key = SoftKey(rp_id="twofa.example.test", origin="https://twofa.example.test")
    options = ws.client.post("/v1/me/two-factor/webauthn/options", headers=bearer(token)).json()
    r = ws.client.post("/v1/me/two-factor/webauthn", headers=bearer(token),
                       json={"name": "Key", "credential": key.create(options["options"])})
    assert r.status_code == 201, r.text
    ws.require_two_factor()
    policy = f"/v1/workspaces/{ws.slug}/two-factor-policy"
    age_verification(token)
    r = ws.client.put(policy, headers=bearer(token), json={"allowed_methods": "security_keys"})
    assert r.status_code == 403 and error_code(r) == "reauthentication_required", r.text
    r = ws.client.get(policy, headers=bearer(token))
    assert r.json()["allowed_methods"] == "any" and r.json()["version"] == 1  # nothing changed
    # Naming the methods it already has changes nothing, so nothing is asked.
    r = ws.client.put(policy, headers=bearer(token), json={"allowed_methods": "any"})
    assert r.status_code == 200, r.text
    assert ws.admin_secret
    reauthenticate(ws, token, ws.admin_secret)
    r = ws.client.put(policy, headers=bearer(token), json={"allowed_methods": "security_keys"})
    assert r.status_code == 200 and r.json()["allowed_methods"] == "security_keys", r.text


def test_the_console_asks_again_before_switching_the_allowed_methods(
        browser: TestClient, make_workspace: Any) -> None:
    steady(8)
    ws: WorkspaceHandle = make_workspace()
    console_sign_in(browser, ws)
    console_enroll(browser)
    cookie = session_cookie(browser)
    assert cookie
    age_verification(cookie)
    form = {"csrf_token": token_of(browser, "/admin/authentication"), "grace_period_hours": "0"}
    r = browser.post("/admin/authentication", data={**form, "allowed_methods": "security_keys"})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/reauthenticate?next=/admin/authentication"
    r = browser.post("/admin/authentication", data={**form, "allowed_methods": "any"})
    assert r.status_code == 303 and "saved=" in r.headers["location"], r.text
