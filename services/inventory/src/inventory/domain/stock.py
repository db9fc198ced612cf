"""Stock per SKU in three buckets, and the movements that are the only way to change them.

A SKU's units are either `available` (may be reserved), `reserved` (held for an order that has
not paid yet) or `committed` (sold). Units enter through `initial`, `restock` and `adjust`
movements; every other movement only moves units between buckets. So, for every SKU,

    initial + restocked + adjusted == available + reserved + committed

which is what the audit checks. No bucket ever goes below zero: a movement that would take
one there is refused as a whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = [
    "MAX_QUANTITY",
    "MAX_SKUS",
    "SKU_PATTERN",
    "Availability",
    "Change",
    "Line",
    "Movement",
    "MovementKind",
    "Stock",
    "is_sku",
    "merge_lines",
    "unique_skus",
]

SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # as the catalog accepts them
_SKU = re.compile(SKU_PATTERN)
MAX_QUANTITY = 1_000_000  # per line or restock: more is surely a typo
MAX_SKUS = 100  # per availability question or reservation


def is_sku(value: str) -> bool:
    return _SKU.fullmatch(value) is not None


class MovementKind(StrEnum):
    INITIAL = "initial"  # the stock a new product starts with: → available
    RESTOCK = "restock"  # goods received: → available
    ADJUST = "adjust"  # a correction (count, damage), signed: → available
    RESERVE = "reserve"  # available → reserved
    RELEASE = "release"  # reserved → available (saga compensation, or a cancelled order)
    EXPIRE = "expire"  # reserved → available (a reservation nobody committed in time)
    COMMIT = "commit"  # reserved → committed (the order is paid)
    RETURN = "return"  # committed → available (a paid order cancelled and refunded)


@dataclass(frozen=True)
class Change:
    """How much each bucket moves."""

    available: int = 0
    reserved: int = 0
    committed: int = 0


_UNIT_CHANGE = {
    MovementKind.INITIAL: Change(available=1),
    MovementKind.RESTOCK: Change(available=1),
    MovementKind.ADJUST: Change(available=1),
    MovementKind.RESERVE: Change(available=-1, reserved=1),
    MovementKind.RELEASE: Change(available=1, reserved=-1),
    MovementKind.EXPIRE: Change(available=1, reserved=-1),
    MovementKind.COMMIT: Change(reserved=-1, committed=1),
    MovementKind.RETURN: Change(available=1, committed=-1),
}
SOURCES = frozenset({MovementKind.INITIAL, MovementKind.RESTOCK, MovementKind.ADJUST})


@dataclass(frozen=True)
class Movement:
    """One line of the ledger. `quantity` is positive, except for `adjust` (any sign) and
    `initial` (zero allowed)."""

    sku: str
    kind: MovementKind
    quantity: int
    at: datetime
    order_id: str | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("movement time must be timezone-aware")
        if self.kind is MovementKind.ADJUST:
            return
        minimum = 0 if self.kind is MovementKind.INITIAL else 1
        if self.quantity < minimum:
            raise ValueError(f"a {self.kind} movement needs a quantity of at least {minimum}")

    @property
    def change(self) -> Change:
        unit = _UNIT_CHANGE[self.kind]
        q = self.quantity
        return Change(unit.available * q, unit.reserved * q, unit.committed * q)


@dataclass(frozen=True)
class Stock:
    sku: str
    available: int
    reserved: int
    committed: int
    updated_at: datetime
    product_id: str | None = None

    @property
    def in_stock(self) -> bool:
        return self.available > 0

    def after(self, change: Change, *, at: datetime) -> Stock | None:
        """This stock with `change` applied; None if a bucket would go below zero."""
        available = self.available + change.available
        reserved = self.reserved + change.reserved
        committed = self.committed + change.committed
        if min(available, reserved, committed) < 0:
            return None
        return Stock(self.sku, available, reserved, committed, at, self.product_id)


@dataclass(frozen=True)
class Availability:
    """What anyone may know about a SKU: how many can be reserved now."""

    sku: str
    available: int

    @property
    def in_stock(self) -> bool:
        return self.available > 0


@dataclass(frozen=True)
class Line:
    sku: str
    quantity: int


def merge_lines(lines: Iterable[Line]) -> tuple[Line, ...]:
    """One line per SKU (quantities of repeated SKUs added up), sorted by SKU.

    Sorted, so that every transaction touches stock rows in the same order: two reservations
    of the same SKUs never deadlock on PostgreSQL.
    """
    totals: dict[str, int] = {}
    for line in lines:
        if line.quantity < 1:
            raise ValueError(f"quantity of {line.sku!r} must be at least 1")
        totals[line.sku] = totals.get(line.sku, 0) + line.quantity
    if not totals:
        raise ValueError("a reservation needs at least one line")
    return tuple(Line(sku, totals[sku]) for sku in sorted(totals))


def unique_skus(skus: Iterable[str]) -> list[str]:
    """The SKUs in first-seen order, each once."""
    return list(dict.fromkeys(skus))
