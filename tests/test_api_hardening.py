"""The API under stress from outside: commit before answer, every admin route's authorization,
hostile input on every route (never a 500), and check-then-insert races."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services import errors as domain
from services.api import errors
from services.api.deps import DB
from services.models import LoginThrottle, utcnow
from tests.conftest import ADMIN_PASSWORD, WorkspaceHandle, start_api
from tests.stack import Stack

NUL = "a\u0000b"
SURROGATE = "a\ud800b"
HUGE = "x" * 60_000  # past every field's limit, under the 64 KiB body limit
OVER_BIGINT = 2**64
ADMIN_PREFIX = "/v1/workspaces/{slug}"


def _error_shape(r: httpx.Response) -> dict[str, str]:
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, r.text
    assert body["error"]["code"] and body["error"]["message"], r.text
    return dict(body["error"])


def _reset_ip_throttle() -> None:
    """Every TestClient request comes from one address; later tests must not start blocked."""
    from sqlalchemy import delete

    from services.db import unit_of_work

    with unit_of_work() as session:
        session.execute(delete(LoginThrottle).where(
            LoginThrottle.key.in_(["ip:testclient", "reset:ip:testclient"])))


# --- 1. the COMMIT happens before the response -------------------------------------------


@pytest.fixture
def real_api(stack: Stack) -> Iterator[str]:
    """`twofa api` as production runs it (uvicorn, uvloop, httptools) in its own process."""
    api = start_api(stack)
    try:
        yield str(next(api).base_url).rstrip("/")
    finally:
        api.close()


def test_a_login_answered_is_a_login_committed(real_api: str, workspace: WorkspaceHandle) -> None:
    credentials = {"workspace": workspace.slug, "email": workspace.admin_email,
                   "password": ADMIN_PASSWORD}
    inactive = 0
    with httpx.Client(base_url=real_api, timeout=30) as http:
        for _ in range(100):
            r = http.post("/v1/login", json=credentials)
            assert r.status_code == 200, r.text
            seen = http.post("/v1/sessions/introspect", json={"token": r.json()["token"]},
                             headers={"Authorization": f"Bearer {workspace.api_key()}"})
            assert seen.status_code == 200, seen.text
            inactive += seen.json()["active"] is not True
    assert inactive == 0, f"{inactive} of 100 fresh tokens were not active yet"


def _probe_app() -> FastAPI:
    """A route on the real `DB` dependency and error handlers, whose outcome the test picks."""
    app = FastAPI()
    errors.install(app)
    outcomes: dict[str, domain.TwofaError | None] = {
        "ok": None,
        "kept-401": domain.InvalidCredentials("counted"),
        "kept-429": domain.Throttled("counted", 7),
        "dropped-409": domain.Conflict("not counted"),
    }

    @app.post("/probe/{outcome}/{key}")
    def probe(outcome: str, key: str, session: DB) -> dict[str, str]:
        session.add(LoginThrottle(key=key, failures=1, window_start=utcnow()))
        error = outcomes[outcome]
        if error is not None:
            raise error
        return {"status": "saved"}  # the INSERT is only flushed by the COMMIT after this

    return app


def _throttle_row_exists(key: str) -> bool:
    from services.db import unit_of_work

    with unit_of_work() as session:
        return session.get(LoginThrottle, key) is not None


def test_the_commit_decides_the_answer(stack: Stack) -> None:
    with TestClient(_probe_app(), raise_server_exceptions=False) as probe:
        key = f"probe:{uuid.uuid4().hex}"
        assert probe.post(f"/probe/ok/{key}").status_code == 200
        assert _throttle_row_exists(key)
        # The same key again: the INSERT fails at COMMIT, which must be the answer, not a 200.
        again = probe.post(f"/probe/ok/{key}")
        assert again.status_code == 409 and _error_shape(again)["code"] == "conflict", again.text

        for outcome, status in [("kept-401", 401), ("kept-429", 429)]:
            key = f"probe:{uuid.uuid4().hex}"
            r = probe.post(f"/probe/{outcome}/{key}")
            assert r.status_code == status, r.text
            assert _throttle_row_exists(key), f"{outcome}: a counted failure must commit"
        assert r.headers["Retry-After"] == "7"
        key = f"probe:{uuid.uuid4().hex}"
        r = probe.post(f"/probe/dropped-409/{key}")
        assert r.status_code == 409 and not _throttle_row_exists(key)


def test_wrong_password_counts_although_the_answer_is_401(workspace: WorkspaceHandle) -> None:
    from services.db import unit_of_work

    _reset_ip_throttle()
    r = workspace.client.post("/v1/login", json={
        "workspace": workspace.slug, "email": workspace.admin_email, "password": "wrong-one"})
    assert r.status_code == 401 and _error_shape(r)["code"] == "invalid_credentials"
    with unit_of_work() as session:
        row = session.get(LoginThrottle, "ip:testclient")
        assert row is not None and row.failures == 1
    _reset_ip_throttle()


# --- 5a. authorization of every admin route, generated from the OpenAPI document ----------


def _openapi(client: TestClient) -> dict[str, Any]:
    return dict(client.get("/openapi.json").json())


def _resolve(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if "anyOf" in schema:
        schema = next(s for s in schema["anyOf"] if s.get("type") != "null")
    return schema


def _sample(name: str, schema: dict[str, Any], doc: dict[str, Any], slug: str) -> Any:
    """A valid value for a field, from its schema (and its name, for emails and URLs)."""
    schema = _resolve(schema, doc)
    if "enum" in schema:
        return schema["enum"][-1]
    kind = schema.get("type")
    if kind == "boolean":
        return True
    if kind == "integer":
        return max(1, schema.get("minimum", 1))
    if kind == "array":
        return ["*"] if name == "event_types" else [_sample(name, schema["items"], doc, slug)]
    if name == "email":
        return f"someone-{uuid.uuid4().hex[:6]}@{slug}.test"
    if name == "url":
        return "https://hooks.example.test/in"
    if name in ("code",):
        return "123456"
    return "valid text"


def _body_fields(op: dict[str, Any], doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    content = op.get("requestBody", {}).get("content", {}).get("application/json")
    if not content:
        return {}
    return {k: _resolve(v, doc) for k, v in
            _resolve(content["schema"], doc).get("properties", {}).items()}


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, item in doc["paths"].items()
            for method, op in item.items() if method in ("get", "post", "put", "delete", "patch")]


def _call(client: TestClient, method: str, path: str, op: dict[str, Any], doc: dict[str, Any],
          slug: str, headers: dict[str, str], body: dict[str, Any] | None = None,
          params: dict[str, Any] | None = None, path_values: dict[str, Any] | None = None,
          ) -> httpx.Response:
    values = {"slug": slug, **(path_values or {})}
    for p in op.get("parameters", []):
        if p["in"] == "path" and p["name"] not in values:
            values[p["name"]] = _sample(p["name"], p["schema"], doc, slug)
    if body is None:
        fields = _body_fields(op, doc)
        body = {k: _sample(k, v, doc, slug) for k, v in fields.items()} if fields else None
    if body is None:
        return client.request(method, path.format(**values), headers=headers, params=params)
    # json.dumps escapes to ASCII, so even a lone surrogate travels (as `\\ud800`).
    return client.request(method, path.format(**values), params=params,
                          headers={**headers, "content-type": "application/json"},
                          content=json.dumps(body).encode())


def test_every_admin_route_refuses_members_outsiders_and_enrollment_tokens(
        client: TestClient, make_workspace: Any) -> None:
    from services.accounts import workspaces
    from services.db import unit_of_work
    from services.policy import service as policy

    ours: WorkspaceHandle = make_workspace(teammates=1, password="member-password")
    theirs: WorkspaceHandle = make_workspace()
    enrolling: WorkspaceHandle = make_workspace(teammates=1, password="member-password")
    enrolling.enroll_admin()
    with unit_of_work() as session:
        ws = workspaces.get_by_slug(session, enrolling.slug)
        policy.set_policy(session, ws, True, enrolling.admin_id)
    member = ours.login(f"member-00001@{ours.slug}.test", "member-password")
    assert member["status"] == "authenticated"
    enrollment = enrolling.login(f"member-00001@{enrolling.slug}.test", "member-password")
    assert enrollment["status"] == "enrollment_required"

    doc = _openapi(client)
    admin_ops = [(m, p, op) for m, p, op in _operations(doc) if p.startswith(ADMIN_PREFIX)]
    assert len(admin_ops) >= 15, [p for _, p, _ in admin_ops]  # the generation found them
    callers = [
        (ours.slug, {"Authorization": f"Bearer {member['token']}"}, 403, "forbidden"),
        (ours.slug, theirs.admin_headers(), 404, "workspace_not_found"),
        (enrolling.slug, {"Authorization": f"Bearer {enrollment['token']}"}, 403,
         "enrollment_required"),
    ]
    failures = []
    for method, path, op in admin_ops:
        for slug, headers, status, code in callers:
            r = _call(client, method, path, op, doc, slug, headers)
            if r.status_code != status or _error_shape(r)["code"] != code:
                failures.append(f"{method} {path} as {code}: {r.status_code} {r.text}")
    assert not failures, "\n".join(failures)


# --- 5b. hostile input on every route with a body or parameters --------------------------


# Passwords being checked have no length limit of their own (8–1024 holds for new ones only):
# a huge one is a wrong password, some 4xx (401 at sign-in, 403 as current_password).
CHECKED_PASSWORDS = ("password@/v1/login", "current_password@/v1/me/password")


def _string_mutations(name: str, path: str = "") -> list[tuple[Any, bool]]:
    """(value, must it be exactly 422); the rest must be some 4xx."""
    values: list[tuple[Any, bool]] = [
        (NUL, True), (SURROGATE, True), (HUGE, f"{name}@{path}" not in CHECKED_PASSWORDS),
        (12345, True), ({"a": 1}, True), ("tab\there", True),
    ]
    if name == "email":
        values += [("x\u0000@example.test", True), ("jöran@example.test", False),
                   ("ユーザー@例え.テスト", False)]
    return values


def test_hostile_input_is_a_clear_4xx_everywhere(
        client: TestClient, make_workspace: Any) -> None:
    ws: WorkspaceHandle = make_workspace()
    headers = ws.admin_headers()
    key = client.post(f"/v1/workspaces/{ws.slug}/api-keys", headers=headers,
                      json={"name": "fuzz"}).json()["key"]
    doc = _openapi(client)
    tried, failures = 0, []

    def check(label: str, r: httpx.Response, exact: bool) -> None:
        nonlocal tried
        tried += 1
        ok = (r.status_code == 422) if exact else (400 <= r.status_code < 500 or (
            # Asking for a reset link answers 202 for any address, unusual ones included.
            label.startswith("POST /v1/password-reset body.email=") and r.status_code == 202))
        if not ok:
            failures.append(f"{label}: {r.status_code} {r.text[:200]}")
            return
        if r.status_code >= 400:
            _error_shape(r)

    try:
        for method, path, op in _operations(doc):
            keyed = path.startswith("/v1/checks") or path == "/v1/sessions/introspect"
            who = {"Authorization": f"Bearer {key}"} if keyed else headers
            for name, schema in _body_fields(op, doc).items():
                fields = _body_fields(op, doc)
                valid = {k: _sample(k, v, doc, ws.slug) for k, v in fields.items()}
                kind = schema.get("type")
                if kind == "boolean":
                    mutations: list[tuple[Any, bool]] = [("perhaps", True), (NUL, True),
                                                         ("yes", True), (1, True), ("true", True)]
                elif kind == "array":
                    mutations = [(NUL, True), ([NUL], False), ([HUGE], True)]
                else:
                    mutations = _string_mutations(name, path)
                for value, exact in mutations:
                    r = _call(client, method, path, op, doc, ws.slug, who,
                              body={**valid, name: value})
                    check(f"{method} {path} body.{name}={str(value)[:30]!r}", r, exact)
            for p in op.get("parameters", []):
                schema = _resolve(p["schema"], doc)
                if p["name"] == "slug":
                    continue
                bad: list[Any] = ([OVER_BIGINT, -1, "abc", str(2**63)]
                                  if schema.get("type") == "integer" else [NUL, "x" * 2000])
                for value in bad:
                    if p["in"] == "path":
                        r = _call(client, method, path, op, doc, ws.slug, who,
                                  path_values={p["name"]: value})
                    else:
                        r = _call(client, method, path, op, doc, ws.slug, who,
                                  params={p["name"]: value})
                    check(f"{method} {path} {p['in']}.{p['name']}={str(value)[:30]!r}", r, True)
    finally:
        _reset_ip_throttle()
    assert tried > 100, tried
    assert not failures, "\n".join(failures)


def test_international_addresses(client: TestClient, workspace: WorkspaceHandle) -> None:
    headers = workspace.admin_headers()
    url = f"/v1/workspaces/{workspace.slug}/teammates"
    r = client.post(url, headers=headers, json={"email": "Anna@Bücher.Example"})
    assert r.status_code == 201, r.text
    assert r.json()["email"] == "Anna@xn--bcher-kva.example"
    # The same mailbox spelt either way is one teammate.
    again = client.post(url, headers=headers, json={"email": "Anna@xn--bcher-kva.example"})
    assert again.status_code == 409 and _error_shape(again)["code"] == "teammate_exists"
    local = client.post(url, headers=headers, json={"email": "jöran@example.test"})
    assert local.status_code == 422, local.text
    err = _error_shape(local)
    assert err["code"] == "invalid_email" and "Internationalized" in err["message"]


# --- 2. check-then-insert races ----------------------------------------------------------


def test_concurrent_adds_of_one_address_give_one_teammate(
        client: TestClient, workspace: WorkspaceHandle) -> None:
    headers = workspace.admin_headers()
    url = f"/v1/workspaces/{workspace.slug}/teammates"
    for _ in range(5):
        email = f"twin-{uuid.uuid4().hex[:8]}@{workspace.slug}.test"
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(
                lambda _: client.post(url, headers=headers, json={"email": email}), range(4)))
        assert sorted(a.status_code for a in answers) == [201, 409, 409, 409], \
            [a.text for a in answers]
        assert {_error_shape(a)["code"] for a in answers if a.status_code == 409} == \
            {"teammate_exists"}


def test_first_failures_of_a_new_address_in_parallel_all_count(stack: Stack) -> None:
    from services.accounts import ip_throttle
    from services.db import unit_of_work

    parallel = 8
    for _ in range(5):
        ip = f"198.51.100.{uuid.uuid4().hex[:8]}"
        barrier = threading.Barrier(parallel)

        def fail_once(_: int, ip: str = ip, barrier: threading.Barrier = barrier) -> None:
            barrier.wait(10)
            ip_throttle.reserve(ip)

        with ThreadPoolExecutor(parallel) as pool:
            list(pool.map(fail_once, range(parallel)))  # re-raises any IntegrityError
        with unit_of_work() as session:
            row = session.get(LoginThrottle, f"ip:{ip}")
            assert row is not None and row.failures == parallel
