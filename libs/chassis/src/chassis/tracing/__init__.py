"""Distributed tracing: OpenTelemetry spans with W3C trace context across every hop.

`configure_tracing` (called by `create_app`) decides where spans go: OTLP/HTTP when the
standard `OTEL_EXPORTER_OTLP_ENDPOINT` is set, JSON lines under the data dir in the embedded
default (`TraceStore` reads them back for `mercato trace` and the console). HTTP servers and
clients, message producers and consumers, SQL statements and saga steps make their spans
through the chassis, so one checkout is one trace.
"""

from chassis.tracing._context import (
    TRACE_ID_HEADER,
    TRACEPARENT,
    add_trace_ids,
    context_from_traceparent,
    current_trace_id,
    current_traceparent,
    traceparent_of,
)
from chassis.tracing._database import trace_statements
from chassis.tracing._files import (
    FileSpanExporter,
    SpanRecord,
    TraceStore,
    TraceSummary,
    ordered,
    summarize,
    waterfall_json,
)
from chassis.tracing._setup import configure_tracing, flush_tracing, tracer

__all__ = [
    "TRACEPARENT",
    "TRACE_ID_HEADER",
    "FileSpanExporter",
    "SpanRecord",
    "TraceStore",
    "TraceSummary",
    "add_trace_ids",
    "configure_tracing",
    "context_from_traceparent",
    "current_trace_id",
    "current_traceparent",
    "flush_tracing",
    "ordered",
    "summarize",
    "trace_statements",
    "traceparent_of",
    "tracer",
    "waterfall_json",
]
