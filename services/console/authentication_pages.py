"""Settings → Team → Authentication (/admin/authentication): the requirement, its grace
period and deadline, who would be held, and the rollout as it goes."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from services.accounts import teammates
from services.api.deps import DB
from services.api.routes.admin import PolicyOut
from services.api.schemas import PolicyIn
from services.console import web
from services.enrollment import reminders
from services.errors import InvalidInput
from services.policy import service as policy
from services.timestamps import in_words

router = APIRouter(prefix="/admin", include_in_schema=False)
PREVIEW_NAMES = 10  # the first names of who would be held; the Teammates page lists them all


@router.get("/authentication")
def authentication_page(request: Request, caller: web.AdminCaller, session: DB,
                        saved: str = "") -> Response:
    return _authentication(request, caller, session, notice="Saved." if saved else None)


@router.post("/authentication")
def authentication_save(request: Request, form: web.Form, caller: web.AdminCaller,
                        session: DB) -> Response:
    with web.form_errors(session) as problem:
        body = PolicyIn.model_validate({
            "require_two_factor": form.get("require_two_factor") == "on",
            "grace_period_hours": _whole_hours(form.get("grace_period_hours", "")),
            "allowed_methods": form.get("allowed_methods") or None})
        policy.set_policy(session, caller.workspace, body.require_two_factor, caller.teammate.id,
                          grace_period_hours=body.grace_period_hours,
                          allowed_methods=body.allowed_methods)
        return web.redirect("/admin/authentication?saved=1")
    return _authentication(request, caller, session, error=problem.message)


def _whole_hours(text: str) -> int | None:
    """An emptied field leaves the grace period as it is (it never enforces by surprise)."""
    if not text.strip():
        return None
    try:
        return int(text.strip())
    except ValueError:
        raise InvalidInput("The grace period is a whole number of hours, 0 to 2160.") from None


@router.get("/authentication/rollout.json")
def rollout_json(caller: web.AdminCaller, session: DB) -> PolicyOut:
    """What the page's script polls: the same body as GET /v1/…/two-factor-policy."""
    return PolicyOut.of(session, caller.workspace)


def _authentication(request: Request, caller: web.AdminCaller, session: DB,
                    error: str | None = None, notice: str | None = None) -> Response:
    workspace = caller.workspace
    state = PolicyOut.of(session, workspace).model_dump(mode="json")
    impact = policy.preview(session, workspace)
    held, _ = teammates.page(session, workspace, PREVIEW_NAMES, None,
                             teammates.Filters(would_be_held=True))
    return web.render(request, "authentication.html", {
        "title": "Authentication", "policy": state, "error": error, "notice": notice,
        "enforce_at": workspace.enforce_at if workspace.require_two_factor else None,
        "methods_enforce_at": workspace.methods_enforce_at if workspace.require_two_factor else None,
        "reminders": reminders.due_times(session, workspace), "words": in_words,
        "impact": impact, "held": held,
    }, status_code=400 if error else 200, caller=caller)


