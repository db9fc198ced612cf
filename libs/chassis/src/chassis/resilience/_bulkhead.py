"""A bulkhead: a cap on concurrent calls to one target.

A slow dependency then ties up at most `max_concurrent` of our tasks and connections;
calls past the cap fail fast instead of queueing behind it, which would only turn its
slowness into ours.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import ParamSpec, TypeVar

from chassis.resilience._metrics import BULKHEAD_IN_FLIGHT, BULKHEAD_REJECTED
from chassis.resilience.errors import BulkheadFullError

__all__ = ["Bulkhead"]

P = ParamSpec("P")
T = TypeVar("T")


class Bulkhead:
    """Admits at most `max_concurrent` calls at once; others raise `BulkheadFullError`.

    With `max_wait` > 0 a call waits up to that many seconds for a free slot first.
    """

    def __init__(self, name: str, max_concurrent: int, *, max_wait: float = 0.0) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        if max_wait < 0:
            raise ValueError("max_wait must not be negative")
        self.name = name
        self.max_concurrent = max_concurrent
        self.max_wait = max_wait
        self._slots = asyncio.Semaphore(max_concurrent)
        self._in_flight = 0
        BULKHEAD_IN_FLIGHT.labels(name).set(0)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the slots for the duration of the block."""
        await self._acquire()
        self._in_flight += 1
        BULKHEAD_IN_FLIGHT.labels(self.name).set(self._in_flight)
        try:
            yield
        finally:
            self._in_flight -= 1
            BULKHEAD_IN_FLIGHT.labels(self.name).set(self._in_flight)
            self._slots.release()

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await `fn(*args, **kwargs)` in a slot; raise `BulkheadFullError` if none is free."""
        async with self.slot():
            return await fn(*args, **kwargs)

    async def _acquire(self) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # a free slot: returns without suspending
            return
        if self.max_wait > 0:
            try:
                async with asyncio.timeout(self.max_wait):
                    await self._slots.acquire()
            except TimeoutError:
                pass
            else:
                return
        BULKHEAD_REJECTED.labels(self.name).inc()
        raise BulkheadFullError(self.name, max_concurrent=self.max_concurrent)
