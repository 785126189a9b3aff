"""Faults of the outbox relay, with real processes on PostgreSQL and Redis:

* the relay SIGKILLed after a change committed and the relay claimed it, before the broker
  had the task: the event goes out once a relay is back;
* two relays and three workers on one broker during a rollout: no outbox message is
  published twice, no event reaches a webhook twice, no teammate gets two invitations.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.stack import REDIS_URL, Stack, backend, wait_until
from tests.tcp_proxy import TcpProxy
from tests.test_fault_restarts import _check_invitations
from tests.test_fault_rollout import _require_2fa, _rollout, _workspace_with_team
from tests.twofactor import enroll_in_session
from tests.webhook_receiver import Receiver

pytestmark = [pytest.mark.uses_backend,
              pytest.mark.skipif(backend() != "postgres", reason="PostgreSQL + Redis faults")]


def _outbox() -> list[tuple[int, str, object, int, object]]:
    from services.db import unit_of_work
    from services.models import OutboxMessage as M

    with unit_of_work() as session:
        return [tuple(row) for row in session.execute(  # type: ignore[misc]
            select(M.id, M.topic, M.published_at, M.publish_count, M.completed_at).order_by(M.id))]


def _claimed_by_another() -> list[int]:
    """Unpublished outbox rows that another transaction holds (the relay's claim): a
    SKIP LOCKED read skips exactly those."""
    from services.db import unit_of_work
    from services.models import OutboxMessage as M

    with unit_of_work() as session:
        unpublished = set(session.scalars(select(M.id).where(M.published_at.is_(None))))
        free = set(session.scalars(select(M.id).where(M.published_at.is_(None))
                                   .with_for_update(skip_locked=True)))
    return sorted(unpublished - free)


def _queued_tasks(queue: str) -> list[str]:
    """Names of the tasks waiting in the broker's queue (Celery's message headers)."""
    import json

    import redis

    client = redis.Redis.from_url(REDIS_URL)
    return [json.loads(raw)["headers"]["task"] for raw in client.lrange(queue, 0, -1)]


def test_relay_killed_between_commit_and_publish(tmp_path: Path) -> None:
    team = 300
    host, port = REDIS_URL.split("//", 1)[1].split("/", 1)[0].split(":")
    proxy = TcpProxy((host, int(port))).start()
    heartbeat = tmp_path / "relay.heartbeat"
    st = Stack(home=tmp_path / "own").setup()
    try:
        with st.active():
            ws_id, admin_id, addresses = _workspace_with_team(team)
            queue = st.env["TWOFA_QUEUE"]
            # The relay reaches the broker through the proxy; it sweeps only in its first loop.
            st.start("relay", "relay", env={
                "TWOFA_BROKER_URL": f"redis://{proxy.address}/0", "TWOFA_SWEEP_INTERVAL": "3600",
                "TWOFA_RELAY_HEARTBEAT_FILE": str(heartbeat)})
            wait_until(lambda: heartbeat.exists() and all(row[2] for row in _outbox()), 60,
                       message="the relay's first loop (the admin's events published)")

            before = _queued_tasks(queue)  # the admin's events, no worker runs yet
            proxy.hold()  # from here the relay's publishes never reach Redis
            _require_2fa(ws_id, admin_id)  # commits the change and its outbox row
            claimed = wait_until(lambda: proxy.held_bytes() and _claimed_by_another(), 60, 0.05,
                                 message="the relay to claim the row and try to publish it")
            assert b"events.dispatch" in proxy.held_bytes()  # it was publishing that very row
            st.kill("relay")  # SIGKILL: its transaction dies, the broker never got the task

            rows = {row[0]: row for row in _outbox()}
            assert all(rows[i][2] is None and rows[i][3] == 0 for i in claimed), rows
            assert _queued_tasks(queue) == before  # the broker never got the task
            assert _rollout(ws_id)["invited"] == 0

            st.start_worker(concurrency=2)
            st.start_relay()  # straight to Redis this time
            back = time.monotonic()
            wait_until(lambda: _rollout(ws_id)["invited"] == team, 180, 0.2,
                       message="the rollout after the relay came back")
            print(f"relay SIGKILLed before publishing: rollout of {team} done "
                  f"{time.monotonic() - back:.1f} s after a relay was back")
            _check_invitations(st, ws_id, addresses, bound=0)
            rows = {row[0]: row for row in _outbox()}
            assert all(rows[i][3] == 1 for i in claimed), rows  # published once, by the new relay
            wait_until(lambda: all(row[4] for row in _outbox()), 60, message="the outbox to complete")
    finally:
        st.teardown()
        proxy.stop()


def test_two_relays_and_three_workers_on_one_broker(tmp_path: Path) -> None:
    team = 2000
    receiver = Receiver().start()
    st = Stack(home=tmp_path / "own").setup()
    try:
        with st.active():
            ws_id, admin_id, addresses, secret = _seeded_workspace(st, team, receiver.url("/policy"))
            receiver.secrets["/policy"] = secret
            st.start("relay-1", "relay")
            st.start("relay-2", "relay")
            for name in ("worker-1", "worker-2", "worker-3"):
                st.start_worker(name, concurrency=2)
            _require_2fa(ws_id, admin_id)
            started = time.monotonic()
            wait_until(lambda: _rollout(ws_id)["pending"] == 0, 300, 0.5, message="rollout to finish")
            print(f"two relays, three workers: {team} invitations in "
                  f"{time.monotonic() - started:.1f} s")
            _check_invitations(st, ws_id, addresses, bound=0)  # no crash here: not one repeat
            message_ids = Counter(m.message_id for m in st.smtp.snapshot())
            assert [mid for mid, n in message_ids.items() if n > 1] == []

            from services.db import unit_of_work
            from services.models import EnrollmentInvitation, Event

            with unit_of_work() as session:
                sent = session.scalar(select(func.count()).select_from(EnrollmentInvitation).where(
                    EnrollmentInvitation.workspace_id == ws_id, EnrollmentInvitation.status == "sent"))
                # One `invited` event per teammate in the audit log: each send recorded once.
                invited_events = Counter(session.scalars(
                    select(Event.subject).where(Event.type == "twofa.enrollment.invited")))
            assert sent == team
            assert len(invited_events) == team and set(invited_events.values()) == {1}

            # Every outbox message went out once: no relay published what the other had.
            wait_until(lambda: all(row[4] for row in _outbox()), 120, 0.5,
                       message="the outbox to complete")
            assert {row[3] for row in _outbox()} == {1}
            # The policy change reached its webhook once (signed): dispatched once, whichever
            # relay published it and whichever worker ran it.
            changed = _event_ids("twofa.policy.changed")
            wait_until(lambda: len(receiver.at("/policy")) >= 1, 120, 0.2, message="the webhook")
            wait_until(lambda: _deliveries_done(), 60, 0.2, message="the delivery recorded")
            got = receiver.at("/policy")
            assert all(r.verified is not None for r in got), [r.error for r in got]
            assert [r.webhook_id for r in got] == changed
    finally:
        receiver.stop()
        st.teardown()


def _seeded_workspace(st: Stack, team: int, hook_url: str) -> tuple[int, int, list[str], str]:
    """A workspace made and seeded with the `twofa` command, its admin enrolled, and a webhook
    for policy changes."""
    from services.accounts import workspaces
    from services.db import unit_of_work
    from services.models import Teammate
    from services.webhooks import service

    slug = "crowd"
    for args in (["workspace", "create", slug, "--name", "Crowd", "--admin-email",
                  f"admin@{slug}.test", "--admin-password", "admin-password-123"],
                 ["seed", slug, "--teammates", str(team), "--password", "member-password"]):
        done = subprocess.run([sys.executable, "-m", "workers.cli", *args], env={**os.environ, **st.env},
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    with unit_of_work() as session:
        ws = workspaces.get_by_slug(session, slug)
        admin = session.scalars(select(Teammate).where(
            Teammate.workspace_id == ws.id, Teammate.role == "admin")).one()
        enroll_in_session(session, admin.id)
        _, secret = service.create(session, ws, hook_url, ["twofa.policy.changed"])
        ids = (ws.id, admin.id)
    return (*ids, [f"member-{i:05d}@{slug}.test" for i in range(1, team + 1)], secret)


def _event_ids(event_type: str) -> list[str]:
    from services.db import unit_of_work
    from services.models import Event

    with unit_of_work() as session:
        return list(session.scalars(select(Event.id).where(Event.type == event_type)))


def _deliveries_done() -> bool:
    from services.db import unit_of_work
    from services.models import WebhookDelivery

    with unit_of_work() as session:
        return all(s == "succeeded" for s in session.scalars(select(WebhookDelivery.status)))
