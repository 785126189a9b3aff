"""Who we are to authenticators: the WebAuthn relying party ID and the origins accepted.

The RP ID is the host of TWOFA_PUBLIC_URL unless TWOFA_WEBAUTHN_RP_ID names a registrable
suffix of it; a response is accepted from the public URL's origin and from each origin of
TWOFA_WEBAUTHN_ORIGINS (host applications' own pages). Settings check at start that the RP
ID covers every origin. Browsers refuse an IP address as RP ID, so with an IP-address host
WebAuthn is off: its endpoints answer 409 `webauthn_unavailable`.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from urllib.parse import urlsplit

from services.config import get_settings
from services.errors import Conflict


def public_origin() -> str:
    parts = urlsplit(get_settings().public_url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def rp_id() -> str:
    settings = get_settings()
    return (settings.webauthn_rp_id or urlsplit(settings.public_url).hostname or "").lower()


def origins() -> list[str]:
    """Every origin a response may come from, the public URL's first."""
    return [public_origin(), *(o.lower() for o in get_settings().webauthn_origins)]


def is_host_origin(origin: str) -> bool:
    """An origin of a host application's page (a passkey sign-in there opens a host session)."""
    return origin.lower() != public_origin()


def available() -> bool:
    """False when the public host is an IP address: no browser runs a ceremony for it."""
    return _names_a_host(get_settings().public_url)


@lru_cache(maxsize=8)
def _names_a_host(public_url: str) -> bool:
    # Cached by URL (settings may change between tests): /v1/me and the sign-in steps ask on
    # every request, and parsing it each time was ~1% of /v1/me's CPU.
    host = urlsplit(public_url).hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


def require_available() -> None:
    if not available():
        raise Conflict("Security keys need TWOFA_PUBLIC_URL to name a host, not an IP address.",
                       "webauthn_unavailable")


def rp_name() -> str:
    return "twofa"
