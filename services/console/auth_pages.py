"""Signing in and out: /login (password, then code), /enroll, /join, /logout and GET /."""

from __future__ import annotations

import json
from contextlib import suppress
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.orm import Session

from services.accounts import login as login_service
from services.accounts import preferences, sessions, teammates
from services.accounts.passwords import MIN_LENGTH
from services.api.deps import DB, client_ip
from services.api.schemas import AcceptIn, LoginIn, TwoFactorIn
from services.console import web
from services.errors import N_, Unauthenticated
from services.verification import service as verification
from services.verification import webauthn_sign_in

router = APIRouter(include_in_schema=False)


@router.get("/")
def home(request: Request, caller: web.FullCaller) -> Response:
    return web.render(request, "home.html", {"title": N_("Home")}, caller=caller)


@router.get("/login")
def login_page(request: Request, workspace: str = "", next: str = "/",
               signed_out: str = "") -> Response:
    return web.render(request, "login.html", {
        "title": N_("Sign in"), "workspace": workspace[:320], "next": web.safe_next(next),
        "notice": N_("You are signed out.") if signed_out else None})


@router.get("/enroll")
def enroll_page(request: Request, workspace: str = "") -> Response:
    """The invitation's link: sign-in with the workspace filled in, then enrollment."""
    return web.render(request, "login.html", {
        "title": N_("Sign in to set up two-factor authentication"), "workspace": workspace[:320],
        "next": "/settings/two-factor", "enrolling": True})


@router.post("/login")
def login_submit(request: Request, form: web.PreSessionForm, session: DB,
                 ip: Annotated[str, Depends(client_ip)]) -> Response:
    after = web.safe_next(form.get("next"))
    with web.form_errors(session) as problem:
        body = LoginIn.model_validate(form)
        signed = login_service.login(session, body.workspace, body.email, body.password, ip)
        if signed.token:
            remember_browser_zone(session, signed.token, form)
        return after_first_factor(request, session, signed, after)
    return web.render(request, "login.html", {
        "title": N_("Sign in"), "workspace": form.get("workspace", "")[:320],
        "email": form.get("email", "")[:320], "next": after, "error": problem.message,
    }, status_code=400)


@router.post("/login/code")
def code_submit(request: Request, form: web.PreSessionForm, session: DB) -> Response:
    after = web.safe_next(form.get("next"))
    with web.form_errors(session) as problem:
        body = TwoFactorIn.model_validate(form)
        token = verification.verify_challenge(session, body.challenge, body.code or "")
        if sessions.authenticate(session, token).auth.factor == "bypass":
            after = "/settings/two-factor"  # a lost device: set up the new phone first
        remember_browser_zone(session, token, form)
        return signed_in(token, after)
    return code_step(request, session, form.get("challenge", ""), after, problem.message)


@router.get("/join")
def join_page(request: Request, session: DB,
              token: Annotated[str, Query(max_length=200)] = "") -> Response:
    """The link is checked first: a used, expired or unknown one is said so, with no form."""
    return _join(request, teammates.join_link(session, token), token)


@router.post("/join")
def join_submit(request: Request, form: web.PreSessionForm, session: DB) -> Response:
    with web.form_errors(session) as problem:
        body = AcceptIn.model_validate(form)
        signed = teammates.accept(session, body.token, body.password, body.name)
        after = "/"
        if signed.token and sessions.authenticate(session, signed.token).workspace.require_two_factor:
            after = "/settings/two-factor"  # required (even within a grace period): set it up now
        return after_first_factor(request, session, signed, after)
    token = form.get("token", "")[:200]
    link = teammates.join_link(session, token)
    return _join(request, link, token, name=form.get("name", "")[:200],
                 error=None if link.state != "usable" else problem.message)


def _join(request: Request, link: teammates.JoinLink, token: str, name: str | None = None,
          error: web.Words | str | None = None) -> Response:
    joining = link.teammate if link.state == "usable" else None
    if name is None and joining is not None and joining.name != joining.email:
        name = joining.name  # the name the admin typed in, to keep or correct
    title = web.Words(N_("Join {workspace}"), {"workspace": link.workspace.name}) \
        if joining and link.workspace else N_("This invitation link cannot be used")
    status = 200 if joining and not error else 400  # as the reset page answers a spent link
    return web.render(request, "join.html", {
        "title": title, "token": token, "link": link, "name": name or "", "error": error,
        "min_length": MIN_LENGTH}, status_code=status)


@router.post("/logout")
def logout(request: Request, form: web.Form, session: DB) -> Response:
    token = web.session_token(request)
    if token:
        with suppress(Unauthenticated):  # ended already: signing out again is fine
            sessions.end(session, sessions.authenticate(session, token).auth)
    response = web.redirect("/login?signed_out=1")
    web.delete_cookie(response, web.SESSION_COOKIE)
    web.delete_cookie(response, web.PRESESSION_COOKIE)  # the sign-in form gets a new token
    return response


def after_first_factor(request: Request, session: Session, signed: sessions.SignIn,
                       after: str) -> Response:
    """Where a passed password leads (sign-in, join, a reset link): the code step, setup,
    or `after`."""
    if signed.status == "two_factor_required":
        assert signed.challenge is not None
        return code_step(request, session, signed.challenge, after)
    assert signed.token is not None
    if signed.status == "enrollment_required":
        return signed_in(signed.token, "/settings/two-factor")
    return signed_in(signed.token, after)


def code_step(request: Request, session: Session, challenge: str, after: str,
              error: str | None = None) -> Response:
    """The second step; with a security key, `Use a security key` gets its request options."""
    step = webauthn_sign_in.second_step(session, challenge)
    return web.render(request, "login_code.html", {
        "title": N_("Enter your code"), "challenge": challenge, "next": after, "error": error,
        "webauthn": json.dumps(step.webauthn) if step.webauthn else None,
    }, status_code=400 if error else 200)


def remember_browser_zone(session: Session, token: str, form: dict[str, str]) -> None:
    """The zone the sign-in page's script read from the browser (a hidden field), kept for
    the teammate's emails and pages only while they have none."""
    teammate = sessions.authenticate(session, token).teammate
    preferences.browser_zone(session, teammate.id, form.get("time_zone", "")[:64])


def signed_in(token: str, after: str) -> Response:
    response = web.redirect(after)
    web.set_cookie(response, web.SESSION_COOKIE, token)
    # Forms now carry the session's token; the pre-session one is done with.
    web.delete_cookie(response, web.PRESESSION_COOKIE)
    return response
