"""Settings → Team → Teammates (/admin/teammates): the table, its filters and export, and
what an admin does to one teammate (invite, resend, disable 2FA, exempt, bypass code, role,
remove)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from services import clock, holding
from services.accounts import teammates, teammates_export
from services.api.deps import DB
from services.api.routes.exemptions import ExemptionIn
from services.api.schemas import MAX_ID, TeammateIn
from services.console import web
from services.console.recent_factor import makes_admin, recently_verified
from services.console.teammates_list import Shown, back_to
from services.enrollment import exemptions, state
from services.errors import N_, InvalidInput
from services.i18n import dates
from services.models import Teammate
from services.verification import service as verification

router = APIRouter(prefix="/admin", include_in_schema=False)
TeammateId = Annotated[int, Path(ge=1, le=MAX_ID)]
PAGE_SIZE = 50
BACK = "/admin/teammates"  # where a sensitive action comes back to after /reauthenticate

NOTICES = {
    "invited": N_("Invitation sent to {email}."),
    "resent": N_("Invitation sent again to {email}."),
    "disabled": N_("Two-factor authentication is off for {email}. They were emailed to set it "
                   "up again, and the next time they sign in they must set it up before "
                   "anything else."),
    "disabled_grace": N_("Two-factor authentication is off for {email}. They were emailed to "
                         "set it up again by {deadline}; until then they sign in as usual, "
                         "and after it signing in only lets them set it up."),
    "disabled_optional": N_("Two-factor authentication is off for {email}; they sign in with "
                            "their password alone until they turn it on again."),
    "exempted": N_("{email} is exempt from two-factor authentication until the date you chose."),
    "exemption_ended": N_("{email} is no longer exempt from two-factor authentication."),
    "role": N_("{email} has a new role."),
}


@router.get("/teammates")
def teammates_page(request: Request, caller: web.AdminCaller, session: DB,
                   after: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
                   before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
                   notice: str = "", teammate: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
                   two_factor: str = "", enrollment: str = "",
                   q: Annotated[str, Query(max_length=200)] = "") -> Response:
    message: web.Words | None = None
    if notice == "removed" and teammate:  # no longer listed, but still in the audit trail
        gone = session.get(Teammate, teammate)
        if gone is not None and gone.workspace_id == caller.workspace.id:
            message = web.Words(N_("{email} was removed: signed out everywhere, nothing more "
                                   "is sent."), {"email": gone.email})
    elif notice in NOTICES and teammate:
        message = _notice(request, session, caller, notice,
                          _teammate(session, caller, teammate))
    shown = Shown.of(two_factor, enrollment, q, after, before)
    if (shown.two_factor, shown.enrollment) != (two_factor, enrollment):
        message = web.Words(N_("Unknown filter value: that filter is not applied."), {})
    return _teammates(request, caller, session, notice=message, shown=shown)


def _notice(request: Request, session: DB, caller: web.AdminCaller, notice: str,
            target: Teammate) -> web.Words:
    """What an action did, in words; turning 2FA off says when they must set it up again."""
    if notice == "disabled":
        deadline = holding.held_from(target, caller.workspace)
        if deadline is not None:
            return web.Words(NOTICES["disabled_grace"], {
                "email": target.email, "deadline": web.time_words(request, caller)(deadline)})
    return web.Words(NOTICES[notice], {"email": target.email})


@router.post("/teammates")
def invite(request: Request, form: web.Form, caller: web.AdminCaller, session: DB) -> Response:
    with web.form_errors(session) as problem:
        body = TeammateIn.model_validate(form)
        added = teammates.add(session, caller.workspace, body.email, body.name, body.role,
                              actor_id=caller.teammate.id)
        session.flush()
        return back_to(form, "invited", added.id)
    return _teammates(request, caller, session, error=problem.message, invite=form,
                      shown=Shown.back(form))


@router.get("/teammates/{teammate_id}/disable-2fa")
def disable_confirm(request: Request, teammate_id: TeammateId, caller: web.AdminCaller,
                    session: DB, back: Annotated[str, Query(max_length=1000)] = "") -> Response:
    """The confirm step before an admin turns a teammate's 2FA off: what happens next."""
    target = _teammate(session, caller, teammate_id)
    return web.render(request, "disable_confirm.html", {
        "title": N_("Disable 2FA"), "target": target, "shown": Shown.back({"back": back}),
        "deadline": _after_reset(request, caller, target)}, caller=caller)


