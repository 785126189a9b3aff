"""Sending over several SMTP connections at once, each send recorded before its connection
sends again.

A remote relay answers each message in 50–150 ms, so one connection gives at most ~20
messages/s whatever the CPU (docs/measurements.md). `send_all` keeps up to `connections`
sends in flight, one thread per connection (smtplib blocks, and waiting on a socket
releases the GIL). Every outcome goes back to the calling thread, which records it
(`record`, typically one database statement for all the outcomes that arrived together);
the connection that sent it waits until then. So at any moment at most `connections` sends
are in flight or accepted but unrecorded: that is how many a SIGKILL can make repeat.

Each send first takes a slot of the installation's shared rate (services/email/pace.py). A
relay that answers 421/451 cuts that rate and pauses every sender; the refused item goes
back to the front of the batch and is tried again after the pause, on a new connection. Only
an item refused THROTTLE_TRIES times in a row is reported (and deferred by the caller): a
throttling relay costs time, not the batch's other items.

A pause or a slow server can leave the calling thread with nothing to record for a long
while, so it also runs `keep_alive` on a clock (every `keep_alive_every` seconds), and after
each recording before the connections that waited for it go on: the caller renews its claim
on the items there, and `send` may decline an item that is no longer its own.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from services.email.connections import Mailers
from services.email.pace import Pace
from services.email.smtp import (
    RecipientDeferred,
    SendError,
    SmtpMailer,
    Throttled,
    TransientSendError,
)

T = TypeVar("T")
THROTTLE_TRIES = 3  # refusals of one item in one batch before it is deferred


@dataclass
class Outcome(Generic[T]):
    """One item's send: a `message_id` means SMTP accepted it, an `error` that it failed;
    neither, that `send` declined it (nothing was sent)."""

    item: T
    message_id: str | None
    error: SendError | None = None
    _recorded: threading.Event = field(default_factory=threading.Event, repr=False)


def send_all(
    items: Sequence[T],
    send: Callable[[SmtpMailer, T], str | None],
    record: Callable[[list[Outcome[T]]], bool],
    mailers: Mailers,
    connections: int,
    pace: Pace,
    keep_alive: Callable[[], None] = lambda: None,
    keep_alive_every: float = 1.0,
) -> list[T]:
    """Send every item; return those never tried (`record` said stop, or every connection
    failed). `record` runs in this thread; returning False stops taking new items.
    `keep_alive` runs in this thread too: after each recording, before the connections it
    recorded send again, and whenever `keep_alive_every` seconds pass with nothing to
    record. `send` returns the Message-ID, or None to decline the item (it is reported,
    neither sent nor failed).

    A connection whose server is unreachable or failing (a transient error that is neither
    one recipient's nor a request to slow down) reports its item and drops out; the others
    go on with the rest.
    """
    todo: deque[T] = deque(items)
    take = threading.Lock()
    done: queue.Queue[Outcome[T] | None] = queue.Queue()
    stop = threading.Event()
    unexpected: list[BaseException] = []
    refusals: dict[int, int] = {}  # id(item) → 421/451 answers so far

    def attempt(mailer: SmtpMailer, item: T, token: int) -> Outcome[T] | None:
        """One try; None when the relay throttled it and it went back into `todo`."""
        try:
            message_id = send(mailer, item)
            if message_id is not None:
                pace.accepted(token)
            return Outcome(item, message_id)
        except Throttled as exc:
            pace.throttled(token)
            with take:
                refusals[id(item)] = tries = refusals.get(id(item), 0) + 1
                if tries < THROTTLE_TRIES:
                    todo.appendleft(item)
                    return None
            return Outcome(item, None, exc)
        except SendError as exc:
            return Outcome(item, None, exc)

    def connection() -> None:
        mailer: SmtpMailer | None = None
        try:
            mailer = mailers.get()
            while not stop.is_set():
                with take:
                    if not todo:
                        return
                    item = todo.popleft()
                token = pace.acquire()
                if stop.is_set():
                    with take:
                        todo.appendleft(item)
                    return
                outcome = attempt(mailer, item, token)
                if outcome is None:
                    continue
                done.put(outcome)
                outcome._recorded.wait()
                if isinstance(outcome.error, TransientSendError) and not isinstance(
                        outcome.error, RecipientDeferred | Throttled):
                    return  # this connection is broken; the item is recorded as deferred
        except BaseException as exc:  # a bug, not SMTP: stop everything and raise it below
            unexpected.append(exc)
            stop.set()
        finally:
            if mailer is not None:
                mailers.put(mailer)
            done.put(None)

    # Each thread runs in a copy of the caller's context: its sends' spans (services/tracing.py)
    # are children of the task's.
    threads = [threading.Thread(target=contextvars.copy_context().run, args=(connection,),
                                name=f"smtp-{i}", daemon=True)
               for i in range(max(1, min(connections, len(items))))]
    for thread in threads:
        thread.start()
    running = len(threads)
    try:
        while running:
            try:
                arrived = [done.get(timeout=keep_alive_every)]
            except queue.Empty:  # a pause or a slow server: nothing to record yet
                arrived = []
            while True:  # whatever else finished meanwhile is recorded together
                try:
                    arrived.append(done.get_nowait())
                except queue.Empty:
                    break
            outcomes = [o for o in arrived if o is not None]
            running -= len(arrived) - len(outcomes)
            try:
                if outcomes and not record(outcomes):
                    stop.set()
                # Before the connections just recorded take their next items: after a stall
                # of this process, they send only what the renewal found still the caller's.
                keep_alive()
            finally:
                for outcome in outcomes:
                    outcome._recorded.set()
    finally:
        stop.set()
        unrecorded: list[T] = []
        while running:  # a failed `record` must not leave connections waiting for ever
            arrived_one = done.get()
            if arrived_one is None:
                running -= 1
            else:
                arrived_one._recorded.set()
                unrecorded.append(arrived_one.item)
        with take:  # every connection has ended: nothing puts an item back any more
            left = [*todo, *unrecorded]
            todo.clear()
        for thread in threads:
            thread.join()
    if unexpected:
        raise unexpected[0]
    return left
