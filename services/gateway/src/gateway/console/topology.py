"""Who calls whom: the arrows of the console's service map.

Seen in traces: a CLIENT span and its SERVER child in another service is a call (HTTP or
gRPC), a PRODUCER span and its CONSUMER child in another service is a message. What the
traces have not shown yet (a fresh platform, spans sent to a collector instead of files)
comes from the static list below, which is the architecture as designed (README, and
docs/events.md for the messages); the map tells the two apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from chassis.tracing import SpanRecord

__all__ = ["KNOWN_SERVICES", "STATIC_EDGES", "Edge", "edges_from_spans", "merge_edges"]

# The map's order: the edge first, then the services in the order a checkout meets them.
KNOWN_SERVICES = (
    "gateway", "identity", "catalog", "inventory", "orders", "payments", "notifications", "psp",
)  # fmt: skip


@dataclass(frozen=True, order=True)
class Edge:
    caller: str
    callee: str
    kind: str  # "call" (HTTP/gRPC) or "message"


STATIC_EDGES: tuple[Edge, ...] = (
    *(
        Edge("gateway", name, "call")
        for name in ("identity", "catalog", "inventory", "orders", "payments", "notifications")
    ),
    Edge("orders", "catalog", "call"),
    Edge("payments", "psp", "call"),
    Edge("catalog", "inventory", "message"),
    Edge("catalog", "notifications", "message"),
    Edge("identity", "notifications", "message"),
    Edge("orders", "inventory", "message"),
    Edge("orders", "payments", "message"),
    Edge("orders", "notifications", "message"),
    Edge("inventory", "orders", "message"),
    Edge("payments", "orders", "message"),
    Edge("payments", "inventory", "message"),
)

_KIND = {("client", "server"): "call", ("producer", "consumer"): "message"}


def edges_from_spans(spans: Iterable[SpanRecord]) -> dict[Edge, int]:
    """How often each caller → callee hop appears in the spans (any traces, any order)."""
    by_id: dict[str, SpanRecord] = {}
    children: list[SpanRecord] = []
    for span in spans:
        by_id[span.span_id] = span
        if span.parent_id is not None:
            children.append(span)
    counts: dict[Edge, int] = {}
    for child in children:
        parent = by_id.get(child.parent_id or "")
        if parent is None or parent.service == child.service:
            continue
        kind = _KIND.get((parent.kind, child.kind))
        if kind is not None:
            edge = Edge(parent.service, child.service, kind)
            counts[edge] = counts.get(edge, 0) + 1
    return counts


def merge_edges(seen: Mapping[Edge, int]) -> list[dict[str, object]]:
    """Every edge seen in traces (with how often) and every designed one not seen yet."""
    edges = set(seen) | set(STATIC_EDGES)
    return [
        {
            "from": edge.caller,
            "to": edge.callee,
            "kind": edge.kind,
            "seen": seen.get(edge, 0),
            "source": "traces" if seen.get(edge) else "design",
        }
        for edge in sorted(edges)
    ]
