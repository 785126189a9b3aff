"""Shared pieces of the benchmarks: a fresh database and environment, our processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str,
             interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(interval)


def api_up(http: httpx.Client) -> bool:
    """Whether the API behind `http` answers /healthz (for wait_for)."""
    try:
        return http.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def fresh_env(extra: dict[str, str] | None = None, embedded: bool = False) -> dict[str, str]:
    """A new PostgreSQL database and Redis queue (or, `embedded`, SQLite and the filesystem
    broker under TWOFA_HOME), as environment for our processes."""
    from cryptography.fernet import Fernet

    env = {
        "TWOFA_ENV": "test",
        "TWOFA_QUEUE": f"twofa-bench-{uuid.uuid4().hex[:6]}",
        "TWOFA_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "TWOFA_WEBHOOK_ALLOW_PRIVATE": "true",
        **(extra or {}),
    }
    if not embedded:
        import psycopg

        name = f"twofa_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        env["TWOFA_DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        env["TWOFA_BROKER_URL"] = os.environ.get("TWOFA_BENCH_REDIS", "redis://127.0.0.1:6379/0")
    os.environ.update(env)
    from services.config import get_settings

    get_settings.cache_clear()
    from services import migrate

    migrate.upgrade()
    return env


def drop_database(env: dict[str, str]) -> None:
    import psycopg

    if "TWOFA_DATABASE_URL" not in env:
        return
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
