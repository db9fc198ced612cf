"""What inventory tells the world happened (its replies to the saga). Past tense."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["ReservationFailed", "StockCommitted", "StockReleased", "StockReserved"]


@dataclass(frozen=True)
class StockReserved:
    order_id: str
    reservation_id: str
    expires_at: datetime


@dataclass(frozen=True)
class ReservationFailed:
    order_id: str
    reason: str  # "out_of_stock" | "unknown_sku" (| "released" | "expired" when repeated late)
    skus: tuple[str, ...]


@dataclass(frozen=True)
class StockReleased:
    order_id: str
    reason: str  # "compensation" | "cancelled"


@dataclass(frozen=True)
class StockCommitted:
    order_id: str
