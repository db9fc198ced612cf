"""One contract for every message bus: the in-memory fake, NATS JetStream and RabbitMQ.

NATS runs on a nats-server of the test's own. RabbitMQ runs on the machine's broker in a
vhost made for this test session; tests keep apart there by their own domain and consumer
names, since a `rabbitmqctl` call per test would cost seconds.
"""

import asyncio
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aio_pika
import nats
import pytest
from prometheus_client import REGISTRY

from chassis._embedded_nats import EmbeddedNatsServer
from chassis.messaging import (
    BrokerUnavailableError,
    Delivery,
    Envelope,
    InMemoryMessageBus,
    MessageBus,
    NatsJetStreamBus,
    PermanentError,
    RabbitMqBus,
    RetryPolicy,
    TransientError,
)

FAST_RETRY = RetryPolicy(max_attempts=3, backoff=(0.05, 0.1), ack_wait=1.0)


# -- helpers -------------------------------------------------------------------------------


async def eventually(check: Callable[[], bool], *, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        await asyncio.sleep(0.01)


Behaviour = Callable[[Envelope, Delivery], Awaitable[None]]


class Recorder:
    """A handler that records what it is given, then behaves as told (default: succeeds)."""

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.seen: list[tuple[Envelope, Delivery]] = []
        self.times: list[float] = []
        self._behaviour = behaviour

    async def __call__(self, envelope: Envelope, delivery: Delivery) -> None:
        self.seen.append((envelope, delivery))
        self.times.append(time.monotonic())
        if self._behaviour is not None:
            await self._behaviour(envelope, delivery)

    @property
    def ids(self) -> list[str]:
        return [envelope.id for envelope, _ in self.seen]

    @property
    def attempts(self) -> list[int]:
        return [delivery.attempt for _, delivery in self.seen]

    async def wait_for(self, count: int, *, timeout: float = 10.0) -> None:
        await eventually(lambda: len(self.seen) >= count, timeout=timeout)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def rabbitmqctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["rabbitmqctl", "--quiet", *args], capture_output=True, text=True, timeout=60, check=False
    )


@dataclass
class Kit:
    """One broker for one test: a started bus, and what the scenarios need around it."""

    kind: str
    bus: MessageBus
    domain: str  # unique per test: a RabbitMQ vhost is shared by the whole session
    publish_raw: Callable[[str, bytes], Awaitable[None]]
    restart: Callable[[], Awaitable[None]] | None = None
    closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)

    def type(self, name: str) -> str:
        return f"{self.domain}.{name}"

    def consumer(self, name: str) -> str:
        return f"{self.domain}-{name}"

    def envelope(self, name: str = "product.created.v1", **fields: Any) -> Envelope:
        fields.setdefault("subject", f"sku-{uuid.uuid4().hex[:6]}")
        fields.setdefault("data", {"n": 1})
        return Envelope(type=self.type(name), source="tests", **fields)


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def rabbitmq_vhost() -> Iterator[str]:
    """A fresh vhost for the session, deleted afterwards (falls back to `/` without rabbitmqctl)."""
    name = f"mercato_test_{uuid.uuid4().hex[:12]}"
    if shutil.which("rabbitmqctl") is None or rabbitmqctl("add_vhost", name).returncode != 0:
        yield "/"
        return
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        rabbitmqctl("delete_vhost", name)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNatsServer]:
    server = EmbeddedNatsServer(tmp_path / "js")
    server.start()
    yield server
    server.stop()


async def memory_kit(request: pytest.FixtureRequest, domain: str) -> Kit:
    bus = InMemoryMessageBus()
    return Kit("memory", bus, domain, publish_raw=bus.inject)


