"""Structured logs of a real `twofa api` process (TWOFA_LOG_FORMAT=json): one JSON object per
line, the request id accepted or made and echoed, caller ids, and none of the secrets used."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD
from tests.stack import Stack, answers, free_port, wait_until
from tests.twofactor import code, steady, wrong_codes
from tests.webhook_receiver import Receiver


@pytest.fixture
def json_api(stack: Stack) -> Iterator[httpx.Client]:
    port = free_port()
    stack.start("api-json", "api", "--host", "127.0.0.1", "--port", str(port),
                env={"TWOFA_LOG_FORMAT": "json"})
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        wait_until(lambda: answers(http), 60, message="json api up")
        yield http
    stack.kill("api-json")


def test_json_logs_carry_ids_and_no_secrets(
    stack: Stack, make_workspace: Any, json_api: httpx.Client
) -> None:
    ws = make_workspace(teammates=1)
    receiver = Receiver().start()
    try:
        used = _traffic(json_api, ws.slug, ws.admin_email, receiver)
    finally:
        receiver.stop()
    log = wait_until(lambda: _request_lines(stack, "given-id.42"), 30, message="request lines")
    lines = [line for line in stack.log("api-json").splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(e) for e in events)
    assert not [e for e in events if e["logger"] == "uvicorn.access"]  # twofa.request replaces it

    [tagged] = log
    assert tagged["route"] == "/v1/me" and tagged["status"] == 200 and tagged["method"] == "GET"
    assert tagged["workspace_id"] and tagged["teammate_id"]
    requests = [e for e in events if e["logger"] == "twofa.request"]
    assert {e["route"] for e in requests} >= {"/v1/login", "/v1/login/two-factor",
                                              "/v1/workspaces/{slug}/webhooks"}
    made = [e["request_id"] for e in requests if e["request_id"] != "given-id.42"]
    assert all(re.fullmatch(r"[0-9a-f]{32}", r) for r in made) and len(set(made)) == len(made)

    text = stack.log("api-json")
    for name, secret in used.items():
        assert secret not in text, f"{name} reached the log"


def _request_lines(stack: Stack, request_id: str) -> list[dict[str, Any]] | None:
    found = [json.loads(line) for line in stack.log("api-json").splitlines()
             if request_id in line and '"twofa.request"' in line]
    return found or None


def _traffic(http: httpx.Client, slug: str, email: str, receiver: Receiver) -> dict[str, str]:
    """Sign in, enroll, make an API key and a webhook, fail and pass a code: the secrets used."""
    token = _ok(http.post("/v1/login", json={"workspace": slug, "email": email,
                                             "password": ADMIN_PASSWORD}))["token"]
    auth = {"Authorization": f"Bearer {token}"}
    secret = _ok(http.post("/v1/me/two-factor/setup", headers=auth))["secret"]
    steady()
    first = code(secret, -30)
    recovery = _ok(http.post("/v1/me/two-factor/confirm", headers=auth, json={"code": first}))
    key = _ok(http.post(f"/v1/workspaces/{slug}/api-keys", headers=auth, json={"name": "logs"}))["key"]
    hook = _ok(http.post(f"/v1/workspaces/{slug}/webhooks", headers=auth,
                         json={"url": receiver.url("/logs"), "event_types": ["*"]}))
    challenge = _ok(http.post("/v1/login", json={"workspace": slug, "email": email,
                                                 "password": ADMIN_PASSWORD}))["challenge"]
    [wrong] = wrong_codes(secret, 1)
    assert http.post("/v1/login/two-factor", json={"challenge": challenge, "code": wrong}).status_code == 401
    second = code(secret)
    new_token = _ok(http.post("/v1/login/two-factor", json={"challenge": challenge, "code": second}))["token"]
    _ok(http.post("/v1/sessions/introspect", headers={"Authorization": f"Bearer {key}"},
                  json={"token": new_token}))
    r = http.get("/v1/me", headers={**auth, "X-Request-ID": "given-id.42"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "given-id.42"
    made = http.get("/healthz", headers={"X-Request-ID": "bad id with spaces"}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    used = {"password": ADMIN_PASSWORD, "token": token, "second token": new_token,
            "totp secret": secret, "first code": first, "second code": second, "wrong code": wrong,
            "api key": key, "webhook secret": hook["secret"], "challenge": challenge}
    used.update({f"recovery code {i}": c for i, c in enumerate(recovery["recovery_codes"])})
    return used


def _ok(r: httpx.Response) -> Any:
    assert r.status_code in (200, 201), r.text
    return r.json()
