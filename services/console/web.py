"""What every console page shares: the cookie session, CSRF tokens, rendering, error pages.

Pages are said in the signed-in teammate's language (else the one the browser's
Accept-Language prefers) through Jinja2's i18n extension and the catalogs of services/locale/,
and times in their time zone, the exact UTC time on hover.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup
from pydantic import ValidationError
from sqlalchemy.orm import Session

from services import holding
from services.accounts import sessions
from services.api.deps import DB
from services.config import get_settings
from services.console import hosts, invalid_words
from services.console.words import Words
from services.errors import N_, NotFound, RateLimited, TwofaError, Unauthenticated
from services.i18n import dates
from services.i18n.catalogs import translate, translations
from services.i18n.locales import effective, from_accept_language
from services.verification import relying_party

SESSION_COOKIE = "twofa_session"
PRESESSION_COOKIE = "twofa_presession"  # binds the sign-in and join forms' token
CSRF_FIELD = "csrf_token"

# Context keys render() sets: the page's language and time zone.
LOCALE, TIME_ZONE = "_locale", "_time_zone"

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.add_extension("jinja2.ext.i18n")
# A TOTP secret reads more easily, and is typed with fewer mistakes, in groups of four.
templates.env.filters["groups"] = lambda text: " ".join(
    text[i:i + 4] for i in range(0, len(text), 4))


@pass_context
def _gettext(context: Context, message: str) -> str:
    return translations(context.get(LOCALE)).gettext(message)


@pass_context
def _ngettext(context: Context, singular: str, plural: str, n: int) -> str:
    return translations(context.get(LOCALE)).ngettext(singular, plural, n)


# One environment for every language: the catalog is chosen per render, from the context.
templates.env.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined,unused-ignore]


@pass_context
def _when(context: Context, value: str | None) -> Markup:
    """An RFC 3339 time from the API's answers as the reader says it, in their zone with UTC
    beside; the exact value kept in the element for machines and on hover."""
    if not value:
        return Markup("")
    exact = datetime.fromisoformat(value)
    return Markup('<time datetime="{0}" title="{0}">{1}</time>').format(
        value, dates.in_words(exact, context.get(LOCALE), context.get(TIME_ZONE)))


templates.env.filters["when"] = _when


@pass_context
def _day(context: Context, value: datetime) -> str:
    return dates.day(value, context.get(LOCALE), context.get(TIME_ZONE))


@pass_context
def _moment(context: Context, value: datetime) -> str:
    return dates.moment(value, context.get(LOCALE), context.get(TIME_ZONE))


templates.env.filters["day"] = _day
templates.env.filters["moment"] = _moment

# Pages hold secrets (TOTP secret, recovery codes): never cached, never framed; only our
# own script and stylesheet run.
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


class Redirect(Exception):  # noqa: N818 - a control-flow signal, not a failure
    """Leave this page for `location` (sign-in, or enrollment before anything else)."""

    def __init__(self, location: str, clear_session: bool = False) -> None:
        super().__init__(location)
        self.location = location
        self.clear_session = clear_session


class PageForbidden(Exception):
    """A signed-in teammate opened a page their role does not allow: the 403 page."""


class CsrfRefused(Exception):
    """A form arrived without this session's CSRF token, or from another origin."""


def secure_cookies() -> bool:
    return get_settings().public_url.lower().startswith("https://")


def cookie_name(base: str) -> str:
    """On https, `__Host-`: the browser then takes the cookie only from this exact origin
    over https (Secure, Path=/, no Domain), so a sibling subdomain or a plain-http page on
    another port cannot overwrite it."""
    return f"__Host-{base}" if secure_cookies() else base


def set_cookie(response: Response, base: str, value: str) -> None:
    response.set_cookie(cookie_name(base), value, httponly=True, samesite="lax",
                        secure=secure_cookies(), path="/",
                        max_age=get_settings().session_ttl_seconds)


def delete_cookie(response: Response, base: str) -> None:
    # Same attributes as when set: a __Host- cookie is only replaced by a Secure one.
    response.delete_cookie(cookie_name(base), path="/", secure=secure_cookies(), httponly=True,
                           samesite="lax")


def session_token(request: Request) -> str | None:
    """The session token this request acts under: a renewed one (set on this very response)
    or the cookie's."""
    renewed = getattr(request.state, "renewed_session", None)
    return renewed or request.cookies.get(cookie_name(SESSION_COOKIE))


def use_renewed_session(request: Request, token: str) -> None:
    """The session got a new token (the old one ended): the page rendered next binds its
    forms to it and hands it to the browser."""
    request.state.renewed_session = token


