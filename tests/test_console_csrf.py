"""The console's forms against cross-site and same-site forgery, and its Host rules, over real
HTTP to `twofa api` in its own process (its TWOFA_PUBLIC_URL is its own loopback address).

The same-site attack runs for real at the end: a second HTTP server on another loopback port
(the same site for a browser: ports do not separate sites or cookies) overwrites the
console's cookies and auto-posts a form, in Debian's Chromium.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import sync_playwright

from tests.browser import CHROMIUM
from tests.conftest import ADMIN_PASSWORD, WorkspaceHandle, start_api
from tests.stack import Stack, free_port
from tests.twofactor import bearer

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
MEMBER_PASSWORD = "member-password"


class Site:
    """The console's address; `browser()` is a fresh cookie jar that sends `Origin` on its
    POSTs as every current browser does."""

    def __init__(self, http: httpx.Client, port: int) -> None:
        self.http, self.port = http, port
        self.url = f"http://127.0.0.1:{port}"

    def browser(self, origin: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, follow_redirects=False,
                            headers={"Origin": origin or self.url})


@pytest.fixture(scope="module")
def site(stack: Stack) -> Iterator[Site]:
    port = free_port()
    for http in start_api(stack, port, TWOFA_PUBLIC_URL=f"http://127.0.0.1:{port}"):
        yield Site(http, port)


def token_of(client: httpx.Client, path: str = "/login") -> str:
    r = client.get(path)
    found = CSRF.search(r.text)
    assert found, (path, r.status_code, r.text[:300])
    return found.group(1)


def sign_in(client: httpx.Client, ws: WorkspaceHandle, email: str | None = None,
            password: str = ADMIN_PASSWORD) -> None:
    r = client.post("/login", data={"csrf_token": token_of(client), "workspace": ws.slug,
                                    "email": email or ws.admin_email, "password": password})
    assert r.status_code == 303, r.text


def member(ws: WorkspaceHandle) -> str:
    return f"member-00001@{ws.slug}.test"


def member_id(ws: WorkspaceHandle) -> int:
    return ws.admin_id + 1  # seeded right after the admin


def role_of(ws: WorkspaceHandle, teammate_id: int) -> str:
    from services.db import unit_of_work
    from services.models import Teammate

    with unit_of_work() as session:
        teammate = session.get(Teammate, teammate_id)
        assert teammate is not None
        return teammate.role


def session_cookie(client: httpx.Client) -> str:
    return next(v for k, v in client.cookies.items() if k.endswith("twofa_session"))


def cookie_header(pairs: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in pairs.items())


# --- the token belongs to the session, and changes at sign-in and sign-out ---------------


def test_a_form_token_belongs_to_its_session_and_changes_at_sign_in_and_out(
        site: Site, make_workspace: Any) -> None:
    ws: WorkspaceHandle = make_workspace(teammates=1)
    a, b = site.browser(), site.browser()
    before = token_of(a)
    sign_in(a, ws)
    sign_in(b, ws)
    mine, theirs = token_of(a, "/"), token_of(b, "/")
    assert mine != before, "the token must change at sign-in"
    assert mine != theirs, "two sessions of one teammate must not share a token"
    # Another session's token does not pass, even of the same teammate.
    r = a.post(f"/admin/teammates/{member_id(ws)}/role", data={"csrf_token": theirs,
                                                              "role": "admin"})
    assert r.status_code == 403 and "Form refused" in r.text
    assert role_of(ws, member_id(ws)) == "member"
    assert a.post("/logout", data={"csrf_token": mine}).status_code == 303
    after = token_of(a)
    assert after not in (before, mine), "the token must change at sign-out"


def test_a_tossed_cookie_with_a_known_token_does_not_pass(
        site: Site, make_workspace: Any) -> None:
    """What a page on another port of the same host can do: overwrite the console's cookies
    (ports do not separate cookies) with values it knows, then post a matching token."""
    ws: WorkspaceHandle = make_workspace(teammates=1)
    victim = site.browser()
    sign_in(victim, ws)
    attacker = site.browser()
    known = token_of(attacker)  # a pair the site itself handed out, before any session
    tossed = {k: v for k, v in attacker.cookies.items() if not k.endswith("twofa_session")}
    forged = {"twofa_csrf": known, **tossed, "twofa_session": session_cookie(victim)}
    with httpx.Client(base_url=site.url, timeout=60) as raw:
        r = raw.post(f"/admin/teammates/{member_id(ws)}/role",
                     data={"csrf_token": known, "role": "admin"},
                     headers={"Cookie": cookie_header(forged), "Origin": site.url})
    assert r.status_code == 403, r.text
    assert role_of(ws, member_id(ws)) == "member"


def test_console_posts_need_a_matching_origin(site: Site, make_workspace: Any) -> None:
    ws: WorkspaceHandle = make_workspace(teammates=1)
    admin = site.browser()
    sign_in(admin, ws)
    url = f"/admin/teammates/{member_id(ws)}/role"
    other_port = f"http://127.0.0.1:{free_port()}"
    for refused in ({"Origin": other_port}, {"Origin": "null"}, {"Origin": ""},
                    {"Origin": "", "Sec-Fetch-Site": "same-site"},
                    {"Origin": "https://twofa.example.test"}):
        r = admin.post(url, data={"csrf_token": token_of(admin, "/"), "role": "admin"},
                       headers=refused)
        assert r.status_code == 403 and "Form refused" in r.text, refused
    assert role_of(ws, member_id(ws)) == "member"
    # A browser that sends no Origin but says the request is its own site's is believed.
    r = admin.post(url, data={"csrf_token": token_of(admin, "/"), "role": "admin"},
                   headers={"Origin": "", "Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 303, r.text
    assert role_of(ws, member_id(ws)) == "admin"


def test_login_csrf_cannot_sign_a_browser_in_as_someone_else(
        site: Site, make_workspace: Any) -> None:
    attackers: WorkspaceHandle = make_workspace(teammates=1)
    pair = site.browser()
    known = token_of(pair)
    cookies = {"twofa_csrf": known, **dict(pair.cookies.items())}
    victim = site.browser(origin=f"http://127.0.0.1:{free_port()}")
    victim.headers["Cookie"] = cookie_header(cookies)
    r = victim.post("/login", data={"csrf_token": known, "workspace": attackers.slug,
                                    "email": member(attackers), "password": MEMBER_PASSWORD})
    assert r.status_code == 403, r.text
    assert not any("twofa_session" in c for c in r.headers.get_list("set-cookie"))


def test_confirming_2fa_in_the_console_renews_the_session_cookie(
        site: Site, make_workspace: Any) -> None:
    ws: WorkspaceHandle = make_workspace()
    admin = site.browser()
    sign_in(admin, ws)
    old = session_cookie(admin)
    page = admin.get("/settings/two-factor").text
    secret = re.search(r'data-secret="([A-Z2-7]+)"', page)
    assert secret, page
    r = admin.post("/settings/two-factor/confirm", data={
        "csrf_token": token_of(admin, "/settings/two-factor"),
        "code": pyotp.TOTP(secret.group(1)).now()})
    assert "Your recovery codes" in r.text, r.text
    new = session_cookie(admin)
    assert new != old, "a session whose level rose must get a new token"
    assert site.http.get("/v1/me", headers=bearer(old)).status_code == 401
    assert site.http.get("/v1/me", headers=bearer(new)).status_code == 200
    # The page that came with the new cookie carries the new session's token.
    assert CSRF.search(r.text).group(1) == token_of(admin, "/")  # type: ignore[union-attr]
    assert admin.get("/").status_code == 200


def test_cookies_carry_the_host_prefix_when_the_public_url_is_https(
        stack: Stack, workspace: WorkspaceHandle) -> None:
    from services.asgi import create_app

    # The session stack's TWOFA_PUBLIC_URL is https://twofa.example.test.
    with TestClient(create_app(), base_url="https://testserver", follow_redirects=False,
                    headers={"Origin": "https://testserver"}) as browser:
        login = browser.get("/login")
        set_cookies = login.headers.get_list("set-cookie")
        r = browser.post("/login", data={
            "csrf_token": CSRF.search(login.text).group(1),  # type: ignore[union-attr]
            "workspace": workspace.slug, "email": workspace.admin_email,
            "password": ADMIN_PASSWORD})
        assert r.status_code == 303, r.text
        set_cookies += r.headers.get_list("set-cookie")
        assert any(c.startswith("__Host-twofa_session=") for c in set_cookies), set_cookies
        for cookie in set_cookies:
            assert cookie.startswith("__Host-"), cookie
            if "max-age=0" in cookie.lower() or 'expires=thu, 01 jan 1970' in cookie.lower():
                continue  # a deletion
            assert "Secure" in cookie and "Path=/" in cookie and "Domain" not in cookie, cookie
        assert browser.get("/").status_code == 200


# --- Host ------------------------------------------------------------------------------


def test_console_pages_answer_only_to_known_hosts(site: Site) -> None:
    for host, status in ((f"127.0.0.1:{site.port}", 200), ("testserver", 200),
                         ("evil.example", 400), (f"rebind.example:{site.port}", 400),
                         (f"twofa.example.test:{site.port}", 400)):
        r = site.http.get("/login", headers={"Host": host})
        assert r.status_code == status, (host, r.status_code)
    # The JSON API is for programs, with tokens: no Host rule there.
    assert site.http.get("/healthz", headers={"Host": "evil.example"}).status_code == 200
    # Another loopback name is sent to the public URL (WebAuthn and cookies need one origin).
    r = site.http.get("/login?workspace=x", headers={"Host": f"localhost:{site.port}"})
    assert r.status_code in (303, 307) and r.headers["location"] == f"{site.url}/login?workspace=x"


def test_caught_mail_refuses_a_rebound_host(stack: Stack, tmp_path: Path) -> None:
    catcher = free_port()
    port = free_port()
    env = {"TWOFA_PUBLIC_URL": f"http://127.0.0.1:{port}", "TWOFA_MAILCATCHER_PORT": str(catcher),
           "TWOFA_SMTP_URL": f"smtp://127.0.0.1:{catcher}", "TWOFA_HOME": str(tmp_path)}
    for http in start_api(stack, port, **env):
        assert http.get("/dev/mail").status_code == 200
        r = http.get("/dev/mail", headers={"Host": f"attacker.example:{port}"})
        assert r.status_code == 400


# --- the same-site attack, in a real browser ---------------------------------------------


class AttackerSite:
    """Another HTTP server on another loopback port: its page sets cookies for the host (the
    same host as the console, so the browser keeps them for both) and auto-posts a form."""

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}
        self.action = ""
        self.fields: dict[str, str] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                inputs = "".join(f'<input type="hidden" name="{k}" value="{v}">'
                                 for k, v in site.fields.items())
                body = (f'<!doctype html><form id="f" method="post" action="{site.action}">'
                        f'{inputs}</form><script>document.getElementById("f").submit()</script>')
                self.send_response(200)
                for name, value in site.cookies.items():
                    self.send_header("Set-Cookie", f"{name}={value}; Path=/; HttpOnly; SameSite=Lax")
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *_: Any) -> None:
                pass

        return Handler

    def arm(self, site: Site, action: str, fields: dict[str, str]) -> None:
        """Like a real attacker: fetch a token and its cookies from the console first."""
        with site.browser() as own:
            known = token_of(own)
            self.cookies = {"twofa_csrf": known, **dict(own.cookies.items())}
        self.action, self.fields = f"{site.url}{action}", {"csrf_token": known, **fields}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_page_on_another_port_cannot_forge_console_forms(
        site: Site, make_workspace: Any) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    ws: WorkspaceHandle = make_workspace(teammates=1)
    attackers: WorkspaceHandle = make_workspace(teammates=1)
    evil = AttackerSite()
    try:
        with sync_playwright() as p:
            chromium = p.chromium.launch(executable_path=CHROMIUM)
            try:
                # 1. A signed-in admin visits the page: it tries to make the member admin.
                context = chromium.new_context(base_url=site.url)
                page = context.new_page()
                page.goto("/login")
                page.get_by_label("Workspace").fill(ws.slug)
                page.get_by_label("Email").fill(ws.admin_email)
                page.get_by_label("Password").fill(ADMIN_PASSWORD)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(f"{site.url}/")
                evil.arm(site, f"/admin/teammates/{member_id(ws)}/role", {"role": "admin"})
                page.goto(evil.url)
                page.wait_for_url(f"{site.url}/**")
                page.wait_for_load_state("load")
                assert "Form refused" in page.content()
                assert role_of(ws, member_id(ws)) == "member"
                context.close()
                # 2. Login CSRF: a fresh browser is to be signed in as the attacker.
                context = chromium.new_context(base_url=site.url)
                page = context.new_page()
                evil.arm(site, "/login", {"workspace": attackers.slug,
                                          "email": member(attackers),
                                          "password": MEMBER_PASSWORD})
                page.goto(evil.url)
                page.wait_for_url(f"{site.url}/**")
                page.wait_for_load_state("load")
                sessions = [c["value"] for c in context.cookies(site.url)
                            if c["name"].endswith("twofa_session")]
                signed_in_as = [site.http.get("/v1/me", headers=bearer(v)).json()
                                for v in sessions]
                assert not sessions, f"the browser was signed in as {signed_in_as}"
                context.close()
            finally:
                chromium.close()
    finally:
        evil.stop()



# --- the exemption form checks its text as the API does ----------------------------------


def test_a_nul_in_the_exemption_reason_is_a_clear_page(
        stack: Stack, site: Site, make_workspace: Any) -> None:
    from datetime import UTC, datetime, timedelta

    ws: WorkspaceHandle = make_workspace(teammates=1)
    admin = site.browser()
    sign_in(admin, ws)
    page = f"/admin/teammates/{member_id(ws)}/exemption"
    until = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    r = admin.post(page, data={"csrf_token": token_of(admin, page), "until": until,
                               "reason": "on leave\x00'); DROP TABLE teammates; --"})
    assert r.status_code == 400 and r.headers["content-type"].startswith("text/html"), r.text
    assert "Reason holds a control character (U+0000, such as a tab" in r.text
    logs = "".join(log.read_text(errors="replace") for log in stack.home.glob("api-*.log"))
    assert "DROP TABLE" not in logs and "INSERT INTO" not in logs
