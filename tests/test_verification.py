"""The verification service through the real API, relay, worker and SMTP server."""

from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import ADMIN_PASSWORD, WorkspaceHandle
from tests.stack import Stack, wait_until
from tests.twofactor import (
    bearer,
    code,
    complete,
    enroll,
    password_login,
    qr_texts,
    sign_in,
    steady,
    wrong_codes,
)

MEMBER_PASSWORD = "member-password"
# Events caused by a request carry its client address and user agent (TestClient's own).
BY_TESTCLIENT = {"ip": "testclient", "user_agent": "testclient"}


def member(ws: WorkspaceHandle, n: int = 1) -> str:
    return f"member-{n:05d}@{ws.slug}.test"


def events(ws: WorkspaceHandle, headers: dict[str, str], type_: str) -> list[dict[str, Any]]:
    r = ws.client.get(f"/v1/workspaces/{ws.slug}/events", params={"type": type_, "limit": 500},
                      headers=headers)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def enrolled_admin(ws: WorkspaceHandle) -> tuple[str, dict[str, str]]:
    """The admin with 2FA on and a full session (works whatever the policy)."""
    token = ws.login()["token"]
    enrolled = enroll(ws.client, token)
    return enrolled.secret, bearer(sign_in(ws.client, ws.slug, ws.admin_email, ADMIN_PASSWORD,
                                           code(enrolled.secret)))


def test_enroll_then_sign_in_with_code(stack: Stack, make_workspace: Any) -> None:
    steady()
    ws: WorkspaceHandle = make_workspace()
    client = ws.client
    token = ws.login()["token"]

    r = client.post("/v1/me/two-factor/setup", headers=bearer(token))
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    setup = r.json()
    assert setup["otpauth_uri"].startswith("otpauth://totp/Acme%20%26%20Co%20%3CTeam%3E:admin%40")
    assert f"secret={setup['secret']}" in setup["otpauth_uri"]

    png = client.get("/v1/me/two-factor/qr.png", headers=bearer(token))
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png.content[16:24])
    assert width == height and width > 100
    # What a phone camera reads gives back the URI.
    assert qr_texts(png.content) == {setup["otpauth_uri"]}

    # Not on until confirmed: a password still signs straight in.
    assert ws.login()["status"] == "authenticated"
    bad = client.post("/v1/me/two-factor/confirm", headers=bearer(token),
                      json={"code": wrong_codes(setup["secret"], 1)[0]})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_code"

    r = client.post("/v1/me/two-factor/confirm", headers=bearer(token),
                    json={"code": code(setup["secret"], -30)})
    assert r.status_code == 200, r.text
    codes = r.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10

    me = client.get("/v1/me", headers=bearer(token)).json()["two_factor"]
    assert me["enabled"] is True and me["recovery_codes_left"] == 10 and me["enrolled_at"]

    body = ws.login()
    assert body == {"status": "two_factor_required", "challenge": body["challenge"],
                    "methods": ["totp", "recovery_code"]}
    now_code = code(setup["secret"])
    r = complete(client, body["challenge"], now_code)
    assert r.status_code == 200 and r.json()["status"] == "authenticated"
    full = r.json()["token"]
    assert ws.introspect(full) == {"active": True, "teammate_id": ws.admin_id,
                                   "email": ws.admin_email, "workspace": ws.slug,
                                   "level": "full"}

    # The challenge is spent, and the same code is refused on a fresh challenge.
    spent = complete(client, body["challenge"], now_code)
    assert spent.status_code == 401 and spent.json()["error"]["code"] == "invalid_code"
    assert "sign in again" in spent.json()["error"]["message"]
    replay = complete(client, ws.login()["challenge"], now_code)
    assert replay.status_code == 401 and replay.json()["error"]["code"] == "invalid_code"

    assert [e["data"] for e in events(ws, bearer(full), "twofa.enabled")] == [
        {"teammate_id": ws.admin_id, **BY_TESTCLIENT}]
    failed = [e["data"] for e in events(ws, bearer(full), "twofa.verification.failed")]
    assert [(d["reason"], d["method"]) for d in failed] == [("invalid_code", "totp"),
                                                           ("replayed_code", "totp")]
    [mail] = wait_until(lambda: [m for m in stack.smtp.to(ws.admin_email)
                                 if "turned on" in m.part("plain")], 30, message="enabled email")
    assert "If this was not you" in mail.part("plain")


