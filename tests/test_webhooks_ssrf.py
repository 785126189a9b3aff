"""The SSRF guard, switched on within each test (the test stack allows private addresses)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.webhook_receiver import Receiver

REFUSED = {
    "loopback": ["127.0.0.1", "127.255.0.9", "::1"],
    "private": ["10.0.0.1", "172.16.5.4", "192.168.1.1", "fc00::1", "fd12:3456::1"],
    "link-local": ["169.254.169.254", "fe80::1"],
    "carrier-grade NAT": ["100.64.0.1", "100.127.255.254"],
    "multicast": ["224.0.0.1", "239.1.2.3", "ff02::1"],
    "reserved": ["240.0.0.1", "255.255.255.255"],
    "unspecified": ["0.0.0.0", "::"],  # noqa: S104 - refused, not bound
    "site-local": ["fec0::1", "feff::1"],
    # IANA special-purpose blocks (Python's flags miss some, e.g. 192.0.0.8 counts as global)
    "special-purpose": ["192.0.0.8", "192.0.0.170", "198.18.0.1", "198.19.255.254", "192.0.2.1",
                        "198.51.100.7", "203.0.113.9", "192.88.99.1", "0.1.2.3", "2001:db8::1",
                        "2001:2::1", "3fff::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2"],
}
MAPPED = {"::ffff:127.0.0.1": "loopback", "::ffff:10.1.2.3": "private",
          "::ffff:169.254.1.1": "link-local", "::ffff:100.64.1.1": "carrier-grade NAT",
          "64:ff9b::a00:1": "private",
          # 6to4 (2002::/16) carries the IPv4 address in bits 16-48
          "2002:7f00:1::": "loopback", "2002:a00:1::": "private", "2002:a9fe:a9fe::1": "link-local",
          "2002:c000:8::": "special-purpose",
          # Teredo (2001::/32): server, then the client address inverted in the last 32 bits
          "2001:0:7f00:1::": "loopback", "2001:0:4136:e378:8000:63bf:f5ff:fffe": "private"}
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:93.184.216.34",
          "2002:5db8:d822::1", "192.0.1.1", "198.20.0.1"]


@pytest.fixture
def guard_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from services.config import get_settings

    monkeypatch.setenv("TWOFA_WEBHOOK_ALLOW_PRIVATE", "false")
    get_settings.cache_clear()
    assert get_settings().webhook_allow_private is False
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.mark.parametrize(("reason", "address"),
                         [(why, a) for why, addresses in REFUSED.items() for a in addresses])
def test_each_class_is_refused(reason: str, address: str) -> None:
    from services.webhooks.ssrf import blocked_reason

    assert blocked_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(("address", "reason"), list(MAPPED.items()))
def test_ipv4_inside_ipv6_is_judged_as_ipv4(address: str, reason: str) -> None:
    from services.webhooks.ssrf import blocked_reason

    assert blocked_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    from services.webhooks.ssrf import blocked_reason

    assert blocked_reason(ipaddress.ip_address(address)) is None


def test_subscription_refuses_literal_private_urls(guard_on: None, workspace: Any) -> None:
    headers = workspace.admin_headers()
    base = f"/v1/workspaces/{workspace.slug}/webhooks"
    hosts = [a for addresses in REFUSED.values() for a in addresses] + list(MAPPED)
    urls = [f"http://[{h}]/hook" if ":" in h else f"https://{h}/hook" for h in hosts]
    # Spellings a resolver turns into 127.0.0.1, and names of this machine.
    urls += ["http://2130706433/", "http://127.1/", "http://0x7f.0.0.1/", "http://localhost:8000/",
             "http://api.localhost/", "http://[2002:7f00:1::]:8080/", "http://[fec0::1]/"]
    for url in urls:
        r = workspace.client.post(base, headers=headers, json={"url": url, "event_types": ["*"]})
        assert r.status_code == 422, (url, r.text)
        assert r.json()["error"]["code"] == "url_not_allowed", url
    for host in ("93.184.216.34", "[2606:4700:4700::1111]", "hooks.example.com"):
        r = workspace.client.post(base, headers=headers,
                                  json={"url": f"https://{host}/twofa", "event_types": ["*"]})
        assert r.status_code == 201, (host, r.text)


def test_subscription_allows_private_urls_when_configured(workspace: Any) -> None:
    r = workspace.client.post(f"/v1/workspaces/{workspace.slug}/webhooks",
                              headers=workspace.admin_headers(),
                              json={"url": "http://127.0.0.1:9999/hook", "event_types": ["*"]})
    assert r.status_code == 201, r.text


def test_connection_time_refuses_names_that_resolve_privately(guard_on: None) -> None:
    from services.webhooks.transport import Sender

    receiver = Receiver().start()
    try:
        port = receiver.url("/").split(":")[2].split("/")[0]
        with Sender() as sender:
            outcome = sender.post(f"http://localhost:{port}/hook", "{}", {"webhook-id": "x"})
        assert outcome.status is None and outcome.error is not None
        assert outcome.error.startswith("refused:") and "loopback" in outcome.error
        assert receiver.received == []
    finally:
        receiver.stop()


def test_connection_time_sends_when_allowed() -> None:
    """The control for the test above: the same request arrives with the guard off."""
    from services.webhooks.transport import Sender

    receiver = Receiver().start()
    try:
        port = receiver.url("/").split(":")[2].split("/")[0]
        with Sender() as sender:
            outcome = sender.post(f"http://localhost:{port}/hook", "{}", {"webhook-id": "x"})
        assert outcome.ok and outcome.status == 200
        assert [r.headers["host"] for r in receiver.received] == [f"localhost:{port}"]
    finally:
        receiver.stop()


def test_every_resolved_address_is_checked(guard_on: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name answering one public and one private address (DNS rebinding) is refused."""
    from services.webhooks import ssrf

    def answers(*addresses: str) -> Any:
        def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
            return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                     (a, port)) for a in addresses]
        return getaddrinfo

    monkeypatch.setattr(ssrf.socket, "getaddrinfo", answers("93.184.216.34", "10.0.0.7"))
    with pytest.raises(ssrf.BlockedAddress, match="private"):
        ssrf.resolve("https://hooks.example.com/x")
    monkeypatch.setattr(ssrf.socket, "getaddrinfo", answers("fe80::1%eth0"))
    with pytest.raises(ssrf.BlockedAddress, match="link-local"):
        ssrf.resolve("https://hooks.example.com/x")
    monkeypatch.setattr(ssrf.socket, "getaddrinfo", answers("93.184.216.34"))
    target = ssrf.resolve("https://hooks.example.com:8443/x")
    assert (target.address, target.host, target.port) == ("93.184.216.34", "hooks.example.com", 8443)


