"""Rollouts end to end (flip → last invitation accepted by SMTP on loopback).

Parts (`python -m bench --only …`):
* `rollout`: N teammates to Postfix's `smtp-sink`, against bare smtplib loops over one
  reused connection sending messages of the same shape (text + HTML alternative), built with
  the stdlib `EmailMessage` and with `MIMEMultipart`, in the same run and to the same server.
  Also the flip's latency (PUT …/two-factor-policy over real HTTP) at 10 and at N teammates,
  and the CPU each kind of process spent per email.
* `remote`: the same through an SMTP server that waits 50 ms before answering DATA (a remote
  relay), against the bare `EmailMessage` loop to that server.
* `memory`: peak RSS of the worker and relay processes for rollouts of 1,000 and 100,000.
* `scale`: 1, 2 and 4 worker processes, and two groups (relay + 2 workers each, as two
  machines would run) on the same broker and database.

Needs PostgreSQL and Redis on 127.0.0.1. The end of a rollout is the newest `sent_at` once
every invitation is `sent` (each is recorded right after SMTP accepted it).
"""

from __future__ import annotations

import argparse
import os
import signal
import smtplib
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any

import httpx

from bench.common import api_up, drop_database, fresh_env, spawn, wait_for
from bench.tools import (
    SlowSmtp,
    SmtpSink,
    cpu_seconds,
    ensure_tools,
    free_port,
    group_cpu_seconds,
    load_average,
    peak_rss_mib,
)

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


def bare_loop(port: int, n: int, build: Callable[[int], Any]) -> float:
    """Messages/s of build → send_message → repeat, over one connection."""
    start = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as conn:
        for i in range(n):
            conn.send_message(build(i))
    return n / (time.perf_counter() - start)


def make_workspace(slug: str, teammates: int) -> int:
    from services.accounts import workspaces
    from services.db import unit_of_work

    with unit_of_work() as session:
        ws, _ = workspaces.create(session, slug, slug.title(), f"admin@{slug}.test",
                                  "admin-password-1")
        workspaces.seed(session, ws, teammates, "member-password")
        return ws.id


def admin_token(slug: str) -> str:
    from services import team_counts
    from services.accounts import sessions
    from services.db import unit_of_work
    from services.models import Teammate, utcnow

    with unit_of_work() as session:  # the admin has 2FA, as requiring it needs
        admin = session.query(Teammate).filter_by(email=f"admin@{slug}.test").one()
        admin.totp_enabled_at = utcnow()
        team_counts.recount(session, admin.workspace_id)  # set directly, so counted again
        # Opened with the app, as a sign-in is: turning the requirement off is a sensitive
        # change and needs a session verified within TWOFA_REAUTH_SECONDS.
        return sessions.open_session(session, admin, factor="totp")


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


def flip_in_process(slug: str) -> None:
    """The PUT's commit (policy, version, event, outbox) without an API process."""
    from sqlalchemy import select

    from services.db import unit_of_work
    from services.models import Teammate, Workspace
    from services.policy import service as policy

    with unit_of_work() as session:
        ws = session.scalars(select(Workspace).where(Workspace.slug == slug)).one()
        admin = session.scalars(select(Teammate).where(Teammate.workspace_id == ws.id,
                                                       Teammate.role == "admin")).one()
        policy.set_policy(session, ws, True, admin.id)


def progress(slug: str) -> tuple[int, int, float | None]:
    """(invitations sent, failed, newest sent_at as a Unix time) of the current version."""
    from sqlalchemy import func, select

    from services.db import unit_of_work
    from services.models import EnrollmentInvitation, Workspace

    inv = EnrollmentInvitation
    with unit_of_work() as session:
        ws = session.scalars(select(Workspace).where(Workspace.slug == slug)).one()
        sent, failed, last = session.execute(
            select(func.count().filter(inv.status == "sent"),
                   func.count().filter(inv.status == "failed"),
                   func.max(inv.sent_at))
            .where(inv.workspace_id == ws.id, inv.policy_version == ws.policy_version)).one()
    return sent, failed, (last.timestamp() if last else None)


def postgres_cpu(env: dict[str, str]) -> float:
    """CPU seconds so far of the PostgreSQL backends serving this run's database."""
    import psycopg

    name = env["TWOFA_DATABASE_URL"].rsplit("/", 1)[1]
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        pids = [row[0] for row in c.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,))]
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except OSError:  # a backend that ended meanwhile
            continue
    return total


