"""A loopback SMTP relay as providers run them, in its own process (aiosmtpd): it accepts
`--rate` messages a second (a token bucket of `--burst`) and answers `421` to MAIL beyond
it, may answer DATA after `--delay` seconds, and may require STARTTLS with a certificate.
It keeps nothing; every half second it writes what it accepted and refused to `--stats`.

    python -m bench.relay_smtp PORT --stats FILE [--rate 50 --burst 10] [--delay 0.05]
                               [--cert CERT --key KEY]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import threading
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class Relay:
    def __init__(self, rate: float, burst: float, delay: float) -> None:
        self.rate, self.burst, self.delay = rate, burst, delay
        self.tokens, self.refilled = burst, time.monotonic()
        self.accepted = self.refused = 0
        self.connections: set[int] = set()

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                          mail_options: list[str]) -> str:
        if self.rate > 0:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.refilled) * self.rate)
            self.refilled = now
            if self.tokens < 1:
                self.refused += 1
                return "421 4.7.0 too many messages, slow down"
            self.tokens -= 1
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.delay:
            await asyncio.sleep(self.delay)
        self.accepted += 1
        self.connections.add(id(session))
        return "250 Message accepted"

    def stats(self) -> dict[str, int]:
        return {"accepted": self.accepted, "refused": self.refused,
                "connections": len(self.connections)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--stats", type=Path, required=True)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--burst", type=float, default=1.0)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args()
    relay = Relay(args.rate, args.burst, args.delay)
    kwargs: dict[str, Any] = {}
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
        kwargs = {"tls_context": context, "require_starttls": True}
    controller = Controller(relay, hostname="127.0.0.1", port=args.port, **kwargs)
    controller.start()
    while True:  # until terminated
        tmp = args.stats.with_suffix(".tmp")
        tmp.write_text(json.dumps(relay.stats()))
        os.replace(tmp, args.stats)
        threading.Event().wait(0.5)


if __name__ == "__main__":
    main()
