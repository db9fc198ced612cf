"""A service's messaging in one object: the bus, its outbox relay, its idempotent consumers.

The composition root builds one `Messaging`, declares what the service consumes, and
starts/stops it in the app's lifespan:

    messaging = Messaging.from_url(settings.broker_url, database=database, service="catalog")
    messaging.consume(["identity.user.registered.v1"], apply)   # apply(session, envelope)
    ...
    async with uow:                  # state change and its events in one transaction
        ...; await record_events(session, [messaging.event(type, subject, data)])
        await uow.commit()
    messaging.notify()               # wake the relay now rather than at its next poll

While running, it samples from the broker every `metrics_interval` seconds what only the
broker knows: each consumer's lag (`mercato_consumer_lag_messages`) and the dead letters
waiting in the store (`mercato_dead_letters_stored`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from chassis._database import Database
from chassis.messaging._bus import MessageBus, RetryPolicy, Subscription
from chassis.messaging._envelope import Envelope
from chassis.messaging._factory import bus_from_url
from chassis.messaging._inbox import Apply, idempotent
from chassis.messaging._metrics import CONSUMER_LAG, DEAD_LETTERS_STORED
from chassis.messaging._outbox import OutboxRelay
from chassis.resilience._clock import Sleep

__all__ = ["Messaging"]

_log = structlog.get_logger("chassis.messaging")


@dataclass(frozen=True)
class _Consumer:
    name: str
    types: tuple[str, ...]
    apply: Apply
    retry: RetryPolicy


class Messaging:
    def __init__(
        self,
        *,
        bus: MessageBus,
        database: Database,
        service: str,
        relay: OutboxRelay | None = None,
        metrics_interval: float | None = 15.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.bus = bus
        self.database = database
        self.service = service
        self.relay = relay or OutboxRelay(database, bus)
        self._consumers: list[_Consumer] = []
        self._subscriptions: list[Subscription] = []
        self._metrics_interval = metrics_interval
        self._sleep = sleep
        self._sampler: asyncio.Task[None] | None = None

    @classmethod
    def from_url(cls, url: str, *, database: Database, service: str) -> Messaging:
        return cls(bus=bus_from_url(url, service=service), database=database, service=service)

    def consume(
        self,
        types: Sequence[str],
        apply: Apply,
        *,
        consumer: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        """Handle `types` once each: `apply(session, envelope)` runs in a write transaction
        that also records the message in the inbox (and may record events to publish)."""
        self._consumers.append(
            _Consumer(consumer or self.service, tuple(types), apply, retry or RetryPolicy())
        )

    def event(
        self, type: str, subject: str, data: dict[str, Any], *, cause: Envelope | None = None
    ) -> Envelope:
        """A new envelope from this service; caused by `cause` keeps its correlation."""
        if cause is not None:
            return cause.caused(type, self.service, subject, data)
        return Envelope(type=type, source=self.service, subject=subject, data=data)

    def notify(self) -> None:
        self.relay.notify()

    async def start(self) -> None:
        await self.bus.start()
        await self.relay.start()
        for consumer in self._consumers:
            handler = idempotent(
                self.database, consumer.name, consumer.apply, after_commit=self.relay.notify
            )
            self._subscriptions.append(
                await self.bus.subscribe(
                    consumer.name, consumer.types, handler, retry=consumer.retry
                )
            )
        if self._consumers and self._metrics_interval is not None:
            self._sampler = asyncio.create_task(self._sample_forever(self._metrics_interval))

    async def stop(self) -> None:
        sampler, self._sampler = self._sampler, None
        if sampler is not None:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            await subscription.stop()
        await self.relay.stop()
        await self.bus.close()

    async def ping(self) -> None:
        """For readiness: raises when the broker cannot be reached."""
        await self.bus.ping()

    async def sample_metrics(self) -> None:
        """Read each consumer's lag and the stored dead letters from the broker into the
        gauges (a service without consumers has neither to report)."""
        if not self._consumers:
            return
        for name in dict.fromkeys(consumer.name for consumer in self._consumers):
            CONSUMER_LAG.labels(name).set(await self.bus.pending(name))
        DEAD_LETTERS_STORED.set(await self.bus.dead_letter_count())

    async def _sample_forever(self, interval: float) -> None:
        failing = False
        while True:
            try:
                await self.sample_metrics()
                failing = False
            except Exception as error:  # the broker is down: the gauges keep their last values
                if not failing:
                    _log.warning("sampling broker metrics failed", error=repr(error))
                failing = True
            await self._sleep(interval)
