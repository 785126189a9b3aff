"""The Redis transport the workers use survives losing Redis with messages in hand.

What Celery does when Redis goes away (see workers/broker_redis.py): it collects the broken
connection, then closes it. With a BRPOP pending on the task channel and a broadcast
(pidbox) channel beside it, collecting leaves the task channel open and cuts the transport
loose from its connection; the close then restores the unacked messages and, on stock
kombu, fails with AttributeError ('NoneType' object has no attribute 'hostname'), which
stops a Celery worker for good.
"""

from __future__ import annotations

import os

import pytest
import redis
from kombu import Connection, Consumer, Exchange, Message, Producer, Queue
from kombu.common import ignore_errors

from tests.private_services import PrivateRedis, available

pytestmark = pytest.mark.skipif(not available() and not os.environ.get("CI"),
                                reason="redis-server needed")


def _worker_like(url: str, queue: str, published: int = 2, brpop: bool = True
                 ) -> tuple[Connection, list[Message]]:
    """A connection as a Celery worker holds it: the task channel with two unacked messages
    (and, `brpop`, a BRPOP waiting for more), and a broadcast channel (Celery's pidbox:
    fanout, auto-delete)."""
    from services.config import Settings
    from workers.celery_app import make_app

    conn = make_app(Settings(broker_url=url, queue=queue)).connection_for_read()
    channel = conn.default_channel
    tasks = Queue(queue, routing_key=queue)
    producer = Producer(channel)
    for i in range(published):
        producer.publish({"i": i}, routing_key=queue, declare=[tasks])
    held: list[Message] = []
    Consumer(channel, [tasks], callbacks=[lambda _body, message: held.append(message)],
             no_ack=False).consume()
    while len(held) < 2:
        conn.drain_events(timeout=5)
    broadcast = Queue(f"{queue}.pidbox", Exchange(f"{queue}.pidbox", type="fanout", auto_delete=True),
                      auto_delete=True)
    Consumer(conn.channel(), [broadcast], callbacks=[lambda _body, _message: None], no_ack=True).consume()
    if brpop:
        channel._brpop_start()  # what Celery's event loop does while it has room for more tasks
    return conn, held


def test_losing_redis_with_messages_in_hand_is_a_connection_error(private_redis: PrivateRedis) -> None:
    conn, held = _worker_like(private_redis.url, "lost-redis")
    assert len(held) == 2
    private_redis.stop()
    # Celery's Consumer.on_connection_error_after_connected, step by step:
    conn.collect(socket_timeout=5)
    ignore_errors(conn, conn.close)  # only connection errors may come out of here


def test_a_late_close_puts_unacked_messages_back(private_redis: PrivateRedis) -> None:
    conn, held = _worker_like(private_redis.url, "late-close", published=5, brpop=False)
    assert len(held) == 2
    channel = conn.default_channel
    channel._disconnect_pools()  # what an interrupted first close got to
    conn._do_close_transport()  # what Connection.collect() does last
    channel.close()  # the second close: it restores the unacked messages
    assert redis.Redis.from_url(private_redis.url).llen("late-close") == 5
