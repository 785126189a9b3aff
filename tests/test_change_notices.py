"""People are told about changes to their access: one email per action (read from the caught
mail), its event in the audit log and delivered to webhooks. Over real HTTP to `twofa api`
with the real relay, worker and SMTP server."""

from __future__ import annotations

from typing import Any

from tests.conftest import WorkspaceHandle
from tests.stack import Stack, wait_until
from tests.trust import enrolled_member, events, member, password_sign_in
from tests.twofactor import bearer, code, steady, wrong_codes

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


def mail_to(stack: Stack, address: str, subject: str, count: int = 1) -> list[Any]:
    return wait_until(lambda: len(found := [m for m in stack.smtp.to(address)
                                            if subject in m.subject]) >= count and found,
                      60, message=f"{count} × {subject!r} to {address}")


def one_event(ws: WorkspaceHandle, type_: str) -> dict[str, Any]:
    found = wait_until(lambda: events(ws, type_), 30, message=type_)
    assert len(found) == 1, found
    return dict(found[0]["data"])


def test_enabling_sends_one_email_though_two_events_are_recorded(
        stack: Stack, make_ws: Any) -> None:
    ws = make_ws(teammates=1)
    mark = outbox_mark()
    _, _, mid = enrolled_member(ws)
    assert one_event(ws, "twofa.method.added")["method"] == "totp"
    assert one_event(ws, "twofa.enabled")["teammate_id"] == mid
    mail_to(stack, member(ws), "is on")
    # The notice of the added method is left out: the "2FA is on" email says it.
    password_sign_in(ws, member(ws, 1))  # let the worker catch up with what follows
    outbox_drained(mark)
    assert [m.subject for m in stack.smtp.to(member(ws))] == [
        f"Two-factor authentication is on for {ws.name}"]


def outbox_mark() -> int:
    """The newest outbox message now: what a test waits for is what came after it."""
    from sqlalchemy import func, select

    from services.db import unit_of_work
    from services.models import OutboxMessage

    with unit_of_work() as session:
        return int(session.scalar(select(func.coalesce(func.max(OutboxMessage.id), 0))))


def pending_notices(since: int = 0) -> list[str]:
    """The outbox messages after `since` the workers have not done yet, described for a
    failure message."""
    from sqlalchemy import select

    from services.db import unit_of_work
    from services.models import OutboxMessage

    with unit_of_work() as session:
        return [f"#{m.id} {m.topic} created {m.created_at:%H:%M:%S} published "
                f"{m.published_at and f'{m.published_at:%H:%M:%S}'} ×{m.publish_count}"
                for m in session.scalars(select(OutboxMessage).where(
                    OutboxMessage.id > since, OutboxMessage.completed_at.is_(None)).limit(5))]


def outbox_drained(since: int, timeout: float = 60) -> None:
    """Wait until the worker has done every outbox message after `since` (the stack is
    shared: an earlier test may leave one to be published again later, by design)."""
    try:
        wait_until(lambda: not pending_notices(since), timeout, message="the outbox drained")
    except AssertionError as timed_out:
        raise AssertionError(f"{timed_out}; still pending: {pending_notices(since)}") from None


def test_regenerated_codes_a_new_phone_and_bypass_codes_are_told(
        stack: Stack, make_ws: Any) -> None:
    steady(12)
    ws = make_ws(teammates=1)
    token, secret, mid = enrolled_member(ws)
    r = ws.client.post("/v1/me/two-factor/recovery-codes", headers=bearer(token),
                       json={"code": code(secret)})
    assert r.status_code == 200, r.text
    assert one_event(ws, "twofa.recovery_codes.regenerated")["teammate_id"] == mid
    mail_to(stack, member(ws), "recovery codes")

    started = ws.client.post("/v1/me/two-factor/replace", headers=bearer(token),
                             json={"code": code(secret, 30)})
    assert started.status_code == 200, started.text
    r = ws.client.post("/v1/me/two-factor/confirm", headers=bearer(token),
                       json={"code": code(started.json()["secret"])})
    assert r.status_code == 200, r.text
    assert one_event(ws, "twofa.method.replaced") == {
        "teammate_id": mid, "method": "totp", "ip": "127.0.0.1", "user_agent": r.request.headers[
            "user-agent"]}
    mail_to(stack, member(ws), "authenticator app was replaced")

    issued = ws.client.post(f"/v1/workspaces/{ws.slug}/teammates/{mid}/bypass-code",
                            headers=ws.admin_headers())
    assert issued.status_code == 201, issued.text
    mail_to(stack, member(ws), "bypass code")
    challenge = password_sign_in(ws, member(ws))["challenge"]
    assert ws.client.post("/v1/login/two-factor", json={
        "challenge": challenge, "code": issued.json()["code"]}).status_code == 200
    mail_to(stack, member(ws), "signed in with a bypass code")


