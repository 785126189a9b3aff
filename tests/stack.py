"""Real parts for tests: a database, a broker queue, an SMTP server and twofa's processes.

A `Stack` is one complete twofa installation: the session-wide one serves most tests; fault
tests build their own so that killing its worker or its mail server touches nothing else.
"""

from __future__ import annotations

import asyncio
import email
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("TWOFA_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TWOFA_TEST_REDIS", "redis://127.0.0.1:6379/0")


# True while a test runs that uses no backend fixture: scripts/test.sh runs such tests on one
# backend only, so one that asks for the backend anyway must be marked `uses_backend`.
backend_free_test = False


def backend() -> str:
    assert not backend_free_test, "this test depends on the backend: mark it @pytest.mark.uses_backend"
    value = os.environ.get("TWOFA_TEST_BACKEND", "postgres")
    assert value in ("postgres", "embedded"), value
    return value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float = 60, interval: float = 0.1,
               message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def answers(http: httpx.Client) -> bool:
    """Whether the twofa server behind `http` is up (/healthz answers 200): for wait_until."""
    try:
        return http.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Caught:
    sender: str
    recipients: list[str]
    message: Message

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def part(self, subtype: str) -> str:
        for part in self.message.walk():
            if part.get_content_type() == f"text/{subtype}":
                payload = part.get_payload(decode=True)
                assert isinstance(payload, bytes)
                return payload.decode(part.get_content_charset() or "utf-8")
        raise AssertionError(f"no text/{subtype} part")


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,  # noqa: N802
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.sink.pipelining:  # as Postfix, SES and most relays do (RFC 2920)
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                          options: Any) -> str:
        if address in self.sink.refuse:
            return "550 5.1.1 mailbox unavailable"
        if address in self.sink.defer:
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        domain = envelope.rcpt_tos[0].rpartition("@")[2] if envelope.rcpt_tos else ""
        with self.sink.lock:
            self.sink.in_flight[domain] += 1
            self.sink.most_in_flight[domain] = max(self.sink.most_in_flight[domain],
                                                   self.sink.in_flight[domain])
        try:
            if self.sink.delay:
                await asyncio.sleep(self.sink.delay)  # a slow server: sends take a while
        finally:
            with self.sink.lock:
                self.sink.in_flight[domain] -= 1
        msg = email.message_from_bytes(envelope.original_content or envelope.content)
        with self.sink.lock:
            self.sink.messages.append(Caught(envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 Message accepted"


@dataclass
class SmtpSink:
    """aiosmtpd on loopback, in this process, keeping every message it accepts."""

    port: int = field(default_factory=free_port)
    messages: list[Caught] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    defer: set[str] = field(default_factory=set)
    delay: float = 0.0
    pipelining: bool = True  # offered in EHLO (twofa's mail catcher does not offer it)
    # Messages between DATA and the server's answer, now and at most, by recipient domain
    # (a workspace's teammates share one: member-00001@SLUG.test).
    in_flight: Counter[str] = field(default_factory=Counter)
    most_in_flight: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller:
            self.controller.stop()
            self.controller = None

    def to(self, address: str) -> list[Caught]:
        with self.lock:
            return [m for m in self.messages if address in m.recipients]

    def snapshot(self) -> list[Caught]:
        with self.lock:
            return list(self.messages)


def create_database() -> str:
    import psycopg

    name = f"twofa_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def check_services() -> None:
    """Raise if PostgreSQL or Redis does not answer: the suite fails, it never skips."""
    import psycopg
    import redis

    with psycopg.connect(PG_ADMIN_URL, connect_timeout=5) as conn:
        conn.execute("SELECT 1")
    redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5).ping()


@dataclass
class Stack:
    """One twofa installation: its environment, SMTP server and child processes."""

    home: Path
    smtp: SmtpSink = field(default_factory=SmtpSink)
    env: dict[str, str] = field(default_factory=dict)
    database_url: str | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    overrides: dict[str, str] = field(default_factory=dict)

    def setup(self) -> Stack:
        self.home.mkdir(parents=True, exist_ok=True)
        env = {
            "TWOFA_ENV": "test",
            "TWOFA_HOME": str(self.home),
            "TWOFA_SMTP_URL": self.smtp.url,
            "TWOFA_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "TWOFA_QUEUE": f"twofa-test-{uuid.uuid4().hex[:8]}",
            "TWOFA_EMAIL_RETRY_SCHEDULE": "0.5,1,1.5",
            "TWOFA_SEND_LEASE_SECONDS": "4",
            "TWOFA_SWEEP_INTERVAL": "1",
            "TWOFA_RELAY_POLL_INTERVAL": "0.05",
            "TWOFA_FANOUT_BATCH_SIZE": "50",
            # Several connections per batch, as in production (default 8), fewer to count.
            "TWOFA_SMTP_CONNECTIONS": "3",
            "TWOFA_WEBHOOK_ALLOW_PRIVATE": "true",
            "TWOFA_WEBHOOK_RETRY_SCHEDULE": "0.5,1,1",
            "TWOFA_WEBHOOK_FAILURE_THRESHOLD": "3",  # endpoints disabled sooner: a shorter test
            # A killed worker's webhook window is retried after this; attempts get a quarter.
            "TWOFA_WEBHOOK_LEASE_SECONDS": "10",
            "TWOFA_ARGON2_PROFILE": "cheapest",  # argon2's cheapest profile: tests only
            "TWOFA_PUBLIC_URL": "https://twofa.example.test",
            # The suite's servers sit behind "a proxy" on loopback (tests set X-Forwarded-For
            # to give each test its own address), and TestClient speaks as Host `testserver`.
            # The tests of the defaults start servers of their own without these.
            "TWOFA_FORWARDED_ALLOW_IPS": "127.0.0.1",
            "TWOFA_ALLOWED_HOSTS": "testserver",
            # Every process of the stack reads this offset: tests/conftest.py's `clock`.
            "TWOFA_TEST_CLOCK_FILE": str(self.home / "clock"),
        }
        if backend() == "postgres":
            self.database_url = create_database()
            env["TWOFA_DATABASE_URL"] = self.database_url
            env["TWOFA_BROKER_URL"] = REDIS_URL
        env.update(self.overrides)
        self.env = env
        with self.active():
            from services import migrate

            migrate.upgrade()
        self.smtp.start()
        return self

    @contextmanager
    def active(self) -> Iterator[None]:
        """Point this process's Settings at this stack for the duration."""
        from services.config import get_settings

        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        get_settings.cache_clear()
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            get_settings.cache_clear()

    def start(self, name: str, *args: str, env: dict[str, str] | None = None
              ) -> subprocess.Popen[bytes]:
        log = open(self.home / f"{name}.log", "ab")  # noqa: SIM115 - lives with the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", *args],
            env={**os.environ, **self.env, **(env or {})}, cwd=ROOT, stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def start_worker(self, name: str = "worker", concurrency: int = 2) -> subprocess.Popen[bytes]:
        return self.start(name, "worker", "-c", str(concurrency))

    def start_relay(self) -> subprocess.Popen[bytes]:
        return self.start("relay", "relay")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Kill a process and all its children (Celery's pool included)."""
        proc = self.procs.pop(name)
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait(30)

    def log(self, name: str) -> str:
        path = self.home / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def teardown(self) -> None:
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM if name == "relay" else signal.SIGKILL)
        self.smtp.stop()
        if self.database_url:
            drop_database(self.database_url)
