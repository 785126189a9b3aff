"""A loopback SMTP relay as providers run them, in its own process: it accepts `--rate`
messages a second (a token bucket of `--burst`) and answers `421` to MAIL beyond it (then
closes the connection, as RFC 5321 says), may answer DATA after `--delay` seconds, and may
require STARTTLS with a certificate. It offers PIPELINING, as Postfix and SES do.

A few lines of asyncio rather than aiosmtpd: on a shared 2-core machine aiosmtpd's own CPU
per message (TLS included) became the limit the benchmark measured. It keeps nothing; every
half second it writes what it accepted and refused to `--stats`.

    python -m bench.relay_smtp PORT --stats FILE [--rate 50 --burst 10] [--delay 0.05]
                               [--cert CERT --key KEY]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import time
from pathlib import Path


class Relay:
    def __init__(self, rate: float, burst: float, delay: float,
                 tls: ssl.SSLContext | None) -> None:
        self.rate, self.burst, self.delay, self.tls = rate, burst, delay, tls
        self.tokens, self.refilled = burst, time.monotonic()
        self.accepted = self.refused = self.connections = 0

    def take(self) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.refilled) * self.rate)
        self.refilled = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def ehlo(self, encrypted: bool) -> bytes:
        lines = ["relay.test", "PIPELINING", "8BITMIME", "SIZE 10240000"]
        if self.tls and not encrypted:
            lines.append("STARTTLS")
        return b"".join(f"250{'-' if i < len(lines) - 1 else ' '}{line}\r\n".encode()
                        for i, line in enumerate(lines))

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        encrypted, carried = False, False
        writer.write(b"220 relay.test ESMTP\r\n")
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    writer.write(self.ehlo(encrypted))
                elif verb == b"STAR" and self.tls and not encrypted:
                    writer.write(b"220 2.0.0 ready to start TLS\r\n")
                    await writer.drain()
                    await writer.start_tls(self.tls)
                    encrypted = True
                elif verb == b"MAIL":
                    if self.tls and not encrypted:
                        writer.write(b"530 5.7.0 must issue a STARTTLS command first\r\n")
                    elif self.take():
                        writer.write(b"250 2.1.0 ok\r\n")
                    else:
                        self.refused += 1
                        writer.write(b"421 4.7.0 too many messages, slow down\r\n")
                        await writer.drain()
                        return
                elif verb == b"RCPT":
                    writer.write(b"250 2.1.5 ok\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 end data with <CR><LF>.<CR><LF>\r\n")
                    await writer.drain()
                    await reader.readuntil(b"\r\n.\r\n")
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    self.accepted += 1
                    if not carried:
                        carried, self.connections = True, self.connections + 1
                    writer.write(b"250 2.0.0 queued\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 2.0.0 bye\r\n")
                    await writer.drain()
                    return
                else:  # RSET, NOOP and anything else
                    writer.write(b"250 2.0.0 ok\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            return
        finally:
            writer.close()

    def stats(self) -> dict[str, int]:
        return {"accepted": self.accepted, "refused": self.refused,
                "connections": self.connections}


async def serve(args: argparse.Namespace) -> None:
    tls = None
    if args.cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.cert, args.key)
    relay = Relay(args.rate, args.burst, args.delay, tls)
    server = await asyncio.start_server(relay.session, "127.0.0.1", args.port, backlog=128,
                                        limit=1 << 20)
    async with server:
        while True:  # until terminated
            tmp = args.stats.with_suffix(".tmp")
            tmp.write_text(json.dumps(relay.stats()))
            os.replace(tmp, args.stats)
            await asyncio.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--stats", type=Path, required=True)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--burst", type=float, default=1.0)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
