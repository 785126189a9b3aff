"""`RecentSecondFactor`: the one dependency that sensitive routes declare.

A sensitive change needs a second factor verified recently for the session, or the `code`
sent with it (services/verification/recent.py has the rule). The check runs once the route
has done its work and before the transaction commits: every other refusal of the request
(404, 422, `two_factor_mandatory`, `last_admin`, a wrong `code`) is answered first, and a
refused change is rolled back whole. A code the route accepted marks the session verified,
which the check sees.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import Depends, Request

from services.accounts import sessions
from services.api.deps import AnySession
from services.verification import recent

# Whether this request's change is the sensitive kind (e.g. a role change *to* admin).
Condition = Callable[[Any, sessions.Authenticated], bool]


async def json_body(request: Request) -> Any:
    """The request's JSON body as sent (already read by FastAPI), or None."""
    try:
        return json.loads(await request.body() or b"null")
    except ValueError:
        return None


class RecentSecondFactor:
    """Declared on a route: `Depends(RecentSecondFactor(), scope="function")` (see SENSITIVE)."""

    def __init__(self, purpose: recent.Purpose = "change", when: Condition | None = None,
                 first: bool = False) -> None:
        self.purpose, self.when, self.first = purpose, when, first

    def __call__(self, caller: AnySession,
                 body: Annotated[Any, Depends(json_body)]) -> Iterator[None]:
        # Decided before the route runs: turning one's own 2FA off must still be asked.
        asked = recent.is_asked(caller.teammate) and (
            self.when is None or self.when(body, caller))
        if self.first and asked and not recent.counts(caller.auth, self.purpose):
            # A route whose own refusals would tell something (a wrong current password)
            # takes no code: a stale session is refused before it runs.
            raise recent.refusal()
        before = caller.auth.verified_at
        yield
        verified_now = caller.auth.verified_at != before  # a code sent with this request
        if asked and not verified_now and not recent.counts(caller.auth, self.purpose):
            raise recent.refusal()


def _field(body: Any, name: str) -> Any:
    return body.get(name) if isinstance(body, dict) else None


def makes_admin(body: Any, _: sessions.Authenticated) -> bool:
    return _field(body, "role") == "admin"


def turns_requirement_off(body: Any, caller: sessions.Authenticated) -> bool:
    return _field(body, "require_two_factor") is False and caller.workspace.require_two_factor


def loosens_or_switches_methods(body: Any, caller: sessions.Authenticated) -> bool:
    """Turning the requirement off, or changing which methods count (either way: a switch
    to keys holds teammates, a switch back lets apps in again)."""
    methods = _field(body, "allowed_methods")
    return turns_requirement_off(body, caller) or (
        methods is not None and methods != caller.workspace.allowed_methods)


def _sensitive(purpose: recent.Purpose = "change", when: Condition | None = None,
               first: bool = False) -> Any:
    # scope="function": the check must run before the unit of work commits (services/api/deps.DB).
    return Depends(RecentSecondFactor(purpose, when, first), scope="function")


# The declarations routes use, named for what they require.
SENSITIVE = _sensitive()
# Checked before the route runs, which takes no code (changing one's password).
SENSITIVE_FIRST = _sensitive(first=True)
SENSITIVE_NEW_METHOD = _sensitive("new_method")
SENSITIVE_IF_MAKING_ADMIN = _sensitive(when=makes_admin)
SENSITIVE_POLICY_CHANGE = _sensitive(when=loosens_or_switches_methods)
