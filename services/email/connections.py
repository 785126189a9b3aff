"""SMTP connections kept open between batches, per process.

Opening a connection costs a TCP handshake, the greeting, EHLO and, with STARTTLS, a TLS
handshake and a second EHLO: to a relay 50 ms away that is several round trips per batch
and connection. A process keeps the connections its batches used and hands them to the
next batch. One that failed is closed by the mailer itself (services/email/smtp.py) and
reconnects on its next send; one left unused for TWOFA_SMTP_IDLE_SECONDS is closed by a
reaper thread. A forked child (Celery's pool) never uses its parent's connections.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Protocol

from services.config import get_settings
from services.email.smtp import SmtpMailer


class Mailers(Protocol):
    def get(self) -> SmtpMailer: ...
    def put(self, mailer: SmtpMailer) -> None: ...


class Fresh:
    """A new mailer each time, closed when given back (a one-off sender, tests)."""

    def __init__(self, factory: Callable[[], SmtpMailer] = SmtpMailer) -> None:
        self.factory = factory

    def get(self) -> SmtpMailer:
        return self.factory()

    def put(self, mailer: SmtpMailer) -> None:
        mailer.close()


class Pool:
    """Idle mailers of this process, the most recently used first."""

    def __init__(self, factory: Callable[[], SmtpMailer], idle_seconds: float,
                 keep: int) -> None:
        self.factory, self.idle_seconds, self.keep = factory, idle_seconds, keep
        self._idle: list[tuple[float, SmtpMailer]] = []
        self._lock = threading.Lock()
        self._reaper: threading.Thread | None = None

    def get(self) -> SmtpMailer:
        with self._lock:
            if self._idle:
                return self._idle.pop()[1]
        return self.factory()

    def put(self, mailer: SmtpMailer) -> None:
        if not mailer.connected:
            return  # failed or never used: nothing worth keeping
        with self._lock:
            self._idle.append((time.monotonic(), mailer))
            extra = self._idle[:-self.keep] if len(self._idle) > self.keep else []
            del self._idle[:len(extra)]
            if self._reaper is None:
                self._reaper = threading.Thread(target=self._reap, name="smtp-idle",
                                                daemon=True)
                self._reaper.start()
        for _, old in extra:
            old.close()

    def close_idle(self, older_than: float) -> int:
        now = time.monotonic()
        with self._lock:
            stale = [m for t, m in self._idle if now - t >= older_than]
            self._idle = [(t, m) for t, m in self._idle if now - t < older_than]
        for mailer in stale:
            mailer.close()
        return len(stale)

    def _reap(self) -> None:
        while True:
            time.sleep(min(self.idle_seconds / 2, 5.0))
            self.close_idle(self.idle_seconds)


_pool: tuple[int, str, Pool] | None = None
_pool_lock = threading.Lock()


def pool() -> Pool:
    """This process's pool for the configured server (a new one after a fork, or when the
    settings changed, as in tests)."""
    global _pool
    settings = get_settings()
    ident = f"{settings.resolved_smtp_url}|{settings.smtp_ca_file}"
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid() or _pool[1] != ident:
            if _pool is not None and _pool[0] == os.getpid():
                _pool[2].close_idle(0)
            # One per connection a batch keeps, and one for single emails.
            _pool = (os.getpid(), ident, Pool(SmtpMailer, settings.smtp_idle_seconds,
                                              settings.smtp_connections + 1))
        return _pool[2]
