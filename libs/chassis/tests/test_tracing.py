"""Tracing: spans and W3C trace context across HTTP, messages, SQL and saga steps; the file
store that `mercato trace` reads; sampling."""

import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import ClassVar

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import select, text

from chassis import Database, ServiceSettings, api_router, configure_logging, create_app
from chassis.errors import NotFoundError
from chassis.messaging import Delivery, Envelope, RetryPolicy, record_events
from chassis.messaging._consuming import judge
from chassis.messaging._tables import messaging_tables
from chassis.tracing import (
    FileSpanExporter,
    TraceStore,
    configure_tracing,
    context_from_traceparent,
    current_traceparent,
    flush_tracing,
    tracer,
)

REMOTE_TRACE = "0af7651916cd43dd8448eb211c80319c"
REMOTE_PARENT = f"00-{REMOTE_TRACE}-b7ad6b7169203331-01"


class DemoSettings(ServiceSettings):
    service_name: ClassVar[str] = "demo"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = configure_tracing(service="demo", instance="demo-1")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    configure_tracing(service="unconfigured", instance="-")


def named(exporter: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name.startswith(prefix)]


def hex_id(value: int, width: int = 16) -> str:
    return format(value, f"0{width}x")


# -- HTTP server spans, errors and logs ---------------------------------------------------


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, io.BytesIO]]:
    router = api_router()

    @router.get("/things/{thing_id}")
    async def get_thing(thing_id: int) -> dict[str, int]:
        if thing_id == 404:
            raise NotFoundError("no such thing")
        return {"id": thing_id}

    log = io.BytesIO()
    app = create_app(DemoSettings(data_dir=tmp_path), [router], configure_logs=False)
    configure_logging(service="demo", instance="demo-1", stream=log)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://demo") as http:
            yield http, log


async def test_a_request_is_a_server_span_continuing_the_callers_trace(
    client: tuple[httpx.AsyncClient, io.BytesIO], spans: InMemorySpanExporter
) -> None:
    http, log = client
    answer = await http.get("/things/7", headers={"traceparent": REMOTE_PARENT})

    assert answer.status_code == 200
    assert answer.headers["x-trace-id"] == REMOTE_TRACE
    (server,) = named(spans, "GET ")
    assert server.name == "GET /things/{thing_id}"  # the route, not the raw path
    assert server.kind is SpanKind.SERVER
    assert server.parent is not None and hex_id(server.parent.span_id) == "b7ad6b7169203331"
    assert server.attributes is not None and server.attributes["http.response.status_code"] == 200
    lines = [orjson.loads(line) for line in log.getvalue().splitlines()]
    request_line = next(line for line in lines if line.get("event") == "request")
    assert request_line["trace_id"] == REMOTE_TRACE
    assert request_line["span_id"] == hex_id(server.context.span_id)


async def test_an_error_names_its_trace(
    client: tuple[httpx.AsyncClient, io.BytesIO], spans: InMemorySpanExporter
) -> None:
    http, _ = client
    answer = await http.get("/things/404")

    assert answer.status_code == 404
    problem = answer.json()
    assert problem["trace_id"] == answer.headers["x-trace-id"]
    (server,) = named(spans, "GET ")
    assert hex_id(server.context.trace_id, 32) == problem["trace_id"]


async def test_a_malformed_traceparent_starts_a_new_trace(
    client: tuple[httpx.AsyncClient, io.BytesIO], spans: InMemorySpanExporter
) -> None:
    http, _ = client
    answer = await http.get("/things/1", headers={"traceparent": "00-nonsense-01"})

    assert answer.status_code == 200
    (server,) = named(spans, "GET ")
    assert server.parent is None
    assert answer.headers["x-trace-id"] == hex_id(server.context.trace_id, 32)


async def test_probes_and_scrapes_make_no_spans(
    client: tuple[httpx.AsyncClient, io.BytesIO], spans: InMemorySpanExporter
) -> None:
    http, _ = client
    for path in ("/livez", "/readyz", "/metrics"):
        assert (await http.get(path)).status_code == 200
    assert spans.get_finished_spans() == ()


