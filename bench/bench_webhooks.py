"""Webhook deliveries per second to a local receiver, against a bare httpx POST loop.

One command (PostgreSQL + Redis, as in production; TWOFA_TEST_BACKEND=embedded for SQLite):

    .venv/bin/python bench/bench_webhooks.py [--teammates 10000]

It builds a complete installation (tests/stack.py: database, broker, SMTP sink, a real
Celery worker and relay), subscribes one endpoint to `twofa.enrollment.invited`, turns 2FA
on for a workspace of N teammates and times the deliveries at a threaded receiver on
loopback that verifies every signature. Then it makes every delivery pending again and
times the drain alone (no email fan-out competing), and finally POSTs the same body N times
with a bare httpx loop to the same receiver. All figures come from this one run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.stack import Stack, wait_until  # noqa: E402
from tests.webhook_receiver import Receiver  # noqa: E402

PATH = "/bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teammates", type=int, default=10_000)
    run(parser.parse_args().teammates)


def run(teammates: int = 10_000) -> dict[str, float]:
    arrivals: list[float] = []
    lock = threading.Lock()

    def ok(_path: str, _n: int) -> int:
        with lock:
            arrivals.append(time.monotonic())
        return 204

    receiver = Receiver(behaviours={PATH: ok}).start()
    st = Stack(home=Path(tempfile.mkdtemp(prefix="twofa-bench-webhooks-")),
               overrides={"TWOFA_FANOUT_BATCH_SIZE": "100", "TWOFA_SWEEP_INTERVAL": "5"}).setup()
    try:
        endpoint_id, expected = prepare(st, receiver, teammates)
        st.start_worker()
        st.start_relay()
        started = time.monotonic()
        with st.active():
            turn_on(st)
        wait_until(lambda: len(arrivals) >= expected, 1800, interval=0.5, message="rollout deliveries")
        rollout = rate(arrivals[:expected])
        end_to_end = expected / (arrivals[expected - 1] - started)

        with st.active():
            redeliver_all(endpoint_id)
        wait_until(lambda: len(arrivals) >= 2 * expected, 1800, interval=0.5, message="drain")
        drain = rate(arrivals[expected:2 * expected])

        got = receiver.at(PATH)
        unverified = sum(1 for r in got if r.verified is None)
        bare = bare_loop(receiver.url(PATH), got[0].body, dict(got[0].headers), expected)
    finally:
        receiver.stop()
        st.teardown()

    print(f"backend: {'postgres+redis' if st.database_url else 'embedded (sqlite+filesystem)'}; "
          f"events: {expected} twofa.enrollment.invited; unverified signatures: {unverified}")
    print(f"webhooks during the rollout (first to last arrival): {rollout:8.1f} deliveries/s "
          f"(end to end from the policy flip: {end_to_end:.1f}/s)")
    print(f"webhooks drain alone (all {expected} made pending again): {drain:8.1f} deliveries/s")
    print(f"bare httpx POST loop, same receiver and body:        {bare:8.1f} requests/s")
    print(f"ratio webhooks/bare: rollout {rollout / bare:.3f}, drain {drain / bare:.3f}")
    return {"events": expected, "during_rollout_per_s": round(rollout, 1),
            "drain_per_s": round(drain, 1), "bare_httpx_per_s": round(bare, 1),
            "ratio_rollout": round(rollout / bare, 3), "ratio_drain": round(drain / bare, 3)}


def prepare(st: Stack, receiver: Receiver, teammates: int) -> tuple[int, int]:
    with st.active():
        from services.accounts import workspaces
        from services.db import unit_of_work
        from services.webhooks import service

        with unit_of_work() as session:
            ws, _admin = workspaces.create(session, "bench-hooks", "Bench", "admin@bench.test",
                                           "bench-password")
            workspaces.seed(session, ws, teammates, "member-password")
            endpoint, secret = service.create(session, ws, receiver.url(PATH),
                                              ["twofa.enrollment.invited"])
    receiver.secrets[PATH] = secret
    return endpoint.id, teammates  # the admin has 2FA (as requiring it needs): not invited


def turn_on(st: Stack) -> None:
    from services import team_counts
    from services.accounts import workspaces
    from services.db import unit_of_work
    from services.models import Teammate, utcnow
    from services.policy import service as policy

    with unit_of_work() as session:
        ws = workspaces.get_by_slug(session, "bench-hooks")
        admin = session.query(Teammate).filter_by(workspace_id=ws.id, role="admin").one()
        admin.totp_enabled_at = utcnow()  # an admin has 2FA before requiring it
        team_counts.recount(session, ws.id)  # set directly, so counted again
        policy.set_policy(session, ws, True, admin.id)


def redeliver_all(endpoint_id: int) -> None:
    from sqlalchemy import update

    from services import outbox
    from services.db import unit_of_work
    from services.models import WebhookDelivery, utcnow
    from services.topics import Topic

    with unit_of_work() as session:
        session.execute(
            update(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
            .values(status="pending", attempts=0, next_attempt_at=utcnow(), finished_at=None)
        )
        outbox.enqueue(session, Topic.DELIVER_WEBHOOKS, endpoint_id=endpoint_id)


def rate(times: list[float]) -> float:
    return (len(times) - 1) / (times[-1] - times[0])


def bare_loop(url: str, body: bytes, headers: dict[str, str], n: int) -> float:
    headers = {k: v for k, v in headers.items() if k in ("content-type", "webhook-id",
                                                         "webhook-timestamp", "webhook-signature")}
    with httpx.Client(timeout=15, follow_redirects=False) as client:
        started = time.monotonic()
        for _ in range(n):
            client.post(url, content=body, headers=headers).raise_for_status()
        return n / (time.monotonic() - started)


if __name__ == "__main__":
    main()
