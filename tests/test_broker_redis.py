"""The Redis transport the workers use keeps working after kombu lets go of a connection.

This is the state a Redis restart leaves a worker in (see workers/broker_redis.py): the
channel's first close was cut short by the outage and the `kombu.Connection` has already
dropped its transport when the channel is closed again. Stock kombu then fails with
AttributeError ('NoneType' object has no attribute 'hostname'), which stops a Celery worker
for good; the messages the worker held must instead go back to their queue.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from kombu import Consumer, Message, Producer, Queue

from tests.private_services import PrivateRedis, available

pytestmark = pytest.mark.skipif(not available() and not os.environ.get("CI"),
                                reason="redis-server needed")


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def test_a_late_close_puts_unacked_messages_back(private_redis: PrivateRedis) -> None:
    from services.config import Settings
    from workers.celery_app import make_app

    app = make_app(Settings(broker_url=private_redis.url, queue="late-close"))
    conn = app.connection_for_read()
    channel = conn.default_channel
    queue = Queue("late-close", routing_key="late-close")
    producer = Producer(channel)
    for i in range(5):
        producer.publish({"i": i}, routing_key="late-close", declare=[queue])
    held: list[Message] = []
    Consumer(channel, [queue], callbacks=[lambda _body, message: held.append(message)],
             no_ack=False).consume()
    conn.drain_events(timeout=5)
    conn.drain_events(timeout=5)
    assert len(held) == 2  # unacked, in the worker's hands

    channel._disconnect_pools()  # what the interrupted first close got to
    conn._do_close_transport()  # what Connection.collect() does last
    channel.close()  # the second close: it restores the unacked messages

    assert redis.Redis.from_url(private_redis.url).llen("late-close") == 5
