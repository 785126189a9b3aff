"""The web console in a real browser, against a real `twofa up --demo` (API, worker, relay,
mail catcher as child processes), on this run's backend.

The journeys share one stack and run in file order, each starting where the last one left
the demo workspace: the admin turns 2FA on first, the teammates meet it afterwards.
"""

from __future__ import annotations

import csv
import io
import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.browser import (
    CHROMIUM,
    DEMO_PASSWORD,
    DESKTOP,
    UpStack,
    check,
    code_for,
    qr_text,
    secret_on,
    twofa_up,
)
from tests.stack import wait_until
from tests.webhook_receiver import Receiver

# ~1 minute on one `twofa up`; it builds that stack itself, on this run's backend.
pytestmark = [pytest.mark.slow, pytest.mark.uses_backend, pytest.mark.timeout(300)]
ADMIN = "admin@demo.test"
MEMBER = "member-00001@demo.test"
OTHER = "member-00002@demo.test"
NEWCOMER = "newcomer@demo.test"
secrets: dict[str, str] = {}


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    with twofa_up(tmp_path_factory.mktemp("up")) as stack:
        yield stack


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def admin(chromium: Browser, up: UpStack) -> Iterator[Page]:
    """The admin's browser, kept for the whole module (their session lives on)."""
    context = chromium.new_context(base_url=up.url, viewport=DESKTOP, accept_downloads=True)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=up.url)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def person(chromium: Browser, up: UpStack) -> Iterator[Page]:
    """A fresh browser (no cookies) for a teammate."""
    context: BrowserContext = chromium.new_context(base_url=up.url, viewport=DESKTOP,
                                                   accept_downloads=True)
    page = context.new_page()
    yield page
    context.close()


def open_caught_mail(page: Page, to: str, subject: str) -> None:
    """Open the newest caught email to `to`, reloading /dev/mail until the worker sent it."""
    link = page.locator("li", has_text=f"to {to}").get_by_role("link", name=subject).first

    def arrived() -> bool:
        page.goto("/dev/mail")
        return link.count() > 0

    wait_until(arrived, 60, 0.5, message=f"an email to {to}")
    link.click()
    page.wait_for_url(re.compile(r"/dev/mail/.+"))


def nav(page: Page, link: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=link, exact=True).click()


def sign_in(page: Page, email: str, password: str = DEMO_PASSWORD, workspace: str | None = "demo",
            name: str | None = None) -> None:
    if workspace is not None:
        page.goto("/login")
        page.get_by_label("Workspace").fill(workspace)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    if name:
        check(page, name)
    page.get_by_role("button", name="Sign in").click()


def enroll(page: Page, email: str, name: str | None = None) -> list[str]:
    """On /settings/two-factor: read the secret, confirm with a computed code, keep the codes."""
    expect(page).to_have_url(re.compile(r"/settings/two-factor$"))
    expect(page.get_by_role("img", name="QR code")).to_be_visible()
    expect(page.get_by_role("main").get_by_text(email, exact=True)).to_be_visible()  # account
    secret = secrets[email] = secret_on(page)
    assert re.fullmatch(r"[A-Z2-7]{32}", secret), secret
    uri = qr_text(page)  # the QR code and the text say the same
    assert uri.startswith("otpauth://totp/Demo%20Team:") and f"secret={secret}" in uri, uri
    # A phone cannot scan its own screen: the same key URI, as a link its app opens.
    add = page.get_by_role("link", name="Add to authenticator app")
    assert add.get_attribute("href") == uri
    if name:
        check(page, name)
    page.get_by_label("Code", exact=True).fill(code_for(secret))
    page.get_by_role("button", name="Turn on 2FA").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    codes = page.locator("#codes code").all_inner_texts()
    assert len(codes) == 10
    return codes


