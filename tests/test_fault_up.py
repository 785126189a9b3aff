"""`twofa up` as a person runs it: embedded default, from an empty directory, Ctrl-C to stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.stack import answers, free_port, wait_until
from tests.twofactor import code
from tests.webhook_receiver import Receiver


def _plain_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWOFA_")}
    return {**env, "TWOFA_MAILCATCHER_PORT": str(free_port()), "TWOFA_SWEEP_INTERVAL": "2",
            "COLUMNS": "200", "TWOFA_WEBHOOK_ALLOW_PRIVATE": "true"}  # the receiver is on loopback


def _twofa(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workers.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_up_runs_the_whole_flow_on_the_embedded_default(tmp_path: Path) -> None:
    env, port = _plain_env(tmp_path), free_port()
    receiver = Receiver().start()
    # Output goes to a file: a pipe nobody reads blocks the children once 64 KiB of logs fill it.
    with open(tmp_path / "up.log", "wb") as log:
        up = subprocess.Popen([sys.executable, "-m", "workers.cli", "up", "--demo", "--port",
                               str(port)], cwd=tmp_path, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

        wait_until(lambda: answers(http), 60, 0.3, message="twofa up to answer")
        login = http.post("/v1/login", json={"workspace": "demo", "email": "admin@demo.test",
                                              "password": "correct-horse-battery"}).json()
        headers = {"Authorization": f"Bearer {login['token']}"}
        refused = http.put("/v1/workspaces/demo/two-factor-policy", headers=headers,
                           json={"require_two_factor": True})
        assert refused.status_code == 409  # admin_needs_two_factor: the admin enrolls first
        secret = http.post("/v1/me/two-factor/setup", headers=headers).json()["secret"]
        assert http.post("/v1/me/two-factor/confirm", headers=headers,
                         json={"code": code(secret, -30)}).status_code == 200
        hook = http.post("/v1/workspaces/demo/webhooks", headers=headers, json={
            "url": receiver.url("/hooks"), "event_types": ["twofa.policy.changed"]})
        assert hook.status_code == 201, hook.text
        receiver.secrets["/hooks"] = hook.json()["secret"]
        r = http.put("/v1/workspaces/demo/two-factor-policy", headers=headers,
                     json={"require_two_factor": True})
        assert r.status_code == 200 and r.json()["rollout"]["teammates"] == 26

        watch = _twofa("rollout", "demo", "--watch", cwd=tmp_path, env=env)
        assert watch.returncode == 0, watch.stdout + watch.stderr
        assert "25 invited, 0 pending, 0 failed" in watch.stdout
        mail = [m.read_bytes() for m in (tmp_path / "var" / "mail").glob("*.eml")]
        invitations = [m for m in mail if b"Demo Team now requires two-factor" in m]
        assert len(invitations) == 25
        table = _twofa("teammates", "demo", cwd=tmp_path, env=env)
        assert "member-00001@demo.test" in table.stdout and "invited" in table.stdout
        # The webhook worker `up` runs beside the invitation worker delivers the event, signed.
        wait_until(lambda: receiver.received, 30, 0.2, message="the policy.changed webhook")
        assert receiver.received[0].verified["type"] == "twofa.policy.changed"
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=60)
        receiver.stop()
    out = (tmp_path / "up.log").read_text(errors="replace")
    assert up.returncode == 0, out
    assert "stopping" in out and "var/mail" in out
    # Two kinds of worker, as production runs them: events never wait behind a rollout.
    assert "twofa-invitations-" in out and "twofa-webhooks-" in out, out
