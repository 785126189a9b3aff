"""A lost or new phone: an admin's single-use bypass code, and replacing the authenticator,
over real HTTP to `twofa api`."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import WorkspaceHandle
from tests.trust import age_verification
from tests.twofactor import bearer, code, enroll, steady


def member(ws: WorkspaceHandle) -> str:
    return f"member-00001@{ws.slug}.test"


def challenge(ws: WorkspaceHandle) -> str:
    r = ws.client.post("/v1/login", json={"workspace": ws.slug, "email": member(ws),
                                          "password": "member-password"})
    assert r.json()["status"] == "two_factor_required", r.text
    return str(r.json()["challenge"])


def complete(ws: WorkspaceHandle, value: str) -> httpx.Response:
    return ws.client.post("/v1/login/two-factor", json={"challenge": challenge(ws), "code": value})


def enrolled_member(ws: WorkspaceHandle) -> tuple[str, str, int]:
    r = ws.client.post("/v1/login", json={"workspace": ws.slug, "email": member(ws),
                                          "password": "member-password"})
    token = r.json()["token"]
    secret = enroll(ws.client, token).secret
    return token, secret, int(ws.client.get("/v1/me", headers=bearer(token)).json()["id"])


def test_a_bypass_code_signs_in_once_and_lets_the_phone_be_replaced(make_ws: Any) -> None:
    steady()
    ws = make_ws(teammates=1)
    _, old_secret, member_id = enrolled_member(ws)
    url = f"/v1/workspaces/{ws.slug}/teammates/{member_id}/bypass-code"
    first = ws.client.post(url, headers=ws.admin_headers())
    assert first.status_code == 201 and first.headers["cache-control"] == "no-store"
    second = ws.client.post(url, headers=ws.admin_headers()).json()  # voids the first
    assert second["expires_at"].endswith("Z")
    assert complete(ws, first.json()["code"]).status_code == 401
    r = complete(ws, second["code"])
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    assert complete(ws, second["code"]).status_code == 401  # single use

    # The device is what was lost: this session may start the replacement without a code.
    started = ws.client.post("/v1/me/two-factor/replace", headers=bearer(token), json={})
    assert started.status_code == 200, started.text
    new_secret = started.json()["secret"]
    assert new_secret != old_secret
    codes = ws.client.post("/v1/me/two-factor/confirm", headers=bearer(token),
                           json={"code": code(new_secret, -30)})
    assert codes.status_code == 200 and len(codes.json()["recovery_codes"]) == 10
    assert complete(ws, code(old_secret, 30)).status_code == 401  # the old app is retired
    assert complete(ws, code(new_secret)).status_code == 200

    kinds = [e["type"] for e in ws.client.get(f"/v1/workspaces/{ws.slug}/events",
                                              headers=ws.admin_headers()).json()["items"]]
    assert kinds.count("twofa.bypass_code.issued") == 2 and kinds.count("twofa.bypass_code.used") == 1
    mine = ws.client.post(f"/v1/workspaces/{ws.slug}/teammates/{ws.admin_id}/bypass-code",
                          headers=ws.admin_headers())
    assert mine.status_code in (403, 409)


def test_replacing_the_authenticator_needs_a_verified_session_and_keeps_the_old_until_confirmed(
        make_ws: Any) -> None:
    steady(8)
    ws = make_ws(teammates=1)
    r = ws.client.post("/v1/login", json={"workspace": ws.slug, "email": member(ws),
                                          "password": "member-password"})
    token = r.json()["token"]
    old = enroll(ws.client, token)
    other = ws.client.post("/v1/login/two-factor", json={
        "challenge": challenge(ws), "code": code(old.secret)}).json()["token"]
    # Without a code, a session whose second factor was verified long ago is sent to verify
    # it again (this replaced the earlier 422 `code_required`).
    age_verification(token)
    missing = ws.client.post("/v1/me/two-factor/replace", headers=bearer(token), json={})
    assert missing.status_code == 403
    assert missing.json()["error"]["code"] == "reauthentication_required"
    wrong = ws.client.post("/v1/me/two-factor/replace", headers=bearer(token),
                           json={"code": "nope-nope-nope-nope"})
    assert wrong.status_code == 401
    started = ws.client.post("/v1/me/two-factor/replace", headers=bearer(token),
                             json={"code": old.recovery_codes[0]})  # an unused recovery code
    assert started.status_code == 200, started.text
    new_secret = started.json()["secret"]
    png = ws.client.get("/v1/me/two-factor/qr.png", headers=bearer(token))
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    # Until confirmed, the old app still signs in.
    assert complete(ws, code(old.secret, 30)).status_code == 200
    done = ws.client.post("/v1/me/two-factor/confirm", headers=bearer(token),
                          json={"code": code(new_secret)})
    assert done.status_code == 200, done.text
    assert ws.client.get("/v1/me", headers=bearer(other)).status_code == 401  # others end
    assert ws.client.get("/v1/me", headers=bearer(token)).status_code == 200
    assert complete(ws, old.recovery_codes[1]).status_code == 401  # the old set is gone
