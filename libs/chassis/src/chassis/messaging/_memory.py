"""A message bus in one process: the fake for unit tests, with the brokers' semantics.

Each consumer name is a durable group with its own queue: it receives every matching
message published after its first `subscribe`, even while no subscriber is running, and
its subscribers share the queue. Each subscriber handles one message at a time, so the
order per subject holds for one subscriber. A retry waits its backoff on a timer; a
subscriber stopped mid-handling puts the message back at the head of the queue as a
redelivery at once (there is no `ack_wait` to wait for in one process).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from chassis.messaging._bus import DeadLetter, Delivery, Handler, RetryPolicy, Subscription
from chassis.messaging._consuming import (
    UNKNOWN_TYPE,
    Outcome,
    check_consumer,
    check_publishable,
    judge,
    new_dead_letter,
    normalize_patterns,
    pattern_matches,
    read_envelope,
    record_dead_letter,
)
from chassis.messaging._envelope import Envelope
from chassis.messaging._metrics import MESSAGES_PUBLISHED
from chassis.messaging.errors import BrokerUnavailableError

__all__ = ["InMemoryMessageBus"]


@dataclass
class _Message:
    raw: bytes
    type: str
    attempt: int = 1


@dataclass
class _Group:
    consumer: str
    patterns: tuple[str, ...]
    queue: deque[_Message] = field(default_factory=deque)
    ready: asyncio.Condition = field(default_factory=asyncio.Condition)

    def matches(self, type_: str) -> bool:
        return any(pattern_matches(pattern, type_) for pattern in self.patterns)

    async def put(self, message: _Message, *, first: bool = False) -> None:
        async with self.ready:
            if first:
                self.queue.appendleft(message)
            else:
                self.queue.append(message)
            self.ready.notify()

    async def take(self) -> _Message:
        async with self.ready:
            await self.ready.wait_for(lambda: bool(self.queue))
            return self.queue.popleft()


class InMemoryMessageBus:
    """A `MessageBus` in memory, with the same contract as the broker adapters."""

    def __init__(self) -> None:
        self._groups: dict[str, _Group] = {}
        self._letters: dict[str, DeadLetter] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def start(self) -> None:
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        tasks, self._tasks = self._tasks, set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def ping(self) -> None:
        if self._closed:
            raise BrokerUnavailableError("the in-memory bus is closed")

    # -- publishing ----------------------------------------------------------------------

    async def publish(self, envelope: Envelope) -> None:
        await self.ping()
        check_publishable(envelope)
        await self.inject(envelope.type, envelope.to_bytes())
        MESSAGES_PUBLISHED.labels(envelope.type).inc()

    async def publish_many(self, envelopes: Sequence[Envelope]) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = []
        for envelope in envelopes:
            try:
                await self.publish(envelope)
            except Exception as error:
                outcomes.append(error)
            else:
                outcomes.append(None)
        return outcomes

    async def inject(self, type_: str, raw: bytes) -> None:
        """Deliver raw bytes as if published with `type_` (tests use it for bad bodies)."""
        for group in self._groups.values():
            if group.matches(type_):
                await group.put(_Message(raw, type_))

    # -- consuming -----------------------------------------------------------------------

    async def subscribe(
        self,
        consumer: str,
        types: Sequence[str],
        handler: Handler,
        *,
        retry: RetryPolicy = RetryPolicy(),
    ) -> Subscription:
        await self.ping()
        check_consumer(consumer)
        patterns = normalize_patterns(types)
        group = self._groups.get(consumer)
        if group is None:
            group = self._groups[consumer] = _Group(consumer, patterns)
        group.patterns = patterns
        task = asyncio.create_task(
            self._consume(group, handler, retry), name=f"memory-bus-consume-{consumer}"
        )
        self._tasks.add(task)

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._tasks.discard(task)

        return Subscription(consumer=consumer, types=patterns, stop=stop)

    async def _consume(self, group: _Group, handler: Handler, retry: RetryPolicy) -> None:
        while True:
            message = await group.take()
            delivery = Delivery(
                attempt=message.attempt, redelivered=message.attempt > 1, consumer=group.consumer
            )
            parsed = read_envelope(message.raw)
            try:
                verdict = await judge(parsed, delivery, handler, retry)
            except asyncio.CancelledError:
                # Stopped mid-handling: the message was never acked, so it comes back.
                message.attempt += 1
                await group.put(message, first=True)
                raise
            if verdict.outcome is Outcome.RETRY:
                message.attempt += 1
                self._later(verdict.delay, group, message)
            elif verdict.outcome is Outcome.DEAD_LETTER:
                letter = new_dead_letter(
                    consumer=group.consumer,
                    verdict=verdict,
                    attempts=message.attempt,
                    raw=message.raw,
                    parsed=parsed,
                )
                self._letters[letter.id] = letter
                record_dead_letter(letter)

    def _later(self, delay: float, group: _Group, message: _Message) -> None:
        async def wait_then_put() -> None:
            await asyncio.sleep(delay)
            await group.put(message)

        task = asyncio.create_task(wait_then_put())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- dead letters --------------------------------------------------------------------

    async def dead_letters(self, *, consumer: str | None = None) -> list[DeadLetter]:
        return [
            letter
            for letter in self._letters.values()
            if consumer is None or letter.consumer == consumer
        ]

    async def replay_dead_letter(self, dead_letter_id: str) -> None:
        letter = self._find_letter(dead_letter_id)
        group = self._groups.get(letter.consumer)
        if group is None:
            raise LookupError(f"consumer {letter.consumer!r} never subscribed")
        del self._letters[dead_letter_id]
        type_ = letter.envelope.type if letter.envelope is not None else UNKNOWN_TYPE
        await group.put(_Message(letter.raw, type_))

    async def discard_dead_letter(self, dead_letter_id: str) -> None:
        self._find_letter(dead_letter_id)
        del self._letters[dead_letter_id]

    # -- counts --------------------------------------------------------------------------

    async def pending(self, consumer: str) -> int:
        group = self._groups.get(consumer)
        if group is None:
            raise LookupError(f"consumer {consumer!r} never subscribed")
        return len(group.queue)  # retries waiting out their backoff are not there yet

    async def dead_letter_count(self) -> int:
        return len(self._letters)

    def _find_letter(self, dead_letter_id: str) -> DeadLetter:
        try:
            return self._letters[dead_letter_id]
        except KeyError:
            raise LookupError(f"no dead letter {dead_letter_id!r}") from None