def _after_reset(request: Request, caller: web.AdminCaller, target: Teammate) -> str | None:
    """When a teammate whose 2FA is turned off now must have set it up again (None: at once,
    or never while 2FA is not required)."""
    workspace = caller.workspace
    if not workspace.require_two_factor or holding.is_enforced_for(target, workspace):
        return None
    ends = [when for when in (workspace.enforce_at, target.exempt_until) if when is not None]
    return web.time_words(request, caller)(max(ends)) if ends else None


@router.post("/teammates/{teammate_id}/disable-2fa", dependencies=[recently_verified(BACK)])
def disable(request: Request, teammate_id: TeammateId, form: web.Form,
            caller: web.AdminCaller, session: DB) -> Response:
    with web.form_errors(session) as problem:
        target = teammates.get(session, caller.workspace, teammate_id)
        verification.admin_reset(session, caller.workspace, target, caller.teammate)
        notice = "disabled" if caller.workspace.require_two_factor else "disabled_optional"
        return back_to(form, notice, teammate_id)
    return _teammates(request, caller, session, error=problem.message, shown=Shown.back(form))


@router.post("/teammates/{teammate_id}/resend")
def resend(request: Request, teammate_id: TeammateId, form: web.Form,
           caller: web.AdminCaller, session: DB) -> Response:
    with web.form_errors(session) as problem:
        target = teammates.get(session, caller.workspace, teammate_id)
        teammates.resend_invitation(session, caller.workspace, target)
        return back_to(form, "resent", teammate_id)
    return _teammates(request, caller, session, error=problem.message, shown=Shown.back(form))


def _teammate(session: DB, caller: web.AdminCaller, teammate_id: int) -> Teammate:
    """A teammate of the caller's workspace, or the 404 page."""
    with web.or_not_found():
        return teammates.get(session, caller.workspace, teammate_id)


def _teammates(request: Request, caller: web.AdminCaller, session: DB,
               error: object = None, notice: web.Words | str | None = None,
               invite: dict[str, str] | None = None, shown: Shown | None = None) -> Response:
    shown = shown or Shown()
    workspace, filters = caller.workspace, shown.filters()
    views, next_id = teammates.page(session, workspace, PAGE_SIZE, shown.after, filters,
                                    before_id=shown.before)
    first = views[0].teammate.id if views else None
    earlier = teammates.count(session, workspace, filters, below_id=first) if first else 0
    return web.render(request, "teammates.html", {
        "title": N_("Teammates"), "views": views, "next_id": next_id, "error": error,
        "notice": notice, "invite": invite or {}, "shown": shown, "wide": True,
        "total": teammates.count(session, workspace, filters), "earlier": earlier,
        "prev_id": first if earlier else None, "filtered": bool(shown.query()),
        "states": state.STATES, "words": web.time_words(request, caller),
    }, status_code=400 if error else 200, caller=caller)


