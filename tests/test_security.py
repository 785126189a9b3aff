"""What a security review proved against a running instance, each over real HTTP to `twofa api`
in its own process: API keys never yield admin powers, introspection stays in its workspace,
sessions end when 2FA changes, bounded bodies and hashing, single-use join links, an exact
per-IP limit, strict input, and the operator's way back in.

Client addresses are set with X-Forwarded-For (the suite's servers trust it from 127.0.0.1,
TWOFA_FORWARDED_ALLOW_IPS), so each test has its own sign-in bucket.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import ADMIN_PASSWORD, WorkspaceHandle, start_api
from tests.stack import ROOT, Stack, wait_until
from tests.twofactor import bearer, code, enroll, steady, wrong_codes

MEMBER_PASSWORD = "member-password"


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[httpx.Client]:
    """`twofa api` as production runs it. Hash slots are waited for long here, so that the
    per-IP limit, not the hashing bound, decides the bursts below."""
    yield from start_api(stack, TWOFA_PASSWORD_HASH_WAIT_SECONDS="120")


def member(ws: WorkspaceHandle, n: int = 1) -> str:
    return f"member-{n:05d}@{ws.slug}.test"


def from_ip(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


def fresh_64() -> str:
    """A /64 of the documentation prefix that no other test uses."""
    return f"2001:db8:{uuid.uuid4().int % 65535:x}:{uuid.uuid4().int % 65535:x}"


def fresh_ip() -> str:
    return f"{fresh_64()}::1"


def sign_in(ws: WorkspaceHandle, email: str, password: str = MEMBER_PASSWORD,
            ip: str | None = None) -> dict[str, Any]:
    r = ws.client.post("/v1/login", headers=from_ip(ip or fresh_ip()),
                       json={"workspace": ws.slug, "email": email, "password": password})
    assert r.status_code == 200, r.text
    return dict(r.json())


def check(ws: WorkspaceHandle, email: str) -> httpx.Response:
    return ws.client.post("/v1/checks/login", headers=bearer(ws.api_key()), json={"email": email})


def error_code(r: httpx.Response) -> str:
    return str(r.json()["error"]["code"])


def join_link(stack: Stack, email: str, nth: int = -1) -> str:
    mails = wait_until(lambda: [m for m in stack.smtp.to(email)
                                if m.subject.startswith("You have been invited")],
                       30, message="join email")
    url = re.search(r"/join\?token=(\S+)", mails[nth].part("plain"))
    assert url, mails[nth].part("plain")
    return parse_qs(urlsplit(url.group(0)).query)["token"][0]


def add_teammate(ws: WorkspaceHandle, email: str, role: str = "member") -> httpx.Response:
    return ws.client.post(f"/v1/workspaces/{ws.slug}/teammates", headers=ws.admin_headers(),
                          json={"email": email, "name": "New", "role": role})


# --- 1. an API key never yields admin powers ----------------------------------------------


def test_a_host_session_never_reaches_an_admin_route(make_ws: Any) -> None:
    ws = make_ws(teammates=1)
    r = check(ws, ws.admin_email)  # an admin without 2FA, policy off: signed straight in
    assert r.json()["status"] == "authenticated"
    host = bearer(r.json()["token"])
    assert ws.client.get("/v1/me", headers=host).json()["role"] == "admin"
    member_id = ws.client.get("/v1/me", headers=bearer(sign_in(ws, member(ws))["token"])).json()["id"]
    admin_calls = [
        ("POST", f"/v1/workspaces/{ws.slug}/api-keys", {"name": "stolen"}),
        ("DELETE", f"/v1/workspaces/{ws.slug}/teammates/{member_id}/two-factor", None),
        ("GET", f"/v1/workspaces/{ws.slug}/two-factor-policy", None),
        ("GET", f"/v1/workspaces/{ws.slug}/teammates", None),
    ]
    for method, path, body in admin_calls:
        answer = ws.client.request(method, path, headers=host, json=body)
        assert answer.status_code == 403 and error_code(answer) == "forbidden", (path, answer.text)
    assert ws.introspect(r.json()["token"])["level"] == "full"  # a good host session otherwise
    assert ws.client.post("/v1/logout", headers=host).status_code == 204


def test_enrolling_through_a_host_session_gives_no_admin_powers(stack: Stack, make_ws: Any) -> None:
    steady()
    ws = make_ws()
    second = f"second-admin@{ws.slug}.test"
    assert add_teammate(ws, second, role="admin").status_code == 201
    joined = ws.client.post("/v1/invitations/accept", json={
        "token": join_link(stack, second), "password": "second-admin-pw"})
    assert joined.json()["status"] == "authenticated"
    ws.require_two_factor()  # the first admin enrolled; the second has no 2FA

    body = check(ws, second).json()  # the key holder, not the second admin
    assert body["status"] == "enrollment_required"
    token = body["token"]
    enroll(ws.client, token)  # the key holder's own authenticator
    assert ws.introspect(token)["level"] == "full"
    for path in ("two-factor-policy", "teammates", "api-keys"):
        r = ws.client.get(f"/v1/workspaces/{ws.slug}/{path}", headers=bearer(token))
        assert r.status_code == 403 and error_code(r) == "forbidden", r.text
    # A password sign-in of the same admin is no host session: it administers as before.
    assert ws.client.get(f"/v1/workspaces/{ws.slug}/teammates",
                         headers=ws.admin_headers()).status_code == 200


# --- 2. introspection stays in its workspace ----------------------------------------------


def test_introspection_needs_the_key_of_the_tokens_workspace(make_ws: Any) -> None:
    ours, theirs = make_ws(teammates=1), make_ws(teammates=1)
    token = sign_in(ours, member(ours))["token"]
    bare = ours.client.post("/v1/sessions/introspect", json={"token": token})
    assert bare.status_code == 401 and error_code(bare) == "invalid_api_key"
    wrong_kind = ours.client.post("/v1/sessions/introspect", headers=bearer(token),
                                  json={"token": token})
    assert wrong_kind.status_code == 401 and error_code(wrong_kind) == "invalid_api_key"
    assert theirs.introspect(token) == {"active": False}
    seen = ours.introspect(token)
    assert seen["active"] is True and seen["email"] == member(ours)
    assert seen["workspace"] == ours.slug and seen["level"] == "full"


def test_example_host_app_lets_in_only_whom_it_signed_in(make_ws: Any) -> None:
    import importlib.util

    demo, other = make_ws(teammates=1), make_ws(teammates=1)
    spec = importlib.util.spec_from_file_location("host_app", ROOT / "docs/examples/host_app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    host = TestClient(module.create_app(demo.client, demo.api_key(),
                                        {member(demo): "host-password"}))
    # A teammate of another workspace brings their own twofa session as the cookie.
    intruder = sign_in(other, member(other))["token"]
    host.cookies.set("session", intruder)
    assert "Welcome" not in host.get("/private").text
    # So does a teammate of the same workspace who never passed the host's first factor.
    host.cookies.set("session", sign_in(demo, member(demo))["token"])
    assert "Welcome" not in host.get("/private").text
    # Whom the host signs in itself gets in.
    host.cookies.clear()
    form = re.search(r'name="csrf_token" value="([^"]+)"', host.get("/").text)
    assert form
    r = host.post("/login", data={"email": member(demo), "password": "host-password",
                                  "csrf_token": form.group(1)})
    assert r.status_code == 200 and f"({member(demo)})" in r.text


# --- 3. sessions end when 2FA changes ----------------------------------------------------


def test_enrolling_ends_the_teammates_other_sessions(make_ws: Any) -> None:
    steady()
    ws = make_ws(teammates=1)
    ws.require_two_factor()
    first = sign_in(ws, member(ws))
    second = sign_in(ws, member(ws))
    assert first["status"] == second["status"] == "enrollment_required"
    enroll(ws.client, first["token"])
    assert ws.introspect(first["token"])["level"] == "full"
    assert ws.introspect(second["token"]) == {"active": False}  # never `full` without a code
    r = ws.client.post("/v1/me/two-factor/setup", headers=bearer(second["token"]))
    assert r.status_code == 401


def test_an_admin_reset_ends_every_session_of_the_teammate(make_ws: Any) -> None:
    steady()
    ws = make_ws(teammates=1)
    ws.enroll_admin()
    token = sign_in(ws, member(ws))["token"]
    secret = enroll(ws.client, token).secret
    other = ws.client.post("/v1/login/two-factor", json={
        "challenge": sign_in(ws, member(ws))["challenge"], "code": code(secret)}).json()["token"]
    member_id = ws.client.get("/v1/me", headers=bearer(token)).json()["id"]
    r = ws.client.delete(f"/v1/workspaces/{ws.slug}/teammates/{member_id}/two-factor",
                         headers=ws.admin_headers())
    assert r.status_code == 204
    for t in (token, other):
        assert ws.client.get("/v1/me", headers=bearer(t)).status_code == 401
        assert ws.introspect(t) == {"active": False}


def test_turning_off_your_own_2fa_ends_your_other_sessions(make_ws: Any) -> None:
    steady()
    ws = make_ws(teammates=1)
    token = sign_in(ws, member(ws))["token"]
    secret = enroll(ws.client, token).secret
    other = ws.client.post("/v1/login/two-factor", json={
        "challenge": sign_in(ws, member(ws))["challenge"], "code": code(secret)}).json()["token"]
    r = ws.client.request("DELETE", "/v1/me/two-factor", headers=bearer(token),
                          json={"code": code(secret, 30)})
    assert r.status_code == 204, r.text
    assert ws.client.get("/v1/me", headers=bearer(token)).status_code == 200  # this one lives
    assert ws.client.get("/v1/me", headers=bearer(other)).status_code == 401


# --- 4. bounded bodies and bounded hashing -------------------------------------------------


def test_oversized_bodies_are_refused_before_they_are_read(make_ws: Any) -> None:
    ws = make_ws()
    big = b'{"workspace": "' + b"x" * (200 * 1024) + b'"}'
    r = ws.client.post("/v1/login", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and error_code(r) == "payload_too_large", r.text

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"workspace": "'
        for _ in range(64):
            yield b"x" * 16384
        yield b'"}'

    r = ws.client.post("/v1/login", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and error_code(r) == "payload_too_large", r.text
    # A body just under the limit is read and judged on its content: a password being
    # checked has no length rule of its own (8–1024 is for new ones), so it is simply wrong.
    near = {"workspace": ws.slug, "email": ws.admin_email, "password": "p" * 60_000}
    assert ws.client.post("/v1/login", json=near).status_code == 401


def _peak_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]


def _give_the_admin_a_production_cost_hash(ws: WorkspaceHandle) -> None:
    """Test stacks hash with argon2's cheapest profile, and a hash is verified with the
    parameters stored in it: this test needs the real 64 MiB cost to contend for slots."""
    from argon2 import PasswordHasher

    from services.db import unit_of_work
    from services.models import Teammate

    with unit_of_work() as session:
        admin = session.get(Teammate, ws.admin_id)
        assert admin is not None
        admin.password_hash = PasswordHasher().hash(ADMIN_PASSWORD)


def test_a_flood_of_wrong_passwords_is_answered_503_not_hashed_at_once(
        stack: Stack, make_ws: Any) -> None:
    ws = make_ws()
    _give_the_admin_a_production_cost_hash(ws)
    before = set(stack.procs)
    flood = start_api(stack, TWOFA_PASSWORD_HASH_CONCURRENCY="1",
                       TWOFA_PASSWORD_HASH_WAIT_SECONDS="0")
    http = next(flood)
    try:
        [name] = set(stack.procs) - before
        pid = stack.procs[name].pid
        barrier = threading.Barrier(16)

        def wrong(i: int) -> httpx.Response:
            barrier.wait(10)
            return http.post("/v1/login", headers=from_ip(f"192.0.2.{i + 1}"), json={
                "workspace": ws.slug, "email": ws.admin_email, "password": f"wrong-{i}-pw"})

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(wrong, range(16)))
        statuses = Counter(a.status_code for a in answers)
        assert set(statuses) <= {401, 503} and statuses[503] >= 1, statuses
        busy = next(a for a in answers if a.status_code == 503)
        assert error_code(busy) == "unavailable" and int(busy.headers["retry-after"]) >= 1
        # 16 argon2id hashes at once would take 16 × 64 MiB; one slot keeps the peak near one.
        assert _peak_rss_kib(pid) < 400 * 1024, _peak_rss_kib(pid)
        # Nothing was lost: a 503 counted no failure, and the right password still works.
        ok = http.post("/v1/login", headers=from_ip("192.0.2.1"), json={
            "workspace": ws.slug, "email": ws.admin_email, "password": ADMIN_PASSWORD})
        assert ok.status_code == 200 and ok.json()["status"] == "authenticated"
    finally:
        flood.close()


# --- 5. join links: once, and not forever --------------------------------------------------


def test_a_join_link_serves_once_even_when_clicked_eight_times_at_once(
        stack: Stack, make_ws: Any) -> None:
    ws = make_ws()
    email = f"eight@{ws.slug}.test"
    assert add_teammate(ws, email).status_code == 201
    token = join_link(stack, email)
    barrier = threading.Barrier(8)

    def accept(_: int) -> httpx.Response:
        barrier.wait(10)
        return ws.client.post("/v1/invitations/accept",
                              json={"token": token, "password": "a-good-password"})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(accept, range(8)))
    assert sorted(a.status_code for a in answers) == [200] + [401] * 7, [a.text for a in answers]
    assert {error_code(a) for a in answers if a.status_code == 401} == {"invalid_credentials"}


def test_join_links_expire_and_a_resend_voids_the_old_one(stack: Stack, make_ws: Any) -> None:
    from sqlalchemy import update

    from services.db import unit_of_work
    from services.models import Teammate, utcnow

    ws = make_ws()
    email = f"late@{ws.slug}.test"
    teammate_id = add_teammate(ws, email).json()["id"]
    old = join_link(stack, email)
    r = ws.client.post(f"/v1/workspaces/{ws.slug}/teammates/{teammate_id}/enrollment-invitation",
                       headers=ws.admin_headers())
    assert r.status_code == 202
    new = wait_until(lambda: (t := join_link(stack, email)) != old and t, 30, message="new link")
    refused = ws.client.post("/v1/invitations/accept", json={"token": old, "password": "pw-123456"})
    assert refused.status_code == 401 and error_code(refused) == "invalid_credentials"

    with unit_of_work() as session:  # the link is past TWOFA_JOIN_TOKEN_TTL
        session.execute(update(Teammate).where(Teammate.id == teammate_id)
                        .values(join_expires_at=utcnow()))
    expired = ws.client.post("/v1/invitations/accept", json={"token": new, "password": "pw-123456"})
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]


# --- 6. the per-IP limit is exact under concurrency ---------------------------------------


def test_eighty_parallel_wrong_passwords_get_exactly_thirty_tries(make_ws: Any) -> None:
    ws = make_ws(teammates=1)
    ip = fresh_ip()
    for _ in range(3):  # right passwords from the same address count nothing
        assert sign_in(ws, member(ws), ip=ip)["status"] == "authenticated"
    barrier = threading.Barrier(20)

    def wrong(i: int) -> int:
        if i < 20:
            barrier.wait(10)
        return ws.client.post("/v1/login", headers=from_ip(ip), json={
            "workspace": ws.slug, "email": member(ws), "password": f"wrong-{i}"}).status_code

    with ThreadPoolExecutor(20) as pool:
        statuses = Counter(pool.map(wrong, range(80)))
    assert statuses == {401: 30, 429: 50}, statuses
    locked = ws.client.post("/v1/login", headers=from_ip(ip), json={
        "workspace": ws.slug, "email": member(ws), "password": MEMBER_PASSWORD})
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1


# --- 7. email addresses --------------------------------------------------------------------


def test_addresses_are_validated_normalized_and_case_insensitive(make_ws: Any) -> None:
    ws = make_ws(teammates=1)
    for bad in ("x@evil.test>,<victim@demo.test", "a b@demo.test", "Jane <jane@demo.test>"):
        r = add_teammate(ws, bad)
        assert r.status_code == 422 and error_code(r) == "invalid_email", (bad, r.text)
    clash = add_teammate(ws, ws.admin_email.upper())
    assert clash.status_code == 409 and error_code(clash) == "teammate_exists", clash.text
    # Mixed case signs in (an SSO gateway sends `Member-00001@…`), at twofa and at a host check.
    shouted = member(ws).replace("member", "Member").replace(ws.slug, ws.slug.upper())
    assert sign_in(ws, shouted)["status"] == "authenticated"
    assert check(ws, shouted).json()["status"] == "authenticated"
    special = add_teammate(ws, "someone@sub.example.invalid")  # special-use domains are fine
    assert special.status_code == 201 and special.json()["email"] == "someone@sub.example.invalid"


@contextmanager
def _database_at(revision: str, tmp_path: Path) -> Iterator[str]:
    """A database of this run's backend migrated only up to `revision` (its URL), dropped
    afterwards: where the upgrade tests put an older version's data."""
    from alembic import command

    from services.migrate import alembic_config
    from tests.stack import backend, create_database, drop_database

    url = create_database() if backend() == "postgres" else f"sqlite:///{tmp_path / 'old.db'}"
    try:
        command.upgrade(alembic_config(url), revision)
        yield url
    finally:
        if backend() == "postgres":
            drop_database(url)


