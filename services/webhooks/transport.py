"""One webhook POST: SSRF-checked connection, no redirects, 15 s in all, capped body read.

The 15 s is a hard limit on the whole attempt, name resolution included, not httpx's
per-phase timeout (which a receiver dripping one byte every few seconds never trips): every
socket operation of the attempt is given only the time left before its deadline.
"""

from __future__ import annotations

import contextvars
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpcore
import httpx

from services.webhooks import ssrf

TIMEOUT_SECONDS = 15.0  # the whole attempt: resolve, connect, send, answer
BODY_CAP = 1024  # bytes of the receiver's answer kept for the delivery log
USER_AGENT = "twofa-webhooks/1"

# The monotonic time by which the current attempt must be over (set by Sender.post).
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("webhook_deadline", default=None)


@dataclass(frozen=True)
class Outcome:
    status: int | None
    duration_ms: int
    error: str | None = None
    body: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Sender:
    """`with Sender() as s: s.post(url, body, headers)`; one client, kept-alive connections."""

    def __init__(self, timeout: float = TIMEOUT_SECONDS) -> None:
        self.timeout = timeout
        transport = httpx.HTTPTransport(trust_env=False)
        # httpx has no public hook for the network layer; its pool takes the backend at
        # connection time, so swapping it before the first request covers every connection.
        pool = transport._pool  # noqa: SLF001
        assert isinstance(pool, httpcore.ConnectionPool)
        pool._network_backend = DeadlineBackend(pool._network_backend)  # noqa: SLF001
        # trust_env=False: an HTTP(S)_PROXY from the environment would bypass the address check.
        self.client = httpx.Client(
            transport=transport, timeout=timeout, follow_redirects=False, trust_env=False,
            headers={"user-agent": USER_AGENT},
        )

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.client.close()

    def post(self, url: str, body: str, headers: dict[str, str]) -> Outcome:
        started = time.monotonic()
        token = _deadline.set(started + self.timeout)
        try:
            return self._post(started, url, body, headers)
        finally:
            _deadline.reset(token)

    def _post(self, started: float, url: str, body: str, headers: dict[str, str]) -> Outcome:
        try:
            target = ssrf.resolve(url, started + self.timeout)
        except ssrf.BlockedAddress as exc:
            return Outcome(None, _ms(started), f"refused: {exc}")
        except TimeoutError:
            return self._timed_out(started)
        except (OSError, ValueError, UnicodeError) as exc:  # e.g. a name IDNA cannot encode
            return Outcome(None, _ms(started), f"{type(exc).__name__}: {exc}"[:500])
        request_url, extra, extensions = _pinned(target)
        try:
            with self.client.stream(
                "POST", request_url, content=body.encode(), headers={**headers, **extra},
                extensions=extensions,
            ) as response:
                kept = _read_capped(response)
        except httpx.TimeoutException:
            return self._timed_out(started)
        except Exception as exc:  # any failure is one failed attempt in the log, not a stuck delivery
            return Outcome(None, _ms(started), f"{type(exc).__name__}: {exc}"[:500])
        status = response.status_code
        error = None if 200 <= status < 300 else f"HTTP {status}"
        if 300 <= status < 400:
            error = f"HTTP {status}: redirects are not followed"
        return Outcome(status, _ms(started), error, kept)

    def _timed_out(self, started: float) -> Outcome:
        return Outcome(None, _ms(started), f"timeout: no complete answer within {self.timeout:g} s")


def _remaining(timeout: float | None, kind: type[httpcore.TimeoutException]) -> float | None:
    """The smaller of a phase's own timeout and the time left in the attempt.

    Past the deadline it raises `kind`, the httpcore timeout of that phase, which httpx turns
    into its own; the connection is then closed, not returned to the pool.
    """
    deadline = _deadline.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise kind("the attempt's deadline passed")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the current attempt's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self.inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, _remaining(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, _remaining(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        left = _remaining(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self.inner.start_tls(ssl_context, server_hostname, left))

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """Connects within the attempt's deadline, resolving names with a bounded lookup too.

    With the SSRF guard on, the host is already the checked address; with private addresses
    allowed it may be a name, tried address by address as socket.create_connection does.
    """

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self.inner = inner

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        error: Exception = httpcore.ConnectError(f"{host} has no address")
        for address in self._addresses(host, port, timeout):
            left = _remaining(timeout, httpcore.ConnectTimeout)
            try:
                stream = self.inner.connect_tcp(address, port, left, local_address, socket_options)
            except httpcore.ConnectError as exc:
                error = exc
                continue
            return DeadlineStream(stream)
        raise error

    def _addresses(self, host: str, port: int, timeout: float | None) -> list[str]:
        if ssrf.literal(host) is not None:
            return [host]
        _remaining(timeout, httpcore.ConnectTimeout)
        try:
            infos = ssrf.getaddrinfo(host, port, _deadline.get())
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"{host} does not resolve: {exc}") from exc
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


def _pinned(target: ssrf.Target) -> tuple[str, dict[str, str], dict[str, object]]:
    """Connect to the checked address, keeping the name in Host and in TLS SNI/verification."""
    if target.address is None:
        return target.url.geturl(), {}, {}
    ip = f"[{target.address}]" if ":" in target.address else target.address
    netloc = f"{ip}:{target.port}"
    host_header = target.url.netloc  # as the user wrote it (credentials are refused at subscription)
    url = target.url._replace(netloc=netloc).geturl()
    extensions: dict[str, object] = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
    return url, {"host": host_header}, extensions


def _read_capped(response: httpx.Response) -> str:
    kept = b""
    for chunk in response.iter_bytes():
        kept += chunk
        if len(kept) >= BODY_CAP:
            break  # a receiver may answer with megabytes; the log needs a glimpse
    return kept[:BODY_CAP].decode("utf-8", errors="replace")


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
