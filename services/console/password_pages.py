"""Passwords in the console: /forgot-password and /reset-password (the emailed link, then
the usual sign-in with its code step), and Settings → Password (/settings/password)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from services.accounts import password_change, password_reset
from services.api.deps import DB, client_ip
from services.api.schemas import PasswordChangeIn, PasswordResetConfirmIn, PasswordResetIn
from services.console import auth_pages, web
from services.console.recent_factor import recently_verified
from services.errors import N_

router = APIRouter(include_in_schema=False)
SENT = ("If {email} belongs to someone who has joined {workspace}, a reset link is on its "
        "way to that address. It works once, within the hour; only the newest link works.")


@router.get("/forgot-password")
def forgot_page(request: Request, workspace: Annotated[str, Query(max_length=320)] = "",
                ) -> Response:
    return web.render(request, "forgot_password.html", {
        "title": N_("Reset your password"), "workspace": workspace})


@router.post("/forgot-password")
def forgot_submit(request: Request, form: web.PreSessionForm, session: DB,
                  ip: Annotated[str, Depends(client_ip)]) -> Response:
    """Says the same whatever the address: which ones exist is nobody's business here."""
    with web.form_errors(session) as problem:
        body = PasswordResetIn.model_validate(form)
        password_reset.request(body.workspace, body.email, ip, session)
        return web.render(request, "forgot_password.html", {
            "title": N_("Check your email"), "workspace": body.workspace, "sent": True,
            "notice": SENT.format(email=body.email, workspace=body.workspace)})
    return web.render(request, "forgot_password.html", {
        "title": N_("Reset your password"), "workspace": form.get("workspace", "")[:320],
        "email": form.get("email", "")[:320], "error": problem.message}, status_code=400)


@router.get("/reset-password")
def reset_page(request: Request, session: DB,
               token: Annotated[str, Query(max_length=200)] = "") -> Response:
    """The link is checked first: a used, expired or voided one is said so, with no form."""
    state = password_reset.state(session, token)
    return _reset_form(request, token, None if state == "usable"
                       else password_reset.REFUSALS[state])


@router.post("/reset-password")
def reset_submit(request: Request, form: web.PreSessionForm, session: DB) -> Response:
    with web.form_errors(session, labels={"password": "New password"}) as problem:
        body = PasswordResetConfirmIn.model_validate(form)
        signed = password_reset.confirm(session, body.token, body.password)
        return auth_pages.after_first_factor(request, session, signed, "/")
    token = form.get("token", "")[:200]
    refused = password_reset.state(session, token) != "usable"
    return _reset_form(request, token, problem.message, refused=refused)


def _reset_form(request: Request, token: str, error: str | None,
                refused: bool | None = None) -> Response:
    refused = error is not None if refused is None else refused
    title = "This reset link cannot be used" if refused else "Choose a new password"
    return web.render(request, "reset_password.html", {
        "title": title, "token": token, "error": error,
        "refused": refused}, status_code=400 if error else 200)


BACK = "/settings/password"


@router.get("/settings/password")
def password_page(request: Request, caller: web.FullCaller, changed: str = "") -> Response:
    notice = N_("Your password is changed. Your other sessions have ended.") if changed else None
    return _password_page(request, caller, notice=notice)


@router.post("/settings/password", dependencies=[recently_verified(BACK)])
def change_password(request: Request, form: web.Form, caller: web.FullCaller,
                    session: DB) -> Response:
    with web.form_errors(session) as problem:
        body = PasswordChangeIn.model_validate(form)
        password_change.change(session, caller, body.current_password, body.new_password)
        return web.redirect(BACK + "?changed=1")
    return _password_page(request, caller, error=problem.message)


def _password_page(request: Request, caller: web.FullCaller, error: str | None = None,
                   notice: str | None = None) -> Response:
    return web.render(request, "password.html", {
        "title": N_("Password"), "error": error, "notice": notice},
        status_code=400 if error else 200, caller=caller)
