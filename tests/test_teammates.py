"""Who isn't enrolled? Filters, one teammate, CSV export, role changes, removal and the last
admin, over real HTTP to `twofa api`; the CLI's filtered listing."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import datetime
from typing import Any

import httpx

from services.timestamps import in_words
from tests.conftest import WorkspaceHandle
from tests.stack import ROOT, Stack, wait_until
from tests.twofactor import bearer, enroll

# Events caused by a request carry its client address and user agent.
BY_HTTPX = {"ip": "127.0.0.1", "user_agent": f"python-httpx/{httpx.__version__}"}


def member(ws: WorkspaceHandle, n: int) -> str:
    return f"member-{n:05d}@{ws.slug}.test"


def listed(ws: WorkspaceHandle, query: str = "") -> list[dict[str, Any]]:
    r = ws.client.get(f"/v1/workspaces/{ws.slug}/teammates?limit=500{query}",
                      headers=ws.admin_headers())
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def sign_in(ws: WorkspaceHandle, email: str) -> str:
    r = ws.client.post("/v1/login", json={"workspace": ws.slug, "email": email,
                                          "password": "member-password"})
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def test_filters_answer_who_is_not_enrolled(stack: Stack, make_ws: Any) -> None:
    ws = make_ws(teammates=4)
    enroll(ws.client, sign_in(ws, member(ws, 1)))
    ws.require_two_factor()  # the admin enrolls first; members 2–4 get invitations
    wait_until(lambda: {t["enrollment"] for t in listed(ws, "&two_factor=disabled")}
               == {"invited"}, 60, message="invitations out")

    assert {t["email"] for t in listed(ws, "&two_factor=enabled")} == {ws.admin_email,
                                                                       member(ws, 1)}
    assert {t["email"] for t in listed(ws, "&enrollment=invited")} == {
        member(ws, n) for n in (2, 3, 4)}
    assert listed(ws, "&enrollment=pending") == []
    assert [t["email"] for t in listed(ws, "&q=MEMBER-00003")] == [member(ws, 3)]
    assert listed(ws, "&enrollment=invited&q=member-00002")[0]["email"] == member(ws, 2)
    for bad in ("two_factor=maybe", "enrollment=sleeping", "q=a%00b"):
        r = ws.client.get(f"/v1/workspaces/{ws.slug}/teammates?{bad}", headers=ws.admin_headers())
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", bad

    one = listed(ws, "&q=member-00004")[0]
    r = ws.client.get(f"/v1/workspaces/{ws.slug}/teammates/{one['id']}", headers=ws.admin_headers())
    assert r.status_code == 200 and r.json() == one


def test_csv_export_uses_the_same_filters(make_ws: Any) -> None:
    ws = make_ws(teammates=3)
    r = ws.client.post(f"/v1/workspaces/{ws.slug}/teammates", headers=ws.admin_headers(),
                       json={"email": f"formula@{ws.slug}.test", "name": "=HYPERLINK(1)"})
    assert r.status_code == 201
    export = ws.client.get(f"/v1/workspaces/{ws.slug}/teammates/export.csv?q=member",
                           headers=ws.admin_headers())
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert "attachment" in export.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert [r["email"] for r in rows] == [member(ws, n) for n in (1, 2, 3)]
    assert rows[0]["enrollment"] == "not_required" and rows[0]["two_factor_enabled"] == "False"
    everyone = list(csv.DictReader(io.StringIO(ws.client.get(
        f"/v1/workspaces/{ws.slug}/teammates/export.csv", headers=ws.admin_headers()).text)))
    assert len(everyone) == 5
    # A name that a spreadsheet would run as a formula is exported as text.
    assert [r["name"] for r in everyone if r["email"].startswith("formula")] == ["'=HYPERLINK(1)"]


def test_role_changes_and_the_last_admin(make_ws: Any) -> None:
    ws = make_ws(teammates=1)
    me = ws.client.get("/v1/me", headers=ws.admin_headers()).json()
    url = f"/v1/workspaces/{ws.slug}/teammates"
    demote = ws.client.patch(f"{url}/{me['id']}", headers=ws.admin_headers(),
                             json={"role": "member"})
    assert demote.status_code == 409 and demote.json()["error"]["code"] == "last_admin"
    remove = ws.client.delete(f"{url}/{me['id']}", headers=ws.admin_headers())
    assert remove.status_code == 409 and remove.json()["error"]["code"] == "last_admin"

    other = listed(ws, "&q=member-00001")[0]
    r = ws.client.patch(f"{url}/{other['id']}", headers=ws.admin_headers(), json={"role": "admin"})
    assert r.status_code == 200 and r.json()["role"] == "admin"
    bad = ws.client.patch(f"{url}/{other['id']}", headers=ws.admin_headers(), json={"role": "owner"})
    assert bad.status_code == 422
    # Now there are two, the first may step down.
    assert ws.client.patch(f"{url}/{me['id']}", headers=ws.admin_headers(),
                           json={"role": "member"}).status_code == 200
    denied = ws.client.get(url, headers=ws.admin_headers())
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"
    events = ws.client.get(f"/v1/workspaces/{ws.slug}/events?type=twofa.teammate.role_changed",
                           headers=bearer(sign_in(ws, member(ws, 1)))).json()["items"]
    assert [e["data"] for e in events] == [  # oldest first, each with who asked from where
        {"teammate_id": other["id"], "actor_id": me["id"], "role": "admin", **BY_HTTPX},
        {"teammate_id": me["id"], "actor_id": me["id"], "role": "member", **BY_HTTPX},
    ]


def test_removing_a_teammate_ends_sessions_and_keeps_the_trail(stack: Stack, make_ws: Any) -> None:
    ws = make_ws(teammates=2)
    token = sign_in(ws, member(ws, 1))
    gone = listed(ws, "&q=member-00001")[0]
    url = f"/v1/workspaces/{ws.slug}/teammates/{gone['id']}"
    assert ws.client.delete(url, headers=ws.admin_headers()).status_code == 204
    assert ws.client.get("/v1/me", headers=bearer(token)).status_code == 401
    assert ws.client.get(url, headers=ws.admin_headers()).status_code == 404
    assert ws.client.delete(url, headers=ws.admin_headers()).status_code == 404
    assert member(ws, 1) not in {t["email"] for t in listed(ws)}
    r = ws.client.post("/v1/login", json={"workspace": ws.slug, "email": member(ws, 1),
                                          "password": "member-password"})
    assert r.status_code == 401
    policy = ws.require_two_factor()
    assert policy["rollout"]["teammates"] == 2  # the admin and member 2: removed count nowhere
    wait_until(lambda: stack.smtp.to(member(ws, 2)), 60, message="member 2's invitation")
    assert not [m for m in stack.smtp.to(member(ws, 1)) if "now requires" in m.subject]
    kinds = [e["type"] for e in ws.client.get(f"/v1/workspaces/{ws.slug}/events",
                                              headers=ws.admin_headers()).json()["items"]]
    assert "twofa.teammate.removed" in kinds
    # The address may come back as a new teammate.
    again = ws.client.post(f"/v1/workspaces/{ws.slug}/teammates", headers=ws.admin_headers(),
                           json={"email": member(ws, 1).upper()})
    assert again.status_code == 201 and again.json()["id"] != gone["id"]
    added = ws.client.get(f"/v1/workspaces/{ws.slug}/events?type=twofa.teammate.added",
                          headers=ws.admin_headers()).json()["items"]
    assert [e["data"] for e in added] == [{"teammate_id": again.json()["id"],
                                           "actor_id": ws.admin_id, **BY_HTTPX}]


def test_cli_lists_filtered_teammates_as_csv_and_json(stack: Stack, make_ws: Any) -> None:
    ws = make_ws(teammates=3)
    enroll(ws.client, sign_in(ws, member(ws, 2)))

    def twofa(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "workers.cli", "teammates", ws.slug, *args],
                              env={**os.environ, **stack.env}, cwd=ROOT, capture_output=True,
                              text=True, timeout=60)

    done = twofa("--filter", "two_factor=disabled", "--filter", "q=member", "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["email"] for r in rows] == [member(ws, 1), member(ws, 3)]
    done = twofa("--filter", "two_factor=enabled", "--format", "json")
    assert [t["email"] for t in json.loads(done.stdout)] == [member(ws, 2)]
    bad = twofa("--filter", "enrollment=sleeping")
    assert bad.returncode == 2 and "unknown filter" in bad.stderr


def test_preview_shows_who_would_be_held_before_the_flip(stack: Stack, make_ws: Any) -> None:
    ws = make_ws(teammates=3)
    enroll(ws.client, sign_in(ws, member(ws, 1)))
    url = f"/v1/workspaces/{ws.slug}/two-factor-policy/preview"
    r = ws.client.get(f"{url}?limit=1", headers=ws.admin_headers())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["would_block"] == 3  # the admin and members 2 and 3
    assert body["admins_without_two_factor"] == [
        {"id": ws.admin_id, "email": ws.admin_email, "name": "Admin"}]
    assert [t["email"] for t in body["items"]] == [ws.admin_email] and body["next_cursor"]
    rest = ws.client.get(f"{url}?cursor={body['next_cursor']}", headers=ws.admin_headers()).json()
    assert [t["email"] for t in rest["items"]] == [member(ws, 2), member(ws, 3)]
    ws.enroll_admin()
    after = ws.client.get(url, headers=ws.admin_headers()).json()
    assert after["would_block"] == 2 and after["admins_without_two_factor"] == []


def test_events_caused_by_a_request_carry_its_address_and_user_agent(make_ws: Any) -> None:
    ws = make_ws()
    headers = {**ws.admin_headers(), "X-Forwarded-For": "2001:db8::7",
               "User-Agent": "Auditor/1.0"}
    r = ws.client.post(f"/v1/workspaces/{ws.slug}/teammates", headers=headers,
                       json={"email": f"traced@{ws.slug}.test"})
    assert r.status_code == 201
    [added] = ws.client.get(f"/v1/workspaces/{ws.slug}/events?type=twofa.teammate.added",
                            headers=ws.admin_headers()).json()["items"]
    assert added["data"]["ip"] == "2001:db8::7" and added["data"]["user_agent"] == "Auditor/1.0"


def test_an_address_over_64_characters_before_the_at_is_refused(make_ws: Any) -> None:
    ws = make_ws()
    url = f"/v1/workspaces/{ws.slug}/teammates"
    r = ws.client.post(url, headers=ws.admin_headers(),
                       json={"email": f"{'a' * 65}@{ws.slug}.test"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_email", r.text
    assert "at most 64" in r.json()["error"]["message"]
    r = ws.client.post(url, headers=ws.admin_headers(), json={"email": f"{'a' * 64}@{ws.slug}.test"})
    assert r.status_code == 201, r.text


def test_disabling_2fa_in_a_grace_period_sends_no_second_invitation(
        stack: Stack, make_ws: Any) -> None:
    """The "turned off" email asks them to set it up again by the deadline: no "now requires"
    email follows as if the policy were new."""
    ws = make_ws(teammates=1)
    ws.enroll_admin()
    base = f"/v1/workspaces/{ws.slug}"
    r = ws.client.put(f"{base}/two-factor-policy", headers=ws.admin_headers(),
                      json={"require_two_factor": True, "grace_period_hours": 48})
    assert r.status_code == 200, r.text
    wait_until(lambda: stack.smtp.to(member(ws, 1)), 60, message="the invitation")
    enroll(ws.client, sign_in(ws, member(ws, 1)))
    one = listed(ws, "&q=member-00001")[0]
    r = ws.client.delete(f"{base}/teammates/{one['id']}/two-factor", headers=ws.admin_headers())
    assert r.status_code == 204, r.text

    [off] = wait_until(lambda: [m for m in stack.smtp.to(member(ws, 1))
                                if "turned off" in m.subject], 60, message="the notice")
    policy = ws.client.get(f"{base}/two-factor-policy", headers=ws.admin_headers()).json()
    by = in_words(datetime.fromisoformat(policy["enforce_at"]))
    assert f"set it up again by {by}" in off.part("plain")
    assert "Until then you sign in as usual" in off.part("plain")
    # The notice stands as their invitation: recorded as sent, nothing left to send.
    assert listed(ws, "&q=member-00001")[0]["enrollment"] == "invited"
    assert policy["rollout"]["pending"] == 0
    invitations = [m for m in stack.smtp.to(member(ws, 1)) if "now requires" in m.subject]
    assert len(invitations) == 1, [m.subject for m in stack.smtp.to(member(ws, 1))]


def test_a_reset_after_the_sender_skipped_their_invitation_leaves_nothing_to_send(
        stack: Stack, make_ws: Any) -> None:
    """Enrolled before their invitation went out (the sender skipped it), then reset: the
    "turned off" email stands as the invitation, nothing stays queued."""
    from sqlalchemy import update

    from services.db import unit_of_work
    from services.models import EnrollmentInvitation

    ws = make_ws(teammates=1)
    ws.require_two_factor()
    wait_until(lambda: stack.smtp.to(member(ws, 1)), 60, message="the invitation")
    enroll(ws.client, sign_in(ws, member(ws, 1)))
    one = listed(ws, "&q=member-00001")[0]

    def skipped() -> int:  # as the sender leaves the row of someone who enrolled meanwhile
        with unit_of_work() as session:
            return int(session.execute(update(EnrollmentInvitation)
                                       .where(EnrollmentInvitation.teammate_id == one["id"])
                                       .values(status="skipped")).rowcount)

    wait_until(skipped, 60, message="their invitation row")
    base = f"/v1/workspaces/{ws.slug}"
    r = ws.client.delete(f"{base}/teammates/{one['id']}/two-factor", headers=ws.admin_headers())
    assert r.status_code == 204, r.text
    assert listed(ws, "&q=member-00001")[0]["enrollment"] == "invited"
    policy = ws.client.get(f"{base}/two-factor-policy", headers=ws.admin_headers()).json()
    assert policy["rollout"]["pending"] == 0