def test_admin_enrolls_requires_2fa_and_watches_the_rollout(admin: Page, up: UpStack) -> None:
    sign_in(admin, ADMIN, name="sign-in")
    expect(admin).to_have_url(re.compile(r"/$"))
    check(admin, "home")
    nav(admin, "Authentication")
    admin.get_by_label("Require all teammates to authenticate via 2FA").check()
    admin.get_by_role("button", name="Save").click()  # not before the admin has 2FA
    expect(admin.get_by_role("alert")).to_have_text(
        "Turn on two-factor authentication for your own account before you require it for everyone.")
    expect(admin.get_by_label("Require all teammates to authenticate via 2FA")).not_to_be_checked()
    nav(admin, "Two-factor authentication")
    admin.get_by_role("button", name="Copy secret").click()
    expect(admin.get_by_text("Copied to the clipboard.")).to_be_visible()
    assert admin.evaluate("navigator.clipboard.readText()") == secret_on(admin)
    codes = enroll(admin, ADMIN, name="two-factor-setup")
    admin.get_by_role("button", name="Copy").click()
    expect(admin.get_by_text("Copied to the clipboard.")).to_be_visible()
    assert admin.evaluate("navigator.clipboard.readText()").split() == codes
    check(admin, "recovery-codes")

    nav(admin, "Authentication")
    admin.get_by_label("Require all teammates to authenticate via 2FA").check()
    expect(admin.get_by_label("Grace period (hours)")).to_have_value("0")  # enforced at once
    admin.get_by_role("button", name="Save").click()
    # Nothing is sent before the admin sees who gets an email, and confirms.
    expect(admin.locator("#confirm-summary")).to_contain_text(
        "25 teammates without 2FA will get an email now")
    assert not list(up.mail_dir.glob("*.eml")) or all(
        "requires two-factor" not in p.read_text() for p in up.mail_dir.glob("*.eml"))
    expect(admin.get_by_text("turn the requirement off and on again")).to_be_visible()
    check(admin, "authentication-confirm")
    admin.get_by_role("button", name="Confirm").click()
    expect(admin.get_by_role("status")).to_have_text(
        "2FA is now required. Invitations are going out to everyone without it.")
    admin.evaluate("window.sameDocument = true")  # gone if the page reloads
    counts = admin.locator("[data-count]")
    expect(admin.locator('[data-count="invited"]')).to_have_text("25", timeout=60_000)
    expect(admin.locator('[data-count="pending"]')).to_have_text("0")
    expect(admin.locator('[data-count="enrolled"]')).to_have_text("1")
    expect(admin.locator("#rollout-status")).to_have_text(
        "Every teammate has 2FA, is exempt or has been emailed.")
    assert admin.evaluate("window.sameDocument") is True, "the page reloaded"
    assert counts.count() >= 5
    check(admin, "authentication")


def test_teammate_enrolls_from_the_caught_invitation(person: Page, up: UpStack) -> None:
    page = person
    page.goto("/dev/mail")
    check(page, "caught-mail")
    open_caught_mail(page, MEMBER, "Demo Team now requires two-factor authentication")
    check(page, "caught-mail-message")
    page.get_by_role("link", name=re.compile(r"enroll\?workspace=demo$")).click()

    expect(page.get_by_label("Workspace")).to_have_value("demo")
    sign_in(page, MEMBER, workspace=None, name="enroll-sign-in")
    codes = enroll(page, MEMBER)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download").click()
    saved = Path(download.value.path()).read_text()
    assert download.value.suggested_filename.endswith(".txt")
    assert all(code in saved for code in codes)
    page.get_by_role("link", name="Continue to Demo Team").click()
    expect(page.get_by_text("You are signed in to Demo Team")).to_be_visible()
    expect(page.get_by_role("link", name="Teammates")).to_have_count(0)  # no admin navigation

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, MEMBER)
    page.get_by_label("Code").fill("000000")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_have_text("That code is not valid.")
    check(page, "sign-in-code-error")
    page.get_by_label("Code").fill(code_for(secrets[MEMBER], steps_ahead=1))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_text("You are signed in to Demo Team")).to_be_visible()

    settings = page.goto("/settings/two-factor")
    assert settings is not None and settings.status == 200
    expect(page.get_by_role("button", name="Turn off 2FA")).to_be_disabled()
    expect(page.get_by_text("You cannot turn it off: Demo Team requires")).to_be_visible()
    check(page, "two-factor-on")
    for path in ("/admin/teammates", "/admin/authentication"):
        response = page.goto(path)
        assert response is not None and response.status == 403
        expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    check(page, "forbidden", phone=False)


def test_a_session_that_must_enroll_sees_only_enrollment(person: Page, up: UpStack) -> None:
    # Signed in with the keyboard alone; the focused button shows a focus ring.
    person.goto("/login")
    expect(person.get_by_label("Workspace")).to_be_focused()
    for text in ("demo", OTHER, DEMO_PASSWORD):
        person.keyboard.type(text)
        person.keyboard.press("Tab")
    button = person.get_by_role("button", name="Sign in")
    expect(button).to_be_focused()
    outline = button.evaluate(
        "b => getComputedStyle(b).outlineStyle + ' ' + getComputedStyle(b).outlineWidth")
    assert outline.startswith("solid") and not outline.endswith(" 0px"), outline
    person.keyboard.press("Enter")
    expect(person).to_have_url(re.compile(r"/settings/two-factor$"))
    for path in ("/", "/admin/teammates"):  # the enrollment redirect comes before any 403
        person.goto(path)
        expect(person).to_have_url(re.compile(r"/settings/two-factor$"))
    expect(person.get_by_text("requires two-factor authentication. Set it up")).to_be_visible()
    person.get_by_label("Code", exact=True).fill("123")
    person.get_by_role("button", name="Turn on 2FA").click()
    expect(person.get_by_role("alert")).to_be_visible()