def dispatch_tasks() -> tuple[int, int]:
    """(outbox rows, Celery tasks) that dispatched the run's events: the relay publishes the
    rows of one loop together (one published_at) merged into tasks of ≤MAX_MERGED_ITEMS events."""
    from sqlalchemy import select

    from services.db import unit_of_work
    from services.models import OutboxMessage
    from services.outbox import MAX_MERGED_ITEMS

    per_loop: dict[object, int] = {}
    rows = 0
    with unit_of_work() as session:
        for published_at, payload in session.execute(
                select(OutboxMessage.published_at, OutboxMessage.payload)
                .where(OutboxMessage.topic == "events.dispatch")):
            rows += 1
            per_loop[published_at] = per_loop.get(published_at, 0) + len(payload["event_seqs"])
    return rows, sum(-(-n // MAX_MERGED_ITEMS) for n in per_loop.values())


def rollout_once(n: int, smtp_url: str, workers: int = 2, groups: int = 1,
                 smtp_pid: int | None = None, api: bool = False,
                 env_extra: dict[str, str] | None = None) -> dict[str, Any]:
    """One rollout of `n` teammates (n - 1 invitations: the admin has 2FA) on a fresh database:
    `groups` × (a relay and `workers` worker processes, `-c 1` each)."""
    env = fresh_env({"TWOFA_SMTP_URL": smtp_url, "TWOFA_SWEEP_INTERVAL": "5",
                     **(env_extra or {})})
    logs = Path(tempfile.mkdtemp(prefix="twofa-bench-"))
    procs: dict[str, subprocess.Popen[bytes]] = {}
    out: dict[str, Any] = {"teammates": n, "invitations": n - 1, "worker_processes": workers * groups,
                           "groups": groups, "load_average_at_start": round(load_average(), 2)}
    try:
        if api:
            make_workspace("small", 9)
        make_workspace("large", n - 1)
        token = admin_token("large")
        if api:
            api_port = free_port()
            procs["api"] = spawn(["api", "--port", str(api_port)], env, logs / "api.log")
            http = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=30)
            wait_for(lambda: api_up(http), 30, "the API")
            small = statistics.median(flip_latency(http, "small", admin_token("small"), 9))
            large = statistics.median(flip_latency(http, "large", token, 8))  # ends off
            out.update(flip_p50_ms_small=round(small * 1000, 2),
                       flip_p50_ms_large=round(large * 1000, 2),
                       flip_ratio_large_vs_small=round(large / small, 3))
        for g in range(groups):
            procs[f"relay{g}"] = spawn(["relay"], env, logs / f"relay{g}.log")
            for i in range(workers):
                procs[f"worker{g}.{i}"] = spawn(["worker", "-c", "1"], env,
                                                logs / f"worker{g}.{i}.log")
        time.sleep(4)  # workers connect and settle before the clock starts

        def cpu() -> dict[str, float]:
            kinds: dict[str, float] = {"worker": 0.0, "relay": 0.0, "postgres": postgres_cpu(env)}
            for name, p in procs.items():
                kind = name.rstrip("0123456789.")
                if kind in kinds:
                    kinds[kind] += group_cpu_seconds(p.pid)
            if smtp_pid:
                kinds["smtp server"] = cpu_seconds(smtp_pid)
            return kinds

        before = cpu()
        start = time.time()
        if api:
            http.put("/v1/workspaces/large/two-factor-policy", json={"require_two_factor": True},
                     headers={"Authorization": f"Bearer {token}"}).raise_for_status()
        else:
            flip_in_process("large")
        wait_for(lambda: sum(progress("large")[:2]) >= n - 1, 3600, "every invitation",
                 interval=0.5)
        _, failed, last = progress("large")
        elapsed = (last or start) - start
        after = cpu()
        rows, tasks = dispatch_tasks()
        out.update(
            failed=failed,
            dispatch_outbox_rows=rows, dispatch_tasks=tasks,
            seconds=round(elapsed, 2), invitations_per_s=round((n - 1) / elapsed, 1),
            cpu_us_per_email={k: round((after[k] - before[k]) / (n - 1) * 1e6)
                              for k in after},
            worker_peak_rss_mib=round(max(peak_rss_mib(p.pid) for k, p in procs.items()
                                          if k.startswith("worker")), 1),
            relay_peak_rss_mib=round(max(peak_rss_mib(p.pid) for k, p in procs.items()
                                         if k.startswith("relay")), 1),
        )
    finally:
        for p in procs.values():
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:  # measured already: a slow exit must not stop
                os.killpg(p.pid, signal.SIGKILL)  # the run (a loaded machine, a lost child)
                p.wait(30)
        drop_database(env)
    return out


def _table(rows: list[tuple[str, str, str, float | None]]) -> None:
    print(f"{'what':<44}{'figure':>22}  {'baseline, same run':<30}{'ratio':>6}")
    for what, figure, base, ratio in rows:
        print(f"{what:<44}{figure:>22}  {base:<30}{'' if ratio is None else f'{ratio:6.2f}'}")


def run(teammates: int = 10_000, workers: int = 2) -> dict[str, Any]:
    """The local rollout against the bare loops, with the flip latency and CPU per email."""
    ensure_tools()
    n = teammates
    smtp_port = free_port()
    sink = SmtpSink(smtp_port)
    loops = min(n, 5000)
    try:
        load = load_average()
        # The baselines right before and right after the rollout, and their mean: the
        # machine is shared, and its load may change while the rollout runs.
        before = bare_loop(smtp_port, loops, email_message), bare_loop(smtp_port, loops, mime_multipart)
        result = rollout_once(n, f"smtp://127.0.0.1:{smtp_port}", workers, api=True,
                              smtp_pid=sink.proc.pid)
        after = bare_loop(smtp_port, loops, email_message), bare_loop(smtp_port, loops, mime_multipart)
    finally:
        sink.stop()
    email_rate, mime_rate = (before[0] + after[0]) / 2, (before[1] + after[1]) / 2
    rate = result["invitations_per_s"]
    print(f"\nrollout: {n} teammates ({n - 1} invitations), {workers} worker processes, "
          f"smtp-sink, load average {load:.2f} at start\n")
    _table([("rollout, flip → last accepted", f"{rate:.0f}/s", f"EmailMessage loop {email_rate:.0f}/s",
             rate / email_rate),
            ("", "", f"MIMEMultipart loop {mime_rate:.0f}/s", rate / mime_rate),
            (f"flip p50, 10 / {n} teammates",
             f"{result['flip_p50_ms_small']:.1f} / {result['flip_p50_ms_large']:.1f} ms", "",
             result["flip_ratio_large_vs_small"])])
    print("CPU per email (µs): " + ", ".join(f"{k} {v}" for k, v in result["cpu_us_per_email"].items()))
    print(f"(baselines: mean of the loops right before and right after the rollout: "
          f"EmailMessage {before[0]:.0f} and {after[0]:.0f}/s, MIMEMultipart {before[1]:.0f} and "
          f"{after[1]:.0f}/s)")
    return {**result, "load_average_at_start": round(load, 2),
            "bare_email_message_per_s": round(email_rate, 1),
            "bare_mime_multipart_per_s": round(mime_rate, 1),
            "bare_loops_before_after": {"email_message": [round(before[0], 1), round(after[0], 1)],
                                        "mime_multipart": [round(before[1], 1), round(after[1], 1)]},
            "ratio_vs_email_message": round(rate / email_rate, 3),
            "ratio_vs_mime_multipart": round(rate / mime_rate, 3)}


def remote(teammates: int = 3000, workers: int = 2, delay: float = 0.05) -> dict[str, Any]:
    """Through a server that answers DATA after `delay` s, against the bare loop to it."""
    port = free_port()
    server = SlowSmtp(port, delay)
    try:
        load = load_average()
        before = bare_loop(port, 150, email_message)
        result = rollout_once(teammates, f"smtp://127.0.0.1:{port}", workers,
                              smtp_pid=server.proc.pid)
        after = bare_loop(port, 150, email_message)  # before and after: see run()
    finally:
        server.stop()
    bare = (before + after) / 2
    rate = result["invitations_per_s"]
    connections = int(os.environ.get("TWOFA_SMTP_CONNECTIONS", "8"))
    print(f"\nrollout through a relay answering DATA after {delay * 1000:.0f} ms: {teammates} "
          f"teammates, {workers} worker processes × {connections} SMTP connections, "
          f"load average {load:.2f}\n")
    _table([("rollout, flip → last accepted", f"{rate:.0f}/s", f"EmailMessage loop {bare:.1f}/s",
             rate / bare)])
    return {**result, "delay_ms": delay * 1000, "smtp_connections": connections,
            "load_average_at_start": round(load, 2), "bare_email_message_per_s": round(bare, 1),
            "bare_loop_before_after": [round(before, 1), round(after, 1)],
            "ratio_vs_email_message": round(rate / bare, 3)}


def flip(large: int = 100_000, rounds: int = 15) -> dict[str, Any]:
    """Median PUT …/two-factor-policy over real HTTP at 10 and at `large` teammates, in one
    API process on one database (no worker runs: the flip alone is timed, not the rollout)."""
    env = fresh_env()
    logs = Path(tempfile.mkdtemp(prefix="twofa-bench-"))
    api = None
    try:
        make_workspace("small", 9)
        make_workspace("large", large - 1)
        port = free_port()
        api = spawn(["api", "--port", str(port)], env, logs / "api.log")
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        wait_for(lambda: api_up(http), 30, "the API")
        small_token, large_token = admin_token("small"), admin_token("large")
        flip_latency(http, "small", small_token, 4)  # warm up: pools, caches, plans
        flip_latency(http, "large", large_token, 4)
        small_ms = statistics.median(flip_latency(http, "small", small_token, rounds)) * 1000
        large_ms = statistics.median(flip_latency(http, "large", large_token, rounds)) * 1000
    finally:
        if api is not None:
            os.killpg(api.pid, signal.SIGTERM)
            api.wait(30)
        drop_database(env)
    out = {"teammates": large, "rounds": rounds, "flip_p50_ms_10": round(small_ms, 2),
           f"flip_p50_ms_{large}": round(large_ms, 2),
           "ratio_large_vs_10": round(large_ms / small_ms, 3)}
    _table([(f"flip p50, 10 / {large:,} teammates", f"{small_ms:.1f} / {large_ms:.1f} ms",
             "the same PUT at 10 teammates", out["ratio_large_vs_10"])])
    return out


def memory(sizes: tuple[int, int] = (1_000, 100_000), workers: int = 2) -> dict[str, Any]:
    """Peak RSS of worker and relay processes, a small rollout against a large one."""
    ensure_tools()
    port = free_port()
    sink = SmtpSink(port)
    try:
        small, large = (rollout_once(n, f"smtp://127.0.0.1:{port}", workers) for n in sizes)
        results = [small, large]
    finally:
        sink.stop()
    small, large = results
    print(f"\npeak RSS, rollouts of {sizes[0]} and {sizes[1]} teammates ({workers} workers)\n")
    rows = []
    out: dict[str, Any] = {"small": small, "large": large}
    for kind in ("worker", "relay"):
        a, b = small[f"{kind}_peak_rss_mib"], large[f"{kind}_peak_rss_mib"]
        rows.append((f"{kind} peak RSS at {sizes[1]}", f"{b:.1f} MiB", f"at {sizes[0]}: {a:.1f} MiB",
                     b / a))
        out[f"{kind}_rss_ratio"] = round(b / a, 3)
    rows.append((f"rollout of {sizes[1]}", f"{large['invitations_per_s']:.0f}/s",
                 f"of {sizes[0]}: {small['invitations_per_s']:.0f}/s", None))
    _table(rows)
    return out


def scale(teammates: int = 10_000) -> dict[str, Any]:
    """1, 2 and 4 worker processes, and two groups of a relay and 2 workers each."""
    ensure_tools()
    port = free_port()
    sink = SmtpSink(port)
    runs: dict[str, dict[str, Any]] = {}
    try:
        for label, workers, groups in (("1 worker", 1, 1), ("2 workers", 2, 1),
                                       ("4 workers", 4, 1), ("2 groups × 2 workers", 2, 2)):
            runs[label] = rollout_once(teammates, f"smtp://127.0.0.1:{port}", workers, groups,
                                       smtp_pid=sink.proc.pid)
    finally:
        sink.stop()
    one = runs["1 worker"]["invitations_per_s"]
    print(f"\nscale-out, rollout of {teammates} to smtp-sink, same broker and database "
          f"({os.cpu_count()} cores)\n")
    _table([(label, f"{r['invitations_per_s']:.0f}/s", "1 worker process", r["invitations_per_s"] / one)
            for label, r in runs.items()])
    for label, r in runs.items():
        print(f"  {label}: CPU per email (µs) " + ", ".join(
            f"{k} {v}" for k, v in r["cpu_us_per_email"].items()))
    return {label: {**r, "factor_vs_1": round(r["invitations_per_s"] / one, 3)}
            for label, r in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--teammates", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (-c 1 each)")
    args = parser.parse_args()
    run(args.teammates, args.workers)


if __name__ == "__main__":
    main()