def test_enrollment_token_becomes_full_on_confirm(stack: Stack, make_workspace: Any) -> None:
    steady()
    ws: WorkspaceHandle = make_workspace(teammates=1)
    _, admin = enrolled_admin(ws)
    assert ws.client.put(f"/v1/workspaces/{ws.slug}/two-factor-policy", headers=admin,
                         json={"require_two_factor": True}).status_code == 200
    body = password_login(ws.client, ws.slug, member(ws), MEMBER_PASSWORD)
    assert body["status"] == "enrollment_required"
    token = body["token"]
    assert ws.introspect(token)["level"] == "enrollment"
    enroll(ws.client, token)
    assert ws.introspect(token)["level"] == "full"
    # Nobody turns their own 2FA off while the workspace requires it.
    r = ws.client.request("DELETE", "/v1/me/two-factor", headers=bearer(token),
                          json={"code": "123456"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "two_factor_mandatory"


def test_twenty_concurrent_submissions_of_one_code_give_one_session(
        stack: Stack, make_workspace: Any) -> None:
    steady(5)
    ws: WorkspaceHandle = make_workspace()
    secret = enroll(ws.client, ws.login()["token"]).secret
    challenges = [ws.login()["challenge"] for _ in range(20)]
    value = code(secret)
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda c: complete(ws.client, c, value), challenges))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [401] * 19, statuses
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 401} == {"invalid_code"}


def test_parallel_guessing_locks_after_ten_and_admin_resets(
        stack: Stack, make_workspace: Any) -> None:
    steady(5)
    ws: WorkspaceHandle = make_workspace(teammates=1)
    _, admin = enrolled_admin(ws)
    member_login = password_login(ws.client, ws.slug, member(ws), MEMBER_PASSWORD)
    secret = enroll(ws.client, member_login["token"]).secret
    teammate_id = ws.client.get("/v1/me", headers=bearer(member_login["token"])).json()["id"]

    # Guesses spread over many challenges, as an attacker with the password would.
    challenges = [password_login(ws.client, ws.slug, member(ws), MEMBER_PASSWORD)["challenge"]
                  for _ in range(4)]
    guesses = wrong_codes(secret, 24)
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda i: complete(ws.client, challenges[i % 4], guesses[i]),
                                range(24)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [401] * 10 + [429] * 14, statuses

    # Locked: even the right code is refused, with Retry-After.
    right = complete(ws.client, challenges[0], code(secret))
    assert right.status_code == 429 and right.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(right.headers["retry-after"]) <= 30
    [locked] = events(ws, admin, "twofa.teammate.locked")
    assert locked["data"]["teammate_id"] == teammate_id and locked["data"]["until"]
    assert len(events(ws, admin, "twofa.verification.failed")) == 10
    wait_until(lambda: [m for m in stack.smtp.to(member(ws)) if "locked" in m.part("plain")], 30,
               message="locked email")

    # Only this workspace's admins may reset it.
    url = f"/v1/workspaces/{ws.slug}/teammates/{teammate_id}/two-factor"
    other: WorkspaceHandle = make_workspace()
    assert ws.client.delete(url, headers=other.admin_headers()).status_code == 404
    member_b = bearer(password_login(ws.client, ws.slug, member(ws), MEMBER_PASSWORD)["challenge"])
    assert ws.client.delete(url, headers=member_b).status_code == 401  # a challenge is no session

    assert ws.client.put(f"/v1/workspaces/{ws.slug}/two-factor-policy", headers=admin,
                         json={"require_two_factor": True}).status_code == 200
    r = ws.client.delete(url, headers=admin)
    assert r.status_code == 204, r.text
    assert ws.client.delete(url, headers=admin).status_code == 204  # idempotent
    [disabled] = events(ws, admin, "twofa.disabled")
    assert disabled["data"] == {"teammate_id": teammate_id, "by": "admin", "actor_id": ws.admin_id,
                                **BY_TESTCLIENT}

    # Back to enrolling, no longer locked, with an email saying who and what next; that
    # email stands as their invitation (no second "now requires" email).
    body = password_login(ws.client, ws.slug, member(ws), MEMBER_PASSWORD)
    assert body["status"] == "enrollment_required"
    [off] = wait_until(lambda: [m for m in stack.smtp.to(member(ws))
                                if "by an admin (Admin)" in m.part("plain")], 30,
                       message="disabled email")
    assert "the next time you sign in you will set it up again" in off.part("plain")
    items = ws.client.get(f"/v1/workspaces/{ws.slug}/teammates?q={member(ws)}",
                          headers=admin).json()["items"]
    assert [t["enrollment"] for t in items] == ["invited"]


def test_member_cannot_reset_and_admin_cannot_reset_self(stack: Stack, make_workspace: Any) -> None:
    ws: WorkspaceHandle = make_workspace(teammates=1)
    token = password_login(ws.client, ws.slug, member(ws), MEMBER_PASSWORD)["token"]
    r = ws.client.delete(f"/v1/workspaces/{ws.slug}/teammates/{ws.admin_id}/two-factor",
                         headers=bearer(token))
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    admin = ws.admin_headers()
    r = ws.client.delete(f"/v1/workspaces/{ws.slug}/teammates/{ws.admin_id}/two-factor",
                         headers=admin)
    assert r.status_code == 403
    for bad in ("0", "abc", str(2**70)):
        r = ws.client.delete(f"/v1/workspaces/{ws.slug}/teammates/{bad}/two-factor", headers=admin)
        assert r.status_code == 422, (bad, r.text)
    assert ws.client.delete(f"/v1/workspaces/{ws.slug}/teammates/999999999/two-factor",
                            headers=admin).status_code == 404


