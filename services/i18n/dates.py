"""Points in time as a reader says them: in their language and zone, with UTC beside.

Everything comes from Babel's CLDR data, never a pattern written here: "Wednesday 2
December, 15:00 CET (14:00 UTC)", "Mittwoch, 2. Dezember, 15:00 MEZ (14:00 UTC)",
"miércoles, 2 de diciembre, 15:00 CET (14:00 UTC)".
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from functools import lru_cache

from babel import Locale
from babel.dates import (
    format_date,
    format_datetime,
    format_skeleton,
    get_datetime_format,
    get_timezone_gmt,
    get_timezone_name,
    match_skeleton,
)

from services.i18n.catalogs import translate
from services.i18n.locales import effective, zone

# CLDR data per language: British English says "Wednesday 2 December", as twofa always has.
_CLDR = {"en": "en_GB", "de": "de_DE", "es": "es_ES"}
_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal",
                        "Zulu", "Etc/Zulu", "Etc/GMT", "GMT"})


def cldr(locale: str | None) -> str:
    return _CLDR[effective(locale)]


def in_words(value: datetime, locale: str | None = None, time_zone: str | None = None) -> str:
    """The day and time in the reader's zone, UTC beside it (only UTC when that is theirs)."""
    value = value.astimezone(UTC)
    language = cldr(locale)
    utc_time = format_skeleton("Hm", value, tzinfo=UTC, locale=language)
    tz = zone(time_zone)
    if tz is None or tz.key in _UTC_NAMES:
        return translate(locale, "{day}, {time} UTC", day=_day(value, UTC, language),
                       time=utc_time)
    return translate(locale, "{day}, {time} {zone} ({utc_time} UTC)",
                   day=_day(value, tz, language),
                   time=format_skeleton("Hm", value, tzinfo=tz, locale=language),
                   zone=_zone_name(value.astimezone(tz), language), utc_time=utc_time)


def day(value: datetime, locale: str | None = None, time_zone: str | None = None) -> str:
    """A calendar day in the reader's zone: "2 December 2026", "2. Dezember 2026"."""
    return format_date(value.astimezone(zone(time_zone) or UTC), "long", locale=cldr(locale))


def moment(value: datetime, locale: str | None = None, time_zone: str | None = None) -> str:
    """A short day and time in the reader's zone, named: "2 Dec 2026, 15:00 CET"."""
    value = value.astimezone(UTC)
    tz = zone(time_zone)
    local = value if tz is None or tz.key in _UTC_NAMES else value.astimezone(tz)
    name = "UTC" if local is value else _zone_name(local, cldr(locale))
    language = cldr(locale)
    # CLDR's glue of a date and a time ("{1}, {0}"), then the zone's name after the time.
    glued = str(get_datetime_format("medium", locale=language)).format(
        format_skeleton("Hm", local, locale=language),
        format_skeleton("yMMMd", local, locale=language))
    return f"{glued} {name}"


def _day(value: datetime, tz: tzinfo, language: str) -> str:
    return format_datetime(value, _day_pattern(language), tzinfo=tz, locale=language)


@lru_cache(maxsize=8)
def _day_pattern(language: str) -> str:
    """CLDR's pattern for a weekday, day and month, its fields widened to full words (CLDR
    keeps a skeleton's nearest pattern and has the caller adjust field widths)."""
    skeletons = Locale.parse(language).datetime_skeletons
    pattern = skeletons[match_skeleton("MMMMEEEEd", skeletons)].pattern
    return re.sub(r"M{3,4}", "MMMM", re.sub(r"E{1,4}|c{1,4}", "EEEE", pattern))


def _zone_name(value: datetime, language: str) -> str:
    """The zone's short name where the language has one in common use (CET, MEZ), else its
    offset (GMT-03:00): never a long name, nor a bare "+0530"."""
    name = get_timezone_name(value, "short", locale=language, return_zone=False)
    if name[:1] in "+-" or " " in name:
        return get_timezone_gmt(value, "long", locale=language)
    return name
