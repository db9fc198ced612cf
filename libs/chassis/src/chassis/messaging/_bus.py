"""The message bus port: what services need from a broker, whatever the broker is."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from chassis.messaging._envelope import Envelope

__all__ = [
    "DeadLetter",
    "Delivery",
    "Handler",
    "MessageBus",
    "RetryPolicy",
    "Subscription",
]


@dataclass(frozen=True)
class Delivery:
    """Broker facts about one delivery of an envelope."""

    attempt: int  # 1 on first delivery
    redelivered: bool
    consumer: str


Handler = Callable[[Envelope, Delivery], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """How a consumer retries a failing message before dead-lettering it."""

    max_attempts: int = 5
    backoff: Sequence[float] = (0.2, 1.0, 5.0, 15.0)  # seconds before attempt 2, 3, …
    ack_wait: float = 30.0  # unacked this long → redelivered (a crashed or stuck consumer)


@dataclass(frozen=True)
class DeadLetter:
    id: str  # the dead letter's own id in the store
    consumer: str
    reason: str
    attempts: int
    envelope: Envelope | None  # None when the original could not be parsed
    raw: bytes  # the original message bytes, always kept
    dead_at: datetime


@dataclass
class Subscription:
    consumer: str
    types: Sequence[str]
    stop: Callable[[], Awaitable[None]] = field(repr=False)


class MessageBus(Protocol):
    """Publish envelopes and consume them, at least once, with dead letters.

    Types in `subscribe` are exact types (`catalog.product.created.v1`) or NATS-style
    patterns: `*` is one segment (`catalog.product.*.v1`), a trailing `>` one or more
    (`catalog.product.>`, `catalog.>`).
    Consumers with the same `consumer` name share the work (a competing-consumer group).
    """

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None: ...

    async def publish(self, envelope: Envelope) -> None:
        """Return once the broker has durably accepted it (ack/confirm)."""

    async def publish_many(self, envelopes: Sequence[Envelope]) -> list[BaseException | None]:
        """Publish with many in flight; one outcome per envelope, in order."""

    async def subscribe(
        self,
        consumer: str,
        types: Sequence[str],
        handler: Handler,
        *,
        retry: RetryPolicy = ...,
    ) -> Subscription: ...

    async def dead_letters(self, *, consumer: str | None = None) -> list[DeadLetter]: ...
    async def replay_dead_letter(self, dead_letter_id: str) -> None:
        """Deliver the original envelope again to its consumer only, and remove the letter."""

    async def discard_dead_letter(self, dead_letter_id: str) -> None: ...

    # For metrics: broker-side counts, cheap enough to sample every few seconds.
    async def pending(self, consumer: str) -> int:
        """Messages waiting for `consumer` that the broker has not delivered yet (its lag).

        Raises `LookupError` if `consumer` is not subscribed through this bus."""

    async def dead_letter_count(self) -> int:
        """How many dead letters the store holds, all consumers together."""
