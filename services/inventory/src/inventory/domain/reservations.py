"""Reservations: the stock held for one order, and the life it goes through.

One reservation per order id, which makes every saga command idempotent by order id:

    (none) ──reserve──> held ──commit──> committed ──refund──> released (cancelled)
                         │ ├──release──> released (compensation)
                         │ ├──refund───> released (cancelled; the refund overtook the commit)
                         │ └──expiry───> expired
    (none) ──reserve, not enough stock or an unknown SKU──> failed (holds nothing)
    (none) ──release or refund before any reserve──> released, without lines (a tombstone,
                                                      so a late reserve holds nothing)

`failed` reservations hold no stock and are kept only to answer a repeated command alike.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from inventory.domain.events import ReservationFailed, StockReserved
from inventory.domain.stock import Line, Movement, MovementKind

__all__ = [
    "CANCELLED",
    "COMPENSATION",
    "OUT_OF_STOCK",
    "UNKNOWN_SKU",
    "Reservation",
    "ReservationStatus",
]

OUT_OF_STOCK = "out_of_stock"
UNKNOWN_SKU = "unknown_sku"
COMPENSATION = "compensation"  # the saga released it (a later step failed)
CANCELLED = "cancelled"  # the order was cancelled and refunded
# Reasons of a `reservation_failed` answer to a reserve command repeated after the
# reservation ended: holding stock again would double-apply the command.
ENDED_REASONS = {"released": "released", "expired": "expired"}


class ReservationStatus(StrEnum):
    HELD = "held"
    COMMITTED = "committed"
    RELEASED = "released"
    EXPIRED = "expired"
    FAILED = "failed"


@dataclass(frozen=True)
class Reservation:
    order_id: str
    id: str
    status: ReservationStatus
    lines: tuple[Line, ...]
    created_at: datetime
    expires_at: datetime
    updated_at: datetime
    reason: str | None = None  # why it failed or was released
    problem_skus: tuple[str, ...] = field(default=())  # the SKUs a failure is about

    # -- making one ---------------------------------------------------------------------

    @classmethod
    def hold(
        cls, order_id: str, lines: tuple[Line, ...], *, now: datetime, ttl: timedelta
    ) -> Reservation:
        return cls(
            order_id=order_id,
            id=str(uuid.uuid4()),
            status=ReservationStatus.HELD,
            lines=lines,
            created_at=now,
            expires_at=now + ttl,
            updated_at=now,
        )

    @classmethod
    def failure(cls, order_id: str, *, reason: str, skus: list[str], now: datetime) -> Reservation:
        return cls(
            order_id=order_id,
            id=str(uuid.uuid4()),
            status=ReservationStatus.FAILED,
            lines=(),
            created_at=now,
            expires_at=now,
            updated_at=now,
            reason=reason,
            problem_skus=tuple(skus),
        )

    @classmethod
    def tombstone(cls, order_id: str, *, reason: str, now: datetime) -> Reservation:
        """Released before it was ever made: a later reserve command must hold nothing."""
        return cls(
            order_id=order_id,
            id=str(uuid.uuid4()),
            status=ReservationStatus.RELEASED,
            lines=(),
            created_at=now,
            expires_at=now,
            updated_at=now,
            reason=reason,
        )

    # -- its life -----------------------------------------------------------------------

    def movements(
        self, kind: MovementKind, *, now: datetime, reason: str | None = None
    ) -> list[Movement]:
        return [
            Movement(line.sku, kind, line.quantity, now, order_id=self.order_id, reason=reason)
            for line in self.lines
        ]

    def moved_to(
        self, status: ReservationStatus, *, now: datetime, reason: str | None = None
    ) -> Reservation:
        return replace(self, status=status, updated_at=now, reason=reason)

    def is_due(self, now: datetime) -> bool:
        return self.status is ReservationStatus.HELD and self.expires_at <= now

    @property
    def holds_stock(self) -> bool:
        return self.status is ReservationStatus.HELD

    def reserve_answer(self) -> StockReserved | ReservationFailed:
        """The answer to a reserve command for this order, the first time or any later."""
        if self.status in (ReservationStatus.HELD, ReservationStatus.COMMITTED):
            return StockReserved(self.order_id, self.id, self.expires_at)
        if self.status is ReservationStatus.FAILED:
            return ReservationFailed(self.order_id, self.reason or OUT_OF_STOCK, self.problem_skus)
        return ReservationFailed(
            self.order_id,
            ENDED_REASONS[self.status.value],
            tuple(line.sku for line in self.lines),
        )
