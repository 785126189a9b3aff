"""Links that emails carry, all under TWOFA_PUBLIC_URL."""

from __future__ import annotations

from urllib.parse import urlencode

from services.config import get_settings


def enroll_url(workspace_slug: str) -> str:
    """The console's sign-in needs the slug; the link fills it in."""
    return (f"{get_settings().public_url.rstrip('/')}/enroll?"
            + urlencode({"workspace": workspace_slug}))
