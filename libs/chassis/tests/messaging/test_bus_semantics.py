"""What every bus adapter shares: type patterns, the verdict on a delivery, dead letters."""

import asyncio
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from chassis.messaging import (
    DeadLetter,
    Delivery,
    Envelope,
    MalformedMessageError,
    PermanentError,
    RetryPolicy,
    TransientError,
    bus_from_url,
)
from chassis.messaging._consuming import (
    Outcome,
    Verdict,
    check_consumer,
    dead_letter_from_headers,
    dead_letter_headers,
    judge,
    normalize_patterns,
    pattern_matches,
    read_envelope,
)
from chassis.messaging._memory import InMemoryMessageBus
from chassis.messaging._nats import NatsJetStreamBus
from chassis.messaging._rabbitmq import RabbitMqBus, binding_key

RETRY = RetryPolicy(max_attempts=3, backoff=(0.05, 0.1), ack_wait=1.0)


def envelope(type_: str = "catalog.product.created.v1") -> Envelope:
    return Envelope(type=type_, source="tests", subject="sku-1", data={"n": 1})


# -- patterns --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "type_", "matches"),
    [
        ("catalog.product.created.v1", "catalog.product.created.v1", True),
        ("catalog.product.created.v1", "catalog.product.created.v2", False),
        ("catalog.product.created.*", "catalog.product.created.v2", True),
        ("catalog.product.*", "catalog.product.created.v1", False),  # `*` is one segment
        ("catalog.product.>", "catalog.product.created.v1", True),
        ("catalog.product.>", "catalog.product", False),  # `>` is one or more
        ("catalog.>", "catalog.product.created.v1", True),
        ("catalog.>", "catalogue.product.created.v1", False),
        ("catalog.*.created.v1", "catalog.category.created.v1", True),
        ("catalog.*.created.v1", "catalog.category.deleted.v1", False),
    ],
)
def test_patterns_match_segment_by_segment(pattern: str, type_: str, matches: bool) -> None:
    assert pattern_matches(pattern, type_) is matches


def test_patterns_are_deduplicated_and_covered_ones_dropped() -> None:
    assert normalize_patterns(
        [
            "catalog.product.created.v1",
            "catalog.product.>",
            "catalog.product.*",
            "orders.order.placed.v1",
            "orders.order.placed.v1",
            "orders.*.placed.v1",
        ]
    ) == ("catalog.product.>", "orders.*.placed.v1")
    assert normalize_patterns(["catalog.>", "catalog.product.>"]) == ("catalog.>",)


@pytest.mark.parametrize(
    "pattern",
    ["", "catalog", ">", "*.product.created.v1", "catalog.>.v1", "Catalog.x", "catalog.a b",
     "replay.x.>", "deadletter.>", "catalog..x"],
)  # fmt: skip
def test_bad_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match="pattern"):
        normalize_patterns([pattern])


def test_subscribing_needs_a_list_of_patterns() -> None:
    with pytest.raises(TypeError):
        normalize_patterns("catalog.>")
    with pytest.raises(ValueError, match="at least one"):
        normalize_patterns([])


@pytest.mark.parametrize("name", ["", "a.b", "a b", "a>", "x" * 101, "é", "deadletters"])
def test_consumer_names_are_one_broker_token_and_not_reserved(name: str) -> None:
    with pytest.raises(ValueError, match="consumer name"):
        check_consumer(name)
    assert check_consumer("notifications-v2_x") == "notifications-v2_x"


def test_rabbitmq_binding_keys_follow_the_patterns() -> None:
    assert binding_key("catalog.>") == "catalog.#"
    assert binding_key("catalog.product.*") == "catalog.product.*"
    assert binding_key("catalog.product.created.v1") == "catalog.product.created.v1"


# -- the verdict -----------------------------------------------------------------------


def delivery(attempt: int, consumer: str = "judged") -> Delivery:
    return Delivery(attempt=attempt, redelivered=attempt > 1, consumer=consumer)


def consumed(consumer: str, type_: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "mercato_messages_consumed_total",
        {"consumer": consumer, "type": type_, "outcome": outcome},
    )
    return value or 0.0


async def succeed(envelope: Envelope, delivery: Delivery) -> None:
    pass


async def test_a_handler_that_returns_acks() -> None:
    before = consumed("judged", "catalog.product.created.v1", "ack")
    assert await judge(envelope(), delivery(1), succeed, RETRY) == Verdict(Outcome.ACK)
    assert consumed("judged", "catalog.product.created.v1", "ack") == before + 1


@pytest.mark.parametrize(
    "error", [TransientError("busy"), ConnectionResetError("reset"), KeyError("k")]
)
async def test_other_errors_retry_with_backoff_then_dead_letter(error: Exception) -> None:
    async def fail(envelope: Envelope, delivery: Delivery) -> None:
        raise error

    first = await judge(envelope(), delivery(1), fail, RETRY)
    second = await judge(envelope(), delivery(2), fail, RETRY)
    last = await judge(envelope(), delivery(3), fail, RETRY)
    assert (first.outcome, first.delay) == (Outcome.RETRY, 0.05)
    assert (second.outcome, second.delay) == (Outcome.RETRY, 0.1)
    assert last.outcome is Outcome.DEAD_LETTER
    assert last.reason.startswith(type(error).__name__)


