"""A browser in words for people ("Firefox on Linux"), from its User-Agent header: for the
notices, the sessions page and the audit log alike.

Only what lets someone recognise, or not, their own device: the browser's family and the
operating system. Order matters: Edge, Opera and Chromium also say "Chrome", Chrome also
says "Safari", and Android also says "Linux". Product names stay as they are in every language.
"""

from __future__ import annotations

from services.errors import N_
from services.i18n.catalogs import translate

BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("FxiOS/", "Firefox"),
            ("CriOS/", "Chrome"), ("Chromium/", "Chromium"), ("Chrome/", "Chrome"),
            ("Safari/", "Safari"), ("curl/", "curl"), ("python-httpx/", N_("a script (httpx)")),
            ("python-requests/", N_("a script (requests)")))
SYSTEMS = (("iPhone", "iOS"), ("iPad", "iPadOS"), ("Android", "Android"),
           ("Windows", "Windows"), ("Mac OS X", "macOS"), ("Macintosh", "macOS"),
           ("CrOS", "ChromeOS"), ("Linux", "Linux"))

UNKNOWN = N_("an unknown browser")


def in_words(user_agent: str | None, locale: str | None = None) -> str:
    """In `locale` (English when None)."""
    if not user_agent or not user_agent.strip():
        return translate(locale, UNKNOWN)
    browser = next((name for mark, name in BROWSERS if mark in user_agent), None)
    system = next((name for mark, name in SYSTEMS if mark in user_agent), None)
    if browser and system:
        return translate(locale, "{browser} on {system}", browser=translate(locale, browser),
                         system=system)
    if system:
        return translate(locale, "a browser on {system}", system=system)
    return translate(locale, browser or UNKNOWN)
