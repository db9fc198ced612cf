"""Inventory's use cases: plain functions over a unit of work.

The saga steps (reserve, release, commit) and the refund restock return the event to answer
with; the caller turns it into a message recorded in the same transaction (see
`entrypoints/messages.py`). Each is idempotent by order id: repeating one answers alike and
changes nothing again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from inventory.domain.audit import Audit
from inventory.domain.events import (
    ReservationFailed,
    StockCommitted,
    StockReleased,
    StockReserved,
)
from inventory.domain.reservations import (
    CANCELLED,
    COMPENSATION,
    OUT_OF_STOCK,
    UNKNOWN_SKU,
    Reservation,
    ReservationStatus,
)
from inventory.domain.stock import (
    MAX_SKUS,
    Availability,
    Line,
    Movement,
    MovementKind,
    Stock,
    is_sku,
    merge_lines,
    unique_skus,
)
from inventory.errors import (
    InsufficientStockError,
    InvalidSkusError,
    InventoryInvariantError,
    ReservationNotFoundError,
    ReservationStateError,
    UnknownSkuError,
)
from inventory.service_layer.ports import InventoryUnitOfWork

log = logging.getLogger("inventory")


# -- stock ------------------------------------------------------------------------------


async def add_product(
    uow: InventoryUnitOfWork, *, sku: str, product_id: str, initial: int, now: datetime
) -> bool:
    """A stock record for a new product, with `initial` units; False if the SKU has one."""
    async with uow:
        if await uow.stock.get(sku) is not None:
            return False
        stock = Stock(sku, 0, 0, 0, now, product_id)
        created = await uow.stock.create(
            stock, Movement(sku, MovementKind.INITIAL, initial, now, reason="product created")
        )
        await uow.commit()
    if created:
        log.info("stock_created", extra={"sku": sku, "initial": initial})
    return created


async def restock(uow: InventoryUnitOfWork, *, sku: str, quantity: int, now: datetime) -> Stock:
    """Add `quantity` received units to the SKU's available stock."""
    async with uow:
        if not await uow.stock.apply(Movement(sku, MovementKind.RESTOCK, quantity, now)):
            raise UnknownSkuError(sku)
        stock = await uow.stock.get(sku)
        await uow.commit()
    assert stock is not None
    return stock


async def adjust(
    uow: InventoryUnitOfWork, *, sku: str, available: int, reason: str, now: datetime
) -> Stock:
    """Set the SKU's available units (a count, damage, loss), recording the difference."""
    async with uow:
        current = await uow.stock.get(sku, for_update=True)
        if current is None:
            raise UnknownSkuError(sku)
        delta = available - current.available
        movement = Movement(sku, MovementKind.ADJUST, delta, now, reason=reason)
        if not await uow.stock.apply(movement):  # only if it was deleted meanwhile
            raise UnknownSkuError(sku)
        stock = await uow.stock.get(sku)
        await uow.commit()
    assert stock is not None
    return stock


async def get_stock(uow: InventoryUnitOfWork, sku: str) -> Stock:
    async with uow:
        stock = await uow.stock.get(sku)
    if stock is None:
        raise UnknownSkuError(sku)
    return stock


def check_skus(skus: Iterable[str], *, location: str = "query") -> list[str]:
    """The SKUs of an availability question: each once, well-formed, at most `MAX_SKUS`."""
    wanted = unique_skus(sku.strip() for sku in skus)
    if not wanted:
        raise InvalidSkusError("give at least one SKU", location=location)
    if len(wanted) > MAX_SKUS:
        raise InvalidSkusError(f"at most {MAX_SKUS} SKUs per question", location=location)
    bad = [sku for sku in wanted if not is_sku(sku)]
    if bad:
        raise InvalidSkusError(f"not a SKU: {bad[0][:70]!r}", location=location)
    return wanted


async def availability(uow: InventoryUnitOfWork, skus: Sequence[str]) -> list[Availability]:
    """Availability of each SKU in order; a SKU without a stock record has 0 available."""
    if not skus:
        return []
    async with uow:
        known = await uow.stock.get_many(skus)
    return [Availability(sku, known[sku].available if sku in known else 0) for sku in skus]


# -- the saga ---------------------------------------------------------------------------


async def reserve(
    uow: InventoryUnitOfWork,
    *,
    order_id: str,
    lines: Sequence[Line],
    ttl: timedelta,
    now: datetime,
) -> StockReserved | ReservationFailed:
    """Hold every line for the order, or nothing."""
    wanted = merge_lines(lines)
    async with uow:
        existing = await uow.reservations.get(order_id, for_update=True)
        if existing is not None:
            return existing.reserve_answer()
        known = await uow.stock.get_many([line.sku for line in wanted])
        unknown = [line.sku for line in wanted if line.sku not in known]
        if unknown:
            reservation = Reservation.failure(order_id, reason=UNKNOWN_SKU, skus=unknown, now=now)
        else:
            reservation = Reservation.hold(order_id, wanted, now=now, ttl=ttl)
            short = await uow.stock.apply_all(reservation.movements(MovementKind.RESERVE, now=now))
            if short:
                reservation = Reservation.failure(
                    order_id, reason=OUT_OF_STOCK, skus=short, now=now
                )
        await uow.reservations.add(reservation)
        await uow.commit()
    answer = reservation.reserve_answer()
    log.info(
        "stock_reserved" if isinstance(answer, StockReserved) else "stock_reservation_failed",
        extra={"order_id": order_id, "reason": reservation.reason},
    )
    return answer


