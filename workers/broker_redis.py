"""kombu's Redis transport, made to survive any number of Redis restarts.

When Redis goes away, Celery's consumer collects the broken connection: kombu closes the
channels, then cuts the transport loose from its `kombu.Connection` (`transport.client =
None`). A channel whose first close was interrupted by the outage (its pending BRPOP read
fails) is closed again later, by `Connection.close()`; that close restores the unacked
messages, which builds a new Redis client from `transport.client.hostname`, and fails with
`AttributeError: 'NoneType' object has no attribute 'hostname'`. An AttributeError is no
connection error, so Celery stops the worker ("Unrecoverable error") and it never comes back.

Here the transport keeps its connection's address once it has one. A late close then
reaches Redis: the unacked messages are restored when Redis is back, or the close fails with
a connection error, which Celery recovers from by reconnecting (the outbox republishes what
could not be restored, see services/outbox.py).
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
