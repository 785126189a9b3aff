"""/reauthenticate?next=…: show a second factor again (a code, or a security key), then go
back to `next` (a path of this site only). Where a sensitive action sends a session whose last
verification is older than TWOFA_REAUTH_SECONDS (services/console/recent_factor.py)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request, Response

from services.api.deps import DB
from services.api.schemas import CodeIn
from services.console import web
from services.console.keys_pages import form_json
from services.errors import N_
from services.verification import recent, webauthn_sign_in

router = APIRouter(include_in_schema=False)


@router.get("/reauthenticate")
def reauthenticate_page(request: Request, caller: web.AnyCaller, session: DB,
                        next: str = "/") -> Response:
    return _page(request, caller, session, web.safe_next(next))


@router.post("/reauthenticate")
def reauthenticate(request: Request, form: web.Form, caller: web.AnyCaller,
                   session: DB) -> Response:
    after = web.safe_next(form.get("next"))
    with web.form_errors(session) as problem:
        recent.reauthenticate(session, caller, CodeIn.model_validate(form).code)
        return web.redirect(after)
    return _page(request, caller, session, after, problem.message)


@router.post("/reauthenticate/key")
def reauthenticate_with_key(request: Request, form: web.Form, caller: web.AnyCaller,
                            session: DB) -> Response:
    """The same, answered by a security key (static/console.js runs the ceremony)."""
    after = web.safe_next(form.get("next"))
    with web.form_errors(session) as problem:
        recent.reauthenticate_with_key(session, caller, form.get("challenge", "")[:200],
                                       form_json(form, "webauthn"))
        return web.redirect(after)
    return _page(request, caller, session, after, problem.message)


def _page(request: Request, caller: web.AnyCaller, session: DB, after: str,
          error: str | None = None) -> Response:
    challenge, options = None, None
    if "webauthn" in webauthn_sign_in.methods_of(session, caller.teammate):
        challenge, options = recent.key_options(session, caller)  # fresh for each showing
    return web.render(request, "reauthenticate.html", {
        "title": N_("Confirm it is you"), "next": after, "error": error, "challenge": challenge,
        "webauthn": json.dumps(options) if options else None,
    }, status_code=400 if error else 200, caller=caller)
