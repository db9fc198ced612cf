"""The commands and events payments consumes: its own schema of each, and their handlers.

Each `apply` runs inside the inbox transaction `Messaging.consume` opens. A message that
does not fit the schema is dead-lettered (`MalformedMessageError`), as is a capture for an
order payments never heard of (`PermanentError`): no retry can fix either. After the commit
the processor is woken for the order, and calls the psp outside of any transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from chassis import CurrencyCode
from chassis.messaging import Envelope, MalformedMessageError, Messaging, PermanentError
from payments.adapters.repository import SqlPaymentsUnitOfWork
from payments.domain.model import Cause
from payments.errors import PaymentNotFoundError
from payments.service_layer import handlers, messages
from payments.service_layer.ports import Clock, PaymentsUnitOfWork

OrderId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]

# A newer minor version may add fields: they are ignored (docs/events.md).
_SCHEMA = ConfigDict(extra="ignore")


class MoneyV1(BaseModel):
    model_config = _SCHEMA

    amount: StrictInt = Field(ge=0, le=10**12)
    currency: CurrencyCode


class AuthorizePaymentV1(BaseModel):
    model_config = _SCHEMA

    order_id: OrderId
    user_id: str = Field(min_length=1, max_length=64)
    amount: MoneyV1
    payment_token: str = Field(min_length=1, max_length=255)


class OrderCommandV1(BaseModel):
    """`void_payment`, `capture_payment`, `order.cancellation_requested`: the order is enough."""

    model_config = _SCHEMA

    order_id: OrderId


Handler = Callable[[PaymentsUnitOfWork, Envelope, Cause], Awaitable[tuple[str, bool]]]


def _parse(model: type[BaseModel], envelope: Envelope) -> Any:
    try:
        return model.model_validate(envelope.data)
    except ValidationError as error:
        raise MalformedMessageError(
            f"{envelope.type} does not fit payments' schema: {error.error_count()} problem(s): "
            + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()[:5])
        ) from None


def register(messaging: Messaging, *, wake: Callable[[str], None], clock: Clock) -> None:
    """Consume the payment commands and the cancellation event; wake the processor after."""

    async def authorize(
        uow: PaymentsUnitOfWork, envelope: Envelope, cause: Cause
    ) -> tuple[str, bool]:
        body: AuthorizePaymentV1 = _parse(AuthorizePaymentV1, envelope)
        command = handlers.AuthorizePayment(
            order_id=body.order_id,
            user_id=body.user_id,
            amount=body.amount.amount,
            currency=body.amount.currency,
            payment_token=body.payment_token,
        )
        return body.order_id, await handlers.authorize_payment(
            uow, command, cause=cause, now=clock()
        )

    async def void(uow: PaymentsUnitOfWork, envelope: Envelope, cause: Cause) -> tuple[str, bool]:
        order_id = _parse(OrderCommandV1, envelope).order_id
        return order_id, await handlers.void_payment(uow, order_id, cause=cause, now=clock())

    async def capture(
        uow: PaymentsUnitOfWork, envelope: Envelope, cause: Cause
    ) -> tuple[str, bool]:
        order_id = _parse(OrderCommandV1, envelope).order_id
        try:
            return order_id, await handlers.capture_payment(uow, order_id, cause=cause, now=clock())
        except PaymentNotFoundError as error:
            raise PermanentError(error.detail) from None

    async def refund(uow: PaymentsUnitOfWork, envelope: Envelope, cause: Cause) -> tuple[str, bool]:
        order_id = _parse(OrderCommandV1, envelope).order_id
        return order_id, await handlers.refund_cancelled_order(
            uow, order_id, cause=cause, now=clock()
        )

    routes: dict[str, Handler] = {
        messages.AUTHORIZE_PAYMENT: authorize,
        messages.VOID_PAYMENT: void,
        messages.CAPTURE_PAYMENT: capture,
        messages.ORDER_CANCELLATION_REQUESTED: refund,
    }

    async def apply(session: AsyncSession, envelope: Envelope) -> None:
        handle = routes.get(envelope.type)
        if handle is None:
            raise PermanentError(f"payments does not handle {envelope.type}")
        cause = Cause(envelope.id, envelope.correlation_id, envelope.traceparent)
        order_id, has_work = await handle(SqlPaymentsUnitOfWork.joining(session), envelope, cause)
        if has_work:
            # The processor must see the committed operation: wake it after the commit.
            event.listen(session.sync_session, "after_commit", lambda _: wake(order_id), once=True)

    messaging.consume(list(messages.CONSUMED), apply)
