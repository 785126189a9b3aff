"""kombu's Redis transport, made to survive any number of Redis restarts.

When Redis goes away, Celery's consumer collects the broken connection and then closes it
(`Consumer.on_connection_error_after_connected`). kombu 5.7 can leave the task channel open
through the collect: if a BRPOP is pending on it (the worker had room for more tasks), its
close first reads that reply, which fails on the dead socket; the transport then closes the
remaining channels, newest first, and the broadcast (pidbox) channel's close fails too
(it deletes its auto-delete queue on the dead server), so the task channel is never reached.
The collect ends by cutting the transport loose from its `kombu.Connection`
(`transport.client = None`). Celery's close that follows closes the task channel at last:
it restores the unacked messages through a new Redis client built from
`transport.client.hostname`, and fails with `AttributeError: 'NoneType' object has no
attribute 'hostname'`. That is no connection error, so Celery stops the worker
("Unrecoverable error") and nothing starts it again.

Here the transport keeps its connection's address once it has one. The late close then
reaches Redis: the unacked messages are restored when Redis is back, or the close fails
with a connection error, which Celery ignores before it reconnects (what could not be
restored comes back through the outbox and the sweep, see README "Nothing is lost").
tests/test_broker_redis.py reproduces the sequence against a real redis-server.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import TRANSPORT_ALIASES, redis


class Transport(redis.Transport):
    _client: Any = None

    @property
    def client(self) -> Any:
        """The `kombu.Connection` this transport belongs to, kept after it lets go."""
        return self._client

    @client.setter
    def client(self, value: Any) -> None:
        if value is not None:
            self._client = value


def install() -> None:
    """Make `redis://` and `rediss://` URLs use this transport in this process."""
    for scheme in ("redis", "rediss"):
        TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
