"""Inventory's messages: what it consumes, what it answers, in the shapes of docs/events.md.

Each consumed message is applied in its inbox transaction (`Messaging.consume`), and the
reply is recorded in the outbox of that same transaction: the stock change, the "processed"
mark and the answer commit together or not at all. Replies are caused by the command, so
they carry its correlation id.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.errors import DomainError
from chassis.messaging import (
    Envelope,
    MalformedMessageError,
    Messaging,
    PermanentError,
    record_events,
)
from inventory.adapters.repository import SqlInventoryUnitOfWork
from inventory.domain.events import (
    ReservationFailed,
    StockCommitted,
    StockReleased,
    StockReserved,
)
from inventory.domain.stock import MAX_QUANTITY, MAX_SKUS, SKU_PATTERN, Line
from inventory.service_layer import handlers
from inventory.service_layer.ports import Clock

__all__ = [
    "COMMIT_STOCK",
    "CONSUMED",
    "PAYMENT_REFUNDED",
    "PRODUCT_CREATED",
    "RELEASE_STOCK",
    "RESERVE_STOCK",
    "STOCK_COMMITTED",
    "STOCK_RELEASED",
    "STOCK_RESERVATION_FAILED",
    "STOCK_RESERVED",
    "register_consumers",
]

PRODUCT_CREATED = "catalog.product.created.v1"
RESERVE_STOCK = "inventory.reserve_stock.v1"
RELEASE_STOCK = "inventory.release_stock.v1"
COMMIT_STOCK = "inventory.commit_stock.v1"
PAYMENT_REFUNDED = "payments.payment.refunded.v1"
CONSUMED = (PRODUCT_CREATED, RESERVE_STOCK, RELEASE_STOCK, COMMIT_STOCK, PAYMENT_REFUNDED)

STOCK_RESERVED = "inventory.stock.reserved.v1"
STOCK_RESERVATION_FAILED = "inventory.stock.reservation_failed.v1"
STOCK_RELEASED = "inventory.stock.released.v1"
STOCK_COMMITTED = "inventory.stock.committed.v1"

# Our own schema of what we consume: extra fields (a newer minor version) are ignored.
Sku = Annotated[str, Field(pattern=SKU_PATTERN)]
OrderId = Annotated[str, Field(min_length=1, max_length=64)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ProductCreated(_Message):
    product_id: Annotated[str, Field(min_length=1, max_length=64)]
    sku: Sku


class LineIn(_Message):
    sku: Sku
    quantity: Annotated[StrictInt, Field(ge=1, le=MAX_QUANTITY)]


class ReserveStock(_Message):
    order_id: OrderId
    lines: Annotated[list[LineIn], Field(min_length=1, max_length=MAX_SKUS)]


class ForOrder(_Message):
    """`release_stock`, `commit_stock` and `payment.refunded` (whose amount we don't need)."""

    order_id: OrderId


M = TypeVar("M", bound=_Message)


def _parse(model: type[M], envelope: Envelope) -> M:
    try:
        return model.model_validate(envelope.data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'data'}: {e['msg']}"
            for e in error.errors(include_url=False, include_input=False)[:5]
        )
        raise MalformedMessageError(
            f"{envelope.type} does not fit its schema: {problems}"
        ) from None


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def reply_of(
    answer: StockReserved | ReservationFailed | StockReleased | StockCommitted,
) -> tuple[str, dict[str, Any]]:
    """The message type and data of an answer, as docs/events.md spells them."""
    match answer:
        case StockReserved():
            return STOCK_RESERVED, {
                "order_id": answer.order_id,
                "reservation_id": answer.reservation_id,
                "expires_at": _time(answer.expires_at),
            }
        case ReservationFailed():
            return STOCK_RESERVATION_FAILED, {
                "order_id": answer.order_id,
                "reason": answer.reason,
                "skus": list(answer.skus),
            }
        case StockReleased():
            return STOCK_RELEASED, {"order_id": answer.order_id, "reason": answer.reason}
        case StockCommitted():
            return STOCK_COMMITTED, {"order_id": answer.order_id}


Apply = Callable[[AsyncSession, Envelope], Awaitable[None]]


def register_consumers(
    messaging: Messaging,
    *,
    initial_stock: int,
    reservation_ttl: timedelta,
    clock: Clock,
) -> None:
    """Declare everything inventory consumes, as one durable consumer named `inventory`."""

    async def answer(
        session: AsyncSession,
        cause: Envelope,
        reply: StockReserved | ReservationFailed | StockReleased | StockCommitted,
    ) -> None:
        type_, data = reply_of(reply)
        await record_events(session, [messaging.event(type_, reply.order_id, data, cause=cause)])

    async def product_created(session: AsyncSession, envelope: Envelope) -> None:
        product = _parse(ProductCreated, envelope)
        await handlers.add_product(
            SqlInventoryUnitOfWork.joining(session),
            sku=product.sku,
            product_id=product.product_id,
            initial=initial_stock,
            now=clock(),
        )

    async def reserve_stock(session: AsyncSession, envelope: Envelope) -> None:
        command = _parse(ReserveStock, envelope)
        reply = await handlers.reserve(
            SqlInventoryUnitOfWork.joining(session),
            order_id=command.order_id,
            lines=[Line(line.sku, line.quantity) for line in command.lines],
            ttl=reservation_ttl,
            now=clock(),
        )
        await answer(session, envelope, reply)

    async def release_stock(session: AsyncSession, envelope: Envelope) -> None:
        command = _parse(ForOrder, envelope)
        uow = SqlInventoryUnitOfWork.joining(session)
        await answer(
            session, envelope, await handlers.release(uow, order_id=command.order_id, now=clock())
        )

    async def commit_stock(session: AsyncSession, envelope: Envelope) -> None:
        command = _parse(ForOrder, envelope)
        uow = SqlInventoryUnitOfWork.joining(session)
        await answer(
            session, envelope, await handlers.commit(uow, order_id=command.order_id, now=clock())
        )

    async def payment_refunded(session: AsyncSession, envelope: Envelope) -> None:
        event = _parse(ForOrder, envelope)
        uow = SqlInventoryUnitOfWork.joining(session)
        await answer(
            session, envelope, await handlers.cancel(uow, order_id=event.order_id, now=clock())
        )

    routes: dict[str, Apply] = {
        PRODUCT_CREATED: product_created,
        RESERVE_STOCK: reserve_stock,
        RELEASE_STOCK: release_stock,
        COMMIT_STOCK: commit_stock,
        PAYMENT_REFUNDED: payment_refunded,
    }

    async def apply(session: AsyncSession, envelope: Envelope) -> None:
        route = routes.get(envelope.type)
        if route is None:
            raise PermanentError(f"inventory does not handle {envelope.type}")
        try:
            await route(session, envelope)
        except DomainError as error:
            # A business rule refused a command that retrying cannot change (e.g. committing
            # a reservation whose units are gone): dead-letter it for an operator, who may
            # replay it after fixing the stock.
            raise PermanentError(f"{error.title}: {error.detail}") from error

    messaging.consume(list(routes), apply)
