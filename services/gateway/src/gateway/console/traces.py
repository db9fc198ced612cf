"""Traces for the console, from the span files every process writes (`chassis.tracing`).

Reading every file is the cost of a file store, so one pass (in a thread, off the event
loop) yields everything the console asks of it — the trace summaries, the call edges for
the service map, and which trace each saga's steps are in — and is reused for a few
seconds, or for ten times as long as the pass took: a store grown large is read at most a
tenth of the time, so the console never turns the gateway into a span parser. A gateway
without span files (`MERCATO_TRACE_DIR` unset: spans go to a collector) has no index, and
the console says so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chassis.tracing import SpanRecord, TraceStore, TraceSummary, summarize, waterfall_json
from gateway.console.topology import Edge, edges_from_spans

__all__ = ["TraceIndex", "TraceScan", "scan"]

VIEWS = ("recent", "slowest", "errors")


@dataclass(frozen=True)
class TraceScan:
    summaries: tuple[TraceSummary, ...] = ()  # oldest first
    edges: Mapping[Edge, int] = field(default_factory=dict)
    saga_traces: Mapping[str, str] = field(default_factory=dict)  # saga id → trace id


def scan(store: TraceStore) -> TraceScan:
    by_trace: dict[str, list[SpanRecord]] = {}
    saga_traces: dict[str, tuple[int, str]] = {}
    for span in store.spans():
        by_trace.setdefault(span.trace_id, []).append(span)
        saga = span.attributes.get("saga.id")
        if isinstance(saga, str):
            # The trace of the saga's first step: the checkout's own request.
            known = saga_traces.get(saga)
            if known is None or span.start < known[0]:
                saga_traces[saga] = (span.start, span.trace_id)
    summaries = sorted((summarize(spans) for spans in by_trace.values()), key=lambda s: s.start)
    edges = edges_from_spans(span for spans in by_trace.values() for span in spans)
    return TraceScan(
        summaries=tuple(summaries),
        edges=edges,
        saga_traces={saga: trace for saga, (_, trace) in saga_traces.items()},
    )


class TraceIndex:
    def __init__(
        self,
        directory: Path,
        *,
        max_age: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = TraceStore(directory)
        self.max_age = max_age
        self._clock = clock
        self._scan: TraceScan | None = None
        self._fresh_until = float("-inf")
        self._lock = asyncio.Lock()

    async def current(self) -> TraceScan:
        """The last scan while it is fresh, else a new one (one at a time)."""
        async with self._lock:
            if self._scan is None or self._clock() >= self._fresh_until:
                started = self._clock()
                self._scan = await asyncio.to_thread(scan, self.store)
                took = self._clock() - started
                self._fresh_until = self._clock() + max(self.max_age, 10 * took)
            return self._scan

    async def listing(
        self, *, view: str, limit: int, service: str | None = None
    ) -> list[dict[str, Any]]:
        """Trace summaries: newest first (`recent`), longest first (`slowest`), or the
        newest with an error span (`errors`)."""
        found = [
            summary
            for summary in (await self.current()).summaries
            if (view != "errors" or summary.errors) and (not service or service in summary.services)
        ]
        if view == "slowest":
            found.sort(key=lambda summary: summary.duration_ms, reverse=True)
        else:
            found.reverse()
        return [summary.to_json() for summary in found[:limit]]

    async def waterfall(self, trace_id: str) -> dict[str, Any] | None:
        spans = await asyncio.to_thread(self.store.trace, trace_id)
        spans = [span for span in spans if span.trace_id == trace_id]
        if not spans:
            return None
        body = waterfall_json(spans)
        body["summary"] = summarize(spans).to_json()
        return body
