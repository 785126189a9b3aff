"""The console's enforcement screens over HTTP (no browser): grace period and deadline,
impact preview, reminders, filters and CSV export, exemptions and bypass codes."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from html import unescape

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Clock, WorkspaceHandle
from tests.stack import Stack, wait_until
from tests.test_console_pages import console_client, enroll, sign_in, token_of


@pytest.fixture
def browser(stack: Stack) -> Iterator[TestClient]:
    from services.asgi import create_app

    with console_client(create_app()) as c:
        yield c


def member(ws: WorkspaceHandle, n: int) -> str:
    return f"member-{n:05d}@{ws.slug}.test"


def text_of(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def save_policy(browser: TestClient, require: bool, grace: str,
                confirmed: bool = True) -> TestClient:
    """Save, and press Confirm on the confirm step that turning the requirement on or off
    shows first (the form's hidden `confirmed`)."""
    data = {"csrf_token": token_of(browser, "/admin/authentication"), "grace_period_hours": grace}
    if require:
        data["require_two_factor"] = "on"
    if confirmed:
        data["confirmed"] = "1"
    return browser.post("/admin/authentication", data=data)


def test_the_authentication_page_previews_then_shows_the_deadline_and_reminders(
        browser: TestClient, make_workspace: object) -> None:
    ws: WorkspaceHandle = make_workspace(teammates=12)  # type: ignore[operator]
    sign_in(browser, ws)
    page = text_of(browser.get("/admin/authentication").text)
    # Before the flip: who would be held, including this admin without 2FA.
    assert "Before you turn it on" in page
    assert "13 teammates without 2FA would have to set it up if you require it now" in page
    assert f"Admins without 2FA: Admin ({ws.admin_email})" in page
    assert member(ws, 1) in page and "Everyone without 2FA in the Teammates table (13;" in page

    enroll(browser)
    ask = save_policy(browser, True, "48", confirmed=False)  # the confirm step, nothing saved
    assert ask.status_code == 200
    said = text_of(ask.text)
    assert "12 teammates without 2FA will get an email now" in said and "UTC" in said
    assert "off and on again" in said and ">Confirm</button>" in ask.text
    assert "Before you turn it on" in text_of(browser.get("/admin/authentication").text)
    r = save_policy(browser, True, "48")
    assert r.status_code == 303, r.text
    page = text_of(browser.get("/admin/authentication").text)
    assert 'value="48"' in browser.get("/admin/authentication").text
    assert "Enforced from" in page and "UTC" in page
    assert page.count("UTC") >= 3  # the deadline and the 24 h and 1 h reminders
    assert "12 teammates without 2FA have to set it up by the deadline" in page

    bad = save_policy(browser, True, "two days")
    assert bad.status_code == 400 and "whole number of hours" in bad.text
    too_long = save_policy(browser, True, "9999")
    assert too_long.status_code == 400 and "Grace period (hours) must be 2160 or less." in text_of(
        too_long.text)
    assert 'value="48"' in browser.get("/admin/authentication").text  # nothing changed

    assert save_policy(browser, True, "0").status_code == 303
    assert "Enforced now" in text_of(browser.get("/admin/authentication").text)


def test_teammates_filter_export_exempt_and_end_an_exemption(
        browser: TestClient, make_workspace: object, clock: Clock) -> None:
    ws: WorkspaceHandle = make_workspace(teammates=3)  # type: ignore[operator]
    sign_in(browser, ws)
    enroll(browser)
    page = browser.get("/admin/teammates?two_factor=enabled").text
    assert ws.admin_email in page and member(ws, 1) not in page
    page = browser.get(f"/admin/teammates?q={member(ws, 2)}").text
    assert member(ws, 2) in page and member(ws, 3) not in page
    assert "not applied" in browser.get("/admin/teammates?enrollment=sleeping").text

    target = re.search(r'action="/admin/teammates/(\d+)/exemption"[^>]*>.*?Exempt Member 2',
                       browser.get(f"/admin/teammates?q={member(ws, 2)}").text, re.S)
    assert target, "an Exempt button for member 2"
    teammate_id = target.group(1)
    form = browser.get(f"/admin/teammates/{teammate_id}/exemption").text
    assert 'type="date"' in form and "Exempt through (UTC)" in form
    last_day = (clock.now() + timedelta(days=5)).date().isoformat()
    token = token_of(browser, f"/admin/teammates/{teammate_id}/exemption")
    missing = browser.post(f"/admin/teammates/{teammate_id}/exemption",
                           data={"csrf_token": token, "until": last_day, "reason": " "})
    assert missing.status_code == 400 and "Give a reason" in missing.text
    late = (clock.now() + timedelta(days=45)).date().isoformat()
    too_far = browser.post(f"/admin/teammates/{teammate_id}/exemption",
                           data={"csrf_token": token, "until": late, "reason": "trip"})
    assert too_far.status_code == 400 and "30 days at most" in too_far.text
    r = browser.post(f"/admin/teammates/{teammate_id}/exemption",
                     data={"csrf_token": token, "until": last_day, "reason": "travelling"})
    assert r.status_code == 303, r.text
    page = text_of(browser.get(r.headers["location"]).text)
    assert f"{member(ws, 2)} is exempt" in page
    assert "Exempt until" in page

    exported = browser.get("/admin/teammates/export.csv?enrollment=exempt")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["email"], r["enrollment"]) for r in rows] == [(member(ws, 2), "exempt")]
    assert rows[0]["exempt_until"].startswith(
        (clock.now() + timedelta(days=6)).date().isoformat())  # through that day, UTC

    ended = browser.post(f"/admin/teammates/{teammate_id}/end-exemption",
                         data={"csrf_token": token_of(browser, "/admin/teammates")})
    assert ended.status_code == 303
    assert "no longer exempt" in text_of(browser.get(ended.headers["location"]).text)


