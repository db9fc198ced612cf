"""Orders' storage on SQLAlchemy (SQLite or PostgreSQL), and its unit of work."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from types import TracebackType
from typing import Any, cast

from sqlalchemy import CursorResult, and_, delete, func, insert, or_, select, text, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from chassis import Database
from chassis.messaging import Envelope, record_events
from chassis.saga import SagaOrchestrator
from orders.adapters.orm import idempotency_keys, order_lines, orders
from orders.domain.idempotency import IdempotencyRecord, StoredResponse
from orders.domain.model import Cancellation, Order, OrderLine, OrderStatus, Price
from orders.errors import OrderChangedError
from orders.service_layer.checkout import CHECKOUT, checkout_data


def _rowcount(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount


def _order_values(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "user_id": order.user_id,
        "status": order.status.value,
        "reason": order.reason,
        "cancellation": order.cancellation.value if order.cancellation else None,
        "total_amount": order.total.amount,
        "currency": order.total.currency,
        "created_at": order.created_at,
        "updated_at": order.updated_at,
        "version": order.version,
        "checkout_completed": order.checkout_completed,
    }


def _order(row: RowMapping, lines: Sequence[OrderLine]) -> Order:
    return Order(
        id=row["id"],
        user_id=row["user_id"],
        status=OrderStatus(row["status"]),
        lines=tuple(lines),
        total=Price(row["total_amount"], row["currency"]),
        reason=row["reason"],
        cancellation=Cancellation(row["cancellation"]) if row["cancellation"] else None,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
        checkout_completed=bool(row["checkout_completed"]),
    )


def _line(row: RowMapping) -> OrderLine:
    return OrderLine(
        product_id=row["product_id"],
        sku=row["sku"],
        name=row["name"],
        quantity=row["quantity"],
        unit_price=Price(row["unit_amount"], row["currency"]),
    )


class SqlOrderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, order: Order) -> None:
        await self.session.execute(insert(orders).values(_order_values(order)))
        await self.session.execute(
            insert(order_lines),
            [
                {
                    "order_id": order.id,
                    "position": position,
                    "product_id": line.product_id,
                    "sku": line.sku,
                    "name": line.name,
                    "quantity": line.quantity,
                    "unit_amount": line.unit_price.amount,
                    "currency": line.unit_price.currency,
                }
                for position, line in enumerate(order.lines)
            ],
        )

    async def save(self, order: Order) -> Order:
        values = _order_values(order)
        for fixed in ("id", "user_id", "created_at", "total_amount", "currency"):
            del values[fixed]
        values["version"] = order.version + 1
        result = await self.session.execute(
            update(orders)
            .where(orders.c.id == order.id, orders.c.version == order.version)
            .values(values)
        )
        if _rowcount(result) != 1:
            raise OrderChangedError(order.id)
        return replace(order, version=order.version + 1)

    async def get(self, order_id: str) -> Order | None:
        row = (
            (await self.session.execute(select(orders).where(orders.c.id == order_id)))
            .mappings()
            .first()
        )
        if row is None:
            return None
        return (await self._with_lines([row]))[0]

    async def list_for_user(
        self, user_id: str, *, limit: int, after: tuple[datetime, str] | None = None
    ) -> list[Order]:
        statement = select(orders).where(orders.c.user_id == user_id)
        if after is not None:
            created, last_id = after
            statement = statement.where(
                or_(
                    orders.c.created_at < created,
                    and_(orders.c.created_at == created, orders.c.id < last_id),
                )
            )
        statement = statement.order_by(orders.c.created_at.desc(), orders.c.id.desc()).limit(limit)
        rows = list((await self.session.execute(statement)).mappings())
        return await self._with_lines(rows)

    async def count_pending(self, user_id: str) -> int:
        count = await self.session.scalar(
            select(func.count())
            .select_from(orders)
            .where(orders.c.user_id == user_id, orders.c.status == OrderStatus.PENDING.value)
        )
        return int(count or 0)

    async def checkout_load(
        self, *, created_since: datetime, late_before: datetime
    ) -> tuple[int, int]:
        # Bounded by created_at (indexed), so the cost does not grow with the order history.
        row = (
            await self.session.execute(
                select(func.count(), func.count().filter(orders.c.created_at < late_before)).where(
                    orders.c.created_at >= created_since,
                    orders.c.status == OrderStatus.PENDING.value,
                )
            )
        ).one()
        return int(row[0] or 0), int(row[1] or 0)

    async def all(self) -> list[Order]:
        statement = select(orders).order_by(orders.c.created_at, orders.c.id)
        rows = list((await self.session.execute(statement)).mappings())
        return await self._with_lines(rows, everything=True)

    async def _with_lines(
        self, rows: Sequence[RowMapping], *, everything: bool = False
    ) -> list[Order]:
        if not rows:
            return []
        statement = select(order_lines).order_by(order_lines.c.order_id, order_lines.c.position)
        if not everything:  # (an IN list of every order would outgrow the driver's limits)
            statement = statement.where(order_lines.c.order_id.in_([row["id"] for row in rows]))
        lines: defaultdict[str, list[OrderLine]] = defaultdict(list)
        for line in (await self.session.execute(statement)).mappings():
            lines[line["order_id"]].append(_line(line))
        return [_order(row, lines[row["id"]]) for row in rows]


class SqlIdempotencyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: str, key: str) -> IdempotencyRecord | None:
        row = (
            (
                await self.session.execute(
                    select(idempotency_keys).where(
                        idempotency_keys.c.user_id == user_id, idempotency_keys.c.key == key
                    )
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        response = StoredResponse(row["status"], row["body"].encode(), row["order_id"])
        return IdempotencyRecord(
            row["user_id"], row["key"], row["fingerprint"], response, row["created_at"]
        )

    async def add(self, record: IdempotencyRecord) -> None:
        await self.session.execute(
            insert(idempotency_keys).values(
                user_id=record.user_id,
                key=record.key,
                fingerprint=record.fingerprint,
                status=record.response.status,
                body=record.response.body.decode(),
                order_id=record.response.order_id,
                created_at=record.created_at,
            )
        )

    async def delete_older_than(self, before: datetime) -> int:
        result = await self.session.execute(
            delete(idempotency_keys).where(idempotency_keys.c.created_at < before)
        )
        return _rowcount(result)


class SqlOrderTransaction:
    """Orders on an open session (a saga step's, a consumed message's): an `OrderTransaction`."""

    def __init__(self, session: AsyncSession, *, source: str = "orders") -> None:
        self.session = session
        self.source = source
        self.orders = SqlOrderRepository(session)
        self.published = 0

    async def publish(self, type: str, subject: str, data: dict[str, Any]) -> None:
        envelope = Envelope(type=type, source=self.source, subject=subject, data=data)
        await record_events(self.session, [envelope])
        self.published += 1


def _user_lock_key(user_id: str) -> int:
    digest = hashlib.blake2b(user_id.encode(), digest_size=8, person=b"mercato-orders").digest()
    return int.from_bytes(digest, "big", signed=True)


class SqlOrdersUnitOfWork:
    """A unit of work on one database session; rolls back unless committed."""

    orders: SqlOrderRepository
    idempotency: SqlIdempotencyRepository

    def __init__(
        self,
        database: Database,
        *,
        write: bool,
        orchestrator: SagaOrchestrator,
        notify: Callable[[], None] = lambda: None,
        source: str = "orders",
    ) -> None:
        self._database = database
        self._factory = database.write_sessions if write else database.sessions
        self._orchestrator = orchestrator
        self._notify = notify
        self._source = source

    async def __aenter__(self) -> SqlOrdersUnitOfWork:
        self._session = self._factory()
        self._tx = SqlOrderTransaction(self._session, source=self._source)
        self.orders = self._tx.orders
        self.idempotency = SqlIdempotencyRepository(self._session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._session.rollback()
        await self._session.close()

    async def publish(self, type: str, subject: str, data: dict[str, Any]) -> None:
        await self._tx.publish(type, subject, data)

    async def lock_user(self, user_id: str) -> None:
        # SQLite runs one writer at a time already; PostgreSQL needs a lock per user.
        if not self._database.is_sqlite:
            await self._session.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _user_lock_key(user_id)}
            )

    async def start_checkout(self, order: Order, payment_token: str) -> None:
        await self._orchestrator.start_saga(
            self._session,
            CHECKOUT,
            correlation_id=order.id,
            data=checkout_data(order, payment_token),
        )

    async def commit(self) -> None:
        await self._session.commit()
        if self._tx.published:
            self._notify()
            self._tx.published = 0
