"""RabbitMqBus on the machine's RabbitMQ, in a vhost of its own: names and properties."""

import asyncio
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import aio_pika
import pytest

from chassis._embedded_nats import free_port
from chassis.messaging import (
    BrokerUnavailableError,
    Delivery,
    Envelope,
    PermanentError,
    RabbitMqBus,
    RetryPolicy,
)

pytestmark = pytest.mark.integration

FAST_RETRY = RetryPolicy(max_attempts=3, backoff=(0.05, 0.1), ack_wait=1.0)


def rabbitmqctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["rabbitmqctl", "--quiet", *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    vhost = f"mercato_test_{uuid.uuid4().hex[:12]}"
    if shutil.which("rabbitmqctl") is None or rabbitmqctl("add_vhost", vhost).returncode != 0:
        pytest.skip("needs rabbitmqctl to make a vhost of our own")
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@127.0.0.1:5672/{quote(vhost, safe='')}"
    finally:
        rabbitmqctl("delete_vhost", vhost)


@pytest.fixture
async def bus(url: str) -> AsyncIterator[RabbitMqBus]:
    made = RabbitMqBus(url, publish_timeout=2.0, reconnect_interval=0.2)
    await made.start()
    yield made
    await made.close()


@pytest.fixture
async def channel(url: str) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect(url)
    yield await connection.channel()
    await connection.close()


def names() -> tuple[str, str]:
    """A domain and a consumer name of this test's own (the vhost is per module)."""
    tag = uuid.uuid4().hex[:8]
    return f"d{tag}", f"c{tag}"


async def eventually_len(items: list[Any], count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(items) < count:
        assert time.monotonic() < deadline, f"{len(items)} of {count} within {timeout}s"
        await asyncio.sleep(0.01)


async def test_queues_and_messages_follow_the_naming_scheme(
    bus: RabbitMqBus, channel: aio_pika.abc.AbstractChannel
) -> None:
    domain, consumer = names()
    received: list[aio_pika.abc.AbstractIncomingMessage] = []
    await bus.subscribe(consumer, [f"{domain}.>"], _ok, retry=FAST_RETRY)
    # Passive declarations fail unless the queue exists.
    await channel.declare_queue(f"mercato.{consumer}", passive=True)
    await channel.declare_queue(f"mercato.{consumer}.retry.50ms", passive=True)
    await channel.declare_queue(f"mercato.{consumer}.retry.100ms", passive=True)
    await channel.declare_queue("mercato.deadletters", passive=True)

    # A queue of our own bound like a consumer's, to look at what the bus publishes.
    spy = await channel.declare_queue(exclusive=True)
    await spy.bind("mercato.events", routing_key=f"{domain}.#")

    async def record(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        received.append(message)
        await message.ack()

    await spy.consume(record)
    sent = Envelope(type=f"{domain}.product.created.v1", source="t", subject="s", data={})
    await bus.publish(sent)
    await eventually_len(received, 1)
    message = received[0]
    assert message.routing_key == sent.type
    assert message.message_id == sent.id
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert Envelope.from_bytes(message.body) == sent


async def test_a_quorum_queue_is_declared_per_consumer(url: str, bus: RabbitMqBus) -> None:
    _, consumer = names()
    await bus.subscribe(consumer, ["catalog.product.created.v1"], _ok)
    vhost = url.rsplit("/", 1)[1]
    listing = await asyncio.to_thread(
        rabbitmqctl, "list_queues", "-p", vhost, "name", "type", "durable"
    )
    rows = {line.split("\t")[0]: line.split("\t")[1:] for line in listing.stdout.splitlines()}
    assert rows[f"mercato.{consumer}"] == ["quorum", "true"]
    assert rows["mercato.deadletters"] == ["classic", "true"]


async def test_a_binding_left_from_earlier_patterns_delivers_nothing(bus: RabbitMqBus) -> None:
    domain, consumer = names()
    seen: list[str] = []

    async def record(envelope: Envelope, delivery: Delivery) -> None:
        seen.append(envelope.type)

    first = await bus.subscribe(consumer, [f"{domain}.product.>"], record)
    await first.stop()
    # The queue keeps its old binding; the new subscription asks for orders only.
    await bus.subscribe(consumer, [f"{domain}.order.>"], record)
    await bus.publish(
        Envelope(type=f"{domain}.product.created.v1", source="t", subject="a", data={})
    )
    await bus.publish(Envelope(type=f"{domain}.order.placed.v1", source="t", subject="b", data={}))
    await eventually_len(seen, 1)
    await asyncio.sleep(0.3)
    assert seen == [f"{domain}.order.placed.v1"]


async def test_replay_to_a_consumer_without_a_queue_keeps_the_letter(
    bus: RabbitMqBus, channel: aio_pika.abc.AbstractChannel
) -> None:
    domain, consumer = names()

    async def refuse(envelope: Envelope, delivery: Delivery) -> None:
        raise PermanentError("no")

    subscription = await bus.subscribe(consumer, [f"{domain}.>"], refuse, retry=FAST_RETRY)
    await bus.publish(Envelope(type=f"{domain}.x.happened.v1", source="t", subject="s", data={}))
    deadline = time.monotonic() + 10
    while not (letters := await bus.dead_letters(consumer=consumer)):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await subscription.stop()
    await channel.queue_delete(f"mercato.{consumer}")

    with pytest.raises(LookupError, match="has no queue"):
        await bus.replay_dead_letter(letters[0].id)
    assert [x.id for x in await bus.dead_letters(consumer=consumer)] == [letters[0].id]
    await bus.discard_dead_letter(letters[0].id)


async def test_publish_many_keeps_a_hundred_or_more_in_flight(bus: RabbitMqBus) -> None:
    domain, _ = names()
    exchange = bus._exchange
    assert exchange is not None
    real_publish = exchange.publish
    in_flight = most = 0

    async def counting_publish(*args: Any, **kwargs: Any) -> Any:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            return await real_publish(*args, **kwargs)
        finally:
            in_flight -= 1

    exchange.publish = counting_publish  # type: ignore[method-assign]
    sent = [
        Envelope(type=f"{domain}.x.happened.v1", source="t", subject=f"s{i}", data={})
        for i in range(600)
    ]
    assert await bus.publish_many(sent) == [None] * 600
    assert most >= 100


async def test_starting_without_a_broker_fails_with_broker_unavailable() -> None:
    bus = RabbitMqBus(f"amqp://guest:guest@127.0.0.1:{free_port()}/", start_timeout=2.0)
    with pytest.raises(BrokerUnavailableError):
        await bus.start()
    with pytest.raises(BrokerUnavailableError):
        await bus.publish(Envelope(type="a.b.c.v1", source="t", subject="s", data={}))
    await bus.close()


async def _ok(envelope: Envelope, delivery: Delivery) -> None:
    pass