async def release(uow: InventoryUnitOfWork, *, order_id: str, now: datetime) -> StockReleased:
    """Compensation: give a held reservation's units back. Releasing one that is released,
    expired, failed or absent changes nothing and answers alike."""
    async with uow:
        reservation = await uow.reservations.get(order_id, for_update=True)
        if reservation is None:
            tombstone = Reservation.tombstone(order_id, reason=COMPENSATION, now=now)
            await uow.reservations.add(tombstone)
        elif reservation.status is ReservationStatus.COMMITTED:
            raise ReservationStateError(
                f"the reservation of order {order_id} is committed; only a refund returns it",
                order_id=order_id,
            )
        elif reservation.status is ReservationStatus.HELD:
            await _move(uow, reservation, MovementKind.RELEASE, now=now, reason=COMPENSATION)
            await _store(uow, reservation, ReservationStatus.RELEASED, now=now, reason=COMPENSATION)
        await uow.commit()
    return StockReleased(order_id, COMPENSATION)


async def commit(uow: InventoryUnitOfWork, *, order_id: str, now: datetime) -> StockCommitted:
    """The order is paid: its reserved units become committed (sold).

    A reservation that expired or was released in the meantime takes its units from the
    available stock again, all or nothing (`InsufficientStockError` if they are gone). One
    cancelled and refunded before the commit arrived has nothing left to commit.
    """
    async with uow:
        reservation = await uow.reservations.get(order_id, for_update=True)
        if reservation is None or reservation.status is ReservationStatus.FAILED:
            raise ReservationNotFoundError(order_id)
        status = reservation.status
        if status is ReservationStatus.COMMITTED or (
            status is ReservationStatus.RELEASED and reservation.reason == CANCELLED
        ):
            return StockCommitted(order_id)
        if status is ReservationStatus.HELD:
            await _move(uow, reservation, MovementKind.COMMIT, now=now)
        else:
            again = [
                movement
                for line in reservation.lines
                for movement in (
                    Movement(line.sku, MovementKind.RESERVE, line.quantity, now, order_id),
                    Movement(line.sku, MovementKind.COMMIT, line.quantity, now, order_id),
                )
            ]
            short = unique_skus(await uow.stock.apply_all(again))
            if short:
                raise InsufficientStockError(
                    f"the reservation of order {order_id} is {status} and its units are no "
                    "longer available",
                    short,
                )
            log.warning("stock_recommitted", extra={"order_id": order_id, "was": str(status)})
        await _store(uow, reservation, ReservationStatus.COMMITTED, now=now)
        await uow.commit()
    return StockCommitted(order_id)


async def cancel(uow: InventoryUnitOfWork, *, order_id: str, now: datetime) -> StockReleased:
    """A paid order was cancelled and refunded: its units go back on sale. Idempotent per
    order; a reservation still held (the refund overtook the commit) is released."""
    async with uow:
        reservation = await uow.reservations.get(order_id, for_update=True)
        if reservation is None:
            tombstone = Reservation.tombstone(order_id, reason=CANCELLED, now=now)
            await uow.reservations.add(tombstone)
        elif reservation.status in (ReservationStatus.COMMITTED, ReservationStatus.HELD):
            held = reservation.status is ReservationStatus.HELD
            kind = MovementKind.RELEASE if held else MovementKind.RETURN
            await _move(uow, reservation, kind, now=now, reason=CANCELLED)
            await _store(uow, reservation, ReservationStatus.RELEASED, now=now, reason=CANCELLED)
        await uow.commit()
    log.info("stock_returned", extra={"order_id": order_id})
    return StockReleased(order_id, CANCELLED)


async def expire_due(uow: InventoryUnitOfWork, *, now: datetime, limit: int) -> list[str]:
    """Release held reservations past their expiry, one transaction each; the order ids."""
    async with uow:
        due = await uow.reservations.due(now, limit=limit)
    expired = []
    for order_id in due:
        async with uow:
            reservation = await uow.reservations.get(order_id, for_update=True)
            if reservation is None or not reservation.is_due(now):
                continue  # committed or released meanwhile
            await _move(uow, reservation, MovementKind.EXPIRE, now=now)
            await _store(uow, reservation, ReservationStatus.EXPIRED, now=now)
            await uow.commit()
        expired.append(order_id)
        log.info("reservation_expired", extra={"order_id": order_id})
    return expired


async def audit(uow: InventoryUnitOfWork) -> Audit:
    async with uow:
        return Audit(await uow.stock.balances(), await uow.reservations.all())


# -- helpers of the steps above ---------------------------------------------------------


async def _move(
    uow: InventoryUnitOfWork,
    reservation: Reservation,
    kind: MovementKind,
    *,
    now: datetime,
    reason: str | None = None,
) -> None:
    failed = await uow.stock.apply_all(reservation.movements(kind, now=now, reason=reason))
    if failed:
        raise InventoryInvariantError(
            f"cannot {kind} the units of order {reservation.order_id} for {failed}"
        )


async def _store(
    uow: InventoryUnitOfWork,
    reservation: Reservation,
    status: ReservationStatus,
    *,
    now: datetime,
    reason: str | None = None,
) -> None:
    changed = reservation.moved_to(status, now=now, reason=reason)
    if not await uow.reservations.update(changed, expected=reservation.status):
        raise InventoryInvariantError(
            f"the reservation of {reservation.order_id} changed meanwhile"
        )
