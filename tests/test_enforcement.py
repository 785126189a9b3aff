"""Enforcement people can live with: a grace period with reminders, exemptions that expire,
and a new teammate's single email, over real HTTP to `twofa api` with the real relay, worker
and SMTP server. Hours and days pass by moving the clock every process reads (`clock`)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.conftest import Clock, WorkspaceHandle
from tests.stack import Stack, wait_until
from tests.twofactor import bearer, enroll


def member(ws: WorkspaceHandle, n: int) -> str:
    return f"member-{n:05d}@{ws.slug}.test"


def put_policy(ws: WorkspaceHandle, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    r = ws.client.put(f"/v1/workspaces/{ws.slug}/two-factor-policy", headers=ws.admin_headers(),
                      json=body)
    assert r.status_code == status, r.text
    return dict(r.json())


def get_policy(ws: WorkspaceHandle) -> dict[str, Any]:
    r = ws.client.get(f"/v1/workspaces/{ws.slug}/two-factor-policy", headers=ws.admin_headers())
    assert r.status_code == 200, r.text
    return dict(r.json())


def sign_in(ws: WorkspaceHandle, email: str) -> dict[str, Any]:
    r = ws.client.post("/v1/login", json={"workspace": ws.slug, "email": email,
                                          "password": "member-password"})
    assert r.status_code == 200, r.text
    return dict(r.json())


def me(ws: WorkspaceHandle, token: str) -> dict[str, Any]:
    r = ws.client.get("/v1/me", headers=bearer(token))
    assert r.status_code == 200, r.text
    return dict(r.json())


def states(ws: WorkspaceHandle) -> dict[str, str]:
    r = ws.client.get(f"/v1/workspaces/{ws.slug}/teammates?limit=500",
                      headers=ws.admin_headers())
    assert r.status_code == 200, r.text
    return {t["email"]: t["enrollment"] for t in r.json()["items"]}


def at(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text)


def reminders_to(stack: Stack, address: str) -> list[Any]:
    return [m for m in stack.smtp.to(address) if m.subject.startswith("Reminder:")]


def test_a_grace_period_keeps_full_sessions_until_enforce_at(
        stack: Stack, make_ws: Any, clock: Clock) -> None:
    ws = make_ws(teammates=2)
    ws.enroll_admin()
    before = sign_in(ws, member(ws, 1))
    assert before["status"] == "authenticated"
    started = datetime.now(UTC)

    body = put_policy(ws, {"require_two_factor": True, "grace_period_hours": 72})
    enforce_at = at(body["enforce_at"])
    assert timedelta(hours=72) <= enforce_at - started < timedelta(hours=72, minutes=1)
    # 72 h before the deadline is now: the reminders still ahead are 24 h and 1 h before it.
    assert [at(t) for t in body["reminders_at"]] == [enforce_at - timedelta(hours=24),
                                                     enforce_at - timedelta(hours=1)]
    # Invitations go out at once, as without a grace period, and say the deadline.
    [invitation] = wait_until(lambda: stack.smtp.to(member(ws, 1)), 60, message="the invitation")
    words = f"{enforce_at:%A} {enforce_at.day} {enforce_at:%B}, {enforce_at:%H:%M} UTC"
    assert f"by {words}" in " ".join(invitation.part("plain").split())

    # Until enforce_at a teammate without 2FA keeps full sessions and signs in fully.
    assert me(ws, before["token"])["level"] == "full"
    during = sign_in(ws, member(ws, 2))
    assert during["status"] == "authenticated"
    two_factor = me(ws, during["token"])["two_factor"]
    assert two_factor["required"] is True and two_factor["enforced"] is False
    assert two_factor["enforce_at"] == body["enforce_at"]
    assert ws.introspect(during["token"])["level"] == "full"
    listing = ws.client.get(f"/v1/workspaces/{ws.slug}/events", headers=bearer(during["token"]))
    assert listing.status_code == 403 and listing.json()["error"]["code"] == "forbidden"

    clock.advance(hours=72, minutes=1)  # the deadline passes: nothing runs, levels follow
    assert me(ws, before["token"])["level"] == "enrollment"
    assert me(ws, during["token"])["two_factor"]["enforced"] is True
    assert ws.introspect(during["token"])["level"] == "enrollment"
    r = ws.client.get(f"/v1/workspaces/{ws.slug}/teammates", headers=bearer(during["token"]))
    assert r.status_code == 403 and r.json()["error"]["code"] == "enrollment_required"
    assert sign_in(ws, member(ws, 1))["status"] == "enrollment_required"


def test_changing_only_the_grace_period_keeps_the_version_and_sends_nothing(
        stack: Stack, make_ws: Any, clock: Clock) -> None:
    ws = make_ws(teammates=1)
    ws.enroll_admin()
    # While off, a grace period given alone is kept for the next time it is turned on.
    off = put_policy(ws, {"grace_period_hours": 48})
    assert off["require_two_factor"] is False and off["enforce_at"] is None
    assert off["reminders_at"] == [] and off["grace_period_hours"] == 48
    on = put_policy(ws, {"require_two_factor": True})
    assert on["version"] == 1
    turned_on = at(on["enforce_at"]) - timedelta(hours=48)
    wait_until(lambda: stack.smtp.to(member(ws, 1)), 60, message="the invitation")

    longer = put_policy(ws, {"grace_period_hours": 100})
    assert longer["version"] == 1  # the same version: no new invitations
    assert at(longer["enforce_at"]) == turned_on + timedelta(hours=100)
    assert len(longer["reminders_at"]) == 3  # 72, 24 and 1 h before the new deadline

    clock.advance(hours=10)
    # Shortened below the time already passed: enforced from now, not from the past.
    shorter = put_policy(ws, {"grace_period_hours": 5})
    assert shorter["version"] == 1
    assert abs(at(shorter["enforce_at"]) - clock.now()) < timedelta(minutes=1)
    assert shorter["reminders_at"] == []
    token = sign_in(ws, member(ws, 1))
    assert token["status"] == "enrollment_required"

    at_once = put_policy(ws, {"grace_period_hours": 0})
    assert at_once["enforce_at"] is None and at_once["version"] == 1
    events = ws.client.get(f"/v1/workspaces/{ws.slug}/events?type=twofa.policy.changed",
                           headers=ws.admin_headers()).json()["items"]
    # The grace period set while off (version 0), the flip, then three changes of the period
    # alone: the same version, and no more invitations (the audit log's invited events).
    assert [e["data"]["version"] for e in events] == [0, 1, 1, 1, 1]
    assert [e["data"]["grace_period_hours"] for e in events] == [48, 48, 100, 5, 0]
    def invited() -> list[dict[str, Any]]:
        return list(ws.client.get(f"/v1/workspaces/{ws.slug}/events?type=twofa.enrollment.invited",
                                  headers=ws.admin_headers()).json()["items"])

    # The event is recorded right after the sink accepted the email the test waited for above.
    wait_until(invited, 30, message="the invitation's event")
    assert [e["data"]["policy_version"] for e in invited()] == [1]

    for bad in ({}, {"grace_period_hours": 2161}, {"grace_period_hours": -1},
                {"grace_period_hours": "5"}, {"grace_period_hours": 1.5},
                {"require_two_factor": "yes"}):
        r = ws.client.put(f"/v1/workspaces/{ws.slug}/two-factor-policy",
                          headers=ws.admin_headers(), json=bad)
        assert r.status_code == 422, (bad, r.text)
    assert get_policy(ws)["grace_period_hours"] == 0  # bad input changed nothing


def test_reminders_go_out_before_the_deadline_once_each_with_its_date(
        stack: Stack, make_ws: Any, clock: Clock) -> None:
    ws = make_ws(teammates=4)
    ws.enroll_admin()
    enroll(ws.client, sign_in(ws, member(ws, 1))["token"])  # has 2FA: never reminded
    exempt_id = teammate_id(ws, member(ws, 2))
    r = ws.client.put(f"/v1/workspaces/{ws.slug}/teammates/{exempt_id}/exemption",
                      headers=ws.admin_headers(),
                      json={"until": iso(clock.now() + timedelta(days=20)), "reason": "travel"})
    assert r.status_code == 200, r.text
    body = put_policy(ws, {"require_two_factor": True, "grace_period_hours": 30})
    deadline = at(body["enforce_at"])
    assert [at(t) for t in body["reminders_at"]] == [deadline - timedelta(hours=24),
                                                     deadline - timedelta(hours=1)]
    wait_until(lambda: stack.smtp.to(member(ws, 3)) and stack.smtp.to(member(ws, 4)), 60,
               message="the invitations")
    assert reminders_to(stack, member(ws, 3)) == []

    clock.advance(hours=6, minutes=1)  # the 24-hour reminder is due
    wait_until(lambda: reminders_to(stack, member(ws, 3)) and reminders_to(stack, member(ws, 4)),
               60, message="the first reminders")
    [first] = reminders_to(stack, member(ws, 3))
    words = f"{deadline:%A} {deadline.day} {deadline:%B}, {deadline:%H:%M} UTC"
    assert words in first.subject and f"by {words}" in first.part("plain")
    assert "https://twofa.example.test/enroll?workspace=" in first.part("plain")

    enroll(ws.client, sign_in(ws, member(ws, 4))["token"])  # enrolls between the reminders
    clock.advance(hours=23)  # the 1-hour reminder is due
    wait_until(lambda: len(reminders_to(stack, member(ws, 3))) == 2, 60,
               message="the second reminder")
    ids = [m.message_id for m in reminders_to(stack, member(ws, 3))]
    assert len(set(ids)) == 2  # two reminders, two messages
    assert len(reminders_to(stack, member(ws, 4))) == 1
    assert reminders_to(stack, member(ws, 1)) == []  # enrolled
    assert reminders_to(stack, member(ws, 2)) == []  # exempt
    assert reminders_to(stack, ws.admin_email) == []


def test_turning_the_requirement_off_cancels_pending_reminders(
        stack: Stack, make_ws: Any, clock: Clock) -> None:
    cancelled, control = make_ws(teammates=1), make_ws(teammates=1)
    for ws in (cancelled, control):
        ws.enroll_admin()
        put_policy(ws, {"require_two_factor": True, "grace_period_hours": 48})
        wait_until(lambda ws=ws: stack.smtp.to(member(ws, 1)), 60, message="the invitation")
    off = put_policy(cancelled, {"require_two_factor": False})
    assert off["reminders_at"] == [] and off["enforce_at"] is None

    clock.advance(hours=47, minutes=30)  # both workspaces' 24 h and 1 h reminders are due
    # Both due in one sweep (it was "down" meanwhile): one email, not two at once.
    wait_until(lambda: reminders_to(stack, member(control, 1)), 60,
               message="the control workspace's reminder")
    states = wait_until(lambda: (s := reminder_states(control)) and "pending" not in s and s,
                        30, message="the reminders settled")
    assert states == ["cancelled", "sent"]  # the 24-hour one gave way to the 1-hour one
    assert len(reminders_to(stack, member(control, 1))) == 1
    assert reminder_states(cancelled) == ["cancelled", "cancelled"]
    assert reminders_to(stack, member(cancelled, 1)) == []


def reminder_states(ws: WorkspaceHandle) -> list[str]:
    """The workspace's reminders, as the operator's query shows them (docs/operations.md)."""
    from sqlalchemy import select

    from services.db import unit_of_work
    from services.models import EnrollmentReminder, Workspace

    with unit_of_work() as session:
        ws_id = session.scalar(select(Workspace.id).where(Workspace.slug == ws.slug))
        states = list(session.scalars(select(EnrollmentReminder.status)
                                      .where(EnrollmentReminder.workspace_id == ws_id)
                                      .order_by(EnrollmentReminder.due_at)))
    return states


def teammate_id(ws: WorkspaceHandle, email: str) -> int:
    r = ws.client.get(f"/v1/workspaces/{ws.slug}/teammates?q={email}", headers=ws.admin_headers())
    [one] = r.json()["items"]
    return int(one["id"])


def iso(when: datetime) -> str:
    return when.isoformat()


def test_an_exemption_holds_back_enrollment_until_it_expires(
        stack: Stack, make_ws: Any, clock: Clock) -> None:
    ws = make_ws(teammates=2)
    ws.enroll_admin()
    exempt = teammate_id(ws, member(ws, 1))
    path = f"/v1/workspaces/{ws.slug}/teammates/{exempt}/exemption"
    until = (clock.now() + timedelta(days=3)).replace(microsecond=0)
    for bad in ({"until": iso(clock.now() - timedelta(minutes=1)), "reason": "past"},
                {"until": iso(clock.now() + timedelta(days=31)), "reason": "too long"},
                {"until": until.replace(tzinfo=None).isoformat(), "reason": "no offset"},
                {"until": "next tuesday", "reason": "words"},
                {"until": int(until.timestamp()), "reason": "a number"},
                {"until": iso(until)}):
        r = ws.client.put(path, headers=ws.admin_headers(), json=bad)
        assert r.status_code == 422, (bad, r.text)
    r = ws.client.put(path, headers=ws.admin_headers(),
                      json={"until": until.astimezone(timezone(timedelta(hours=2))).isoformat(),
                            "reason": "service account being migrated"})
    assert r.status_code == 200, r.text
    assert r.json() == {"until": f"{until:%Y-%m-%dT%H:%M:%S}.000000Z",
                        "reason": "service account being migrated"}

    preview = ws.client.get(f"/v1/workspaces/{ws.slug}/two-factor-policy/preview",
                            headers=ws.admin_headers()).json()
    assert preview["would_block"] == 1  # member 2 only: exempt teammates are excluded
    assert [t["email"] for t in preview["items"]] == [member(ws, 2)]

    body = put_policy(ws, {"require_two_factor": True})
    assert body["rollout"]["exempt"] == 1
    wait_until(lambda: stack.smtp.to(member(ws, 2)), 60, message="member 2's invitation")
    counts = wait_until(lambda: (c := get_policy(ws)["rollout"])["pending"] == 0 and c, 60,
                        message="the rollout to settle")
    assert counts == {"teammates": 3, "enrolled": 1, "exempt": 1, "invited": 1, "pending": 0,
                      "failed": 0}
    assert states(ws)[member(ws, 1)] == "exempt"
    r = ws.client.get(f"/v1/workspaces/{ws.slug}/teammates?enrollment=exempt",
                      headers=ws.admin_headers())
    assert [t["email"] for t in r.json()["items"]] == [member(ws, 1)]
    assert sign_in(ws, member(ws, 1))["status"] == "authenticated"  # not held to enrollment
    assert stack.smtp.to(member(ws, 1)) == []

    clock.advance(days=3, minutes=1)  # the sweep ends it and sends the held-back invitation
    wait_until(lambda: stack.smtp.to(member(ws, 1)), 60, message="the held-back invitation")
    wait_until(lambda: states(ws)[member(ws, 1)] == "invited", 30, message="state invited")
    assert sign_in(ws, member(ws, 1))["status"] == "enrollment_required"
    # The exemption stopped counting when `until` passed; the sweep records its end (the
    # invitation may be planned by the same sweep a moment before).
    ended = wait_until(lambda: ws.client.get(
        f"/v1/workspaces/{ws.slug}/events?type=twofa.exemption.ended",
        headers=ws.admin_headers()).json()["items"], 30, message="twofa.exemption.ended")
    assert [(e["data"]["teammate_id"], e["data"]["by"]) for e in ended] == [(exempt, "expiry")]
    granted = ws.client.get(f"/v1/workspaces/{ws.slug}/events?type=twofa.exemption.granted",
                            headers=ws.admin_headers()).json()["items"]
    assert granted[0]["data"]["until"] == f"{until:%Y-%m-%dT%H:%M:%S}.000000Z"
    assert granted[0]["data"]["actor_id"] == ws.admin_id


def test_an_admin_ends_an_exemption_and_the_invitation_goes_out(
        stack: Stack, make_ws: Any, clock: Clock) -> None:
    ws = make_ws(teammates=1)
    ws.require_two_factor()
    wait_until(lambda: stack.smtp.to(member(ws, 1)), 60, message="the invitation")
    exempt = teammate_id(ws, member(ws, 1))
    path = f"/v1/workspaces/{ws.slug}/teammates/{exempt}/exemption"
    r = ws.client.put(path, headers=ws.admin_headers(),
                      json={"until": iso(clock.now() + timedelta(days=1)), "reason": "phone"})
    assert r.status_code == 200
    assert states(ws)[member(ws, 1)] == "exempt"
    assert ws.client.delete(path, headers=ws.admin_headers()).status_code == 204
    assert states(ws)[member(ws, 1)] == "invited"  # the invitation of this version went out
    ended = ws.client.get(f"/v1/workspaces/{ws.slug}/events?type=twofa.exemption.ended",
                          headers=ws.admin_headers()).json()["items"]
    assert ended[0]["data"] == {**ended[0]["data"], "by": "admin", "actor_id": ws.admin_id}
    # Already sent for this version: not again. The row stays "sent" (a resend would make it
    # pending), and a new teammate's invitation, planned after this, arrives alone.
    with_row = ws.client.post(f"/v1/workspaces/{ws.slug}/teammates", headers=ws.admin_headers(),
                              json={"email": f"later@{ws.slug}.test", "name": "Later"})
    assert with_row.status_code == 201
    wait_until(lambda: stack.smtp.to(f"later@{ws.slug}.test"), 60, message="a later email")
    wait_until(lambda: get_policy(ws)["rollout"]["pending"] == 0, 30, message="a settled rollout")
    assert len(stack.smtp.to(member(ws, 1))) == 1

    # Nobody exempts themselves (an admin without 2FA could do it again and again).
    me_id = ws.admin_id
    r = ws.client.put(f"/v1/workspaces/{ws.slug}/teammates/{me_id}/exemption",
                      headers=ws.admin_headers(),
                      json={"until": iso(clock.now() + timedelta(days=1)), "reason": "me"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


def test_a_new_teammate_gets_one_email_and_sets_up_2fa_after_the_password(
        stack: Stack, make_ws: Any) -> None:
    ws = make_ws(teammates=1)
    ws.require_two_factor()
    wait_until(lambda: stack.smtp.to(member(ws, 1)), 60, message="member 1's invitation")
    r = ws.client.post(f"/v1/workspaces/{ws.slug}/teammates", headers=ws.admin_headers(),
                       json={"email": f"new@{ws.slug}.test", "name": "New Person"})
    assert r.status_code == 201 and r.json()["enrollment"] == "pending"
    new = f"new@{ws.slug}.test"
    [join] = wait_until(lambda: stack.smtp.to(new), 60, message="the join email")
    wait_until(lambda: states(ws)[new] == "invited", 30, message="the join email counted")

    # A new policy version: member 1 is invited again, the unjoined teammate is not.
    put_policy(ws, {"require_two_factor": False})
    put_policy(ws, {"require_two_factor": True})
    wait_until(lambda: len(stack.smtp.to(member(ws, 1))) == 2, 60, message="version 3 invites")
    assert [m.message_id for m in stack.smtp.to(new)] == [join.message_id]
    counts = get_policy(ws)["rollout"]
    assert counts["invited"] == 2 and counts["pending"] == 0

    link = next(word for word in join.part("plain").split() if "/join?token=" in word)
    token = parse_qs(urlsplit(link).query)["token"][0]
    r = ws.client.post("/v1/invitations/accept",
                       json={"token": token, "password": "new-password-123", "name": "New"})
    assert r.status_code == 200 and r.json()["status"] == "enrollment_required"
    enroll(ws.client, r.json()["token"])
    assert states(ws)[new] == "enrolled"
    emails = Counter(m.subject for m in stack.smtp.to(new))
    assert sum(1 for s in emails if "now requires" in s) == 0  # never an enrollment email


def test_exemptions_are_for_admins_of_the_workspace(make_ws: Any) -> None:
    ws, other = make_ws(teammates=1), make_ws(teammates=1)
    target = teammate_id(ws, member(ws, 1))
    body = {"until": iso(datetime.now(UTC) + timedelta(days=1)), "reason": "r"}
    url = f"/v1/workspaces/{ws.slug}/teammates/{target}/exemption"
    member_token = sign_in(ws, member(ws, 1))["token"]
    r = ws.client.put(url, headers=bearer(member_token), json=body)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    # A host session of the admin (an API key's sign-in) never reaches an admin route.
    host = ws.client.post("/v1/checks/login", headers=bearer(ws.api_key()),
                          json={"email": ws.admin_email}).json()
    assert host["status"] == "authenticated", host
    for method, path in (("put", url), ("delete", url),
                         ("get", f"/v1/workspaces/{ws.slug}/two-factor-policy/preview")):
        r = ws.client.request(method, path, headers=bearer(host["token"]),
                              json=body if method == "put" else None)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", (method, path)
    r = ws.client.put(url, headers=other.admin_headers(), json=body)
    assert r.status_code == 404
    r = ws.client.put(f"/v1/workspaces/{ws.slug}/teammates/999999999/exemption",
                      headers=ws.admin_headers(), json=body)
    assert r.status_code == 404


def test_the_audit_log_records_who_changed_access(stack: Stack, make_ws: Any) -> None:
    ws = make_ws()
    admin = ws.admin_headers()
    base = f"/v1/workspaces/{ws.slug}"
    # A loopback port nothing listens on: the deliveries fail and stay on this machine.
    key = ws.client.post(f"{base}/api-keys", headers=admin, json={"name": "SSO"}).json()
    assert ws.client.delete(f"{base}/api-keys/{key['id']}", headers=admin).status_code == 204
    hook = ws.client.post(f"{base}/webhooks", headers=admin, json={
        "url": "http://127.0.0.1:1024/hook", "event_types": ["twofa.enabled"]}).json()
    r = ws.client.patch(f"{base}/webhooks/{hook['id']}", headers=admin,
                        json={"event_types": ["twofa.disabled"], "enabled": False})
    assert r.status_code == 200, r.text
    assert ws.client.post(f"{base}/webhooks/{hook['id']}/rotate-secret", headers=admin,
                          json={}).status_code == 200
    assert ws.client.delete(f"{base}/webhooks/{hook['id']}", headers=admin).status_code == 204
    added = ws.client.post(f"{base}/teammates", headers=admin,
                           json={"email": f"joiner@{ws.slug}.test", "name": "Joiner"}).json()
    [join] = wait_until(lambda: stack.smtp.to(f"joiner@{ws.slug}.test"), 60, message="join")
    link = next(word for word in join.part("plain").split() if "/join?token=" in word)
    r = ws.client.post("/v1/invitations/accept", json={
        "token": parse_qs(urlsplit(link).query)["token"][0], "password": "joiner-pass-123"})
    assert r.status_code == 200, r.text

    events = ws.client.get(f"{base}/events?limit=500", headers=admin).json()["items"]
    seen = [(e["type"], e["data"]) for e in events]
    expected = [
        ("twofa.api_key.created", {"api_key_id": key["id"], "name": "SSO"}),
        ("twofa.api_key.revoked", {"api_key_id": key["id"]}),
        ("twofa.webhook.created", {"webhook_id": hook["id"], "url": "http://127.0.0.1:1024/hook",
                                   "event_types": ["twofa.enabled"]}),
        ("twofa.webhook.changed", {"webhook_id": hook["id"],
                                   "changed": ["event_types", "enabled"]}),
        ("twofa.webhook.changed", {"webhook_id": hook["id"], "changed": ["secret"]}),
        ("twofa.webhook.deleted", {"webhook_id": hook["id"]}),
        ("twofa.teammate.added", {"teammate_id": added["id"]}),
        ("twofa.invitation.accepted", {"teammate_id": added["id"]}),
    ]
    assert [t for t, _ in seen] == [t for t, _ in expected]
    for (_, data), (_, wanted) in zip(seen, expected, strict=True):
        assert data == {**data, **wanted}
        assert data["ip"] == "127.0.0.1" and data["user_agent"].startswith("python-httpx/")
    assert all(d["actor_id"] == ws.admin_id for t, d in seen if t != "twofa.invitation.accepted")

    for bad in ("type=twofa.nonsense", "after=-1", "after=abc", "limit=0"):
        r = ws.client.get(f"{base}/events?{bad}", headers=admin)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", bad


def test_the_kept_counts_match_the_rows_after_every_kind_of_change(
        stack: Stack, make_ws: Any, clock: Clock) -> None:
    """The totals the policy answers from (team_counts) follow adds, joins, removals, 2FA on
    and off by every path, and agree with a recount of the rows and with the listed states."""
    from services.db import unit_of_work
    from services.team_counts import exact, get

    ws = make_ws(teammates=5)
    ws.require_two_factor()  # the admin enrolls first
    base = f"/v1/workspaces/{ws.slug}"
    admin = ws.admin_headers()
    enrolled = enroll(ws.client, sign_in(ws, member(ws, 1))["token"])
    member_2 = sign_in(ws, member(ws, 2))["token"]
    enroll(ws.client, member_2)
    ids = {t["email"]: t["id"] for t in ws.client.get(
        f"{base}/teammates?limit=500", headers=admin).json()["items"]}
    assert ws.client.delete(f"{base}/teammates/{ids[member(ws, 1)]}/two-factor",
                            headers=admin).status_code == 204  # admin reset
    assert ws.client.delete(f"{base}/teammates/{ids[member(ws, 2)]}",
                            headers=admin).status_code == 204  # enrolled, then removed
    assert ws.client.delete(f"{base}/teammates/{ids[member(ws, 3)]}",
                            headers=admin).status_code == 204
    r = ws.client.post(f"{base}/teammates", headers=admin,
                       json={"email": f"new@{ws.slug}.test", "name": "New"})
    assert r.status_code == 201
    r = ws.client.put(f"{base}/teammates/{ids[member(ws, 4)]}/exemption", headers=admin,
                      json={"until": iso(clock.now() + timedelta(days=2)), "reason": "trip"})
    assert r.status_code == 200
    del enrolled

    with unit_of_work() as session:
        from services.accounts import workspaces

        workspace_id = workspaces.get_by_slug(session, ws.slug).id
        kept, rows = get(session, workspace_id), exact(session, workspace_id)
    assert kept == rows
    assert (rows.teammates, rows.enrolled) == (5, 1)  # admin, members 1, 4, 5, new; admin has 2FA
    # Once the emails are out (counts and list read at the same settled moment):
    counts = wait_until(lambda: (c := get_policy(ws)["rollout"])["pending"] == 0 and c, 60,
                        message="the invitations and the join email")
    listed = Counter(states(ws).values())
    assert counts["teammates"] == sum(listed.values()) == 5
    for bucket in ("enrolled", "exempt", "invited", "pending", "failed"):
        assert counts[bucket] == listed.get(bucket, 0), (bucket, counts, listed)


def test_concurrent_removals_and_resets_move_the_kept_counts_once(make_ws: Any) -> None:
    """Two admins at once removing the same teammate, or turning off the same teammate's 2FA
    (an admin and the operator's command): the totals the flip answers from stay true."""
    from concurrent.futures import ThreadPoolExecutor

    from services.accounts import workspaces
    from services.db import unit_of_work
    from services.team_counts import exact, get

    ws = make_ws(teammates=4)
    base = f"/v1/workspaces/{ws.slug}"
    for n in (1, 2):
        enroll(ws.client, sign_in(ws, member(ws, n))["token"])
    ids = {t["email"]: t["id"] for t in ws.client.get(
        f"{base}/teammates?limit=500", headers=ws.admin_headers()).json()["items"]}
    admin = ws.admin_headers()

    def twice(method: str, path: str) -> list[int]:
        with ThreadPoolExecutor(2) as pool:
            return sorted(pool.map(lambda _: ws.client.request(method, path, headers=admin)
                                   .status_code, range(2)))

    assert twice("delete", f"{base}/teammates/{ids[member(ws, 1)]}")[0] == 204  # enrolled one
    assert twice("delete", f"{base}/teammates/{ids[member(ws, 3)]}")[0] == 204
    assert twice("delete", f"{base}/teammates/{ids[member(ws, 2)]}/two-factor") == [204, 204]
    with unit_of_work() as session:
        workspace_id = workspaces.get_by_slug(session, ws.slug).id
        kept, rows = get(session, workspace_id), exact(session, workspace_id)
    assert kept == rows
    assert (rows.teammates, rows.enrolled) == (3, 0)  # admin, members 2 and 4; none with 2FA
    removed = ws.client.get(f"{base}/events?type=twofa.teammate.removed", headers=admin).json()
    assert len(removed["items"]) == 2  # one event per removal, not per request