def test_admin_invites_a_newcomer_who_joins_straight_into_setup(
        admin: Page, person: Page, up: UpStack) -> None:
    admin.goto("/admin/teammates")
    admin.get_by_label("Email").fill(NEWCOMER)
    admin.get_by_label("Name").fill("New Comer")
    admin.get_by_role("button", name="Invite").click()
    expect(admin.get_by_role("status")).to_have_text(f"Invitation sent to {NEWCOMER}.")

    open_caught_mail(person, NEWCOMER, "You have been invited to Demo Team")
    person.get_by_role("link", name=re.compile(r"join\?token=")).click()
    join_url = person.url
    expect(person.get_by_role("heading", name="Join Demo Team")).to_be_visible()
    expect(person.get_by_label("Name")).to_have_value("New Comer")  # as the admin typed it
    assert person.get_by_label("Password").get_attribute("minlength") == "8"
    person.get_by_label("Name").fill("Nova Comer")
    person.get_by_label("Password").fill("a-new-password-42")
    check(person, "join")
    person.get_by_role("button", name="Join").click()
    enroll(person, NEWCOMER)

    person.goto(join_url)  # the link served once: said before any form
    expect(person.get_by_role("alert")).to_contain_text("This invitation link was used already")
    expect(person.get_by_role("button", name="Join")).to_have_count(0)
    expect(person.get_by_label("Password")).to_have_count(0)
    check(person, "join-used")
    person.get_by_role("link", name="Sign in to Demo Team").click()
    expect(person.get_by_label("Workspace")).to_have_value("demo")


def test_admin_creates_an_api_key_and_a_webhook(admin: Page, up: UpStack,
                                                receiver: Receiver) -> None:
    admin.goto("/admin/api-keys")
    admin.get_by_label("Name").fill("Intranet login")
    admin.get_by_role("button", name="Create key").click()
    key = admin.get_by_role("status").locator("pre").inner_text()
    assert key.startswith("twofa_sk_")
    check(admin, "api-keys")
    admin.get_by_role("button", name="Revoke Intranet login").click()
    expect(admin.get_by_role("row", name=re.compile("Intranet login"))).to_contain_text("revoked")
    assert key not in admin.content()  # shown once

    admin.goto("/admin/webhooks")
    admin.get_by_label("Endpoint URL").fill("http://127.0.0.1:9/nowhere")
    admin.get_by_label("All events").uncheck()
    admin.get_by_role("button", name="Add webhook").click()
    expect(admin.get_by_role("alert")).to_contain_text("event type")  # none chosen
    admin.get_by_label("Endpoint URL").fill(receiver.url("/hook"))
    admin.get_by_role("button", name="Add webhook").click()
    secret = admin.get_by_role("status").locator("pre").inner_text()
    assert secret.startswith("whsec_")
    receiver.secrets["/hook"] = secret
    check(admin, "webhooks")


def test_admin_disables_a_teammates_2fa_and_they_enroll_again(
        admin: Page, person: Page, up: UpStack) -> None:
    admin.goto("/admin/teammates")
    row = admin.get_by_role("row", name=re.compile(MEMBER))
    expect(row.get_by_role("img", name="2FA enabled")).to_be_visible()
    expect(admin.get_by_role("row", name=re.compile(OTHER)).get_by_role(
        "button", name="Resend invitation")).to_be_visible()
    check(admin, "teammates")
    row.get_by_role("button", name="Disable 2FA").click()
    check(admin, "disable-2fa-confirm")
    admin.get_by_role("button", name="Yes, disable 2FA").click()
    expect(admin.get_by_role("status")).to_contain_text(f"off for {MEMBER}")
    expect(admin.get_by_role("row", name=re.compile(MEMBER)).get_by_role(
        "img", name="2FA enabled")).to_have_count(0)

    sign_in(person, MEMBER)
    expect(person).to_have_url(re.compile(r"/settings/two-factor$"))
    expect(person.get_by_role("img", name="QR code")).to_be_visible()