async def nats_kit(request: pytest.FixtureRequest, domain: str) -> Kit:
    server: EmbeddedNatsServer = request.getfixturevalue("nats_server")
    bus = NatsJetStreamBus(
        server.url, publish_timeout=2.0, fetch_timeout=0.5, reconnect_time_wait=0.1
    )
    raw_client = await nats.connect(server.url)

    async def publish_raw(type_: str, raw: bytes) -> None:
        await raw_client.jetstream().publish(f"mercato.{type_}", raw)

    async def restart() -> None:
        await asyncio.to_thread(server.restart)

    return Kit("nats", bus, domain, publish_raw, restart, closers=[raw_client.close])


async def rabbitmq_kit(request: pytest.FixtureRequest, domain: str) -> Kit:
    vhost: str = request.getfixturevalue("rabbitmq_vhost")
    url = f"amqp://guest:guest@127.0.0.1:5672/{quote(vhost, safe='')}"
    bus = RabbitMqBus(url, publish_timeout=2.0, reconnect_interval=0.2)
    raw_connection = await aio_pika.connect(url)
    raw_channel = await raw_connection.channel()

    async def publish_raw(type_: str, raw: bytes) -> None:
        exchange = await raw_channel.get_exchange("mercato.events")
        await exchange.publish(aio_pika.Message(raw), routing_key=type_)

    async def restart() -> None:
        # Not `rabbitmqctl stop_app`: other test runs share this broker. Closing every
        # connection of our vhost from the server side drops us the same way, and
        # aio-pika's robust connection has to reconnect and restore the subscription.
        result = await asyncio.to_thread(
            rabbitmqctl, "close_all_connections", "--vhost", vhost, "--limit", "1000", "test"
        )
        assert result.returncode == 0, result.stderr

    return Kit(
        "rabbitmq",
        bus,
        domain,
        publish_raw,
        restart if vhost != "/" else None,
        closers=[raw_connection.close],
    )


KITS = {"memory": memory_kit, "nats": nats_kit, "rabbitmq": rabbitmq_kit}


@pytest.fixture(
    params=[
        "memory",
        pytest.param("nats", marks=pytest.mark.integration),
        pytest.param("rabbitmq", marks=pytest.mark.integration),
    ]
)
async def kit(request: pytest.FixtureRequest) -> AsyncIterator[Kit]:
    made = await KITS[request.param](request, f"t{uuid.uuid4().hex[:10]}")
    await made.bus.start()
    try:
        yield made
    finally:
        await made.bus.close()
        for close in made.closers:
            await close()


# -- the contract --------------------------------------------------------------------------


