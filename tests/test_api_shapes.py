"""The shapes of the API's answers: every response is described in the OpenAPI document,
every list is one `{items, next_cursor}` page, every id in a path is the same bounded
integer, and every timestamp, in responses, events and webhook bodies alike, is written one
way: RFC 3339 in UTC with microseconds and a `Z` (services/timestamps.py)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import WorkspaceHandle
from tests.stack import Stack, wait_until
from tests.test_webhooks import subscribe
from tests.twofactor import bearer, code, enroll
from tests.webhook_receiver import Receiver

ONE_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
# Anything that looks like a date and a time, whatever its offset or precision.
LOOKS_LIKE_A_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
MAX_ID = 2**63 - 1
# The two-factor-policy routes are being reshaped with the enforcement lifecycle (issue 13):
# they move to response models there. Remove them from here when they have.
NOT_YET: set[tuple[str, str]] = set()  # every operation is described
# The policy preview is a page of teammates plus the contract's summary (would_block, admins).
PAGES_WITH_A_SUMMARY = {"PreviewOut"}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    from services.api.app import create_app

    with TestClient(create_app(), base_url="http://testserver") as http:
        return dict(http.get("/openapi.json").json())


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            yield method, path, operation


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def test_every_json_success_is_described_by_a_model(spec: dict[str, Any]) -> None:
    undescribed = []
    for method, path, operation in _operations(spec):
        for status, response in operation["responses"].items():
            content = response.get("content", {}).get("application/json")
            if not status.startswith("2") or content is None or (method, path) in NOT_YET:
                continue
            schema = content.get("schema", {})
            refs = [schema] if "$ref" in schema else schema.get("oneOf", [])
            if not refs or not all("$ref" in s for s in refs):
                undescribed.append(f"{method.upper()} {path} {status}: {schema}")
    assert not undescribed, "\n".join(undescribed)


def test_every_list_is_a_page_of_items_and_a_cursor(spec: dict[str, Any]) -> None:
    lists = []
    for method, path, operation in _operations(spec):
        content = operation["responses"].get("200", {}).get("content", {}).get("application/json")
        if method != "get" or content is None or (method, path) in NOT_YET:
            continue
        schema = _resolve(spec, content["schema"]) if "$ref" in content["schema"] else {}
        if "items" in schema.get("properties", {}):
            lists.append(path)
            name = content["schema"]["$ref"].rsplit("/", 1)[-1]
            if name in PAGES_WITH_A_SUMMARY:  # a Page subclass: the contract adds counts
                assert {"items", "next_cursor"} < set(schema["properties"]), (path, schema)
                continue
            assert set(schema["properties"]) == {"items", "next_cursor"}, (path, schema)
            assert name.startswith("Page_"), path
    assert {"/v1/workspaces/{slug}/teammates", "/v1/workspaces/{slug}/events",
            "/v1/workspaces/{slug}/api-keys", "/v1/workspaces/{slug}/webhooks",
            "/v1/workspaces/{slug}/webhooks/{endpoint_id}/deliveries"} <= set(lists)


def test_every_id_in_a_path_is_a_positive_bounded_integer(spec: dict[str, Any]) -> None:
    ids = 0
    for method, path, operation in _operations(spec):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["name"].endswith("_id"):
                ids += 1
                schema = parameter["schema"]
                assert (schema["type"], schema["minimum"], schema["maximum"]) == \
                    ("integer", 1, MAX_ID), (method, path, parameter)
    assert ids >= 12


def test_every_timestamp_field_is_documented_with_the_one_format(spec: dict[str, Any]) -> None:
    from services.timestamps import PATTERN

    seen = []
    for name, schema in spec["components"]["schemas"].items():
        if name.endswith("In"):  # a request body takes any RFC 3339 offset, not our one form
            continue
        for field, prop in schema.get("properties", {}).items():
            options = prop.get("anyOf", [prop])
            options = [o.get("items", o) if o.get("type") == "array" else o for o in options]
            if field.endswith("_at") or field in ("time", "until"):
                seen.append(f"{name}.{field}")
                assert any(o.get("format") == "date-time" and o.get("pattern") == PATTERN
                           for o in options), (name, field, prop)
    assert len(seen) >= 10, seen


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def test_every_timestamp_answered_ends_in_z(
    stack: Stack, make_workspace: Any, receiver: Receiver
) -> None:
    """Every timestamp the API writes, read back where users read it: the API, the audit log,
    the events' data and a webhook body."""
    ws: WorkspaceHandle = make_workspace(teammates=1)
    http, admin, base = ws.client, ws.admin_headers(), f"/v1/workspaces/{ws.slug}"
    answers: list[tuple[str, Any]] = []

    def call(method: str, url: str, status: int = 200, **kwargs: Any) -> Any:
        r = http.request(method, url, **kwargs)
        assert r.status_code == status, (url, r.text)
        answers.append((f"{method} {url}", r.json()))
        return r.json()

    # A member enrolls (enrolled_at), gets a bypass code (expires_at), then locks themselves
    # out with wrong codes (the locked event's until).
    email = f"member-00001@{ws.slug}.test"
    member = ws.login(email, "member-password")["token"]
    secret = enroll(http, member).secret  # type: ignore[arg-type]
    call("GET", "/v1/me", headers=bearer(member))
    [listed] = call("GET", f"{base}/teammates?q={email}", headers=admin)["items"]
    call("POST", f"{base}/teammates/{listed['id']}/bypass-code", 201, headers=admin)
    challenge = ws.login(email, "member-password")["challenge"]
    valid = {code(secret, offset) for offset in (-30, 0, 30)}
    wrong = next(c for c in ("000000", "000001", "000002", "000003") if c not in valid)
    for _ in range(10):
        http.post("/v1/login/two-factor", json={"challenge": challenge, "code": wrong})

    # API keys: created, used (last_used_at), revoked (revoked_at).
    key = call("POST", f"{base}/api-keys", 201, headers=admin, json={"name": "host"})
    http.post("/v1/sessions/introspect", headers=bearer(key["key"]), json={"token": member})
    spare = call("POST", f"{base}/api-keys", 201, headers=admin, json={"name": "spare"})
    assert http.delete(f"{base}/api-keys/{spare['id']}", headers=admin).status_code == 204
    call("GET", f"{base}/api-keys", headers=admin)

    # A webhook: its secret rotated with an overlap, a test event held at the receiver while
    # it is pending (next_attempt_at), then delivered (finished_at, the attempt).
    hook = subscribe(ws, admin, receiver, ["*"])
    gate = threading.Event()
    receiver.behaviours[hook["path"]] = lambda _p, _n: 200 if gate.wait(30) else 503
    call("POST", f"{base}/webhooks/{hook['id']}/rotate-secret", headers=admin,
         json={"overlap_seconds": 60})
    receiver.secrets[hook["path"]] = answers[-1][1]["secret"]
    call("POST", f"{base}/webhooks/{hook['id']}/test", 202, headers=admin)
    deliveries = f"{base}/webhooks/{hook['id']}/deliveries"
    # (Events recorded before the subscription may reach it too: the relay dispatches later.)
    [pending] = [d for d in call("GET", deliveries, headers=admin)["items"]
                 if d["event_type"] == "twofa.test"]
    assert pending["status"] == "pending" and pending["next_attempt_at"]
    gate.set()
    wait_until(lambda: [d for d in http.get(deliveries, headers=admin).json()["items"]
                        if d["event_type"] == "twofa.test" and d["attempts"]], 60,
               message="the test event delivered")
    call("GET", deliveries, headers=admin)
    call("GET", f"{base}/webhooks", headers=admin)
    events = call("GET", f"{base}/events", headers=admin)["items"]

    seen: dict[str, list[str]] = {}
    for where, body in answers + [("webhook body", json.loads(r.body))
                                  for r in receiver.at(hook["path"])]:
        for key_name, value in _strings(body):
            if LOOKS_LIKE_A_TIME.match(value):
                seen.setdefault(key_name, []).append(value)
                assert ONE_FORMAT.match(value), f"{where}: {key_name} = {value!r}"
    assert {"enrolled_at", "expires_at", "created_at", "last_used_at", "revoked_at",
            "previous_secret_expires_at", "next_attempt_at", "finished_at", "attempted_at",
            "time", "until"} <= set(seen), sorted(seen)

    # The audit log lists an event exactly as webhooks receive it.
    [body] = [b for b in (json.loads(r.body) for r in receiver.at(hook["path"]))
              if b["type"] == "twofa.test"]
    assert body in events and "subject" in body
    assert all(e.get("subject", "absent") is not None for e in events)  # absent, never null


def _strings(value: Any, key: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v, key)
    elif isinstance(value, str):
        yield key, value
