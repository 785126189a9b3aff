"""Security keys and passkeys in a real browser: Debian's Chromium with its virtual
authenticator (DevTools protocol `WebAuthn.*`, through Playwright's CDP session), against a
real `twofa up --demo` whose public URL is `http://localhost:PORT` (browsers refuse an IP
address as relying party).

The journeys share one stack and run in file order.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.browser import (
    CHROMIUM,
    DEMO_PASSWORD,
    DESKTOP,
    UpStack,
    check,
    code_for,
    secret_on,
    twofa_up,
)
from tests.stack import free_port, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.uses_backend, pytest.mark.timeout(300)]
MEMBER = "member-00001@demo.test"
OTHER = "member-00002@demo.test"
ADMIN = "admin@demo.test"
THIRD = "member-00003@demo.test"


HOST_PORT = free_port()  # the example host application's page, an allowed WebAuthn origin


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    with twofa_up(tmp_path_factory.mktemp("up"), host="localhost",
                  TWOFA_WEBAUTHN_ORIGINS=f"http://localhost:{HOST_PORT}") as stack:
        yield stack


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def device(chromium: Browser, up: UpStack) -> Iterator[tuple[Page, Any]]:
    """One person's browser with a platform authenticator that keeps passkeys and verifies
    its user (as a laptop's fingerprint reader does), kept for the whole module."""
    context: BrowserContext = chromium.new_context(base_url=up.url, viewport=DESKTOP)
    # A browser without passkey autofill (conditional mediation): the virtual authenticator
    # would answer an autofill request at once, so the button's path is tested here and the
    # autofill's in a test of its own.
    context.add_init_script("if (window.PublicKeyCredential) "
                            "PublicKeyCredential.isConditionalMediationAvailable = undefined;")
    page = context.new_page()
    yield page, virtual_authenticator(context, page)
    context.close()


def virtual_authenticator(context: BrowserContext, page: Page) -> tuple[Any, str]:
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True,
        "automaticPresenceSimulation": True}})
    return cdp, added["authenticatorId"]


def credentials(authenticator: Any) -> list[dict[str, Any]]:
    cdp, authenticator_id = authenticator
    return list(cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})["credentials"])


def sign_in_with_password(page: Page, email: str) -> None:
    page.goto("/login")
    page.get_by_label("Workspace").fill("demo")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login\?signed_out=1$"))


def test_a_teammate_adds_a_passkey_and_signs_in_with_it_alone(
        device: tuple[Page, Any], up: UpStack) -> None:
    page, authenticator = device
    sign_in_with_password(page, MEMBER)
    expect(page.get_by_text("You are signed in to Demo Team")).to_be_visible()
    page.goto("/settings/two-factor")
    expect(page.get_by_role("heading", name="Security keys and passkeys")).to_be_visible()
    check(page, "security-keys-setup")
    page.get_by_label("Key name").fill("This laptop")
    page.get_by_role("button", name="Add a security key").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    assert len(page.locator("#codes code").all_inner_texts()) == 10
    [kept] = credentials(authenticator)
    assert kept["isResidentCredential"] is True and kept["rpId"] == "localhost"

    page.goto("/settings/two-factor")
    expect(page.get_by_text("Two-factor authentication is on")).to_be_visible()
    expect(page.get_by_text("not used yet")).to_be_visible()
    expect(page.get_by_role("button", name="Remove This laptop")).to_be_visible()
    check(page, "security-keys")

    sign_out(page)
    expect(page.get_by_role("button", name="Use a passkey")).to_be_visible()
    check(page, "sign-in-passkey")
    page.get_by_role("button", name="Use a passkey").click()  # no workspace, no email, no password
    expect(page.get_by_text("You are signed in to Demo Team")).to_be_visible()
    expect(page.locator(".who")).to_have_text(MEMBER)
    page.goto("/settings/two-factor")
    expect(page.get_by_text(re.compile(r"last used \d"))).to_be_visible()