def test_a_role_change_is_told_to_the_teammate_and_every_other_admin(
        stack: Stack, make_ws: Any) -> None:
    ws = make_ws(teammates=3)
    ids = {}
    for n in (1, 2):
        token = password_sign_in(ws, member(ws, n))["token"]
        ids[n] = ws.client.get("/v1/me", headers=bearer(token)).json()["id"]
    base = f"/v1/workspaces/{ws.slug}/teammates"
    assert ws.client.patch(f"{base}/{ids[2]}", headers=ws.admin_headers(),
                           json={"role": "admin"}).status_code == 200
    assert ws.client.patch(f"{base}/{ids[1]}", headers=ws.admin_headers(),
                           json={"role": "admin"}).status_code == 200
    [told] = mail_to(stack, member(ws, 1), "You are now an admin")
    assert ws.name in told.part("plain")
    # The owner and the earlier admin are told; the member who was not involved is not.
    for address in (ws.admin_email, member(ws, 2)):
        assert mail_to(stack, address, f"is now an admin of {ws.name}")
    assert [m for m in stack.smtp.to(member(ws, 3))] == []


def test_three_wrong_codes_after_a_right_password_are_told_once_per_streak(
        stack: Stack, make_ws: Any) -> None:
    steady(8)
    ws = make_ws(teammates=1)
    _, secret, mid = enrolled_member(ws)
    challenge = password_sign_in(ws, member(ws), headers={"User-Agent": FIREFOX})["challenge"]
    for wrong in wrong_codes(secret, 4):
        r = ws.client.post("/v1/login/two-factor", headers={"User-Agent": FIREFOX},
                           json={"challenge": challenge, "code": wrong})
        assert r.status_code == 401, r.text
    data = one_event(ws, "twofa.verification.suspicious")
    assert data["teammate_id"] == mid and data["failures"] == 3
    assert data["ip"] == "127.0.0.1" and data["user_agent"] == FIREFOX
    [told] = mail_to(stack, member(ws), "wrong code")
    text = " ".join(told.part("plain").split())
    assert "127.0.0.1" in text and "Firefox on Linux" in text and "UTC" in text
    assert ws.client.get(f"/v1/workspaces/{ws.slug}/events",
                         headers=ws.admin_headers()).status_code == 200


def test_every_notice_renders_from_its_event(make_ws: Any) -> None:
    """Each row of the notices table builds its email(s) from a recorded event of its type,
    the ones no endpoint sends yet (a password change, a security key) included."""
    from services.db import unit_of_work
    from services.email.notifications import event_emails
    from services.events import recorder
    from services.events.catalog import EventType
    from services.events.notices import NOTICES
    from services.models import Teammate

    ws = make_ws(teammates=1)
    other_admin = password_sign_in(ws, member(ws))["token"]
    mid = int(ws.client.get("/v1/me", headers=bearer(other_admin)).json()["id"])
    teammate = {"teammate_id": mid}
    samples: dict[EventType, dict[str, Any]] = {
        EventType.ENABLED: teammate,
        EventType.DISABLED: {**teammate, "by": "admin", "actor_id": ws.admin_id},
        EventType.METHOD_ADDED: {**teammate, "method": "webauthn", "name": "Blue <key>"},
        EventType.METHOD_REMOVED: {**teammate, "method": "totp", "name": "Authenticator app"},
        EventType.METHOD_REPLACED: {**teammate, "method": "totp"},
        EventType.RECOVERY_CODE_USED: {**teammate, "remaining": 9},
        EventType.RECOVERY_CODES_REGENERATED: teammate,
        EventType.TEAMMATE_LOCKED: {**teammate, "until": "2030-01-01T00:00:00.000000Z"},
        EventType.VERIFICATION_SUSPICIOUS: {**teammate, "failures": 3, "ip": "203.0.113.7",
                                            "user_agent": FIREFOX},
        EventType.BYPASS_CODE_ISSUED: {**teammate, "actor_id": ws.admin_id,
                                       "expires_at": "2030-01-01T00:15:00.000000Z"},
        EventType.BYPASS_CODE_USED: teammate,
        EventType.TEAMMATE_ROLE_CHANGED: {**teammate, "actor_id": ws.admin_id, "role": "member"},
        EventType.PASSWORD_CHANGED: {**teammate, "by": "reset"},
    }
    assert set(samples) == set(NOTICES)
    with unit_of_work() as session:
        target = session.get(Teammate, mid)
        assert target is not None
        target.name = "Zoë <b>Bold</b>"
        for type_, data in samples.items():
            event = recorder.record(session, target.workspace_id, type_, data, teammate_id=mid)
            built = event_emails(session, event.seq)
            assert built, type_
            for _, outgoing in built:
                html = outgoing.mime.get_payload()[1].get_payload(decode=True).decode()
                assert "<b>Bold</b>" not in html and "Blue <key>" not in html, type_
        session.rollback()  # nothing of this is sent