def test_recovery_code_signs_in_once(stack: Stack, make_workspace: Any) -> None:
    ws: WorkspaceHandle = make_workspace()
    enrolled = enroll(ws.client, ws.login()["token"])
    first = enrolled.recovery_codes[0]
    token = sign_in(ws.client, ws.slug, ws.admin_email, ADMIN_PASSWORD, f" {first.upper()} ")
    me = ws.client.get("/v1/me", headers=bearer(token)).json()
    assert me["two_factor"]["recovery_codes_left"] == 9
    again = complete(ws.client, ws.login()["challenge"], first)
    assert again.status_code == 401 and again.json()["error"]["code"] == "invalid_code"
    [used] = events(ws, bearer(token), "twofa.recovery_code.used")
    assert used["data"] == {"teammate_id": ws.admin_id, "remaining": 9, **BY_TESTCLIENT}
    [failed] = events(ws, bearer(token), "twofa.verification.failed")
    assert (failed["data"]["reason"], failed["data"]["method"]) == ("invalid_recovery_code",
                                                                    "recovery_code")
    wait_until(lambda: [m for m in stack.smtp.to(ws.admin_email) if "9 left" in m.part("plain")],
               30, message="recovery-code email")


def test_regenerate_kills_old_codes_and_disable_needs_a_code(
        stack: Stack, make_workspace: Any) -> None:
    steady()
    ws: WorkspaceHandle = make_workspace()
    enrolled = enroll(ws.client, ws.login()["token"])
    token = sign_in(ws.client, ws.slug, ws.admin_email, ADMIN_PASSWORD, enrolled.recovery_codes[0])
    r = ws.client.post("/v1/me/two-factor/recovery-codes", headers=bearer(token),
                       json={"code": code(enrolled.secret)})
    assert r.status_code == 200, r.text
    fresh = r.json()["recovery_codes"]
    assert len(fresh) == 10 and not set(fresh) & set(enrolled.recovery_codes)
    dead = complete(ws.client, ws.login()["challenge"], enrolled.recovery_codes[1])
    assert dead.status_code == 401

    # Setting up anew is refused while 2FA is on; turning it off needs a valid code.
    assert ws.client.post("/v1/me/two-factor/setup", headers=bearer(token)).status_code == 409
    wrong = ws.client.request("DELETE", "/v1/me/two-factor", headers=bearer(token),
                              json={"code": wrong_codes(enrolled.secret, 1)[0]})
    assert wrong.status_code == 401
    r = ws.client.request("DELETE", "/v1/me/two-factor", headers=bearer(token),
                          json={"code": fresh[0]})
    assert r.status_code == 204, r.text
    assert ws.login()["status"] == "authenticated"
    [disabled] = events(ws, ws.admin_headers(), "twofa.disabled")
    assert disabled["data"] == {"teammate_id": ws.admin_id, "by": "self", "actor_id": ws.admin_id,
                                **BY_TESTCLIENT}
    wait_until(lambda: [m for m in stack.smtp.to(ws.admin_email)
                        if "turned off" in m.part("plain") and "by you" in m.part("plain")],
               30, message="disabled-by-self email")


def test_bad_input_is_a_clear_4xx(client: TestClient, make_workspace: Any) -> None:
    ws: WorkspaceHandle = make_workspace()
    token = ws.login()["token"]
    assert client.get("/v1/me/two-factor/qr.png", headers=bearer(token)).status_code == 404
    assert client.post("/v1/me/two-factor/confirm", headers=bearer(token),
                       json={"code": "123456"}).status_code == 404
    cases = [
        ("/v1/login/two-factor", {"challenge": "nope", "code": "123456"}, 401),
        ("/v1/login/two-factor", {"challenge": "x" * 201, "code": "1"}, 422),
        ("/v1/login/two-factor", {"challenge": "x", "code": "1" * 65}, 422),
        ("/v1/login/two-factor", {"challenge": "x"}, 422),
        ("/v1/login/two-factor", [1, 2], 422),
    ]
    for path, body, status in cases:
        r = client.post(path, json=body)
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["code"]
    assert client.post("/v1/me/two-factor/setup").status_code == 401
    assert client.request("DELETE", "/v1/me/two-factor", headers=bearer(token),
                          json={"code": "123456"}).status_code == 409
