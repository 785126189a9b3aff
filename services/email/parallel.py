"""Sending over several SMTP connections at once, each send recorded before its connection
sends again.

A remote relay answers each message in 50–150 ms, so one connection gives at most ~20
messages/s whatever the CPU (docs/measurements.md). `send_all` keeps up to `connections`
sends in flight, one thread per connection (smtplib blocks, and waiting on a socket
releases the GIL). Every outcome goes back to the calling thread, which records it
(`record`, typically one database statement for all the outcomes that arrived together);
the connection that sent it waits until then. So at any moment at most `connections` sends
are in flight or accepted but unrecorded: that is how many a SIGKILL can make repeat.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from services.email.smtp import RecipientDeferred, SendError, SmtpMailer, TransientSendError

T = TypeVar("T")


@dataclass
class Outcome(Generic[T]):
    """One item's send: `error` None means SMTP accepted it."""

    item: T
    message_id: str | None
    error: SendError | None = None
    _recorded: threading.Event = field(default_factory=threading.Event, repr=False)


def send_all(
    items: Sequence[T],
    send: Callable[[SmtpMailer, T], str],
    record: Callable[[list[Outcome[T]]], bool],
    mailer_factory: Callable[[], SmtpMailer],
    connections: int,
) -> list[T]:
    """Send every item; return those never tried (`record` said stop, or every connection
    failed). `record` runs in this thread; returning False stops taking new items.

    A connection whose server is unreachable or failing (a transient error that is not one
    recipient's) reports its item and drops out; the others go on with the rest.
    """
    todo: deque[T] = deque(items)
    take = threading.Lock()
    done: queue.Queue[Outcome[T] | None] = queue.Queue()
    stop = threading.Event()
    unexpected: list[BaseException] = []

    def connection() -> None:
        try:
            with mailer_factory() as mailer:
                while not stop.is_set():
                    with take:
                        if not todo:
                            return
                        item = todo.popleft()
                    try:
                        outcome = Outcome(item, send(mailer, item))
                    except SendError as exc:
                        outcome = Outcome(item, None, exc)
                    done.put(outcome)
                    outcome._recorded.wait()
                    if isinstance(outcome.error, TransientSendError) and not isinstance(
                            outcome.error, RecipientDeferred):
                        return  # this connection is broken; the item is recorded as deferred
        except BaseException as exc:  # a bug, not SMTP: stop everything and raise it below
            unexpected.append(exc)
            stop.set()
        finally:
            done.put(None)

    threads = [threading.Thread(target=connection, name=f"smtp-{i}", daemon=True)
               for i in range(max(1, min(connections, len(items))))]
    for thread in threads:
        thread.start()
    running = len(threads)
    try:
        while running:
            arrived = [done.get()]
            while True:  # whatever else finished meanwhile is recorded together
                try:
                    arrived.append(done.get_nowait())
                except queue.Empty:
                    break
            outcomes = [o for o in arrived if o is not None]
            running -= len(arrived) - len(outcomes)
            if outcomes:
                try:
                    if not record(outcomes):
                        stop.set()
                finally:
                    for outcome in outcomes:
                        outcome._recorded.set()
    finally:
        stop.set()
        with take:
            left = list(todo)
            todo.clear()
        while running:  # a failed `record` must not leave connections waiting for ever
            arrived_one = done.get()
            if arrived_one is None:
                running -= 1
            else:
                arrived_one._recorded.set()
                left.append(arrived_one.item)
        for thread in threads:
            thread.join()
    if unexpected:
        raise unexpected[0]
    return left
