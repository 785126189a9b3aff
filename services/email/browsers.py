"""A browser in words for people ("Firefox on Linux"), from its User-Agent header.

Only what a notice needs to let someone recognise, or not, their own device: the browser's
family and the operating system. Order matters: Edge and Opera also say "Chrome", Chrome
also says "Safari", and Android also says "Linux".
"""

from __future__ import annotations

from services.errors import N_
from services.i18n.catalogs import translate

BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("FxiOS/", "Firefox"),
            ("CriOS/", "Chrome"), ("Chrome/", "Chrome"), ("Chromium/", "Chromium"),
            ("Safari/", "Safari"), ("curl/", "curl"), ("python-httpx/", N_("a script (httpx)")))
SYSTEMS = (("iPhone", "iOS"), ("iPad", "iPadOS"), ("Android", "Android"),
           ("Windows", "Windows"), ("Mac OS X", "macOS"), ("Macintosh", "macOS"),
           ("CrOS", "ChromeOS"), ("Linux", "Linux"))


UNKNOWN = N_("an unknown browser")


def in_words(user_agent: str, locale: str | None = None) -> str:
    """In `locale` (English when None); product names stay as they are."""
    if not user_agent.strip():
        return translate(locale, UNKNOWN)
    browser = translate(locale, next((name for mark, name in BROWSERS if mark in user_agent),
                                   UNKNOWN))
    system = next((name for mark, name in SYSTEMS if mark in user_agent), None)
    return translate(locale, "{browser} on {system}", browser=browser, system=system) \
        if system else browser
