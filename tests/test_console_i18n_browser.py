"""The console in the teammate's language and time zone, in a real browser against a real
`twofa up --demo`: the sign-in page follows the browser's language, sign-in keeps the browser's
time zone only while none is set, and Settings → Language and time changes both, every page
following.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.browser import CHROMIUM, DEMO_PASSWORD, DESKTOP, UpStack, check, twofa_up
from tests.twofactor import bearer

# Which language and zone pages are written in does not depend on the database or broker
# behind them: scripts/test.sh runs this module in its embedded run only.
pytestmark = [pytest.mark.slow, pytest.mark.uses_backend, pytest.mark.backend_independent,
              pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    with twofa_up(tmp_path_factory.mktemp("up")) as stack:
        yield stack


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


def browser_in(chromium: Browser, up: UpStack, zone: str, language: str) -> Page:
    """A fresh browser whose system says `zone` and `language` (Intl, Accept-Language)."""
    context = chromium.new_context(base_url=up.url, viewport=DESKTOP, timezone_id=zone,
                                   locale=language)
    return context.new_page()


def me(up: UpStack, email: str) -> dict[str, object]:
    http = httpx.Client(base_url=up.url, timeout=10)
    token = http.post("/v1/login", json={"workspace": "demo", "email": email,
                                         "password": DEMO_PASSWORD}).json()["token"]
    return dict(http.get("/v1/me", headers=bearer(token)).json())


def test_sign_in_follows_the_browser_and_settings_change_language_and_zone(
        chromium: Browser, up: UpStack) -> None:
    page = browser_in(chromium, up, "America/Sao_Paulo", "es-BR")
    page.goto("/login")
    # Not signed in yet: the browser's language (Spanish) says the page.
    expect(page.get_by_role("heading", name="Iniciar sesión")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "es")
    page.get_by_label("Espacio de trabajo").fill("demo")
    page.get_by_label("Correo electrónico").fill("member-00003@demo.test")
    page.get_by_label("Contraseña").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Iniciar sesión").click()
    expect(page).to_have_url(re.compile(r"/$"))
    # Signed in: the teammate's own language, still English (none chosen), and the browser's
    # zone is theirs now.
    expect(page.get_by_role("heading", name="Home")).to_be_visible()
    assert me(up, "member-00003@demo.test")["time_zone"] == "America/Sao_Paulo"

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Language and time").click()
    expect(page.get_by_label("Time zone")).to_have_value("America/Sao_Paulo")
    page.get_by_label("Language").select_option("de")
    page.get_by_label("Time zone").fill("Europe/Berlin")
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("heading", name="Sprache und Zeit")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("Gespeichert.")
    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page.get_by_label("Zeitzone")).to_have_value("Europe/Berlin")
    check(page, "language-and-time-de")
    assert {k: me(up, "member-00003@demo.test")[k] for k in ("locale", "time_zone")} == {
        "locale": "de", "time_zone": "Europe/Berlin"}

    # Every page follows: the menu, and times in Berlin with the exact UTC time on hover.
    page.get_by_role("navigation", name="Hauptmenü").get_by_role("link", name="Sitzungen").click()
    expect(page.get_by_role("heading", name="Sitzungen")).to_be_visible()
    signed_in = page.locator("table.sessions tbody time").first
    expect(signed_in).to_have_text(re.compile(
        r"^(Montag|Dienstag|Mittwoch|Donnerstag|Freitag|Samstag|Sonntag), \d{1,2}\. \w+, "
        r"\d\d:\d\d (MEZ|MESZ) \(\d\d:\d\d UTC\)$"))
    exact = signed_in.get_attribute("title") or ""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", exact), exact
    assert f"({exact[11:16]} UTC)" in signed_in.inner_text()
    check(page, "sessions-de")

    # A zone that is not one is refused, in German, and nothing changes.
    page.goto("/settings/language")
    page.get_by_label("Zeitzone").fill("Mars/Olympus_Mons")
    page.get_by_role("button", name="Speichern").click()
    expect(page.get_by_role("alert")).to_contain_text("ist keine IANA-Zeitzone")
    assert me(up, "member-00003@demo.test")["time_zone"] == "Europe/Berlin"
    page.context.close()


def test_sign_in_keeps_the_browsers_zone_only_when_none_is_set(
        chromium: Browser, up: UpStack) -> None:
    email = "member-00004@demo.test"
    http = httpx.Client(base_url=up.url, timeout=10)
    token = http.post("/v1/login", json={"workspace": "demo", "email": email,
                                         "password": DEMO_PASSWORD}).json()["token"]
    assert http.patch("/v1/me", headers=bearer(token),
                      json={"time_zone": "Asia/Tokyo"}).status_code == 200

    page = browser_in(chromium, up, "America/New_York", "en-US")
    page.goto("/login")
    page.get_by_label("Workspace").fill("demo")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Home")).to_be_visible()
    assert me(up, email)["time_zone"] == "Asia/Tokyo"  # the one they chose stays
    page.context.close()
