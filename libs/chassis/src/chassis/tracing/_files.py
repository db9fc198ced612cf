"""Spans as JSON lines under the data dir: the embedded default's trace store.

Each process appends to its own file (`<service>-<instance>.jsonl`), so writers never
share a file; a file past `max_bytes` is renamed to `….1.jsonl` (replacing the previous
one) and a new one begun, which bounds the disk a long-running platform uses. Readers
(`mercato trace`, the console) merge every file in the directory.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

__all__ = [
    "FileSpanExporter",
    "SpanRecord",
    "TraceStore",
    "TraceSummary",
    "ordered",
    "summarize",
    "waterfall_json",
]

_KINDS = {
    SpanKind.INTERNAL: "internal",
    SpanKind.SERVER: "server",
    SpanKind.CLIENT: "client",
    SpanKind.PRODUCER: "producer",
    SpanKind.CONSUMER: "consumer",
}
_STATUS = {StatusCode.UNSET: "unset", StatusCode.OK: "ok", StatusCode.ERROR: "error"}


class FileSpanExporter(SpanExporter):
    """Appends finished spans to `path` as JSON lines (called from the batch processor's
    thread)."""

    def __init__(self, path: Path, *, max_bytes: int = 16 * 1024 * 1024) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = b"".join(orjson.dumps(_record(span)) + b"\n" for span in spans)
        try:
            with self._lock:
                self._rotate_if_full()
                with self.path.open("ab") as out:
                    out.write(lines)
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def _rotate_if_full(self) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size >= self.max_bytes:
            os.replace(self.path, self.path.with_suffix(".1.jsonl"))

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _record(span: ReadableSpan) -> dict[str, Any]:
    context = span.context
    parent = span.parent
    resource = span.resource.attributes
    status = span.status
    body: dict[str, Any] = {
        "trace_id": format(context.trace_id, "032x") if context else "",
        "span_id": format(context.span_id, "016x") if context else "",
        "parent_id": format(parent.span_id, "016x") if parent else None,
        "name": span.name,
        "kind": _KINDS.get(span.kind, "internal"),
        "service": str(resource.get("service.name", "")),
        "instance": str(resource.get("service.instance.id", "")),
        "start": span.start_time or 0,
        "end": span.end_time or span.start_time or 0,
        "status": _STATUS[status.status_code],
    }
    if status.description:
        body["error"] = status.description
    if span.attributes:
        body["attributes"] = dict(span.attributes)
    if span.events:
        body["events"] = [
            {
                "name": event.name,
                "time": event.timestamp,
                "attributes": dict(event.attributes or {}),
            }
            for event in span.events
        ]
    return body


@dataclass(frozen=True)
class SpanRecord:
    """One finished span as stored: ids in lowercase hex, times in ns since the epoch (UTC)."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: str
    service: str
    instance: str
    start: int
    end: int
    status: str
    error: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    events: Sequence[Mapping[str, Any]] = ()

    @property
    def duration_ms(self) -> float:
        return max(0, self.end - self.start) / 1e6

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> SpanRecord:
        return cls(
            trace_id=str(body["trace_id"]),
            span_id=str(body["span_id"]),
            parent_id=body.get("parent_id"),
            name=str(body["name"]),
            kind=str(body.get("kind", "internal")),
            service=str(body.get("service", "")),
            instance=str(body.get("instance", "")),
            start=int(body["start"]),
            end=int(body["end"]),
            status=str(body.get("status", "unset")),
            error=body.get("error"),
            attributes=body.get("attributes") or {},
            events=body.get("events") or (),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id, "span_id": self.span_id, "parent_id": self.parent_id,
            "name": self.name, "kind": self.kind, "service": self.service,
            "instance": self.instance, "start": self.start, "end": self.end,
            "duration_ms": round(self.duration_ms, 3), "status": self.status,
            "error": self.error, "attributes": dict(self.attributes), "events": list(self.events),
        }  # fmt: skip


@dataclass(frozen=True)
class TraceSummary:
    """What a list of traces shows: the root, when, how long, where, and whether it failed."""

    trace_id: str
    root: str
    root_service: str
    start: int
    duration_ms: float
    spans: int
    services: tuple[str, ...]
    errors: int

    def to_json(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id, "root": self.root, "root_service": self.root_service,
            "start": self.start, "duration_ms": round(self.duration_ms, 3), "spans": self.spans,
            "services": list(self.services), "errors": self.errors,
        }  # fmt: skip


class TraceStore:
    """Reads the spans every process of a platform wrote under one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("*.jsonl"))

    def spans(self, trace_id: str | None = None) -> Iterator[SpanRecord]:
        """Every stored span, or those of one trace (matched on a prefix of its id)."""
        needle = trace_id.lower().encode() if trace_id else None
        for path in self.files():
            try:
                content = path.read_bytes()
            except FileNotFoundError:  # rotated away while we listed
                continue
            for line in content.splitlines():
                if needle is not None and needle not in line:
                    continue  # cheap filter before parsing
                try:
                    record = SpanRecord.from_json(orjson.loads(line))
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue  # a line cut short by a crash mid-write
                if trace_id is None or record.trace_id.startswith(trace_id.lower()):
                    yield record

    def trace(self, trace_id: str) -> list[SpanRecord]:
        """The spans of one trace (ids may be abbreviated), oldest first."""
        return sorted(self.spans(trace_id), key=lambda span: (span.start, span.end))

    def summaries(self) -> list[TraceSummary]:
        """One summary per stored trace, oldest first."""
        by_trace: dict[str, list[SpanRecord]] = {}
        for span in self.spans():
            by_trace.setdefault(span.trace_id, []).append(span)
        found = [summarize(spans) for spans in by_trace.values()]
        return sorted(found, key=lambda summary: summary.start)


def summarize(spans: Iterable[SpanRecord]) -> TraceSummary:
    ordered = sorted(spans, key=lambda span: (span.start, span.end))
    ids = {span.span_id for span in ordered}
    # The root is the span whose parent is not here (the first, if several are).
    root = next((span for span in ordered if span.parent_id not in ids), ordered[0])
    start = min(span.start for span in ordered)
    end = max(span.end for span in ordered)
    return TraceSummary(
        trace_id=root.trace_id,
        root=root.name,
        root_service=root.service,
        start=start,
        duration_ms=(end - start) / 1e6,
        spans=len(ordered),
        services=tuple(dict.fromkeys(span.service for span in ordered)),
        errors=sum(1 for span in ordered if span.status == "error"),
    )


def ordered(spans: Sequence[SpanRecord]) -> list[tuple[int, SpanRecord]]:
    """Spans depth-first from the roots, children by start time, with their depth.

    A span whose parent is not stored (not sampled, not yet flushed) is drawn as a root."""
    ids = {span.span_id for span in spans}
    children: dict[str | None, list[SpanRecord]] = {}
    for span in sorted(spans, key=lambda span: (span.start, span.end)):
        parent = span.parent_id if span.parent_id in ids else None
        children.setdefault(parent, []).append(span)
    out: list[tuple[int, SpanRecord]] = []
    stack = [(0, span) for span in reversed(children.get(None, []))]
    while stack:
        depth, span = stack.pop()
        out.append((depth, span))
        stack.extend((depth + 1, child) for child in reversed(children.get(span.span_id, [])))
    return out


def waterfall_json(spans: Sequence[SpanRecord]) -> dict[str, Any]:
    """One trace as plain data for a waterfall: its spans in `ordered` order, with depth."""
    return {
        "trace_id": spans[0].trace_id if spans else None,
        "spans": [{**span.to_json(), "depth": depth} for depth, span in ordered(spans)],
    }