async def test_an_envelope_arrives_exactly_as_published(kit: Kit) -> None:
    received = Recorder()
    await kit.bus.subscribe(kit.consumer("c"), [kit.type("product.created.v1")], received)
    sent = kit.envelope(
        subject="sku-1",
        data={"name": "Café crème ☕", "price": {"amount": 1999, "currency": "EUR"}, "tags": []},
        correlation_id="corr-1",
        causation_id="cause-1",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    await kit.bus.publish(sent)

    await received.wait_for(1)
    envelope, delivery = received.seen[0]
    assert envelope == sent
    assert delivery == Delivery(attempt=1, redelivered=False, consumer=kit.consumer("c"))
    assert metric("mercato_messages_published_total", type=sent.type) == 1
    await eventually(
        lambda: (
            metric(
                "mercato_messages_consumed_total",
                consumer=kit.consumer("c"),
                type=sent.type,
                outcome="ack",
            )
            == 1
        )
    )
    assert metric("mercato_message_handling_duration_seconds_count", consumer=kit.consumer("c"))


async def test_a_consumer_gets_what_was_published_while_it_was_away_not_before_it_existed(
    kit: Kit,
) -> None:
    received = Recorder()
    type_ = kit.type("product.created.v1")
    before = kit.envelope(subject="before-the-consumer-existed")
    await kit.bus.publish(before)
    subscription = await kit.bus.subscribe(kit.consumer("c"), [type_], received)
    await subscription.stop()
    away = [kit.envelope(subject=f"while-away-{i}") for i in range(3)]
    assert await kit.bus.publish_many(away) == [None] * 3

    await kit.bus.subscribe(kit.consumer("c"), [type_], received)
    await received.wait_for(3)
    await asyncio.sleep(0.3)
    assert sorted(received.ids) == sorted(e.id for e in away)


async def test_a_closed_bus_refuses_to_publish(kit: Kit) -> None:
    await kit.bus.close()
    with pytest.raises(BrokerUnavailableError):
        await kit.bus.publish(kit.envelope())
    with pytest.raises(BrokerUnavailableError):
        await kit.bus.ping()


async def test_patterns_select_the_right_types_only(kit: Kit) -> None:
    all_versions = Recorder()  # `*` is exactly one segment
    product = Recorder()  # a trailing `>` is one or more segments
    placed_any_entity = Recorder()
    exact = Recorder()
    everything = Recorder()
    bus = kit.bus
    await bus.subscribe(kit.consumer("a"), [kit.type("product.created.*")], all_versions)
    await bus.subscribe(kit.consumer("b"), [kit.type("product.>")], product)
    await bus.subscribe(kit.consumer("c"), [kit.type("*.placed.v1")], placed_any_entity)
    await bus.subscribe(kit.consumer("d"), [kit.type("order.placed.v1")], exact)
    await bus.subscribe(kit.consumer("e"), [kit.type(">"), kit.type("order.placed.v1")], everything)

    names = [
        "product.created.v1",
        "product.created.v2",
        "product.price_changed.v1",
        "order.placed.v1",
        "order.placed.v2",
        "cart.placed.v1",
    ]
    for name in names:
        await bus.publish(kit.envelope(name))
    await bus.publish(
        Envelope(type="otherdomain.product.created.v1", source="t", subject="x", data={})
    )

    def types(recorder: Recorder) -> list[str]:
        return sorted(envelope.type.split(".", 1)[1] for envelope, _ in recorder.seen)

    await everything.wait_for(len(names))
    await asyncio.sleep(0.3)  # time for anything wrongly routed to show up
    assert types(all_versions) == ["product.created.v1", "product.created.v2"]
    assert types(product) == [
        "product.created.v1",
        "product.created.v2",
        "product.price_changed.v1",
    ]
    assert types(placed_any_entity) == ["cart.placed.v1", "order.placed.v1"]
    assert types(exact) == ["order.placed.v1"]
    assert types(everything) == sorted(names)  # overlapping patterns: each message once


async def test_one_consumer_name_shares_the_work_and_each_name_gets_everything(kit: Kit) -> None:
    first, second, other = Recorder(), Recorder(), Recorder()
    type_ = kit.type("product.created.v1")
    await kit.bus.subscribe(kit.consumer("shared"), [type_], first)
    await kit.bus.subscribe(kit.consumer("shared"), [type_], second)
    await kit.bus.subscribe(kit.consumer("other"), [type_], other)

    sent = [kit.envelope(subject=f"sku-{i}") for i in range(30)]
    assert await kit.bus.publish_many(sent) == [None] * 30

    await eventually(lambda: len(first.seen) + len(second.seen) >= 30)
    await other.wait_for(30)
    await asyncio.sleep(0.3)
    shared = first.ids + second.ids
    assert sorted(shared) == sorted(e.id for e in sent)  # each once, in total
    assert sorted(other.ids) == sorted(e.id for e in sent)


async def test_messages_of_one_subject_are_handled_in_order(kit: Kit) -> None:
    received = Recorder()
    await kit.bus.subscribe(kit.consumer("c"), [kit.type("order.>")], received)
    sent = [
        kit.envelope("order.line_added.v1", subject="order-1", data={"i": i}) for i in range(50)
    ]
    # Half one by one, half pipelined: both keep the order.
    for envelope in sent[:25]:
        await kit.bus.publish(envelope)
    assert await kit.bus.publish_many(sent[25:]) == [None] * 25

    await received.wait_for(50)
    assert [envelope.data["i"] for envelope, _ in received.seen] == list(range(50))


async def test_a_message_being_handled_when_its_subscriber_stops_is_delivered_again(
    kit: Kit,
) -> None:
    started = asyncio.Event()

    async def hang(envelope: Envelope, delivery: Delivery) -> None:
        started.set()
        await asyncio.Event().wait()  # a consumer that never finishes: it crashes below

    stuck = Recorder(hang)
    type_ = kit.type("product.created.v1")
    subscription = await kit.bus.subscribe(kit.consumer("c"), [type_], stuck, retry=FAST_RETRY)
    sent = kit.envelope()
    await kit.bus.publish(sent)
    await asyncio.wait_for(started.wait(), 10)
    await subscription.stop()  # mid-handling: never acked

    again = Recorder()
    await kit.bus.subscribe(kit.consumer("c"), [type_], again, retry=FAST_RETRY)
    await again.wait_for(1)
    envelope, delivery = again.seen[0]
    assert envelope.id == sent.id
    assert delivery.attempt == 2
    assert delivery.redelivered
    assert await kit.bus.dead_letters(consumer=kit.consumer("c")) == []


async def test_a_transient_failure_is_retried_with_backoff_until_it_succeeds(kit: Kit) -> None:
    async def fail_twice(envelope: Envelope, delivery: Delivery) -> None:
        if delivery.attempt < 3:
            raise TransientError("database is busy")

    received = Recorder(fail_twice)
    await kit.bus.subscribe(
        kit.consumer("c"), [kit.type("product.created.v1")], received, retry=FAST_RETRY
    )
    sent = kit.envelope()
    await kit.bus.publish(sent)

    await received.wait_for(3)
    await asyncio.sleep(0.3)
    assert received.ids == [sent.id] * 3
    assert received.attempts == [1, 2, 3]
    assert [delivery.redelivered for _, delivery in received.seen] == [False, True, True]
    assert received.times[1] - received.times[0] >= 0.04  # waited its backoff
    assert await kit.bus.dead_letters() == []


async def test_a_poison_message_is_dead_lettered_and_the_rest_keep_flowing(kit: Kit) -> None:
    async def choke_on_poison(envelope: Envelope, delivery: Delivery) -> None:
        if envelope.data.get("poison"):
            raise ValueError("cannot digest this")

    received = Recorder(choke_on_poison)
    consumer = kit.consumer("c")
    await kit.bus.subscribe(consumer, [kit.type("order.>")], received, retry=FAST_RETRY)
    poison = kit.envelope("order.placed.v1", subject="order-1", data={"poison": True})
    behind = [kit.envelope("order.paid.v1", subject="order-1", data={"i": i}) for i in range(5)]
    await kit.bus.publish(poison)
    assert await kit.bus.publish_many(behind) == [None] * 5

    letters = await wait_for_letters(kit, consumer, 1)
    await received.wait_for(3 + 5)
    assert len(letters) == 1
    letter = letters[0]
    assert letter.consumer == consumer
    assert letter.reason == "ValueError: cannot digest this"
    assert letter.attempts == 3
    assert letter.envelope == poison
    assert Envelope.from_bytes(letter.raw) == poison
    assert abs(letter.dead_at - datetime.now(UTC)) < timedelta(seconds=30)
    assert received.ids.count(poison.id) == 3
    handled_behind = [e.data["i"] for e, _ in received.seen if "i" in e.data]
    assert handled_behind == [0, 1, 2, 3, 4]  # in order, the poison did not hold them
    # Listing does not consume: the letter is still there, once.
    assert [x.id for x in await kit.bus.dead_letters()] == [letter.id]
    assert await kit.bus.dead_letters(consumer=kit.consumer("someone-else")) == []
    assert metric("mercato_dead_letters_total", consumer=consumer) == 1
    assert (
        metric(
            "mercato_messages_consumed_total", consumer=consumer, type=poison.type, outcome="retry"
        )
        == 2
    )


async def test_a_permanent_error_is_dead_lettered_at_once(kit: Kit) -> None:
    async def refuse(envelope: Envelope, delivery: Delivery) -> None:
        raise PermanentError("product 42 does not exist")

    received = Recorder(refuse)
    consumer = kit.consumer("c")
    await kit.bus.subscribe(consumer, [kit.type("product.>")], received, retry=FAST_RETRY)
    sent = kit.envelope()
    await kit.bus.publish(sent)

    letters = await wait_for_letters(kit, consumer, 1)
    assert (letters[0].reason, letters[0].attempts) == (
        "PermanentError: product 42 does not exist",
        1,
    )
    assert received.attempts == [1]


@pytest.mark.parametrize("body", [b"not json at all", b'{"type": "x.y.v1"}', b"[]", b""])
async def test_a_malformed_body_is_dead_lettered_at_once(kit: Kit, body: bytes) -> None:
    received = Recorder()
    consumer = kit.consumer("c")
    type_ = kit.type("product.created.v1")
    await kit.bus.subscribe(consumer, [kit.type("product.>")], received, retry=FAST_RETRY)
    await kit.publish_raw(type_, body)
    good = kit.envelope()
    await kit.bus.publish(good)

    letters = await wait_for_letters(kit, consumer, 1)
    letter = letters[0]
    assert letter.envelope is None
    assert letter.raw == body
    assert letter.attempts == 1
    assert letter.reason.startswith("MalformedMessageError: ")
    await received.wait_for(1)
    assert received.ids == [good.id]  # the handler never saw the bad body


async def test_replay_delivers_the_same_envelope_to_that_consumer_only(kit: Kit) -> None:
    fixed = False

    async def fail_until_fixed(envelope: Envelope, delivery: Delivery) -> None:
        if not fixed:
            raise PermanentError("bug in our handler")

    broken = Recorder(fail_until_fixed)
    bystander = Recorder()
    consumer = kit.consumer("broken")
    type_ = kit.type("product.created.v1")
    await kit.bus.subscribe(consumer, [type_], broken, retry=FAST_RETRY)
    await kit.bus.subscribe(kit.consumer("bystander"), [type_], bystander, retry=FAST_RETRY)
    sent = kit.envelope()
    await kit.bus.publish(sent)
    (letter,) = await wait_for_letters(kit, consumer, 1)
    await bystander.wait_for(1)

    fixed = True
    await kit.bus.replay_dead_letter(letter.id)

    await broken.wait_for(2)
    envelope, delivery = broken.seen[1]
    assert envelope == sent  # the same envelope, same id
    assert delivery.attempt == 1  # a replay starts over
    assert await kit.bus.dead_letters(consumer=consumer) == []
    await asyncio.sleep(0.3)
    assert bystander.ids == [sent.id]  # the other consumer did not get it again
    assert len(broken.seen) == 2
    with pytest.raises(LookupError):
        await kit.bus.replay_dead_letter(letter.id)


async def test_discard_removes_a_dead_letter(kit: Kit) -> None:
    async def refuse(envelope: Envelope, delivery: Delivery) -> None:
        raise PermanentError("no")

    consumer = kit.consumer("c")
    await kit.bus.subscribe(consumer, [kit.type("product.>")], Recorder(refuse), retry=FAST_RETRY)
    kept, dropped = kit.envelope(subject="a"), kit.envelope(subject="b")
    await kit.bus.publish(kept)
    await kit.bus.publish(dropped)
    letters = await wait_for_letters(kit, consumer, 2)
    to_drop = next(x for x in letters if x.envelope is not None and x.envelope.id == dropped.id)

    await kit.bus.discard_dead_letter(to_drop.id)

    remaining = await kit.bus.dead_letters(consumer=consumer)
    assert [x.envelope.id for x in remaining if x.envelope is not None] == [kept.id]
    with pytest.raises(LookupError):
        await kit.bus.discard_dead_letter(to_drop.id)


async def test_a_subscription_keeps_consuming_after_the_broker_restarts(kit: Kit) -> None:
    if kit.restart is None:
        pytest.skip(f"{kit.kind}: there is no broker to restart")
    received = Recorder()
    await kit.bus.subscribe(kit.consumer("c"), [kit.type("product.>")], received)
    await kit.bus.publish(kit.envelope(subject="before"))
    await received.wait_for(1)

    await kit.restart()

    after = kit.envelope(subject="after")
    deadline = time.monotonic() + 15
    while True:  # what an outbox does: retry while the broker is unavailable
        try:
            await kit.bus.publish(after)
            break
        except BrokerUnavailableError:
            assert time.monotonic() < deadline, "the bus never reconnected"
            await asyncio.sleep(0.1)
    await received.wait_for(2, timeout=15)
    assert received.ids[-1] == after.id


async def wait_for_letters(kit: Kit, consumer: str, count: int) -> list[Any]:
    deadline = time.monotonic() + 10
    while True:
        letters = await kit.bus.dead_letters(consumer=consumer)
        if len(letters) >= count:
            return letters
        assert time.monotonic() < deadline, f"{len(letters)} dead letters, wanted {count}"
        await asyncio.sleep(0.05)


# -- broker-side counts (consumer lag, stored dead letters) ---------------------------------


async def eventually_equal(read: Callable[[], Awaitable[int]], expected: int) -> None:
    deadline = time.monotonic() + 10
    while (value := await read()) != expected:
        assert time.monotonic() < deadline, f"{value}, wanted {expected}"
        await asyncio.sleep(0.05)


async def test_pending_counts_what_the_broker_has_not_handed_the_consumer_yet(kit: Kit) -> None:
    gate = asyncio.Event()

    async def hold(envelope: Envelope, delivery: Delivery) -> None:
        await gate.wait()

    held = Recorder(hold)
    consumer = kit.consumer("lagging")
    await kit.bus.subscribe(consumer, [kit.type("product.created.v1")], held)
    assert await kit.bus.pending(consumer) == 0
    sent = [kit.envelope(subject="one-lane") for _ in range(60)]
    assert await kit.bus.publish_many(sent) == [None] * 60
    await held.wait_for(1)

    # The consumer holds what it fetched (one, or a prefetch window); the rest waits.
    deadline = time.monotonic() + 10
    while not 60 - 32 <= (lag := await kit.bus.pending(consumer)) <= 59:
        assert time.monotonic() < deadline, f"lag {lag}"
        await asyncio.sleep(0.05)
    gate.set()
    await held.wait_for(60)
    await eventually_equal(lambda: kit.bus.pending(consumer), 0)
    with pytest.raises(LookupError):
        await kit.bus.pending(kit.consumer("never-subscribed"))


async def test_dead_letter_count_follows_the_store(kit: Kit) -> None:
    before = await kit.bus.dead_letter_count()  # RabbitMQ: the session's vhost is shared

    async def refuse(envelope: Envelope, delivery: Delivery) -> None:
        raise PermanentError("not for us")

    consumer = kit.consumer("refusing")
    await kit.bus.subscribe(consumer, [kit.type("product.created.v1")], Recorder(refuse))
    await kit.bus.publish_many([kit.envelope(), kit.envelope()])
    letters = await wait_for_letters(kit, consumer, 2)
    await eventually_equal(kit.bus.dead_letter_count, before + 2)

    await kit.bus.discard_dead_letter(letters[0].id)
    await eventually_equal(kit.bus.dead_letter_count, before + 1)
    await kit.bus.replay_dead_letter(letters[1].id)
    await eventually_equal(kit.bus.dead_letter_count, before + 1)  # refused again, once more
