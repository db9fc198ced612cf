"""Notifications' event consumer: each consumed event → one notification or news item.

Pure choreography: nothing here answers or publishes. `build_apply` gives the function the
chassis `Messaging` runs inside the inbox transaction, so the notification and the inbox's
record of the message commit together: a redelivered or replayed event finds its id in the
inbox and changes nothing. The notifications table's unique cause id backs that up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import assert_never

from sqlalchemy.ext.asyncio import AsyncSession

from chassis.messaging import Envelope
from notifications.adapters.repository import SqlNotificationsUnitOfWork
from notifications.domain import templates
from notifications.domain.model import Cause
from notifications.entrypoints.events import (
    OrderCancelled,
    OrderConfirmed,
    OrderRejected,
    ProductCreated,
    ProductPriceChanged,
    UserRegistered,
    parse,
)
from notifications.service_layer import handlers
from notifications.service_layer.ports import Clock, NotificationsUnitOfWork

CONSUMER = "notifications"

Apply = Callable[[AsyncSession, Envelope], Awaitable[None]]


async def handle(uow: NotificationsUnitOfWork, envelope: Envelope, *, clock: Clock) -> None:
    """Apply one consumed event through `uow` (MalformedMessageError if it does not parse)."""
    event = parse(envelope)
    cause = Cause(envelope.id, envelope.type)
    now = clock()
    match event:
        case UserRegistered():
            message = templates.welcome(event.name, event.email)
            await handlers.notify(uow, user_id=event.user_id, message=message, cause=cause, now=now)
        case OrderConfirmed():
            message = templates.order_confirmed(event.order_id, event.total.to_amount())
            await handlers.notify(uow, user_id=event.user_id, message=message, cause=cause, now=now)
        case OrderRejected():
            message = templates.order_rejected(
                event.order_id, event.total.to_amount(), event.reason
            )
            await handlers.notify(uow, user_id=event.user_id, message=message, cause=cause, now=now)
        case OrderCancelled():
            message = templates.order_cancelled(event.order_id, event.total.to_amount())
            await handlers.notify(uow, user_id=event.user_id, message=message, cause=cause, now=now)
        case ProductCreated():
            await handlers.record_new_product(
                uow,
                product_id=event.product_id,
                sku=event.sku,
                name=event.name,
                category=event.category,
                price=event.price.to_amount(),
                cause=cause,
                occurred_at=envelope.time,
                now=now,
            )
        case ProductPriceChanged():
            await handlers.record_price_change(
                uow,
                product_id=event.product_id,
                sku=event.sku,
                old_price=event.old_price.to_amount(),
                new_price=event.new_price.to_amount(),
                cause=cause,
                occurred_at=envelope.time,
                now=now,
            )
        case _:
            assert_never(event)


def build_apply(clock: Clock) -> Apply:
    """The `apply(session, envelope)` for `Messaging.consume`: joins the inbox's transaction."""

    async def apply(session: AsyncSession, envelope: Envelope) -> None:
        await handle(SqlNotificationsUnitOfWork.joining(session), envelope, clock=clock)

    return apply
