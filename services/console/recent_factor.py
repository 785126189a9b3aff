"""`RecentlyVerified`: the one console dependency that sensitive actions declare.

A stale session (no second factor verified within TWOFA_REAUTH_SECONDS, the rule of
services/verification/recent.py) is sent to `/reauthenticate?next=…` before the action runs,
and comes back to the page it was on. Forms that carry a code of their own (turn off 2FA,
new recovery codes, a new phone) are let through when one is sent: the action checks it,
and an accepted code verifies the session.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import Depends, Request

from services.accounts import sessions
from services.console import web
from services.verification import recent

Condition = Callable[[dict[str, str], sessions.Authenticated], bool]


class RecentlyVerified:
    def __init__(self, back: str | None = None, purpose: recent.Purpose = "change",
                 when: Condition | None = None, takes_code: bool = False) -> None:
        self.back, self.purpose, self.when, self.takes_code = back, purpose, when, takes_code

    def __call__(self, request: Request, caller: web.AnyCaller, form: web.Form) -> None:
        if not recent.is_asked(caller.teammate):
            return
        if self.when is not None and not self.when(form, caller):
            return
        if self.takes_code and form.get("code", "").strip():
            return  # the action checks the code it was sent
        if recent.counts(caller.auth, self.purpose):
            return
        back = self.back or request.url.path
        raise web.Redirect("/reauthenticate?next=" + quote(back, safe="/"))


def makes_admin(form: dict[str, str], _: sessions.Authenticated) -> bool:
    return form.get("role") == "admin"


def turns_requirement_off(form: dict[str, str], caller: sessions.Authenticated) -> bool:
    return form.get("require_two_factor") != "on" and caller.workspace.require_two_factor


def loosens_or_switches_methods(form: dict[str, str], caller: sessions.Authenticated) -> bool:
    """Turning the requirement off, or changing which methods count."""
    methods = form.get("allowed_methods") or None
    return turns_requirement_off(form, caller) or (
        methods is not None and methods != caller.workspace.allowed_methods)


def recently_verified(back: str | None = None, purpose: recent.Purpose = "change",
                      when: Condition | None = None, takes_code: bool = False) -> Any:
    """What a route lists in `dependencies=[…]`."""
    return Depends(RecentlyVerified(back, purpose, when, takes_code))