@pytest.mark.uses_backend
def test_the_migration_refuses_case_duplicates_and_names_them(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import create_engine, text

    from services.migrate import alembic_config

    with _database_at("0001", tmp_path) as url:
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO workspaces (slug, name, require_two_factor, "
                              "policy_version, created_at) VALUES ('old', 'Old', false, 0, "
                              "CURRENT_TIMESTAMP)"))
            for address in ("Ann@old.test", "ann@old.test", "bob@old.test"):
                conn.execute(text(
                    "INSERT INTO teammates (workspace_id, email, name, role, status, "
                    "created_at, failed_attempts, lockouts) SELECT id, :e, 'x', 'member', "
                    "'active', CURRENT_TIMESTAMP, 0, 0 FROM workspaces"), {"e": address})
        with pytest.raises(RuntimeError, match=r"old: ann@old\.test \(2 rows\)"):
            command.upgrade(alembic_config(url), "head")
        with engine.begin() as conn:  # nothing merged, nothing half-migrated
            emails = sorted(conn.execute(text("SELECT email FROM teammates")).scalars())
            assert emails == ["Ann@old.test", "ann@old.test", "bob@old.test"]
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            assert version == "0001"
        engine.dispose()


# --- 8. a success forgets earlier lockouts -------------------------------------------------


