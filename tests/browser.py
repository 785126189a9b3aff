"""Browser-test parts: a real `twofa up --demo` and Debian's Chromium driven by Playwright.

No browser is downloaded: Playwright's driver (shipped in its wheel) drives /usr/bin/chromium,
which `.ci/run` installs with apt-get when it is missing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyotp
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

from tests.stack import REDIS_URL, backend, create_database, drop_database, free_port, wait_until
from tests.twofactor import qr_texts

CHROMIUM = os.environ.get("TWOFA_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
DEMO_PASSWORD = "correct-horse-battery"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}


@dataclass
class UpStack:
    """`twofa up --demo` as a person runs it, from an empty folder, on this test's backend."""

    folder: Path
    port: int
    process: subprocess.Popen[str]
    database_url: str | None
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def mail_dir(self) -> Path:
        return self.folder / "var" / "mail"


@contextmanager
def twofa_up(folder: Path, host: str = "127.0.0.1", **extra_env: str) -> Iterator[UpStack]:
    """`host` names the public URL's host: `localhost` for security keys, since browsers
    refuse an IP address as a WebAuthn relying party (the server binds 127.0.0.1 either way)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWOFA_")}
    env.update({"TWOFA_MAILCATCHER_PORT": str(free_port()), "TWOFA_SWEEP_INTERVAL": "2",
                "TWOFA_PUBLIC_URL": f"http://{host}:{port}", "COLUMNS": "200",
                "TWOFA_WEBHOOK_ALLOW_PRIVATE": "true",  # the test's receiver is on loopback
                **extra_env})
    database_url = None
    if backend() == "postgres":
        database_url = create_database()
        env.update({"TWOFA_DATABASE_URL": database_url, "TWOFA_BROKER_URL": REDIS_URL,
                    "TWOFA_QUEUE": f"twofa-console-{uuid.uuid4().hex[:8]}"})
    log = open(folder / "up.log", "w")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen([sys.executable, "-m", "workers.cli", "up", "--demo", "--port",
                                str(port)], cwd=folder, env=env, stdout=log,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    stack = UpStack(folder, port, process, database_url, host)
    try:
        wait_until(lambda: _healthy(stack), 90, 0.3, message="twofa up to answer")
        yield stack
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
        log.close()
        if database_url:
            drop_database(database_url)


def _healthy(stack: UpStack) -> bool:
    if stack.process.poll() is not None:
        raise AssertionError((stack.folder / "up.log").read_text())
    try:
        return httpx.get(f"{stack.url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


_axe = Axe()


def check(page: Page, name: str, phone: bool = True) -> None:
    """Every screen: no serious or critical axe-core violation, and screenshots of it on a
    desktop and (with `phone`) on a 390 px wide phone, where it must also pass axe."""
    ARTIFACTS.mkdir(exist_ok=True)
    # A click that navigates returns before the next document exists; on a loaded machine
    # axe could otherwise run in between (no document yet).
    page.wait_for_load_state("load")
    _assert_accessible(page, name)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
    if phone:
        page.set_viewport_size(PHONE)
        _assert_accessible(page, f"{name} (phone)")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{name}: the page scrolls sideways on a phone ({width}px)"
        page.screenshot(path=ARTIFACTS / f"{name}-phone.png", full_page=True)
        page.set_viewport_size(DESKTOP)


def _assert_accessible(page: Page, name: str) -> None:
    results = _axe.run(page)
    bad = [(v["id"], v["impact"], v["help"], [n["target"] for n in v["nodes"]][:3])
           for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, f"axe-core on {name} ({page.url}): {bad}"


def secret_on(page: Page) -> str:
    """The TOTP secret as the page shows it (groups of four), as a person would type it."""
    return page.locator("#secret").inner_text().replace(" ", "")


def qr_text(page: Page) -> str:
    """What the QR code on the page says: the image it shows, loaded with its cookies."""
    img = page.get_by_role("img", name="QR code")
    wait_until(lambda: img.evaluate("i => i.complete && i.naturalWidth > 0"), 10,
               message="the QR code image to load")
    png = page.request.get(str(img.evaluate("i => i.currentSrc"))).body()
    [text] = qr_texts(png)
    return text


def code_for(secret: str, steps_ahead: int = 0) -> str:
    """A current code; one step ahead is still accepted (±1) and never replays an earlier one."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)
