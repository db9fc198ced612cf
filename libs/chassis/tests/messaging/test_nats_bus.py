"""NatsJetStreamBus on a nats-server of its own: names on the broker, outages, crashes."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.api import RetentionPolicy

from chassis._embedded_nats import EmbeddedNatsServer, free_port
from chassis.messaging import (
    BrokerUnavailableError,
    Delivery,
    Envelope,
    NatsJetStreamBus,
    PermanentError,
    RetryPolicy,
)

pytestmark = pytest.mark.integration

FAST_RETRY = RetryPolicy(max_attempts=3, backoff=(0.05, 0.1), ack_wait=1.0)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedNatsServer]:
    server = EmbeddedNatsServer(tmp_path / "js")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def make_bus(server: EmbeddedNatsServer) -> AsyncIterator[Any]:
    made: list[NatsJetStreamBus] = []

    async def make(**options: Any) -> NatsJetStreamBus:
        options = {
            "publish_timeout": 1.0,
            "fetch_timeout": 0.5,
            "reconnect_time_wait": 0.1,
            **options,
        }
        bus = NatsJetStreamBus(server.url, **options)
        await bus.start()
        made.append(bus)
        return bus

    yield make
    for bus in made:
        await bus.close()


@pytest.fixture
async def js(server: EmbeddedNatsServer) -> AsyncIterator[Any]:
    client = await nats.connect(server.url)
    yield client.jetstream()
    await client.close()


def envelope(type_: str = "catalog.product.created.v1", **fields: Any) -> Envelope:
    fields.setdefault("subject", f"sku-{uuid.uuid4().hex[:6]}")
    fields.setdefault("data", {})
    return Envelope(type=type_, source="tests", **fields)


async def eventually_len(items: list[Any], count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(items) < count:
        assert time.monotonic() < deadline, f"{len(items)} of {count} within {timeout}s"
        await asyncio.sleep(0.01)


async def test_streams_subjects_and_durables_follow_the_naming_scheme(
    make_bus: Any, js: Any
) -> None:
    bus = await make_bus()
    await bus.publish(envelope("catalog.product.created.v1"))  # no subscriber, no stream yet
    catalog = await js.stream_info("MERCATO_CATALOG")
    assert catalog.config.subjects == ["mercato.catalog.>"]
    assert catalog.state.messages == 1

    async def refuse(envelope: Envelope, delivery: Delivery) -> None:
        raise PermanentError("no")

    await bus.subscribe(
        "notifications",
        ["catalog.product.>", "catalog.product.created.v1", "orders.order.placed.*"],
        refuse,
        retry=FAST_RETRY,
    )
    durable = await js.consumer_info("MERCATO_CATALOG", "notifications")
    assert durable.config.filter_subject == "mercato.catalog.product.>"
    assert durable.config.ack_wait == 1.0
    orders = await js.consumer_info("MERCATO_ORDERS", "notifications")
    assert orders.config.filter_subject == "mercato.orders.order.placed.*"
    replay = await js.consumer_info("MERCATO_REPLAY", "notifications")
    assert replay.config.filter_subject == "mercato.replay.notifications.>"
    replay_stream = await js.stream_info("MERCATO_REPLAY")
    assert replay_stream.config.retention == RetentionPolicy.WORK_QUEUE

    sent = envelope("orders.order.placed.v1")
    await bus.publish(sent)
    deadline = time.monotonic() + 10
    while not await bus.dead_letters():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    stored = await js.get_last_msg("MERCATO_DEADLETTERS", "mercato.deadletter.notifications")
    assert stored.data == sent.to_bytes()
    assert stored.headers["Mercato-Consumer"] == "notifications"


async def test_a_durable_takes_several_domains_and_filters(make_bus: Any, js: Any) -> None:
    bus = await make_bus()
    seen: list[str] = []

    async def record(envelope: Envelope, delivery: Delivery) -> None:
        seen.append(envelope.type)

    await bus.subscribe("c", ["catalog.product.created.v1", "catalog.category.>"], record)
    durable = await js.consumer_info("MERCATO_CATALOG", "c")
    assert durable.config.filter_subjects == [
        "mercato.catalog.category.>",
        "mercato.catalog.product.created.v1",
    ]
    for type_ in ["catalog.product.created.v1", "catalog.category.renamed.v1", "catalog.x.y.v1"]:
        await bus.publish(envelope(type_))
    await eventually_len(seen, 2)
    await asyncio.sleep(0.2)
    assert sorted(seen) == ["catalog.category.renamed.v1", "catalog.product.created.v1"]


async def test_the_broker_drops_a_republished_envelope_inside_its_window(make_bus: Any) -> None:
    bus = await make_bus()
    seen: list[str] = []

    async def record(envelope: Envelope, delivery: Delivery) -> None:
        seen.append(envelope.id)

    await bus.subscribe("c", ["catalog.>"], record)
    sent = envelope()
    await bus.publish(sent)
    await bus.publish(sent)  # an outbox retrying after a lost ack
    assert await bus.publish_many([sent, sent]) == [None, None]
    await eventually_len(seen, 1)
    await asyncio.sleep(0.3)
    assert seen == [sent.id]


async def test_publish_many_keeps_a_hundred_or_more_in_flight(make_bus: Any) -> None:
    bus = await make_bus()
    js = bus._js
    real_publish = js.publish
    in_flight = most = 0

    async def counting_publish(*args: Any, **kwargs: Any) -> Any:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            return await real_publish(*args, **kwargs)
        finally:
            in_flight -= 1

    js.publish = counting_publish
    sent = [envelope(subject=f"sku-{i}") for i in range(600)]
    assert await bus.publish_many(sent) == [None] * 600
    assert most >= 100


async def test_a_consumer_that_dies_without_a_word_is_redelivered_after_ack_wait(
    make_bus: Any,
) -> None:
    started = asyncio.Event()

    async def hang(envelope: Envelope, delivery: Delivery) -> None:
        started.set()
        await asyncio.Event().wait()

    crashing = await make_bus()
    await crashing.subscribe("c", ["catalog.>"], hang, retry=FAST_RETRY)
    sent = envelope()
    await crashing.publish(sent)
    await asyncio.wait_for(started.wait(), 10)
    await crashing._nc.close()  # the process is gone: no nak, no ack, no goodbye
    crashed_at = time.monotonic()

    seen: list[tuple[str, Delivery]] = []

    async def record(envelope: Envelope, delivery: Delivery) -> None:
        seen.append((envelope.id, delivery))

    survivor = await make_bus()
    await survivor.subscribe("c", ["catalog.>"], record, retry=FAST_RETRY)
    await eventually_len(seen, 1)
    assert time.monotonic() - crashed_at >= 0.5  # it waited for ack_wait (1 s)
    assert seen[0] == (sent.id, Delivery(attempt=2, redelivered=True, consumer="c"))


async def test_a_slow_batch_does_not_run_out_its_ack_wait(make_bus: Any) -> None:
    # Messages fetched but queued behind slow ones of their subject get in-progress acks, so
    # another subscriber of the group does not receive them again after ack_wait.
    slow_seen: list[tuple[int, int]] = []
    other_seen: list[int] = []

    async def slow(envelope: Envelope, delivery: Delivery) -> None:
        slow_seen.append((envelope.data["i"], delivery.attempt))
        await asyncio.sleep(0.2)

    async def other(envelope: Envelope, delivery: Delivery) -> None:
        other_seen.append(envelope.data["i"])

    bus = await make_bus()
    await bus.subscribe("c", ["catalog.>"], slow, retry=FAST_RETRY)
    await bus.publish(envelope(subject="one", data={"i": 0}))
    rest = [envelope(subject="one", data={"i": i}) for i in range(1, 11)]
    assert await bus.publish_many(rest) == [None] * 10
    await eventually_len(slow_seen, 2)  # the rest are fetched: ~2 s of work, ack_wait 1 s
    competitor = await make_bus()
    await competitor.subscribe("c", ["catalog.>"], other, retry=FAST_RETRY)

    await eventually_len(slow_seen, 11)
    await asyncio.sleep(0.3)
    assert slow_seen == [(i, 1) for i in range(11)]
    assert other_seen == []


async def test_publishing_during_an_outage_fails_fast_then_works_again(
    make_bus: Any, server: EmbeddedNatsServer
) -> None:
    bus = await make_bus()
    await bus.publish(envelope())
    server.stop()

    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError):
        await bus.publish(envelope())
    outcomes = await bus.publish_many([envelope(subject=f"s{i}") for i in range(300)])
    assert all(isinstance(outcome, BrokerUnavailableError) for outcome in outcomes)
    assert time.monotonic() - started < 5  # bounded by publish_timeout (1 s), not per message
    with pytest.raises(BrokerUnavailableError):
        await bus.ping()

    server.start()
    deadline = time.monotonic() + 10
    while True:
        try:
            await bus.publish(envelope())
            break
        except BrokerUnavailableError:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
    await bus.ping()


async def test_starting_without_a_broker_fails_with_broker_unavailable() -> None:
    bus = NatsJetStreamBus(f"nats://127.0.0.1:{free_port()}", start_timeout=1.0)
    with pytest.raises(BrokerUnavailableError):
        await bus.start()
    with pytest.raises(BrokerUnavailableError):
        await bus.publish(envelope())
    await bus.close()
