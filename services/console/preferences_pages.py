"""Settings → User → Language and time (/settings/language): the language of pages and
emails, and the time zone their times are said in."""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import available_timezones

from fastapi import APIRouter, Request, Response

from services.accounts import preferences
from services.api.deps import DB
from services.console import web
from services.errors import N_

router = APIRouter(prefix="/settings/language", include_in_schema=False)
BACK = "/settings/language"
# Each language named in itself: someone who cannot read the page still finds their own.
LANGUAGES = (("en", "English"), ("de", "Deutsch"), ("es", "Español"))


@router.get("")
def language_page(request: Request, caller: web.FullCaller, saved: str = "") -> Response:
    return _page(request, caller, notice=N_("Saved.") if saved else None)


@router.post("")
def save(request: Request, form: web.Form, caller: web.FullCaller, session: DB) -> Response:
    with web.form_errors(session) as problem:
        preferences.change(session, caller.teammate, locale=form.get("locale", "en"),
                           time_zone=form.get("time_zone", "").strip() or None)
        return web.redirect(BACK + "?saved=1")
    return _page(request, caller, error=problem.message, zone=form.get("time_zone", "")[:64])


def _page(request: Request, caller: web.FullCaller, error: object = None,
          notice: str | None = None, zone: str | None = None) -> Response:
    return web.render(request, "preferences.html", {
        "title": N_("Language and time"), "error": error, "notice": notice,
        "languages": LANGUAGES, "zones": _zones(),
        "zone": caller.teammate.time_zone or "" if zone is None else zone,
    }, status_code=400 if error else 200, caller=caller)


@lru_cache(maxsize=1)
def _zones() -> list[str]:
    """The places people pick (Europe/Berlin), not the aliases kept for old systems."""
    return sorted(z for z in available_timezones()
                  if "/" in z and not z.startswith(("Etc/", "SystemV/", "US/", "posix", "right")))
