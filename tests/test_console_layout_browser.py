"""The console's layout and its last rough edges in a real browser (Debian's Chromium),
against a real `twofa up --demo` on this run's backend: the error page of a mistyped
address, the Teammates table at 1280 px with a long name and address, an action that keeps
the table's filters, and turning a teammate's 2FA off during a grace period (the page and
the caught email say the deadline; no second invitation). axe-core checks every screen on a
desktop and a phone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import DESKTOP, UpStack, check, twofa_up
from tests.test_console_browser import (
    chromium,  # noqa: F401 - the module's browser fixture, shared here
    enroll,
    nav,
    open_caught_mail,
    sign_in,
)

pytestmark = [pytest.mark.slow, pytest.mark.uses_backend, pytest.mark.timeout(300)]
ADMIN = "admin@demo.test"
MEMBER = "member-00001@demo.test"
LONG_EMAIL = f"{'a' * 30}.{'b' * 33}@demo.test"  # 64 characters before the @, the most allowed
LONG_NAME = "Maximiliana Alexandrina Wolfeschlegelsteinhausen-Bergerdorff"
INVITATION = "Demo Team now requires two-factor authentication"


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    with twofa_up(tmp_path_factory.mktemp("up")) as stack:
        yield stack


@pytest.fixture(scope="module")
def admin(chromium: Browser, up: UpStack) -> Iterator[Page]:  # noqa: F811
    page = chromium.new_context(base_url=up.url, viewport=DESKTOP).new_page()
    yield page
    page.context.close()


@pytest.fixture
def person(chromium: Browser, up: UpStack) -> Iterator[Page]:  # noqa: F811
    page = chromium.new_context(base_url=up.url, viewport=DESKTOP).new_page()
    yield page
    page.context.close()


def test_a_mistyped_address_shows_the_console_error_page(person: Page) -> None:
    response = person.goto("/settings/two-factr")
    assert response is not None and response.status == 404
    expect(person.get_by_role("heading", name="Page not found")).to_be_visible()
    check(person, "not-found")
    person.get_by_role("link", name="Go to the start page").click()
    expect(person).to_have_url(re.compile(r"/login\?next="))  # signed out: sign in first


def test_the_teammates_table_is_readable_at_1280_px_and_keeps_its_filters(admin: Page) -> None:
    sign_in(admin, ADMIN)
    nav(admin, "Teammates")
    admin.get_by_label("Email").fill(f"{'a' * 65}@demo.test")
    admin.get_by_role("button", name="Invite").click()
    expect(admin.get_by_role("alert")).to_have_text(
        "Email: the part before the @ has 65 characters, and email addresses allow at most 64.")
    admin.get_by_label("Email").fill(LONG_EMAIL)
    admin.get_by_label("Name").fill(LONG_NAME)
    admin.get_by_role("button", name="Invite").click()
    expect(admin.get_by_role("status")).to_have_text(f"Invitation sent to {LONG_EMAIL}.")
    expect(admin.locator("#teammates-count")).to_have_text("1–27 of 27 teammates")

    width = admin.evaluate("document.documentElement.scrollWidth")
    assert width <= DESKTOP["width"], f"the page scrolls sideways at 1280 px ({width}px)"
    row = admin.get_by_role("row", name=re.compile(re.escape(LONG_EMAIL)))
    email = row.locator(".email")
    assert email.get_attribute("title") == LONG_EMAIL  # the whole address, on hover
    short = admin.get_by_role("row", name=re.compile(MEMBER)).locator(".email")
    one_line = short.bounding_box()
    long_box = email.bounding_box()
    assert one_line and long_box and long_box["height"] == one_line["height"]  # no wrapping
    name = admin.get_by_role("row", name=re.compile(MEMBER)).get_by_role("rowheader")
    box = name.bounding_box()
    assert box and box["width"] > 80, box  # "Member 1" on one line, not "Member / 1"
    check(admin, "teammates-long-values")

    # An action comes back to the same filtered list.
    admin.get_by_label("Enrollment").select_option("Not required")
    admin.get_by_label("Search").fill("aaaa")
    admin.get_by_role("button", name="Filter").click()
    expect(admin.locator("#teammates-count")).to_have_text(
        "1–1 of 1 teammate matching these filters")
    admin.get_by_role("button", name=f"Remove {LONG_NAME}").click()
    admin.get_by_role("button", name="Yes, remove").click()
    expect(admin.get_by_role("status")).to_contain_text(f"{LONG_EMAIL} was removed")
    expect(admin.get_by_label("Enrollment")).to_have_value("not_required")
    expect(admin.get_by_label("Search")).to_have_value("aaaa")
    expect(admin.get_by_text("No teammates match these filters.")).to_be_visible()
    check(admin, "teammates-empty")


def test_disabling_2fa_in_a_grace_period_says_the_deadline_and_sends_no_new_invitation(
        admin: Page, person: Page) -> None:
    nav(admin, "Two-factor authentication")
    enroll(admin, ADMIN)
    nav(admin, "Authentication")
    admin.get_by_label("Require all teammates to authenticate via 2FA").check()
    admin.get_by_label("Grace period (hours)").fill("48")
    admin.get_by_role("button", name="Save").click()
    admin.get_by_role("button", name="Confirm").click()
    found = re.search(r"\w+day \d+ \w+, \d\d:\d\d UTC", admin.locator("#deadline").inner_text())
    assert found, admin.locator("#deadline").inner_text()
    deadline = found.group(0)
    open_caught_mail(person, MEMBER, INVITATION)

    sign_in(person, MEMBER)  # within the grace period: signed in as usual, then enrolls
    person.goto("/settings/two-factor")
    enroll(person, MEMBER)

    nav(admin, "Teammates")
    admin.get_by_role("row", name=re.compile(MEMBER)).get_by_role(
        "button", name="Disable 2FA").click()
    said = admin.locator("#after-disable")
    expect(said).to_contain_text("asks them to set it up again by")
    expect(said).to_contain_text("Until then they sign in as usual")
    check(admin, "disable-2fa-grace-confirm")
    admin.get_by_role("button", name="Yes, disable 2FA").click()
    expect(admin.get_by_role("status")).to_contain_text(
        f"Two-factor authentication is off for {MEMBER}. They were emailed to set it up again "
        f"by {deadline}; until then they sign in as usual")

    open_caught_mail(person, MEMBER, "Two-factor authentication was turned off for Demo Team")
    expect(person.get_by_text(f"set it up again by {deadline}")).to_be_visible()
    person.goto("/dev/mail")
    invitations = person.locator("li", has_text=f"to {MEMBER}").get_by_role("link", name=INVITATION)
    expect(invitations).to_have_count(1)  # the first one only
