"""Repeated restarts: five Redis restarts during one rollout, with unacked messages in the
workers' hands and the mail server refusing everything (451) in windows around them; three
PostgreSQL restarts during another; and a worker that stops on an unrecoverable broker fault
exiting non-zero.

Redis and PostgreSQL run privately (tests/private_services.py); Redis without persistence,
so each restart loses every queued message and every unacked one the workers still hold.
Nothing may be lost, no worker may exit, and repeats stay within the README's bound.
Recovery times are printed (run with -s), never asserted.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.private_services import PrivatePostgres, PrivateRedis, available, pause
from tests.stack import Stack, backend, wait_until
from tests.test_fault_restarts import _check_invitations, _connections
from tests.test_fault_rollout import _require_2fa, _rollout, _workspace_with_team

pytestmark = [pytest.mark.uses_backend,
              pytest.mark.skipif(backend() != "postgres", reason="PostgreSQL + Redis faults"),
              pytest.mark.skipif(not available() and not os.environ.get("CI"),
                                 reason="redis-server, initdb and pg_ctl needed")]

TEAM = 3000
RESTARTS = 5
WORKERS = ("first", "second")
POOL = 2


def _still_running(st: Stack, workers: dict[str, subprocess.Popen[bytes]]) -> None:
    died = {name: proc.poll() for name, proc in workers.items() if proc.poll() is not None}
    assert died == {}, {name: st.log(name)[-3000:] for name in died}
    for name in workers:
        assert "Unrecoverable error" not in st.log(name), st.log(name)[-3000:]


def _sent(st: Stack) -> int:
    return len(st.smtp.snapshot())


def _restart(redis: PrivateRedis, st: Stack) -> None:
    """SMTP refuses everything (451) a while, so workers hold batches waiting for their retry
    (unacked, with a countdown) while they keep reading the queue; then Redis goes away
    (SIGTERM, no persistence) and comes back."""
    st.smtp.defer_all = True
    pause(3)
    redis.stop()
    pause(1)
    redis.start()
    pause(1)
    st.smtp.defer_all = False


def test_five_redis_restarts_with_451_windows_keep_workers_running(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    st = Stack(home=tmp_path / "own", overrides={
        "TWOFA_BROKER_URL": private_redis.url,
        "TWOFA_OUTBOX_REDELIVER_SECONDS": "3",
        # Long enough that the 451 windows never exhaust an invitation's retries.
        "TWOFA_EMAIL_RETRY_SCHEDULE": "2,2,4,8,16",
    }).setup()
    try:
        with st.active():
            ws_id, admin_id, addresses = _workspace_with_team(TEAM)
            st.start_relay()
            workers = {name: st.start_worker(name, concurrency=POOL) for name in WORKERS}
            _require_2fa(ws_id, admin_id)
            started = time.monotonic()
            for n in range(1, RESTARTS + 1):
                target = n * TEAM // (RESTARTS + 2)
                wait_until(lambda t=target: _sent(st) >= t, 300, 0.01,  # type: ignore[misc]
                           message=f"{target} invitations before restart {n}")
                _restart(private_redis, st)
                print(f"redis restart {n}: {_sent(st)} of {TEAM} sent")
            back = time.monotonic()
            assert _sent(st) < TEAM, "the restarts came too late to test anything"
            wait_until(lambda: _rollout(ws_id)["pending"] == 0, 600, 0.5, message="rollout to finish")
            print(f"{RESTARTS} redis restarts: rollout finished {time.monotonic() - back:.1f} s after "
                  f"the last restart ({time.monotonic() - started:.1f} s in all)")
            _still_running(st, {**workers, "relay": st.procs["relay"]})
            # No pool process is killed here, so the bound of one worker process tree each
            # (pool processes × TWOFA_SMTP_CONNECTIONS) is generous.
            _check_invitations(st, ws_id, addresses, bound=len(WORKERS) * POOL * _connections(st))
    finally:
        st.teardown()


def test_three_postgres_restarts_keep_workers_running(tmp_path: Path, private_pg: PrivatePostgres) -> None:
    team = 1500
    url = private_pg.create_database(f"twofa_{uuid.uuid4().hex[:8]}")
    st = Stack(home=tmp_path / "own", overrides={
        "TWOFA_DATABASE_URL": url, "TWOFA_OUTBOX_REDELIVER_SECONDS": "3"}).setup()
    try:
        with st.active():
            ws_id, admin_id, addresses = _workspace_with_team(team)
            st.start_relay()
            workers = {name: st.start_worker(name, concurrency=POOL) for name in WORKERS}
            _require_2fa(ws_id, admin_id)
            for n in range(1, 4):
                target = n * team // 5
                wait_until(lambda t=target: _sent(st) >= t, 300, 0.01,  # type: ignore[misc]
                           message=f"{target} invitations before restart {n}")
                private_pg.stop()  # fast shutdown: every connection is cut
                pause(2)
                private_pg.start()
                print(f"postgres restart {n}: {_sent(st)} of {team} sent")
            back = time.monotonic()
            assert _sent(st) < team, "the restarts came too late to test anything"
            wait_until(lambda: _rollout(ws_id)["pending"] == 0, 600, 0.5, message="rollout to finish")
            print(f"3 postgres restarts: rollout finished {time.monotonic() - back:.1f} s after the last")
            _still_running(st, {**workers, "relay": st.procs["relay"]})
            # A send whose "sent" could not be recorded while the database was down repeats,
            # with its Message-ID: at most TWOFA_SMTP_CONNECTIONS per pool process and restart.
            _check_invitations(st, ws_id, addresses, bound=3 * len(WORKERS) * POOL * _connections(st))
    finally:
        st.teardown()


def test_a_worker_that_crashes_exits_non_zero(tmp_path: Path, private_redis: PrivateRedis) -> None:
    """A broker fault Celery cannot recover from (here an ACL that forbids the worker's BRPOP,
    a real misconfiguration): the worker must stop with a failure status, so a supervisor
    (`Restart=on-failure`, Kubernetes) restarts it and monitoring sees it."""
    import redis

    admin = redis.Redis.from_url(private_redis.url)
    admin.execute_command("ACL", "SETUSER", "twofa", "on", ">twofa-password", "~*", "&*",
                          "+@all", "-brpop")
    url = f"redis://twofa:twofa-password@127.0.0.1:{private_redis.port}/0"
    st = Stack(home=tmp_path / "own", overrides={"TWOFA_BROKER_URL": url}).setup()
    try:
        with st.active():
            worker = st.start_worker(concurrency=1)
            worker.wait(120)
            print(f"a worker refused BRPOP exited with status {worker.returncode}")
            assert worker.returncode not in (0, None), st.log("worker")[-3000:]
            assert "NOPERM" in st.log("worker") or "permission" in st.log("worker").lower()
    finally:
        st.teardown()
