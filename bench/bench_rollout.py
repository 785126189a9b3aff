"""Rollout of N teammates end to end (flip → last invitation accepted by SMTP on loopback).

Baseline, in the same run and to the same SMTP server: a bare smtplib loop sending the same
number of equivalent multipart messages over one reused connection. Also the flip's latency
(PUT …/two-factor-policy over real HTTP) at 10 and at N teammates.

    .venv/bin/python -m bench.bench_rollout [--teammates 10000] [--workers 2]

Needs PostgreSQL and Redis on 127.0.0.1 (scripts/services.sh starts them).
"""

from __future__ import annotations

import argparse
import os
import signal
import smtplib
import socket
import statistics
import tempfile
import time
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

import httpx

from bench.common import CountingSmtp, drop_database, fresh_env, spawn, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def baseline(port: int, n: int) -> float:
    """Messages/s of a bare smtplib loop: build a multipart message, send, repeat."""
    start = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as conn:
        for i in range(n):
            msg = MIMEMultipart("alternative")
            msg["Subject"], msg["From"], msg["To"] = "Hi", "a@b.test", f"m{i}@b.test"
            msg.attach(MIMEText(f"Hello {i}, set up 2FA.\n", "plain", "utf-8"))
            msg.attach(MIMEText(f"<p>Hello {i}, set up 2FA.</p>\n", "html", "utf-8"))
            conn.sendmail("a@b.test", [f"m{i}@b.test"], msg.as_bytes())
    return n / (time.perf_counter() - start)


def make_workspace(slug: str, teammates: int) -> None:
    from services.accounts import workspaces
    from services.db import unit_of_work

    with unit_of_work() as session:
        ws, _ = workspaces.create(session, slug, slug.title(), f"admin@{slug}.test",
                                  "admin-password-1")
        workspaces.seed(session, ws, teammates, "member-password")


def admin_token(base: str, slug: str) -> str:
    from services.accounts import sessions
    from services.db import unit_of_work
    from services.models import Teammate, utcnow

    with unit_of_work() as session:  # the admin has 2FA, so the flip keeps them at full level
        admin = session.query(Teammate).filter_by(email=f"admin@{slug}.test").one()
        admin.totp_enabled_at = utcnow()
        return sessions.open_session(session, admin)


def flip_latency(http: httpx.Client, slug: str, token: str, rounds: int) -> list[float]:
    """Median-able latencies of flips on and off (no worker runs, so nothing competes)."""
    times = []
    for i in range(rounds):
        start = time.perf_counter()
        r = http.put(f"/v1/workspaces/{slug}/two-factor-policy",
                     headers={"Authorization": f"Bearer {token}"},
                     json={"require_two_factor": i % 2 == 0})
        times.append(time.perf_counter() - start)
        r.raise_for_status()
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--teammates", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (-c 1 each)")
    args = parser.parse_args()
    n = args.teammates

    smtp_port, api_port = free_port(), free_port()
    smtp = CountingSmtp(smtp_port)
    env = fresh_env({"TWOFA_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
                     "TWOFA_SWEEP_INTERVAL": "5"})
    logs = Path(tempfile.mkdtemp(prefix="twofa-bench-"))
    procs = []
    try:
        base_rate = baseline(smtp_port, n)
        make_workspace("small", 9)
        make_workspace("large", n - 1)
        procs.append(spawn(["api", "--port", str(api_port)], env, logs / "api.log"))
        http = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=30)
        wait_for(lambda: _up(http), 30, "the API")
        lat_small = flip_latency(http, "small", admin_token("", "small"), 9)
        large_token = admin_token("", "large")
        lat_large = flip_latency(http, "large", large_token, 8)  # ends off

        procs.append(spawn(["relay"], env, logs / "relay.log"))
        for i in range(args.workers):
            procs.append(spawn(["worker", "-c", "1"], env, logs / f"worker{i}.log"))
        time.sleep(4)  # workers connect and settle before the clock starts
        smtp.reset()
        start = time.perf_counter()
        http.put("/v1/workspaces/large/two-factor-policy", json={"require_two_factor": True},
                 headers={"Authorization": f"Bearer {large_token}"}).raise_for_status()
        invitations = n - 1  # the admin has 2FA already
        wait_for(lambda: smtp.count.value >= invitations, 1800, "every invitation")
        elapsed = smtp.last.value - start
        rate = invitations / elapsed
        print(f"teammates                 {n} ({invitations} without 2FA)")
        print(f"bare smtplib loop         {base_rate:8.0f} msg/s")
        print(f"twofa rollout end to end  {rate:8.0f} invitations/s  ({elapsed:.1f} s, "
              f"{args.workers} worker processes)")
        print(f"ratio rollout / bare loop {rate / base_rate:8.2f}")
        print(f"flip latency, 10 teammates:  p50 {statistics.median(lat_small) * 1000:6.1f} ms"
              f"  max {max(lat_small) * 1000:6.1f} ms")
        print(f"flip latency, {n} teammates: p50 {statistics.median(lat_large) * 1000:6.1f} ms"
              f"  max {max(lat_large) * 1000:6.1f} ms")
        print(f"ratio flip latency {n} / 10: "
              f"{statistics.median(lat_large) / statistics.median(lat_small):.2f}")
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait(30)
        smtp.stop()
        drop_database(env)


def _up(http: httpx.Client) -> bool:
    try:
        return http.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