def test_a_bypass_code_is_shown_once_and_signs_the_teammate_in(
        browser: TestClient, make_workspace: object) -> None:
    from tests.twofactor import enroll as enroll_api

    ws: WorkspaceHandle = make_workspace(teammates=1)  # type: ignore[operator]
    r = ws.client.post("/v1/login", json={"workspace": ws.slug, "email": member(ws, 1),
                                          "password": "member-password"})
    enroll_api(ws.client, r.json()["token"])
    sign_in(browser, ws)
    enroll(browser)
    listing = browser.get("/admin/teammates").text
    action = re.search(r'action="(/admin/teammates/\d+/bypass-code)"', listing)
    assert action, listing
    shown = browser.post(action.group(1), data={"csrf_token": token_of(browser, "/admin/teammates")})
    assert shown.status_code == 200 and shown.headers["cache-control"] == "no-store"
    code = re.search(r'id="bypass-code"[^>]*>([^<]+)<', shown.text)
    assert code, shown.text
    challenge = ws.client.post("/v1/login", json={"workspace": ws.slug, "email": member(ws, 1),
                                                  "password": "member-password"}).json()
    done = ws.client.post("/v1/login/two-factor", json={"challenge": challenge["challenge"],
                                                        "code": code.group(1).strip()})
    assert done.status_code == 200 and done.json()["status"] == "authenticated"


def test_the_console_redirects_to_setup_only_once_2fa_is_enforced(
        browser: TestClient, make_workspace: object, clock: Clock) -> None:
    ws: WorkspaceHandle = make_workspace(teammates=1)  # type: ignore[operator]
    admin = console_client(browser.app)
    sign_in(admin, ws)
    enroll(admin)
    assert save_policy(admin, True, "24").status_code == 303

    # During the grace period a teammate without 2FA signs in and works as before.
    assert sign_in(browser, ws, member(ws, 1), "member-password") == "/"
    home = browser.get("/")
    assert home.status_code == 200
    deadline = re.search(r"Set it up by (.+?) in Two-factor authentication", text_of(home.text))
    assert deadline and deadline.group(1).endswith("UTC"), text_of(home.text)
    page = text_of(browser.get("/settings/two-factor").text)
    assert f"Set it up by {deadline.group(1)}" in page

    clock.advance(hours=24, minutes=1)  # enforced: the same session may only enroll
    for path in ("/", "/admin/teammates"):
        r = browser.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/settings/two-factor", path
    # The admin's page no longer speaks of the deadline as to come, nor of sent reminders.
    page = text_of(admin.get("/admin/authentication").text)
    assert "Enforced since" in page and "sign in as usual" not in page
    assert "still to go" not in page


