"""Time as a dependency, so resilience tests advance a clock instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "ManualClock", "Sleep", "SystemClock"]

Sleep = Callable[[float], Awaitable[None]]
"""An async sleep, `asyncio.sleep` in production; injected wherever code waits."""


class Clock(Protocol):
    """A source of monotonic seconds; only differences between readings mean anything."""

    def monotonic(self) -> float: ...


class SystemClock:
    """The process's monotonic clock."""

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK = SystemClock()


class ManualClock:
    """A clock that moves only when told to, like Resilience4j's MockClock.

    Its `sleep` advances the clock instead of waiting, so code under test that sleeps
    finishes at once and still sees time pass.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def monotonic(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by `seconds` (never backwards: it is monotonic)."""
        if seconds < 0:
            raise ValueError(f"a monotonic clock cannot go back ({seconds}s)")
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        """Advance by `seconds`, then yield once so other tasks run as they would."""
        self.advance(max(seconds, 0.0))
        await asyncio.sleep(0)
