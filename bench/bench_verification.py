"""The login checks under `wrk -t2 -c32` on loopback, each beside an async `GET /healthz`
of the same server in the same run:

* `POST /v1/sessions/introspect` (with the workspace's API key) and `GET /v1/me`;
* `POST /v1/login/two-factor` with right codes (each used once: the replay claim's cost)
  and with wrong codes over all teammates (the throttle's cost; after 10 a teammate is
  locked and answers 429).

    .venv/bin/python -m bench --only verification           # PostgreSQL + Redis
    .venv/bin/python -m bench.bench_verification --embedded  # SQLite, no server

It seeds a workspace whose teammates have TOTP on, opens two sign-in challenges and one
session each, starts `twofa api` as a subprocess and runs wrk (bench/wrk/requests.lua).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pyotp

from bench.common import api_up, drop_database, fresh_env, spawn, wait_for
from bench.tools import WrkResult, ensure_tools, free_port, load_average
from bench.tools import wrk as run_wrk

SESSIONS = 200  # distinct tokens cycled through by introspect and /v1/me


def prepare(teammates: int) -> dict[str, Any]:
    """Enrolled teammates with two open challenges and one full-level session each."""
    from sqlalchemy import select

    from services import crypto, team_counts
    from services.accounts import sessions, workspaces
    from services.db import unit_of_work
    from services.host_checks import api_keys
    from services.models import Teammate, utcnow
    from services.verification import totp

    out: dict[str, Any] = {"right": [], "wrong": [], "tokens": []}
    with unit_of_work() as session:
        ws, _ = workspaces.create(session, "bench", "Bench", "admin@bench.test", "bench-password")
        workspaces.seed(session, ws, teammates, "bench-password")
        session.flush()
        for teammate in session.scalars(select(Teammate).where(Teammate.role == "member")):
            secret = totp.new_secret()
            teammate.totp_secret_enc = crypto.encrypt(secret)
            teammate.totp_enabled_at = utcnow()
            for kind in ("right", "wrong"):
                sign_in = sessions.after_first_factor(session, teammate, ws, origin="password")
                out[kind].append((sign_in.challenge, secret))
            if len(out["tokens"]) < SESSIONS:
                out["tokens"].append(sessions.open_session(session, teammate))
        team_counts.recount(session, ws.id)  # 2FA set directly above, so counted again
        _, out["api_key"] = api_keys.create(session, ws, "bench")
    return out


def line(method: str, path: str, auth: str = "", body: dict[str, str] | None = None) -> str:
    return "\t".join((method, path, auth, json.dumps(body, separators=(",", ":")) if body else ""))


ROUNDS = 3  # /healthz, introspect and /v1/me alternate, so a burst of other load hits all


def scenarios(data: dict[str, Any], seconds: float, base: str,
              pid: int) -> list[tuple[WrkResult, float]]:
    """(result, its ratio to /healthz) per request: for the cycled requests the round with
    the median ratio, each ratio against the /healthz run of its own round."""
    def wrk(*args: Any, **kwargs: Any) -> WrkResult:
        return run_wrk(*args, server_pid=pid, **kwargs)

    key = f"Bearer {data['api_key']}"
    cycled = {
        "GET /healthz (async)": ([line("GET", "/healthz")], '"ok"'),
        "POST /v1/sessions/introspect": (
            [line("POST", "/v1/sessions/introspect", key, {"token": t}) for t in data["tokens"]],
            '"active":true'),
        "GET /v1/me": ([line("GET", "/v1/me", f"Bearer {t}") for t in data["tokens"]],
                       '"level":"full"'),
    }
    for lines, _ in cycled.values():  # connections opened, statements prepared
        wrk("warm-up", base, lines, 2)
    rounds = [[wrk(name, base, lines, seconds, expect=expect)
               for name, (lines, expect) in cycled.items()] for _ in range(ROUNDS)]
    out = []
    for i in range(len(cycled)):
        ranked = sorted(((r[i], r[i].ok_rps / r[0].ok_rps) for r in rounds), key=lambda x: x[1])
        out.append(ranked[len(ranked) // 2])
    healthz = out[0][0].ok_rps
    # Codes are computed now: valid for this 30 s step and the next.
    right = [line("POST", "/v1/login/two-factor", "",
                  {"challenge": c, "code": pyotp.TOTP(s).now()}) for c, s in data["right"]]
    r = wrk("POST /v1/login/two-factor, right codes", base, right, seconds * 3, once=True,
            expect='"token"')
    out.append((r, r.ok_rps / healthz))
    wrong = [line("POST", "/v1/login/two-factor", "",
                  {"challenge": c, "code": f"{(int(pyotp.TOTP(s).now()) + 1) % 10**6:06d}"})
             for c, s in data["wrong"]]
    r = wrk("POST /v1/login/two-factor, wrong codes", base, wrong, seconds, refusals=True)
    out.append((r, r.ok_rps / healthz))
    return out


def run(seconds: float = 8, teammates: int = 1000, embedded: bool = False) -> dict[str, Any]:
    ensure_tools()
    home = Path(tempfile.mkdtemp(prefix="twofa-bench-"))
    extra = {"TWOFA_HOME": str(home)}
    env = fresh_env(extra, embedded=embedded)
    port = free_port()
    server = None
    try:
        data = prepare(teammates)
        server = spawn(["api", "--port", str(port)], env, home / "api.log")
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
        wait_for(lambda: api_up(http), 30, f"the API (see {home / 'api.log'})")
        load = load_average()
        results = scenarios(data, seconds, f"http://127.0.0.1:{port}", server.pid)
    finally:
        if server:
            server.terminate()
            server.wait(10)
        drop_database(env)
    return report(results, load, "sqlite" if embedded else "postgresql", teammates)


def report(results: list[tuple[WrkResult, float]], load: float, backend: str,
           teammates: int) -> dict[str, Any]:
    baseline = results[0][0].ok_rps
    rows = {}
    print(f"\nverification: wrk -t2 -c32, database {backend}, load average {load:.2f} at start; "
          f"cycled requests: the median of {ROUNDS} rounds, each against /healthz of its round\n")
    print(f"{'request':<42}{'req/s':>9}{'errors':>8}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'/healthz req/s':>16}{'ratio':>7}{'API CPU µs/req':>16}")
    for r, ratio in results:
        errors = r.unexpected + (0 if r.refusals else r.errors)
        print(f"{r.name:<42}{r.ok_rps:>9.0f}{errors:>8}{r.p50_ms:>9.1f}"
              f"{r.p99_ms:>9.1f}{r.ok_rps / ratio if ratio else baseline:>16.0f}{ratio:>7.2f}"
              f"{r.server_cpu_us:>16.0f}")
        rows[r.name] = {**r.as_dict(), "ratio_vs_healthz": round(ratio, 3)}
    print(f"(wrong codes: every answer a 401, or a 429 once a teammate is locked, over "
          f"{teammates} teammates)")
    return {"backend": backend, "load_average_at_start": round(load, 2),
            "baseline_healthz_req_per_s": round(baseline, 1), "requests": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--teammates", type=int, default=1000)
    parser.add_argument("--embedded", action="store_true", help="SQLite instead of PostgreSQL")
    args = parser.parse_args()
    run(args.seconds, args.teammates, args.embedded)


if __name__ == "__main__":
    main()