def test_the_connection_is_pinned_to_the_checked_address() -> None:
    """The request goes to the checked IP, with the name kept in Host and in TLS SNI."""
    from urllib.parse import urlsplit

    from services.webhooks import ssrf
    from services.webhooks.transport import _pinned

    https = ssrf.Target(urlsplit("https://hooks.example.com:8443/p?q=1"), "hooks.example.com", 8443,
                        "2606:4700:4700::1111")
    assert _pinned(https) == ("https://[2606:4700:4700::1111]:8443/p?q=1",
                              {"host": "hooks.example.com:8443"}, {"sni_hostname": "hooks.example.com"})
    http = ssrf.Target(urlsplit("http://hooks.example.com/p"), "hooks.example.com", 80, "93.184.216.34")
    assert _pinned(http) == ("http://93.184.216.34:80/p", {"host": "hooks.example.com"}, {})


def test_control_characters_are_bad_input_not_a_500(guard_on: None, workspace: Any) -> None:
    headers = workspace.admin_headers()
    base = f"/v1/workspaces/{workspace.slug}/webhooks"
    for url in ("http://127.0.0.1\x00.example.com/", "http://a\x00b/", "https://example.com/\x00",
                "https://exa\tmple.com/", "https://example.com/\r\nX-Injected: 1", "http://x\x7f.com/"):
        r = workspace.client.post(base, headers=headers, json={"url": url, "event_types": ["*"]})
        assert r.status_code == 422, (url, r.text)
        assert r.json()["error"]["code"] == "invalid_url", url


def test_a_nul_in_a_host_is_no_literal_address() -> None:
    from services.webhooks.ssrf import literal

    assert literal("127.0.0.1\x00.example.com") is None


def test_a_hung_name_lookup_ends_at_the_deadline(guard_on: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """getaddrinfo cannot be interrupted: the attempt stops waiting for it at its deadline."""
    import threading
    import time

    from services.webhooks import ssrf
    from services.webhooks.transport import Sender

    release = threading.Event()

    def hung(*_args: Any, **_kwargs: Any) -> list[Any]:
        release.wait(30)
        raise socket.gaierror("released")

    monkeypatch.setattr(ssrf.socket, "getaddrinfo", hung)
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            ssrf.resolve("https://hooks.example.com/x", time.monotonic() + 0.3)
        assert time.monotonic() - started >= 0.3
        with Sender(timeout=0.5) as sender:
            outcome = sender.post("https://hooks.example.com/x", "{}", {"webhook-id": "x"})
        assert outcome.status is None and outcome.error is not None
        assert outcome.error.startswith("timeout"), outcome.error
        assert outcome.duration_ms >= 500
    finally:
        release.set()
