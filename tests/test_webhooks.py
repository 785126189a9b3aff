"""Webhooks through the real API, relay, Celery worker and a real HTTP receiver on loopback."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from services.events.catalog import AUDIT_ONLY
from tests.conftest import WorkspaceHandle
from tests.stack import Stack, wait_until
from tests.twofactor import enroll_in_session
from tests.webhook_receiver import Receiver

# The Standard Webhooks signature example, copied into tests/data/ (the file names its source).
VECTORS = Path(__file__).resolve().parent / "data" / "standard-webhooks.json"
CLOUDEVENT_ATTRIBUTES = {"specversion", "id", "source", "type", "time", "datacontenttype", "data"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def subscribe(ws: WorkspaceHandle, headers: dict[str, str], receiver: Receiver,
              types: list[str], path: str | None = None) -> dict[str, Any]:
    path = path or f"/hooks/{uuid.uuid4().hex[:8]}"
    r = ws.client.post(f"/v1/workspaces/{ws.slug}/webhooks", headers=headers,
                       json={"url": receiver.url(path), "event_types": types})
    assert r.status_code == 201, r.text
    body = r.json()
    receiver.secrets[path] = body["secret"]
    return {**body, "path": path}


def record(ws: WorkspaceHandle, type_: str, data: dict[str, Any], teammate_id: int | None = None) -> str:
    """An event as the service layer records it (audit row + outbox, committed)."""
    from services.accounts.workspaces import get_by_slug
    from services.db import unit_of_work
    from services.events import recorder
    from services.events.catalog import EventType

    with unit_of_work() as session:
        workspace = get_by_slug(session, ws.slug)
        return recorder.record(session, workspace.id, EventType(type_), data, teammate_id).id


def deliveries(ws: WorkspaceHandle, headers: dict[str, str], endpoint_id: int) -> list[dict[str, Any]]:
    r = ws.client.get(f"/v1/workspaces/{ws.slug}/webhooks/{endpoint_id}/deliveries", headers=headers)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def test_signature_matches_the_standard_webhooks_vector() -> None:
    from services.webhooks import signing

    v = json.loads(VECTORS.read_text())
    headers = signing.headers(v["secret"], v["msg_id"], datetime.fromtimestamp(v["timestamp"], UTC),
                              v["payload"])
    assert headers["webhook-signature"] == v["signature"]
    assert headers["webhook-timestamp"] == str(v["timestamp"])
    assert headers["webhook-id"] == v["msg_id"]


def test_new_secrets_are_whsec_with_enough_randomness() -> None:
    from services.webhooks import signing

    secrets = {signing.new_secret() for _ in range(20)}
    assert len(secrets) == 20
    for secret in secrets:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24
        Webhook(secret)  # the reference library accepts it


def test_webhook_tasks_have_a_queue_of_their_own() -> None:
    """A slow receiver holds webhook workers only: invitations and emails use the main queue."""
    from services.config import get_settings
    from workers.celery_app import make_app, queues

    settings = get_settings()
    app = make_app(settings)
    route = app.amqp.router.route
    for name in ("webhooks.deliver", "webhooks.sweep", "webhooks.send_disabled_email"):
        assert route({}, name)["queue"].name == f"{settings.queue}.webhooks", name
    assert route({}, "enrollment.sweep")["queue"].name == settings.queue
    # Events are dispatched from a queue of their own, which every kind of worker consumes:
    # a rollout's backlog of invitation batches never holds up an event (and its webhooks).
    events = f"{settings.queue}.events"
    assert route({}, "events.dispatch")["queue"].name == events
    hooks = f"{settings.queue}.webhooks"
    assert queues(settings) == [hooks, events, settings.queue]  # `twofa worker`
    assert queues(settings, "invitations") == [events, settings.queue]
    assert queues(settings, "webhooks") == [hooks, events]


ADMINS_ENROLLMENT = ("twofa.enabled", "twofa.method.added")  # their app, before the rollout


def test_rollout_events_reach_the_receiver_signed_as_cloudevents(
    stack: Stack, make_workspace: Any, receiver: Receiver
) -> None:
    ws = make_workspace(teammates=4)
    ws.enroll_admin()  # before subscribing: the admin's twofa.enabled is not among these
    enrolling = ("twofa.enabled", "twofa.method.added")  # what the admin's enrollment records
    headers = ws.admin_headers()
    hook = subscribe(ws, headers, receiver, ["*"])
    assert hook["secret"].startswith("whsec_") and hook["event_types"] == ["*"]
    ws.require_two_factor()
    # policy.changed plus one enrollment.invited per teammate without 2FA. The admin's
    # twofa.enabled and twofa.method.added may come too: their fan-out can run after the
    # subscription exists.
    def rollout_deliveries() -> list[Any]:
        got = receiver.at(hook["path"])
        assert all(g.error is None and g.verified is not None for g in got), [g.error for g in got]
        return [g for g in got if g.verified["type"] not in enrolling]

    wait_until(lambda: len(rollout_deliveries()) >= 5, 60, message="5 deliveries")
    got = rollout_deliveries()
    for g in got:
        event = g.verified
        assert set(event) >= CLOUDEVENT_ATTRIBUTES, event
        assert event["specversion"] == "1.0" and event["source"] == f"/workspaces/{ws.slug}"
        assert g.webhook_id == event["id"]
        assert g.headers["content-type"] == "application/json"
        assert g.headers["webhook-signature"].startswith("v1,")
    types = [g.verified["type"] for g in got]
    assert types[0] == "twofa.policy.changed"
    assert sorted(types[1:]) == ["twofa.enrollment.invited"] * 4

    # The ids are the audit log's event ids, and the order is the log's order.
    log = ws.client.get(f"/v1/workspaces/{ws.slug}/events", headers=headers).json()["items"]
    assert [g.webhook_id for g in got] == [e["id"] for e in log if e["type"] not in enrolling
                                           and e["type"] not in AUDIT_ONLY]


def test_a_failing_receiver_gets_the_same_id_until_it_succeeds(
    stack: Stack, workspace: WorkspaceHandle, receiver: Receiver
) -> None:
    headers = workspace.admin_headers()
    hook = subscribe(workspace, headers, receiver, ["twofa.enabled"])
    receiver.behaviours[hook["path"]] = lambda _path, n: 500 if n < 2 else 204
    event_id = record(workspace, "twofa.enabled", {"teammate_id": workspace.admin_id},
                      workspace.admin_id)

    def succeeded() -> list[dict[str, Any]] | None:
        items = deliveries(workspace, headers, hook["id"])
        return items if items and items[0]["status"] == "succeeded" else None

    [item] = wait_until(succeeded, 60, message="delivery to succeed")
    assert receiver.ids(hook["path"]) == [event_id] * 3
    assert all(r.verified is not None for r in receiver.at(hook["path"]))
    assert item["event_id"] == event_id and item["attempt_count"] == 3
    assert [a["response_status"] for a in item["attempts"]] == [500, 500, 204]
    assert item["attempts"][0]["error"] == "HTTP 500"
    assert all(a["duration_ms"] is not None for a in item["attempts"])


def test_filters_choose_what_each_endpoint_receives(
    stack: Stack, workspace: WorkspaceHandle, receiver: Receiver
) -> None:
    headers = workspace.admin_headers()
    enabled = subscribe(workspace, headers, receiver, ["twofa.enabled"])
    disabled = subscribe(workspace, headers, receiver, ["twofa.disabled", "twofa.teammate.locked"])
    everything = subscribe(workspace, headers, receiver, ["*"])
    tid = workspace.admin_id
    ids = [
        record(workspace, "twofa.enabled", {"teammate_id": tid}, tid),
        record(workspace, "twofa.disabled", {"teammate_id": tid, "by": "self", "actor_id": tid}, tid),
        record(workspace, "twofa.recovery_code.used", {"teammate_id": tid, "remaining": 9}, tid),
    ]
    wait_until(lambda: receiver.ids(everything["path"]) == ids, 60, message="all three at '*'")
    wait_until(lambda: receiver.at(enabled["path"]) and receiver.at(disabled["path"]), 30,
               message="filtered endpoints")
    assert receiver.ids(enabled["path"]) == [ids[0]]
    assert receiver.ids(disabled["path"]) == [ids[1]]
    # No delivery was ever created for what an endpoint did not subscribe to.
    assert [d["event_id"] for d in deliveries(workspace, headers, enabled["id"])] == [ids[0]]


def test_later_events_wait_for_an_earlier_one_being_retried(
    stack: Stack, workspace: WorkspaceHandle, receiver: Receiver
) -> None:
    headers = workspace.admin_headers()
    hook = subscribe(workspace, headers, receiver, ["*"])
    receiver.behaviours[hook["path"]] = lambda _path, n: 503 if n < 2 else 200
    tid = workspace.admin_id
    ids = [record(workspace, "twofa.verification.failed", {"teammate_id": tid, "reason": f"r{i}"}, tid)
           for i in range(3)]
    wait_until(lambda: len(receiver.at(hook["path"])) >= 5, 60, message="five requests")
    assert receiver.ids(hook["path"]) == [ids[0], ids[0], ids[0], ids[1], ids[2]]


def test_410_disables_the_endpoint_and_tells_the_admins(
    stack: Stack, workspace: WorkspaceHandle, receiver: Receiver
) -> None:
    headers = workspace.admin_headers()
    hook = subscribe(workspace, headers, receiver, ["*"])
    witness = subscribe(workspace, headers, receiver, ["*"])
    receiver.behaviours[hook["path"]] = lambda _path, _n: 410
    tid = workspace.admin_id
    record(workspace, "twofa.verification.failed", {"teammate_id": tid, "reason": "a"}, tid)

    def listed() -> dict[str, Any] | None:
        items = workspace.client.get(f"/v1/workspaces/{workspace.slug}/webhooks",
                                     headers=headers).json()["items"]
        return next((i for i in items if i["id"] == hook["id"] and not i["enabled"]), None)

    item = wait_until(listed, 60, message="endpoint disabled")
    assert "410" in item["disabled_reason"]
    subject = f"A webhook endpoint of {workspace.name} was disabled"
    [mail] = wait_until(lambda: [m for m in stack.smtp.to(workspace.admin_email) if m.subject == subject],
                        60, message="admin email")
    assert hook["url"] in mail.part("plain")
    assert len(receiver.at(hook["path"])) == 1  # no retry after 410

    later = record(workspace, "twofa.verification.failed", {"teammate_id": tid, "reason": "b"}, tid)
    wait_until(lambda: later in receiver.ids(witness["path"]), 60, message="later event at the witness")
    [only] = deliveries(workspace, headers, hook["id"])  # nothing new for a disabled endpoint
    r = workspace.client.post(f"/v1/workspaces/{workspace.slug}/webhooks/{hook['id']}/deliveries/"
                              f"{only['id']}/redeliver", headers=headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "webhook_disabled"


def test_failing_past_the_schedule_n_times_in_a_row_disables(
    stack: Stack, workspace: WorkspaceHandle, receiver: Receiver
) -> None:
    from services.config import get_settings

    threshold = get_settings().webhook_failure_threshold
    schedule = get_settings().retry_schedule("webhook")
    headers = workspace.admin_headers()
    hook = subscribe(workspace, headers, receiver, ["*"])
    receiver.behaviours[hook["path"]] = lambda _path, _n: 500
    tid = workspace.admin_id
    for i in range(threshold + 1):
        record(workspace, "twofa.verification.failed", {"teammate_id": tid, "reason": f"r{i}"}, tid)

    wait_until(lambda: stack.smtp.to(workspace.admin_email), 120, message="admin email")
    items = deliveries(workspace, headers, hook["id"])
    failed = [d for d in items if d["status"] == "failed"]
    assert len(failed) == threshold
    assert all(d["attempt_count"] == len(schedule) + 1 for d in failed)
    assert len(receiver.at(hook["path"])) == threshold * (len(schedule) + 1)
    [listed] = workspace.client.get(f"/v1/workspaces/{workspace.slug}/webhooks",
                                    headers=headers).json()["items"]
    assert listed["enabled"] is False and f"{threshold} events in a row" in listed["disabled_reason"]


def test_redeliver_sends_the_same_event_again(
    stack: Stack, workspace: WorkspaceHandle, receiver: Receiver
) -> None:
    headers = workspace.admin_headers()
    hook = subscribe(workspace, headers, receiver, ["twofa.enabled"])
    event_id = record(workspace, "twofa.enabled", {"teammate_id": workspace.admin_id},
                      workspace.admin_id)
    wait_until(lambda: receiver.ids(hook["path"]) == [event_id], 60, message="first delivery")
    wait_until(lambda: deliveries(workspace, headers, hook["id"])[0]["status"] == "succeeded", 30)
    [item] = deliveries(workspace, headers, hook["id"])
    base = f"/v1/workspaces/{workspace.slug}/webhooks/{hook['id']}/deliveries"
    r = workspace.client.post(f"{base}/{item['id']}/redeliver", headers=headers)
    assert r.status_code == 202, r.text
    wait_until(lambda: receiver.ids(hook["path"]) == [event_id, event_id], 60, message="redelivery")
    assert all(x.verified is not None for x in receiver.at(hook["path"]))
    r = workspace.client.post(f"{base}/{item['id'] + 10**9}/redeliver", headers=headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "delivery_not_found"


def test_endpoint_management_and_bad_input(
    stack: Stack, make_workspace: Any, receiver: Receiver
) -> None:
    ws = make_workspace(teammates=1)
    other = make_workspace()
    headers = ws.admin_headers()
    base = f"/v1/workspaces/{ws.slug}/webhooks"
    hook = subscribe(ws, headers, receiver, ["twofa.enabled", "twofa.enabled", "twofa.disabled"])
    assert hook["event_types"] == ["twofa.enabled", "twofa.disabled"]

    [listed] = ws.client.get(base, headers=headers).json()["items"]
    assert listed["id"] == hook["id"] and "secret" not in listed and listed["enabled"] is True

    bad = [
        {"url": receiver.url("/x"), "event_types": ["twofa.nope"]},
        {"url": receiver.url("/x"), "event_types": ["*", "twofa.enabled"]},
        {"url": receiver.url("/x"), "event_types": []},
        {"url": receiver.url("/x"), "event_types": "*"},
        {"url": "ftp://example.com/", "event_types": ["*"]},
        {"url": "not a url", "event_types": ["*"]},
        {"url": "http://user:pw@example.com/", "event_types": ["*"]},
        {"url": "http://example.com:99999/", "event_types": ["*"]},
        {"url": "https://example.com/" + "a" * 3000, "event_types": ["*"]},
        {"event_types": ["*"]},
    ]
    for body in bad:
        r = ws.client.post(base, headers=headers, json=body)
        assert r.status_code == 422, (body, r.text)
        assert set(r.json()["error"]) == {"code", "message"}

    assert ws.client.delete(f"{base}/{2**70}", headers=headers).status_code == 422
    for path in (f"{base}/0/deliveries", f"{base}/abc/deliveries", f"{base}/1/deliveries?cursor=-1"):
        assert ws.client.get(path, headers=headers).status_code == 422, path
    assert ws.client.get(f"{base}/{hook['id'] + 10**6}/deliveries",
                         headers=headers).status_code == 404

    # Another workspace's admin sees nothing; a member is forbidden.
    assert other.client.get(base, headers=other.admin_headers()).status_code == 404
    member = ws.login(f"member-00001@{ws.slug}.test", "member-password")
    r = ws.client.get(base, headers={"Authorization": f"Bearer {member['token']}"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"

    assert ws.client.delete(f"{base}/{hook['id']}", headers=headers).status_code == 204
    assert ws.client.delete(f"{base}/{hook['id']}", headers=headers).status_code == 404
    assert ws.client.get(base, headers=headers).json()["items"] == []


def _full_token(ws: WorkspaceHandle) -> str:
    """A full session for the admin, marked as having 2FA, once the workspace requires it."""
    from services.accounts import sessions
    from services.db import unit_of_work
    from services.models import Teammate

    with unit_of_work() as session:
        enroll_in_session(session, ws.admin_id)
        admin = session.get(Teammate, ws.admin_id)
        assert admin is not None
        return sessions.open_session(session, admin, factor="totp")  # as if the app signed in
