"""Trace context that outlives its request: captured into rows, continued by later work.

Work leaves a request through the outbox (and webhook deliveries) and is done minutes later
in another process. So that one trace still shows the flip of a policy down to the last
email, the context of the span that wrote a row is kept in the row (`capture`, a W3C
`traceparent` carrier) and the work that serves the row runs in a span whose parent it is
(`span`); work that serves rows of several traces links to each of them.

Tracing is off unless the process's entry point set it up (services/telemetry.py calls
`enable`). While it is off every function here returns at once and OpenTelemetry is never
imported: no cost. Only the OpenTelemetry API is used here, never the SDK.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Link

Carrier = dict[str, str]  # {"traceparent": …, "tracestate": …}
TRACER = "twofa"
_on = False


def enable() -> None:
    global _on
    _on = True


def enabled() -> bool:
    return _on


def capture() -> Carrier | None:
    """The current span's context, to keep in a row (None when tracing is off or no span)."""
    if not _on:
        return None
    from opentelemetry.propagate import inject

    carrier: Carrier = {}
    inject(carrier)
    return carrier or None


class Span:
    """What a caller may say about its span; the no-op one when tracing is off."""

    def set(self, key: str, value: Any) -> None:
        pass

    def fail(self, description: str) -> None:
        pass


class _Live(Span):
    def __init__(self, span: Any) -> None:
        self.span = span

    def set(self, key: str, value: Any) -> None:
        self.span.set_attribute(key, value)

    def fail(self, description: str) -> None:
        from opentelemetry.trace import Status, StatusCode

        self.span.set_status(Status(StatusCode.ERROR, description))


@contextmanager
def span(name: str, parent: Carrier | None = None, links: Sequence[Carrier | None] = (),
         kind: str = "internal", attributes: Mapping[str, Any] | None = None) -> Iterator[Span]:
    """A span around the block: the child of `parent` (a captured carrier) when there is one,
    else of the current span; linked to each of `links`. `kind`: internal, producer,
    consumer, client. An exception marks it failed."""
    if not _on:
        yield Span()
        return
    from opentelemetry import trace

    tracer = trace.get_tracer(TRACER)
    # An exception marks the span failed by its type only: its message may name a
    # recipient or a URL's secrets, and traces leave the installation.
    with tracer.start_as_current_span(
        name, context=_parent(parent), kind=trace.SpanKind[kind.upper()],
        links=_links(links), attributes=dict(attributes or {}),
        record_exception=False, set_status_on_exception=False,
    ) as live:
        handle = _Live(live)
        try:
            yield handle
        except Exception as exc:
            handle.fail(type(exc).__name__)
            raise


@contextmanager
def resumed(carrier: Carrier | None) -> Iterator[None]:
    """The block runs in the captured context, without a span of its own (what it writes
    to the outbox continues that trace); as it was without a carrier."""
    if not _on or not carrier:
        yield
        return
    from opentelemetry import context

    parent = _parent(carrier)
    assert parent is not None
    token = context.attach(parent)
    try:
        yield
    finally:
        context.detach(token)


@contextmanager
def quiet() -> Iterator[None]:
    """No spans from the instrumented libraries inside (the relay's polling, which would
    otherwise make a trace of one SELECT five times a second). Spans made by `span` inside
    still are, and their instrumented calls with them."""
    if not _on:
        yield
        return
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    with suppress_instrumentation():
        yield


def log_ids() -> dict[str, str]:
    """`trace_id` and `span_id` of the current span, for log lines ({} without one)."""
    if not _on:
        return {}
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": trace.format_trace_id(context.trace_id),
            "span_id": trace.format_span_id(context.span_id)}


def _parent(carrier: Carrier | None) -> Context | None:
    """The context a captured carrier names, started afresh (so that `quiet` around the
    caller does not reach into the span); None (the current one) without a carrier."""
    if not carrier:
        return None
    from opentelemetry.context import Context
    from opentelemetry.propagate import extract

    return extract(carrier, context=Context())


def _links(carriers: Sequence[Carrier | None]) -> list[Link]:
    """One link per distinct span among the carriers."""
    from opentelemetry import trace

    links: dict[tuple[int, int], trace.Link] = {}
    for carrier in carriers:
        context = _parent(carrier)
        if context is None:
            continue
        span_context = trace.get_current_span(context).get_span_context()
        if span_context.is_valid:
            key = (span_context.trace_id, span_context.span_id)
            links.setdefault(key, trace.Link(span_context))
    return list(links.values())
