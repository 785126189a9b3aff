"""SSRF guard: webhook URLs may only reach public addresses (unless allowed by settings).

Checked twice: at subscription for literal IPs (a clear 422 early), and at connection time
for every address a name resolves to, after which the sender connects to the very address
that was checked, so a DNS answer that changes between check and connect (rebinding) cannot
slip a private address through.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from services.config import get_settings
from services.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Python's flags miss CGNAT (RFC 6598) and NAT64 (its IPv4 half is checked instead).
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
MAX_URL_LENGTH = 2048


class BlockedAddress(Exception):
    """The URL would reach an address that webhooks must not reach."""


@dataclass(frozen=True)
class Target:
    """Where to connect: `address` was checked; `host` stays the Host header and TLS SNI."""

    url: SplitResult
    host: str
    port: int
    address: str | None  # None: connect by name (private addresses allowed)


def blocked_reason(address: IPAddress) -> str | None:
    """Why `address` is refused, or None for a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or (
            ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in NAT64 else None
        )
        if embedded is not None:  # ::ffff:127.0.0.1 reaches 127.0.0.1
            return blocked_reason(embedded)
    checks = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (isinstance(address, ipaddress.IPv4Address) and address in CGNAT, "carrier-grade NAT"),
        (address.is_reserved, "reserved"),  # before private: Python counts 240/4 as private too
        (address.is_private, "private"),
        (not address.is_global, "not globally routable"),
    )
    return next((why for hit, why in checks if hit), None)


def private_allowed() -> bool:
    return get_settings().webhook_allow_private


def check_address(address: IPAddress) -> None:
    reason = None if private_allowed() else blocked_reason(address)
    if reason:
        raise BlockedAddress(f"{address} is a {reason} address")


def parse_url(url: str) -> SplitResult:
    """Validate a webhook URL's shape and, for literal IPs, its address (422 otherwise)."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"The URL is longer than {MAX_URL_LENGTH} characters.", "invalid_url")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"Not a valid URL: {exc}.", "invalid_url") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("A webhook URL is http:// or https:// with a host.", "invalid_url")
    if parts.username or parts.password:
        raise InvalidInput("A webhook URL may not carry credentials.", "invalid_url")
    if port == 0:
        raise InvalidInput("A webhook URL may not use port 0.", "invalid_url")
    literal = _literal(parts.hostname)
    try:
        if literal is not None:
            check_address(literal)
        elif not private_allowed() and _is_local_name(parts.hostname):
            raise BlockedAddress(f"{parts.hostname} names this machine")
    except BlockedAddress as exc:
        raise InvalidInput(f"Webhooks may not reach {exc}.", "url_not_allowed") from exc
    return parts


def resolve(url: str) -> Target:
    """Resolve the URL's host now and check every address; connect to the first one only.

    Every address is checked (not just the one used) so that a name mixing public and
    private answers is refused outright rather than working by luck of ordering.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if private_allowed():
        return Target(parts, host, port, None)
    literal = _literal(host)
    if literal is not None:
        check_address(literal)
        return Target(parts, host, port, str(literal))
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise BlockedAddress(f"{host} does not resolve: {exc}") from exc
    addresses = [_literal(str(info[4][0]).split("%", 1)[0]) for info in infos]
    checked = [a for a in addresses if a is not None]
    if not checked:
        raise BlockedAddress(f"{host} has no usable address")
    for address in checked:
        check_address(address)
    return Target(parts, host, port, str(checked[0]))


def _literal(host: str) -> IPAddress | None:
    """An IP written in the host, including the forms inet_aton reads (`127.1`, `0x7f000001`)."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    try:  # resolvers accept these legacy spellings of IPv4 addresses: so must the guard
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _is_local_name(host: str) -> bool:
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith((".localhost", ".local", ".internal"))