def test_a_successful_sign_in_resets_the_growing_lock(make_ws: Any) -> None:
    from sqlalchemy import update

    from services.db import unit_of_work
    from services.models import Teammate, utcnow

    steady(8)
    ws = make_ws(teammates=1)
    token = sign_in(ws, member(ws))["token"]
    enrolled = enroll(ws.client, token)
    member_id = ws.client.get("/v1/me", headers=bearer(token)).json()["id"]

    def lock() -> int:
        answers = [ws.client.post("/v1/login/two-factor", json={
            "challenge": sign_in(ws, member(ws))["challenge"], "code": guess})
            for guess in wrong_codes(enrolled.secret, 11)]
        assert [a.status_code for a in answers] == [401] * 10 + [429]
        return int(answers[-1].headers["retry-after"])

    first = lock()
    assert first <= 30
    with unit_of_work() as session:  # the lock has run out
        session.execute(update(Teammate).where(Teammate.id == member_id)
                        .values(locked_until=utcnow()))
    ok = ws.client.post("/v1/login/two-factor", json={
        "challenge": sign_in(ws, member(ws))["challenge"], "code": code(enrolled.secret)})
    assert ok.status_code == 200
    assert lock() <= 30  # not 60: the success forgot the earlier lockout


# --- 9. IPv6 clients are bucketed by /64 --------------------------------------------------


