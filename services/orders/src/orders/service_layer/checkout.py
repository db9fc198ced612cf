"""The checkout saga, orchestrated by orders (docs/events.md, "The checkout saga").

    reserve stock (compensatable; undo: release stock)
    authorize payment (compensatable; undo: void payment)
    confirm order (pivot, local: PENDING → CONFIRMED, publishes orders.order.confirmed.v1)
    capture payment (retriable)
    commit reservation (retriable)

A failure before the pivot undoes the steps done, in reverse, and then the order is REJECTED
with a reason (out_of_stock, payment_declined, timeout). A customer who cancels a PENDING
order only marks it (`cancellation = requested`); the saga looks at the mark before each
step up to the pivot and, finding it, compensates instead of going on, so the order ends
CANCELLED with the reservation released and the authorization voided. Once past the pivot
the order is CONFIRMED and a cancellation takes the choreographed refund path instead; asked
before the capture and the commit are done, the refund is requested when the saga completes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from chassis.saga import (
    Command,
    Compensation,
    Failure,
    SagaDefinition,
    SagaFailure,
    SagaInstance,
    Step,
    StepKind,
)
from orders.domain import events
from orders.domain.model import Order, OrderStatus, Reason
from orders.service_layer.ports import Clock, OrderTransaction

__all__ = ["CHECKOUT", "REDACTED_DATA", "checkout_data", "checkout_saga", "rejection_reason"]

CHECKOUT = "checkout"
REDACTED_DATA = frozenset({"payment_token"})  # never shown by the saga console

RESERVE_STOCK = "inventory.reserve_stock.v1"
STOCK_RESERVED = "inventory.stock.reserved.v1"
STOCK_RESERVATION_FAILED = "inventory.stock.reservation_failed.v1"
RELEASE_STOCK = "inventory.release_stock.v1"
STOCK_RELEASED = "inventory.stock.released.v1"
COMMIT_STOCK = "inventory.commit_stock.v1"
STOCK_COMMITTED = "inventory.stock.committed.v1"
AUTHORIZE_PAYMENT = "payments.authorize_payment.v1"
PAYMENT_AUTHORIZED = "payments.payment.authorized.v1"
PAYMENT_DECLINED = "payments.payment.declined.v1"
VOID_PAYMENT = "payments.void_payment.v1"
PAYMENT_VOIDED = "payments.payment.voided.v1"
CAPTURE_PAYMENT = "payments.capture_payment.v1"
PAYMENT_CAPTURED = "payments.payment.captured.v1"

Transaction = Callable[[AsyncSession], OrderTransaction]


def checkout_data(order: Order, payment_token: str) -> dict[str, Any]:
    """What the saga carries; the token is dropped once the payment is authorized."""
    return {
        "order_id": order.id,
        "user_id": order.user_id,
        "amount": events.money(order.total),
        "lines": [{"sku": line.sku, "quantity": line.quantity} for line in order.lines],
        "payment_token": payment_token,
    }


def _order_only(data: Mapping[str, Any]) -> dict[str, Any]:
    return {"order_id": data["order_id"]}


def rejection_reason(failure: SagaFailure | None) -> str:
    if failure is None or failure.reason == "timeout":
        return Reason.TIMEOUT.value
    if failure.reason == Reason.CANCELLED.value:
        return Reason.CANCELLED.value
    if failure.step == "reserve_stock":
        return Reason.OUT_OF_STOCK.value
    if failure.step == "authorize_payment":
        return Reason.PAYMENT_DECLINED.value
    return failure.reason


def checkout_saga(
    *,
    transaction: Transaction,
    clock: Clock,
    step_timeout: float,
    max_step_timeout: float,
) -> SagaDefinition:
    """The checkout saga; `transaction(session)` gives the orders of the saga's transaction."""
    cap = max(max_step_timeout, step_timeout)

    async def unless_cancelled(session: AsyncSession, saga: SagaInstance) -> Failure | None:
        order = await transaction(session).orders.get(saga.correlation_id)
        if order is None:
            return Failure("order_missing")
        return Failure(Reason.CANCELLED.value) if order.cancel_requested else None

    async def confirm_order(session: AsyncSession, saga: SagaInstance) -> Failure | None:
        tx = transaction(session)
        order = await tx.orders.get(saga.correlation_id)
        if order is None or order.status is not OrderStatus.PENDING:
            return Failure("order_missing")
        if order.cancel_requested:  # asked between the guard and here: still not confirmed
            return Failure(Reason.CANCELLED.value)
        confirmed = await tx.orders.save(order.confirm(clock()))
        await tx.publish(events.ORDER_CONFIRMED, order.id, events.order_confirmed(confirmed))
        return None

    async def settle_completed(session: AsyncSession, saga: SagaInstance) -> None:
        tx = transaction(session)
        order = await tx.orders.get(saga.correlation_id)
        if order is None:
            return
        completed, ask_for_refund = order.complete_checkout(clock())
        if completed is order:
            return
        stored = await tx.orders.save(completed)
        if ask_for_refund:
            await tx.publish(
                events.ORDER_CANCELLATION_REQUESTED,
                order.id,
                events.cancellation_requested(stored),
            )

    async def settle_undone(session: AsyncSession, saga: SagaInstance) -> None:
        tx = transaction(session)
        order = await tx.orders.get(saga.correlation_id)
        if order is None or order.status is not OrderStatus.PENDING:
            return
        reason = rejection_reason(saga.failure)
        if order.cancel_requested or reason == Reason.CANCELLED.value:
            cancelled = await tx.orders.save(order.cancel(clock()))
            await tx.publish(events.ORDER_CANCELLED, order.id, events.order_cancelled(cancelled))
        else:
            rejected = await tx.orders.save(order.reject(reason, clock()))
            await tx.publish(events.ORDER_REJECTED, order.id, events.order_rejected(rejected))

    return SagaDefinition(
        name=CHECKOUT,
        steps=[
            Step(
                "reserve_stock",
                StepKind.COMPENSATABLE,
                Command(
                    RESERVE_STOCK,
                    lambda data: {"order_id": data["order_id"], "lines": data["lines"]},
                    success=STOCK_RESERVED,
                    failure=(STOCK_RESERVATION_FAILED,),
                    keep=("reservation_id", "expires_at"),
                ),
                Compensation(RELEASE_STOCK, _order_only, STOCK_RELEASED),
                timeout=step_timeout,
                max_timeout=cap,
            ),
            Step(
                "authorize_payment",
                StepKind.COMPENSATABLE,
                Command(
                    AUTHORIZE_PAYMENT,
                    lambda data: {
                        "order_id": data["order_id"],
                        "user_id": data["user_id"],
                        "amount": data["amount"],
                        "payment_token": data["payment_token"],
                    },
                    success=PAYMENT_AUTHORIZED,
                    failure=(PAYMENT_DECLINED,),
                    keep=("payment_id",),
                    forget=("payment_token",),
                ),
                Compensation(VOID_PAYMENT, _order_only, PAYMENT_VOIDED),
                timeout=step_timeout,
                max_timeout=cap,
            ),
            Step("confirm_order", StepKind.PIVOT, confirm_order),
            Step(
                "capture_payment",
                StepKind.RETRIABLE,
                Command(CAPTURE_PAYMENT, _order_only, success=PAYMENT_CAPTURED),
                timeout=step_timeout,
                max_timeout=cap,
            ),
            Step(
                "commit_reservation",
                StepKind.RETRIABLE,
                Command(COMMIT_STOCK, _order_only, success=STOCK_COMMITTED),
                timeout=step_timeout,
                max_timeout=cap,
            ),
        ],
        on_completed=settle_completed,
        on_compensated=settle_undone,
        before_step=unless_cancelled,
    )
