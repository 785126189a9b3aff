"""Shared pieces of the benchmarks: a counting SMTP server in its own process, a fresh stack."""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _serve_smtp(port: int, count: Synchronized, last: Synchronized, ready: Any) -> None:
    from aiosmtpd.controller import Controller

    class Count:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            with count.get_lock():
                count.value += 1
            last.value = time.perf_counter()
            return "250 OK"

    controller = Controller(Count(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    while True:
        time.sleep(3600)


class CountingSmtp:
    """aiosmtpd in a separate process, so the server does not share our GIL."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.count: Synchronized = mp.Value("i", 0)  # type: ignore[assignment]
        self.last: Synchronized = mp.Value("d", 0.0)  # type: ignore[assignment]
        ready = mp.Event()
        self.proc = mp.Process(target=_serve_smtp, args=(port, self.count, self.last, ready),
                               daemon=True)
        self.proc.start()
        ready.wait(10)

    def reset(self) -> None:
        self.count.value = 0

    def stop(self) -> None:
        self.proc.terminate()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


def fresh_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A new PostgreSQL database and Redis queue, as environment for our processes."""
    import psycopg
    from cryptography.fernet import Fernet

    name = f"twofa_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    env = {
        "TWOFA_ENV": "test",
        "TWOFA_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
        "TWOFA_BROKER_URL": os.environ.get("TWOFA_BENCH_REDIS", "redis://127.0.0.1:6379/0"),
        "TWOFA_QUEUE": f"twofa-bench-{uuid.uuid4().hex[:6]}",
        "TWOFA_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "TWOFA_WEBHOOK_ALLOW_PRIVATE": "true",
        **(extra or {}),
    }
    os.environ.update(env)
    from services.config import get_settings

    get_settings.cache_clear()
    from services import migrate

    migrate.upgrade()
    return env


def drop_database(env: dict[str, str]) -> None:
    import psycopg

    name = env["TWOFA_DATABASE_URL"].rsplit("/", 1)[1]
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "workers.cli", *args], env={**os.environ, **env}, cwd=ROOT,
        stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]
