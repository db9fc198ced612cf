"""What the service layer needs from the outside world, as Protocols named by role."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Protocol

from inventory.domain.audit import SkuBalance
from inventory.domain.reservations import Reservation, ReservationStatus
from inventory.domain.stock import Movement, Stock

Clock = Callable[[], datetime]


class StockRepository(Protocol):
    async def create(self, stock: Stock, initial: Movement) -> bool:
        """Add a SKU's stock record with its `initial` movement; False (and nothing
        changes) if the SKU has one already."""
        ...

    async def get(self, sku: str, *, for_update: bool = False) -> Stock | None:
        """The SKU's stock; `for_update` locks the row until the transaction ends."""
        ...

    async def get_many(self, skus: Sequence[str]) -> dict[str, Stock]:
        """Stock of those of `skus` that exist."""
        ...

    async def apply(self, movement: Movement) -> bool:
        """Apply `movement` to its SKU's buckets and add it to the ledger, atomically and only
        if no bucket goes below zero: one conditional UPDATE, never read-then-write, so
        concurrent transactions cannot oversell. False (nothing changes) otherwise, or when
        the SKU has no stock record."""
        ...

    async def apply_all(self, movements: Sequence[Movement]) -> list[str]:
        """Apply every movement, in order, or none: the SKUs whose movement failed (none
        applied then), or an empty list when all were applied."""
        ...

    async def balances(self) -> list[SkuBalance]:
        """Every SKU's ledger sources and current buckets, by SKU."""
        ...

    async def movements(self, sku: str) -> list[Movement]:
        """The SKU's ledger, oldest first."""
        ...


class ReservationRepository(Protocol):
    async def add(self, reservation: Reservation) -> None:
        """Store a new reservation (with its lines); fails if the order has one."""
        ...

    async def get(self, order_id: str, *, for_update: bool = False) -> Reservation | None: ...

    async def update(self, reservation: Reservation, *, expected: ReservationStatus) -> bool:
        """Store its status, reason and update time, only if the stored status is still
        `expected`: True if this call changed it."""
        ...

    async def due(self, now: datetime, *, limit: int) -> list[str]:
        """Order ids of held reservations expired at `now`, the earliest first."""
        ...

    async def all(self) -> list[Reservation]:
        """Every reservation except failed ones, oldest first."""
        ...


class InventoryUnitOfWork(Protocol):
    """One transaction over both repositories: all of it commits, or none of it does."""

    @property
    def stock(self) -> StockRepository: ...
    @property
    def reservations(self) -> ReservationRepository: ...

    async def __aenter__(self) -> InventoryUnitOfWork: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    async def commit(self) -> None: ...


UnitOfWorkFactory = Callable[[], InventoryUnitOfWork]
