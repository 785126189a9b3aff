"""A refused form field in a sentence that names it, the way the page labels it.

Pydantic's own messages ("String should have at least 1 character") are written for
programmers and name no field a person can see; every console form says these instead.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from services.console.words import Words
from services.errors import N_

# The labels the console's forms give these fields (said in the page's language).
LABELS = {
    "workspace": N_("Workspace"), "email": N_("Email"), "password": N_("Password"),
    "name": N_("Name"), "role": N_("Role"), "code": N_("Code"),
    "challenge": N_("The sign-in step"), "token": N_("The link"),
    "current_password": N_("Current password"), "new_password": N_("New password"),
    "grace_period_hours": N_("Grace period (hours)"), "allowed_methods": N_("Allowed methods"),
    "require_two_factor": N_("Require all teammates to authenticate via 2FA"),
    "url": N_("Endpoint URL"), "event_types": N_("Events"), "until": N_("Exempt through"),
    "reason": N_("Reason"),
}


def describe(exc: ValidationError, labels: dict[str, str] | None = None) -> Words:
    """At most three refusals, one sentence each (`labels`: English message ids too)."""
    named = {**LABELS, **(labels or {})}
    sentences = [_sentence(err, named) for err in exc.errors()[:3]]
    # Only a glue of sentences, each translated on its own: not a message id of its own.
    return Words(" ".join(f"{{s{i}}}" for i in range(len(sentences))),
                 {f"s{i}": said for i, said in enumerate(sentences)})


def _sentence(err: Any, labels: dict[str, str]) -> Words:
    loc = [str(part) for part in err.get("loc", ()) if not isinstance(part, int)]
    ctx, kind = err.get("ctx") or {}, err.get("type", "")
    if not loc:
        return Words(N_("Some fields are missing: fill in the form and send it again."), {})
    field = Words(labels[loc[0]], {}) if loc[0] in labels else loc[0].replace("_", " ").capitalize()
    if kind == "missing" or (kind == "string_too_short" and ctx.get("min_length") == 1):
        return Words(N_("{field} is empty: fill it in."), {"field": field})
    if kind == "string_too_short":
        return Words(N_("{field} must be at least {count} characters long."),
                     {"field": field, "count": ctx["min_length"]})
    if kind == "string_too_long":
        return Words(N_("{field} must be at most {count} characters long."),
                     {"field": field, "count": ctx["max_length"]})
    if kind == "greater_than_equal":
        return Words(N_("{field} must be {value} or more."), {"field": field, "value": ctx["ge"]})
    if kind == "less_than_equal":
        return Words(N_("{field} must be {value} or less."), {"field": field, "value": ctx["le"]})
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return Words(N_("{field} must be a whole number."), {"field": field})
    if kind == "too_short":
        return Words(N_("{field}: choose at least {count}."),
                     {"field": field, "count": ctx["min_length"]})
    if kind == "too_long":
        return Words(N_("{field}: choose at most {count}."),
                     {"field": field, "count": ctx["max_length"]})
    if kind == "literal_error":
        return Words(N_("{field} must be one of {choices}."),
                     {"field": field, "choices": ctx["expected"].replace(chr(39), "")})
    control = re.search(r"control character (U\+[0-9A-F]{4,6})", str(ctx.get("error", "")))
    if kind == "value_error" and control:
        return Words(N_("{field} holds a control character ({character}, such as a tab or a "
                        "line break), which cannot be used here: remove it."),
                     {"field": field, "character": control.group(1)})
    return Words(N_("{field} is not valid."), {"field": field})
