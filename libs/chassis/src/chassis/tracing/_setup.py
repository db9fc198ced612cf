"""One tracer provider per process: sampling, where spans go, and how to flush them."""

from __future__ import annotations

import os
import random
import threading
from dataclasses import dataclass
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, Sampler, TraceIdRatioBased

from chassis.tracing._files import FileSpanExporter

__all__ = ["configure_tracing", "flush_tracing", "tracer"]

_INSTRUMENTATION = "mercato.chassis"
# Spans reach `mercato trace` about a second after they end: soon enough to look at a
# checkout right after placing it, rare enough that writing them costs little.
_FILE_EXPORT_DELAY_MS = 1000


@dataclass
class _State:
    provider: TracerProvider
    tracer: trace.Tracer


class _PrivateIdGenerator(IdGenerator):
    """Random ids from a generator of our own: code that seeds the global `random` (test
    tools do) must not make trace ids repeat."""

    def __init__(self) -> None:
        self._random = random.Random(os.urandom(16))

    def generate_span_id(self) -> int:
        span_id = self._random.getrandbits(64)
        while span_id == trace.INVALID_SPAN_ID:
            span_id = self._random.getrandbits(64)
        return span_id

    def generate_trace_id(self) -> int:
        trace_id = self._random.getrandbits(128)
        while trace_id == trace.INVALID_TRACE_ID:
            trace_id = self._random.getrandbits(128)
        return trace_id


def _provider(resource: Resource, sampler: Sampler | None) -> TracerProvider:
    return TracerProvider(resource=resource, sampler=sampler, id_generator=_PrivateIdGenerator())


# Until a service configures tracing (unit tests, scripts), spans are still made so trace ids
# reach logs and errors; they go nowhere.
_default = _provider(Resource.create({"service.name": "unconfigured"}), ALWAYS_ON)
_state = _State(_default, _default.get_tracer(_INSTRUMENTATION))
_lock = threading.Lock()


def tracer() -> trace.Tracer:
    """The chassis tracer of this process (the configured one once `configure_tracing` ran)."""
    return _state.tracer


def configure_tracing(
    *,
    service: str,
    instance: str,
    trace_dir: Path | None = None,
    sample_ratio: float = 1.0,
    version: str = "0.1.0",
) -> TracerProvider:
    """Make this process's spans go where the environment says.

    OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is
    set, with the exporter's standard `OTEL_*` variables; JSON lines under `trace_dir` (the
    embedded default, read by `mercato trace`); both when both are given. Sampling is
    parent-based with `sample_ratio` for new traces, unless `OTEL_TRACES_SAMPLER` says
    otherwise. Calling it again (tests build many apps in one process) replaces the provider
    for spans started afterwards.
    """
    resource = Resource.create(
        {"service.name": service, "service.instance.id": instance, "service.version": version}
    )
    sampler: Sampler | None = None  # the SDK reads OTEL_TRACES_SAMPLER itself
    if not os.environ.get("OTEL_TRACES_SAMPLER"):
        sampler = ParentBased(TraceIdRatioBased(sample_ratio))
    provider = _provider(resource, sampler)
    for processor in _processors(service, instance, trace_dir):
        provider.add_span_processor(processor)
    with _lock:
        _state.provider = provider
        _state.tracer = provider.get_tracer(_INSTRUMENTATION)
    return provider


def _processors(service: str, instance: str, trace_dir: Path | None) -> list[SpanProcessor]:
    processors: list[SpanProcessor] = []
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        # Imported only when used: the exporter pulls in protobuf and requests.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processors.append(BatchSpanProcessor(OTLPSpanExporter()))
    if trace_dir is not None:
        exporter = FileSpanExporter(trace_dir / f"{_safe(service)}-{_safe(instance)}.jsonl")
        processors.append(BatchSpanProcessor(exporter, schedule_delay_millis=_FILE_EXPORT_DELAY_MS))
    return processors


def flush_tracing(timeout_seconds: float = 5.0) -> None:
    """Export what is buffered (at shutdown, so the last spans of a process are not lost)."""
    _state.provider.force_flush(int(timeout_seconds * 1000))


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "unnamed"
