"""Request bodies over a limit answer 413 `payload_too_large` before they are read whole.

A declared Content-Length over the limit is refused before a byte of the body is read; a
chunked body is counted as it arrives and refused at the first chunk past the limit, so a
client can never make the server hold more than the limit (plus one chunk) in memory.
(Starlette's own body limit answers in plain text; every twofa error is JSON.)
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request bodies are limited to {limit // 1024} KiB.")


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            error = BodyTooLarge(self.max_bytes)
            body = {"error": {"code": "payload_too_large", "message": error.detail}}
            await JSONResponse(body, status_code=413, headers={"Connection": "close"})(
                scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI re-raises an HTTPException met while reading the body, so this
                    # reaches the app's error handlers and answers in the usual JSON shape.
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, counted, send)
