"""The message bus on NATS JetStream (the default broker), on nats-py directly.

Built on nats-py rather than FastStream: we need explicit control over acks, nak-with-delay,
`Nats-Msg-Id`, publish acks and dead-lettering, and FastStream's abstractions hide those.

Names on the broker (`<type>` keeps its dots, so subjects follow the type's segments):

- an envelope goes to subject `mercato.<type>`, e.g. `mercato.catalog.product.created.v1`,
  with header `Nats-Msg-Id` = envelope id (the stream drops a duplicate inside its window);
- one stream per domain, `MERCATO_<DOMAIN>` over `mercato.<domain>.>`, created on the first
  publish or subscribe that needs it;
- a consumer name is a durable pull consumer of that name on every domain stream its
  patterns touch, filtered on `mercato.<pattern>` (`catalog.product.created.*` →
  `mercato.catalog.product.created.*`, `catalog.>` → `mercato.catalog.>`; `*` is one
  segment, `>` one or more, on every adapter), plus one on the work-queue stream
  `MERCATO_REPLAY` filtered on `mercato.replay.<consumer>.>`;
- dead letters are messages of stream `MERCATO_DEADLETTERS` on `mercato.deadletter.<consumer>`:
  the body is the original bytes, the rest is in `Mercato-*` headers. Listing reads them by
  sequence without a consumer; replay publishes the original bytes to
  `mercato.replay.<consumer>.<type>` (only that consumer's durable reads it) and deletes
  the letter; discard deletes it.

A new durable starts with messages published after it was created (`DeliverPolicy.NEW`), as
a new RabbitMQ queue does; its filters are those of the latest `subscribe` with its name.
Stopping a subscription naks what it fetched but did not settle, for redelivery at once; a
consumer that dies instead gets its messages redelivered after `ack_wait`.

Attempts are the server's `num_delivered`; a retry is a `nak(delay=backoff)`. `max_deliver`
is unlimited on purpose: the adapter dead-letters once attempts pass `max_attempts`, so the
server never drops a message silently (which it would at `max_deliver`, e.g. after storing
its dead letter failed).

Ordering: each subscription fetches a batch and handles it in one lane per envelope
subject, lanes concurrently, each lane in stream order; so one subscriber sees one
subject's messages in order. Retries and competing subscribers of one group can reorder.
Messages waiting in a lane get in-progress acks, so `ack_wait` measures handling only.

Outages: nats-py reconnects forever; pull loops treat every fetch error as passing, back
off briefly and, if the broker came back without its store, recreate stream and durable.
Publishing while disconnected raises `BrokerUnavailableError` after `publish_timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import nats
import nats.errors
import nats.js.errors
import structlog
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from chassis.messaging._bus import DeadLetter, Delivery, Handler, RetryPolicy, Subscription
from chassis.messaging._consuming import (
    RESERVED_DOMAINS,
    UNKNOWN_TYPE,
    Outcome,
    check_consumer,
    check_publishable,
    dead_letter_from_headers,
    dead_letter_headers,
    judge,
    new_dead_letter,
    normalize_patterns,
    publish_concurrently,
    read_envelope,
    record_dead_letter,
)
from chassis.messaging._envelope import Envelope
from chassis.messaging._metrics import MESSAGES_PUBLISHED
from chassis.messaging.errors import BrokerUnavailableError, MalformedMessageError

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

__all__ = [
    "DEAD_LETTER_STREAM",
    "REPLAY_STREAM",
    "NatsJetStreamBus",
    "domain_stream",
    "subject_for",
]

SUBJECT_PREFIX: Final = "mercato"
DEAD_LETTER_STREAM: Final = "MERCATO_DEADLETTERS"
REPLAY_STREAM: Final = "MERCATO_REPLAY"
_DUPLICATE_WINDOW = 120.0  # seconds: how long the stream remembers a Nats-Msg-Id
_LETTER_IDS = uuid.UUID("6f1c0f55-0d7a-4d53-9a1e-3c7f1b0e9a10")  # uuid5 namespace
_IDLE_CHECK = 10.0  # seconds of empty fetches before checking the consumer still exists
_BUSY_FETCH_TIMEOUT = 0.1  # seconds: the most a batch waits to fill while messages flow

# What nats-py raises when the broker is unreachable, slow or refuses: all retryable.
_BROKER_ERRORS = (nats.errors.Error, TimeoutError, OSError)

log = structlog.get_logger("chassis.messaging")


def subject_for(type_or_pattern: str) -> str:
    """`catalog.product.created.v1` → `mercato.catalog.product.created.v1` (patterns alike)."""
    return f"{SUBJECT_PREFIX}.{type_or_pattern}"


def domain_stream(domain: str) -> str:
    return f"MERCATO_{domain.upper()}"


def _dead_letter_subject(consumer: str) -> str:
    return f"{SUBJECT_PREFIX}.deadletter.{consumer}"


def _replay_subject(consumer: str, type_: str) -> str:
    return f"{SUBJECT_PREFIX}.replay.{consumer}.{type_}"


@dataclass
class _Pull:
    stream: str
    durable: str
    config: ConsumerConfig
    psub: JetStreamContext.PullSubscription | None = None


@dataclass
class _Consumer:
    name: str
    handler: Handler
    retry: RetryPolicy
    pulls: list[_Pull]
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # Set before the pull tasks are cancelled: nats-py's fetch can swallow a cancellation
    # (asyncio.wait_for racing a message), and the loop must end all the same.
    stopping: bool = False


class NatsJetStreamBus:
    """A `MessageBus` on NATS JetStream; see the module docstring for names and semantics.

    `publish_timeout` bounds a publish (and every JetStream API call): while the broker is
    down, publishing raises `BrokerUnavailableError` after it rather than hanging.
    `max_in_flight` is how many publishes `publish_many` keeps waiting for their acks.
    """

    def __init__(
        self,
        servers: str | Sequence[str] = "nats://127.0.0.1:4222",
        *,
        name: str = "mercato",
        publish_timeout: float = 5.0,
        max_in_flight: int = 256,
        fetch_batch: int = 32,
        fetch_timeout: float = 2.0,
        reconnect_time_wait: float = 1.0,
        start_timeout: float = 10.0,
        error_backoff: float = 0.5,
    ) -> None:
        self.servers = [servers] if isinstance(servers, str) else list(servers)
        self.name = name
        self._publish_timeout = publish_timeout
        self._max_in_flight = max_in_flight
        self._fetch_batch = fetch_batch
        self._fetch_timeout = fetch_timeout
        self._reconnect_time_wait = reconnect_time_wait
        self._start_timeout = start_timeout
        self._error_backoff = error_backoff
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._streams: set[str] = set()  # streams known to exist
        self._stream_locks: dict[str, asyncio.Lock] = {}
        self._consumers: list[_Consumer] = []
        self._closing = False

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (bounded by `start_timeout`); the client then reconnects forever."""
        if self._nc is not None:
            return
        self._closing = False
        try:
            async with asyncio.timeout(self._start_timeout):
                self._nc = await nats.connect(
                    self.servers,
                    name=self.name,
                    connect_timeout=2,
                    reconnect_time_wait=self._reconnect_time_wait,
                    max_reconnect_attempts=-1,  # a service outlives any broker outage
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                    error_cb=self._on_error,
                )
                self._js = self._nc.jetstream(timeout=self._publish_timeout)
                await self._js.account_info()  # fails unless JetStream is enabled
        except Exception as exc:
            await self.close()
            raise BrokerUnavailableError(
                f"cannot connect to NATS JetStream at {', '.join(self.servers)}: {exc!r}"
            ) from exc

    async def close(self) -> None:
        """Stop every subscription (their unsettled messages go back), then disconnect."""
        self._closing = True
        for consumer in list(self._consumers):
            await self._stop(consumer)
        nc, self._nc, self._js = self._nc, None, None
        self._streams.clear()
        if nc is None:
            return
        with contextlib.suppress(Exception):
            if nc.is_connected:
                await nc.flush(timeout=1)
        with contextlib.suppress(Exception):
            await nc.close()

    async def ping(self) -> None:
        js = self._require_js()
        try:
            await js.account_info()
        except _BROKER_ERRORS as exc:
            raise BrokerUnavailableError(f"NATS JetStream unavailable: {exc!r}") from exc

    async def _on_disconnected(self) -> None:
        if not self._closing:
            log.warning("message bus disconnected from NATS", bus=self.name)

    async def _on_reconnected(self) -> None:
        log.info("message bus reconnected to NATS", bus=self.name)

    async def _on_error(self, exc: Exception) -> None:
        # nats-py reports every failed reconnect attempt here: expected noise in an outage.
        log.debug("nats client error", error=repr(exc))

    def _require_js(self) -> JetStreamContext:
        if self._js is None:
            raise BrokerUnavailableError("the NATS bus is not started")
        return self._js

    # -- streams -------------------------------------------------------------------------

    async def _ensure_stream(
        self,
        name: str,
        subjects: list[str],
        *,
        retention: RetentionPolicy = RetentionPolicy.LIMITS,
    ) -> None:
        if name in self._streams:
            return
        js = self._require_js()
        # One look-up per stream, however many publishes wait for it.
        async with self._stream_locks.setdefault(name, asyncio.Lock()):
            if name in self._streams:
                return
            try:
                await js.stream_info(name)
            except nats.js.errors.NotFoundError:
                config = StreamConfig(
                    name=name,
                    subjects=subjects,
                    retention=retention,
                    storage=StorageType.FILE,
                    duplicate_window=_DUPLICATE_WINDOW,
                )
                try:
                    await js.add_stream(config)
                except nats.js.errors.BadRequestError:
                    await js.stream_info(name)  # another process created it meanwhile
            self._streams.add(name)

    async def _ensure_domain(self, domain: str) -> str:
        stream = domain_stream(domain)
        await self._ensure_stream(stream, [subject_for(f"{domain}.>")])
        return stream

    # -- publishing ----------------------------------------------------------------------

    async def publish(self, envelope: Envelope) -> None:
        check_publishable(envelope)
        js = self._require_js()
        subject = subject_for(envelope.type)
        payload = envelope.to_bytes()
        headers = {"Nats-Msg-Id": envelope.id}
        try:
            stream = await self._ensure_domain(envelope.message_type.domain)
            try:
                await js.publish(subject, payload, timeout=self._publish_timeout, headers=headers)
            except nats.js.errors.NoStreamResponseError:
                # The stream vanished (a broker that came back without its store).
                self._streams.discard(stream)
                await self._ensure_domain(envelope.message_type.domain)
                await js.publish(subject, payload, timeout=self._publish_timeout, headers=headers)
        except _BROKER_ERRORS as exc:
            raise BrokerUnavailableError(f"cannot publish {envelope.type}: {exc!r}") from exc
        MESSAGES_PUBLISHED.labels(envelope.type).inc()

    async def publish_many(self, envelopes: Sequence[Envelope]) -> list[BaseException | None]:
        """Up to `max_in_flight` publishes wait for their acks at once, sent in the given order.

        Once the broker proves unavailable, the envelopes not yet sent fail at once with
        the same `BrokerUnavailableError` instead of each waiting out the timeout.
        """
        unavailable: BrokerUnavailableError | None = None
        # Streams first: then every publish goes out without waiting, in the given order.
        domains = {e.message_type.domain for e in envelopes} - RESERVED_DOMAINS
        try:
            for domain in sorted(domains):
                await self._ensure_domain(domain)
        except _BROKER_ERRORS as exc:
            unavailable = BrokerUnavailableError(f"cannot publish: {exc!r}")

        return await publish_concurrently(
            envelopes, self.publish, max_in_flight=self._max_in_flight, unavailable=unavailable
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
        js = self._require_js()
        check_consumer(consumer)
        patterns = normalize_patterns(types)
        by_domain: dict[str, list[str]] = {}
        for pattern in patterns:
            by_domain.setdefault(pattern.split(".", 1)[0], []).append(subject_for(pattern))
        pulls = [
            _Pull(domain_stream(domain), consumer, _consumer_config(consumer, filters, retry))
            for domain, filters in by_domain.items()
        ]
        pulls.append(
            _Pull(
                REPLAY_STREAM,
                consumer,
                _consumer_config(
                    consumer,
                    [_replay_subject(consumer, ">")],
                    retry,
                    deliver=DeliverPolicy.ALL,  # replays wait for the consumer to come back
                ),
            )
        )
        state = _Consumer(consumer, handler, retry, pulls)
        try:
            for pull in pulls:
                await self._ensure_consumer(pull)
                pull.psub = await js.pull_subscribe_bind(durable=consumer, stream=pull.stream)
        except _BROKER_ERRORS as exc:
            await self._stop(state)
            raise BrokerUnavailableError(f"cannot subscribe {consumer}: {exc!r}") from exc
        state.tasks = [
            asyncio.create_task(self._pull_loop(state, pull), name=f"nats-bus-{consumer}")
            for pull in pulls
        ]
        self._consumers.append(state)

        async def stop() -> None:
            await self._stop(state)

        return Subscription(consumer=consumer, types=patterns, stop=stop)

    async def _ensure_consumer(self, pull: _Pull) -> None:
        if pull.stream == REPLAY_STREAM:
            await self._ensure_stream(
                REPLAY_STREAM,
                [subject_for("replay.>")],
                retention=RetentionPolicy.WORK_QUEUE,
            )
        else:
            await self._ensure_stream(pull.stream, [subject_for(f"{_domain_of(pull)}.>")])
        # Creates the durable, or updates it to these filters and this retry policy.
        await self._require_js().add_consumer(pull.stream, pull.config)

    async def _stop(self, state: _Consumer) -> None:
        state.stopping = True
        tasks, state.tasks = state.tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for pull in state.pulls:
            psub, pull.psub = pull.psub, None
            if psub is not None:
                with contextlib.suppress(Exception):
                    await psub.unsubscribe()
        with contextlib.suppress(ValueError):
            self._consumers.remove(state)

    async def _pull_loop(self, state: _Consumer, pull: _Pull) -> None:
        """Fetch and handle batches until cancelled; no broker error ends the loop."""
        idle_since = time.monotonic()
        failing = False
        busy = False
        while not state.stopping:
            psub = pull.psub
            assert psub is not None
            # nats-py's fetch(n) returns at once what is there, but when nothing is, it waits
            # out its whole timeout after the first arrival. So: idle, wait for one message
            # (returned the moment it arrives); busy, take batches with a short timeout.
            try:
                if busy:
                    msgs = await psub.fetch(self._fetch_batch, timeout=_BUSY_FETCH_TIMEOUT)
                else:
                    msgs = await psub.fetch(1, timeout=self._fetch_timeout)
            except TimeoutError:  # nothing within the timeout (or a reconnect meanwhile)
                busy = False
                if time.monotonic() - idle_since > _IDLE_CHECK:
                    idle_since = time.monotonic()
                    await self._check_consumer(pull)
                continue
            except Exception as exc:
                if not failing:
                    log.warning(
                        "fetching messages failed; retrying",
                        consumer=state.name,
                        stream=pull.stream,
                        error=repr(exc),
                    )
                failing = True
                await asyncio.sleep(self._error_backoff)
                await self._check_consumer(pull)
                continue
            failing = False
            busy = True
            idle_since = time.monotonic()
            if state.stopping:  # a swallowed cancellation: leave the batch for redelivery
                return
            try:
                await self._handle_batch(state, msgs)
            except Exception:
                # A bug of ours must not end consumption: the broker redelivers the batch.
                log.exception("handling a batch failed", consumer=state.name)

    async def _check_consumer(self, pull: _Pull) -> None:
        """Recreate the stream and durable if the broker lost them; ignore other errors."""
        js = self._js
        if js is None:
            return
        try:
            await js.consumer_info(pull.stream, pull.durable)
        except nats.js.errors.NotFoundError:
            self._streams.discard(pull.stream)
            with contextlib.suppress(*_BROKER_ERRORS):
                await self._ensure_consumer(pull)
                log.warning("recreated a missing consumer", stream=pull.stream)
        except _BROKER_ERRORS:
            pass

    async def _handle_batch(self, state: _Consumer, msgs: list[Msg]) -> None:
        lanes: dict[str, list[tuple[Msg, Envelope | MalformedMessageError]]] = {}
        for msg in msgs:
            parsed = read_envelope(msg.data)
            key = parsed.subject if isinstance(parsed, Envelope) else f"\0{id(msg)}"
            lanes.setdefault(key, []).append((msg, parsed))
        # Keyed by id(): nats-py messages are unhashable.
        unsettled = {id(msg): msg for msg in msgs}
        waiting = dict(unsettled)
        keepalive = asyncio.create_task(self._keep_alive(waiting, state.retry.ack_wait))
        try:
            await asyncio.gather(
                *(self._run_lane(state, lane, waiting, unsettled) for lane in lanes.values())
            )
        finally:
            keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keepalive
            # Stopped mid-batch: give back what was not settled, for redelivery now.
            for msg in unsettled.values():
                with contextlib.suppress(Exception):
                    await msg.nak()

    async def _keep_alive(self, waiting: dict[int, Msg], ack_wait: float) -> None:
        while True:
            await asyncio.sleep(max(ack_wait / 3, 0.05))
            for msg in list(waiting.values()):
                with contextlib.suppress(Exception):
                    await msg.in_progress()

    async def _run_lane(
        self,
        state: _Consumer,
        lane: list[tuple[Msg, Envelope | MalformedMessageError]],
        waiting: dict[int, Msg],
        unsettled: dict[int, Msg],
    ) -> None:
        for msg, parsed in lane:
            waiting.pop(id(msg), None)
            await self._deliver(state, msg, parsed)
            unsettled.pop(id(msg), None)

    async def _deliver(
        self, state: _Consumer, msg: Msg, parsed: Envelope | MalformedMessageError
    ) -> None:
        metadata = msg.metadata
        attempt = metadata.num_delivered or 1
        delivery = Delivery(attempt=attempt, redelivered=attempt > 1, consumer=state.name)
        verdict = await judge(parsed, delivery, state.handler, state.retry)
        try:
            if verdict.outcome is Outcome.ACK:
                await msg.ack()
            elif verdict.outcome is Outcome.RETRY:
                await msg.nak(delay=verdict.delay)
            else:
                source = f"{metadata.stream}:{metadata.sequence.stream}:{state.name}"
                letter = new_dead_letter(
                    consumer=state.name,
                    verdict=verdict,
                    attempts=attempt,
                    raw=msg.data,
                    parsed=parsed,
                    letter_id=uuid.uuid5(_LETTER_IDS, source).hex,
                )
                try:
                    await self._store_dead_letter(letter)
                except _BROKER_ERRORS as exc:
                    log.error(
                        "cannot store a dead letter; the message will come back",
                        consumer=state.name,
                        error=repr(exc),
                    )
                    await msg.nak(delay=max(state.retry.backoff, default=1.0))
                    return
                await msg.ack()
                record_dead_letter(letter)
        except Exception as exc:
            # The broker redelivers an unsettled message after ack_wait.
            log.warning("cannot settle a message", consumer=state.name, error=repr(exc))

    # -- dead letters --------------------------------------------------------------------

    async def _store_dead_letter(self, letter: DeadLetter) -> None:
        js = self._require_js()
        await self._ensure_stream(DEAD_LETTER_STREAM, [subject_for("deadletter.>")])
        # The letter id doubles as Nats-Msg-Id: a dead-lettering repeated after a crash
        # (same stream message, same consumer) is stored once.
        headers = dead_letter_headers(letter) | {"Nats-Msg-Id": letter.id}
        await js.publish(
            _dead_letter_subject(letter.consumer),
            letter.raw,
            timeout=self._publish_timeout,
            headers=headers,
        )

    async def _scan_letters(self, consumer: str | None) -> list[tuple[int, DeadLetter]]:
        js = self._require_js()
        try:
            info = await js.stream_info(DEAD_LETTER_STREAM)
        except nats.js.errors.NotFoundError:
            return []
        subject = _dead_letter_subject(consumer) if consumer else subject_for("deadletter.>")
        found: list[tuple[int, DeadLetter]] = []
        seq = max(info.state.first_seq, 1)
        while seq <= info.state.last_seq:
            try:
                raw = await js.get_msg(DEAD_LETTER_STREAM, seq=seq, subject=subject, next=True)
            except nats.js.errors.NotFoundError:
                break
            headers: dict[str, Any] = dict(raw.headers or {})
            found.append((raw.seq or seq, dead_letter_from_headers(headers, raw.data or b"")))
            seq = (raw.seq or seq) + 1
        return found

    async def _find_letter(self, dead_letter_id: str) -> tuple[int, DeadLetter]:
        for seq, letter in await self._scan_letters(None):
            if letter.id == dead_letter_id:
                return seq, letter
        raise LookupError(f"no dead letter {dead_letter_id!r}")

    async def dead_letters(self, *, consumer: str | None = None) -> list[DeadLetter]:
        if consumer is not None:
            check_consumer(consumer)
        try:
            return [letter for _, letter in await self._scan_letters(consumer)]
        except _BROKER_ERRORS as exc:
            raise BrokerUnavailableError(f"cannot read dead letters: {exc!r}") from exc

    async def replay_dead_letter(self, dead_letter_id: str) -> None:
        js = self._require_js()
        try:
            seq, letter = await self._find_letter(dead_letter_id)
            type_ = letter.envelope.type if letter.envelope is not None else UNKNOWN_TYPE
            try:
                await js.consumer_info(REPLAY_STREAM, letter.consumer)
            except nats.js.errors.NotFoundError:
                raise LookupError(f"consumer {letter.consumer!r} never subscribed") from None
            await self._ensure_stream(
                REPLAY_STREAM, [subject_for("replay.>")], retention=RetentionPolicy.WORK_QUEUE
            )
            await js.publish(
                _replay_subject(letter.consumer, type_),
                letter.raw,
                timeout=self._publish_timeout,
                # A replay retried after a lost ack is not delivered twice.
                headers={"Nats-Msg-Id": f"replay-{letter.id}"},
            )
            await js.delete_msg(DEAD_LETTER_STREAM, seq)
        except _BROKER_ERRORS as exc:
            raise BrokerUnavailableError(f"cannot replay {dead_letter_id}: {exc!r}") from exc

    async def discard_dead_letter(self, dead_letter_id: str) -> None:
        js = self._require_js()
        try:
            seq, _ = await self._find_letter(dead_letter_id)
            await js.delete_msg(DEAD_LETTER_STREAM, seq)
        except _BROKER_ERRORS as exc:
            raise BrokerUnavailableError(f"cannot discard {dead_letter_id}: {exc!r}") from exc

    # -- counts --------------------------------------------------------------------------

    async def pending(self, consumer: str) -> int:
        """The durable's `num_pending` on every stream it reads (domains and replays)."""
        state = next((c for c in self._consumers if c.name == consumer), None)
        if state is None:
            raise LookupError(f"consumer {consumer!r} is not subscribed through this bus")
        js = self._require_js()
        try:
            infos = [await js.consumer_info(pull.stream, pull.durable) for pull in state.pulls]
        except _BROKER_ERRORS as exc:
            raise BrokerUnavailableError(f"cannot read consumer {consumer}: {exc!r}") from exc
        return sum(info.num_pending or 0 for info in infos)

    async def dead_letter_count(self) -> int:
        js = self._require_js()
        try:
            info = await js.stream_info(DEAD_LETTER_STREAM)
        except nats.js.errors.NotFoundError:
            return 0
        except _BROKER_ERRORS as exc:
            raise BrokerUnavailableError(f"cannot read dead letters: {exc!r}") from exc
        return info.state.messages


def _consumer_config(
    consumer: str,
    filters: list[str],
    retry: RetryPolicy,
    *,
    deliver: DeliverPolicy = DeliverPolicy.NEW,
) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=consumer,
        deliver_policy=deliver,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=retry.ack_wait,
        max_deliver=-1,
        filter_subject=filters[0] if len(filters) == 1 else None,
        filter_subjects=filters if len(filters) > 1 else None,
    )


def _domain_of(pull: _Pull) -> str:
    filters = pull.config.filter_subjects or [pull.config.filter_subject or ""]
    return filters[0].split(".")[1]
