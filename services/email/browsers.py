"""A browser in words for people ("Firefox on Linux"), from its User-Agent header.

Only what a notice needs to let someone recognise, or not, their own device: the browser's
family and the operating system. Order matters: Edge and Opera also say "Chrome", Chrome
also says "Safari", and Android also says "Linux".
"""

from __future__ import annotations

BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("FxiOS/", "Firefox"),
            ("CriOS/", "Chrome"), ("Chrome/", "Chrome"), ("Chromium/", "Chromium"),
            ("Safari/", "Safari"), ("curl/", "curl"), ("python-httpx/", "a script (httpx)"))
SYSTEMS = (("iPhone", "iOS"), ("iPad", "iPadOS"), ("Android", "Android"),
           ("Windows", "Windows"), ("Mac OS X", "macOS"), ("Macintosh", "macOS"),
           ("CrOS", "ChromeOS"), ("Linux", "Linux"))


def in_words(user_agent: str) -> str:
    if not user_agent.strip():
        return "an unknown browser"
    browser = next((name for mark, name in BROWSERS if mark in user_agent), "an unknown browser")
    system = next((name for mark, name in SYSTEMS if mark in user_agent), None)
    return f"{browser} on {system}" if system else browser
