"""SIGTERM, as `docker stop` and Kubernetes send it to a container's main process, on each
twofa process: in-flight work finishes or is handed back, nothing is lost.

* workers and relay SIGTERMed together mid-rollout, then started again: every invitation
  arrives, none twice (a warm stop cuts no send short, so the README's repeat bound is 0);
* the API SIGTERMed while requests are in flight (held behind a table lock, so they are
  provably inside the server, not merely sent): it stops taking connections, answers every
  request it had, and what those requests wrote is there (and their emails go out).
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.stack import Stack, backend, free_port, wait_until
from tests.test_fault_restarts import _check_invitations
from tests.test_fault_rollout import _require_2fa, _rollout, _workspace_with_team

pytestmark = pytest.mark.uses_backend


@pytest.mark.skipif(backend() != "postgres", reason="Redis hands unacked tasks back on a warm stop")
def test_sigterm_to_workers_and_relay_mid_rollout_loses_and_repeats_nothing(tmp_path: Path) -> None:
    team = 1000
    st = Stack(home=tmp_path / "own").setup()
    try:
        with st.active():
            ws_id, admin_id, addresses = _workspace_with_team(team)
            st.start_relay()
            st.start_worker("worker-1", concurrency=2)
            st.start_worker("worker-2", concurrency=2)
            _require_2fa(ws_id, admin_id)
            wait_until(lambda: len(st.smtp.snapshot()) >= 150, 120, 0.01, message="rollout under way")
            for name in ("relay", "worker-1", "worker-2"):
                # To the process itself, as `docker stop` does (Celery's main process then
                # stops its pool warmly), not to its group.
                st.procs[name].send_signal(signal.SIGTERM)
            codes = {name: st.procs[name].wait(180) for name in ("relay", "worker-1", "worker-2")}
            for name in codes:
                st.procs.pop(name)
            at_stop = len(st.smtp.snapshot())
            assert codes == {"relay": 0, "worker-1": 0, "worker-2": 0}, (
                st.log("relay")[-1500:], st.log("worker-1")[-1500:])
            assert at_stop < team + 1, "the stop came too late to test anything"
            assert "relay stopped" in st.log("relay")

            st.start_relay()
            st.start_worker("worker-3", concurrency=2)
            back = time.monotonic()
            wait_until(lambda: _rollout(ws_id)["pending"] == 0, 240, 0.5, message="rollout to finish")
            print(f"SIGTERM to relay and workers: {at_stop} sent before; the rest "
                  f"{time.monotonic() - back:.1f} s after they were started again")
            _check_invitations(st, ws_id, addresses, bound=0)
    finally:
        st.teardown()


@pytest.mark.skipif(backend() != "postgres", reason="holds a PostgreSQL table lock")
def test_sigterm_to_the_api_answers_the_requests_in_flight(tmp_path: Path) -> None:
    import psycopg

    from tests.twofactor import bearer

    st = Stack(home=tmp_path / "own").setup()
    port = free_port()
    in_flight = 6
    try:
        with st.active():
            ws_id, _, _ = _workspace_with_team(1)
            token = _admin_token(ws_id)
            st.start_relay()
            st.start_worker()
            st.start("api", "api", "--port", str(port))
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=120) as http:
                wait_until(lambda: _up(http), 60, message="api up")
            assert st.database_url is not None
            lock = psycopg.connect(st.database_url.replace("postgresql+psycopg", "postgresql"))
            # Reads go on; adding a teammate (an INSERT) waits for the lock.
            lock.execute("LOCK TABLE teammates IN EXCLUSIVE MODE")
            answers: dict[str, Any] = {}

            def add(email: str) -> None:
                try:
                    with httpx.Client(base_url=base, timeout=120) as client:
                        answers[email] = client.post("/v1/workspaces/fault/teammates",
                                                     headers=bearer(token), json={
                                                         "email": email, "name": "New", "role": "member"})
                except httpx.HTTPError as exc:
                    answers[email] = exc

            emails = [f"new-{uuid.uuid4().hex[:6]}@fault.test" for _ in range(in_flight)]
            threads = [threading.Thread(target=add, args=(e,)) for e in emails]
            for thread in threads:
                thread.start()
            with psycopg.connect(st.database_url.replace("postgresql+psycopg", "postgresql"),
                                 autocommit=True) as watch:
                wait_until(lambda: _waiting_on_locks(watch) == in_flight, 60, 0.05,
                           message=f"{in_flight} requests waiting inside the API")

            api = st.procs["api"]
            api.send_signal(signal.SIGTERM)
            wait_until(lambda: not _accepts(port), 30, 0.05, message="the API to stop taking connections")
            assert api.poll() is None, "the API left with requests in flight"
            wait_until(lambda: "Waiting for connections to close" in st.log("api"), 30,
                       message="the API to wait for its requests")
            lock.rollback()  # the requests go on
            released = time.monotonic()
            lock.close()
            for thread in threads:
                thread.join(120)
            for email in emails:
                r = answers[email]
                assert isinstance(r, httpx.Response) and r.status_code == 201, (email, r, st.log("api"))
            # uvicorn ends by re-raising the signal it caught, once its shutdown is complete.
            assert api.wait(60) in (0, -signal.SIGTERM)
            assert "Finished server process" in st.log("api"), st.log("api")[-2000:]
            st.procs.pop("api")
            print(f"SIGTERM to the API: {in_flight} requests in flight answered, the API gone "
                  f"{time.monotonic() - released:.1f} s after the lock was released")
            wait_until(lambda: all(st.smtp.to(e) for e in emails), 60,
                       message="the join emails of the teammates added")
            assert all(len(st.smtp.to(e)) == 1 for e in emails)
    finally:
        st.teardown()


def _admin_token(ws_id: int) -> str:
    from sqlalchemy import select

    from services.accounts import sessions
    from services.db import unit_of_work
    from services.models import Teammate

    with unit_of_work() as session:
        admin = session.scalars(select(Teammate).where(
            Teammate.workspace_id == ws_id, Teammate.role == "admin")).one()
        return sessions.open_session(session, admin, factor="totp")  # as if the app signed in


def _up(http: httpx.Client) -> bool:
    try:
        return http.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def _accepts(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def _waiting_on_locks(conn: Any) -> int:
    """INSERTs into teammates waiting for the table lock: the requests, inside the API."""
    with conn.cursor() as cur:
        # (autocommit: inside a transaction pg_stat_activity is a snapshot taken once)
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query ILIKE 'INSERT INTO teammates%%'")
        row = cur.fetchone()
    return int(row[0]) if row else 0
