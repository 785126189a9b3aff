"""A refused form field in a sentence that names it, the way the page labels it.

Pydantic's own messages ("String should have at least 1 character") are written for
programmers and name no field a person can see; every console form says these instead.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

# The labels the console's forms give these fields.
LABELS = {
    "workspace": "Workspace", "email": "Email", "password": "Password", "name": "Name",
    "role": "Role", "code": "Code", "challenge": "The sign-in step", "token": "The link",
    "current_password": "Current password", "new_password": "New password",
    "grace_period_hours": "Grace period (hours)", "allowed_methods": "Allowed methods",
    "require_two_factor": "Require all teammates to authenticate via 2FA",
    "url": "Endpoint URL", "event_types": "Events", "until": "Exempt through",
    "reason": "Reason",
}


def describe(exc: ValidationError, labels: dict[str, str] | None = None) -> str:
    """At most three refusals, one sentence each."""
    named = {**LABELS, **(labels or {})}
    return " ".join(_sentence(err, named) for err in exc.errors()[:3])


def _sentence(err: Any, labels: dict[str, str]) -> str:
    loc = [str(part) for part in err.get("loc", ()) if not isinstance(part, int)]
    field = labels.get(loc[0], loc[0].replace("_", " ").capitalize()) if loc else ""
    ctx, kind = err.get("ctx") or {}, err.get("type", "")
    if not field:
        return "Some fields are missing: fill in the form and send it again."
    if kind == "missing" or (kind == "string_too_short" and ctx.get("min_length") == 1):
        return f"{field} is empty: fill it in."
    if kind == "string_too_short":
        return f"{field} must be at least {ctx['min_length']} characters long."
    if kind == "string_too_long":
        return f"{field} must be at most {ctx['max_length']} characters long."
    if kind == "greater_than_equal":
        return f"{field} must be {ctx['ge']} or more."
    if kind == "less_than_equal":
        return f"{field} must be {ctx['le']} or less."
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{field} must be a whole number."
    if kind == "too_short":
        return f"{field}: choose at least {ctx['min_length']}."
    if kind == "too_long":
        return f"{field}: choose at most {ctx['max_length']}."
    if kind == "literal_error":
        return f"{field} must be one of {ctx['expected'].replace(chr(39), '')}."
    control = re.search(r"control character (U\+[0-9A-F]{4,6})", str(ctx.get("error", "")))
    if kind == "value_error" and control:
        return (f"{field} holds a control character ({control.group(1)}, such as a tab or a "
                "line break), which cannot be used here: remove it.")
    return f"{field} is not valid."
