"""Console pages over HTTP (no browser): cookies, CSRF, the level rule, errors in words.

Runs on the session stack (its TWOFA_PUBLIC_URL is https, so cookies must be Secure) with a
client that speaks https, as a browser behind the public URL would.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pyotp
import pytest
from fastapi.testclient import TestClient

from tests.conftest import ADMIN_PASSWORD, WorkspaceHandle
from tests.stack import Stack

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def console_client(app: Any) -> TestClient:
    """A browser at https://testserver (an allowed host in the suite): a cookie jar of its
    own, and the `Origin` every current browser sends with a form post."""
    return TestClient(app, base_url="https://testserver", follow_redirects=False,
                      headers={"Origin": "https://testserver"})


@pytest.fixture
def browser(stack: Stack) -> Iterator[TestClient]:
    """A cookie jar of its own, like a fresh browser."""
    from services.asgi import create_app

    with console_client(create_app()) as c:
        yield c


def session_cookie(client: TestClient) -> str | None:
    """The session cookie (`__Host-` on https, as the session stack's public URL is)."""
    return client.cookies.get("__Host-twofa_session")


def token_of(client: TestClient, path: str = "/login") -> str:
    found = CSRF.search(client.get(path).text)
    assert found, path
    return found.group(1)


def sign_in(client: TestClient, ws: WorkspaceHandle, email: str | None = None,
            password: str = ADMIN_PASSWORD) -> str:
    r = client.post("/login", data={"csrf_token": token_of(client), "workspace": ws.slug,
                                    "email": email or ws.admin_email, "password": password})
    assert r.status_code in (200, 303), r.text
    return r.headers.get("location", r.text)


def enroll(client: TestClient) -> tuple[pyotp.TOTP, str]:
    page = client.get("/settings/two-factor").text
    secret = re.search(r'data-secret="([A-Z2-7]+)"', page)
    assert secret, page
    totp = pyotp.TOTP(secret.group(1))
    code = totp.now()
    r = client.post("/settings/two-factor/confirm",
                    data={"csrf_token": token_of(client, "/settings/two-factor"), "code": code})
    assert "Your recovery codes" in r.text, r.text
    return totp, code


def test_session_cookie_is_httponly_lax_and_secure_on_https(
        browser: TestClient, workspace: WorkspaceHandle) -> None:
    sign_in(browser, workspace)
    cookies = browser.post("/login", data={
        "csrf_token": token_of(browser), "workspace": workspace.slug,
        "email": workspace.admin_email, "password": ADMIN_PASSWORD}).headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("__Host-twofa_session="))
    assert "HttpOnly" in session and "SameSite=lax" in session and "Secure" in session
    assert browser.get("/").status_code == 200


def test_a_form_without_the_csrf_token_is_refused(
        browser: TestClient, workspace: WorkspaceHandle) -> None:
    sign_in(browser, workspace)
    r = browser.post("/admin/authentication", data={"require_two_factor": "on"})
    assert r.status_code == 403 and "Form refused" in r.text
    wrong = browser.post("/admin/authentication",
                         data={"csrf_token": "x" * 43, "require_two_factor": "on"})
    assert wrong.status_code == 403
    page = browser.get("/admin/authentication").text
    assert 'name="require_two_factor" checked' not in page and 'id="require" name' in page
    assert browser.post("/logout", data={}).status_code == 403  # sign-out needs it too


def test_sign_out_ends_the_session(browser: TestClient, workspace: WorkspaceHandle) -> None:
    sign_in(browser, workspace)
    cookie = session_cookie(browser)
    r = browser.post("/logout", data={"csrf_token": token_of(browser, "/")})
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert browser.get("/").headers["location"].startswith("/login")
    # The token itself is dead, not just forgotten by the browser.
    api = browser.get("/v1/me", headers={"Authorization": f"Bearer {cookie}"})
    assert api.status_code == 401


def test_enrollment_level_redirects_before_a_members_403(
        browser: TestClient, make_workspace: object) -> None:
    ws: WorkspaceHandle = make_workspace(teammates=1)  # type: ignore[operator]
    admin = console_client(browser.app)
    sign_in(admin, ws)
    refused = admin.post("/admin/authentication", data={
        "csrf_token": token_of(admin, "/admin/authentication"), "require_two_factor": "on"})
    assert refused.status_code == 400 and "for your own account before you require" in refused.text
    enroll(admin)
    saved = admin.post("/admin/authentication", data={
        "csrf_token": token_of(admin, "/admin/authentication"), "require_two_factor": "on",
        "confirmed": "1"})  # the confirm step's button
    assert saved.status_code == 303
    member = f"member-00001@{ws.slug}.test"
    assert sign_in(browser, ws, member, "member-password") == "/settings/two-factor"
    for path in ("/", "/admin/teammates", "/admin/authentication", "/admin/authentication/rollout.json"):
        r = browser.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/settings/two-factor", path
    enroll(browser)
    assert browser.get("/admin/teammates").status_code == 403
    assert "Authentication</a>" not in browser.get("/").text  # no admin navigation
    # Turning it off is refused with the reason while the workspace requires 2FA.
    page = browser.get("/settings/two-factor").text
    assert re.search(r"<button type=\"submit\" disabled[^>]*>Turn off 2FA", page)
    assert "requires two-factor authentication for all teammates" in page


