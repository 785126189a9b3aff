"""A browser's User-Agent in the words people use ("Firefox on Windows"), for the audit log
and the sessions page. Rough on purpose: it names what a person recognises, nothing more."""

from __future__ import annotations

from services.errors import N_
from services.i18n.catalogs import translate

_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"),
             ("Chromium/", "Chromium"), ("Chrome/", "Chrome"), ("Safari/", "Safari"),
             ("curl/", "curl"), ("python-httpx", N_("a Python program")),
             ("python-requests", N_("a Python program")))
_SYSTEMS = (("iPhone", "iPhone"), ("iPad", "iPad"), ("Android", "Android"),
            ("Windows", "Windows"), ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"),
            ("Linux", "Linux"))


UNKNOWN = N_("an unknown browser")


def in_words(user_agent: str | None, locale: str | None = None) -> str:
    """In `locale` (English when None); product names stay as they are."""
    if not user_agent:
        return translate(locale, UNKNOWN)
    browser = next((translate(locale, name) for token, name in _BROWSERS if token in user_agent),
                   None)
    system = next((name for token, name in _SYSTEMS if token in user_agent), None)
    if browser and system:
        return translate(locale, "{browser} on {system}", browser=browser, system=system)
    if system:
        return translate(locale, "a browser on {system}", system=system)
    return browser or translate(locale, UNKNOWN)
