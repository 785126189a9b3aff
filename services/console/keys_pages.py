"""Security keys and passkeys in the console: adding, listing and removing keys on
/settings/two-factor, the key at the code step, and passkey sign-in on /login.

The browser runs each ceremony with a few lines of static/console.js: it fetches options
from here (a POST carrying the page's CSRF token), asks the authenticator, and posts the
response as an ordinary form field, so every change is still a CSRF-checked form.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from services.api.deps import DB, client_ip
from services.console import auth_pages, settings_pages, web
from services.errors import N_, InvalidInput, TwofaError
from services.verification import webauthn as keys
from services.verification import webauthn_sign_in

router = APIRouter(include_in_schema=False)


def form_json(form: dict[str, str], field: str) -> dict[str, Any]:
    """A JSON object the page's script put in a form field (a key's answer)."""
    try:
        value = json.loads(form.get(field, ""))
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise InvalidInput("Your browser sent no answer from the security key; try again.",
                           "invalid_credential")
    return value


def _json_answer(body: dict[str, Any], status_code: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status_code, headers=web.HEADERS)


@router.post("/settings/two-factor/keys/options")
def registration_options(form: web.Form, caller: web.AnyCaller, session: DB) -> Response:
    try:
        return _json_answer(keys.registration_options(session, caller.teammate, caller.workspace))
    except TwofaError as exc:
        return _json_answer({"error": {"code": exc.code, "message": exc.message}}, 409)


@router.post("/settings/two-factor/keys")
def add_key(request: Request, form: web.Form, caller: web.AnyCaller, session: DB) -> Response:
    with web.form_errors(session) as problem:
        done = keys.register(session, caller.teammate, form.get("name", ""),
                             form_json(form, "credential"), current=caller.auth)
        if done.recovery_codes is not None:
            return settings_pages.codes_page(request, caller, done.recovery_codes, first=True)
        return web.redirect("/settings/two-factor?key_added=1#keys")
    return settings_pages.page(request, caller, session, error=problem.message, failed="key")


@router.get("/settings/two-factor/keys/{credential_id}/remove")
def remove_confirm(request: Request, credential_id: int, caller: web.AnyCaller, session: DB) -> Response:
    with web.or_not_found():
        key = keys.get(session, caller.teammate, credential_id)
    return web.render(request, "key_remove_confirm.html",
                      {"title": f"Remove {key.name}?", "key": key}, caller=caller)


@router.post("/settings/two-factor/keys/{credential_id}/remove")
def remove(request: Request, credential_id: int, form: web.Form, caller: web.AnyCaller,
           session: DB) -> Response:
    with web.or_not_found(), web.form_errors(session) as problem:
        keys.remove(session, caller.teammate, caller.workspace, credential_id)
        return web.redirect("/settings/two-factor?key_removed=1#keys")
    return settings_pages.page(request, caller, session, error=problem.message, failed="key")


@router.post("/login/key")
def login_with_key(request: Request, form: web.PreSessionForm, session: DB) -> Response:
    """The code step answered with a security key instead of a code."""
    after = web.safe_next(form.get("next"))
    with web.form_errors(session) as problem:
        token = webauthn_sign_in.verify_second_factor(session, form.get("challenge", ""),
                                                      form_json(form, "webauthn"))
        auth_pages.remember_browser_zone(session, token, form)
        return auth_pages.signed_in(token, after)
    return auth_pages.code_step(request, session, form.get("challenge", ""), after,
                                problem.message)


@router.post("/login/passkey/options")
def passkey_options(request: Request, form: web.PreSessionForm, session: DB,
                    ip: Annotated[str, Depends(client_ip)]) -> Response:
    try:
        workspace = form.get("workspace", "").strip()[:320] or None
        challenge, options = webauthn_sign_in.passkey_options(session, workspace, ip)
    except TwofaError as exc:
        said = web.describe(exc).said(web.page_locale(request, None))
        return _json_answer({"error": {"code": exc.code, "message": said}}, 409)
    return _json_answer({"challenge": challenge, "options": options})


@router.post("/login/passkey")
def passkey_login(request: Request, form: web.PreSessionForm, session: DB,
                  ip: Annotated[str, Depends(client_ip)]) -> Response:
    after = web.safe_next(form.get("next"))
    with web.form_errors(session) as problem:
        workspace = form.get("workspace", "").strip()[:320] or None
        token = webauthn_sign_in.passkey_login(session, form.get("challenge", ""),
                                               form_json(form, "webauthn"), workspace, ip)
        auth_pages.remember_browser_zone(session, token, form)
        return auth_pages.signed_in(token, after)
    return web.render(request, "login.html", {
        "title": N_("Sign in"), "workspace": form.get("workspace", "")[:320], "next": after,
        "error": problem.message}, status_code=400)
