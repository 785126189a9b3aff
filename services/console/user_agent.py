"""A browser's User-Agent in the words people use ("Firefox on Windows"), for the audit log
and the sessions page. Rough on purpose: it names what a person recognises, nothing more."""

from __future__ import annotations

_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"),
             ("Chromium/", "Chromium"), ("Chrome/", "Chrome"), ("Safari/", "Safari"),
             ("curl/", "curl"), ("python-httpx", "a Python program"),
             ("python-requests", "a Python program"))
_SYSTEMS = (("iPhone", "iPhone"), ("iPad", "iPad"), ("Android", "Android"),
            ("Windows", "Windows"), ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"),
            ("Linux", "Linux"))


def in_words(user_agent: str | None) -> str:
    if not user_agent:
        return "an unknown browser"
    browser = next((name for token, name in _BROWSERS if token in user_agent), None)
    system = next((name for token, name in _SYSTEMS if token in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or (f"a browser on {system}" if system else "an unknown browser")
