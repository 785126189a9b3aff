"""Verification under concurrent load on loopback: /v1/login/two-factor and
/v1/sessions/introspect, with /healthz of the same server in the same run as the baseline.

    .venv/bin/python bench/bench_verification.py                # embedded SQLite
    .venv/bin/python bench/bench_verification.py --postgres     # a fresh PostgreSQL database

It seeds a workspace whose teammates have TOTP on, opens one sign-in challenge each (as
/v1/login would after the password), starts `twofa api` (uvicorn) as a subprocess, then drives
each endpoint with httpx from `--concurrency` tasks. Every code sent is valid and used once,
so each /v1/login/two-factor request does the full work: decrypt, HMAC, the atomic step claim,
a new session. Counts and time are bounded (--requests, --max-seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyotp
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("TWOFA_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass
class Result:
    name: str
    latencies: list[float]
    errors: int
    seconds: float

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(teammates: int) -> tuple[list[tuple[str, str]], str]:
    """Workspace, enrolled teammates and one open challenge each: ([(challenge, secret)], the
    workspace's API key, which introspection needs)."""
    from sqlalchemy import select

    from services import crypto, migrate
    from services.accounts import sessions, workspaces
    from services.db import unit_of_work
    from services.host_checks import api_keys
    from services.models import Teammate, Workspace, utcnow
    from services.verification import totp

    migrate.upgrade()
    out: list[tuple[str, str]] = []
    with unit_of_work() as session:
        ws, _ = workspaces.create(session, "bench", "Bench", "admin@bench.test", "bench-password")
        workspaces.seed(session, ws, teammates, "bench-password")
        session.flush()
        for teammate in session.scalars(select(Teammate).where(Teammate.role == "member")):
            secret = totp.new_secret()
            teammate.totp_secret_enc = crypto.encrypt(secret)
            teammate.totp_enabled_at = utcnow()
            workspace = session.get(Workspace, teammate.workspace_id)
            assert workspace is not None
            sign_in = sessions.after_first_factor(session, teammate, workspace, origin="password")
            assert sign_in.challenge
            out.append((sign_in.challenge, secret))
        _, key = api_keys.create(session, ws, "bench")
    return out, key


async def drive(name: str, count: int, concurrency: int, max_seconds: float,
                call: Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]],
                base_url: str) -> Result:
    latencies: list[float] = []
    errors = 0
    next_index = 0
    deadline = time.perf_counter() + max_seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal next_index, errors
        while next_index < count and time.perf_counter() < deadline:
            i = next_index
            next_index += 1
            started = time.perf_counter()
            response = await call(client, i)
            if response.status_code == 200:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        await client.get("/healthz")  # warm the connection pool
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return Result(name, latencies, errors, seconds)


async def run(args: argparse.Namespace, base_url: str, challenges: list[tuple[str, str]],
              api_key: str) -> None:
    tokens: list[str] = []
    key = {"Authorization": f"Bearer {api_key}"}

    async def healthz(c: httpx.AsyncClient, _: int) -> httpx.Response:
        return await c.get("/healthz")

    async def two_factor(c: httpx.AsyncClient, i: int) -> httpx.Response:
        challenge, secret = challenges[i]
        r = await c.post("/v1/login/two-factor",
                         json={"challenge": challenge, "code": pyotp.TOTP(secret).now()})
        if r.status_code == 200:
            tokens.append(r.json()["token"])
        return r

    async def introspect(c: httpx.AsyncClient, i: int) -> httpx.Response:
        r = await c.post("/v1/sessions/introspect", headers=key,
                         json={"token": tokens[i % len(tokens)]})
        assert r.json().get("active") is True, r.text
        return r

    n, conc, cap = args.requests, args.concurrency, args.max_seconds
    results = [await drive("/healthz", n, conc, cap, healthz, base_url)]
    results.append(await drive("/v1/login/two-factor", len(challenges), conc, cap, two_factor,
                               base_url))
    if not tokens:
        raise SystemExit("no sign-in succeeded; see the server log")
    results.append(await drive("/v1/sessions/introspect", n, conc, cap, introspect, base_url))
    results.append(await drive("/healthz (again)", n, conc, cap, healthz, base_url))

    baseline = results[0].rps
    print(f"\nconcurrency {conc}, database {args.backend}, {os.cpu_count()} CPUs, loopback\n")
    print(f"{'endpoint':<26}{'ok':>7}{'errors':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'vs /healthz':>13}")
    for r in results:
        print(f"{r.name:<26}{len(r.latencies):>7}{r.errors:>8}{r.rps:>9.0f}{r.pct(0.5):>9.1f}"
              f"{r.pct(0.99):>9.1f}{r.rps / baseline:>12.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", action="store_true", help="use a fresh PostgreSQL database")
    parser.add_argument("--teammates", type=int, default=1000,
                        help="enrolled teammates = /v1/login/two-factor requests (each code once)")
    parser.add_argument("--requests", type=int, default=3000, help="requests per other endpoint")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=60.0, help="cap per endpoint")
    args = parser.parse_args()
    args.backend = "postgresql" if args.postgres else "sqlite"

    home = Path(tempfile.mkdtemp(prefix="twofa-bench-"))
    env = {"TWOFA_ENV": "test", "TWOFA_HOME": str(home),
           "TWOFA_ENCRYPTION_KEYS": Fernet.generate_key().decode()}
    database = None
    if args.postgres:
        import psycopg

        database = f"twofa_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        env["TWOFA_DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"
    os.environ.update(env)
    server = None
    try:
        challenges, api_key = prepare(args.teammates)
        port = free_port()
        log = open(home / "api.log", "wb")  # noqa: SIM115 - lives with the server
        server = subprocess.Popen([sys.executable, "-m", "workers.cli", "api", "--port", str(port)],
                                  env=os.environ.copy(), cwd=ROOT, stdout=log,
                                  stderr=subprocess.STDOUT)
        base_url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise SystemExit(f"the API did not start; see {home / 'api.log'}")
        asyncio.run(run(args, base_url, challenges, api_key))
    finally:
        if server:
            server.terminate()
            server.wait(10)
        if database:
            from services.db import get_engine

            get_engine().dispose()
            import psycopg

            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
