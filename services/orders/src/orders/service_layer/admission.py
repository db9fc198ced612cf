"""Admission control for checkouts: refuse new orders at once while checkouts run late.

A checkout's compensatable steps (reserve, authorize) each have a timeout (15 s by default):
an order that waits in line longer than that is compensated and REJECTED (timeout) after
the customer was told 202, and the work spent on it is lost. Under more orders than the
sagas can finish, accepting every order makes the line, and so every order in it, late.

So, as CoDel does with a queue's sojourn time, orders looks at how long the orders in flight
have been PENDING: while at least `max(3, pending / 10)` of them have waited longer than
`max_wait` (well under the step timeout), the line is too long and a new order is refused at
once with 429 and Retry-After (which the gateway relays; not 503, which callers retry on
another instance and count against its health). The orders in flight keep the sagas busy, so
they go on finishing at the pipeline's pace; the shed clients come back. Below `floor`
orders in flight nothing is refused, and a few stuck checkouts (a saga waiting out a
participant that is down) do not close the door on their own.

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

_FEW = 3  # late checkouts tolerated whatever the line's length (stuck sagas)


@dataclass(frozen=True)
class CheckoutLoad:
    pending: int  # PENDING orders created within the horizon (older ones are stuck, not queued)
    late: int  # of those, the ones PENDING for longer than `max_wait`


class CheckoutAdmission:
    def __init__(
        self,
        *,
        max_wait: float,
        floor: int,
        horizon: float,
        refresh: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_wait <= 0 or floor < 1 or horizon <= max_wait:
            raise ValueError("max_wait > 0, floor >= 1 and horizon > max_wait")
        self.max_wait = max_wait
        self.floor = floor
        self.horizon = horizon
        self.refresh = refresh
        self._monotonic = monotonic
        self._load: CheckoutLoad | None = None
        self._read_at = -math.inf
        self._admitted_since = 0

    def too_late(self, load: CheckoutLoad) -> bool:
        """Whether the line is too long: enough of the checkouts in it are late."""
        return load.late >= max(_FEW, math.ceil(load.pending / 10))

    async def admit(self, uow: Callable[[], OrdersUnitOfWork], *, now: datetime) -> None:
        """Return when a new checkout may start; raise `CheckoutBusyError` otherwise."""
        if self._load is None or self._monotonic() - self._read_at >= self.refresh:
            async with uow() as reader:
                pending, late = await reader.orders.checkout_load(
                    created_since=now - timedelta(seconds=self.horizon),
                    late_before=now - timedelta(seconds=self.max_wait),
                )
            self._load = CheckoutLoad(pending, late)
            self._read_at = self._monotonic()
            self._admitted_since = 0
        load = self._load
        if load.pending + self._admitted_since >= self.floor and self.too_late(load):
            raise CheckoutBusyError(retry_after=max(1, math.ceil(self.max_wait / 2)))
        self._admitted_since += 1
