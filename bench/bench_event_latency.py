"""Event to webhook receiver latency while a 10,000-teammate rollout runs, against idle.

One command (PostgreSQL + Redis, as in production):

    .venv/bin/python -m bench --only event-latency [--teammates 10000]

Two topologies on loopback (tests/stack.py), each a fresh installation: production's two
invitation workers (`twofa worker --queues invitations`) and a webhook worker (`--queues
webhooks`); then two workers on all queues (plain `twofa worker`). Each with the relay, an
SMTP server answering DATA after 150 ms (a remote relay), and a receiver verifying every
signature. The rollout runs in one workspace; in a second one an endpoint subscribes to
`twofa.teammate.role_changed`, and the bench flips a teammate's role every half second (the
event commits with it) and measures the time from the commit to the delivery's arrival. The
two share every queue and worker. First with nothing else running (the baseline), then while 2FA is
turned on for N teammates, until the last invitation is out.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import percentile
from tests.stack import Stack, wait_until
from tests.webhook_receiver import Receiver

PATH = "/latency"
EVERY = 0.5  # seconds between events
IDLE_EVENTS = 20
SMTP_DELAY = 0.15  # a remote relay: DATA answered after 150 ms


TOPOLOGIES: dict[str, list[tuple[str, str]]] = {  # worker name -> --queues
    "production": [("invitations-1", "invitations"), ("invitations-2", "invitations"),
                   ("webhooks", "webhooks")],
    "all_queues": [("worker-1", "all"), ("worker-2", "all")],
}


def run(teammates: int = 10_000) -> dict[str, Any]:
    result: dict[str, Any] = {"teammates": teammates, "smtp_delay_ms": int(SMTP_DELAY * 1000)}
    for topology, workers in TOPOLOGIES.items():
        print(f"event-latency: {topology} ({', '.join(f'{n}: {q}' for n, q in workers)})")
        result[topology] = run_topology(teammates, workers)
    return result


def run_topology(teammates: int, workers: list[tuple[str, str]]) -> dict[str, Any]:
    receiver = Receiver().start()
    st = Stack(home=Path(tempfile.mkdtemp(prefix="twofa-bench-latency-")), overrides={
        "TWOFA_FANOUT_BATCH_SIZE": "100", "TWOFA_SWEEP_INTERVAL": "5",
        "TWOFA_SMTP_CONNECTIONS": "8", "TWOFA_SEND_LEASE_SECONDS": "120"}).setup()
    st.smtp.delay = SMTP_DELAY
    committed: dict[str, float] = {}
    try:
        with st.active():
            rollout_ws, events_ws = prepare(receiver, teammates)
            for name, queues in workers:
                st.start(name, "worker", "--queues", queues, "-c", "2")
            st.start_relay()
            first = _event(events_ws, committed)
            wait_until(lambda: _delivered(receiver, first), 120, message="the first delivery")
            idle = [_event(events_ws, committed, pause=EVERY) for _ in range(IDLE_EVENTS)]
            started = time.monotonic()
            turn_on(rollout_ws)
            during: list[str] = []
            while _pending(rollout_ws):
                during.append(_event(events_ws, committed, pause=EVERY))
            rollout_seconds = time.monotonic() - started
            wait_until(lambda: _delivered(receiver, *idle, *during), 600, 0.5,
                       message="every event delivered")
    finally:
        receiver.stop()
        st.teardown()
    arrived = {r.verified["id"]: r.received_at for r in receiver.at(PATH) if r.verified}
    result = {"rollout_seconds": round(rollout_seconds, 1),
              "idle": _summary(idle, committed, arrived),
              "during_rollout": _summary(during, committed, arrived)}
    print(f"event → receiver, idle:           p50 {result['idle']['p50_s']:.2f} s, "
          f"p95 {result['idle']['p95_s']:.2f} s ({len(idle)} events)")
    print(f"event → receiver, during rollout: p50 {result['during_rollout']['p50_s']:.2f} s, "
          f"p95 {result['during_rollout']['p95_s']:.2f} s, max {result['during_rollout']['max_s']:.2f} s "
          f"({len(during)} events; {teammates} invitations in {rollout_seconds:.0f} s)")
    return result


def _summary(names: list[str], committed: dict[str, float], arrived: dict[str, float]) -> dict[str, Any]:
    latencies = [arrived[n] - committed[n] for n in names]
    return {"events": len(names), "p50_s": round(percentile(latencies, 50), 3),
            "p95_s": round(percentile(latencies, 95), 3), "max_s": round(max(latencies), 3)}


def _delivered(receiver: Receiver, *ids: str) -> bool:
    got = {r.verified["id"] for r in receiver.at(PATH) if r.verified}
    return set(ids) <= got


def _event(ws_id: int, committed: dict[str, float], pause: float = 0) -> str:
    """Flip the member's role (its event commits with it); note when the commit returned."""
    from sqlalchemy import select

    from services.accounts import teammates
    from services.db import unit_of_work
    from services.models import Event, Teammate, Workspace

    with unit_of_work() as session:
        ws = session.get(Workspace, ws_id)
        assert ws is not None
        people = {t.email: t for t in session.scalars(select(Teammate).where(Teammate.workspace_id == ws_id))}
        member = people["member-00001@bench-events.test"]
        teammates.change_role(session, ws, member, "member" if member.role == "admin" else "admin",
                              people["admin@bench.test"])
        session.flush()
        event_id = session.scalar(select(Event.id).where(Event.workspace_id == ws_id)
                                  .order_by(Event.seq.desc()).limit(1))
    assert event_id is not None
    committed[event_id] = time.time()
    time.sleep(pause)
    return event_id


def prepare(receiver: Receiver, teammates: int) -> tuple[int, int]:
    """The rollout's workspace (N teammates) and the events' (one member and the endpoint)."""
    from services.accounts import workspaces
    from services.db import unit_of_work
    from services.webhooks import service

    with unit_of_work() as session:
        ws, _admin = workspaces.create(session, "bench-latency", "Bench", "admin@bench.test",
                                       "bench-password")
        workspaces.seed(session, ws, teammates, "member-password")
        other, _ = workspaces.create(session, "bench-events", "Events", "admin@bench.test",
                                     "bench-password")
        workspaces.seed(session, other, 1, "member-password")
        _endpoint, secret = service.create(session, other, receiver.url(PATH),
                                           ["twofa.teammate.role_changed"])
        ids = ws.id, other.id
    receiver.secrets[PATH] = secret
    return ids


def turn_on(ws_id: int) -> None:
    from services import team_counts
    from services.db import unit_of_work
    from services.models import Teammate, Workspace, utcnow
    from services.policy import service as policy

    with unit_of_work() as session:
        ws = session.get(Workspace, ws_id)
        assert ws is not None
        admin = session.query(Teammate).filter_by(workspace_id=ws.id, role="admin").one()
        admin.totp_enabled_at = utcnow()  # an admin has 2FA before requiring it
        team_counts.recount(session, ws.id)
        policy.set_policy(session, ws, True, admin.id)


def _pending(ws_id: int) -> bool:
    from services.db import unit_of_work
    from services.models import Workspace
    from services.policy import service as policy

    with unit_of_work() as session:
        ws = session.get(Workspace, ws_id)
        assert ws is not None
        return policy.rollout(session, ws).pending > 0
