"""Traces for the console, read from span files as every process writes them: the lists, the
waterfall, who calls whom, and which trace a saga ran in."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from chassis.tracing import SpanRecord
from gateway.console.topology import STATIC_EDGES, Edge, edges_from_spans, merge_edges
from gateway.console.traces import TraceIndex

MS = 1_000_000


def span(trace: str, span_id: str, parent: str | None, service: str, kind: str, name: str,
         start: int, end: int, **extra: object) -> SpanRecord:  # fmt: skip
    return SpanRecord(trace_id=trace, span_id=span_id, parent_id=parent, name=name, kind=kind,
                      service=service, instance=f"{service}-1", start=start * MS, end=end * MS,
                      status=str(extra.pop("status", "unset")),
                      attributes=dict(extra))  # fmt: skip


A = "a" * 32
B = "b" * 32
C = "c" * 32
CHECKOUT = [
    span(A, "01", None, "gateway", "server", "POST /api/v1/orders", 0, 50),
    span(A, "02", "01", "gateway", "client", "POST orders", 2, 45),
    span(A, "03", "02", "orders", "server", "POST /api/v1/orders", 3, 44),
    span(A, "04", "03", "orders", "internal", "saga checkout: checkout started", 10, 12,
         **{"saga.id": "saga-1"}),
    span(A, "05", "03", "orders", "producer", "publish inventory.reserve_stock.v1", 12, 12),
    span(A, "06", "05", "inventory", "consumer", "consume inventory.reserve_stock.v1", 20, 30),
    span(A, "07", "06", "inventory", "client", "SELECT stock", 21, 22, **{"db.system": "sqlite"}),
    span(A, "08", "03", "orders", "internal", "saga checkout: reserve_stock succeeded", 31, 32,
         **{"saga.id": "saga-1"}),
]  # fmt: skip
SLOW = [
    span(B, "11", None, "gateway", "server", "GET /api/v1/products", 100, 400),
    span(B, "12", "11", "gateway", "client", "GET catalog", 101, 399),
    span(B, "13", "12", "catalog", "server", "GET /api/v1/products", 102, 398),
]
FAILED = [
    span(C, "21", None, "gateway", "server", "GET /api/v1/orders/*", 500, 510, status="error"),
]


def write(directory: Path, name: str, spans: list[SpanRecord]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / name).open("ab") as out:
        for record in spans:
            out.write(orjson.dumps(record.to_json()) + b"\n")


def test_calls_and_messages_between_services_are_edges() -> None:
    assert edges_from_spans(CHECKOUT) == {
        Edge("gateway", "orders", "call"): 1,
        Edge("orders", "inventory", "message"): 1,
    }


def test_edges_not_seen_yet_come_from_the_design_and_say_so() -> None:
    merged = merge_edges({Edge("gateway", "orders", "call"): 3, Edge("orders", "x", "call"): 1})
    by_pair = {(e["from"], e["to"], e["kind"]): e for e in merged}
    assert by_pair[("gateway", "orders", "call")] == {
        "from": "gateway", "to": "orders", "kind": "call", "seen": 3, "source": "traces",
    }  # fmt: skip
    assert by_pair[("orders", "x", "call")]["source"] == "traces"  # a new one, drawn too
    assert by_pair[("payments", "psp", "call")] == {
        "from": "payments", "to": "psp", "kind": "call", "seen": 0, "source": "design",
    }  # fmt: skip
    assert len(merged) == len(STATIC_EDGES) + 1


async def test_traces_are_listed_recent_slowest_or_failed(tmp_path: Path) -> None:
    write(tmp_path, "gateway-1.jsonl", [*CHECKOUT[:3], *SLOW[:2], *FAILED])
    write(tmp_path, "orders-1.jsonl", CHECKOUT[3:6] + CHECKOUT[7:])
    write(tmp_path, "inventory-1.jsonl", [CHECKOUT[6]])
    write(tmp_path, "catalog-1.jsonl", [SLOW[2]])
    with (tmp_path / "catalog-1.jsonl").open("ab") as out:
        out.write(b'{"trace_id": "cut sh')  # a process killed mid-line
    index = TraceIndex(tmp_path)

    recent = await index.listing(view="recent", limit=10)
    assert [t["trace_id"] for t in recent] == [C, B, A]
    assert recent[2]["root"] == "POST /api/v1/orders" and recent[2]["spans"] == 8
    assert recent[2]["services"] == ["gateway", "orders", "inventory"]
    slowest = await index.listing(view="slowest", limit=2)
    assert [t["trace_id"] for t in slowest] == [B, A]
    assert [t["trace_id"] for t in await index.listing(view="errors", limit=10)] == [C]
    only = await index.listing(view="recent", limit=10, service="inventory")
    assert [t["trace_id"] for t in only] == [A]

    scan = await index.current()
    assert scan.saga_traces == {"saga-1": A}
    assert scan.edges[Edge("gateway", "catalog", "call")] == 1


async def test_a_waterfall_is_the_span_tree_depth_first(tmp_path: Path) -> None:
    write(tmp_path, "all.jsonl", list(reversed(CHECKOUT)))
    index = TraceIndex(tmp_path)
    found = await index.waterfall(A)
    assert found is not None
    assert [(s["span_id"], s["depth"]) for s in found["spans"]] == [
        ("01", 0), ("02", 1), ("03", 2), ("04", 3), ("05", 3), ("06", 4), ("07", 5), ("08", 3),
    ]  # fmt: skip
    assert found["summary"]["duration_ms"] == 50.0
    assert await index.waterfall(B) is None
    assert await index.waterfall(A[:8]) is None  # whole ids only


async def test_a_scan_is_reused_while_fresh_and_longer_when_it_was_slow(tmp_path: Path) -> None:
    now = [0.0]
    index = TraceIndex(tmp_path, max_age=3.0, clock=lambda: now[0])
    write(tmp_path, "gateway-1.jsonl", FAILED)
    assert len((await index.current()).summaries) == 1
    write(tmp_path, "gateway-1.jsonl", SLOW)
    now[0] = 2.9
    assert len((await index.current()).summaries) == 1  # still fresh
    now[0] = 3.0
    assert len((await index.current()).summaries) == 2


async def test_a_slow_scan_is_kept_ten_times_as_long_as_it_took(tmp_path: Path) -> None:
    ticks = iter([0.0, 2.0, 2.0])  # the scan takes 2 s: fresh until 22 s
    now = [0.0]

    def clock() -> float:
        return next(ticks, now[0])

    index = TraceIndex(tmp_path, max_age=3.0, clock=clock)
    write(tmp_path, "gateway-1.jsonl", FAILED)
    await index.current()
    write(tmp_path, "gateway-1.jsonl", SLOW)
    now[0] = 21.9
    assert len((await index.current()).summaries) == 1
    now[0] = 22.0
    assert len((await index.current()).summaries) == 2


@pytest.mark.parametrize("view", ["recent", "slowest", "errors"])
async def test_no_span_files_is_no_traces(tmp_path: Path, view: str) -> None:
    assert await TraceIndex(tmp_path / "missing").listing(view=view, limit=5) == []
