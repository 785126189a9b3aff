"""Rollout of N teammates end to end (flip → last invitation accepted by SMTP on loopback).

Baselines, in the same run and to the same server (Postfix's `smtp-sink`): bare smtplib
loops over one reused connection sending messages of the same shape (text + HTML
alternative), built with the stdlib `EmailMessage` and with `MIMEMultipart`. Also the flip's
latency (PUT …/two-factor-policy over real HTTP) at 10 and at N teammates.

    .venv/bin/python -m bench --only rollout [--teammates 10000] [--workers 2]

Needs PostgreSQL and Redis on 127.0.0.1. The end is the newest `sent_at` once every
invitation is `sent` (each is recorded right after SMTP accepted it).
"""

from __future__ import annotations

import argparse
import os
import signal
import smtplib
import statistics
import tempfile
import time
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any

import httpx

from bench.common import api_up, drop_database, fresh_env, spawn, wait_for
from bench.tools import SmtpSink, ensure_tools, free_port, load_average

TEXT = "Hello {i},\n\nYour workspace now requires two-factor authentication.\n" * 3
HTML = "<p>Hello {i},</p><p>Your workspace now requires two-factor authentication.</p>\n" * 3


def email_message(i: int) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = "Set up 2FA", "a@b.test", f"m{i}@b.test"
    msg.set_content(TEXT.format(i=i))
    msg.add_alternative(HTML.format(i=i), subtype="html")
    return msg


def mime_multipart(i: int) -> MIMEMultipart:
    msg = MIMEMultipart("alternative")
    msg["Subject"], msg["From"], msg["To"] = "Set up 2FA", "a@b.test", f"m{i}@b.test"
    msg.attach(MIMEText(TEXT.format(i=i), "plain", "utf-8"))
    msg.attach(MIMEText(HTML.format(i=i), "html", "utf-8"))
    return msg


def bare_loop(port: int, n: int, build: Any) -> float:
    """Messages/s of build → send_message → repeat, over one connection."""
    start = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as conn:
        for i in range(n):
            conn.send_message(build(i))
    return n / (time.perf_counter() - start)


def make_workspace(slug: str, teammates: int) -> None:
    from services.accounts import workspaces
    from services.db import unit_of_work

    with unit_of_work() as session:
        ws, _ = workspaces.create(session, slug, slug.title(), f"admin@{slug}.test",
                                  "admin-password-1")
        workspaces.seed(session, ws, teammates, "member-password")


def admin_token(slug: str) -> str:
    from services.accounts import sessions
    from services.db import unit_of_work
    from services.models import Teammate, utcnow

    with unit_of_work() as session:  # the admin has 2FA, as requiring it needs
        admin = session.query(Teammate).filter_by(email=f"admin@{slug}.test").one()
        admin.totp_enabled_at = utcnow()
        return sessions.open_session(session, admin)


def flip_latency(http: httpx.Client, slug: str, token: str, rounds: int) -> list[float]:
    """Latencies of flips on and off (no worker runs, so nothing competes)."""
    times = []
    for i in range(rounds):
        start = time.perf_counter()
        r = http.put(f"/v1/workspaces/{slug}/two-factor-policy",
                     headers={"Authorization": f"Bearer {token}"},
                     json={"require_two_factor": i % 2 == 0})
        times.append(time.perf_counter() - start)
        r.raise_for_status()
    return times


def sent_progress(slug: str) -> tuple[int, float | None]:
    """(invitations sent, newest sent_at as a Unix time) of the workspace's current version."""
    from sqlalchemy import func, select

    from services.db import unit_of_work
    from services.models import EnrollmentInvitation, Workspace

    with unit_of_work() as session:
        ws = session.scalars(select(Workspace).where(Workspace.slug == slug)).one()
        count, last = session.execute(
            select(func.count(), func.max(EnrollmentInvitation.sent_at))
            .where(EnrollmentInvitation.workspace_id == ws.id,
                   EnrollmentInvitation.policy_version == ws.policy_version,
                   EnrollmentInvitation.status == "sent")).one()
    return count, (last.timestamp() if last else None)


def run(teammates: int = 10_000, workers: int = 2) -> dict[str, Any]:
    ensure_tools()
    n = teammates
    smtp_port, api_port = free_port(), free_port()
    sink = SmtpSink(smtp_port)
    env = fresh_env({"TWOFA_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
                     "TWOFA_SWEEP_INTERVAL": "5"})
    logs = Path(tempfile.mkdtemp(prefix="twofa-bench-"))
    procs = []
    try:
        load = load_average()
        email_rate = bare_loop(smtp_port, min(n, 5000), email_message)
        mime_rate = bare_loop(smtp_port, min(n, 5000), mime_multipart)
        make_workspace("small", 9)
        make_workspace("large", n - 1)
        procs.append(spawn(["api", "--port", str(api_port)], env, logs / "api.log"))
        http = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=30)
        wait_for(lambda: api_up(http), 30, "the API")
        lat_small = flip_latency(http, "small", admin_token("small"), 9)
        large_token = admin_token("large")
        lat_large = flip_latency(http, "large", large_token, 8)  # ends off

        procs.append(spawn(["relay"], env, logs / "relay.log"))
        for i in range(workers):
            procs.append(spawn(["worker", "-c", "1"], env, logs / f"worker{i}.log"))
        time.sleep(4)  # workers connect and settle before the clock starts
        start = time.time()
        http.put("/v1/workspaces/large/two-factor-policy", json={"require_two_factor": True},
                 headers={"Authorization": f"Bearer {large_token}"}).raise_for_status()
        invitations = n - 1  # the admin has 2FA already
        wait_for(lambda: sent_progress("large")[0] >= invitations, 1800, "every invitation",
                 interval=0.5)
        elapsed = (sent_progress("large")[1] or start) - start
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait(30)
        sink.stop()
        drop_database(env)
    rate = invitations / elapsed
    small, large = statistics.median(lat_small), statistics.median(lat_large)
    print(f"\nrollout: {n} teammates ({invitations} invitations), {workers} worker processes, "
          f"smtp-sink, load average {load:.2f} at start\n")
    rows = [("rollout, flip → last accepted", f"{rate:.0f}/s", f"EmailMessage loop {email_rate:.0f}/s",
             rate / email_rate),
            ("", "", f"MIMEMultipart loop {mime_rate:.0f}/s", rate / mime_rate),
            (f"flip p50, 10 / {n} teammates", f"{small * 1000:.1f} / {large * 1000:.1f} ms", "",
             large / small)]
    print(f"{'what':<36}{'figure':>20}  {'baseline, same run':<28}{'ratio':>6}")
    for what, figure, base, ratio in rows:
        print(f"{what:<36}{figure:>20}  {base:<28}{ratio:>6.2f}")
    return {"teammates": n, "invitations": invitations, "workers": workers,
            "load_average_at_start": round(load, 2), "seconds": round(elapsed, 2),
            "invitations_per_s": round(rate, 1),
            "bare_email_message_per_s": round(email_rate, 1),
            "bare_mime_multipart_per_s": round(mime_rate, 1),
            "ratio_vs_email_message": round(rate / email_rate, 3),
            "ratio_vs_mime_multipart": round(rate / mime_rate, 3),
            "flip_p50_ms_small": round(small * 1000, 2), "flip_p50_ms_large": round(large * 1000, 2),
            "flip_ratio_large_vs_small": round(large / small, 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--teammates", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (-c 1 each)")
    args = parser.parse_args()
    run(args.teammates, args.workers)


if __name__ == "__main__":
    main()
