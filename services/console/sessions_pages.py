"""Settings → Sessions (/settings/sessions): where one is signed in, in words, and ending
one session or all the others."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from services import browsers
from services.accounts import sessions
from services.api.deps import DB
from services.api.types import Id
from services.console import web
from services.errors import N_, NotFound
from services.models import AuthSession
from services.timestamps import rfc3339

router = APIRouter(prefix="/settings/sessions", include_in_schema=False)
BEGAN = {"password": N_("Password"), "passkey": N_("Passkey"),
         "host": N_("Your team's own sign-in")}


@router.get("")
def sessions_page(request: Request, caller: web.FullCaller, session: DB,
                  ended: str = "") -> Response:
    notice = {"one": N_("That session has ended: its browser is signed out."),
              "others": N_("All your other sessions have ended.")}.get(ended)
    return _page(request, caller, session, notice=notice)


@router.post("/end-others")
def end_others(form: web.Form, caller: web.FullCaller, session: DB) -> Response:
    sessions.end_all(session, caller.teammate.id, keep=caller.auth)
    return web.redirect("/settings/sessions?ended=others")


@router.post("/{session_id}/end")
def end_one(request: Request, session_id: Id, form: web.Form, caller: web.FullCaller,
            session: DB) -> Response:
    try:
        sessions.end_own(session, caller.teammate.id, session_id)
    except NotFound:  # ended meanwhile (or never one's own): the list says what is live
        return _page(request, caller, session, error=N_("That session had already ended."))
    if session_id == caller.auth.id:  # ending this very one is signing out
        response = web.redirect("/login?signed_out=1")
        web.delete_cookie(response, web.SESSION_COOKIE)
        return response
    return web.redirect("/settings/sessions?ended=one")


def _row(auth: AuthSession, current: AuthSession, locale: str) -> dict[str, object]:
    return {"id": auth.id, "created_at": rfc3339(auth.created_at),
            "ip": auth.ip or N_("not recorded"),
            "browser": browsers.in_words(auth.user_agent, locale),
            "began": BEGAN[sessions.began(auth)], "current": auth.id == current.id}


def _page(request: Request, caller: web.FullCaller, session: DB, error: str | None = None,
          notice: str | None = None) -> Response:
    locale = web.page_locale(request, caller)
    rows = [_row(s, caller.auth, locale)
            for s in sessions.live_sessions(session, caller.teammate.id)]
    return web.render(request, "sessions.html", {
        "title": N_("Sessions"), "rows": rows, "error": error, "notice": notice,
        "others": sum(1 for r in rows if not r["current"])},
        status_code=400 if error else 200, caller=caller)