# -- messages -------------------------------------------------------------------------------


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}")
    async with db.engine.begin() as connection:
        for table in messaging_tables():
            await connection.run_sync(table.create)
    yield db
    await db.dispose()


async def stored(database: Database) -> list[Envelope]:
    async with database.sessions() as session:
        outbox = messaging_tables()[0]
        rows = (await session.execute(select(outbox.c.envelope).order_by(outbox.c.seq))).all()
    return [Envelope.from_bytes(str(row[0]).encode()) for row in rows]


async def test_a_message_carries_its_producer_span_and_the_consumer_continues_it(
    database: Database, spans: InMemorySpanExporter
) -> None:
    event = Envelope(type="demo.thing.happened.v1", source="demo", subject="t-1", data={})
    with tracer().start_as_current_span("request") as request:
        async with database.write_sessions() as session:
            await record_events(session, [event])
            await session.commit()
    (sent,) = await stored(database)
    (producer,) = named(spans, "publish demo.thing.happened.v1")
    assert producer.kind is SpanKind.PRODUCER
    assert producer.parent is not None and producer.parent.span_id == request.context.span_id
    assert sent.traceparent == (
        f"00-{hex_id(producer.context.trace_id, 32)}-{hex_id(producer.context.span_id)}-01"
    )

    seen: list[str | None] = []

    async def handler(envelope: Envelope, _: Delivery) -> None:
        seen.append(current_traceparent())

    delivery = Delivery(attempt=1, redelivered=False, consumer="demo-consumer")
    verdict = await judge(sent, delivery, handler, RetryPolicy(max_attempts=3))

    assert verdict.outcome == "ack"
    (consumer,) = named(spans, "consume demo.thing.happened.v1")
    assert consumer.kind is SpanKind.CONSUMER
    assert consumer.parent is not None and consumer.parent.span_id == producer.context.span_id
    assert consumer.context.trace_id == request.context.trace_id  # one trace across the hop
    assert seen[0] is not None and hex_id(consumer.context.span_id) in seen[0]
    # a message the consumer records continues the trace from the consumer's span
    async with database.write_sessions() as session:
        with tracer().start_as_current_span("again", context=context_from_traceparent(seen[0])):
            await record_events(session, [sent.caused("demo.other.happened.v1", "d", "t", {})])
        await session.commit()
    (follow_up,) = named(spans, "publish demo.other.happened.v1")
    assert follow_up.context.trace_id == request.context.trace_id


async def test_a_message_recorded_outside_any_span_keeps_the_trace_it_names(
    database: Database, spans: InMemorySpanExporter
) -> None:
    event = Envelope(
        type="demo.thing.happened.v1",
        source="demo",
        subject="t-1",
        data={},
        traceparent=REMOTE_PARENT,
    )
    async with database.write_sessions() as session:
        await record_events(session, [event])
        await session.commit()
    (sent,) = await stored(database)
    assert sent.traceparent is not None and REMOTE_TRACE in sent.traceparent
    (producer,) = named(spans, "publish ")
    assert producer.parent is not None and hex_id(producer.parent.span_id) == "b7ad6b7169203331"


async def test_a_failing_handler_marks_its_span(spans: InMemorySpanExporter) -> None:
    event = Envelope(type="demo.thing.happened.v1", source="demo", subject="t-1", data={})

    async def handler(envelope: Envelope, _: Delivery) -> None:
        raise RuntimeError("not today")

    delivery = Delivery(attempt=1, redelivered=False, consumer="demo-consumer")
    verdict = await judge(event, delivery, handler, RetryPolicy(max_attempts=3))

    assert verdict.outcome == "retry"
    (consumer,) = named(spans, "consume ")
    assert not consumer.status.is_ok
    assert consumer.status.description == "RuntimeError: not today"
    assert consumer.attributes is not None and consumer.attributes["mercato.outcome"] == "retry"


# -- SQL -------------------------------------------------------------------------------------


