"""In-memory fakes of inventory's ports, for fast unit tests (same contract as the SQL ones)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import TracebackType

from inventory.domain.audit import SkuBalance
from inventory.domain.reservations import Reservation, ReservationStatus
from inventory.domain.stock import Movement, MovementKind, Stock


@dataclass
class InMemoryInventoryState:
    """What a database would hold."""

    stock: dict[str, Stock] = field(default_factory=dict)
    movements: list[Movement] = field(default_factory=list)
    reservations: dict[str, Reservation] = field(default_factory=dict)


class InMemoryStockRepository:
    def __init__(self, state: InMemoryInventoryState) -> None:
        self.state = state

    async def create(self, stock: Stock, initial: Movement) -> bool:
        if stock.sku in self.state.stock:
            return False
        created = stock.after(initial.change, at=initial.at)
        if created is None:
            raise ValueError("the initial movement would leave a negative bucket")
        self.state.stock[stock.sku] = created
        self.state.movements.append(initial)
        return True

    async def get(self, sku: str, *, for_update: bool = False) -> Stock | None:
        return self.state.stock.get(sku)

    async def get_many(self, skus: Sequence[str]) -> dict[str, Stock]:
        return {sku: self.state.stock[sku] for sku in skus if sku in self.state.stock}

    async def apply(self, movement: Movement) -> bool:
        current = self.state.stock.get(movement.sku)
        after = current.after(movement.change, at=movement.at) if current else None
        if after is None:
            return False
        self.state.stock[movement.sku] = after
        self.state.movements.append(movement)
        return True

    async def apply_all(self, movements: Sequence[Movement]) -> list[str]:
        stock, ledger = dict(self.state.stock), list(self.state.movements)
        failed = [m.sku for m in movements if not await self.apply(m)]
        if failed:
            self.state.stock, self.state.movements = stock, ledger
        return failed

    async def balances(self) -> list[SkuBalance]:
        def total(sku: str, kind: MovementKind) -> int:
            return sum(m.quantity for m in self.state.movements if m.sku == sku and m.kind is kind)

        return [
            SkuBalance(
                sku=s.sku,
                initial=total(s.sku, MovementKind.INITIAL),
                restocked=total(s.sku, MovementKind.RESTOCK),
                adjusted=total(s.sku, MovementKind.ADJUST),
                available=s.available,
                reserved=s.reserved,
                committed=s.committed,
            )
            for s in sorted(self.state.stock.values(), key=lambda s: s.sku)
        ]

    async def movements(self, sku: str) -> list[Movement]:
        return [m for m in self.state.movements if m.sku == sku]


class InMemoryReservationRepository:
    def __init__(self, state: InMemoryInventoryState) -> None:
        self.state = state

    async def add(self, reservation: Reservation) -> None:
        if reservation.order_id in self.state.reservations:
            raise KeyError(f"order {reservation.order_id} has a reservation already")
        self.state.reservations[reservation.order_id] = reservation

    async def get(self, order_id: str, *, for_update: bool = False) -> Reservation | None:
        return self.state.reservations.get(order_id)

    async def update(self, reservation: Reservation, *, expected: ReservationStatus) -> bool:
        stored = self.state.reservations.get(reservation.order_id)
        if stored is None or stored.status is not expected:
            return False
        self.state.reservations[reservation.order_id] = replace(
            stored,
            status=reservation.status,
            reason=reservation.reason,
            updated_at=reservation.updated_at,
        )
        return True

    async def due(self, now: datetime, *, limit: int) -> list[str]:
        due = sorted(
            (r for r in self.state.reservations.values() if r.is_due(now)),
            key=lambda r: (r.expires_at, r.order_id),
        )
        return [r.order_id for r in due[:limit]]

    async def all(self) -> list[Reservation]:
        return sorted(
            (
                r
                for r in self.state.reservations.values()
                if r.status is not ReservationStatus.FAILED
            ),
            key=lambda r: (r.created_at, r.order_id),
        )


class InMemoryInventoryUnitOfWork:
    """Stages writes in a copy of the state and publishes them on commit, like a real
    transaction; the same object can be entered again for the next transaction."""

    def __init__(self, state: InMemoryInventoryState | None = None) -> None:
        self.committed = state if state is not None else InMemoryInventoryState()
        self.commits = 0

    async def __aenter__(self) -> InMemoryInventoryUnitOfWork:
        self._staged = copy.copy(self.committed)
        self._staged.stock = dict(self.committed.stock)
        self._staged.movements = list(self.committed.movements)
        self._staged.reservations = dict(self.committed.reservations)
        self.stock = InMemoryStockRepository(self._staged)
        self.reservations = InMemoryReservationRepository(self._staged)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def commit(self) -> None:
        self.committed.stock = self._staged.stock
        self.committed.movements = self._staged.movements
        self.committed.reservations = self._staged.reservations
        self.commits += 1
        await self.__aenter__()  # later work in the same block starts from the new state


class FakeClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)
