"""OpenTelemetry traces from the flip of a policy to the inbox and the webhook receiver, as an
operator's collector receives them: real `twofa api`, worker and relay processes export over
OTLP/HTTP to a receiver on loopback (tests/otlp_receiver.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD, WorkspaceHandle, start_api
from tests.otlp_receiver import OtlpReceiver, Span
from tests.stack import ROOT, Stack, wait_until
from tests.webhook_receiver import Receiver

TEAM = 3
SERVICES = {"twofa-api", "twofa-worker", "twofa-relay"}


@pytest.fixture
def collector() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@contextmanager
def _stack(tmp_path: Path, **otel: str) -> Iterator[tuple[Stack, httpx.Client]]:
    """An installation of its own whose processes read `otel` (and log JSON lines)."""
    st = Stack(home=tmp_path / "traced", overrides={"TWOFA_LOG_FORMAT": "json", **otel}).setup()
    try:
        st.start_relay()
        st.start_worker()
        with contextmanager(start_api)(st) as http:
            yield st, http
    finally:
        st.teardown()


def _flip(st: Stack, http: httpx.Client, hooks: Receiver) -> tuple[WorkspaceHandle, list[str]]:
    """A workspace of TEAM members with a webhook on every event; its admin requires 2FA over
    HTTP. Returns it and the members' addresses, once each has an invitation and the
    receiver has the policy change."""
    with st.active():
        from services.accounts import workspaces
        from services.db import unit_of_work
        from services.webhooks import service

        with unit_of_work() as session:
            ws, admin = workspaces.create(session, "traced", "Traced", "admin@traced.test",
                                          ADMIN_PASSWORD)
            workspaces.seed(session, ws, TEAM, "member-password")
            service.create(session, ws, hooks.url("/hooks"), ["*"])
            handle = WorkspaceHandle(ws.slug, ws.name, admin.email, admin.id, http)  # type: ignore[arg-type]
    handle.require_two_factor()
    members = [f"member-{i:05d}@traced.test" for i in range(1, TEAM + 1)]
    wait_until(lambda: all(st.smtp.to(m) for m in members), 60, message="every invitation")
    wait_until(lambda: _policy_hook(hooks), 60, message="the policy change's webhook")
    return handle, members


def _policy_hook(hooks: Receiver) -> Any:
    return next((r for r in hooks.at("/hooks")
                 if json.loads(r.body)["type"] == "twofa.policy.changed"), None)


@pytest.mark.slow
@pytest.mark.uses_backend
def test_one_trace_from_the_flip_to_the_last_email(
        tmp_path: Path, collector: OtlpReceiver, hooks: Receiver) -> None:
    with _stack(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
                OTEL_BSP_SCHEDULE_DELAY="100") as (st, http):
        _, members = _flip(st, http, hooks)
        assert http.get("/healthz?token=not-for-traces").status_code == 200
        flip = wait_until(lambda: _flip_span(collector), 30, message="the flip's server span")
        hook = _policy_hook(hooks)
        trace = wait_until(lambda: _complete(collector.trace(flip.trace_id), hook.webhook_id), 60,
                           message="the rest of the flip's trace")
        by_id = {s.span_id: s for s in trace}

        # The relay published the event's dispatch linked to the request (in its trace, or
        # in another one if it merged the event with an earlier request's), and the
        # rollout's batch in the flip's trace (planned by the dispatch or the sweep).
        dispatches = [s for s in collector.snapshot() if s.name == "outbox publish events.dispatch"
                      and (flip.trace_id, flip.span_id) in s.links]
        assert dispatches and {(s.kind, s.service) for s in dispatches} == {("PRODUCER", "twofa-relay")}
        assert [s for s in trace if s.name == "outbox publish enrollment.send_batch"]
        # The rollout was planned and its batch sent in the flip's trace, by the worker.
        assert [s for s in trace if s.name == "enrollment plan" and s.service == "twofa-worker"]
        runs = {s.name for s in trace if s.service == "twofa-worker" and s.kind == "CONSUMER"}
        assert "run/enrollment.send_batch" in runs
        # One SMTP send per invitation, each under the batch task that sent it.
        batch_sends = [s for s in trace if s.name == "smtp send"
                       and by_id[s.parent_span_id].name == "run/enrollment.send_batch"]
        assert len(batch_sends) == len(members) and not any(s.failed for s in batch_sends)
        # The policy change's webhook: an attempt span, its HTTP call, and the receiver saw
        # the same trace in `traceparent`.
        [deliver] = [s for s in trace if s.name == "webhook deliver"
                     and s.attributes["twofa.event.id"] == hook.webhook_id]
        assert deliver.attributes["http.response.status_code"] == 200
        [post] = [s for s in trace if s.parent_span_id == deliver.span_id and s.kind == "CLIENT"]
        assert "/hooks" not in json.dumps(post.attributes)  # a URL's path may be its secret
        assert hook.headers["traceparent"].split("-")[1] == flip.trace_id

        # Each process names itself, with an instance id.
        spans = wait_until(lambda: _with_query(collector), 30, message="the /healthz span")
        assert "not-for-traces" not in json.dumps([s.attributes for s in spans])
        assert {s.service for s in spans} == SERVICES == {s.service for s in trace}
        assert all(s.instance for s in spans)
        assert len({s.instance for s in spans if s.service == "twofa-relay"}) == 1

        # Log lines carry the trace: the API's request line and the worker's batch line.
        api_lines = _json_lines(st, next(n for n in st.procs if n.startswith("api-")))
        [request_line] = [e for e in api_lines if e.get("logger") == "twofa.request"
                          and e.get("route", "").endswith("/two-factor-policy")]
        assert request_line["trace_id"] == flip.trace_id and request_line["span_id"]
        assert any(e.get("trace_id") == flip.trace_id and "invitations batch" in e["message"]
                   for e in _json_lines(st, "worker"))


def _flip_span(collector: OtlpReceiver) -> Span | None:
    return next((s for s in collector.snapshot() if s.kind == "SERVER"
                 and s.service == "twofa-api" and s.name.startswith("PUT ")
                 and s.name.endswith("/two-factor-policy")), None)


def _with_query(collector: OtlpReceiver) -> list[Span] | None:
    spans = collector.snapshot()
    return spans if any("token=" in json.dumps(s.attributes) for s in spans) else None


def _complete(trace: list[Span], event_id: str) -> list[Span] | None:
    """The trace once the last of its expected spans arrived (they come in batches)."""
    names = [s.name for s in trace]
    delivered = [s for s in trace if s.attributes.get("twofa.event.id") == event_id]
    wanted = {"enrollment plan", "run/enrollment.send_batch"}
    return trace if wanted <= set(names) and names.count("smtp send") >= TEAM and delivered else None


def _json_lines(st: Stack, name: str) -> list[dict[str, Any]]:
    lines = []
    for line in st.log(name).splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue  # Celery's banner and the like
    return [e for e in lines if isinstance(e, dict)]


@pytest.mark.slow
@pytest.mark.uses_backend
def test_tracing_turned_off_sends_nothing(
        tmp_path: Path, collector: OtlpReceiver, hooks: Receiver) -> None:
    with _stack(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
                OTEL_TRACES_EXPORTER="none", OTEL_BSP_SCHEDULE_DELAY="100") as (st, http):
        _flip(st, http, hooks)
        assert collector.requests == 0
        assert "traceparent" not in _policy_hook(hooks).headers
        assert not [e for e in _json_lines(st, "worker") if "trace_id" in e]


# FastAPI imports the OpenTelemetry API itself (its own telemetry stays off without a
# provider), and redis-py 8 the SDK's metrics part; the SDK's tracing, the exporter and the
# instrumentations are twofa's to load, and only when asked.
OFF_PROBE = """
import logging, sys
import services.asgi
from opentelemetry import trace
from services import jsonlog
from workers import tracing
from workers.celery_app import app
tracing.prepare_worker()
tracing.start_relay(app)
jsonlog.JsonFormatter().format(logging.makeLogRecord({"msg": "x"}))
print(type(trace.get_tracer_provider()).__name__, sorted(m for m in sys.modules if m.startswith(
    ("opentelemetry.sdk.trace", "opentelemetry.exporter", "opentelemetry.instrumentation"))))
"""


@pytest.mark.parametrize("otel", [{}, {"OTEL_TRACES_EXPORTER": "none",
                                       "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}])
def test_tracing_off_imports_no_sdk(tmp_path: Path, otel: dict[str, str]) -> None:
    """The API app, the relay's and worker's setup and a log line, in a fresh interpreter."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(otel, TWOFA_HOME=str(tmp_path / "home"))
    out = subprocess.run([sys.executable, "-c", OFF_PROBE], env=env, cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=120).stdout
    assert out.strip().splitlines()[-1] == "ProxyTracerProvider []"


@pytest.mark.parametrize(("otel", "exporters"), [
    ({}, []),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ["otlp"]),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, ["otlp"]),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": ""}, []),  # compose's `${OTEL_EXPORTER_OTLP_ENDPOINT:-}`
    ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, []),
    ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, []),
])
def test_which_variables_turn_tracing_on(otel: dict[str, str], exporters: list[str]) -> None:
    from services import telemetry

    assert telemetry.exporters(otel) == exporters
