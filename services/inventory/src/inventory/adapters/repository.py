"""Inventory's storage on SQLAlchemy (SQLite or PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, func, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from chassis import Database
from inventory.adapters.orm import reservation_lines, reservations, stock, stock_movements
from inventory.domain.audit import SkuBalance
from inventory.domain.reservations import Reservation, ReservationStatus
from inventory.domain.stock import Line, Movement, MovementKind, Stock


def _stock(row: RowMapping) -> Stock:
    return Stock(
        sku=row["sku"],
        available=row["available"],
        reserved=row["reserved"],
        committed=row["committed"],
        updated_at=row["updated_at"],
        product_id=row["product_id"],
    )


def _movement_row(movement: Movement) -> dict[str, Any]:
    return {
        "sku": movement.sku,
        "kind": movement.kind.value,
        "quantity": movement.quantity,
        "order_id": movement.order_id,
        "reason": movement.reason,
        "at": movement.at,
    }


def _rowcount(result: object) -> int:
    return cast(CursorResult[Any], result).rowcount


class SqlStockRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, stock_: Stock, initial: Movement) -> bool:
        if await self.get(stock_.sku) is not None:
            return False
        change = initial.change
        await self.session.execute(
            insert(stock).values(
                sku=stock_.sku,
                product_id=stock_.product_id,
                available=stock_.available + change.available,
                reserved=stock_.reserved + change.reserved,
                committed=stock_.committed + change.committed,
                created_at=stock_.updated_at,
                updated_at=stock_.updated_at,
            )
        )
        await self.session.execute(insert(stock_movements).values(_movement_row(initial)))
        return True

    async def get(self, sku: str, *, for_update: bool = False) -> Stock | None:
        statement = select(stock).where(stock.c.sku == sku)
        if for_update:
            statement = statement.with_for_update()
        row = (await self.session.execute(statement)).mappings().first()
        return _stock(row) if row else None

    async def get_many(self, skus: Sequence[str]) -> dict[str, Stock]:
        if not skus:
            return {}
        result = await self.session.execute(select(stock).where(stock.c.sku.in_(list(skus))))
        return {row["sku"]: _stock(row) for row in result.mappings()}

    async def apply(self, movement: Movement) -> bool:
        change = movement.change
        guards: list[ColumnElement[bool]] = [stock.c.sku == movement.sku]
        # A bucket that shrinks must hold enough now, checked in the UPDATE itself: the
        # database evaluates it against the latest committed row (PostgreSQL re-checks it
        # after waiting for a concurrent writer's lock), so two transactions cannot both
        # take the last unit.
        for column, delta in (
            (stock.c.available, change.available),
            (stock.c.reserved, change.reserved),
            (stock.c.committed, change.committed),
        ):
            if delta < 0:
                guards.append(column >= -delta)
        result = await self.session.execute(
            update(stock)
            .where(*guards)
            .values(
                available=stock.c.available + change.available,
                reserved=stock.c.reserved + change.reserved,
                committed=stock.c.committed + change.committed,
                updated_at=movement.at,
            )
        )
        if _rowcount(result) != 1:
            return False
        await self.session.execute(insert(stock_movements).values(_movement_row(movement)))
        return True

    async def apply_all(self, movements: Sequence[Movement]) -> list[str]:
        savepoint = await self.session.begin_nested()
        try:
            failed = [m.sku for m in movements if not await self.apply(m)]
        except BaseException:
            await savepoint.rollback()
            raise
        if failed:
            await savepoint.rollback()
        else:
            await savepoint.commit()
        return failed

    async def balances(self) -> list[SkuBalance]:
        sources = (MovementKind.INITIAL, MovementKind.RESTOCK, MovementKind.ADJUST)
        totals = await self.session.execute(
            select(
                stock_movements.c.sku, stock_movements.c.kind, func.sum(stock_movements.c.quantity)
            )
            .where(stock_movements.c.kind.in_([kind.value for kind in sources]))
            .group_by(stock_movements.c.sku, stock_movements.c.kind)
        )
        summed: dict[tuple[str, str], int] = {(sku, kind): int(n) for sku, kind, n in totals}
        rows = await self.session.execute(select(stock).order_by(stock.c.sku))
        return [
            SkuBalance(
                sku=row["sku"],
                initial=summed.get((row["sku"], MovementKind.INITIAL.value), 0),
                restocked=summed.get((row["sku"], MovementKind.RESTOCK.value), 0),
                adjusted=summed.get((row["sku"], MovementKind.ADJUST.value), 0),
                available=row["available"],
                reserved=row["reserved"],
                committed=row["committed"],
            )
            for row in rows.mappings()
        ]

    async def movements(self, sku: str) -> list[Movement]:
        result = await self.session.execute(
            select(stock_movements)
            .where(stock_movements.c.sku == sku)
            .order_by(stock_movements.c.id)
        )
        return [
            Movement(
                sku=row["sku"],
                kind=MovementKind(row["kind"]),
                quantity=row["quantity"],
                at=row["at"],
                order_id=row["order_id"],
                reason=row["reason"],
            )
            for row in result.mappings()
        ]


class SqlReservationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, reservation: Reservation) -> None:
        await self.session.execute(
            insert(reservations).values(
                order_id=reservation.order_id,
                id=reservation.id,
                status=reservation.status.value,
                reason=reservation.reason,
                problem_skus=json.dumps(list(reservation.problem_skus)),
                created_at=reservation.created_at,
                expires_at=reservation.expires_at,
                updated_at=reservation.updated_at,
            )
        )
        if reservation.lines:
            await self.session.execute(
                insert(reservation_lines),
                [
                    {"order_id": reservation.order_id, "sku": line.sku, "quantity": line.quantity}
                    for line in reservation.lines
                ],
            )

    async def get(self, order_id: str, *, for_update: bool = False) -> Reservation | None:
        statement = select(reservations).where(reservations.c.order_id == order_id)
        if for_update:
            statement = statement.with_for_update()
        row = (await self.session.execute(statement)).mappings().first()
        if row is None:
            return None
        lines = await self._lines([order_id])
        return self._reservation(row, lines.get(order_id, ()))

    async def update(self, reservation: Reservation, *, expected: ReservationStatus) -> bool:
        result = await self.session.execute(
            update(reservations)
            .where(
                reservations.c.order_id == reservation.order_id,
                reservations.c.status == expected.value,
            )
            .values(
                status=reservation.status.value,
                reason=reservation.reason,
                updated_at=reservation.updated_at,
            )
        )
        return _rowcount(result) == 1

    async def due(self, now: datetime, *, limit: int) -> list[str]:
        result = await self.session.execute(
            select(reservations.c.order_id)
            .where(
                reservations.c.status == ReservationStatus.HELD.value,
                reservations.c.expires_at <= now,
            )
            .order_by(reservations.c.expires_at, reservations.c.order_id)
            .limit(limit)
        )
        return list(result.scalars())

    async def all(self) -> list[Reservation]:
        result = await self.session.execute(
            select(reservations)
            .where(reservations.c.status != ReservationStatus.FAILED.value)
            .order_by(reservations.c.created_at, reservations.c.order_id)
        )
        rows = list(result.mappings())
        lines = await self._lines(None)
        return [self._reservation(row, lines.get(row["order_id"], ())) for row in rows]

    async def _lines(self, order_ids: list[str] | None) -> dict[str, tuple[Line, ...]]:
        statement = select(reservation_lines).order_by(
            reservation_lines.c.order_id, reservation_lines.c.sku
        )
        if order_ids is not None:
            statement = statement.where(reservation_lines.c.order_id.in_(order_ids))
        grouped: dict[str, list[Line]] = {}
        for row in (await self.session.execute(statement)).mappings():
            grouped.setdefault(row["order_id"], []).append(Line(row["sku"], row["quantity"]))
        return {order_id: tuple(lines) for order_id, lines in grouped.items()}

    @staticmethod
    def _reservation(row: RowMapping, lines: tuple[Line, ...]) -> Reservation:
        return Reservation(
            order_id=row["order_id"],
            id=row["id"],
            status=ReservationStatus(row["status"]),
            lines=lines,
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            updated_at=row["updated_at"],
            reason=row["reason"],
            problem_skus=tuple(json.loads(row["problem_skus"])),
        )


class SqlInventoryUnitOfWork:
    """A unit of work on one database session; rolls back unless committed.

    `snapshot` makes every read of one transaction see the same moment (for the audit).

    `joining(session)` makes one inside a transaction someone else owns (a message
    consumer's inbox transaction): its `commit` only flushes, the owner commits.
    """

    stock: SqlStockRepository
    reservations: SqlReservationRepository

    def __init__(
        self,
        database: Database | None = None,
        *,
        write: bool = False,
        snapshot: bool = False,
        session: AsyncSession | None = None,
    ) -> None:
        if (database is None) == (session is None):
            raise ValueError("give either a database or a session to join")
        self._database = database
        self._write = write
        self._snapshot = snapshot
        self._joined = session

    @classmethod
    def joining(cls, session: AsyncSession) -> SqlInventoryUnitOfWork:
        return cls(session=session)

    async def __aenter__(self) -> SqlInventoryUnitOfWork:
        if self._joined is not None:
            self._session = self._joined
        else:
            assert self._database is not None
            database = self._database
            self._session = (database.write_sessions if self._write else database.sessions)()
            if self._snapshot and not database.is_sqlite:
                # Every read of the transaction sees one moment (an audit must not mix two);
                # a SQLite transaction reads one snapshot anyway.
                await self._session.connection(
                    execution_options={"isolation_level": "REPEATABLE READ"}
                )
        self.stock = SqlStockRepository(self._session)
        self.reservations = SqlReservationRepository(self._session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._joined is not None:
            return  # the owner of the transaction commits or rolls back
        await self._session.rollback()
        await self._session.close()

    async def commit(self) -> None:
        if self._joined is not None:
            await self._session.flush()
        else:
            await self._session.commit()
