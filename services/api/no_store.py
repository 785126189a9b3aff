"""`Cache-Control: no-store` on every answer that does not say otherwise, one rule for all.

Logins carry tokens, webhook creation and rotation carry secrets, lists and CSV exports carry
teammates' data, and even a refusal says something about an account: no browser, proxy or
CDN may keep any of them. Only the console's static files (a stylesheet, a script) may be
cached, and an answer that sets its own Cache-Control keeps it.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CACHEABLE_PREFIX = "/static/"


class NoStore:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(CACHEABLE_PREFIX):
            await self.app(scope, receive, send)
            return

        async def send_no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_no_store)