def test_the_code_step_offers_the_key(device: tuple[Page, Any], up: UpStack) -> None:
    page, authenticator = device
    sign_out(page)
    sign_in_with_password(page, MEMBER)
    expect(page.get_by_label("Code")).to_be_visible()
    expect(page.get_by_role("button", name="Use a security key")).to_be_visible()
    check(page, "sign-in-security-key")
    page.get_by_role("button", name="Use a security key").click()
    expect(page.get_by_text("You are signed in to Demo Team")).to_be_visible()


def test_a_stale_session_shows_the_key_again_on_reauthenticate(
        device: tuple[Page, Any], up: UpStack) -> None:
    page, _ = device
    page.goto("/reauthenticate?next=/settings/two-factor")
    expect(page.get_by_label("Code")).to_be_visible()
    expect(page.get_by_role("button", name="Use a security key")).to_be_visible()
    check(page, "reauthenticate-key")
    page.get_by_role("button", name="Use a security key").click()
    # Only a verified answer leads on to `next`; a refused one stays here with the reason.
    expect(page).to_have_url(re.compile(r"/settings/two-factor$"))
    expect(page.get_by_role("alert")).to_have_count(0)


def test_passkey_autofill_signs_in_where_the_browser_offers_it(
        chromium: Browser, device: tuple[Page, Any], up: UpStack) -> None:
    """Conditional mediation: the sign-in page asks for a passkey as it loads, and the
    browser offers it in the Email field's autofill (the virtual authenticator picks it)."""
    _, authenticator = device
    [passkey] = credentials(authenticator)
    context = chromium.new_context(base_url=up.url, viewport=DESKTOP)
    try:
        page = context.new_page()
        cdp, other = virtual_authenticator(context, page)
        cdp.send("WebAuthn.addCredential", {"authenticatorId": other, "credential": passkey})
        page.goto("/login")
        expect(page.get_by_text("You are signed in to Demo Team")).to_be_visible()
        expect(page.locator(".who")).to_have_text(MEMBER)
    finally:
        context.close()


def test_removing_a_key_asks_first(device: tuple[Page, Any], up: UpStack) -> None:
    page, authenticator = device
    page.goto("/settings/two-factor")
    page.get_by_role("button", name="Remove This laptop").click()
    expect(page.get_by_role("heading", name="Remove This laptop?")).to_be_visible()
    check(page, "security-key-remove-confirm")
    page.get_by_role("button", name="Yes, remove").click()
    # Its last method: the key opened this session, so removing it signs this browser out.
    expect(page).to_have_url(re.compile(r"/login"))
    sign_in_with_password(page, MEMBER)
    expect(page.get_by_text("You are signed in to Demo Team")).to_be_visible()  # 2FA is off


