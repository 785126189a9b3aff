"""The languages twofa speaks and the time zones it accepts, and how a choice is checked.

A locale is a BCP 47 tag among SUPPORTED; a teammate who never chose one reads English. A time
zone is an IANA name that zoneinfo knows; none means UTC.
"""

from __future__ import annotations

import re
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from services.errors import InvalidInput

SUPPORTED = ("en", "de", "es")
DEFAULT = "en"
# One language-range of Accept-Language and its optional weight (RFC 9110, 12.5.4).
_RANGE = re.compile(r"^\s*([A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*|\*)\s*(?:;\s*q\s*=\s*([0-9.]+))?")


def effective(locale: str | None) -> str:
    """The language a teammate reads: their own, else English."""
    return locale if locale in SUPPORTED else DEFAULT


def from_accept_language(header: str | None) -> str | None:
    """The supported language the browser prefers most (`de-AT` counts as `de`), or None
    when it names none of them."""
    best: tuple[float, int, str] | None = None
    for position, part in enumerate((header or "").split(",")):
        found = _RANGE.match(part)
        if not found or found.group(1) == "*":
            continue
        try:
            weight = float(found.group(2)) if found.group(2) else 1.0
        except ValueError:
            continue
        language = found.group(1).split("-")[0].lower()
        if language in SUPPORTED and weight > 0 and (
                best is None or (weight, -position) > (best[0], best[1])):
            best = (weight, -position, language)
    return best[2] if best else None


def check_locale(value: str) -> str:
    if value not in SUPPORTED:
        raise InvalidInput("locale: one of {supported}.", "invalid_request",
                           supported=", ".join(SUPPORTED))
    return value


def check_time_zone(value: str) -> str:
    """An IANA zone name (`Europe/Berlin`); zoneinfo's own spelling, nothing else."""
    if not is_time_zone(value):
        raise InvalidInput("time_zone: {value} is not an IANA time zone such as "
                           "Europe/Berlin.", "invalid_request", value=value[:64])
    return value


def is_time_zone(value: str) -> bool:
    return value in _names()


def zone(name: str | None) -> ZoneInfo | None:
    """The teammate's zone, or None (UTC) when none is set or it is no longer known."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


@lru_cache(maxsize=1)
def _names() -> frozenset[str]:
    # A closed list: ZoneInfo() alone would also open paths such as "../etc" or "posixrules".
    return frozenset(available_timezones())