def csrf_token(request: Request, signed_in: bool) -> str:
    """The token forms carry: derived from the session token when signed in, else from a
    pre-session cookie (made here when missing).

    Bound to a secret only this browser's cookie holds, so a page that overwrites cookies
    (another port of the same host, a sibling subdomain) cannot post one that matches the
    victim's session; it changes with the session (sign-in, sign-out, renewal).
    """
    if signed_in:
        return bound_to(session_token(request) or "")
    presession = request.cookies.get(cookie_name(PRESESSION_COOKIE)) or getattr(
        request.state, "presession", None)
    if not presession:
        presession = request.state.presession = secrets.token_urlsafe(32)
    return bound_to(str(presession))


def bound_to(secret: str) -> str:
    if not secret:
        return ""
    digest = hmac.new(secret.encode(), b"twofa console form", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def page_locale(request: Request, caller: sessions.Authenticated | None) -> str:
    """The teammate's language once signed in; before, the browser's."""
    if caller is not None:
        return effective(caller.teammate.locale)
    return effective(from_accept_language(request.headers.get("accept-language")))


def words(locale: str, value: Any) -> Any:
    """A page's title, notice, error or message in `locale`: an English message id (or
    `Words`) is looked up in the catalog; anything else is shown as it is."""
    if isinstance(value, Words):
        return value.said(locale)
    return translate(locale, value) if isinstance(value, str) and value else value


# What render() says in the page's language when a page gives it in English.
_SAID = ("title", "notice", "error", "message")


def render(request: Request, template: str, context: dict[str, Any] | None = None,
           status_code: int = 200, caller: sessions.Authenticated | None = None) -> HTMLResponse:
    token = csrf_token(request, signed_in=caller is not None)
    locale = page_locale(request, caller)
    context = dict(context or {})
    for key in _SAID:
        if key in context:
            context[key] = words(locale, context[key])
    response = templates.TemplateResponse(
        request, template, {"csrf": token, "csrf_field": CSRF_FIELD, "caller": caller,
                            "setup_by": setup_deadline(caller) if caller else None,
                            "webauthn_on": relying_party.available(),
                            LOCALE: locale,
                            TIME_ZONE: caller.teammate.time_zone if caller else None,
                            **context}, status_code=status_code)
    made = getattr(request.state, "presession", None)
    if made and not request.cookies.get(cookie_name(PRESESSION_COOKIE)):
        set_cookie(response, PRESESSION_COOKIE, made)
    renewed_token = getattr(request.state, "renewed_session", None)
    if renewed_token:
        set_cookie(response, SESSION_COOKIE, renewed_token)
    response.headers.update(HEADERS)
    return response


def time_words(request: Request, caller: sessions.Authenticated) -> Callable[[datetime], str]:
    """`in_words` for a page's own use: in the caller's language and time zone."""
    return partial(dates.in_words, locale=page_locale(request, caller),
                   time_zone=caller.teammate.time_zone)


def setup_deadline(caller: sessions.Authenticated) -> str | None:
    """For a teammate without 2FA in a workspace that requires it but does not enforce it on
    them yet (a grace period, an exemption): until when, in words."""
    held = holding.held_from(caller.teammate, caller.workspace)
    teammate = caller.teammate
    return dates.in_words(held, teammate.locale, teammate.time_zone) if held else None


def redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303)


def safe_next(target: str | None) -> str:
    """Only a path of this site: never `//evil.example` or an absolute URL."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


async def form_data(request: Request) -> dict[str, str]:
    """A signed-in form: from this site, with the token of this browser's session."""
    return await _checked_form(request, bound_to(request.cookies.get(
        cookie_name(SESSION_COOKIE), "")))


async def pre_session_form_data(request: Request) -> dict[str, str]:
    """Sign-in and join: from this site, with the token of this browser's pre-session cookie
    (so another site cannot sign a browser in as someone else)."""
    return await _checked_form(request, bound_to(request.cookies.get(
        cookie_name(PRESESSION_COOKIE), "")))


async def _checked_form(request: Request, expected: str) -> dict[str, str]:
    if not hosts.same_origin(request):
        raise CsrfRefused()
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    if not isinstance(sent, str) or not expected or not hmac.compare_digest(sent, expected):
        raise CsrfRefused()
    return {key: value for key, value in form.items() if isinstance(value, str)}


def posts_from_this_site(request: Request) -> None:
    """Every console router's first check of a POST: from a page of this site, before any
    other dependency (a sensitive action's freshness check would otherwise answer a forged
    cross-site post, which carries no cookie, with the sign-in page instead of a refusal)."""
    if request.method not in ("GET", "HEAD", "OPTIONS") and not hosts.same_origin(request):
        raise CsrfRefused()


Form = Annotated[dict[str, str], Depends(form_data)]
PreSessionForm = Annotated[dict[str, str], Depends(pre_session_form_data)]