def test_an_admin_requires_security_keys_and_an_app_only_teammate_adds_one(
        chromium: Browser, up: UpStack) -> None:
    contexts = [chromium.new_context(base_url=up.url, viewport=DESKTOP) for _ in range(2)]
    try:
        admin, teammate = (c.new_page() for c in contexts)
        for context, page in zip(contexts, (admin, teammate), strict=True):
            context.add_init_script("if (window.PublicKeyCredential) "
                                    "PublicKeyCredential.isConditionalMediationAvailable = undefined;")
            virtual_authenticator(context, page)
        # A teammate with an authenticator app only.
        sign_in_with_password(teammate, OTHER)
        teammate.goto("/settings/two-factor")
        secret = secret_on(teammate)
        teammate.get_by_label("Code", exact=True).fill(code_for(secret))
        teammate.get_by_role("button", name="Turn on 2FA").click()
        expect(teammate.get_by_role("heading", name="Your recovery codes")).to_be_visible()
        sign_out(teammate)

        # The admin adds a key, then requires security keys and passkeys only.
        sign_in_with_password(admin, ADMIN)
        admin.goto("/settings/two-factor")
        admin.get_by_label("Key name").fill("Admin's YubiKey")
        admin.get_by_role("button", name="Add a security key").click()
        expect(admin.get_by_role("heading", name="Your recovery codes")).to_be_visible()
        admin.goto("/admin/authentication")
        admin.get_by_label("Require all teammates to authenticate via 2FA").check()
        methods = admin.get_by_role("group", name="Allowed methods")
        methods.get_by_label("Security keys and passkeys only").check()
        admin.get_by_role("button", name="Save").click()
        expect(admin.locator("#confirm-summary")).to_contain_text(
            "without a security key or passkey will get an email now")
        check(admin, "authentication-security-keys-confirm", phone=False)
        admin.get_by_role("button", name="Confirm").click()
        expect(admin.get_by_role("status")).to_contain_text("2FA is now required")
        expect(methods.get_by_label("Security keys and passkeys only")).to_be_checked()
        expect(admin.locator("#methods-deadline")).to_be_visible()
        check(admin, "authentication-security-keys")

        # The teammate's app now opens only the page where they add a key.
        sign_in_with_password(teammate, OTHER)
        teammate.get_by_label("Code").fill(code_for(secret, steps_ahead=1))
        teammate.get_by_role("button", name="Verify").click()
        expect(teammate).to_have_url(re.compile(r"/settings/two-factor$"))
        expect(teammate.locator("#key-required")).to_contain_text("requires a security key")
        check(teammate, "security-key-required")
        teammate.goto("/")
        expect(teammate).to_have_url(re.compile(r"/settings/two-factor$"))  # held there
        teammate.get_by_label("Key name").fill("Phone")
        teammate.get_by_role("button", name="Add a security key").click()
        expect(teammate.get_by_role("status")).to_have_text("Security key added.")
        expect(teammate.locator("#key-required")).to_have_count(0)
        teammate.goto("/")
        expect(teammate.get_by_text("You are signed in to Demo Team")).to_be_visible()
    finally:
        for context in contexts:
            context.close()


@pytest.fixture
def host_app(up: UpStack) -> Iterator[str]:
    """docs/examples/host_app.py on its own origin, http://localhost:HOST_PORT, with an API key
    made as an operator does (`twofa apikey create`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWOFA_")}
    if up.database_url:
        env["TWOFA_DATABASE_URL"] = up.database_url
    made = subprocess.run([sys.executable, "-m", "workers.cli", "apikey", "create", "demo", "host app"],
                          cwd=up.folder, env=env, capture_output=True, text=True, timeout=60)
    key = re.search(r"twofa_sk_[A-Za-z0-9_-]+", made.stdout + made.stderr)
    assert key, made.stdout + made.stderr
    spec = importlib.util.spec_from_file_location(
        "host_app", Path(__file__).resolve().parents[1] / "docs/examples/host_app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    client = httpx.Client(base_url=up.url, timeout=30)
    app = module.create_app(client, key.group(0), {THIRD: "host-password"})
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=HOST_PORT, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 30, message="the example host app")
    yield f"http://localhost:{HOST_PORT}"
    server.should_exit = True
    thread.join(30)
    client.close()


def test_the_example_host_app_signs_a_teammate_in_with_a_key(
        chromium: Browser, up: UpStack, host_app: str) -> None:
    context = chromium.new_context(base_url=up.url, viewport=DESKTOP)
    try:
        context.add_init_script("if (window.PublicKeyCredential) "
                                "PublicKeyCredential.isConditionalMediationAvailable = undefined;")
        page = context.new_page()
        virtual_authenticator(context, page)
        # Security keys are required (the journey before): a first key in twofa's console.
        sign_in_with_password(page, THIRD)
        expect(page).to_have_url(re.compile(r"/settings/two-factor$"))
        page.get_by_label("Key name").fill("Laptop")
        page.get_by_role("button", name="Add a security key").click()
        expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()

        # The host application's own page runs the ceremony with the options twofa sent.
        page.goto(host_app + "/")
        page.locator("input[name=email]").fill(THIRD)
        page.locator("input[name=password]").fill("host-password")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("button", name="Use a security key").click()
        expect(page.get_by_text("Welcome, teammate")).to_contain_text(THIRD)
        assert page.url == host_app + "/private"
    finally:
        context.close()
