"""Settings → Team: Authentication (/admin/authentication) and Teammates (/admin/teammates)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from services.accounts import teammates
from services.api.deps import DB
from services.api.schemas import MAX_ID, PolicyIn, TeammateIn
from services.console import web
from services.policy import service as policy
from services.verification import service as verification

router = APIRouter(prefix="/admin", include_in_schema=False)
TeammateId = Annotated[int, Path(ge=1, le=MAX_ID)]
PAGE_SIZE = 50

NOTICES = {
    "saved": "Saved.",
    "invited": "Invitation sent to {email}.",
    "resent": "Invitation sent again to {email}.",
    "disabled": "Two-factor authentication is off for {email}; they will set it up again "
    "when they next sign in.",
}


@router.get("/authentication")
def authentication_page(request: Request, caller: web.AdminCaller, session: DB,
                        saved: str = "") -> Response:
    return _authentication(request, caller, session, notice=NOTICES["saved"] if saved else None)


@router.post("/authentication")
def authentication_save(request: Request, form: web.Form, caller: web.AdminCaller,
                        session: DB) -> Response:
    with web.form_errors(session) as problem:
        body = PolicyIn(require_two_factor=form.get("require_two_factor") == "on")
        policy.set_policy(session, caller.workspace, body.require_two_factor, caller.teammate.id)
        return web.redirect("/admin/authentication?saved=1")
    return _authentication(request, caller, session, error=problem.message)


@router.get("/authentication/rollout.json")
def rollout_json(caller: web.AdminCaller, session: DB) -> dict[str, object]:
    """What the page's script polls: the same body as GET /v1/…/two-factor-policy."""
    return policy.as_dict(session, caller.workspace, policy.rollout(session, caller.workspace))


def _authentication(request: Request, caller: web.AdminCaller, session: DB,
                    error: str | None = None, notice: str | None = None) -> Response:
    state = policy.as_dict(session, caller.workspace, policy.rollout(session, caller.workspace))
    return web.render(request, "authentication.html", {
        "title": "Authentication", "policy": state, "error": error, "notice": notice,
    }, status_code=400 if error else 200, caller=caller)


@router.get("/teammates")
def teammates_page(request: Request, caller: web.AdminCaller, session: DB,
                   after: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
                   notice: str = "", teammate: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
                   ) -> Response:
    message = None
    if notice in NOTICES and teammate:
        with web.or_not_found():
            email = teammates.get(session, caller.workspace, teammate).email
        message = NOTICES[notice].format(email=email)
    return _teammates(request, caller, session, after, notice=message)


@router.post("/teammates")
def invite(request: Request, form: web.Form, caller: web.AdminCaller, session: DB) -> Response:
    with web.form_errors(session) as problem:
        body = TeammateIn.model_validate(form)
        added = teammates.add(session, caller.workspace, body.email, body.name, body.role)
        session.flush()
        return web.redirect(f"/admin/teammates?notice=invited&teammate={added.id}")
    return _teammates(request, caller, session, None, error=problem.message, invite=form)


@router.get("/teammates/{teammate_id}/disable-2fa")
def disable_confirm(request: Request, teammate_id: TeammateId, caller: web.AdminCaller,
                    session: DB) -> Response:
    """The confirm step before an admin turns a teammate's 2FA off."""
    with web.or_not_found():
        target = teammates.get(session, caller.workspace, teammate_id)
    return web.render(request, "disable_confirm.html", {
        "title": "Disable 2FA", "target": target}, caller=caller)


@router.post("/teammates/{teammate_id}/disable-2fa")
def disable(request: Request, teammate_id: TeammateId, form: web.Form,
            caller: web.AdminCaller, session: DB) -> Response:
    with web.form_errors(session) as problem:
        target = teammates.get(session, caller.workspace, teammate_id)
        verification.admin_reset(session, caller.workspace, target, caller.teammate)
        return web.redirect(f"/admin/teammates?notice=disabled&teammate={teammate_id}")
    return _teammates(request, caller, session, None, error=problem.message)


@router.post("/teammates/{teammate_id}/resend")
def resend(request: Request, teammate_id: TeammateId, form: web.Form,
           caller: web.AdminCaller, session: DB) -> Response:
    with web.form_errors(session) as problem:
        target = teammates.get(session, caller.workspace, teammate_id)
        teammates.resend_invitation(session, caller.workspace, target)
        return web.redirect(f"/admin/teammates?notice=resent&teammate={teammate_id}")
    return _teammates(request, caller, session, None, error=problem.message)


def _teammates(request: Request, caller: web.AdminCaller, session: DB, after: int | None,
               error: str | None = None, notice: str | None = None,
               invite: dict[str, str] | None = None) -> Response:
    views, next_id = teammates.page(session, caller.workspace, PAGE_SIZE, after)
    return web.render(request, "teammates.html", {
        "title": "Teammates", "views": views, "next_id": next_id, "after": after,
        "error": error, "notice": notice, "invite": invite or {},
    }, status_code=400 if error else 200, caller=caller)
