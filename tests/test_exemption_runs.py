"""Exemptions are capped: `until` at most 30 days after the start of an unbroken run of
exemptions, so renewing cannot push it. Over real HTTP to `twofa api`, with the clock every
process reads moved forward instead of sleeping through days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import Clock, WorkspaceHandle
from tests.trust import error_code, member


def exempt(ws: WorkspaceHandle, target: int, until: datetime) -> Any:
    return ws.client.put(f"/v1/workspaces/{ws.slug}/teammates/{target}/exemption",
                         headers=ws.admin_headers(),
                         json={"until": until.astimezone(UTC).isoformat(), "reason": "travel"})


def target_id(ws: WorkspaceHandle) -> int:
    r = ws.client.get(f"/v1/workspaces/{ws.slug}/teammates", params={"q": member(ws)},
                      headers=ws.admin_headers())
    return int(r.json()["items"][0]["id"])


def test_renewing_an_exemption_cannot_push_it_past_30_days_from_the_runs_start(
        make_ws: Any, clock: Clock) -> None:
    ws = make_ws(teammates=1)
    target = target_id(ws)
    start = clock.now()
    assert exempt(ws, target, start + timedelta(days=20)).status_code == 200
    clock.advance(days=15)
    r = exempt(ws, target, clock.now() + timedelta(days=20))  # day 35 of the run
    assert r.status_code == 422 and error_code(r) == "invalid_request", r.text
    assert exempt(ws, target, start + timedelta(days=29, hours=23)).status_code == 200

    # Ended by an admin and granted again within 30 days: the same run.
    assert ws.client.delete(f"/v1/workspaces/{ws.slug}/teammates/{target}/exemption",
                            headers=ws.admin_headers()).status_code == 204
    clock.advance(days=10)  # day 25
    r = exempt(ws, target, clock.now() + timedelta(days=10))
    assert r.status_code == 422, r.text
    assert exempt(ws, target, clock.now() + timedelta(days=4)).status_code == 200

    # 30 days after it last ended, a new run starts.
    clock.advance(days=35)
    assert exempt(ws, target, clock.now() + timedelta(days=29)).status_code == 200
