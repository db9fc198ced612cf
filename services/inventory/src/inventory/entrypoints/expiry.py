"""The expiry loop: releases reservations nobody committed in time, in the background."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from prometheus_client import Counter

from inventory.service_layer import handlers
from inventory.service_layer.ports import Clock, UnitOfWorkFactory

log = logging.getLogger("inventory")

RESERVATION_EXPIRIES = Counter(
    "mercato_reservation_expiries_total",
    "Reservations released because nobody committed them before they expired",
)


class ExpiryLoop:
    """Every `interval` seconds, expires the due reservations, `batch` per transaction
    round, until none is left. Several replicas may run it: each reservation expires once."""

    def __init__(
        self, writer: UnitOfWorkFactory, *, clock: Clock, interval: float, batch: int
    ) -> None:
        self._writer = writer
        self._clock = clock
        self._interval = interval
        self._batch = batch
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        """Expire everything due now; how many."""
        total = 0
        while True:
            expired = await handlers.expire_due(
                self._writer(), now=self._clock(), limit=self._batch
            )
            RESERVATION_EXPIRIES.inc(len(expired))
            total += len(expired)
            if len(expired) < self._batch:
                return total

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # a database hiccup must not end the loop; retry next round
                log.exception("reservation_expiry_failed")
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="inventory-expiry")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