def test_a_new_phone_from_the_settings_page_and_after_a_bypass_code(
        browser: TestClient, make_workspace: object) -> None:
    import pyotp

    ws: WorkspaceHandle = make_workspace(teammates=1)  # type: ignore[operator]
    sign_in(browser, ws, member(ws, 1), "member-password")
    old, used = enroll(browser)
    page = browser.get("/settings/two-factor").text
    assert "A new phone" in page and "Code from your current app or a recovery code" in page

    wrong = browser.post("/settings/two-factor/replace", data={
        "csrf_token": token_of(browser, "/settings/two-factor"), "code": "000000"})
    assert wrong.status_code == 400 and 'aria-invalid="true"' in wrong.text
    started = browser.post("/settings/two-factor/replace", data={
        "csrf_token": token_of(browser, "/settings/two-factor"), "code": old.at(time.time() + 30)})
    assert started.status_code == 303, started.text
    page = browser.get("/settings/two-factor").text
    secret = re.search(r'id="new-secret" data-secret="([A-Z2-7]+)"', page)
    assert secret and browser.get("/settings/two-factor/qr.png").status_code == 200
    new = pyotp.TOTP(secret.group(1))
    switched = browser.post("/settings/two-factor/confirm", data={
        "csrf_token": token_of(browser, "/settings/two-factor"), "code": new.now()})
    assert "Your recovery codes" in switched.text

    # The next sign-in takes the new phone's code, not the old one's.
    api_challenge = ws.client.post("/v1/login", json={
        "workspace": ws.slug, "email": member(ws, 1), "password": "member-password"}).json()
    refused = ws.client.post("/v1/login/two-factor", json={
        "challenge": api_challenge["challenge"], "code": old.at(time.time() + 60)})
    assert refused.status_code == 401
    accepted = ws.client.post("/v1/login/two-factor", json={
        "challenge": api_challenge["challenge"], "code": new.at(time.time() + 30)})
    assert accepted.status_code == 200

    # A bypass code from an admin leads straight to setting up a new phone, without a code.
    del used
    admin = console_client(browser.app)
    sign_in(admin, ws)
    enroll(admin)
    listing = admin.get("/admin/teammates").text
    action = re.search(r'action="(/admin/teammates/\d+/bypass-code)"', listing)
    assert action
    shown = admin.post(action.group(1), data={"csrf_token": token_of(admin, "/admin/teammates")})
    code = re.search(r'id="bypass-code"[^>]*>([^<]+)<', shown.text)
    assert code
    fresh = console_client(browser.app)
    step = fresh.post("/login", data={"csrf_token": token_of(fresh), "workspace": ws.slug,
                                      "email": member(ws, 1), "password": "member-password"})
    challenge = re.search(r'name="challenge" value="([^"]+)"', step.text)
    assert challenge, step.text
    done = fresh.post("/login/code", data={"csrf_token": token_of(fresh), "challenge":
                                           challenge.group(1), "code": code.group(1).strip()})
    assert done.status_code == 303 and done.headers["location"] == "/settings/two-factor"
    page = fresh.get("/settings/two-factor").text
    assert "You signed in with a bypass code" in page and 'id="replace-code"' not in page
    assert fresh.post("/settings/two-factor/replace", data={
        "csrf_token": token_of(fresh, "/settings/two-factor")}).status_code == 303
    assert 'id="new-secret"' in fresh.get("/settings/two-factor").text


def test_roles_and_removal_from_the_teammates_table(
        browser: TestClient, make_workspace: object) -> None:
    ws: WorkspaceHandle = make_workspace(teammates=2)  # type: ignore[operator]
    sign_in(browser, ws)
    listing = browser.get("/admin/teammates").text
    role_forms = dict(re.findall(
        r'action="/admin/teammates/(\d+)/role">.*?aria-label="(Make \w+): ', listing, re.S))
    assert len(role_forms) == 2 and set(role_forms.values()) == {"Make admin"}  # not oneself
    first = min(role_forms, key=int)
    made = browser.post(f"/admin/teammates/{first}/role", data={
        "csrf_token": token_of(browser, "/admin/teammates"), "role": "admin"})
    assert made.status_code == 303
    assert "has a new role" in browser.get(made.headers["location"]).text
    roles = {t["id"]: t["role"] for t in ws.client.get(
        f"/v1/workspaces/{ws.slug}/teammates", headers=ws.admin_headers()).json()["items"]}
    assert roles[int(first)] == "admin"

    confirm = browser.get(f"/admin/teammates/{first}/remove")
    assert confirm.status_code == 200 and "Yes, remove" in confirm.text
    removed = browser.post(f"/admin/teammates/{first}/remove", data={
        "csrf_token": token_of(browser, f"/admin/teammates/{first}/remove")})
    assert removed.status_code == 303
    page = text_of(browser.get(removed.headers["location"]).text)
    assert "was removed" in page and member(ws, 1) not in page.split("was removed")[1]
    bad = browser.post(f"/admin/teammates/{first}/role", data={
        "csrf_token": token_of(browser, "/admin/teammates"), "role": "admin"})
    assert bad.status_code == 404  # removed: no longer a teammate to change


def test_a_new_teammate_joins_straight_into_setup_even_within_a_grace_period(
        browser: TestClient, stack: Stack, make_workspace: object) -> None:
    ws: WorkspaceHandle = make_workspace()  # type: ignore[operator]
    admin = console_client(browser.app)
    sign_in(admin, ws)
    enroll(admin)
    assert save_policy(admin, True, "72").status_code == 303
    invited = admin.post("/admin/teammates", data={
        "csrf_token": token_of(admin, "/admin/teammates"), "email": f"late@{ws.slug}.test",
        "name": "Late", "role": "member"})
    assert invited.status_code == 303
    [join] = wait_until(lambda: stack.smtp.to(f"late@{ws.slug}.test"), 60, message="join email")
    link = next(word for word in join.part("plain").split() if "/join?token=" in word)
    path = link.split("https://twofa.example.test", 1)[1]
    joined = browser.post("/join", data={
        "csrf_token": token_of(browser, path), "token": path.split("token=", 1)[1],
        "name": "Late", "password": "late-password-123"})
    assert joined.status_code == 303 and joined.headers["location"] == "/settings/two-factor"
    page = text_of(browser.get("/settings/two-factor").text)
    assert "Set it up by" in page and "Turn on 2FA" in page  # the deadline, and setup
