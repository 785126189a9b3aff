"""Settings → Team → Authentication (/admin/authentication): the requirement, its grace
period and deadline, who would be held, and the rollout as it goes."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request, Response

from services import clock
from services.accounts import teammates
from services.api.deps import DB
from services.api.routes.admin import PolicyOut
from services.api.schemas import PolicyIn
from services.console import web
from services.console.recent_factor import loosens_or_switches_methods, recently_verified
from services.enrollment import reminders
from services.errors import N_, InvalidInput
from services.policy import service as policy

router = APIRouter(prefix="/admin", include_in_schema=False)
PREVIEW_NAMES = 10  # the first names of who would be held; the Teammates page lists them all


# What the page says after a save, by what changed (?saved=…).
SAVED = {
    "on": N_("2FA is now required. Invitations are going out to everyone without it."),
    "off": N_("2FA is no longer required. Nobody was emailed."),
    "grace": N_("The grace period is saved; nobody was emailed."),
    "same": N_("Nothing changed."),
    "methods": N_("The allowed methods are saved. While 2FA is required, everyone without a "
                  "method that counts now gets an email."),
}


@router.get("/authentication")
def authentication_page(request: Request, caller: web.AdminCaller, session: DB,
                        saved: str = "") -> Response:
    return _authentication(request, caller, session, notice=SAVED.get(saved))


@router.post("/authentication", dependencies=[
    recently_verified("/admin/authentication", when=loosens_or_switches_methods)])
def authentication_save(request: Request, form: web.Form, caller: web.AdminCaller,
                        session: DB) -> Response:
    workspace = caller.workspace
    with web.form_errors(session) as problem:
        body = PolicyIn.model_validate({
            "require_two_factor": form.get("require_two_factor") == "on",
            "grace_period_hours": _whole_hours(form.get("grace_period_hours", "")),
            "allowed_methods": form.get("allowed_methods") or None})
        flips = body.require_two_factor != workspace.require_two_factor
        switches = body.allowed_methods not in (None, workspace.allowed_methods)
        if (flips or switches) and form.get("confirmed") != "1":  # mass email: say it first
            policy.check_change(session, workspace, bool(body.require_two_factor),
                                caller.teammate.id, body.allowed_methods)
            return _confirm(request, caller, session, body)
        grace_before = workspace.grace_period_hours
        policy.set_policy(session, workspace, body.require_two_factor, caller.teammate.id,
                          grace_period_hours=body.grace_period_hours,
                          allowed_methods=body.allowed_methods)
        saved = ("on" if body.require_two_factor else "off") if flips else "methods" if switches \
            else ("grace" if workspace.grace_period_hours != grace_before else "same")
        return web.redirect(f"/admin/authentication?saved={saved}")
    return _authentication(request, caller, session, error=problem.message)


def _confirm(request: Request, caller: web.AdminCaller, session: DB, body: PolicyIn) -> Response:
    """The confirm step before turning the requirement on or off: who gets an email, by
    when they must act, and what turning it off and on again would do."""
    workspace = caller.workspace
    grace = (body.grace_period_hours if body.grace_period_hours is not None
             else workspace.grace_period_hours)
    deadline = clock.now() + timedelta(hours=grace) if grace else None
    switching = body.allowed_methods not in (None, workspace.allowed_methods) and \
        body.require_two_factor == workspace.require_two_factor
    title = (N_("Allow only security keys and passkeys?") if body.allowed_methods == "security_keys"
             else N_("Allow any second factor?")) if switching else \
        N_("Require 2FA?") if body.require_two_factor else N_("Stop requiring 2FA?")
    return web.render(request, "authentication_confirm.html", {
        "title": title, "turning_on": body.require_two_factor, "grace": grace,
        "switching": switching, "allowed_methods": body.allowed_methods or workspace.allowed_methods,
        "deadline": web.time_words(request, caller)(deadline) if deadline else None,
        "impact": policy.preview(session, workspace, body.allowed_methods)}, caller=caller)


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
        "title": N_("Authentication"), "policy": state, "error": error, "notice": notice,
        "enforce_at": workspace.enforce_at if workspace.require_two_factor else None,
        "methods_enforce_at": workspace.methods_enforce_at if workspace.require_two_factor else None,
        # Reminders already sent are history, not plans.
        "reminders": [due for due in reminders.due_times(session, workspace) if due > clock.now()],
        "enforced": workspace.require_two_factor and (
            workspace.enforce_at is None or workspace.enforce_at <= clock.now()),
        "words": web.time_words(request, caller),
        "impact": impact, "held": held,
    }, status_code=400 if error else 200, caller=caller)