@router.get("/teammates/export.csv")
def export_csv(caller: web.AdminCaller, two_factor: str = "", enrollment: str = "",
               q: Annotated[str, Query(max_length=200)] = "") -> StreamingResponse:
    """The table as CSV, with the filters it shows (unknown values are not applied)."""
    shown = Shown.of(two_factor, enrollment, q)
    workspace = caller.workspace
    return StreamingResponse(
        teammates_export.rows(workspace.id, shown.filters()), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{teammates_export.filename(workspace)}"'})


@router.post("/teammates/{teammate_id}/role",
             dependencies=[recently_verified(BACK, when=makes_admin)])
def change_role(request: Request, teammate_id: TeammateId, form: web.Form,
                caller: web.AdminCaller, session: DB) -> Response:
    target = _teammate(session, caller, teammate_id)
    with web.form_errors(session) as problem:
        teammates.change_role(session, caller.workspace, target, form.get("role", ""),
                              caller.teammate)
        return back_to(form, "role", teammate_id)
    return _teammates(request, caller, session, error=problem.message, shown=Shown.back(form))


@router.get("/teammates/{teammate_id}/remove")
def remove_confirm(request: Request, teammate_id: TeammateId, caller: web.AdminCaller,
                   session: DB, back: Annotated[str, Query(max_length=1000)] = "") -> Response:
    """The confirm step before an admin removes a teammate."""
    target = _teammate(session, caller, teammate_id)
    return web.render(request, "remove_confirm.html", {
        "title": N_("Remove teammate"), "target": target, "shown": Shown.back({"back": back})},
        caller=caller)


@router.post("/teammates/{teammate_id}/remove")
def remove(request: Request, teammate_id: TeammateId, form: web.Form, caller: web.AdminCaller,
           session: DB) -> Response:
    target = _teammate(session, caller, teammate_id)
    with web.form_errors(session) as problem:
        teammates.remove(session, caller.workspace, target, caller.teammate)
        return back_to(form, "removed", teammate_id)
    return _teammates(request, caller, session, error=problem.message, shown=Shown.back(form))


@router.get("/teammates/{teammate_id}/exemption")
def exemption_page(request: Request, teammate_id: TeammateId, caller: web.AdminCaller,
                   session: DB, back: Annotated[str, Query(max_length=1000)] = "") -> Response:
    target = _teammate(session, caller, teammate_id)
    return _exemption(request, caller, target, form={"back": back})


def _exemption(request: Request, caller: web.AdminCaller, target: Teammate,
               error: str | None = None, form: dict[str, str] | None = None) -> Response:
    today = clock.now().date()
    return web.render(request, "exemption.html", {
        "title": N_("Exempt from 2FA"), "target": target, "error": error, "form": form or {},
        "shown": Shown.back(form or {}),
        "first_day": today.isoformat(),
        "last_day": (today + timedelta(days=exemptions.MAX_DAYS - 1)).isoformat(),
    }, status_code=400 if error else 200, caller=caller)


@router.post("/teammates/{teammate_id}/exemption")
def exempt(request: Request, teammate_id: TeammateId, form: web.Form, caller: web.AdminCaller,
           session: DB) -> Response:
    target = _teammate(session, caller, teammate_id)
    with web.form_errors(session) as problem:
        until = _end_of_day(form.get("until", ""))
        reason = form.get("reason", "").strip()
        if not reason:
            raise InvalidInput("Give a reason: it goes into the audit log.")
        # The API's own checks (no control characters: PostgreSQL refuses a NUL in text).
        body = ExemptionIn.model_validate({"until": until.isoformat(), "reason": reason[:500]})
        exemptions.grant(session, caller.workspace, target, body.until, body.reason,
                         caller.teammate)
        return back_to(form, "exempted", teammate_id)
    return _exemption(request, caller, target, error=problem.message, form=form)


def _end_of_day(text: str) -> datetime:
    """A date picked on the page means "through that day" (UTC)."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput("Pick the last day of the exemption.") from None
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)


@router.post("/teammates/{teammate_id}/end-exemption")
def end_exemption(request: Request, teammate_id: TeammateId, form: web.Form,
                  caller: web.AdminCaller, session: DB) -> Response:
    target = _teammate(session, caller, teammate_id)
    exemptions.end(session, caller.workspace, target, caller.teammate)
    return back_to(form, "exemption_ended", teammate_id)


@router.post("/teammates/{teammate_id}/bypass-code", dependencies=[recently_verified(BACK)])
def bypass_code(request: Request, teammate_id: TeammateId, form: web.Form,
                caller: web.AdminCaller, session: DB) -> Response:
    target = _teammate(session, caller, teammate_id)
    with web.form_errors(session) as problem:
        code, expires_at = verification.issue_bypass_code(session, caller.workspace, target,
                                                          caller.teammate)
        response = web.render(request, "bypass_code.html", {
            "title": N_("Bypass code"), "target": target, "code": code, "shown": Shown.back(form),
            "expires": dates.moment(expires_at, web.page_locale(request, caller),
                                    caller.teammate.time_zone)}, caller=caller)
        response.headers["Cache-Control"] = "no-store"  # shown once, never kept by a cache
        return response
    return _teammates(request, caller, session, error=problem.message, shown=Shown.back(form))