def signed_in(request: Request, session: DB) -> sessions.Authenticated:
    """The cookie's session at any level (the 2FA settings page and sign-out accept both)."""
    token = request.cookies.get(cookie_name(SESSION_COOKIE))
    back = "/login?next=" + quote(request.url.path, safe="/")
    if not token:
        raise Redirect(back)
    try:
        return sessions.authenticate(session, token)
    except Unauthenticated:
        raise Redirect(back, clear_session=True) from None


AnyCaller = Annotated[sessions.Authenticated, Depends(signed_in)]


def full_level(caller: AnyCaller) -> sessions.Authenticated:
    """While the session may only enroll, every page but enrollment sends it there first."""
    if caller.level != "full":
        raise Redirect("/settings/two-factor")
    return caller


FullCaller = Annotated[sessions.Authenticated, Depends(full_level)]


def admin_level(caller: FullCaller) -> sessions.Authenticated:
    # A host session (begun with an API key) never administers, as in the JSON API; the
    # console's cookie only ever holds password sessions, so this is defence in depth.
    if caller.teammate.role != "admin" or caller.is_host_session:
        raise PageForbidden()
    return caller


AdminCaller = Annotated[sessions.Authenticated, Depends(admin_level)]


@dataclass
class Problem:
    """What went wrong with a form, in words for the page (None when all went well)."""

    message: Words | str | None = None

    def __bool__(self) -> bool:
        return self.message is not None


@contextmanager
def form_errors(session: Session, labels: dict[str, str] | None = None) -> Iterator[Problem]:
    """Turn a refused action into words on the page instead of an error response.

    Like the API's unit of work, a refusal that keeps its changes (a counted wrong code)
    still commits; any other refusal is rolled back before the page renders. `labels` names
    fields as this page's form labels them where the usual label differs.
    """
    problem = Problem()
    try:
        yield problem
    except TwofaError as exc:
        if not exc.keep_changes:
            session.rollback()
        problem.message = describe(exc)
    except ValidationError as exc:
        problem.message = invalid_words.describe(exc, labels)


def describe(exc: TwofaError) -> Words:
    said = Words(exc.template, exc.params)
    if isinstance(exc, RateLimited):
        return Words(N_("{message} Try again in {wait}."),
                     {"message": said, "wait": wait_words(exc.retry_after)})
    return said


def wait_words(seconds: int) -> Words:
    if seconds == 1:
        return Words(N_("1 second"), {})
    if seconds < 120:
        return Words(N_("{count} seconds"), {"count": seconds})
    return Words(N_("{count} minutes"), {"count": (seconds + 59) // 60})


def _redirect_page(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Redirect)
    response = redirect(exc.location)
    if exc.clear_session:
        delete_cookie(response, SESSION_COOKIE)
    return response


def _forbidden_page(request: Request, exc: Exception) -> Response:
    return render(request, "error.html", {
        "title": N_("Not allowed"),
        "message": N_("Only admins of this workspace may open this page."),
    }, status_code=403)


def _csrf_page(request: Request, exc: Exception) -> Response:
    return render(request, "error.html", {
        "title": N_("Form refused"),
        "message": N_("This form was refused because it did not come from a page of this site "
                      "(its security token was missing or wrong). Go back, reload the page and "
                      "try again."),
    }, status_code=403)


def _host_page(request: Request, exc: Exception) -> Response:
    # No cookie is set for a host we do not answer to (so not render()); nothing is known of
    # who asks but their browser's language.
    locale = page_locale(request, None)
    response = templates.TemplateResponse(request, "error.html", {
        "title": translate(locale, N_("Unknown host")), "caller": None, "csrf": "",
        "csrf_field": CSRF_FIELD, LOCALE: locale,
        "message": translate(locale, N_("This server does not answer to that host name. Use "
                                        "the address you were given.")),
    }, status_code=400)
    response.headers.update(HEADERS)
    return response


def _public_url_page(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, hosts.ToPublicUrl)
    return redirect(exc.location)


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(hosts.HostRefused, _host_page)
    app.add_exception_handler(hosts.ToPublicUrl, _public_url_page)
    app.add_exception_handler(Redirect, _redirect_page)
    app.add_exception_handler(PageForbidden, _forbidden_page)
    app.add_exception_handler(CsrfRefused, _csrf_page)
    app.add_exception_handler(NotMounted, _not_found_page)


class NotMounted(Exception):  # noqa: N818 - answered as a plain 404
    """A page that does not exist here (or not in this configuration)."""


@contextmanager
def or_not_found() -> Iterator[None]:
    """A record of the URL that does not exist (or is another workspace's): the 404 page."""
    try:
        yield
    except NotFound:
        raise NotMounted() from None


def _not_found_page(request: Request, exc: Exception) -> Response:
    return render(request, "error.html", {"title": N_("Page not found"),
                                          "message": N_("There is no such page.")},
                  status_code=404)
