"""Payments' use cases: commands from the checkout saga and the queries of its API.

Command handlers run inside the consumer's inbox transaction, so they never call the psp:
they record what is asked (an `Operation` for the processor, which calls the psp after the
commit) or, when the answer is known already, publish it again. Every command is
idempotent by order id: a duplicate gets the same answer and changes nothing. Each handler
returns whether the processor has work for the order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog

from payments.domain.model import (
    NO_CURRENCY,
    Cause,
    LedgerEntry,
    OperationKind,
    OperationStatus,
    Payment,
    PaymentStatus,
    new_payment,
    voided_placeholder,
)
from payments.errors import PaymentNotFoundError
from payments.service_layer import messages
from payments.service_layer.ports import PaymentsUnitOfWork

log = structlog.get_logger("payments")


@dataclass(frozen=True)
class AuthorizePayment:
    order_id: str
    user_id: str
    amount: int
    currency: str
    payment_token: str


async def authorize_payment(
    uow: PaymentsUnitOfWork, command: AuthorizePayment, *, cause: Cause, now: datetime
) -> bool:
    async with uow:
        payment = await uow.payments.get(command.order_id, lock=True)
        if payment is None:
            payment = new_payment(
                order_id=command.order_id,
                user_id=command.user_id,
                amount=command.amount,
                currency=command.currency,
                payment_token=command.payment_token,
                cause=cause,
                now=now,
            )
            await uow.payments.add(payment)
            await uow.commit()
            return True
        if payment.currency != NO_CURRENCY and (payment.amount, payment.currency) != (
            command.amount,
            command.currency,
        ):
            log.warning(
                "authorize_payment repeated with another amount; the first one stands",
                order_id=command.order_id,
            )
        op = payment.operation(OperationKind.AUTHORIZE)
        if op is None:  # voided before its authorization ever arrived: charge nothing
            uow.publish(messages.voided(payment.order_id, cause))
        elif op.status is OperationStatus.SUCCEEDED:
            uow.publish(messages.authorized(payment, cause))
        elif op.status is OperationStatus.FAILED:
            uow.publish(messages.declined(payment, op.outcome or "processing_error", cause))
        await uow.commit()
        return payment.head() is not None


async def void_payment(
    uow: PaymentsUnitOfWork, order_id: str, *, cause: Cause, now: datetime
) -> bool:
    async with uow:
        payment = await uow.payments.get(order_id, lock=True)
        if payment is None:
            # Nothing to void, but remember it: an authorize arriving late must not charge.
            await uow.payments.add(voided_placeholder(order_id=order_id, now=now))
            uow.publish(messages.voided(order_id, cause))
            await uow.commit()
            return False
        op = payment.operation(OperationKind.VOID)
        if op is None:
            payment.request(OperationKind.VOID, cause=cause, now=now)
            await uow.payments.save(payment)
        elif op.status is OperationStatus.SUCCEEDED:
            uow.publish(messages.voided(order_id, cause))
        elif op.status is OperationStatus.FAILED:
            log.error(
                "void_payment for a payment that cannot be voided",
                order_id=order_id,
                status=payment.status.value,
                reason=op.outcome,
            )
        await uow.commit()
        return payment.head() is not None


async def capture_payment(
    uow: PaymentsUnitOfWork, order_id: str, *, cause: Cause, now: datetime
) -> bool:
    async with uow:
        payment = await uow.payments.get(order_id, lock=True)
        if payment is None:
            raise PaymentNotFoundError(f"no payment for order {order_id} to capture")
        op = payment.operation(OperationKind.CAPTURE)
        if op is not None and op.status is OperationStatus.SUCCEEDED:
            uow.publish(messages.captured(payment, op.amount or 0, cause))
        elif op is None or op.status is OperationStatus.FAILED:
            # The saga retries a capture until it succeeds: a refused one is tried again.
            payment.request(OperationKind.CAPTURE, cause=cause, now=now)
            await uow.payments.save(payment)
        await uow.commit()
        return payment.head() is not None


async def refund_cancelled_order(
    uow: PaymentsUnitOfWork, order_id: str, *, cause: Cause, now: datetime
) -> bool:
    """Give back what the order paid. A payment whose capture has not happened yet (the
    capture command may still be on its way) is captured first, then refunded, so a
    late capture command finds it captured instead of charging again afterwards."""
    async with uow:
        payment = await uow.payments.get(order_id, lock=True)
        if payment is None:
            uow.publish(messages.refund_failed(order_id, "payment_not_found", cause))
            await uow.commit()
            return False
        op = payment.operation(OperationKind.REFUND)
        if op is None:
            not_yet_captured = payment.status in (
                PaymentStatus.PENDING,
                PaymentStatus.PENDING_UNKNOWN,
                PaymentStatus.AUTHORIZED,
            )
            if not_yet_captured and payment.operation(OperationKind.CAPTURE) is None:
                payment.request(OperationKind.CAPTURE, cause=cause, now=now)
            payment.request(OperationKind.REFUND, cause=cause, now=now)
            await uow.payments.save(payment)
        elif op.status is OperationStatus.SUCCEEDED:
            uow.publish(messages.refunded(payment, op.amount or 0, cause))
        elif op.status is OperationStatus.FAILED:
            uow.publish(messages.refund_failed(order_id, op.outcome or "refund_failed", cause))
        await uow.commit()
        return payment.head() is not None


async def payment_of(
    uow: PaymentsUnitOfWork, order_id: str, *, subject: str, is_admin: bool
) -> tuple[Payment, list[LedgerEntry]]:
    """The order's payment, for its owner or an admin; anyone else learns nothing."""
    async with uow:
        payment = await uow.payments.get(order_id)
        if payment is None or not (is_admin or payment.user_id == subject):
            raise PaymentNotFoundError(f"no payment for order {order_id}")
        return payment, await uow.payments.ledger(order_id)


async def all_payments(uow: PaymentsUnitOfWork) -> list[tuple[Payment, list[LedgerEntry]]]:
    async with uow:
        return await uow.payments.all()