def test_wrong_replayed_and_locked_codes_are_said_in_words(
        browser: TestClient, workspace: WorkspaceHandle) -> None:
    sign_in(browser, workspace)
    _, used = enroll(browser)
    browser.cookies.clear()

    def code_step(code: str) -> str:
        page = browser.post("/login", data={
            "csrf_token": token_of(browser), "workspace": workspace.slug,
            "email": workspace.admin_email, "password": ADMIN_PASSWORD}).text
        challenge = re.search(r'name="challenge" value="([^"]+)"', page)
        assert challenge, page
        r = browser.post("/login/code", data={"csrf_token": token_of(browser),
                                              "challenge": challenge.group(1), "code": code})
        return r.text if r.status_code == 400 else f"redirect {r.headers['location']}"

    assert "That code was used already" in code_step(used)  # enrolling used it
    assert "That code is not valid." in code_step("000000")
    for _ in range(10):  # the 10th failure locks; the next attempt hears how long
        last = code_step("000000")
    assert re.search(r"locked for a while\. Try again in \d+ (seconds|minutes)\.", last), last


def test_expired_join_link_and_bad_sign_in_are_said_on_the_page(
        browser: TestClient, workspace: WorkspaceHandle) -> None:
    from datetime import timedelta

    from services.accounts import teammates, workspaces
    from services.db import unit_of_work
    from services.models import utcnow

    with unit_of_work() as session:
        ws = workspaces.get_by_slug(session, workspace.slug)
        late = teammates.add(session, ws, f"late@{workspace.slug}.test", "Late", "member")
        token = teammates.join_token(late)
        late.join_expires_at = utcnow() - timedelta(seconds=1)
    r = browser.get(f"/join?token={token}")  # said before any form
    assert r.status_code == 400 and "This invitation link has expired." in r.text
    assert "Ask an admin of Acme &amp; Co &lt;Team&gt; to send you a new invitation" in r.text
    assert ">Join</button>" not in r.text
    r = browser.post("/login", data={"csrf_token": token_of(browser), "workspace": "nope",
                                     "email": "a@b.test", "password": "x"})
    assert r.status_code == 400 and "Workspace, email or password is wrong." in r.text


def test_next_never_leaves_the_site(browser: TestClient, workspace: WorkspaceHandle) -> None:
    r = browser.post("/login", data={
        "csrf_token": token_of(browser), "workspace": workspace.slug, "next": "//evil.test/x",
        "email": workspace.admin_email, "password": ADMIN_PASSWORD})
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_caught_mail_is_not_mounted_with_a_real_mail_server(browser: TestClient) -> None:
    # The session stack sets TWOFA_SMTP_URL (its own aiosmtpd), as production does.
    assert browser.get("/dev/mail").status_code == 404


def test_another_workspaces_teammate_is_not_found(
        browser: TestClient, make_workspace: object) -> None:
    mine: WorkspaceHandle = make_workspace()  # type: ignore[operator]
    theirs: WorkspaceHandle = make_workspace(teammates=1)  # type: ignore[operator]
    sign_in(browser, mine)
    page = browser.get(f"/admin/teammates/{theirs.admin_id}/disable-2fa")
    assert page.status_code == 404 and "There is no such page." in page.text
    r = browser.post(f"/admin/teammates/{theirs.admin_id + 1}/resend",
                     data={"csrf_token": token_of(browser, "/")})
    assert r.status_code == 400 and "No such teammate in this workspace." in r.text


def test_recovery_codes_regenerate_with_a_code(
        browser: TestClient, workspace: WorkspaceHandle) -> None:
    sign_in(browser, workspace)
    totp, _ = enroll(browser)
    page = browser.get("/settings/two-factor").text
    assert "You have 10 unused recovery codes." in page
    wrong = browser.post("/settings/two-factor/recovery-codes",
                         data={"csrf_token": token_of(browser, "/"), "code": "000000"})
    assert wrong.status_code == 400 and "That code is not valid." in wrong.text
    fresh = browser.post("/settings/two-factor/recovery-codes", data={
        "csrf_token": token_of(browser, "/"), "code": totp.at(time.time() + 30)})
    codes = re.findall(r"<li><code>([^<]+)</code></li>", fresh.text)
    assert len(codes) == 10 and "this page shows them only once" in fresh.text
