"""A real HTTP receiver on loopback that verifies every delivery with `standardwebhooks`."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

from tests import loopback_http


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    verified: Any  # the parsed body if the signature verified, else None
    error: str | None = None
    received_at: float = field(default_factory=time.time)  # wall clock, for latencies

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


# Decides the answer to one request: (path, how many requests that path had before) -> status.
Behaviour = Callable[[str, int], int]


@dataclass
class Receiver:
    secrets: dict[str, str] = field(default_factory=dict)  # path -> whsec_ secret
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # requests per path (O(1) per request)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.handle(self, body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = loopback_http.serve(Handler)
        return self

    def stop(self) -> None:
        loopback_http.stop(self.server)

    def url(self, path: str) -> str:
        assert self.server
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def handle(self, request: BaseHTTPRequestHandler, body: bytes) -> None:
        headers = {k.lower(): v for k, v in request.headers.items()}
        path = request.path
        with self.lock:
            before = self.counts.get(path, 0)
            self.counts[path] = before + 1
        status = self.behaviours.get(path, lambda _p, _n: 200)(path, before)
        verified, error = None, None
        secret = self.secrets.get(path)
        if secret:
            try:
                verified = Webhook(secret).verify(body, headers)
            except WebhookVerificationError as exc:
                error = str(exc)
        with self.lock:
            self.received.append(Received(path, headers, body, status, verified, error))
        reply = b"" if status in (204, 304) else json.dumps({"ok": 200 <= status < 300}).encode()
        request.send_response(status)
        request.send_header("content-type", "application/json")
        request.send_header("content-length", str(len(reply)))
        request.end_headers()
        request.wfile.write(reply)

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def ids(self, path: str) -> list[str]:
        return [r.webhook_id for r in self.at(path)]
