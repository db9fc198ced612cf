"""Admission control for checkouts: refuse new orders at once while the saga is behind.

Little's law: checkouts in flight = throughput * time in flight. The sagas finish about as
many checkouts per second as they finished over the last `window` seconds, so a new order
that joins `pending` others would wait about `pending / throughput` seconds. Beyond
`target_wait` (well under the saga's step timeout) accepting it only makes it, and every
order behind it, time out *after* the customer was told 202: under overload the pipeline
would spend its work on orders that end REJECTED (timeout). Refused at once instead (429
with Retry-After, which the gateway relays; not 503, which callers retry on another
instance and count against its health), the client can come back, and the orders in flight
keep finishing at the pipeline's pace. `floor` orders may always be in flight: a
cold start, or a pipeline idle for a while, has no throughput to measure yet.

The counts come from the database (every instance sees every order), read at most every
`refresh` seconds; orders admitted meanwhile are added to the last count.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from orders.errors import CheckoutBusyError
from orders.service_layer.ports import OrdersUnitOfWork

__all__ = ["CheckoutAdmission", "CheckoutLoad"]


@dataclass(frozen=True)
class CheckoutLoad:
    pending: int  # PENDING orders (created within the horizon: older ones are stuck, not queued)
    settled: int  # orders that left PENDING within the window


class CheckoutAdmission:
    def __init__(
        self,
        *,
        target_wait: float,
        floor: int,
        horizon: float,
        window: float = 10.0,
        refresh: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if target_wait <= 0 or floor < 1 or window <= 0 or horizon <= 0:
            raise ValueError("target_wait, window and horizon > 0, floor >= 1")
        self.target_wait = target_wait
        self.floor = floor
        self.horizon = horizon
        self.window = window
        self.refresh = refresh
        self._monotonic = monotonic
        self._load: CheckoutLoad | None = None
        self._read_at = -math.inf
        self._admitted_since = 0

    def limit(self, load: CheckoutLoad) -> int:
        """How many checkouts may be in flight: what the sagas finish in `target_wait`."""
        return max(self.floor, math.floor(load.settled / self.window * self.target_wait))

    async def admit(self, uow: Callable[[], OrdersUnitOfWork], *, now: datetime) -> None:
        """Return when a new checkout may start; raise `CheckoutBusyError` otherwise."""
        if self._monotonic() - self._read_at >= self.refresh or self._load is None:
            async with uow() as reader:
                pending, settled = await reader.orders.checkout_load(
                    created_since=now - timedelta(seconds=self.horizon),
                    settled_since=now - timedelta(seconds=self.window),
                )
            self._load = CheckoutLoad(pending, settled)
            self._read_at = self._monotonic()
            self._admitted_since = 0
        load = self._load
        limit = self.limit(load)
        if load.pending + self._admitted_since >= limit:
            throughput = load.settled / self.window
            wait = (load.pending - limit + 1) / throughput if throughput else self.target_wait
            raise CheckoutBusyError(retry_after=max(1, math.ceil(min(wait, 30))))
        self._admitted_since += 1
