"""All benchmarks in one command; each figure beside a baseline measured in the same run.

    .venv/bin/python -m bench                              # all but webhooks and event-latency (~10 min)
    .venv/bin/python -m bench --only verification          # a subset (comma-separated)
    .venv/bin/python -m bench --only rollout --teammates 5000

Parts: verification (introspect, /v1/me, /v1/login/two-factor vs an async /healthz, wrk),
rollout (flip → last email accepted by smtp-sink vs bare smtplib loops), remote (the same
through a relay that answers DATA after 50 ms), throttle (a relay that accepts 50/s and
answers 421 beyond, with and without TWOFA_SMTP_MAX_RATE), starttls (smtp+starttls:// to a
relay with a self-signed certificate answering DATA after 50 ms vs a bare STARTTLS loop),
memory (peak RSS of workers and relay, 1,000 vs 100,000 teammates), scale (1, 2, 4 worker
processes and two groups), webhooks (deliveries vs a bare httpx loop), event-latency (event →
webhook receiver, p50/p95, during a rollout vs idle; not in the default set either). Installs
wrk and Postfix's smtp-sink with apt-get when missing; needs PostgreSQL and Redis on
127.0.0.1 (scripts/services.sh). Every byte stays on loopback. Writes
bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import bench_event_latency, bench_mail, bench_rollout, bench_verification, bench_webhooks

PARTS = ("verification", "rollout", "remote", "throttle", "starttls", "memory", "scale", "flip",
         "webhooks", "event-latency")
DEFAULT = "verification,rollout,remote,throttle,starttls,memory,scale,flip"
RESULTS = Path(__file__).with_name("results") / "latest.json"


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                  .splitlines() if line.startswith("model name")), platform.processor())
    return {"cpus": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "system": platform.platform()}


def merged(out: dict[str, Any], parts: list[str]) -> dict[str, Any]:
    """A run of some parts updates those in latest.json and keeps the others, each part with
    the time and load it was measured at (`runs`)."""
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    runs = previous.get("runs", {})
    for part in parts:
        runs[part] = {"when": out["when"], "load_average_before": out["load_average_before"]}
    return {**previous, **out, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=DEFAULT,
                        help=f"comma-separated parts of: {', '.join(PARTS)}")
    parser.add_argument("--seconds", type=float, default=8, help="wrk duration per request")
    parser.add_argument("--teammates", type=int, default=10_000, help="rollout and webhooks size")
    parser.add_argument("--verification-teammates", type=int,
                        default=bench_verification.TEAMMATES,
                        help="enrolled teammates of the sign-in scenarios (one success each per step)")
    parser.add_argument("--workers", type=int, default=2, help="rollout worker processes")
    parser.add_argument("--remote-teammates", type=int, default=3000,
                        help="rollouts through the loopback relays (remote, throttle, starttls)")
    parser.add_argument("--memory-sizes", default="1000,100000",
                        help="the two rollout sizes whose peak RSS is compared")
    parser.add_argument("--flip-teammates", type=int, default=100_000,
                        help="team size whose flip latency is compared with 10 teammates'")
    parser.add_argument("--embedded", action="store_true",
                        help="verification on SQLite (the embedded default) instead of PostgreSQL")
    args = parser.parse_args()
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        sys.exit(f"unknown part(s): {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    out: dict[str, Any] = {"when": datetime.now(UTC).isoformat(timespec="seconds"),
                           "machine": machine(), "load_average_before": os.getloadavg()[0]}
    if "verification" in parts:
        out["verification"] = bench_verification.run(args.seconds, args.verification_teammates,
                                                     args.embedded)
    if "rollout" in parts:
        out["rollout"] = bench_rollout.run(args.teammates, args.workers)
    if "remote" in parts:
        out["rollout_remote"] = bench_rollout.remote(args.remote_teammates, args.workers)
    if "throttle" in parts:
        out["rollout_throttle"] = bench_mail.throttle(args.remote_teammates, args.workers)
    if "starttls" in parts:
        out["rollout_starttls"] = bench_mail.starttls(args.remote_teammates, args.workers)
    if "memory" in parts:
        small, large = (int(x) for x in args.memory_sizes.split(","))
        out["rollout_memory"] = bench_rollout.memory((small, large), args.workers)
    if "scale" in parts:
        out["rollout_scale"] = bench_rollout.scale(args.teammates)
    if "flip" in parts:
        out["flip"] = bench_rollout.flip(args.flip_teammates)
    if "webhooks" in parts:
        out["webhooks"] = bench_webhooks.run(args.teammates)
    if "event-latency" in parts:
        out["event_latency"] = bench_event_latency.run(args.teammates)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(merged(out, parts), indent=2) + "\n")
    print(f"\nwritten: {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")


if __name__ == "__main__":
    main()
