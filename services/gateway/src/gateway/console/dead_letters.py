"""Dead letters, straight from the broker, as `mercato dlq` reads them.

The console opens its own connection to the broker (`bus_from_url`, the same setting the
services use) on first use and keeps it until the gateway stops. A letter's message is shown
with secrets blanked (payment tokens travel in `payments.authorize_payment.v1`): the console
is for operators, who need the shape of a poison message, not a customer's card token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from chassis.errors import NotFoundError
from chassis.messaging import BrokerUnavailableError, DeadLetter, MessageBus, bus_from_url
from gateway.console.errors import UpstreamUnavailableError

__all__ = ["DeadLetters", "redact"]

_SECRET_KEYS = frozenset(
    {
        "password", "token", "access_token", "refresh_token", "authorization", "secret",
        "api_key", "card", "card_number", "cvc", "payment_token",
    }
)  # fmt: skip
_CONNECT_TIMEOUT = 5.0


def redact(value: Any) -> Any:
    """`value` with the values of secret-looking keys replaced, at any depth."""
    if isinstance(value, dict):
        return {
            key: "[redacted]" if str(key).lower() in _SECRET_KEYS else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def describe(letter: DeadLetter) -> dict[str, Any]:
    envelope = letter.envelope
    body: dict[str, Any] = {
        "id": letter.id,
        "consumer": letter.consumer,
        "type": envelope.type if envelope else None,
        "subject": envelope.subject if envelope else None,
        "message_id": envelope.id if envelope else None,
        "correlation_id": envelope.correlation_id if envelope else None,
        "attempts": letter.attempts,
        "reason": letter.reason,
        "dead_at": letter.dead_at.isoformat(),
    }
    if envelope is not None:
        body["envelope"] = redact(envelope.to_dict())
    else:
        body["raw"] = letter.raw[:2000].decode("utf-8", "replace")
    return body


class DeadLetters:
    def __init__(self, open_bus: Callable[[], MessageBus]) -> None:
        self._open_bus = open_bus
        self._bus: MessageBus | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def on_broker(cls, broker_url: str) -> DeadLetters:
        return cls(lambda: bus_from_url(broker_url, service="gateway-console"))

    async def _connected(self) -> MessageBus:
        async with self._lock:
            if self._bus is None:
                bus = self._open_bus()
                try:
                    await asyncio.wait_for(bus.start(), _CONNECT_TIMEOUT)
                except (BrokerUnavailableError, TimeoutError, OSError) as error:
                    await bus.close()
                    raise UpstreamUnavailableError(
                        f"the broker does not answer ({type(error).__name__})"
                    ) from None
                self._bus = bus
            return self._bus

    async def listing(self, consumer: str | None = None) -> list[dict[str, Any]]:
        bus = await self._connected()
        try:
            letters = await bus.dead_letters(consumer=consumer)
        except BrokerUnavailableError as error:
            raise UpstreamUnavailableError(str(error)) from None
        return [describe(letter) for letter in sorted(letters, key=lambda x: x.dead_at)]

    async def replay(self, letter_id: str) -> None:
        """Deliver the letter's message again, to its consumer only (the letter goes)."""
        bus = await self._connected()
        try:
            await bus.replay_dead_letter(letter_id)
        except LookupError as error:
            raise NotFoundError(str(error).strip("'\"")) from None
        except BrokerUnavailableError as error:
            raise UpstreamUnavailableError(str(error)) from None

    async def discard(self, letter_id: str) -> None:
        bus = await self._connected()
        try:
            await bus.discard_dead_letter(letter_id)
        except LookupError as error:
            raise NotFoundError(str(error).strip("'\"")) from None
        except BrokerUnavailableError as error:
            raise UpstreamUnavailableError(str(error)) from None

    async def close(self) -> None:
        if self._bus is not None:
            await self._bus.close()
            self._bus = None
