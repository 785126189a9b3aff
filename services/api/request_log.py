"""The request id (X-Request-ID, accepted or made, echoed) and, in JSON mode, one structured
line per request: route template, status, duration, workspace and teammate ids when known.

The text format keeps uvicorn's access line (`twofa api --access-log`) instead.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services import jsonlog

HEADER = "x-request-id"
# A caller's id is kept only if it is short and plain (it goes into every log line).
ACCEPTED_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
log = logging.getLogger("twofa.request")


class RequestLog:
    def __init__(self, app: ASGIApp, configure: Callable[[], bool]) -> None:
        self.app = app
        self.configure = configure  # sets up logging; True when lines are structured
        self.structured: bool | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.structured is None:  # the first scope: lifespan start-up under a server
            self.structured = self.configure()
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        context = jsonlog.new_context(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.structured:
                context.update(
                    method=scope["method"], route=getattr(scope.get("route"), "path", "unmatched"),
                    status=status, duration_ms=round((time.perf_counter() - started) * 1000, 1))
                log.info("request")


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == HEADER.encode():
            text = value.decode("latin-1")
            if ACCEPTED_ID.fullmatch(text):
                return text
    return uuid.uuid4().hex
