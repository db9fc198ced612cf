"""W3C trace context in and out: HTTP headers, message envelopes, log lines, errors."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "TRACEPARENT",
    "TRACE_ID_HEADER",
    "add_trace_ids",
    "context_from_traceparent",
    "current_trace_id",
    "current_traceparent",
    "traceparent_of",
]

TRACEPARENT = "traceparent"
# Sent back on every response, so a caller (a person, a test, the web UI) can go from an
# answer — an error above all — to its trace with `mercato trace <id>`.
TRACE_ID_HEADER = "x-trace-id"

_propagator = TraceContextTextMapPropagator()


def traceparent_of(span: trace.Span) -> str | None:
    context = span.get_span_context()
    if not context.is_valid:
        return None
    # Only the sampled bit: Level 1 of W3C Trace Context, which every propagator reads.
    sampled = int(context.trace_flags) & 0x01
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{sampled:02x}"


def current_traceparent() -> str | None:
    """The `traceparent` of the current span, to hand to whatever this work causes."""
    return traceparent_of(trace.get_current_span())


def current_trace_id() -> str | None:
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


def context_from_traceparent(value: str | None, tracestate: str | None = None) -> Context | None:
    """The remote parent a `traceparent` names, or None when absent or malformed (then the
    work starts a trace of its own rather than failing)."""
    if not value:
        return None
    carrier = {TRACEPARENT: value}
    if tracestate:
        carrier["tracestate"] = tracestate
    context = _propagator.extract(carrier)
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context


def add_trace_ids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: every line logged inside a span carries its trace and span ids."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event.setdefault("trace_id", f"{context.trace_id:032x}")
        event.setdefault("span_id", f"{context.span_id:016x}")
    return event
