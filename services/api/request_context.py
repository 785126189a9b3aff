"""Sets the domain's request context (client address, user agent) for every HTTP request, so
the events a request records carry them (services/events/request_context.py)."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from services.events.request_context import caused_by


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        # uvicorn replaced it with X-Forwarded-For only if TWOFA_FORWARDED_ALLOW_IPS names the peer
        ip = client[0] if client else "unknown"
        with caused_by(ip, Headers(scope=scope).get("user-agent", "")):
            await self.app(scope, receive, send)
