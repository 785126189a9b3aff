"""/metrics and /readyz: scraped before and after real traffic (API, relay, Celery worker,
SMTP sink, webhook receiver), the named series must move."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ADMIN_PASSWORD, WorkspaceHandle
from tests.stack import Stack, free_port, wait_until
from tests.test_fault_rollout import _rollout
from tests.test_webhooks import subscribe
from tests.twofactor import code, complete, password_login, steady, wrong_codes
from tests.webhook_receiver import Receiver

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
POLICY_ROUTE = "/v1/workspaces/{slug}/two-factor-policy"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def parse(text: str) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(ws: WorkspaceHandle) -> Samples:
    r = ws.client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_move_with_real_traffic(
    stack: Stack, make_workspace: Any, receiver: Receiver
) -> None:
    ws = make_workspace(teammates=3)
    ws.enroll_admin()
    hook = subscribe(ws, ws.admin_headers(), receiver, ["twofa.policy.changed"])
    before = scrape(ws)
    assert value(before, "twofa_database_up") == 1

    ws.require_two_factor()
    steady()
    challenge = password_login(ws.client, ws.slug, ws.admin_email, ADMIN_PASSWORD)
    assert challenge["status"] == "two_factor_required"
    assert complete(ws.client, challenge["challenge"], code(ws.admin_secret)).status_code == 200
    for wrong in wrong_codes(ws.admin_secret, 10):  # the tenth locks the admin out
        body = password_login(ws.client, ws.slug, ws.admin_email, ADMIN_PASSWORD)
        assert complete(ws.client, body["challenge"], wrong).status_code == 401
    wait_until(lambda: receiver.at(hook["path"]), 60, message="policy webhook")

    def rolled_out() -> Samples | None:
        after = scrape(ws)
        sent = (value(after, "twofa_invitations", state="sent")
                - value(before, "twofa_invitations", state="sent"))
        delivered = (value(after, "twofa_webhook_deliveries", outcome="succeeded")
                     - value(before, "twofa_webhook_deliveries", outcome="succeeded"))
        return after if sent >= 3 and delivered >= 1 else None

    after = wait_until(rolled_out, 90, message="invitations and delivery in /metrics")
    moved = {
        "policy PUT 200": ("twofa_http_requests_total",
                           {"route": POLICY_ROUTE, "method": "PUT", "status": "200"}),
        "policy PUT timed": ("twofa_http_request_duration_seconds_count",
                             {"route": POLICY_ROUTE, "method": "PUT"}),
        "accepted codes": ("twofa_verification_outcomes_total", {"outcome": "accepted"}),
        "wrong codes": ("twofa_verification_outcomes_total", {"outcome": "invalid_code"}),
        "lockouts": ("twofa_lockouts_total", {}),
    }
    for what, (name, labels) in moved.items():
        assert value(after, name, **labels) > value(before, name, **labels), what
    assert (value(after, "twofa_verification_outcomes_total", outcome="invalid_code")
            - value(before, "twofa_verification_outcomes_total", outcome="invalid_code")) == 10
    assert value(after, "twofa_lockouts_total") - value(before, "twofa_lockouts_total") == 1
    assert value(after, "twofa_outbox_oldest_unpublished_age_seconds") >= 0
    assert ("twofa_outbox_oldest_incomplete_age_seconds", ()) in after
    # Route templates, never raw paths: no series names a workspace slug.
    assert not [k for k in after if any(ws.slug in v for _, v in k[1])]


def test_readyz_answers_for_the_database_and_broker(stack: Stack, workspace: WorkspaceHandle) -> None:
    r = workspace.client.get("/readyz")
    assert r.status_code == 200 and r.json() == {"status": "ready"}
    assert workspace.client.get("/healthz").status_code == 200


def test_readyz_is_503_when_the_broker_is_unreachable(stack: Stack) -> None:
    """A real `twofa api` process whose broker is a closed port: not ready, yet alive."""
    dead = free_port()
    port = free_port()
    env = {"TWOFA_BROKER_URL": f"redis://127.0.0.1:{dead}/0"}
    stack.start("api-nobroker", "api", "--host", "127.0.0.1", "--port", str(port), env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _get(f"{base}/healthz")[0] == 200, 60, message="api up")
        status, headers, body = _get(f"{base}/readyz")
        assert status == 503 and b'"unavailable"' in body and b"broker" in body
        assert int(headers["retry-after"]) > 0
    finally:
        stack.kill("api-nobroker")


def test_worker_serves_task_durations(stack: Stack, make_workspace: Any) -> None:
    port = free_port()
    stack.start("worker-metrics", "worker", "-c", "1", env={"TWOFA_WORKER_METRICS_PORT": str(port)})
    try:
        wait_until(lambda: _get(f"http://127.0.0.1:{port}/metrics")[0] == 200, 60,
                   message="worker metrics port")
        ws = make_workspace(teammates=2)
        ws.require_two_factor()

        def timed() -> Samples | None:
            samples = parse(_get(f"http://127.0.0.1:{port}/metrics")[2].decode())
            counts = [v for (name, _), v in samples.items()
                      if name == "twofa_task_duration_seconds_count"]
            return samples if counts and sum(counts) > 0 else None

        samples = wait_until(timed, 90, message="a task timed by the extra worker")
        tasks = {dict(labels)["task"] for (name, labels), _ in samples.items()
                 if name == "twofa_task_duration_seconds_count"}
        assert tasks and all("." in t for t in tasks), tasks
    finally:
        stack.kill("worker-metrics")


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
            return response.status, _lower(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, _lower(exc.headers), exc.read()
    except OSError:
        return 0, {}, b""


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def test_live_workers_and_no_stall_from_rows_no_rollout_needs(stack: Stack, make_workspace: Any) -> None:
    """The session's worker (all queues) counts as live; a pending invitation of a version no
    longer current, however old, is no stall: no worker will ever take it, and none should."""
    from datetime import timedelta

    from services.db import unit_of_work
    from services.models import EnrollmentInvitation, Workspace, utcnow

    ws = make_workspace(teammates=1)
    wait_until(lambda: value(scrape(ws), "twofa_workers_live", queues="all") >= 1, 60,
               message="the session worker's heartbeat")
    ws.enroll_admin()
    ws.require_two_factor()  # version 1, sent in full
    ws_id = _workspace_id(ws.slug)
    wait_until(lambda: _rollout(ws_id)["pending"] == 0, 60, message="the rollout to finish")
    with unit_of_work() as session:
        row = session.get(Workspace, ws_id)
        assert row is not None
        session.add(EnrollmentInvitation(
            workspace_id=row.id, teammate_id=ws.admin_id, policy_version=row.policy_version - 1,
            status="pending", resends=0, attempts=0, created_at=utcnow() - timedelta(days=1)))
    samples = scrape(ws)
    assert value(samples, "twofa_invitations_ready") == 0
    assert value(samples, "twofa_invitations_stalled") == 0
    assert ws.client.get("/readyz").json() == {"status": "ready"}


def _workspace_id(slug: str) -> int:
    from services.accounts import workspaces
    from services.db import unit_of_work

    with unit_of_work() as session:
        return workspaces.get_by_slug(session, slug).id