def test_ipv6_addresses_of_one_64_share_a_bucket(make_ws: Any) -> None:
    ws = make_ws()
    prefix, neighbour_prefix = fresh_64(), fresh_64()
    for i in range(30):  # a fresh address per try, all in one /64
        r = ws.client.post("/v1/login", headers=from_ip(f"{prefix}::{i + 1:x}"), json={
            "workspace": ws.slug, "email": ws.admin_email, "password": "wrong-password"})
        assert r.status_code == 401
    again = ws.client.post("/v1/login", headers=from_ip(f"{prefix}:1:2:3:4"), json={
        "workspace": ws.slug, "email": ws.admin_email, "password": ADMIN_PASSWORD})
    assert again.status_code == 429
    neighbour = ws.client.post("/v1/login", headers=from_ip(f"{neighbour_prefix}::1"), json={
        "workspace": ws.slug, "email": ws.admin_email, "password": ADMIN_PASSWORD})
    assert neighbour.status_code == 200  # another /64 is another subscriber


# --- 10. owner-only files ------------------------------------------------------------------


def test_the_embedded_key_and_database_are_created_owner_only(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWOFA_")}
    umask = "import os; os.umask(0o022); "  # the usual umask, under which files are 0644
    done = subprocess.run(
        [sys.executable, "-c", umask + "from workers.cli import main; main()",
         "db", "upgrade"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    subprocess.run([sys.executable, "-c", umask + "from services.config import get_settings; "
                    "get_settings().keys()"], cwd=tmp_path, env=env, check=True, timeout=60)
    var = tmp_path / "var"
    for path in (var / "twofa.db", var / "encryption.key"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, (path, oct(path.stat().st_mode))
    assert stat.S_IMODE(var.stat().st_mode) == 0o700


# --- 11. strict JSON types -----------------------------------------------------------------


def test_json_types_are_strict(make_ws: Any) -> None:
    ws = make_ws()
    ws.enroll_admin()
    url = f"/v1/workspaces/{ws.slug}/two-factor-policy"
    for lax in ("yes", 1, "true", None):
        r = ws.client.put(url, headers=ws.admin_headers(), json={"require_two_factor": lax})
        assert r.status_code == 422 and error_code(r) == "invalid_request", (lax, r.text)
    assert ws.client.get(url, headers=ws.admin_headers()).json()["require_two_factor"] is False
    r = ws.client.post("/v1/login", json={"workspace": ws.slug, "email": ws.admin_email,
                                          "password": 12345678})
    assert r.status_code == 422
    # Unknown fields are still ignored.
    r = ws.client.put(url, headers=ws.admin_headers(),
                      json={"require_two_factor": True, "comment": "ok"})
    assert r.status_code == 200 and r.json()["require_two_factor"] is True


# --- 12. webhook ports ---------------------------------------------------------------------


def test_webhook_targets_use_web_ports_only(make_ws: Any) -> None:
    ws = make_ws()
    url = f"/v1/workspaces/{ws.slug}/webhooks"
    for port in (25, 22, 1023):
        r = ws.client.post(url, headers=ws.admin_headers(),
                           json={"url": f"http://127.0.0.1:{port}/hook", "event_types": ["*"]})
        assert r.status_code == 422 and error_code(r) == "url_not_allowed", (port, r.text)
        assert str(port) in r.json()["error"]["message"]
    for target in ("https://127.0.0.1/hook", "http://127.0.0.1:1024/hook"):
        r = ws.client.post(url, headers=ws.admin_headers(),
                           json={"url": target, "event_types": ["*"]})
        assert r.status_code == 201, r.text
        assert ws.client.delete(f"{url}/{r.json()['id']}",
                                headers=ws.admin_headers()).status_code == 204


# --- 13. an admin without 2FA cannot require it; the operator's way back in ----------------


def test_an_admin_without_2fa_cannot_require_it(make_ws: Any) -> None:
    ws = make_ws(teammates=1)
    url = f"/v1/workspaces/{ws.slug}/two-factor-policy"
    r = ws.client.put(url, headers=ws.admin_headers(), json={"require_two_factor": True})
    assert r.status_code == 409 and error_code(r) == "admin_needs_two_factor", r.text
    after = ws.client.get(url, headers=ws.admin_headers()).json()
    assert after["require_two_factor"] is False and after["version"] == 0


def test_the_operator_resets_a_sole_admins_2fa_from_the_shell(stack: Stack, make_ws: Any) -> None:
    steady()
    ws = make_ws(teammates=1)
    ws.require_two_factor()
    token = ws.admin_headers()["Authorization"].split()[1]
    done = subprocess.run(
        [sys.executable, "-m", "workers.cli", "teammate", "reset-2fa", ws.slug,
         ws.admin_email.upper()],
        env={**os.environ, **stack.env}, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "2FA turned off" in done.stdout
    assert ws.client.get("/v1/me", headers=bearer(token)).status_code == 401
    back = sign_in(ws, ws.admin_email, ADMIN_PASSWORD)
    assert back["status"] == "enrollment_required"  # in again, to set up a new authenticator
    enroll(ws.client, back["token"])
    events = ws.client.get(f"/v1/workspaces/{ws.slug}/events?type=twofa.disabled",
                           headers=bearer(back["token"])).json()["items"]
    assert [e["data"] for e in events] == [
        {"teammate_id": ws.admin_id, "by": "operator", "actor_id": None}]
    missing = subprocess.run(
        [sys.executable, "-m", "workers.cli", "teammate", "reset-2fa", ws.slug, "nobody@x.test"],
        env={**os.environ, **stack.env}, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "nobody@x.test" in missing.stderr


@pytest.mark.uses_backend
def test_upgrading_keeps_what_older_versions_knew(tmp_path: Path) -> None:
    """From 0004 with data: a workspace that required 2FA keeps the time it was turned on (a
    grace period set later counts from then), an unjoined teammate whose join email went out
    counts as invited, and the kept counts start from the rows."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from services.migrate import alembic_config

    with _database_at("0004", tmp_path) as url:
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO workspaces (slug, name, require_two_factor, "
                              "policy_version, created_at) VALUES ('old', 'Old', true, 1, "
                              "'2026-01-01 00:00:00')"))
            conn.execute(text(
                "INSERT INTO events (id, workspace_id, type, time, data) SELECT 'e1', id, "
                "'twofa.policy.changed', '2026-03-04 05:06:07', '{}' FROM workspaces"))
            for email, status, enabled in (("a@old.test", "active", "2026-01-02 00:00:00"),
                                           ("b@old.test", "invited", None),
                                           ("c@old.test", "removed", None)):
                conn.execute(text(
                    "INSERT INTO teammates (workspace_id, email, name, role, status, join_nonce, "
                    "totp_enabled_at, created_at, failed_attempts, lockouts) SELECT id, :e, 'x', "
                    "'member', :s, 'n1', :t, CURRENT_TIMESTAMP, 0, 0 FROM workspaces"),
                    {"e": email, "s": status, "t": enabled})
            conn.execute(text(
                "INSERT INTO sent_emails (key, message_id, sent_at) SELECT 'join:' || "
                "CAST(id AS VARCHAR) || :nonce, '<m>', '2026-03-05 00:00:00' FROM teammates "
                "WHERE email = 'b@old.test'"), {"nonce": ":n1"})
        command.upgrade(alembic_config(url), "head")
        with engine.begin() as conn:
            required_at = conn.execute(text("SELECT required_at FROM workspaces")).scalar()
            assert str(required_at).startswith("2026-03-04 05:06:07")
            joined = dict(conn.execute(text("SELECT email, join_sent_at FROM teammates")).all())
            assert str(joined["b@old.test"]).startswith("2026-03-05")
            assert joined["a@old.test"] is None
            counts = conn.execute(text("SELECT teammates, enrolled FROM workspace_counts")).one()
            assert tuple(counts) == (2, 1)  # the removed one is not counted
        engine.dispose()
