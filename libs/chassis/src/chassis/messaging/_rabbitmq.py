"""The message bus on RabbitMQ, on aio-pika directly.

Built on aio-pika rather than FastStream: we need explicit control over acks, delayed
retries, message ids, publisher confirms and dead-lettering, and FastStream's abstractions
hide those.

Names on the broker:

- one durable topic exchange `mercato.events`; the routing key is the envelope type
  (`catalog.product.created.v1`), `message_id` the envelope id, delivery mode persistent;
  patterns bind as they are, except a trailing `>` which becomes `#` (`catalog.>` →
  `catalog.#`);
- a consumer name is one durable quorum queue `mercato.<consumer>` bound to its patterns;
  its subscribers share it, each with a bounded prefetch and manual acks;
- delayed retries: one durable queue per consumer and delay,
  `mercato.<consumer>.retry.<ms>ms`, with that queue-level TTL and dead-lettering back to
  `mercato.<consumer>` through the default exchange. One queue per delay rather than a
  per-message TTL, because RabbitMQ only expires messages at the head of a queue: a long
  delay would hold back the short ones queued behind it;
- attempts: header `x-mercato-attempt` (1 when published, +1 for each retry we republish)
  plus the quorum queue's `x-delivery-count` (returns after a crashed or stopped consumer);
- dead letters: one durable classic queue `mercato.deadletters`, body = the original bytes,
  the rest in `Mercato-*` headers. Listing takes every letter with `basic.get` unacked and
  gives them all back by closing the channel (order kept; a classic queue, because quorum
  queues count those returns towards a delivery limit). Replay publishes the original bytes
  with the same message id straight to `mercato.<consumer>` through the default exchange
  (mandatory, confirmed), then acks the letter; discard just acks it. Two listings at the
  same instant can each see only part of the letters.

Ordering: deliveries are handled in one lane per envelope subject, lanes concurrently (up
to `prefetch` messages), each lane in delivery order. Retries and competing subscribers can
reorder. `RetryPolicy.ack_wait` has no client-side equivalent here: a crashed consumer's
messages come back when its connection drops; a stuck one keeps them until the broker's
`consumer_timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
    DeliveryMode,
    ExchangeType,
)
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, PublishError

from chassis.messaging._bus import DeadLetter, Delivery, Handler, RetryPolicy, Subscription
from chassis.messaging._consuming import (
    Outcome,
    check_consumer,
    check_publishable,
    dead_letter_from_headers,
    dead_letter_headers,
    judge,
    new_dead_letter,
    normalize_patterns,
    pattern_matches,
    publish_concurrently,
    read_envelope,
    record_dead_letter,
)
from chassis.messaging._envelope import Envelope
from chassis.messaging._metrics import MESSAGES_PUBLISHED
from chassis.messaging.errors import BrokerUnavailableError, MalformedMessageError

__all__ = [
    "DEAD_LETTER_QUEUE",
    "EXCHANGE",
    "RabbitMqBus",
    "binding_key",
    "consumer_queue",
]

EXCHANGE: Final = "mercato.events"
DEAD_LETTER_QUEUE: Final = "mercato.deadletters"
ATTEMPT_HEADER: Final = "x-mercato-attempt"
_CONTENT_TYPE = "application/cloudevents+json"

_BROKER_ERRORS = (*CONNECTION_EXCEPTIONS, TimeoutError)

log = structlog.get_logger("chassis.messaging")


def binding_key(pattern: str) -> str:
    """`catalog.>` → `catalog.#`; `*` and exact types bind as they are."""
    return pattern[:-1] + "#" if pattern.endswith(">") else pattern


def consumer_queue(consumer: str) -> str:
    return f"mercato.{consumer}"


def _retry_queue(consumer: str, delay_ms: int) -> str:
    return f"mercato.{consumer}.retry.{delay_ms}ms"


def _delay_ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _int_header(headers: Mapping[str, object], name: str, default: int) -> int:
    value = headers.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


@dataclass
class _LetterSession:
    channel: AbstractChannel
    letters: list[tuple[AbstractIncomingMessage, DeadLetter]]

    def find(self, dead_letter_id: str) -> tuple[AbstractIncomingMessage, DeadLetter]:
        for message, letter in self.letters:
            if letter.id == dead_letter_id:
                return message, letter
        raise LookupError(f"no dead letter {dead_letter_id!r}")


@dataclass
class _Consumer:
    name: str
    patterns: tuple[str, ...]
    handler: Handler
    retry: RetryPolicy
    channel: AbstractChannel
    queue: AbstractQueue
    tag: str = ""
    lanes: dict[str, asyncio.Event] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class RabbitMqBus:
    """A `MessageBus` on RabbitMQ; see the module docstring for names and semantics.

    `url` is an AMQP URL (`amqp://user:password@host:5672/vhost`). `publish_timeout` bounds
    every publish and broker call: while the broker is down, publishing raises
    `BrokerUnavailableError` after it; the connection itself reconnects every
    `reconnect_interval` seconds (`aio_pika.connect_robust`), restoring subscriptions.
    """

    def __init__(
        self,
        url: str = "amqp://guest:guest@127.0.0.1:5672/",
        *,
        name: str = "mercato",
        publish_timeout: float = 5.0,
        max_in_flight: int = 256,
        prefetch: int = 32,
        reconnect_interval: float = 1.0,
        start_timeout: float = 10.0,
        error_backoff: float = 0.5,
    ) -> None:
        self.url = url
        self.name = name
        self._publish_timeout = publish_timeout
        self._max_in_flight = max_in_flight
        self._prefetch = prefetch
        self._reconnect_interval = reconnect_interval
        self._start_timeout = start_timeout
        self._error_backoff = error_backoff
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._consumers: list[_Consumer] = []

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        if self._connection is not None:
            return
        try:
            async with asyncio.timeout(self._start_timeout):
                self._connection = await aio_pika.connect_robust(
                    self.url,
                    client_properties={"connection_name": self.name},
                    reconnect_interval=self._reconnect_interval,
                )
                self._channel = await self._connection.channel(on_return_raises=True)
                self._exchange = await self._channel.declare_exchange(
                    EXCHANGE, ExchangeType.TOPIC, durable=True
                )
                await self._channel.declare_queue(DEAD_LETTER_QUEUE, durable=True)
        except Exception as exc:
            await self.close()
            raise BrokerUnavailableError(f"cannot connect to RabbitMQ: {exc!r}") from exc

    async def close(self) -> None:
        """Stop every subscription (unacked messages go back to their queue), disconnect."""
        for consumer in list(self._consumers):
            await self._stop(consumer)
        connection, self._connection = self._connection, None
        self._channel = self._exchange = None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()

    async def ping(self) -> None:
        channel = self._require_channel()
        try:
            async with asyncio.timeout(self._publish_timeout):
                await channel.get_exchange(EXCHANGE, ensure=True)
        except _BROKER_ERRORS as exc:
            raise BrokerUnavailableError(f"RabbitMQ unavailable: {exc!r}") from exc

    def _require_connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise BrokerUnavailableError("the RabbitMQ bus is not started")
        return self._connection

    def _require_channel(self) -> AbstractChannel:
        if self._channel is None:
            raise BrokerUnavailableError("the RabbitMQ bus is not started")
        return self._channel

    # -- publishing ----------------------------------------------------------------------

    async def publish(self, envelope: Envelope) -> None:
        """Return once the broker confirmed the message (publisher confirms)."""
        check_publishable(envelope)
        exchange = self._exchange
        if exchange is None:
            raise BrokerUnavailableError("the RabbitMQ bus is not started")
        message = aio_pika.Message(
            envelope.to_bytes(),
            message_id=envelope.id,
            type=envelope.type,
            content_type=_CONTENT_TYPE,
            delivery_mode=DeliveryMode.PERSISTENT,
            headers={ATTEMPT_HEADER: 1},
        )
        try:
            async with asyncio.timeout(self._publish_timeout):
                # Not mandatory: an event nobody subscribes to yet is not an error.
                await exchange.publish(message, routing_key=envelope.type, mandatory=False)
        except _BROKER_ERRORS as exc:
            raise BrokerUnavailableError(f"cannot publish {envelope.type}: {exc!r}") from exc
        MESSAGES_PUBLISHED.labels(envelope.type).inc()

    async def publish_many(self, envelopes: Sequence[Envelope]) -> list[BaseException | None]:
        """Up to `max_in_flight` publishes wait for their confirms at once, sent in the given order.

        Once the broker proves unavailable, the envelopes not yet sent fail at once with
        the same `BrokerUnavailableError` instead of each waiting out the timeout.
        """
        return await publish_concurrently(
            envelopes, self.publish, max_in_flight=self._max_in_flight
        )

    # -- consuming -----------------------------------------------------------------------

    async def subscribe(
        self,
        consumer: str,
        types: Sequence[str],
        handler: Handler,
        *,
        retry: RetryPolicy = RetryPolicy(),
    ) -> Subscription:
        connection = self._require_connection()
        check_consumer(consumer)
        patterns = normalize_patterns(types)
        name = consumer_queue(consumer)
        channel: AbstractChannel | None = None
        try:
            async with asyncio.timeout(self._start_timeout):
                # A channel per subscription: its prefetch, and closing it gives back
                # exactly this subscriber's unacked messages.
                channel = await connection.channel(on_return_raises=True)
                await channel.set_qos(prefetch_count=self._prefetch)
                exchange = await channel.declare_exchange(
                    EXCHANGE, ExchangeType.TOPIC, durable=True
                )
                queue = await channel.declare_queue(
                    name, durable=True, arguments={"x-queue-type": "quorum"}
                )
                for pattern in patterns:
                    await queue.bind(exchange, routing_key=binding_key(pattern))
                for delay_ms in sorted({_delay_ms(d) for d in retry.backoff} - {0}):
                    await channel.declare_queue(
                        _retry_queue(consumer, delay_ms),
                        durable=True,
                        arguments={
                            "x-message-ttl": delay_ms,
                            "x-dead-letter-exchange": "",
                            "x-dead-letter-routing-key": name,
                        },
                    )
                state = _Consumer(consumer, patterns, handler, retry, channel, queue)
                state.tag = await queue.consume(self._receiver(state), no_ack=False)
        except _BROKER_ERRORS as exc:
            if channel is not None:
                with contextlib.suppress(Exception):
                    await channel.close()
            raise BrokerUnavailableError(f"cannot subscribe {consumer}: {exc!r}") from exc
        self._consumers.append(state)

        async def stop() -> None:
            await self._stop(state)

        return Subscription(consumer=consumer, types=patterns, stop=stop)

    async def _stop(self, state: _Consumer) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self._publish_timeout):
                await state.queue.cancel(state.tag)
        tasks, state.tasks = set(state.tasks), set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Closing the channel returns its unacked messages to the queue, at once.
        with contextlib.suppress(Exception):
            await state.channel.close()
        with contextlib.suppress(ValueError):
            self._consumers.remove(state)

    def _receiver(self, state: _Consumer) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
        async def receive(message: AbstractIncomingMessage) -> None:
            # Called in delivery order, and joins its lane before anything awaits: the lane
            # keeps that order. Handling runs in our own task, so that stopping the
            # subscription (not a dropped connection) is what cancels a handler.
            parsed = read_envelope(message.body)
            key = parsed.subject if isinstance(parsed, Envelope) else f"\0{id(message)}"
            previous = state.lanes.get(key)
            done = state.lanes[key] = asyncio.Event()
            task = asyncio.create_task(self._in_lane(state, message, parsed, previous, done, key))
            state.tasks.add(task)
            task.add_done_callback(state.tasks.discard)

        return receive

    async def _in_lane(
        self,
        state: _Consumer,
        message: AbstractIncomingMessage,
        parsed: Envelope | MalformedMessageError,
        previous: asyncio.Event | None,
        done: asyncio.Event,
        key: str,
    ) -> None:
        try:
            if previous is not None:
                await previous.wait()
            await self._deliver(state, message, parsed)
        finally:
            done.set()
            if state.lanes.get(key) is done:
                del state.lanes[key]

    async def _deliver(
        self,
        state: _Consumer,
        message: AbstractIncomingMessage,
        parsed: Envelope | MalformedMessageError,
    ) -> None:
        if message.exchange == EXCHANGE and not any(
            pattern_matches(pattern, message.routing_key or "") for pattern in state.patterns
        ):
            # A binding left from an earlier subscribe with other patterns.
            with contextlib.suppress(*_BROKER_ERRORS):
                await message.ack()
            return
        headers = dict(message.headers or {})
        attempt = _int_header(headers, ATTEMPT_HEADER, 1) + _int_header(
            headers, "x-delivery-count", 0
        )
        delivery = Delivery(
            attempt=attempt,
            redelivered=bool(message.redelivered) or attempt > 1,
            consumer=state.name,
        )
        verdict = await judge(parsed, delivery, state.handler, state.retry)
        try:
            if verdict.outcome is Outcome.ACK:
                await message.ack()
                return
            if verdict.outcome is Outcome.RETRY:
                await self._schedule_retry(state, message, attempt + 1, verdict.delay)
                await message.ack()
                return
            letter = new_dead_letter(
                consumer=state.name,
                verdict=verdict,
                attempts=attempt,
                raw=message.body,
                parsed=parsed,
            )
            await self._store_dead_letter(state.channel, letter)
            await message.ack()
            record_dead_letter(letter)
        except _BROKER_ERRORS as exc:
            log.warning(
                "cannot settle a message; it will come back",
                consumer=state.name,
                outcome=verdict.outcome.value,
                error=repr(exc),
            )
            await asyncio.sleep(self._error_backoff)
            with contextlib.suppress(*_BROKER_ERRORS):
                await message.nack(requeue=True)

    async def _schedule_retry(
        self, state: _Consumer, message: AbstractIncomingMessage, attempt: int, delay: float
    ) -> None:
        delay_ms = _delay_ms(delay)
        target = _retry_queue(state.name, delay_ms) if delay_ms else consumer_queue(state.name)
        retried = aio_pika.Message(
            message.body,
            message_id=message.message_id,
            type=message.type,
            content_type=message.content_type,
            delivery_mode=DeliveryMode.PERSISTENT,
            headers={ATTEMPT_HEADER: attempt},
        )
        async with asyncio.timeout(self._publish_timeout):
            await state.channel.default_exchange.publish(retried, routing_key=target)

    # -- dead letters --------------------------------------------------------------------

    async def _store_dead_letter(self, channel: AbstractChannel, letter: DeadLetter) -> None:
        message = aio_pika.Message(
            letter.raw,
            message_id=letter.id,
            type=letter.envelope.type if letter.envelope is not None else None,
            delivery_mode=DeliveryMode.PERSISTENT,
            headers=dict(dead_letter_headers(letter)),
        )
        async with asyncio.timeout(self._publish_timeout):
            await channel.default_exchange.publish(message, routing_key=DEAD_LETTER_QUEUE)

    @contextlib.asynccontextmanager
    async def _letter_session(self) -> AsyncIterator[_LetterSession]:
        """Every letter taken unacked on a channel of its own; closing it gives back the rest."""
        connection = self._require_connection()
        channel: AbstractChannel | None = None
        try:
            async with asyncio.timeout(self._publish_timeout):
                channel = await connection.channel(on_return_raises=True)
                queue = await channel.declare_queue(DEAD_LETTER_QUEUE, durable=True)
            letters: list[tuple[AbstractIncomingMessage, DeadLetter]] = []
            while True:
                message = await queue.get(no_ack=False, fail=False, timeout=self._publish_timeout)
                if message is None:
                    break
                headers = dict(message.headers or {})
                letters.append((message, dead_letter_from_headers(headers, message.body)))
            async with asyncio.timeout(self._publish_timeout):
                yield _LetterSession(channel, letters)
        except _BROKER_ERRORS as exc:
            raise BrokerUnavailableError(f"cannot reach the dead letters: {exc!r}") from exc
        finally:
            if channel is not None:
                with contextlib.suppress(Exception):
                    await channel.close()

    async def dead_letters(self, *, consumer: str | None = None) -> list[DeadLetter]:
        if consumer is not None:
            check_consumer(consumer)
        async with self._letter_session() as session:
            return [
                letter
                for _, letter in session.letters
                if consumer is None or letter.consumer == consumer
            ]

    async def replay_dead_letter(self, dead_letter_id: str) -> None:
        async with self._letter_session() as session:
            message, letter = session.find(dead_letter_id)
            replayed = aio_pika.Message(
                letter.raw,
                message_id=letter.envelope.id if letter.envelope is not None else None,
                type=letter.envelope.type if letter.envelope is not None else None,
                content_type=_CONTENT_TYPE,
                delivery_mode=DeliveryMode.PERSISTENT,
                headers={ATTEMPT_HEADER: 1},
            )
            try:
                # Mandatory: if the consumer's queue is gone, the broker returns it.
                await session.channel.default_exchange.publish(
                    replayed, routing_key=consumer_queue(letter.consumer), mandatory=True
                )
            except PublishError:
                raise LookupError(f"consumer {letter.consumer!r} has no queue") from None
            await message.ack()

    async def discard_dead_letter(self, dead_letter_id: str) -> None:
        async with self._letter_session() as session:
            message, _ = session.find(dead_letter_id)
            await message.ack()

    # -- counts --------------------------------------------------------------------------

    async def pending(self, consumer: str) -> int:
        """The ready messages of the consumer's queue (not its unacked ones, nor retries
        waiting in their delay queues)."""
        if not any(state.name == consumer for state in self._consumers):
            raise LookupError(f"consumer {consumer!r} is not subscribed through this bus")
        return await self._message_count(consumer_queue(consumer))

    async def dead_letter_count(self) -> int:
        """The ready letters: a listing running meanwhile holds its letters unacked."""
        return await self._message_count(DEAD_LETTER_QUEUE)

    async def _message_count(self, queue: str) -> int:
        # A channel of its own: a passive declare that fails closes its channel.
        connection = self._require_connection()
        try:
            async with asyncio.timeout(self._publish_timeout):
                channel = await connection.channel()
                try:
                    declared = await channel.declare_queue(queue, passive=True)
                finally:
                    with contextlib.suppress(Exception):
                        await channel.close()
        except _BROKER_ERRORS as exc:
            raise BrokerUnavailableError(f"cannot count {queue}: {exc!r}") from exc
        return declared.declaration_result.message_count or 0