async def test_the_last_backoff_repeats_and_no_backoff_means_at_once() -> None:
    async def fail(envelope: Envelope, delivery: Delivery) -> None:
        raise TransientError

    patient = RetryPolicy(max_attempts=10, backoff=(1.0, 2.0))
    assert (await judge(envelope(), delivery(7), fail, patient)).delay == 2.0
    eager = RetryPolicy(max_attempts=10, backoff=())
    assert (await judge(envelope(), delivery(2), fail, eager)).delay == 0.0


@pytest.mark.parametrize("error", [PermanentError("never"), MalformedMessageError("schema")])
async def test_permanent_and_malformed_errors_dead_letter_at_once(error: Exception) -> None:
    async def fail(envelope: Envelope, delivery: Delivery) -> None:
        raise error

    verdict = await judge(envelope(), delivery(1), fail, RETRY)
    assert verdict == Verdict(Outcome.DEAD_LETTER, f"{type(error).__name__}: {error}")


async def test_an_unparseable_body_is_dead_lettered_without_the_handler() -> None:
    called = False

    async def handler(envelope: Envelope, delivery: Delivery) -> None:
        nonlocal called
        called = True

    parsed = read_envelope(b"{not json")
    assert isinstance(parsed, MalformedMessageError)
    verdict = await judge(parsed, delivery(1), handler, RETRY)
    assert verdict.outcome is Outcome.DEAD_LETTER
    assert verdict.reason == "MalformedMessageError: envelope is not valid JSON"
    assert not called


async def test_a_delivery_past_max_attempts_is_dead_lettered_without_the_handler() -> None:
    # What a consumer that crashes on a message leaves behind: deliveries, no outcomes.
    called = False

    async def handler(envelope: Envelope, delivery: Delivery) -> None:
        nonlocal called
        called = True

    verdict = await judge(envelope(), delivery(4), handler, RETRY)
    assert verdict.outcome is Outcome.DEAD_LETTER
    assert verdict.reason.startswith("AttemptsExhausted: delivered 4 times")
    assert not called


async def test_a_cancelled_handler_propagates_so_the_message_is_not_settled() -> None:
    async def hang(envelope: Envelope, delivery: Delivery) -> None:
        await asyncio.Event().wait()

    task = asyncio.create_task(judge(envelope(), delivery(1), hang, RETRY))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_long_reasons_are_cut() -> None:
    async def fail(envelope: Envelope, delivery: Delivery) -> None:
        raise PermanentError("x" * 5000)

    verdict = await judge(envelope(), delivery(1), fail, RETRY)
    assert len(verdict.reason) == 2000


# -- dead letter headers ---------------------------------------------------------------


@pytest.mark.parametrize("raw", [envelope().to_bytes(), b"\x00\xffnot an envelope", b""])
def test_dead_letters_survive_their_broker_headers(raw: bytes) -> None:
    parsed = read_envelope(raw)
    letter = DeadLetter(
        id="abc",
        consumer="notifications",
        reason="ValueError: naïve 100% wrong\r\nsecond line",
        attempts=3,
        envelope=parsed if isinstance(parsed, Envelope) else None,
        raw=raw,
        dead_at=datetime(2026, 1, 2, 3, 4, 5, 6789, tzinfo=UTC),
    )
    headers = dead_letter_headers(letter)
    assert all(value.isascii() and "\n" not in value for value in headers.values())
    assert dead_letter_from_headers(headers, raw) == letter


# -- the factory -----------------------------------------------------------------------


def test_the_url_scheme_picks_the_bus() -> None:
    nats_bus = bus_from_url("nats://a:4222,nats://b:4222", service="orders")
    assert isinstance(nats_bus, NatsJetStreamBus)
    assert nats_bus.servers == ["nats://a:4222", "nats://b:4222"]
    assert nats_bus.name == "orders"
    rabbit = bus_from_url(" amqp://guest:guest@rabbit:5672/mercato ", service="orders")
    assert isinstance(rabbit, RabbitMqBus)
    assert rabbit.url == "amqp://guest:guest@rabbit:5672/mercato"
    assert isinstance(bus_from_url("memory://", service="orders"), InMemoryMessageBus)


@pytest.mark.parametrize(
    "url", ["kafka://k:9092", "127.0.0.1:4222", "nats://a:4222,http://b", "amqp:///vhost"]
)
def test_bad_broker_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="broker URL"):
        bus_from_url(url, service="orders")


def test_a_refused_url_does_not_echo_its_password() -> None:
    with pytest.raises(ValueError, match="broker URL") as caught:
        bus_from_url("redis://user:s3cret@host:6379", service="orders")
    assert "s3cret" not in str(caught.value)