def test_deliveries_redeliver_and_the_audit_log(admin: Page, up: UpStack,
                                               receiver: Receiver) -> None:
    admin.goto("/admin/webhooks")
    admin.get_by_role("link", name=receiver.url("/hook")).click()
    row = admin.get_by_role("row", name=re.compile("twofa.disabled"))

    def delivered() -> bool:
        admin.reload()
        return row.count() == 1 and "succeeded" in row.inner_text()

    wait_until(delivered, 60, 0.5, message="the twofa.disabled delivery")
    check(admin, "webhook-deliveries")
    [first] = [r for r in receiver.at("/hook") if r.verified and r.verified["type"] == "twofa.disabled"]
    row.get_by_role("button", name="Redeliver").click()
    expect(admin.get_by_role("status")).to_have_text("Queued to be sent again.")
    wait_until(lambda: receiver.ids("/hook").count(first.webhook_id) == 2, 60,
               message="the same event delivered again")

    admin.goto("/admin/audit-log")
    admin.get_by_label("Type", exact=True).select_option("twofa.disabled")
    admin.get_by_role("button", name="Filter").click()
    rows = admin.get_by_role("row", name=re.compile("twofa.disabled"))
    expect(rows).to_have_count(1)
    # Who did what to whom, in words: names and addresses, not ids.
    expect(rows).to_contain_text(
        re.compile(rf"{re.escape(ADMIN)}\).*turned off 2FA for .*{re.escape(MEMBER)}"))
    assert "actor_id" not in rows.inner_text() and "teammates/" not in rows.inner_text()
    check(admin, "audit-log")

    today = datetime.now(UTC).date().isoformat()
    admin.get_by_label("Type", exact=True).select_option("")
    admin.get_by_label("Teammate").fill(MEMBER)
    admin.get_by_label("From").fill(today)
    admin.get_by_label("To").fill(today)
    admin.get_by_role("button", name="Filter").click()
    about = admin.get_by_role("region", name="Audit log table").get_by_role("row")
    expect(about.first).to_be_visible()
    shown = about.all()[1:]  # the header row first
    assert shown and all(MEMBER in r.inner_text() for r in shown)
    with admin.expect_download() as download:
        admin.get_by_role("link", name="Export").click()
    exported = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert len(exported) == len(shown)  # the same filters
    assert {r["type"] for r in exported} >= {"twofa.disabled"}
    assert all(MEMBER in r["teammate"] or MEMBER in r["by"] for r in exported)
    admin.get_by_label("From").fill("2001-01-01")
    admin.get_by_label("To").fill("2001-01-02")
    admin.get_by_role("button", name="Filter").click()
    expect(admin.get_by_text("No events match these filters.")).to_be_visible()


def test_admin_tests_rotates_and_deletes_a_webhook(admin: Page, up: UpStack,
                                                   receiver: Receiver) -> None:
    url = receiver.url("/hook")
    admin.goto("/admin/webhooks")
    admin.get_by_role("button", name=f"Send test {url}").click()
    expect(admin.get_by_role("status")).to_contain_text("test event is on its way")
    row = admin.get_by_role("row", name=re.compile("twofa.test"))

    def tested() -> bool:
        admin.reload()
        return row.count() == 1 and "succeeded" in row.inner_text()

    wait_until(tested, 60, 0.5, message="the test delivery")
    row.get_by_text("Payload").click()
    expect(row.locator("pre")).to_contain_text('"type": "twofa.test"')
    assert any(r.verified and r.verified["type"] == "twofa.test" for r in receiver.at("/hook"))

    admin.goto("/admin/webhooks")
    old = receiver.secrets["/hook"]
    admin.get_by_role("button", name=f"Rotate secret {url}").click()
    new = admin.locator("#new-secret").inner_text()
    assert new.startswith("whsec_") and new != old
    expect(admin.get_by_role("status")).to_contain_text("signed with both the old and the new")
    check(admin, "webhook-rotated", phone=False)
    receiver.secrets["/hook"] = new  # the receiver now checks the new secret only
    before = len(receiver.at("/hook"))
    admin.get_by_role("button", name=f"Send test {url}").click()
    wait_until(lambda: any(r.verified and r.verified["type"] == "twofa.test"
                           for r in receiver.at("/hook")[before:]), 60,
               message="a test delivery signed with the new secret")

    admin.goto("/admin/webhooks")  # an endpoint that refuses connections, in words
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}/gone"
    admin.get_by_label("Endpoint URL").fill(dead)
    admin.get_by_role("button", name="Add webhook").click()
    expect(admin.get_by_role("link", name=dead)).to_have_count(1)  # the post has answered
    admin.goto("/admin/webhooks")
    admin.get_by_role("button", name=f"Send test {dead}").click()
    # Wait for the post's answer before reloading: a reload while it is in flight has no
    # page to reload ("Not attached to an active page").
    expect(admin.get_by_role("status")).to_contain_text("test event is on its way")
    failing = admin.get_by_role("row", name=re.compile("twofa.test"))

    def refused() -> bool:
        admin.reload()
        return failing.count() == 1 and "Connection refused" in failing.inner_text()

    wait_until(refused, 60, 0.5, message="the refused attempt in words")
    expect(failing).to_contain_text("next try")
    assert "Errno" not in failing.inner_text()
    check(admin, "webhook-deliveries-failing")

    admin.goto("/admin/webhooks")
    admin.get_by_role("button", name=f"Delete {dead}").click()
    check(admin, "webhook-delete-confirm")
    admin.get_by_role("button", name="Yes, delete").click()
    expect(admin.get_by_role("status")).to_contain_text("deleted")
    expect(admin.get_by_role("link", name=dead)).to_have_count(0)
    expect(admin.get_by_role("link", name=url)).to_have_count(1)


