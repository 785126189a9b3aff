"""The login checks under `wrk -t2 -c32` on loopback, each beside an async `GET /healthz`
of the same server in the same run:

* `POST /v1/sessions/introspect` (with the workspace's API key) and `GET /v1/me`;
* `POST /v1/login/two-factor` with right codes (each used once: the replay claim's cost)
  and with wrong codes over all teammates (the throttle's cost; after 10 a teammate is
  locked and answers 429);
* `POST /v1/login/two-factor` with a security key's assertion, and `POST /v1/login/passkey`
  (passkey sign-in), each assertion used once, every teammate's key keeping its counter at 0
  (an authenticator without a counter), from addresses of their own (X-Forwarded-For
  through TWOFA_FORWARDED_ALLOW_IPS: one address's failure bucket is not what is measured).

    .venv/bin/python -m bench --only verification           # PostgreSQL + Redis
    .venv/bin/python -m bench.bench_verification --embedded  # SQLite, no server

It seeds a workspace of 10,000 teammates with TOTP and a security key on, opens their
sign-in challenges (and the keys' WebAuthn challenges) and one session each beforehand,
starts `twofa api` as a subprocess and runs wrk (bench/wrk/requests.lua). The replay rule
allows one success per teammate per step, so each right code goes to another teammate.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pyotp

from bench.common import api_up, drop_database, fresh_env, spawn, wait_for
from bench.tools import WrkResult, ensure_tools, free_port, load_average
from bench.tools import wrk as run_wrk

SESSIONS = 200  # distinct tokens cycled through by introspect and /v1/me
TEAMMATES = 10_000  # one right code, wrong code, key and passkey assertion each
WARM_UP = 200  # single-use requests spent before measuring (their path's first use)


def prepare(teammates: int, origin: str) -> dict[str, Any]:
    """Enrolled teammates (TOTP and a software security key each, counter 0) with sign-in
    challenges for two right codes (this step's and the next's: a second sign-in within a
    minute), a wrong code and a key's assertion, an assertion for passkey sign-in, and one
    full-level session each (the first SESSIONS)."""
    from sqlalchemy import select

    from services import crypto, team_counts
    from services.accounts import sessions, workspaces
    from services.db import unit_of_work
    from services.host_checks import api_keys
    from services.models import AuthSession, Teammate, utcnow
    from services.verification import totp

    out: dict[str, Any] = {"right": [], "next": [], "wrong": [], "key": [], "passkey": [],
                           "tokens": []}
    with unit_of_work() as session:
        ws, _ = workspaces.create(session, "bench", "Bench", "admin@bench.test", "bench-password")
        workspaces.seed(session, ws, teammates, "bench-password")
        session.flush()
        keys = {}
        for teammate in session.scalars(select(Teammate).where(Teammate.role == "member")):
            secret = totp.new_secret()
            teammate.totp_secret_enc = crypto.encrypt(secret)
            teammate.totp_enabled_at = utcnow()
            keys[teammate.id] = _add_key(session, teammate, origin)
            for kind in ("right", "next", "wrong", "key"):
                sign_in = sessions.after_first_factor(session, teammate, ws, origin="password")
                out[kind].append((sign_in.challenge, secret if kind != "key" else teammate.id))
            if len(out["tokens"]) < SESSIONS:
                out["tokens"].append(sessions.open_session(session, teammate))
        team_counts.recount(session, ws.id)  # 2FA set directly above, so counted again
        _, out["api_key"] = api_keys.create(session, ws, "bench")
        session.flush()
        ids = {h: i for h, i in session.execute(select(AuthSession.token_hash, AuthSession.id)
                                                .where(AuthSession.kind == "challenge"))}
        out["key"] = [(challenge, _key_assertion(session, keys[tid], ids[crypto.hash_token(challenge)]))
                      for challenge, tid in out["key"]]
        out["passkey"] = [_passkey_assertion(session, key, ws.id) for key in keys.values()]
    return out


def _add_key(session: Any, teammate: Any, origin: str) -> Any:
    """A software authenticator's credential, kept as a registration would keep it."""
    import secrets

    from services.models import WebAuthnCredential, utcnow
    from tests.webauthn_authenticator import SoftKey

    key = SoftKey(rp_id="localhost", origin=origin, user_handle=secrets.token_bytes(32))
    teammate.webauthn_user_handle = key.user_handle
    teammate.webauthn_enabled_at = utcnow()
    session.add(WebAuthnCredential(teammate_id=teammate.id, credential_id=key.credential_id,
                                   public_key=key.cose_public_key(), sign_count=0,
                                   name="Bench key", rp_id="localhost", transports=["usb"],
                                   backed_up=False))
    return key


