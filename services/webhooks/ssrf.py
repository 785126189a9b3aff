"""SSRF guard: webhook URLs may only reach public addresses (unless allowed by settings).

Checked twice: at subscription for literal IPs (a clear 422 early), and at connection time
for every address a name resolves to, after which the sender connects to the very address
that was checked, so a DNS answer that changes between check and connect (rebinding) cannot
slip a private address through.
"""

from __future__ import annotations

import ipaddress
import queue
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

from services.config import get_settings
from services.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Python's flags miss CGNAT (RFC 6598) and NAT64 (its IPv4 half is checked instead).
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
SITE_LOCAL = ipaddress.ip_network("fec0::/10")  # deprecated (RFC 3879), still routed inside sites
# IANA special-purpose blocks that Python's flags miss or judge differently between versions
# (https://www.iana.org/assignments/iana-ipv4-special-registry, iana-ipv6-special-registry).
SPECIAL_PURPOSE = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8",  # "this network"
    "192.0.0.0/24",  # IETF protocol assignments (192.0.0.8, DS-Lite 192.0.0.0/29 …)
    "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",  # documentation
    "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
    "198.18.0.0/15",  # benchmarking
    "::/96",  # IPv4-compatible (deprecated)
    "64:ff9b:1::/48",  # local-use NAT64
    "100::/64",  # discard-only
    "2001::/23",  # IETF protocol assignments (Teredo 2001::/32 included)
    "2001:db8::/32", "3fff::/20",  # documentation
    "5f00::/16",  # SRv6 SIDs
))
MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT = 5.0  # seconds, when the caller has no deadline of its own


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
        # IPv4 inside IPv6 reaches that IPv4 address: ::ffff:127.0.0.1, 64:ff9b::a00:1 (NAT64),
        # 2002:7f00:1:: (6to4).
        embedded = address.ipv4_mapped or address.sixtofour or (
            ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in NAT64 else None
        )
        if embedded is not None:
            return blocked_reason(embedded)
        if address.teredo is not None:  # (server, client): either may be an inside address
            reason = next(filter(None, map(blocked_reason, address.teredo)), None)
            if reason:
                return reason
    checks = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (isinstance(address, ipaddress.IPv4Address) and address in CGNAT, "carrier-grade NAT"),
        (isinstance(address, ipaddress.IPv6Address) and address in SITE_LOCAL, "site-local"),
        (address.is_reserved, "reserved"),  # before private: Python counts 240/4 as private too
        (address.is_private and not _special(address), "private"),
        (_special(address), "special-purpose"),
        (not address.is_global, "not globally routable"),
    )
    return next((why for hit, why in checks if hit), None)


def _special(address: IPAddress) -> bool:
    return any(address.version == net.version and address in net for net in SPECIAL_PURPOSE)


def private_allowed() -> bool:
    return get_settings().webhook_allow_private


def check_address(address: IPAddress) -> None:
    reason = None if private_allowed() else blocked_reason(address)
    if reason:
        raise BlockedAddress(f"{address} is a {reason} address")


def allowed_port(port: int) -> bool:
    """80, 443 and unprivileged ports: a receiver is a web server, and the well-known ports
    below 1024 (SMTP on 25, …) are where a forged request does harm."""
    return port in (80, 443) or 1024 <= port <= 65535


def parse_url(url: str) -> SplitResult:
    """Validate a webhook URL's shape and, for literal IPs, its address (422 otherwise)."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput("The URL is longer than {length} characters.", "invalid_url",
                           length=MAX_URL_LENGTH)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise InvalidInput("A webhook URL may not contain control characters.", "invalid_url")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise InvalidInput("Not a valid URL: {problem}.", "invalid_url", problem=str(exc)) from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("A webhook URL is http:// or https:// with a host.", "invalid_url")
    if parts.username or parts.password:
        raise InvalidInput("A webhook URL may not carry credentials.", "invalid_url")
    if port is not None and not allowed_port(port):
        raise InvalidInput("A webhook URL may use port 80, 443 or 1024-65535, not {port}.",
                           "url_not_allowed", port=port)
    address = literal(parts.hostname)
    try:
        if address is not None:
            check_address(address)
        elif not private_allowed() and _is_local_name(parts.hostname):
            raise BlockedAddress(f"{parts.hostname} names this machine")
    except BlockedAddress as exc:
        raise InvalidInput(
            "Webhooks only reach public addresses, and {problem}. For a receiver on this "
            "machine or a private network, start twofa with TWOFA_WEBHOOK_ALLOW_PRIVATE=true.",
            "url_not_allowed", problem=str(exc)) from exc
    return parts


def resolve(url: str, deadline: float | None = None) -> Target:
    """Resolve the URL's host now and check every address; connect to the first one only.

    Every address is checked (not just the one used) so that a name mixing public and
    private answers is refused outright rather than working by luck of ordering. The lookup
    ends by `deadline` (time.monotonic()) or within RESOLVE_TIMEOUT, else TimeoutError.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if private_allowed():
        return Target(parts, host, port, None)
    address = literal(host)
    if address is not None:
        check_address(address)
        return Target(parts, host, port, str(address))
    try:
        infos = getaddrinfo(host, port, deadline)
    except TimeoutError:
        raise
    except OSError as exc:
        raise BlockedAddress(f"{host} does not resolve: {exc}") from exc
    addresses = [literal(str(info[4][0]).split("%", 1)[0]) for info in infos]
    checked = [a for a in addresses if a is not None]
    if not checked:
        raise BlockedAddress(f"{host} has no usable address")
    for address in checked:
        check_address(address)
    return Target(parts, host, port, str(checked[0]))


def getaddrinfo(host: str, port: int, deadline: float | None = None) -> list[tuple[Any, ...]]:
    """socket.getaddrinfo that gives up at `deadline`: TimeoutError (the lookup may linger).

    The C resolver cannot be interrupted, so it runs on a daemon thread of its own; a hung
    lookup then costs an idle thread until the resolver's own timeout, never the worker.
    """
    if deadline is None:
        deadline = time.monotonic() + RESOLVE_TIMEOUT
    answer: queue.SimpleQueue[tuple[bool, object]] = queue.SimpleQueue()

    def lookup() -> None:
        try:
            answer.put((True, socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)))
        except BaseException as exc:  # handed to the caller, raised there
            answer.put((False, exc))

    threading.Thread(target=lookup, name="webhook-dns", daemon=True).start()
    try:
        ok, value = answer.get(timeout=max(0.0, deadline - time.monotonic()))
    except queue.Empty:
        raise TimeoutError(f"resolving {host} timed out") from None
    if not ok:
        assert isinstance(value, BaseException)
        raise value
    return value  # type: ignore[return-value]  # what socket.getaddrinfo returned


def literal(host: str) -> IPAddress | None:
    """An IP written in the host, including the forms inet_aton reads (`127.1`, `0x7f000001`)."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    try:  # resolvers accept these legacy spellings of IPv4 addresses: so must the guard
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):  # ValueError: an embedded NUL
        return None


def _is_local_name(host: str) -> bool:
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith((".localhost", ".local", ".internal"))
