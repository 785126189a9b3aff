"""A private redis-server and a private PostgreSQL cluster on spare loopback ports, for tests
that stop and start them: the machine's own servers, which other suites use, stay up."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from tests.stack import free_port, wait_until

PG_USER = "postgres"  # initdb refuses to run as root; the cluster runs as this OS user


@dataclass
class PrivateRedis:
    folder: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        log = open(self.folder / "redis.log", "ab")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)], stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._answers, 30, message="private redis up")

    def stop(self) -> None:
        """A clean shutdown without persistence: every queued message is gone."""
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
            self.proc = None

    def _answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False


@dataclass
class PrivatePostgres:
    """The cluster lives in its own /tmp folder: pytest's are private to root, and the
    cluster's OS user must be able to reach its data directory."""

    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="twofa-pg-")))
    port: int = field(default_factory=free_port)

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.folder, PG_USER, PG_USER)
        self._as_postgres(["initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                           "--no-sync", "-E", "UTF8"])

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} "
                   "-c fsync=off -c max_connections=200")
        self._as_postgres(["pg_ctl", "-D", str(self.data), "-l", str(self.folder / "pg.log"),
                           "-o", options, "-w", "start"])

    def stop(self) -> None:
        """Fast shutdown: open connections are cut, as in a crash or failover."""
        with suppress(subprocess.CalledProcessError):
            self._as_postgres(["pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _as_postgres(self, argv: list[str]) -> None:
        prefix = [] if os.geteuid() != 0 else ["runuser", "-u", PG_USER, "--"]
        subprocess.run([*prefix, *argv], check=True, capture_output=True, timeout=120)


def available() -> bool:
    return all(shutil.which(tool) for tool in ("redis-server", "initdb", "pg_ctl"))


def pause(seconds: float) -> None:
    """A fault lasting a while (the outage itself, not a wait for a result)."""
    time.sleep(seconds)
