"""Passwords and sessions in a real browser (Debian's Chromium), against a real `twofa up
--demo` on this run's backend: a forgotten password reset from the caught email (the code
is still asked for), a password change that signs another browser out, and the sessions page
ending another browser's session. axe-core checks every new screen on a desktop and a phone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import DESKTOP, UpStack, check, code_for, twofa_up
from tests.test_console_browser import (
    chromium,  # noqa: F401 - the module's browser fixture, shared here
    enroll,
    nav,
    open_caught_mail,
    secrets,
    sign_in,
)

pytestmark = [pytest.mark.slow, pytest.mark.uses_backend, pytest.mark.timeout(300)]
WITH_2FA = "member-00001@demo.test"
CHANGER = "member-00002@demo.test"
ENDER = "member-00003@demo.test"
NEW_PASSWORD = "a-brand-new-password"


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    with twofa_up(tmp_path_factory.mktemp("up")) as stack:
        yield stack


def browser_page(chromium: Browser, up: UpStack) -> Page:  # noqa: F811
    """A fresh browser of its own (no cookies shared with the others)."""
    return chromium.new_context(base_url=up.url, viewport=DESKTOP).new_page()


@pytest.fixture
def pages(chromium: Browser, up: UpStack) -> Iterator[list[Page]]:  # noqa: F811
    made = [browser_page(chromium, up) for _ in range(3)]
    yield made
    for page in made:
        page.context.close()


def signed_out(page: Page) -> None:
    """The page's browser no longer has a session: opening a page asks to sign in."""
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next="))


def test_a_forgotten_password_is_reset_from_the_email_and_the_code_is_still_asked(
        pages: list[Page], up: UpStack) -> None:
    page, other = pages[0], pages[1]
    sign_in(page, WITH_2FA)
    page.goto("/settings/two-factor")
    recovery_codes = enroll(page, WITH_2FA)
    sign_in(other, WITH_2FA)  # a second browser, to be signed out by the reset
    other.get_by_label("Code").fill(code_for(secrets[WITH_2FA], steps_ahead=1))
    other.get_by_role("button", name="Verify").click()
    expect(other.get_by_text("You are signed in to Demo Team")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()

    page.goto("/login?workspace=demo")
    page.get_by_role("link", name="Forgot password?").click()
    expect(page.get_by_label("Workspace")).to_have_value("demo")
    page.get_by_label("Email").fill("nobody@demo.test")
    check(page, "forgot-password")
    page.get_by_role("button", name="Send reset link").click()
    unknown = page.get_by_role("status").inner_text()
    page.goto("/forgot-password?workspace=demo")
    page.get_by_label("Email").fill(WITH_2FA)
    page.get_by_role("button", name="Send reset link").click()
    known = page.get_by_role("status").inner_text()
    assert known == unknown.replace("nobody@demo.test", WITH_2FA)  # says nothing more
    check(page, "forgot-password-sent")

    open_caught_mail(page, WITH_2FA, "Reset your password for Demo Team")
    page.get_by_role("link", name=re.compile(r"reset-password\?token=")).click()
    link = page.url
    page.get_by_label("New password").fill(NEW_PASSWORD)
    check(page, "reset-password")
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_label("Code")).to_be_visible()  # a reset never skips the second factor
    page.get_by_label("Code").fill(recovery_codes[0])  # the app's codes of now are used up
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_text("You are signed in to Demo Team")).to_be_visible()
    signed_out(other)

    page.goto(link)  # the link served once: said before any form
    expect(page.get_by_role("alert")).to_contain_text("used already")
    expect(page.get_by_role("button", name="Set password")).to_have_count(0)
    check(page, "reset-password-used")


def test_changing_the_password_signs_another_browser_out(pages: list[Page]) -> None:
    page, other = pages[0], pages[1]
    sign_in(page, CHANGER)
    sign_in(other, CHANGER)
    expect(other.get_by_text("You are signed in to Demo Team")).to_be_visible()
    nav(page, "Password")
    page.get_by_label("Current password").fill("not-the-password")
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("alert")).to_contain_text("current password is wrong")
    page.get_by_label("Current password").fill("correct-horse-battery")
    page.get_by_label("New password").fill(NEW_PASSWORD)
    check(page, "change-password")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status")).to_contain_text("Your password is changed")
    signed_out(other)
    sign_in(other, CHANGER, NEW_PASSWORD)
    expect(other.get_by_text("You are signed in to Demo Team")).to_be_visible()


def test_the_sessions_page_signs_out_another_browser(pages: list[Page]) -> None:
    page, laptop, phone = pages
    for each in pages:
        sign_in(each, ENDER)
        expect(each.get_by_text("You are signed in to Demo Team")).to_be_visible()
    nav(page, "Sessions")
    rows = page.get_by_role("row")
    expect(rows).to_have_count(4)  # the header and three sessions
    expect(page.get_by_role("row", name=re.compile("This session"))).to_have_count(1)
    expect(page.get_by_role("cell", name="127.0.0.1", exact=True)).to_have_count(3)
    expect(page.get_by_role("cell", name="Chrome on Linux", exact=True)).to_have_count(3)
    check(page, "sessions")
    ends = page.get_by_role("button", name=re.compile(r"^End session Chrome on Linux, "))
    expect(ends).to_have_count(2)
    ends.first.click()
    expect(page.get_by_role("status")).to_contain_text("That session has ended")
    gone = [p for p in (laptop, phone) if p.goto("/") and "/login" in p.url]
    assert len(gone) == 1, [p.url for p in (laptop, phone)]
    page.get_by_role("button", name="End all other sessions").click()
    expect(page.get_by_role("status")).to_contain_text("All your other sessions have ended")
    signed_out(laptop)
    signed_out(phone)
    expect(page.get_by_role("button", name="End all other sessions")).to_have_count(0)
    page.goto("/")
    expect(page.get_by_text("You are signed in to Demo Team")).to_be_visible()