def test_admin_sets_a_grace_period_and_exempts_a_teammate(admin: Page, up: UpStack) -> None:
    nav(admin, "Authentication")
    admin.get_by_label("Grace period (hours)").fill("48")
    admin.get_by_role("button", name="Save").click()  # no confirm step: nobody is emailed
    expect(admin.get_by_role("status")).to_have_text("The grace period is saved; nobody was emailed.")
    expect(admin.locator("#deadline")).to_contain_text("Enforced from")
    expect(admin.locator("#reminders li")).to_have_count(2)  # 24 h and 1 h before
    check(admin, "authentication-grace")

    nav(admin, "Teammates")
    admin.get_by_label("Enrollment").select_option("invited")
    admin.get_by_role("button", name="Filter").click()
    row = admin.get_by_role("row", name=re.compile("member-00003@demo.test"))
    row.get_by_role("button", name=re.compile("^Exempt")).click()
    last_day = admin.get_by_label("Exempt through (UTC)").get_attribute("max")
    assert last_day
    admin.get_by_label("Exempt through (UTC)").fill(last_day)
    admin.get_by_label("Reason").fill("Travelling without a phone")
    check(admin, "exemption")
    admin.keyboard.press("Enter")  # submits from the keyboard, as a form should
    expect(admin.get_by_role("status")).to_contain_text("member-00003@demo.test is exempt")
    admin.get_by_label("Enrollment").select_option("exempt")
    admin.get_by_role("button", name="Filter").click()
    row = admin.get_by_role("row", name=re.compile("member-00003@demo.test"))
    expect(row).to_contain_text("Exempt until")
    expect(row).to_contain_text("Reason: Travelling without a phone")
    check(admin, "teammates-exempt")
    row.get_by_role("button", name=re.compile("^End exemption")).click()
    expect(admin.get_by_role("status")).to_contain_text("no longer exempt")


def test_a_cross_site_form_post_is_refused(admin: Page, up: UpStack) -> None:
    evil = "http://evil.test/"
    admin.route(evil, lambda route: route.fulfill(content_type="text/html", body=(
        f'<!doctype html><html lang="en"><title>x</title><form method="post" '
        f'action="{up.url}/admin/authentication"><button>Win a prize</button></form></html>')))
    admin.goto(evil)
    with admin.expect_navigation():
        admin.get_by_role("button", name="Win a prize").click()
    expect(admin.get_by_role("heading", name="Form refused")).to_be_visible()
    check(admin, "form-refused", phone=False)
    # Same site, cookie sent, but no token in the form: refused as well.
    refused = admin.request.post(f"{up.url}/admin/authentication", form={"x": "1"})
    assert refused.status == 403
    admin.goto("/admin/authentication")
    expect(admin.get_by_label("Require all teammates to authenticate via 2FA")).to_be_checked()


def test_caught_mail_exists_only_with_the_mail_catcher(up: UpStack) -> None:
    listed = httpx.get(f"{up.url}/dev/mail")
    assert listed.status_code == 200 and "Demo Team now requires" in listed.text
    escaped = httpx.get(f"{up.url}/dev/mail/..%2Ftwofa.db")
    assert escaped.status_code in (404, 422)
