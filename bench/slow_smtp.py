"""An SMTP server that waits before answering DATA, as a remote relay does (SES, Postmark, a
corporate smarthost answer each message in 50–150 ms). aiosmtpd, in its own process so that
its CPU is not the benchmark's; it keeps nothing and counts what it accepted.

    python -m bench.slow_smtp PORT DELAY_SECONDS
"""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any

from aiosmtpd.controller import Controller


class Delayed:
    def __init__(self, delay: float) -> None:
        self.delay = delay

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        await asyncio.sleep(self.delay)
        return "250 Message accepted"


def main() -> None:
    port, delay = int(sys.argv[1]), float(sys.argv[2])
    controller = Controller(Delayed(delay), hostname="127.0.0.1", port=port)
    controller.start()
    threading.Event().wait()  # until terminated


if __name__ == "__main__":
    main()
