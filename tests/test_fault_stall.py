"""A stall is visible: every worker stopped mid-rollout shows in /metrics and /readyz, and
the signal clears once a worker takes the invitations again (real API, relay and workers)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.stack import Stack, free_port, wait_until
from tests.test_fault_rollout import _require_2fa, _rollout, _workspace_with_team

pytestmark = pytest.mark.uses_backend
TEAM = 600


@pytest.fixture
def stall_stack(tmp_path: Path) -> Iterator[Stack]:
    st = Stack(home=tmp_path / "own", overrides={
        "TWOFA_WORKER_HEARTBEAT_SECONDS": "0.5", "TWOFA_STALL_SECONDS": "3"}).setup()
    try:
        with st.active():
            yield st
    finally:
        st.teardown()


def _series(http: httpx.Client, name: str, labels: str = "") -> float:
    body = http.get("/metrics").text
    found = re.search(rf"^{re.escape(name + labels)} (\S+)$", body, re.MULTILINE)
    assert found, f"{name}{labels} not in /metrics"
    return float(found.group(1))


def _live(http: httpx.Client) -> float:
    return _series(http, "twofa_workers_live", '{queues="all"}')


def test_workers_stopped_mid_rollout_show_as_a_stall_until_one_starts(stall_stack: Stack) -> None:
    st = stall_stack
    ws_id, admin_id, _ = _workspace_with_team(TEAM)
    st.smtp.delay = 0.05  # a slower mail server: the rollout is still running when workers stop
    port = free_port()
    st.start("api", "api", "--host", "127.0.0.1", "--port", str(port))
    st.start_relay()
    st.start_worker("first")
    st.start_worker("second")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=20) as http:
        wait_until(lambda: _status(http) == 200, 60, message="api up")
        wait_until(lambda: _live(http) == 2, 60, message="two live workers in /metrics")
        _require_2fa(ws_id, admin_id)
        wait_until(lambda: len(st.smtp.snapshot()) >= 60, 120, 0.05, message="rollout under way")
        assert _series(http, "twofa_invitations_stalled") == 0
        assert http.get("/readyz").json() == {"status": "ready"}

        st.kill("first")
        st.kill("second")  # SIGKILL: no goodbye, their heartbeats simply stop
        stopped = time.monotonic()
        assert _rollout(ws_id)["pending"] > 0, "the rollout ended before the workers stopped"
        wait_until(lambda: _series(http, "twofa_invitations_stalled") == 1, 60, 0.2,
                   message="the stall in /metrics")
        print(f"stall signal {time.monotonic() - stopped:.1f} s after the workers stopped "
              "(3 s stall threshold, 4 s send lease)")
        assert _live(http) == 0
        ready = http.get("/readyz")
        assert ready.status_code == 200  # the API itself can still serve
        warnings = ready.json()["warnings"]
        assert len(warnings) == 1 and "invitations stalled" in warnings[0], warnings
        assert "0 live invitation worker(s)" in warnings[0]

        st.start_worker("third")
        started = time.monotonic()
        wait_until(lambda: _series(http, "twofa_invitations_stalled") == 0, 60, 0.2,
                   message="the stall to clear")
        print(f"stall cleared {time.monotonic() - started:.1f} s after a worker started")
        wait_until(lambda: _live(http) == 1, 30, message="one live worker")
        assert http.get("/readyz").json() == {"status": "ready"}
        wait_until(lambda: _rollout(ws_id)["pending"] == 0, 240, 0.5, message="rollout to finish")


def _status(http: httpx.Client) -> int:
    try:
        return http.get("/readyz").status_code
    except httpx.HTTPError:
        return 0
