"""Managing an endpoint after subscription, through the real API, relay, worker and receiver:
PATCH (url, event types, enabled), the test event, attempt counts, secret rotation."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from tests.conftest import WorkspaceHandle
from tests.stack import Stack, wait_until
from tests.test_webhooks import deliveries, record, subscribe
from tests.webhook_receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def _base(ws: WorkspaceHandle, endpoint_id: int) -> str:
    return f"/v1/workspaces/{ws.slug}/webhooks/{endpoint_id}"


def _settled(ws: WorkspaceHandle, headers: dict[str, str], endpoint_id: int,
             count: int) -> list[dict[str, Any]]:
    def done() -> list[dict[str, Any]] | None:
        items = deliveries(ws, headers, endpoint_id)
        return items if len(items) >= count and items[0]["status"] != "pending" else None

    return wait_until(done, 60, message=f"{count} settled deliveries")


def test_patch_changes_url_and_event_types_and_rechecks_the_url(
    stack: Stack, workspace: WorkspaceHandle, receiver: Receiver
) -> None:
    headers = workspace.admin_headers()
    hook = subscribe(workspace, headers, receiver, ["twofa.disabled"])
    base = _base(workspace, hook["id"])
    receiver.secrets["/moved"] = hook["secret"]

    r = workspace.client.patch(base, headers=headers,
                               json={"url": receiver.url("/moved"), "event_types": ["twofa.enabled"]})
    assert r.status_code == 200, r.text
    assert r.json()["url"] == receiver.url("/moved") and r.json()["event_types"] == ["twofa.enabled"]
    event_id = record(workspace, "twofa.enabled", {"teammate_id": workspace.admin_id}, workspace.admin_id)
    wait_until(lambda: receiver.ids("/moved") == [event_id], 60, message="delivery at the new URL")
    assert receiver.at("/moved")[0].verified is not None
    assert receiver.at(hook["path"]) == []

    for body, code in [
        ({"url": "http://127.0.0.1:25/smtp"}, "url_not_allowed"),  # the port rule
        ({"url": "ftp://127.0.0.1/"}, "invalid_url"),
        ({"event_types": ["twofa.nope"]}, "invalid_event_types"),
        ({"enabled": "yes"}, "invalid_request"),
    ]:
        r = workspace.client.patch(base, headers=headers, json=body)
        assert r.status_code == 422 and r.json()["error"]["code"] == code, (body, r.text)
    [listed] = workspace.client.get(f"/v1/workspaces/{workspace.slug}/webhooks",
                                    headers=headers).json()["items"]
    assert listed["url"] == receiver.url("/moved")  # refused changes changed nothing
    r = workspace.client.patch(_base(workspace, hook["id"] + 10**6), headers=headers,
                               json={"enabled": True})
    assert r.status_code == 404 and r.json()["error"]["code"] == "webhook_not_found"


def test_reenabling_resumes_from_now_and_keeps_the_history(
    stack: Stack, workspace: WorkspaceHandle, receiver: Receiver
) -> None:
    headers = workspace.admin_headers()
    hook = subscribe(workspace, headers, receiver, ["*"])
    path, base = hook["path"], _base(workspace, hook["id"])
    gate = threading.Event()
    # The first request is held until the endpoint has been disabled, then fails.
    receiver.behaviours[path] = lambda _p, n: 503 if n == 0 and gate.wait(30) else 200
    tid = workspace.admin_id
    first = record(workspace, "twofa.verification.failed", {"teammate_id": tid, "reason": "a"}, tid)
    piled = record(workspace, "twofa.verification.failed", {"teammate_id": tid, "reason": "b"}, tid)
    wait_until(lambda: receiver.counts.get(path) == 1, 60, message="first attempt in flight")
    r = workspace.client.patch(base, headers=headers, json={"enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False
    gate.set()
    wait_until(lambda: deliveries(workspace, headers, hook["id"])[-1]["attempt_count"] == 1, 60)
    r = workspace.client.post(f"{base}/test", headers=headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "webhook_disabled"

    r = workspace.client.patch(base, headers=headers, json={"enabled": True})
    assert r.status_code == 200 and r.json()["enabled"] is True and r.json()["disabled_reason"] is None
    fresh = record(workspace, "twofa.verification.failed", {"teammate_id": tid, "reason": "c"}, tid)
    wait_until(lambda: fresh in receiver.ids(path), 60, message="the event after re-enabling")
    assert receiver.ids(path) == [first, fresh]  # what piled up while disabled was not sent
    items = {d["event_id"]: d for d in deliveries(workspace, headers, hook["id"])}
    assert items[first]["status"] == "skipped" and items[first]["attempt_count"] == 1
    assert items[piled]["status"] == "skipped" and items[piled]["attempt_count"] == 0
    wait_until(lambda: deliveries(workspace, headers, hook["id"])[0]["status"] == "succeeded", 60)


def test_test_event_reaches_only_that_endpoint_through_the_delivery_path(
    stack: Stack, workspace: WorkspaceHandle, receiver: Receiver
) -> None:
    headers = workspace.admin_headers()
    hook = subscribe(workspace, headers, receiver, ["twofa.enabled"])
    witness = subscribe(workspace, headers, receiver, ["*"])
    r = workspace.client.post(f"{_base(workspace, hook['id'])}/test", headers=headers)
    assert r.status_code == 202, r.text
    wait_until(lambda: receiver.at(hook["path"]), 60, message="test event")
    [got] = receiver.at(hook["path"])
    assert got.verified is not None and got.verified["type"] == "twofa.test"
    assert got.verified["source"] == f"/workspaces/{workspace.slug}"
    [item] = _settled(workspace, headers, hook["id"], 1)
    assert item["event_type"] == "twofa.test" and item["status"] == "succeeded"
    assert item["event_id"] == got.webhook_id and item["attempt_count"] == 1
    assert deliveries(workspace, headers, witness["id"]) == []
    assert receiver.at(witness["path"]) == []


def test_attempt_count_matches_the_attempts_listed_after_a_redelivery(
    stack: Stack, workspace: WorkspaceHandle, receiver: Receiver
) -> None:
    headers = workspace.admin_headers()
    hook = subscribe(workspace, headers, receiver, ["twofa.enabled"])
    receiver.behaviours[hook["path"]] = lambda _p, n: 500 if n == 0 else 204
    record(workspace, "twofa.enabled", {"teammate_id": workspace.admin_id}, workspace.admin_id)
    [item] = _settled(workspace, headers, hook["id"], 1)
    assert item["attempt_count"] == 2 == len(item["attempts"])
    r = workspace.client.post(f"{_base(workspace, hook['id'])}/deliveries/{item['id']}/redeliver",
                              headers=headers)
    assert r.status_code == 202
    wait_until(lambda: len(receiver.at(hook["path"])) == 3, 60, message="redelivery")
    item = wait_until(lambda: next((d for d in deliveries(workspace, headers, hook["id"])
                                    if d["status"] == "succeeded" and len(d["attempts"]) == 3), None),
                      60, message="redelivery recorded")
    assert item["attempt_count"] == 3
    assert [a["response_status"] for a in item["attempts"]] == [500, 204, 204]


def _verifies(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    try:
        Webhook(secret).verify(body, headers)
        return True
    except WebhookVerificationError:
        return False


def test_rotated_secret_overlaps_with_the_old_one(
    stack: Stack, workspace: WorkspaceHandle, receiver: Receiver
) -> None:
    headers = workspace.admin_headers()
    hook = subscribe(workspace, headers, receiver, ["twofa.enabled"])
    old, base = hook["secret"], _base(workspace, hook["id"])
    r = workspace.client.post(f"{base}/rotate-secret", headers=headers, json={"overlap_seconds": 3600})
    assert r.status_code == 200, r.text
    new = r.json()["secret"]
    assert new.startswith("whsec_") and new != old and r.json()["previous_secret_expires_at"]
    assert "secret" not in workspace.client.get(f"/v1/workspaces/{workspace.slug}/webhooks",
                                                headers=headers).json()["items"][0]

    assert workspace.client.post(f"{base}/test", headers=headers).status_code == 202
    wait_until(lambda: receiver.at(hook["path"]), 60, message="test event")
    [during] = receiver.at(hook["path"])
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert _verifies(old, during.body, during.headers) and _verifies(new, during.body, during.headers)

    # Rotating with no overlap: only the newest secret signs from now on.
    r = workspace.client.post(f"{base}/rotate-secret", headers=headers, json={"overlap_seconds": 0})
    newest = r.json()["secret"]
    assert r.json()["previous_secret_expires_at"] is None
    assert workspace.client.post(f"{base}/test", headers=headers).status_code == 202
    wait_until(lambda: len(receiver.at(hook["path"])) == 2, 60, message="second test event")
    after = receiver.at(hook["path"])[1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert _verifies(newest, after.body, after.headers)
    assert not _verifies(new, after.body, after.headers) and not _verifies(old, after.body, after.headers)
    r = workspace.client.post(f"{base}/rotate-secret", headers=headers, json={"overlap_seconds": -1})
    assert r.status_code == 422
