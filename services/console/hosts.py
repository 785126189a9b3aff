"""Which `Host` the console answers, and which `Origin` its forms accept.

A page is served only for the host of TWOFA_PUBLIC_URL, a loopback name or address, or a
name in TWOFA_ALLOWED_HOSTS: any other name pointing at this server (DNS rebinding, a stray
CNAME) gets a 400, so a page of another site can never read caught mail or a console page
through its own name. When the public URL itself is on loopback, another loopback name
(`localhost` for `127.0.0.1`) is sent there: cookies and WebAuthn need one origin.

Forms are accepted only from the public origin, or from the origin of an allowed host the
request came to, by `Origin` (or, from a browser that sends none, `Sec-Fetch-Site:
same-origin`). A page on another port of the same host is the same *site* for cookies but
another *origin*, so this is what stops it.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from fastapi import Request

from services.config import get_settings

DEFAULT_PORTS = {"http": 80, "https": 443}


class HostRefused(Exception):  # noqa: N818 - answered as a 400 page
    """A request for a host name this console does not answer to."""


class ToPublicUrl(Exception):  # noqa: N818 - a control-flow signal
    """A loopback name other than the public one: go to the public URL instead."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def hostname(host: str) -> str:
    """The name of a `Host` header value: no port, no IPv6 brackets, lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_host(request: Request) -> None:
    """A console route's first dependency: 400 for an unknown host, a redirect for another
    loopback name than the public one."""
    settings = get_settings()
    public = urlsplit(settings.public_url)
    name = hostname(request.headers.get("host", ""))
    public_name = (public.hostname or "").lower()
    if name == public_name or name in settings.allowed_hosts:
        return
    if not is_loopback(name):
        raise HostRefused()
    if is_loopback(public_name):
        query = f"?{request.url.query}" if request.url.query else ""
        raise ToPublicUrl(f"{public_origin()}{request.url.path}{query}")


def public_origin() -> str:
    parts = urlsplit(get_settings().public_url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _origin_tuple(origin: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(origin)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme, 0)
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    return parts.scheme.lower(), parts.hostname.lower(), port


def same_origin(request: Request) -> bool:
    """Whether a form post comes from a page of this console."""
    origin = request.headers.get("origin", "").strip()
    if not origin:
        return request.headers.get("sec-fetch-site") == "same-origin"
    sent = _origin_tuple(origin)  # "null" (a sandboxed or privacy-sensitive context): None
    if sent is None:
        return False
    if sent == _origin_tuple(public_origin()):
        return True
    # An allowed host, at the very origin this request was sent to (not another port of it).
    host = request.headers.get("host", "").strip().lower()
    here = _origin_tuple(f"{request.url.scheme}://{host}")
    return sent == here and sent[1] in get_settings().allowed_hosts
