"""The fault knobs: how badly the psp behaves, so callers can be tested against it.

- `latency_ms` is added to every call;
- `error_rate` answers that share of calls 500 or 503 *before* doing anything;
- `timeout_after_charge_rate` holds back the answer of that share of calls that took
  effect (the effect is committed first) for `timeout_seconds`, or until the caller hangs
  up: the caller times out not knowing whether it was charged.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from chassis.resilience import SYSTEM_CLOCK, Clock, Sleep

__all__ = ["FaultInjector", "FaultKnobs"]

_HANG_UP_POLL = 0.05  # seconds between checks whether the caller is still there


@dataclass(frozen=True)
class FaultKnobs:
    latency_ms: int = 0
    error_rate: float = 0.0
    timeout_after_charge_rate: float = 0.0
    timeout_seconds: float = 30.0


class FaultInjector:
    """Rolls the dice for each call against the current knobs (one per process)."""

    def __init__(
        self,
        knobs: FaultKnobs | None = None,
        *,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.knobs = knobs or FaultKnobs()
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._clock = clock

    async def before_call(self) -> int | None:
        """Wait the added latency; the status of an injected error, or None to go on."""
        knobs = self.knobs
        if knobs.latency_ms:
            await self._sleep(knobs.latency_ms / 1000)
        if knobs.error_rate and self._rng.random() < knobs.error_rate:
            return self._rng.choice((500, 503))
        return None

    def should_hold_answer(self) -> bool:
        rate = self.knobs.timeout_after_charge_rate
        return bool(rate) and self._rng.random() < rate

    async def hold_answer(self, hung_up: Callable[[], Awaitable[bool]]) -> None:
        """Sit on an answer for `timeout_seconds`, or until the caller has hung up."""
        until = self._clock.monotonic() + self.knobs.timeout_seconds
        while self._clock.monotonic() < until and not await hung_up():
            await self._sleep(min(_HANG_UP_POLL, until - self._clock.monotonic()))
