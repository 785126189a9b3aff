"""One webhook POST: SSRF-checked connection, no redirects, 15 s timeout, capped body read."""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import TracebackType

import httpx

from services.webhooks import ssrf

TIMEOUT_SECONDS = 15.0
BODY_CAP = 1024  # bytes of the receiver's answer kept for the delivery log
USER_AGENT = "twofa-webhooks/1"


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
        # trust_env=False: an HTTP(S)_PROXY from the environment would bypass the address check.
        self.client = httpx.Client(
            timeout=timeout, follow_redirects=False, trust_env=False,
            headers={"user-agent": USER_AGENT},
        )

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.client.close()

    def post(self, url: str, body: str, headers: dict[str, str]) -> Outcome:
        started = time.monotonic()
        try:
            target = ssrf.resolve(url)
        except ssrf.BlockedAddress as exc:
            return Outcome(None, _ms(started), f"refused: {exc}")
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
            return Outcome(None, _ms(started), "timed out")
        except Exception as exc:  # any failure is one failed attempt in the log, not a stuck delivery
            return Outcome(None, _ms(started), f"{type(exc).__name__}: {exc}"[:500])
        status = response.status_code
        error = None if 200 <= status < 300 else f"HTTP {status}"
        if 300 <= status < 400:
            error = f"HTTP {status}: redirects are not followed"
        return Outcome(status, _ms(started), error, kept)


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