def _webauthn_challenge(session: Any, purpose: str, **bound: Any) -> str:
    """A WebAuthn challenge as request options hand it out (services/verification/
    webauthn_challenges.issue, without its per-call sweep and flush)."""
    import hashlib
    import secrets
    from datetime import timedelta

    from services.config import get_settings
    from services.models import WebAuthnChallenge, utcnow
    from tests.webauthn_authenticator import b64url

    raw, now = secrets.token_bytes(32), utcnow()
    session.add(WebAuthnChallenge(
        challenge_hash=hashlib.sha256(raw).hexdigest(), purpose=purpose, created_at=now,
        expires_at=now + timedelta(seconds=get_settings().challenge_ttl_seconds), **bound))
    return b64url(raw)


def _key_assertion(session: Any, key: Any, auth_session_id: int) -> dict[str, Any]:
    challenge = _webauthn_challenge(session, "second_factor", auth_session_id=auth_session_id)
    return key.get({"challenge": challenge}, counter_step=0)


def _passkey_assertion(session: Any, key: Any, workspace_id: int) -> tuple[str, dict[str, Any]]:
    challenge = _webauthn_challenge(session, "passkey", workspace_id=workspace_id)
    return challenge, key.get({"challenge": challenge}, uv=True, counter_step=0)


def line(method: str, path: str, auth: str = "", body: dict[str, Any] | None = None,
         client: str = "") -> str:
    """A request for requests.lua; `client`: the address it comes from (X-Forwarded-For)."""
    return "\t".join((method, path, auth, json.dumps(body, separators=(",", ":")) if body else "",
                      client))


def address(n: int) -> str:
    """The n-th of many client addresses (10.x.y.z)."""
    return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


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
    # Single-use requests run at least 10 s, and no longer than their supply lasts at the
    # rates measured here (wrk counts the whole duration even after the last request).
    once_seconds = max(10.0, seconds * 5 / 4)
    # Codes are computed now: this step's, then the next step's (both valid now), so each
    # teammate signs in twice without a replay.
    right = [line("POST", "/v1/login/two-factor", "",
                  {"challenge": c, "code": pyotp.TOTP(s).at(time.time() + offset)})
             for offset, kind in ((0, "right"), (30, "next")) for c, s in data[kind]]
    r = wrk("POST /v1/login/two-factor, right codes", base, right, once_seconds, once=True,
            expect='"token"')
    out.append((r, r.ok_rps / healthz))
    wrong = [line("POST", "/v1/login/two-factor", "",
                  {"challenge": c, "code": f"{(int(pyotp.TOTP(s).now()) + 1) % 10**6:06d}"})
             for c, s in data["wrong"]]
    r = wrk("POST /v1/login/two-factor, wrong codes", base, wrong, seconds, refusals=True)
    out.append((r, r.ok_rps / healthz))
    keyed = [line("POST", "/v1/login/two-factor", "", {"challenge": c, "webauthn": a})
             for c, a in data["key"]]
    passkeys = [line("POST", "/v1/login/passkey", "", {"challenge": c, "webauthn": a},
                     address(n)) for n, (c, a) in enumerate(data["passkey"])]
    for name, lines in (("POST /v1/login/two-factor, security key", keyed),
                        ("POST /v1/login/passkey", passkeys)):
        wrk("warm-up", base, lines[:WARM_UP], 2, once=True)  # the first use of their code
        r = wrk(name, base, lines[WARM_UP:], once_seconds, once=True, expect='"token"')
        out.append((r, r.ok_rps / healthz))
    return out


def run(seconds: float = 8, teammates: int = TEAMMATES, embedded: bool = False) -> dict[str, Any]:
    ensure_tools()
    home = Path(tempfile.mkdtemp(prefix="twofa-bench-"))
    port = free_port()
    # A named host (browsers run no WebAuthn ceremony for an IP address); the sign-in
    # challenges made beforehand must outlive the rounds before them.
    extra = {"TWOFA_HOME": str(home), "TWOFA_PUBLIC_URL": f"http://localhost:{port}",
             "TWOFA_CHALLENGE_TTL_SECONDS": "3600", "TWOFA_FORWARDED_ALLOW_IPS": "127.0.0.1"}
    env = fresh_env(extra, embedded=embedded)
    server = None
    try:
        started = time.monotonic()
        data = prepare(teammates, f"http://localhost:{port}")
        print(f"prepared {teammates} teammates in {time.monotonic() - started:.0f} s", flush=True)
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
    parser.add_argument("--teammates", type=int, default=TEAMMATES)
    parser.add_argument("--embedded", action="store_true", help="SQLite instead of PostgreSQL")
    args = parser.parse_args()
    run(args.seconds, args.teammates, args.embedded)


if __name__ == "__main__":
    main()
