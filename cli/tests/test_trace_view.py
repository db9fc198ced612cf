"""`mercato trace`'s views: picking traces and drawing the waterfall."""

from chassis.tracing import SpanRecord, summarize
from mercato_cli.trace import ordered, pick, render_list, render_waterfall, waterfall_json

MS = 1_000_000
T = "4bf92f3577b34da6a3ce929d0e0e4736"


def span(
    span_id: str, parent: str | None, name: str, service: str, start: int, end: int, **more: str
) -> SpanRecord:
    return SpanRecord(
        trace_id=more.get("trace_id", T), span_id=span_id, parent_id=parent, name=name,
        kind="internal", service=service, instance=f"{service}-1", start=start * MS,
        end=end * MS, status=more.get("status", "unset"), error=more.get("error"),
    )  # fmt: skip


CHECKOUT = [
    span("c", "b", "POST /api/v1/orders", "orders", 2, 40),
    span("a", None, "POST /api/v1/orders", "gateway", 0, 50),
    span("e", "d", "consume inventory.reserve_stock.v1", "inventory", 30, 45),
    span("b", "a", "POST orders", "gateway", 1, 41),
    span("d", "c", "publish inventory.reserve_stock.v1", "orders", 20, 20),
    span("x", "gone", "an orphan", "payments", 10, 12, status="error", error="timed out"),
]


def test_spans_are_drawn_depth_first_with_children_by_start() -> None:
    rows = [(depth, s.span_id) for depth, s in ordered(CHECKOUT)]
    # the orphan (its parent was not recorded) is a root of its own
    assert rows == [(0, "a"), (1, "b"), (2, "c"), (3, "d"), (4, "e"), (0, "x")]


def test_the_waterfall_shows_services_durations_bars_and_errors() -> None:
    text = render_waterfall(CHECKOUT, colour=False, width=120)
    lines = text.splitlines()
    assert lines[0].startswith(f"trace {T}")
    assert "50.0 ms" in lines[0] and "6 spans" in lines[0] and "1 errors" in lines[0]
    gateway_root = lines[1]
    assert gateway_root.startswith("gateway") and "50.0 ms" in gateway_root
    bar = gateway_root[gateway_root.index("|") + 1 : gateway_root.rindex("|")]
    assert set(bar) == {"█"}  # the root spans the whole axis
    consume = next(line for line in lines if "consume inventory" in line)
    consume_bar = consume[consume.index("|") + 1 : consume.rindex("|")]
    assert consume_bar.startswith(" ") and "█" in consume_bar  # starts later
    assert len(consume_bar) == len(bar)
    orphan = lines.index(next(line for line in lines if "an orphan" in line))
    assert lines[orphan].rstrip().endswith("ERROR")
    assert "↳ timed out" in lines[orphan + 1]


def test_listing_picks_newest_slowest_errors_and_by_service() -> None:
    other = [span("q", None, "GET /api/v1/products", "gateway", 100, 101, trace_id="f" * 32)]
    summaries = [summarize(CHECKOUT), summarize(other)]

    assert [s.trace_id for s in pick(summaries, last=10, slowest=False, errors=False,
                                     service=None)] == ["f" * 32, T]  # fmt: skip
    assert [s.trace_id for s in pick(summaries, last=1, slowest=True, errors=False,
                                     service=None)] == [T]  # fmt: skip
    assert [s.trace_id for s in pick(summaries, last=10, slowest=False, errors=True,
                                     service=None)] == [T]  # fmt: skip
    assert pick(summaries, last=10, slowest=False, errors=False, service="psp") == []
    listing = render_list(summaries)
    assert (
        "gateway: POST /api/v1/orders" in listing
        and "[gateway, orders, payments, inventory]" in listing
    )


def test_json_keeps_depth_and_ids() -> None:
    body = waterfall_json(CHECKOUT)
    assert body["trace_id"] == T
    assert [(s["span_id"], s["depth"]) for s in body["spans"]][:3] == [("a", 0), ("b", 1), ("c", 2)]
    assert body["spans"][0]["duration_ms"] == 50.0