async def test_statements_inside_a_span_are_traced_and_others_are_not(
    database: Database, spans: InMemorySpanExporter
) -> None:
    async with database.sessions() as session:
        await session.execute(text("SELECT count(*) FROM sqlite_master"))  # a poller: none
    assert named(spans, "SELECT") == []

    with tracer().start_as_current_span("request") as request:
        async with database.sessions() as session:
            await session.execute(text("SELECT count(*) FROM sqlite_master"))
    (statement,) = named(spans, "SELECT sqlite_master")
    assert statement.parent is not None and statement.parent.span_id == request.context.span_id
    assert statement.attributes is not None
    assert statement.attributes["db.system"] == "sqlite"
    assert statement.attributes["db.query.text"] == "SELECT count(*) FROM sqlite_master"

    with tracer().start_as_current_span("request"):
        async with database.sessions() as session:
            with pytest.raises(Exception, match="no such table"):
                await session.execute(text("SELECT * FROM missing"))
    (failed,) = named(spans, "SELECT missing")
    assert not failed.status.is_ok


# -- sampling -----------------------------------------------------------------------------


def test_a_ratio_of_zero_records_nothing_but_still_propagates() -> None:
    exporter = InMemorySpanExporter()
    provider = configure_tracing(service="demo", instance="demo-1", sample_ratio=0.0)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        with tracer().start_as_current_span("unsampled"):
            traceparent = current_traceparent()
        # a caller that sampled: followed, whatever our own ratio
        with tracer().start_as_current_span(
            "sampled", context=context_from_traceparent(REMOTE_PARENT)
        ):
            pass
    finally:
        configure_tracing(service="unconfigured", instance="-")
    assert traceparent is not None and traceparent.endswith("-00")  # not sampled, still named
    assert [span.name for span in exporter.get_finished_spans()] == ["sampled"]


# -- the file store ---------------------------------------------------------------------------


def test_spans_written_to_files_are_read_back_as_traces(tmp_path: Path) -> None:
    configure_tracing(service="demo", instance="demo-1", trace_dir=tmp_path)
    try:
        with (
            tracer().start_as_current_span("root") as root,
            tracer().start_as_current_span("child", attributes={"k": "v"}) as child,
        ):
            child.add_event("something", {"n": 1})
        flush_tracing()
    finally:
        configure_tracing(service="unconfigured", instance="-")
    (path,) = tmp_path.glob("*.jsonl")
    assert path.name == "demo-demo-1.jsonl"
    with path.open("ab") as out:
        out.write(b'{"trace_id": "cut short by a cra')  # a crash mid-write

    store = TraceStore(tmp_path)
    trace_id = hex_id(root.get_span_context().trace_id, 32)
    spans = store.trace(trace_id[:8])  # a prefix is enough
    assert [span.name for span in spans] == ["root", "child"]
    assert spans[1].parent_id == spans[0].span_id
    assert spans[1].attributes == {"k": "v"}
    assert spans[1].events[0]["name"] == "something"
    assert spans[0].service == "demo"
    (summary,) = store.summaries()
    assert summary.trace_id == trace_id
    assert (summary.root, summary.spans, summary.errors) == ("root", 2, 0)


def test_a_full_file_is_rotated(tmp_path: Path) -> None:
    path = tmp_path / "demo.jsonl"
    exporter = FileSpanExporter(path, max_bytes=1)
    provider = configure_tracing(service="demo", instance="demo-1")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        for name in ("first", "second", "third"):
            with tracer().start_as_current_span(name):
                pass
    finally:
        configure_tracing(service="unconfigured", instance="-")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.1.jsonl", "demo.jsonl"]
    names = [span.name for span in TraceStore(tmp_path).spans()]
    assert sorted(names) == ["second", "third"]  # the oldest went with the rotation


def test_seeding_the_global_random_does_not_repeat_trace_ids() -> None:
    import random

    ids = set()
    for _ in range(3):
        random.seed(42)  # as test tools do
        with tracer().start_as_current_span("x") as span:
            ids.add(span.get_span_context().trace_id)
    assert len(ids) == 3
