"""What orders consumes: the checkout saga's replies, and the events of the choreographed
cancellation of a confirmed order. One consumer (`orders`), one inbox: each message is applied
once, in one transaction with everything it changes and publishes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.messaging import Envelope, MalformedMessageError
from chassis.saga import SagaOrchestrator
from orders.service_layer import handlers
from orders.service_layer.checkout import STOCK_RELEASED
from orders.service_layer.ports import Clock, OrderTransaction

REFUND_FAILED = "payments.payment.refund_failed.v1"
CHOREOGRAPHY = (STOCK_RELEASED, REFUND_FAILED)

Apply = Callable[[AsyncSession, Envelope], Awaitable[None]]
M = TypeVar("M", bound=BaseModel)


class StockReleased(BaseModel):
    model_config = ConfigDict(extra="ignore")

    order_id: Annotated[str, Field(min_length=1, max_length=64)]
    reason: Annotated[str, Field(max_length=100)] = ""


class RefundFailed(BaseModel):
    model_config = ConfigDict(extra="ignore")

    order_id: Annotated[str, Field(min_length=1, max_length=64)]


def _parse(schema: type[M], envelope: Envelope) -> M:
    try:
        return schema.model_validate(envelope.data)
    except ValidationError as error:
        raise MalformedMessageError(
            f"{envelope.type} does not fit orders' schema: {error}"
        ) from None


def consumed_types(orchestrator: SagaOrchestrator) -> list[str]:
    return list(dict.fromkeys([*orchestrator.reply_types, *CHOREOGRAPHY]))


def build_consumer(
    *,
    orchestrator: SagaOrchestrator,
    transaction: Callable[[AsyncSession], OrderTransaction],
    clock: Clock,
) -> Apply:
    async def apply(session: AsyncSession, envelope: Envelope) -> None:
        if envelope.type in orchestrator.reply_types:
            await orchestrator.handle_reply(session, envelope)
        if envelope.type == STOCK_RELEASED:
            released = _parse(StockReleased, envelope)
            await handlers.stock_released(
                transaction(session),
                order_id=released.order_id,
                reason=released.reason,
                now=clock(),
            )
        elif envelope.type == REFUND_FAILED:
            failed = _parse(RefundFailed, envelope)
            await handlers.refund_failed(
                transaction(session), order_id=failed.order_id, now=clock()
            )

    return apply
