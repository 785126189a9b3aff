"""The hot checks (introspection, /v1/me) read outside any transaction and keep no cache:
every change is seen by the next check, and the API key's last use is still kept."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tests.conftest import WorkspaceHandle
from tests.stack import Stack
from tests.twofactor import bearer, password_login

MEMBER_PASSWORD = "member-password"


def _key(ws: WorkspaceHandle) -> dict[str, Any]:
    r = ws.client.post(f"/v1/workspaces/{ws.slug}/api-keys", headers=ws.admin_headers(),
                       json={"name": "host"})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _introspect(ws: WorkspaceHandle, key: str, token: str) -> Any:
    return ws.client.post("/v1/sessions/introspect", headers=bearer(key), json={"token": token})


def test_introspection_records_the_keys_last_use_at_most_once_a_minute(
        stack: Stack, make_workspace: Any) -> None:
    from services.db import unit_of_work
    from services.host_checks.api_keys import LAST_USE_PRECISION
    from services.models import ApiKey, utcnow

    ws: WorkspaceHandle = make_workspace(teammates=1)
    key = _key(ws)
    token = password_login(ws.client, ws.slug, f"member-00001@{ws.slug}.test", MEMBER_PASSWORD)["token"]

    def last_used() -> str | None:
        [listed] = ws.client.get(f"/v1/workspaces/{ws.slug}/api-keys",
                                 headers=ws.admin_headers()).json()["items"]
        return listed["last_used_at"]  # type: ignore[no-any-return]

    assert last_used() is None
    assert _introspect(ws, key["key"], token).json()["active"] is True
    first = last_used()
    assert first is not None
    assert _introspect(ws, key["key"], token).json()["active"] is True
    assert last_used() == first  # within the minute: the key's row is not written again

    with unit_of_work() as session:
        row = session.get(ApiKey, key["id"])
        assert row is not None
        aged = row.last_used_at = utcnow() - LAST_USE_PRECISION - timedelta(seconds=1)
    assert _introspect(ws, key["key"], "not-a-session").json() == {"active": False}
    again = last_used()
    assert again is not None and datetime.fromisoformat(again) > aged + LAST_USE_PRECISION


def test_checks_see_a_revoked_key_and_an_ended_session_at_once(
        stack: Stack, make_workspace: Any) -> None:
    ws: WorkspaceHandle = make_workspace(teammates=1)
    key = _key(ws)
    token = password_login(ws.client, ws.slug, f"member-00001@{ws.slug}.test", MEMBER_PASSWORD)["token"]
    me = ws.client.get("/v1/me", headers=bearer(token))
    assert me.status_code == 200 and me.json()["two_factor"]["recovery_codes_left"] == 0
    assert _introspect(ws, key["key"], token).json()["teammate_id"] == me.json()["id"]

    assert ws.client.post("/v1/logout", headers=bearer(token)).status_code == 204
    assert _introspect(ws, key["key"], token).json() == {"active": False}
    assert ws.client.get("/v1/me", headers=bearer(token)).json()["error"]["code"] == "invalid_token"

    other = password_login(ws.client, ws.slug, f"member-00001@{ws.slug}.test", MEMBER_PASSWORD)["token"]
    r = ws.client.delete(f"/v1/workspaces/{ws.slug}/api-keys/{key['id']}", headers=ws.admin_headers())
    assert r.status_code == 204
    refused = _introspect(ws, key["key"], other)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    unknown = _introspect(ws, "twofa_sk_" + "x" * 43, other)
    assert unknown.status_code == 401 and unknown.json()["error"]["code"] == "invalid_api_key"
