"""/reauthenticate?next=…: show a second factor again, then go back to `next` (a path of this
site only). Where a sensitive action sends a session whose last verification is older than
TWOFA_REAUTH_SECONDS (services/console/recent_factor.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from services.api.deps import DB
from services.api.schemas import CodeIn
from services.console import web
from services.verification import recent

router = APIRouter(include_in_schema=False)


@router.get("/reauthenticate")
def reauthenticate_page(request: Request, caller: web.AnyCaller, next: str = "/") -> Response:
    return _page(request, caller, web.safe_next(next))


@router.post("/reauthenticate")
def reauthenticate(request: Request, form: web.Form, caller: web.AnyCaller,
                   session: DB) -> Response:
    after = web.safe_next(form.get("next"))
    with web.form_errors(session) as problem:
        recent.reauthenticate(session, caller, CodeIn.model_validate(form).code)
        return web.redirect(after)
    return _page(request, caller, after, problem.message)


def _page(request: Request, caller: web.AnyCaller, after: str,
          error: str | None = None) -> Response:
    return web.render(request, "reauthenticate.html", {
        "title": "Confirm it is you", "next": after, "error": error,
    }, status_code=400 if error else 200, caller=caller)
