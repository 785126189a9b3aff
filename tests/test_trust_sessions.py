"""What belongs to one session: a new phone's pending secret (only the session that started
it sees or confirms it, and only for TWOFA_CHALLENGE_TTL_SECONDS), and the host sessions an
API key opened (they end when it is revoked). Over real HTTP to `twofa api`."""

from __future__ import annotations

from typing import Any

from tests.trust import enrolled_member, error_code, member, password_sign_in, sign_in_with_code
from tests.twofactor import bearer, code, steady


def expire_pending_secret(teammate_id: int) -> None:
    """As if TWOFA_CHALLENGE_TTL_SECONDS had passed since the new phone was started."""
    from datetime import timedelta

    from sqlalchemy import update

    from services.db import unit_of_work
    from services.models import Teammate, utcnow

    with unit_of_work() as session:
        session.execute(update(Teammate).where(Teammate.id == teammate_id)
                        .values(totp_pending_expires_at=utcnow() - timedelta(seconds=1)))


def test_a_new_phone_belongs_to_the_session_that_started_it(make_ws: Any) -> None:
    steady(12)
    ws = make_ws(teammates=1)
    first, secret, _ = enrolled_member(ws)
    second = sign_in_with_code(ws, member(ws), code(secret))
    started = ws.client.post("/v1/me/two-factor/replace", headers=bearer(first),
                             json={"code": code(secret, 30)})
    assert started.status_code == 200, started.text
    new_secret = started.json()["secret"]

    # The other session neither sees the new secret nor confirms it.
    r = ws.client.get("/v1/me/two-factor/qr.png", headers=bearer(second))
    assert r.status_code == 404 and error_code(r) == "no_pending_setup", r.text
    r = ws.client.post("/v1/me/two-factor/confirm", headers=bearer(second),
                       json={"code": code(new_secret)})
    assert r.status_code in (404, 409), r.text
    assert ws.client.get("/v1/me", headers=bearer(first)).status_code == 200  # not signed out

    assert ws.client.get("/v1/me/two-factor/qr.png", headers=bearer(first)).status_code == 200
    r = ws.client.post("/v1/me/two-factor/confirm", headers=bearer(first),
                       json={"code": code(new_secret, -30)})
    assert r.status_code == 200 and len(r.json()["recovery_codes"]) == 10, r.text
    assert ws.client.get("/v1/me", headers=bearer(second)).status_code == 401


def test_a_new_phone_expires_with_the_challenge_ttl(make_ws: Any) -> None:
    steady(8)
    ws = make_ws(teammates=1)
    token, secret, teammate_id = enrolled_member(ws)
    started = ws.client.post("/v1/me/two-factor/replace", headers=bearer(token),
                             json={"code": code(secret)})
    assert started.status_code == 200, started.text
    expire_pending_secret(teammate_id)
    r = ws.client.get("/v1/me/two-factor/qr.png", headers=bearer(token))
    assert r.status_code == 404, r.text
    r = ws.client.post("/v1/me/two-factor/confirm", headers=bearer(token),
                       json={"code": code(started.json()["secret"])})
    assert r.status_code in (404, 409), r.text
    # The old app still works.
    assert sign_in_with_code(ws, member(ws), code(secret, 30))


def test_revoking_an_api_key_ends_the_host_sessions_it_opened(make_ws: Any) -> None:
    ws = make_ws(teammates=2)
    key = ws.api_key()
    other_key = ws.client.post(f"/v1/workspaces/{ws.slug}/api-keys", headers=ws.admin_headers(),
                               json={"name": "other"}).json()
    host = ws.client.post("/v1/checks/login", headers=bearer(key),
                          json={"email": member(ws, 1)}).json()
    kept = ws.client.post("/v1/checks/login", headers=bearer(other_key["key"]),
                          json={"email": member(ws, 2)}).json()
    password = password_sign_in(ws, member(ws, 1))
    assert host["status"] == kept["status"] == password["status"] == "authenticated"
    key_id = next(k["id"] for k in ws.client.get(f"/v1/workspaces/{ws.slug}/api-keys",
                                                 headers=ws.admin_headers()).json()["items"]
                  if k["name"] == "tests")
    r = ws.client.delete(f"/v1/workspaces/{ws.slug}/api-keys/{key_id}", headers=ws.admin_headers())
    assert r.status_code == 204, r.text

    assert ws.client.get("/v1/me", headers=bearer(host["token"])).status_code == 401
    r = ws.client.post("/v1/sessions/introspect", headers=bearer(other_key["key"]),
                       json={"token": host["token"]})
    assert r.json() == {"active": False}
    # Sessions the key did not open live on.
    assert ws.client.get("/v1/me", headers=bearer(kept["token"])).status_code == 200
    assert ws.client.get("/v1/me", headers=bearer(password["token"])).status_code == 200
