"""Fault injection: a worker SIGKILLed mid-delivery loses no event; a receiver that drips
its answer byte by byte cannot hold a worker past the attempt's deadline."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.stack import Stack, wait_until
from tests.webhook_receiver import Receiver

EVENTS = 8
DEADLINE = 2.0  # seconds: the attempt deadline these tests give their Sender


@pytest.mark.uses_backend
def test_worker_killed_mid_delivery_loses_no_event(tmp_path: Path) -> None:
    st = Stack(home=tmp_path / "webhooks-fault").setup()
    receiver = Receiver().start()
    in_flight, release = threading.Event(), threading.Event()

    def hang_first(_path: str, before: int) -> int:
        if before == 0:  # hold the first request open until its worker has been killed
            in_flight.set()
            release.wait(60)
        return 200

    receiver.behaviours["/hook"] = hang_first
    try:
        with st.active():
            from services.accounts import workspaces
            from services.db import unit_of_work
            from services.events import recorder
            from services.events.catalog import EventType
            from services.models import WebhookDelivery
            from services.webhooks import service

            with unit_of_work() as session:
                ws, admin = workspaces.create(session, "fault-hooks", "Fault", "a@fault.test", "pw-123456")
                endpoint, secret = service.create(session, ws, receiver.url("/hook"), ["*"])
                event_ids = [
                    recorder.record(session, ws.id, EventType.VERIFICATION_FAILED,
                                    {"teammate_id": admin.id, "reason": f"r{i}"}, admin.id).id
                    for i in range(EVENTS)
                ]
        receiver.secrets["/hook"] = secret
        st.start_worker()
        st.start_relay()
        assert in_flight.wait(60), "the first delivery never started"
        st.kill("worker")  # SIGKILL, pool included, while the POST is in flight
        release.set()
        st.start_worker("worker-2")
        back = time.monotonic()

        def statuses() -> list[str]:
            with st.active(), unit_of_work() as session:
                return list(session.scalars(
                    select(WebhookDelivery.status)
                    .where(WebhookDelivery.endpoint_id == endpoint.id)
                    .order_by(WebhookDelivery.event_seq)
                ))

        wait_until(lambda: statuses() == ["succeeded"] * EVENTS, 150, interval=0.5,
                   message=f"all {EVENTS} deliveries to succeed after the kill")
        print(f"worker SIGKILL mid-delivery: all {EVENTS} delivered {time.monotonic() - back:.1f} s "
              "after a new worker started (the lease, 10 s here, had to lapse)")
        got = receiver.at("/hook")
        assert all(r.verified is not None for r in got), [r.error for r in got]
        first_seen = list(dict.fromkeys(r.webhook_id for r in got))
        assert first_seen == event_ids  # every event, in order
        # The cut-short attempt was repeated (same webhook-id) rather than lost.
        assert [r.webhook_id for r in got].count(event_ids[0]) >= 2
    finally:
        release.set()
        receiver.stop()
        st.teardown()


class DripReceiver:
    """A loopback HTTP server that answers one byte every `interval` seconds, forever.

    `headers`: drip the status line and headers (the answer never completes); otherwise
    send complete headers announcing a large body at once, then drip the body.
    """

    def __init__(self, headers: bool, interval: float = 0.2) -> None:
        self.headers, self.interval = headers, interval
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.stop = threading.Event()
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/drip"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)  # the request (small: one read)
            if self.headers:
                head, body = b"HTTP/1.1 200 OK\r\nX-Slow: ", b"a" * 100_000
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
                head, body = b"", b"a" * 100_000
            for byte in head + body:
                if self.stop.wait(self.interval):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:  # the sender gave up and closed the connection
                    return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def quiet_stack(tmp_path: Path) -> Iterator[Stack]:
    """A database of its own and no worker: the test runs the delivery in this process."""
    # Retries wait a minute here: a run must stop at a failure however slowly a loaded
    # machine records it (with the 0.5 s test schedule the retry could already be due).
    st = Stack(home=tmp_path / "webhooks-deadline",
               overrides={"TWOFA_WEBHOOK_RETRY_SCHEDULE": "60,60,60"}).setup()
    try:
        yield st
    finally:
        st.teardown()


def _endpoint_with_events(st: Stack, url: str, events: int) -> tuple[int, list[str]]:
    with st.active():
        from services.accounts import workspaces
        from services.db import unit_of_work
        from services.events import recorder
        from services.events.catalog import EventType
        from services.webhooks import fanout, service

        with unit_of_work() as session:
            ws, admin = workspaces.create(session, f"hooks-{time.monotonic_ns()}", "Deadline",
                                          "a@deadline.test", "pw-123456")
            endpoint, _secret = service.create(session, ws, url, ["*"])
            recorded = [
                recorder.record(session, ws.id, EventType.VERIFICATION_FAILED,
                                {"teammate_id": admin.id, "reason": f"r{i}"}, admin.id)
                for i in range(events)
            ]
            session.flush()
            fanout.create_deliveries(session, recorded)  # no relay runs here: made in place
        return endpoint.id, [event.id for event in recorded]


def _deliveries(st: Stack, endpoint_id: int) -> list[Any]:
    from services.db import unit_of_work
    from services.models import WebhookAttempt, WebhookDelivery

    with st.active(), unit_of_work() as session:
        rows = session.scalars(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
                               .order_by(WebhookDelivery.event_seq)).all()
        return [(d.status, d.attempts, d.lease_until, d.next_attempt_at,
                 [(a.response_status, a.error, a.duration_ms) for a in session.scalars(
                     select(WebhookAttempt).where(WebhookAttempt.delivery_id == d.id)
                     .order_by(WebhookAttempt.id))])
                for d in rows]


@pytest.mark.parametrize("drip", ["headers", "body"])
def test_a_dripping_receiver_fails_the_attempt_at_its_deadline(quiet_stack: Stack, drip: str) -> None:
    receiver = DripReceiver(headers=drip == "headers")
    try:
        endpoint_id, _ids = _endpoint_with_events(quiet_stack, receiver.url, 2)
        with quiet_stack.active():
            from services.webhooks import delivery
            from services.webhooks.transport import Sender

            started = time.monotonic()
            result = delivery.deliver_endpoint(endpoint_id, lambda: Sender(timeout=DEADLINE))
            elapsed = time.monotonic() - started
        # Each byte came well within any per-read timeout; the attempt still ended, as a failure.
        assert elapsed >= DEADLINE
        assert (result.sent, result.failed_attempts) == (0, 1)
        (status, attempts, lease, next_at, [(code, error, ms)]), later = _deliveries(quiet_stack, endpoint_id)
        assert (status, attempts, lease, code) == ("pending", 1, None, None)
        assert next_at is not None  # waits for its retry
        assert error is not None and "timeout" in error, error
        assert ms >= DEADLINE * 1000
        assert later[:3] == ("pending", 0, None) and later[4] == []  # not sent ahead of the first
    finally:
        receiver.close()


def test_a_window_stops_at_the_first_failure_and_releases_the_rest(quiet_stack: Stack) -> None:
    receiver = Receiver().start()
    receiver.behaviours["/w"] = lambda _path, n: 500 if n == 2 else 204
    try:
        endpoint_id, ids = _endpoint_with_events(quiet_stack, receiver.url("/w"), 6)
        with quiet_stack.active():
            from services.webhooks import delivery

            result = delivery.deliver_endpoint(endpoint_id, window=4)
        assert (result.sent, result.failed_attempts) == (2, 1)
        assert receiver.ids("/w") == ids[:3]
        rows = _deliveries(quiet_stack, endpoint_id)
        assert [(r[0], r[1]) for r in rows] == [("succeeded", 1), ("succeeded", 1), ("pending", 1),
                                              ("pending", 0), ("pending", 0), ("pending", 0)]
        assert all(r[2] is None for r in rows)  # no lease left behind
        assert [len(r[4]) for r in rows] == [1, 1, 1, 0, 0, 0]
        assert rows[2][4][0][:2] == (500, "HTTP 500")
        assert result.retry_in is not None and result.retry_in > 0
    finally:
        receiver.stop()


def test_a_window_stops_before_a_lease_could_lapse(quiet_stack: Stack) -> None:
    """An attempt starts only while a whole deadline plus the record margin is left on the lease.

    The lease leaves room to start attempts for LEASE - DEADLINE - MARGIN = 1.5 s, and each
    answer takes at least ANSWER = 1 s: the first attempt starts, the second starts only if it
    comes within the 1.5 s, the third (after at least 2 s) never; were the margin ignored it
    would (2.5 s). The timing slack is wide on the side that could make the test fail on a
    slow machine: an answer may be 3 s late before the 4 s deadline fails it, and the clock
    starts after the sender is built, so only a stall of 1.5 s before the first POST leaves
    the window unsent. (It used to be 0.5 s of room and 0.2 s of slack, with the sender's
    TLS context built inside the room: too tight for a loaded machine.)
    """
    answer, deadline, lease_seconds, margin = 1.0, 4.0, 6.5, 1.0
    receiver = Receiver().start()

    def slow(_path: str, _n: int) -> int:
        time.sleep(answer)
        return 204

    receiver.behaviours["/l"] = slow
    try:
        endpoint_id, ids = _endpoint_with_events(quiet_stack, receiver.url("/l"), 5)
        with quiet_stack.active():
            from services import crypto
            from services.db import unit_of_work
            from services.webhooks import delivery, signing
            from services.webhooks.transport import Sender

            lease = delivery.Lease(seconds=lease_seconds, record_margin=margin)
            with unit_of_work() as session:
                jobs = delivery.claim_window(session, endpoint_id, 10, lease=lease)
            assert [job.event_id for job in jobs] == ids
            signer = signing.Signer(crypto.decrypt(jobs[0].secret_enc))
            with Sender(timeout=deadline) as sender:
                # After the claim and the sender: this tests send_window's arithmetic.
                leased_at = time.monotonic()
                sent = delivery.send_window(sender, signer, jobs, leased_at, lease)
            assert 1 <= len(sent.done) <= 2 and sent.unsent
            assert [job.event_id for job, _, _ in sent.done] + [job.event_id for job in sent.unsent] == ids
            assert all(outcome.ok for _, outcome, _ in sent.done), [o for _, o, _ in sent.done]
            with unit_of_work() as session:
                delivery.record_window(session, sent)
        assert receiver.ids("/l") == ids[:len(sent.done)]  # nothing unsent was posted
        rows = _deliveries(quiet_stack, endpoint_id)
        assert [r[0] for r in rows] == ["succeeded"] * len(sent.done) + ["pending"] * len(sent.unsent)
        assert all(r[2] is None for r in rows)  # the unsent are released, not left leased
    finally:
        receiver.stop()
