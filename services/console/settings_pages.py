"""Settings → User (/settings/two-factor): set up 2FA, recovery codes, turn it off."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request, Response

from services.accounts import sessions
from services.api.deps import DB
from services.api.schemas import CodeIn, MaybeCodeIn
from services.console import web
from services.console.recent_factor import recently_verified
from services.errors import N_
from services.verification import qr, recovery
from services.verification import service as verification
from services.verification import webauthn as keys

router = APIRouter(prefix="/settings/two-factor", include_in_schema=False)


@router.get("")
def two_factor_page(request: Request, caller: web.AnyCaller, session: DB,
                    turned_off: str = "", key_added: str = "", key_removed: str = "",
                    app_added: str = "") -> Response:
    notice = (N_("Two-factor authentication is off.") if turned_off
              else N_("Security key added.") if key_added
              else N_("Authenticator app added.") if app_added
              else N_("Security key removed.") if key_removed else None)
    return page(request, caller, session, notice=notice)


@router.get("/qr.png")
def qr_code(caller: web.AnyCaller) -> Response:
    """The QR code of the setup in progress, for this browser's session only."""
    uri = verification.pending_uri(caller.teammate, caller.workspace, caller.auth)
    return Response(qr.png(uri), media_type="image/png", headers=web.HEADERS)


@router.post("/confirm")
def confirm(request: Request, form: web.Form, caller: web.AnyCaller, session: DB) -> Response:
    with web.form_errors(session) as problem:
        # The browser's own session lives on; every other session of the teammate ends.
        first = not caller.teammate.two_factor_enabled
        codes = verification.confirm(session, caller.teammate, CodeIn.model_validate(form).code,
                                     current=caller.auth)
        if not codes:  # an app beside keys: the recovery codes stay as they were
            return web.redirect("/settings/two-factor?app_added=1")
        # Its level rose: it goes on under a new token, and the old one ends, so a token
        # seen before the second factor (a shared computer, a log) is worth nothing after.
        web.use_renewed_session(request, sessions.renew(session, caller.auth))
        return codes_page(request, caller, codes, first=first)
    return page(request, caller, session, error=problem.message)


BACK = "/settings/two-factor"


@router.post("/replace", dependencies=[recently_verified(BACK, "new_method", takes_code=True)])
def replace(request: Request, form: web.Form, caller: web.AnyCaller, session: DB) -> Response:
    """A new phone: a code of the current app (or a recovery code) starts a new pending
    secret; the old app keeps working until the new one's code confirms it."""
    with web.form_errors(session) as problem:
        code = form.get("code", "").strip() or None
        body = MaybeCodeIn.model_validate({"code": code} if code else {})
        verification.replace(session, caller.teammate, caller.workspace, body.code,
                             current=caller.auth)
        return web.redirect("/settings/two-factor#new-phone")
    return page(request, caller, session, error=problem.message, failed="replace")


@router.post("/recovery-codes", dependencies=[recently_verified(BACK, takes_code=True)])
def regenerate(request: Request, form: web.Form, caller: web.AnyCaller, session: DB) -> Response:
    with web.form_errors(session) as problem:
        codes = verification.regenerate_recovery_codes(
            session, caller.teammate, _code(form), current=caller.auth)
        return codes_page(request, caller, codes, first=False)
    return page(request, caller, session, error=problem.message, failed="regenerate")


@router.post("/disable", dependencies=[recently_verified(BACK, takes_code=True)])
def disable(request: Request, form: web.Form, caller: web.AnyCaller, session: DB) -> Response:
    with web.form_errors(session) as problem:
        verification.disable_own(session, caller.teammate, caller.workspace, _code(form),
                                 current=caller.auth)
        return web.redirect("/settings/two-factor?turned_off=1")
    return page(request, caller, session, error=problem.message, failed="disable")


def _code(form: dict[str, str]) -> str | None:
    """The form's code, if one was typed (a recently verified session may leave it out)."""
    code = form.get("code", "").strip()
    return MaybeCodeIn.model_validate({"code": code} if code else {}).code


def page(request: Request, caller: sessions.Authenticated, session: DB,
          error: str | None = None, notice: str | None = None,
          failed: str = "confirm") -> Response:
    teammate, workspace = caller.teammate, caller.workspace
    context: dict[str, object] = {
        "title": N_("Two-factor authentication"), "error": error, "notice": notice,
        "failed": failed, "required": workspace.require_two_factor,
        "enrollment_level": caller.level != "full",
    }
    context["keys"] = keys.credentials(session, teammate)
    if teammate.two_factor_enabled:
        context["codes_left"] = recovery.remaining(session, teammate.id)
        context["bypassed"] = verification.opened_with_fresh_bypass(caller.auth)
        if teammate.totp_enabled_at is None:  # keys only: an app may be added beside them
            context.update(_secret(_pending_uri(session, caller)))
        elif verification.has_pending(teammate, caller.auth):  # this session's new phone
            uri = verification.pending_uri(teammate, workspace, caller.auth)
            context.update(_secret(uri, "new_"))
    else:
        context.update(_secret(_pending_uri(session, caller)))
    return web.render(request, "two_factor.html", context,
                      status_code=400 if error else 200, caller=caller)


def _pending_uri(session: DB, caller: sessions.Authenticated) -> str:
    """The setup in progress, started on first visit and kept across reloads, so the QR code
    a phone already scanned stays the one that counts."""
    if not verification.has_pending(caller.teammate, caller.auth):
        return verification.setup(session, caller.teammate, caller.workspace).otpauth_uri
    return verification.pending_uri(caller.teammate, caller.workspace, caller.auth)


def _secret(uri: str, prefix: str = "") -> dict[str, str]:
    """The secret as text and the key URI itself: a phone cannot scan its own screen, so
    the page links the URI for the authenticator app on the same phone to open."""
    return {f"{prefix}secret": parse_qs(urlsplit(uri).query)["secret"][0],
            f"{prefix}otpauth_uri": uri}


def codes_page(request: Request, caller: sessions.Authenticated, codes: list[str],
                first: bool) -> Response:
    return web.render(request, "recovery_codes.html", {
        "title": N_("Your recovery codes"), "codes": codes, "first": first,
        "download": "\n".join([f"Recovery codes for {caller.teammate.email} "
                               f"({caller.workspace.name})", "", *codes, ""]),
    }, caller=caller)
